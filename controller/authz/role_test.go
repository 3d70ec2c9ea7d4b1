package authz

import (
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestRolesEveryTokenRole walks every TokenRole the API declares and every
// Role, both ways, and the names ParseRole reads.
func TestRolesEveryTokenRole(t *testing.T) {
	t.Parallel()
	mapped := 0
	for n, name := range pb.TokenRole_name {
		r, err := RoleFromPB(pb.TokenRole(n))
		if n == 0 {
			if err == nil {
				t.Errorf("%s -> %s with no error", name, r)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		mapped++
		if back, err := r.ToPB(); err != nil || back != pb.TokenRole(n) {
			t.Errorf("%s -> %s -> %s, %v", name, r, back, err)
		}
	}
	if mapped != len(Roles()) {
		t.Errorf("%d API roles, %d Roles()", mapped, len(Roles()))
	}
	for _, r := range Roles() {
		if p, err := r.ToPB(); err != nil || p == pb.TokenRole_TOKEN_ROLE_UNSPECIFIED {
			t.Errorf("%s -> %s, %v", r, p, err)
		}
		if got, err := ParseRole(r.String()); err != nil || got != r {
			t.Errorf("ParseRole(%q) = %s, %v", r.String(), got, err)
		}
	}
	if p, err := RoleNone.ToPB(); err == nil {
		t.Errorf("RoleNone -> %s with no error", p)
	}
	if _, err := RoleFromPB(pb.TokenRole(99)); err == nil {
		t.Error("undeclared value 99 mapped")
	}
	for _, bad := range []string{"", "none", "root", "TOKEN_ROLE_ADMIN"} {
		if r, err := ParseRole(bad); err == nil {
			t.Errorf("ParseRole(%q) = %s with no error", bad, r)
		}
	}
}

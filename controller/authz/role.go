// Package authz owns who may call what on AdminService: the caller's
// identity (a Principal from a bearer token, an admin certificate or
// --insecure), the one table mapping every AdminService method to the least
// role allowed (table.go), and the gRPC interceptors that enforce it and
// hand mutating calls to the audit log. Unknown methods are denied.
package authz

import (
	"fmt"
	"strings"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Role orders what a caller may do; a higher role may do everything a lower one may.
type Role int

// Roles, least first. RoleNone is never granted: it marks "no access".
const (
	RoleNone Role = iota
	RoleViewer
	RoleOperator
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

var rolePB = map[Role]pb.TokenRole{
	RoleViewer:   pb.TokenRole_TOKEN_ROLE_VIEWER,
	RoleOperator: pb.TokenRole_TOKEN_ROLE_OPERATOR,
	RoleAdmin:    pb.TokenRole_TOKEN_ROLE_ADMIN,
}

// Roles lists every role a token may have, least first; api_tokens.role
// allows exactly their names.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleAdmin} }

// ToPB is the API's value of r; RoleNone has none and is an error.
func (r Role) ToPB() (pb.TokenRole, error) {
	if p, ok := rolePB[r]; ok {
		return p, nil
	}
	return pb.TokenRole_TOKEN_ROLE_UNSPECIFIED, fmt.Errorf("role %s has no API value", r)
}

// RoleFromPB is the role of an API value; UNSPECIFIED and unknown numbers
// are errors.
func RoleFromPB(p pb.TokenRole) (Role, error) {
	for r, v := range rolePB {
		if v == p {
			return r, nil
		}
	}
	return RoleNone, fmt.Errorf("no role for %s", p)
}

// ParseRole reads "viewer", "operator" or "admin".
func ParseRole(s string) (Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "viewer":
		return RoleViewer, nil
	case "operator":
		return RoleOperator, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (admin, operator or viewer)", s)
}

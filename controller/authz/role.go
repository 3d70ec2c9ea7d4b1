// Package authz owns who may call what on AdminService: the caller's
// identity (a Principal from a bearer token, an admin certificate or
// --insecure), the one table mapping every AdminService method to the least
// role allowed (table.go), and the gRPC interceptors that enforce it and
// hand mutating calls to the audit log. Unknown methods are denied.
package authz

import (
	"fmt"
	"strings"
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

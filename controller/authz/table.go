package authz

import (
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Rule is what one AdminService method needs.
type Rule struct {
	// Least is the least role allowed to call the method.
	Least Role
	// Mutates marks calls that change state; they are written to the audit log.
	Mutates bool
}

var (
	read    = Rule{Least: RoleViewer}
	operate = Rule{Least: RoleOperator, Mutates: true}
	manage  = Rule{Least: RoleAdmin, Mutates: true}
)

// adminService is the prefix of every AdminService full method name.
var adminService = "/" + pb.AdminService_ServiceDesc.ServiceName + "/"

// Table maps every AdminService method (by name) to its rule: the one place
// that says who may do what. Viewers read; operators run scans, cancel jobs
// and manage targets, profiles, exclusions and hosts; admins manage sites,
// agents, tokens and read the audit log. A method missing here is denied to
// everyone (TestTableCoversAdminService fails for it).
var Table = map[string]Rule{
	"CreateSite": manage,
	"ListSites":  read,
	"UpdateSite": manage,
	"DeleteSite": manage,
	// Undoing an archive is allowed to whoever may archive.
	"UnarchiveSite": manage,

	// Emergency stop: whoever may run and cancel scans may stop them all.
	"PauseScanning":  operate,
	"ResumeScanning": operate,

	"CreateExclusion": operate,
	"ListExclusions":  read,
	"DeleteExclusion": operate,

	"CreateTarget":    operate,
	"GetTarget":       read,
	"ListTargets":     read,
	"UpdateTarget":    operate,
	"DeleteTarget":    operate,
	"UnarchiveTarget": operate,

	"CreateProfile": operate,
	"GetProfile":    read,
	"ListProfiles":  read,
	"DeleteProfile": operate,

	"ScanNow":   operate,
	"GetJob":    read,
	"ListJobs":  read,
	"CancelJob": operate,

	"ListAgents":   read,
	"DrainAgent":   manage,
	"RevokeAgent":  manage,
	"ApproveAgent": manage,

	"CreateEnrollmentToken": manage,
	"ListEnrollmentTokens":  {Least: RoleAdmin},
	"RevokeEnrollmentToken": manage,

	"ListHosts":       read,
	"GetHost":         read,
	"ListHostChanges": read,
	"UpdateHost":      operate,
	"ExportResults":   read,
	"ImportResults":   operate,
	"WatchEvents":     read,
	"WatchChanges":    read,

	// Webhooks reach people: operators manage them like targets.
	"CreateWebhook":          operate,
	"ListWebhooks":           read,
	"DeleteWebhook":          operate,
	"ListWebhookDeliveries":  read,
	"RetryWebhookDeliveries": operate,
	"GetStats":               read,

	"CreateToken":     manage,
	"ListTokens":      {Least: RoleAdmin},
	"RevokeToken":     manage,
	"ListAuditEvents": {Least: RoleAdmin},
}

// RuleFor returns the rule of an AdminService full method name
// ("/scanorama.v1.AdminService/ListHosts"); ok is false for anything not in
// the table, which callers must deny.
func RuleFor(fullMethod string) (Rule, bool) {
	if len(fullMethod) <= len(adminService) || fullMethod[:len(adminService)] != adminService {
		return Rule{}, false
	}
	r, ok := Table[fullMethod[len(adminService):]]
	return r, ok
}

// IsAdminService reports whether fullMethod belongs to AdminService.
func IsAdminService(fullMethod string) bool {
	return len(fullMethod) > len(adminService) && fullMethod[:len(adminService)] == adminService
}

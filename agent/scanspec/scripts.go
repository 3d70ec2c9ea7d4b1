package scanspec

import (
	"regexp"
	"slices"
)

// allowedScripts is the curated set of NSE scripts an administrator may
// request. Each is a read-only information gatherer from nmap's "safe"
// category: no brute forcing, no exploitation, no intrusive probes.
var allowedScripts = []string{
	"banner",
	"dns-nsid",
	"http-server-header",
	"http-title",
	"ntp-info",
	"smb-os-discovery",
	"snmp-info",
	"ssh-hostkey",
	"ssl-cert",
	"ssl-enum-ciphers",
}

var scriptNameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// AllowedScripts returns the sorted NSE script allow-list.
func AllowedScripts() []string { return slices.Clone(allowedScripts) }

// ScriptAllowed reports whether name is a well-formed script name on the
// allow-list.
func ScriptAllowed(name string) bool {
	return scriptNameRE.MatchString(name) && slices.Contains(allowedScripts, name)
}

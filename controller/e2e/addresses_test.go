package e2e_test

import (
	"bufio"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// allowedRanges are the only networks a test, demo, benchmark or runnable
// documentation example may name (SECURITY.md, "Network safety"): loopback,
// the test ranges carved into namespaces the tests create, the documentation
// ranges, and the wildcard/broadcast forms that are never probed.
var allowedRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.99.0.0/16"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("0.0.0.0/32"),
	netip.MustParsePrefix("255.0.0.0/8"),
}

var ipv4Literal = regexp.MustCompile(`\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b`)

// Every IPv4 literal in the tracked sources and docs (generated code aside)
// lies in the allowed ranges, so nothing the project runs can be pointed at
// someone else's network by a copied example.
func TestAddressLiteralsStayInSafeRanges(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("git", "-C", "../..", "ls-files").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	checked := 0
	for _, name := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if strings.HasPrefix(name, "gen/") || !safetyChecked(name) {
			continue
		}
		checked++
		f, err := os.Open(filepath.Join("../..", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
		for line := 1; sc.Scan(); line++ {
			for _, lit := range ipv4Literal.FindAllString(sc.Text(), -1) {
				a, err := netip.ParseAddr(lit)
				if err != nil {
					continue // an octet over 255: not an address
				}
				if !inAllowed(a) {
					t.Errorf("%s:%d: address %s is outside loopback, the test ranges and the documentation ranges", name, line, lit)
				}
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d files; the file list looks wrong", checked)
	}
}

func safetyChecked(name string) bool {
	switch filepath.Ext(name) {
	case ".go", ".sh", ".md", ".yaml", ".yml", ".json", ".toml", ".sql", ".service", ".proto":
		return true
	}
	return strings.HasPrefix(name, ".ci/") || name == "Makefile"
}

func inAllowed(a netip.Addr) bool {
	for _, p := range allowedRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

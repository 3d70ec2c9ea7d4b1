package nmaprun

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// capNetRaw is the bit of CAP_NET_RAW in the kernel capability sets.
const capNetRaw = 13

// versionTimeout bounds "nmap --version".
const versionTimeout = 10 * time.Second

// Capabilities describes what the agent's nmap can do on this host.
type Capabilities struct {
	NmapVersion string // e.g. "7.93"
	// RawSockets reports whether this process may open raw sockets, which
	// SYN and UDP scans, OS detection and ICMP/ARP discovery need. Note that
	// a non-root nmap only uses them when given --privileged (or
	// NMAP_PRIVILEGED is set).
	RawSockets bool
}

var versionRE = regexp.MustCompile(`(?m)^Nmap version ([0-9A-Za-z._-]+)`)

// DetectCapabilities runs "nmapPath --version" (nmapPath empty means
// "nmap" from PATH) and inspects this process's privileges.
func DetectCapabilities(ctx context.Context, nmapPath string) (Capabilities, error) {
	if nmapPath == "" {
		nmapPath = "nmap"
	}
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	out := newTailBuffer(16 << 10)
	cmd := exec.CommandContext(ctx, nmapPath, "--version")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = waitDelay
	if err := cmd.Run(); err != nil {
		return Capabilities{}, withStderr(fmt.Errorf("running %s --version: %w", nmapPath, err), out)
	}
	version, err := parseVersion(out.String())
	if err != nil {
		return Capabilities{}, err
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		status = nil // not Linux, or no procfs: fall back to the uid
	}
	return Capabilities{
		NmapVersion: version,
		RawSockets:  hasRawSockets(os.Geteuid(), string(status)),
	}, nil
}

// parseVersion extracts the version from "nmap --version" output.
func parseVersion(out string) (string, error) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("unrecognised nmap --version output %q", truncate(out, 200))
	}
	return m[1], nil
}

// hasRawSockets decides from the effective uid and the contents of
// /proc/self/status whether raw sockets are available. The kernel checks
// CAP_NET_RAW, not the uid, so when the effective capability set is known it
// decides (root in a container without CAP_NET_RAW has no raw sockets);
// otherwise root is assumed to have them.
func hasRawSockets(euid int, procStatus string) bool {
	if caps, err := effectiveCaps(strings.NewReader(procStatus)); err == nil {
		return caps&(1<<capNetRaw) != 0
	}
	return euid == 0
}

// effectiveCaps parses the CapEff line of /proc/<pid>/status.
func effectiveCaps(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line")
}

package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Logf receives progress lines (t.Logf, or an adapter over a logger); nil
// discards them.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

// FreeAddr returns host:port with a port nothing listens on right now.
func FreeAddr(host netip.Addr) (string, error) {
	l, err := net.Listen("tcp", netip.AddrPortFrom(host, 0).String())
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// IP runs ip(8) with stdin (if any) and returns its combined output, which
// is also returned on failure so that callers can read the reason.
func IP(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Namespaces lists the network namespaces by name.
func Namespaces(ctx context.Context) ([]string, error) {
	out, err := IP(ctx, "", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// NamespaceExists reports whether ns is listed by `ip netns list`.
func NamespaceExists(ctx context.Context, ns string) bool {
	names, err := Namespaces(ctx)
	return err == nil && slices.Contains(names, ns)
}

// KillNamespacePids SIGKILLs, by PID, whatever still runs in ns (never PID 1
// or this process) and waits up to 5 s for each to go.
func KillNamespacePids(ctx context.Context, ns string, logf Logf) {
	out, err := IP(ctx, "", "netns", "pids", ns)
	if err != nil {
		return
	}
	var pids []int
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		logf.printf("namespace %s: killing leftover process %d", ns, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for time.Now().Before(deadline) {
			if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
				break
			}
			// A child of ours stays a zombie until reaped; its Proc's
			// Wait goroutine does that, so keep polling.
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// DeleteNamespace kills the processes left in ns, then deletes it.
func DeleteNamespace(ctx context.Context, ns string, logf Logf) error {
	KillNamespacePids(ctx, ns, logf)
	_, err := IP(ctx, "", "netns", "del", ns)
	return err
}

// ReapStaleNamespaces deletes the namespaces an earlier, killed run left
// behind: names matching owned, whose first submatch is the PID of the run
// that created them, when that PID is no longer alive (this process's own
// namespaces are therefore never touched).
func ReapStaleNamespaces(ctx context.Context, owned *regexp.Regexp, logf Logf) {
	names, err := Namespaces(ctx)
	if err != nil {
		return
	}
	for _, ns := range names {
		m := owned.FindStringSubmatch(ns)
		if len(m) < 2 || m[1] == strconv.Itoa(os.Getpid()) {
			continue
		}
		if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // that run is still going
		}
		logf.printf("removing stale namespace %s left by dead process %s", ns, m[1])
		_ = DeleteNamespace(ctx, ns, logf)
	}
}

// ForwardingFiles are the host sysctls no test or bench may change.
var ForwardingFiles = []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"}

// Forwarding is a snapshot of ForwardingFiles.
type Forwarding map[string]string

// ReadForwarding snapshots the host's forwarding sysctls.
func ReadForwarding() Forwarding {
	m := Forwarding{}
	for _, f := range ForwardingFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			m[f] = "unreadable: " + err.Error()
			continue
		}
		m[f] = strings.TrimSpace(string(b))
	}
	return m
}

// Changed lists, one line each, the sysctls that differ now from f.
func (f Forwarding) Changed() []string {
	now := ReadForwarding()
	var diffs []string
	for _, file := range ForwardingFiles {
		if f[file] != now[file] {
			diffs = append(diffs, fmt.Sprintf("%s changed: %q -> %q", file, f[file], now[file]))
		}
	}
	return diffs
}

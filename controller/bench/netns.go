package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/scanorama/scanorama/controller/internal/harness"
)

// ListenerCommand is the hidden subcommand the bench re-executes itself
// with, inside the target namespace, to hold TCP ports open: the arguments
// that follow are deploy/listener's (the one listener program the demo and
// the e2e tests use too).
const ListenerCommand = "__bench-listen"

// labNetwork holds every address the agent cases probe. It exists only on
// the veth pair between the two namespaces the bench creates.
var labNetwork = netip.MustParsePrefix("10.99.0.0/16")

func ipCmd(ctx context.Context, stdin string, args ...string) error {
	_, err := harness.IP(ctx, stdin, args...)
	return err
}

// probeNetns checks that namespaces and veth links can be created.
func probeNetns(ctx context.Context) error {
	ns := fmt.Sprintf("scbprobe%d", os.Getpid())
	if err := ipCmd(ctx, "", "netns", "add", ns); err != nil {
		return fmt.Errorf("cannot create a network namespace (the agent cases need CAP_SYS_ADMIN and iproute2): %w", err)
	}
	defer func() { _ = ipCmd(context.Background(), "", "netns", "del", ns) }()
	if err := ipCmd(ctx, "", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"); err != nil {
		return fmt.Errorf("cannot create veth links in a network namespace (the agent cases need veth support): %w", err)
	}
	return nil
}

// netLab is two namespaces joined by a veth pair on 10.99.0.0/16: nmap runs
// in scanNS; the live hosts are addresses of targetNS, where a listener
// holds ports open. Everything else in the /16 is silent (ARP unanswered).
type netLab struct {
	scanNS, targetNS string
	nmapWrapper      string // runs nmap inside scanNS
	nmapPath         string
}

// staleNS matches the namespaces this bench creates: scb<pid>-s and scb<pid>-t.
var staleNS = regexp.MustCompile(`^scb([0-9]+)-[st]$`)

// cleanStaleLabs removes namespaces left by a bench run that was killed
// (its PID no longer exists), and the processes still inside them.
func cleanStaleLabs(ctx context.Context, e *Env) {
	harness.ReapStaleNamespaces(ctx, staleNS, func(format string, args ...any) {
		e.Log.Info(fmt.Sprintf(format, args...))
	})
}

func setupLab(ctx context.Context, e *Env, live []netip.Addr, openPorts string) (*netLab, error) {
	cleanStaleLabs(ctx, e)
	pid := os.Getpid()
	lab := &netLab{scanNS: fmt.Sprintf("scb%d-s", pid), targetNS: fmt.Sprintf("scb%d-t", pid)}
	// The lab never touches the host's forwarding; say so if it changed.
	forwarding := harness.ReadForwarding()
	e.OnClose(func() {
		for _, d := range forwarding.Changed() {
			e.Log.Error("host forwarding sysctl changed during the bench", "change", d)
		}
	})
	var err error
	if lab.nmapPath, err = exec.LookPath("nmap"); err != nil {
		return nil, err
	}
	if lab.nmapPath, err = filepath.Abs(lab.nmapPath); err != nil {
		return nil, err
	}
	for _, ns := range []string{lab.scanNS, lab.targetNS} {
		_ = ipCmd(ctx, "", "netns", "del", ns) // a leftover of an earlier run with our PID
		if err := ipCmd(ctx, "", "netns", "add", ns); err != nil {
			return nil, err
		}
		e.OnClose(func() {
			if err := harness.DeleteNamespace(context.Background(), ns, nil); err != nil {
				e.Log.Warn("delete network namespace", "ns", ns, "error", err)
			}
		})
	}
	v0, v1 := fmt.Sprintf("scb%d-v0", pid), fmt.Sprintf("scb%d-v1", pid)
	// The veth pair is created directly inside the two namespaces: the
	// host's own interfaces, routes and forwarding are never touched.
	var batch strings.Builder
	fmt.Fprintf(&batch, "link set lo up\nlink set %s up\naddr add 10.99.0.2/16 dev %s\n", v1, v1)
	for _, a := range live {
		if !labNetwork.Contains(a) {
			return nil, fmt.Errorf("live address %s outside %s", a, labNetwork)
		}
		fmt.Fprintf(&batch, "addr add %s/32 dev %s\n", a, v1)
	}
	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"link", "add", v0, "netns", lab.scanNS, "type", "veth", "peer", "name", v1, "netns", lab.targetNS}},
		{"", []string{"-n", lab.scanNS, "link", "set", "lo", "up"}},
		{"", []string{"-n", lab.scanNS, "link", "set", v0, "up"}},
		{"", []string{"-n", lab.scanNS, "addr", "add", "10.99.0.1/16", "dev", v0}},
		{batch.String(), []string{"-n", lab.targetNS, "-batch", "-"}},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s.stdin, s.args...); err != nil {
			return nil, err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ln, err := e.StartProc("listeners", "ip", "netns", "exec", lab.targetNS, self, ListenerCommand, "-accept", acceptList(openPorts))
	if err != nil {
		return nil, err
	}
	if err := ln.WaitFor("ready", 10*time.Second); err != nil {
		return nil, fmt.Errorf("port listeners in %s did not start: %w", lab.targetNS, err)
	}
	lab.nmapWrapper = filepath.Join(e.Tmp, "bin", "nmap-in-"+lab.scanNS)
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", lab.scanNS, lab.nmapPath)
	if err := os.WriteFile(lab.nmapWrapper, []byte(script), 0o755); err != nil {
		return nil, err
	}
	e.Log.Info("network lab ready", "scan_ns", lab.scanNS, "target_ns", lab.targetNS, "live_hosts", len(live), "open_ports", openPorts)
	return lab, nil
}

// nmap runs nmap with args inside the scan namespace, as the agent's
// wrapper does, reading its XML from a pipe; it returns the wall time.
func (l *netLab) nmap(ctx context.Context, args []string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", l.scanNS, l.nmapPath}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	n, _ := io.Copy(io.Discard, out)
	err = cmd.Wait()
	el := time.Since(begin)
	if err != nil {
		return 0, fmt.Errorf("nmap %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	if n == 0 {
		return 0, fmt.Errorf("nmap wrote no XML")
	}
	return el, nil
}

// acceptList turns "22,80" into deploy/listener's "-accept" list, every
// address of the namespace.
func acceptList(ports string) string {
	var out []string
	for _, p := range strings.Split(ports, ",") {
		out = append(out, net.JoinHostPort("0.0.0.0", strings.TrimSpace(p)))
	}
	return strings.Join(out, ",")
}

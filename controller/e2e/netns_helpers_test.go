package e2e_test

// Helpers for the tests that run agents inside network namespaces.
//
// Safety rules these helpers enforce (the tests rely on them):
//   - everything probed lives in namespaces created here; the only addresses
//     used are 10.99.0.0/24 (inside the namespaces, never in the host
//     namespace) and one /30 per site out of 198.18.0.0/15 on the veth that
//     links the site's agent namespace to the host namespace;
//   - no default route anywhere: an agent namespace gets its connected /30,
//     its connected 10.99.0.0/24 and, at most, a /32 host route to the
//     controller's address (which is a host-namespace address, so nothing is
//     forwarded, and net.ipv4.ip_forward is never touched; guardForwarding
//     asserts it is unchanged);
//   - names carry the test binary's PID ("scnr<pid>-<n>-agent", host veth
//     "scn<pid>h<n>") so parallel runs cannot collide, and t.Cleanup kills
//     every process by PID, deletes the host veth and deletes the
//     namespaces, then checks that they are gone.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanorama/scanorama/controller/internal/harness"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// uplinkPool holds the per-site /30s between the host and agent namespaces.
var uplinkPool = netip.MustParsePrefix("198.18.0.0/15")

const (
	uplinkBlockSize = 64 // one /26 of uplinkPool per test process
	uplinkBlocks    = (1 << (32 - 15)) / uplinkBlockSize
	sitesPerProcess = uplinkBlockSize / 4
)

var (
	netnsOnce  sync.Once
	netnsBlock uint32 // first address of this process's /26, as a uint32
	netnsErr   error
	netnsSeq   atomic.Uint32

	nslistenerOnce sync.Once
	nslistenerPath string
	nslistenerErr  error
)

// requireNetns skips the test when it cannot create network namespaces.
// Whether `ip netns add` itself is permitted is checked by newNSSite.
func requireNetns(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: network namespace tests need root (ip netns add, veth pairs)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: iproute2 `ip` is not installed")
	}
}

// elapsedLogger returns t.Logf with the time since the test started, which
// shows where a slow run spends its time; it also logs the teardown's length.
func elapsedLogger(t *testing.T) func(format string, args ...any) {
	start := time.Now()
	logf := func(format string, args ...any) {
		t.Helper()
		t.Logf("[%6.2fs] %s", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	t.Cleanup(func() { logf("teardown done") })
	return logf
}

// ipCmd runs ip(8) and returns its combined output.
func ipCmd(args ...string) (string, error) {
	return harness.IP(context.Background(), "", args...)
}

func mustIP(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ipCmd(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// guardForwarding records the host's forwarding sysctls and fails the test
// if they differ at the end. Call it first so that its check runs last,
// after every namespace is gone.
func guardForwarding(t *testing.T) {
	t.Helper()
	before := harness.ReadForwarding()
	t.Cleanup(func() {
		for _, d := range before.Changed() {
			t.Errorf("%s (during the test)", d)
		}
	})
}

func addrToU32(a netip.Addr) uint32 { return binary.BigEndian.Uint32(a.AsSlice()) }

func u32ToAddr(u uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

// pickUplinkBlock chooses this process's /26 of uplinkPool: the first one,
// starting from a PID-derived index, that no host address or main-table
// route touches.
func pickUplinkBlock() (uint32, error) {
	base := addrToU32(uplinkPool.Addr())
	used := map[uint32]bool{}
	mark := func(p netip.Prefix) {
		p = p.Masked()
		if !p.Addr().Is4() || !p.Overlaps(uplinkPool) {
			return
		}
		lo, hi := addrToU32(p.Addr()), addrToU32(p.Addr())|(1<<(32-p.Bits())-1)
		lo, hi = max(lo, base), min(hi, base+1<<(32-uplinkPool.Bits())-1)
		for b := (lo - base) / uplinkBlockSize; b <= (hi-base)/uplinkBlockSize; b++ {
			used[b] = true
		}
	}
	addrs, err := ipCmd("-4", "-o", "addr", "show")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(addrs, "\n") {
		f := strings.Fields(line)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "inet" {
				if p, err := netip.ParsePrefix(f[i+1]); err == nil {
					mark(p)
				}
			}
		}
	}
	routes, err := ipCmd("-4", "route", "show")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if p, err := netip.ParsePrefix(f[0]); err == nil {
			mark(p)
		} else if a, err := netip.ParseAddr(f[0]); err == nil {
			mark(netip.PrefixFrom(a, a.BitLen()))
		}
	}
	start := uint32(os.Getpid()) % uplinkBlocks
	for i := range uint32(uplinkBlocks) {
		b := (start + i) % uplinkBlocks
		if !used[b] {
			return base + b*uplinkBlockSize, nil
		}
	}
	return 0, errors.New("no free /26 left in 198.18.0.0/15 on this host")
}

var staleNS = regexp.MustCompile(`^scnr([0-9]+)-[0-9]+-(agent|target)$`)

// reapStaleNamespaces deletes namespaces that an earlier run of these tests
// created and could not clean up (it was killed, e.g. by -timeout): names
// matching our pattern whose PID is no longer alive.
func reapStaleNamespaces(t *testing.T) {
	harness.ReapStaleNamespaces(context.Background(), staleNS, t.Logf)
}

// killNamespacePids SIGKILLs, by PID, whatever still runs in ns and waits
// for it to go.
func killNamespacePids(t *testing.T, ns string) {
	harness.KillNamespacePids(context.Background(), ns, t.Logf)
}

// nsSite is one network segment: an agent namespace linked to the host by a
// veth pair on its own /30, and a target namespace on 10.99.0.0/24 behind it.
//
//	host ns                 agent ns                      target ns
//	hostIf 198.18.x.1/30 ── up0 198.18.x.2/30
//	                        lan0 10.99.0.1/24 ─────────── eth0 10.99.0.10/24 (+ more)
type nsSite struct {
	t          *testing.T
	agentNS    string
	targetNS   string
	hostIf     string
	hostAddr   netip.Addr // host end of the uplink
	uplinkAddr netip.Addr // agent namespace end of the uplink
	targetMAC  string
}

// newNSSite builds a site whose target namespace holds targetAddrs (all in
// 10.99.0.0/24) on one interface with the given MAC. Everything is removed
// at cleanup, after the processes started later in the test are killed.
func newNSSite(t *testing.T, targetAddrs []string, targetMAC string) *nsSite {
	t.Helper()
	lan := netip.MustParsePrefix("10.99.0.0/24")
	for _, a := range targetAddrs {
		if !lan.Contains(netip.MustParseAddr(a)) || a == "10.99.0.1" {
			t.Fatalf("target address %s: must be inside 10.99.0.0/24 and not 10.99.0.1", a)
		}
	}
	netnsOnce.Do(func() { netnsBlock, netnsErr = pickUplinkBlock() })
	if netnsErr != nil {
		t.Fatal(netnsErr)
	}
	n := netnsSeq.Add(1) - 1
	if n >= sitesPerProcess {
		t.Fatalf("more than %d namespace sites in one test process", sitesPerProcess)
	}
	if n == 0 {
		reapStaleNamespaces(t)
	}
	pid := os.Getpid()
	s := &nsSite{
		t:          t,
		agentNS:    fmt.Sprintf("scnr%d-%d-agent", pid, n),
		targetNS:   fmt.Sprintf("scnr%d-%d-target", pid, n),
		hostIf:     fmt.Sprintf("scn%dh%d", pid, n),
		hostAddr:   u32ToAddr(netnsBlock + 4*n + 1),
		uplinkAddr: u32ToAddr(netnsBlock + 4*n + 2),
		targetMAC:  targetMAC,
	}
	if len(s.hostIf) > 15 {
		t.Fatalf("interface name %q is too long", s.hostIf)
	}

	var created []string // namespaces, in creation order
	hostIfCreated := false
	t.Cleanup(func() { s.teardown(created, hostIfCreated) })

	for _, ns := range []string{s.agentNS, s.targetNS} {
		if out, err := ipCmd("netns", "add", ns); err != nil {
			if strings.Contains(out, "Operation not permitted") || strings.Contains(out, "Permission denied") {
				t.Skipf("skipping: cannot create network namespaces here: %v", err)
			}
			t.Fatal(err)
		}
		created = append(created, ns)
	}
	// Uplink: created in the host namespace, peer moved straight into the agent namespace.
	mustIP(t, "link", "add", s.hostIf, "type", "veth", "peer", "name", "up0", "netns", s.agentNS)
	hostIfCreated = true
	mustIP(t, "addr", "add", netip.PrefixFrom(s.hostAddr, 30).String(), "dev", s.hostIf)
	mustIP(t, "link", "set", s.hostIf, "up")
	mustIP(t, "-n", s.agentNS, "link", "set", "lo", "up")
	mustIP(t, "-n", s.agentNS, "addr", "add", netip.PrefixFrom(s.uplinkAddr, 30).String(), "dev", "up0")
	mustIP(t, "-n", s.agentNS, "link", "set", "up0", "up")
	// The scanned segment: created inside the agent namespace, so its names
	// never appear in the host namespace.
	mustIP(t, "-n", s.agentNS, "link", "add", "lan0", "type", "veth", "peer", "name", "eth0", "netns", s.targetNS)
	mustIP(t, "-n", s.agentNS, "addr", "add", "10.99.0.1/24", "dev", "lan0")
	mustIP(t, "-n", s.agentNS, "link", "set", "lan0", "up")
	mustIP(t, "-n", s.targetNS, "link", "set", "lo", "up")
	if targetMAC != "" {
		mustIP(t, "-n", s.targetNS, "link", "set", "eth0", "address", targetMAC)
	}
	for _, a := range targetAddrs {
		mustIP(t, "-n", s.targetNS, "addr", "add", a+"/24", "dev", "eth0")
	}
	mustIP(t, "-n", s.targetNS, "link", "set", "eth0", "up")

	// Neither namespace may have a default route (nothing leaves the machine).
	for _, ns := range []string{s.agentNS, s.targetNS} {
		if out := mustIP(t, "-n", ns, "route", "show", "default"); strings.TrimSpace(out) != "" {
			t.Fatalf("namespace %s has a default route: %s", ns, out)
		}
	}
	return s
}

// teardown kills leftovers by PID, deletes the host veth and the
// namespaces, and checks that nothing of this site is left.
func (s *nsSite) teardown(created []string, hostIfCreated bool) {
	t := s.t
	for _, ns := range created {
		killNamespacePids(t, ns)
	}
	if hostIfCreated {
		if _, err := ipCmd("link", "del", s.hostIf); err != nil {
			if _, err2 := ipCmd("link", "show", s.hostIf); err2 == nil {
				t.Errorf("delete host veth %s: %v", s.hostIf, err)
			}
		}
	}
	for i := len(created) - 1; i >= 0; i-- {
		if _, err := ipCmd("netns", "del", created[i]); err != nil {
			t.Errorf("delete namespace %s: %v", created[i], err)
		}
	}
	if names, err := harness.Namespaces(context.Background()); err == nil {
		for _, ns := range created {
			if slices.Contains(names, ns) {
				t.Errorf("namespace %s still listed after cleanup", ns)
			}
		}
	}
	if hostIfCreated {
		if _, err := ipCmd("link", "show", s.hostIf); err == nil {
			t.Errorf("host veth %s still present after cleanup", s.hostIf)
		}
	}
}

// routeTo lets the agent namespace reach a host-namespace address outside
// its own /30 (the controller's, when it listens on another site's uplink):
// a /32 route via the host end of this site's uplink.
func (s *nsSite) routeTo(a netip.Addr) {
	s.t.Helper()
	if netip.PrefixFrom(s.hostAddr, 30).Masked().Contains(a) {
		return
	}
	if !uplinkPool.Contains(a) {
		s.t.Fatalf("refusing to route %s from %s: not an uplink address", a, s.agentNS)
	}
	mustIP(s.t, "-n", s.agentNS, "route", "add", netip.PrefixFrom(a, 32).String(), "via", s.hostAddr.String(), "dev", "up0")
}

// startInNS runs bin inside ns through `ip netns exec`, which execs bin in
// place: the PID is bin's. It is killed (with its process group) at cleanup
// and, should the test binary die first, by the kernel (Pdeathsig).
func startInNS(t *testing.T, ns, name, bin string, args ...string) *proc {
	t.Helper()
	return startCmd(t, name, exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...), harness.Options{Pdeathsig: true})
}

// buildNSListener builds the listener helper once per test binary.
func buildNSListener(t *testing.T) string {
	t.Helper()
	nslistenerOnce.Do(func() {
		nslistenerPath = filepath.Join(binDir, "scanorama-listener")
		out, err := exec.Command("go", "build", "-o", nslistenerPath, "github.com/scanorama/scanorama/deploy/listener/cmd/scanorama-listener").CombinedOutput()
		if err != nil {
			nslistenerErr = fmt.Errorf("build scanorama-listener: %v\n%s", err, out)
		}
	})
	if nslistenerErr != nil {
		t.Fatal(nslistenerErr)
	}
	return nslistenerPath
}

// listen starts the listener helper in the site's target namespace and waits
// until every socket is bound.
func (s *nsSite) listen(args ...string) *proc {
	s.t.Helper()
	p := startInNS(s.t, s.targetNS, "listener "+s.targetNS, buildNSListener(s.t), args...)
	if err := p.WaitFor("ready\n", 20*time.Second); err != nil {
		s.t.Fatalf("listener in %s: %v", s.targetNS, err)
	}
	return p
}

// nsAgent runs the real agent inside the site's agent namespace.
func (s *stack) nsAgent(site *nsSite, name, siteName, scope string) *proc {
	s.t.Helper()
	args := append([]string{"--controller", s.addr, "--site", siteName, "--name", name, "--scope", scope,
		"--spool-dir", filepath.Join(s.t.TempDir(), "spool"), "--log-level", "debug"}, s.agentArgs...)
	return startInNS(s.t, site.agentNS, "agent "+name, filepath.Join(binDir, "scanorama-agent"), args...)
}

// waitAgent polls ListAgents until the named agent of site is registered.
func (s *stack) waitAgent(site, name string, p *proc) *pb.Agent {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := s.admin.ListAgents(s.ctx(), &pb.ListAgentsRequest{Site: site})
		if err != nil {
			s.t.Fatalf("ListAgents: %v", err)
		}
		for _, a := range resp.GetAgents() {
			if a.GetName() == name {
				return a
			}
		}
		select {
		case <-p.Done():
			s.t.Fatalf("agent %s exited before registering:\n%s", name, p.Output())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("agent %s of site %s not registered after 30s:\n%s", name, site, p.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

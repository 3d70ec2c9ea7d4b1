//go:build linux

package nmaprun

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/agent/scanspec"
)

// listen opens a TCP listener on 127.0.0.1 that accepts and closes
// connections, and returns its port. Tests scan nothing else.
func listen(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}

func connectArgs(t *testing.T, ports string, tweak func(*scanspec.Options)) []string {
	t.Helper()
	o := scanspec.DefaultOptions()
	o.TopPorts = 0
	spec, err := scanspec.ParsePorts(ports)
	if err != nil {
		t.Fatal(err)
	}
	o.Ports = spec
	if tweak != nil {
		tweak(&o)
	}
	args, err := scanspec.Args(o, loopback, nil)
	if err != nil {
		t.Fatal(err)
	}
	return args
}

func testRunner(t *testing.T) *Runner {
	return &Runner{NmapPath: requireNmap(t), Logger: hclog.New(&hclog.LoggerOptions{
		Name: t.Name(), Level: hclog.Debug, Output: hclogWriter{t},
	})}
}

type hclogWriter struct{ t *testing.T }

func (w hclogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestRunnerConnectScan(t *testing.T) {
	t.Parallel()
	r := testRunner(t)
	p1, p2 := listen(t), listen(t)
	args := connectArgs(t, fmt.Sprintf("%d,%d", p1, p2), nil)

	rec := &recorder{}
	sum, err := r.Run(t.Context(), Job{Args: args, ExpectedHosts: 1}, rec)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(rec.hosts) != 1 {
		t.Fatalf("got %d hosts, want 1", len(rec.hosts))
	}
	h := rec.hosts[0]
	if h.Address != netip.MustParseAddr("127.0.0.1") || h.Status != "up" {
		t.Fatalf("host = %+v", h)
	}
	open := map[uint16]bool{}
	for _, p := range h.Ports {
		if p.Protocol == "tcp" && p.State == "open" {
			open[p.Port] = true
		}
	}
	if !open[p1] || !open[p2] || len(h.Ports) != 2 {
		t.Fatalf("ports = %+v, want %d and %d open", h.Ports, p1, p2)
	}
	checkProgress(t, rec.progress, true)
	if sum.Exit != "success" || sum.HostsUp != 1 || sum.NmapVersion == "" || !slices.Equal(sum.Args, args) {
		t.Fatalf("summary = %+v", sum)
	}
	if want := scanspecPorts(p1, p2); sum.ScannedTCP != want {
		t.Fatalf("ScannedTCP = %q, want %q", sum.ScannedTCP, want)
	}
}

func scanspecPorts(a, b uint16) string {
	lo, hi := min(a, b), max(a, b)
	if hi == lo+1 {
		return fmt.Sprintf("%d-%d", lo, hi)
	}
	return fmt.Sprintf("%d,%d", lo, hi)
}

// TestRunnerCancel starts a scan that takes minutes (-T0 waits five minutes
// between probes), cancels it and checks that Run returns promptly and that
// nothing of nmap's process group survives.
func TestRunnerCancel(t *testing.T) {
	t.Parallel()
	r := testRunner(t)
	port := listen(t)
	args := connectArgs(t, strconv.Itoa(int(port)), func(o *scanspec.Options) { o.Timing = 0 })

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pgid := make(chan int, 1)
	go func() {
		pgid <- waitForChild(t, "nmap", strconv.Itoa(int(port)))
		time.Sleep(500 * time.Millisecond)
		cancel()
	}()

	start := time.Now()
	rec := &recorder{}
	_, err := r.Run(ctx, Job{Args: args}, rec)
	elapsed := time.Since(start)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	pid := <-pgid
	if pid <= 0 {
		t.Fatal("nmap process never appeared")
	}
	if took := elapsed - 500*time.Millisecond; took > 2*time.Second {
		t.Fatalf("Run returned %v after cancel, want < 2s", took)
	}
	assertGroupGone(t, pid)
	checkProgress(t, rec.progress, false)
}

// TestRunnerKillsWholeGroup uses a fake nmap that forks a child holding the
// stdout pipe open: cancelling must kill both, and Run must still return.
func TestRunnerKillsWholeGroup(t *testing.T) {
	t.Parallel()
	becomeSubreaper(t)
	dir := t.TempDir()
	childFile := filepath.Join(dir, "child.pid")
	fake := writeScript(t, dir, `sleep 300 &
echo $! > "$1"
printf '<?xml version="1.0"?>\n<nmaprun args="nmap -sT" version="7.93">\n'
wait`)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		waitForFile(t, childFile)
		cancel()
	}()
	start := time.Now()
	_, err := (&Runner{NmapPath: fake}).Run(ctx, Job{Args: []string{childFile}}, &recorder{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Run error = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %v", took)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(waitForFile(t, childFile))))
	if err != nil {
		t.Fatal(err)
	}
	assertProcessGone(t, child)
}

func TestRunnerErrors(t *testing.T) {
	t.Parallel()
	nmapPath := requireNmap(t)
	port := strconv.Itoa(int(listen(t)))
	tests := []struct {
		name    string
		path    string
		args    []string
		failAt  int
		wantIs  error
		wantErr []string
	}{
		{
			name:    "invalid option",
			path:    nmapPath,
			args:    []string{"-oX", "-", "--no-such-option", "--", "127.0.0.1"},
			wantErr: []string{"nmap failed: exit status 255", "no nmap XML output", "unrecognized option"},
		},
		{
			name:    "nmap reports an error",
			path:    nmapPath,
			args:    []string{"-oX", "-", "-n", "-sT", "-p", port, "--script", "no-such-script", "--", "127.0.0.1"},
			wantIs:  ErrNmapFailed,
			wantErr: []string{"nmap failed: exit status 1; nmap reported an error: NSE: failed", "'no-such-script' did not match", "stderr:"},
		},
		{
			name:    "consumer aborts",
			path:    nmapPath,
			args:    []string{"-oX", "-", "-n", "-sT", "-p", port, "--", "127.0.0.1"},
			failAt:  1,
			wantIs:  errAbort,
			wantErr: []string{"nmap scan aborted: handling host 127.0.0.1: consumer gave up"},
		},
		{
			name:    "missing binary",
			path:    "/nonexistent/nmap",
			wantErr: []string{"starting nmap"},
		},
		{
			name:    "no xml on stdout",
			path:    nmapPath,
			args:    []string{"-oN", "-", "-n", "-sT", "-p", port, "--", "127.0.0.1"},
			wantErr: []string{"reading nmap output", "no nmap XML output"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{failAt: tt.failAt}
			_, err := (&Runner{NmapPath: tt.path}).Run(t.Context(), Job{Args: tt.args}, rec)
			if err == nil {
				t.Fatal("Run succeeded, want error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Run error %v, want errors.Is %v", err, tt.wantIs)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Run error %q, want it to contain %q", err, w)
				}
			}
			checkProgress(t, rec.progress, false)
		})
	}
}

func TestRunnerPreconditions(t *testing.T) {
	t.Parallel()
	r := &Runner{NmapPath: "/nonexistent/nmap"}
	if _, err := r.Run(t.Context(), Job{}, nil); err == nil {
		t.Error("want error for nil Events")
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := r.Run(ctx, Job{}, &recorder{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with cancelled context = %v, want context.Canceled", err)
	}
}

// TestRunnerParentDeath runs the Runner in a helper process, kills that
// process with SIGKILL and checks that the kernel killed "nmap" with it.
func TestRunnerParentDeath(t *testing.T) {
	t.Parallel()
	if os.Getenv("NMAPRUN_HELPER") != "" {
		t.Skip("helper mode")
	}
	becomeSubreaper(t)
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "nmap.pid")
	fake := writeScript(t, dir, `echo $$ > "$1"
printf '<?xml version="1.0"?>\n<nmaprun args="nmap -sT" version="7.93">\n'
exec sleep 300`)

	helper := execHelper(t, fake, pidFile)
	nmapPid, err := strconv.Atoi(strings.TrimSpace(string(waitForFile(t, pidFile))))
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = helper.Wait()
	assertProcessGone(t, nmapPid)
}

// TestHelperRunner is the body of the helper process of
// TestRunnerParentDeath; it does nothing in a normal test run.
func TestHelperRunner(t *testing.T) {
	fake, arg := os.Getenv("NMAPRUN_HELPER"), os.Getenv("NMAPRUN_HELPER_ARG")
	if fake == "" {
		t.Skip("only runs as the helper of TestRunnerParentDeath")
	}
	_, _ = (&Runner{NmapPath: fake}).Run(context.Background(), Job{Args: []string{arg}}, &recorder{})
}

package harness

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startT starts a shell snippet with output in memory or in a file and
// kills it at cleanup.
func startT(t *testing.T, script string, toFile bool) *Proc {
	t.Helper()
	var opts Options
	if toFile {
		opts.LogPath = filepath.Join(t.TempDir(), "out.log")
	}
	p, err := Start("sh", exec.Command("sh", "-c", script), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	return p
}

func TestProcLifecycle(t *testing.T) {
	t.Parallel()
	for _, toFile := range []bool{false, true} {
		cases := []struct {
			name   string
			script string
			run    func(*testing.T, *Proc)
		}{
			{"exit code and output", "echo one; echo two >&2; exit 3", func(t *testing.T, p *Proc) {
				if got := p.ExitCode(); got != 3 {
					t.Errorf("exit code %d, want 3", got)
				}
				if !p.Exited() {
					t.Error("Exited false after ExitCode")
				}
				out := p.Output()
				if !strings.Contains(out, "one\n") || !strings.Contains(out, "two\n") {
					t.Errorf("output %q lacks stdout or stderr", out)
				}
			}},
			{"tail keeps the last lines", "for i in 1 2 3 4 5; do echo line$i; done", func(t *testing.T, p *Proc) {
				<-p.Done()
				if got := p.Tail(2); got != "line4\nline5" {
					t.Errorf("Tail(2) = %q", got)
				}
				if got := p.Tail(10); got != "line1\nline2\nline3\nline4\nline5" {
					t.Errorf("Tail(10) = %q", got)
				}
			}},
			{"wait for a line written later", "sleep 0.2; echo ready; exec sleep 60", func(t *testing.T, p *Proc) {
				if err := p.WaitFor("ready", 30*time.Second); err != nil {
					t.Fatal(err)
				}
				if p.Exited() {
					t.Error("process exited after writing ready")
				}
			}},
			{"wait fails when the process exits first", "echo starting; exit 1", func(t *testing.T, p *Proc) {
				err := p.WaitFor("ready", 30*time.Second)
				if err == nil || !strings.Contains(err.Error(), "exited before") || !strings.Contains(err.Error(), "starting") {
					t.Errorf("WaitFor = %v, want an exit error with the output", err)
				}
			}},
			{"wait fails at the deadline", "exec sleep 60", func(t *testing.T, p *Proc) {
				err := p.WaitFor("ready", 100*time.Millisecond)
				if err == nil || !strings.Contains(err.Error(), "did not write") {
					t.Errorf("WaitFor = %v, want a deadline error", err)
				}
			}},
			{"stop ends a process that honours SIGTERM", "exec sleep 60", func(t *testing.T, p *Proc) {
				if err := p.Stop(30 * time.Second); err != nil {
					t.Fatal(err)
				}
				if got := p.Cmd.ProcessState.Sys().(syscall.WaitStatus).Signal(); got != syscall.SIGTERM {
					t.Errorf("ended by %v, want SIGTERM", got)
				}
			}},
			{"stop kills after the grace when SIGTERM is ignored", "trap '' TERM; echo trapped; while :; do sleep 0.05; done", func(t *testing.T, p *Proc) {
				if err := p.WaitFor("trapped", 30*time.Second); err != nil {
					t.Fatal(err)
				}
				err := p.Stop(200 * time.Millisecond)
				if err == nil || !strings.Contains(err.Error(), "did not stop") {
					t.Errorf("Stop = %v, want a grace-exceeded error", err)
				}
				if !p.Exited() {
					t.Error("process still running after Stop")
				}
			}},
			{"kill takes the process group and is idempotent", "sleep 60 & echo child $!; wait", func(t *testing.T, p *Proc) {
				if err := p.WaitFor("child ", 30*time.Second); err != nil {
					t.Fatal(err)
				}
				var child int
				for _, f := range strings.Fields(p.Output()) {
					if n, err := strconv.Atoi(f); err == nil {
						child = n
					}
				}
				p.Kill()
				p.Kill()
				if !p.Exited() {
					t.Fatal("process still running after Kill")
				}
				waitGone(t, child)
			}},
			{"sampled RSS", "exec sleep 60", func(t *testing.T, p *Proc) {
				stop := p.SampleRSS(5 * time.Millisecond)
				time.Sleep(50 * time.Millisecond)
				peak := stop()
				if peak <= 0 {
					t.Errorf("sampled peak RSS %.2f MiB, want > 0", peak)
				}
				if again := stop(); again != peak {
					t.Errorf("second stop returned %.2f, want %.2f", again, peak)
				}
			}},
			{"memory from /proc", "exec sleep 60", func(t *testing.T, p *Proc) {
				// Read once the shell has become sleep: across the exec the
				// two reads would see two address spaces (CI once read the
				// shell's RSS, 0.43 MiB, and the fresh sleep's VmHWM, 0.02).
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
					comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID()))
					if err == nil && strings.TrimSpace(string(comm)) == "sleep" {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("process never became sleep (comm %q, %v)", comm, err)
					}
				}
				rss, err := p.RSSMB()
				if err != nil {
					t.Fatal(err)
				}
				hwm, err := p.HWMMB()
				if err != nil {
					t.Fatal(err)
				}
				if rss <= 0 || hwm < rss {
					t.Errorf("RSS %.2f MiB, VmHWM %.2f MiB: want 0 < RSS <= HWM", rss, hwm)
				}
			}},
		}
		mode := "memory"
		if toFile {
			mode = "file"
		}
		for _, c := range cases {
			t.Run(mode+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				c.run(t, startT(t, c.script, toFile))
			})
		}
	}
}

// waitGone polls until pid no longer exists (the group kill reached it; the
// orphan is reaped by init).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	if pid <= 1 {
		t.Fatal("no child PID in the output")
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil || strings.Contains(string(b), ") Z ") {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("child %d of the killed process group still alive", pid)
}

func TestStartFailsForAMissingBinary(t *testing.T) {
	t.Parallel()
	_, err := Start("nothing", exec.Command(filepath.Join(t.TempDir(), "absent")), Options{})
	if err == nil || !strings.Contains(err.Error(), "start nothing") {
		t.Errorf("Start = %v, want an error naming the process", err)
	}
}

func TestPdeathsigStart(t *testing.T) {
	t.Parallel()
	p, err := Start("sleep", exec.Command("sleep", "60"), Options{Pdeathsig: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if got := p.Cmd.SysProcAttr.Pdeathsig; got != syscall.SIGKILL {
		t.Errorf("Pdeathsig %v, want SIGKILL", got)
	}
	if !p.Cmd.SysProcAttr.Setpgid {
		t.Error("child not in its own process group")
	}
	p.Kill()
	if p.ExitCode() != -1 {
		t.Errorf("exit code %d after SIGKILL, want -1", p.ExitCode())
	}
}

func TestStatusKB(t *testing.T) {
	t.Parallel()
	cases := []struct {
		field   string
		wantErr string
	}{
		{"VmRSS", ""},
		{"VmHWM", ""},
		{"Name", "parse Name"},
		{"NoSuchField", "NoSuchField not found"},
	}
	for _, c := range cases {
		t.Run(c.field, func(t *testing.T) {
			t.Parallel()
			kb, err := StatusKB(os.Getpid(), c.field)
			if c.wantErr == "" {
				if err != nil || kb <= 0 {
					t.Errorf("StatusKB = %d, %v; want a positive size", kb, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("StatusKB = %d, %v; want error %q", kb, err, c.wantErr)
			}
		})
	}
}

// The reaper must leave alone names it does not own and namespaces of live
// processes; with no namespace created here, nothing is deleted.
func TestReapStaleNamespacesIgnoresLiveAndForeign(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("iproute2 not installed")
	}
	var logged []string
	// The pattern only matches this process's own PID, which is alive.
	own := regexp.MustCompile(`^harnesstest(` + strconv.Itoa(os.Getpid()) + `)-x$`)
	ReapStaleNamespaces(context.Background(), own, func(f string, _ ...any) { logged = append(logged, f) })
	if len(logged) != 0 {
		t.Errorf("reaped something: %v", logged)
	}
}

func TestForwardingUnchanged(t *testing.T) {
	t.Parallel()
	f := ReadForwarding()
	if len(f) != len(ForwardingFiles) {
		t.Fatalf("snapshot has %d entries, want %d", len(f), len(ForwardingFiles))
	}
	if d := f.Changed(); len(d) != 0 {
		t.Errorf("changed with nothing touched: %v", d)
	}
	f[ForwardingFiles[0]] = "tampered"
	if d := f.Changed(); len(d) != 1 || !strings.Contains(d[0], ForwardingFiles[0]) {
		t.Errorf("Changed = %v, want one line naming %s", d, ForwardingFiles[0])
	}
}

func TestFreeAddr(t *testing.T) {
	t.Parallel()
	for _, host := range []string{"127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			t.Parallel()
			addr, err := FreeAddr(netip.MustParseAddr(host))
			if err != nil {
				t.Skipf("no %s here: %v", host, err)
			}
			ap, err := netip.ParseAddrPort(addr)
			if err != nil || ap.Addr().String() != host || ap.Port() == 0 {
				t.Errorf("FreeAddr(%s) = %q (%v)", host, addr, err)
			}
		})
	}
}

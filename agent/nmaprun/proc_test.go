//go:build linux

package nmaprun

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanorama/scanorama/agent/internal/scripttest"
)

// writeScript writes an executable shell script standing in for nmap.
func writeScript(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "fake-nmap")
	scripttest.Write(t, path, "#!/bin/sh\n"+body+"\n")
	return path
}

// waitForFile polls until path exists and is non-empty, then returns it.
func waitForFile(t *testing.T, path string) []byte {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return b
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%s did not appear", path)
	return nil
}

// waitForChild returns the pid of this process's child named comm whose
// command line contains marker, or -1 after 10 s.
func waitForChild(t *testing.T, comm, marker string) int {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			stat, err := os.ReadFile(d + "/stat")
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...
			s := string(stat)
			open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
			if open < 0 || closing < open || s[open+1:closing] != comm {
				continue
			}
			fields := strings.Fields(s[closing+1:])
			if len(fields) < 2 || fields[1] != self {
				continue
			}
			cmdline, _ := os.ReadFile(d + "/cmdline")
			if bytes.Contains(cmdline, []byte(marker)) {
				pid, _ := strconv.Atoi(filepath.Base(d))
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return -1
}

// assertGroupGone checks that no process is left in process group pgid.
func assertGroupGone(t *testing.T, pgid int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pgid, syscall.SIGKILL) // leave no orphans behind
			t.Fatalf("process group %d still exists (kill -0: %v)", pgid, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// prSetChildSubreaper is PR_SET_CHILD_SUBREAPER from <linux/prctl.h>.
const prSetChildSubreaper = 36

// becomeSubreaper makes orphaned descendants of the test process (the fake
// nmap's own children, or the fake nmap once its parent is killed) reparent
// to the test process instead of PID 1, so assertProcessGone can reap them:
// in containers PID 1 often never reaps, and zombies would pile up.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		t.Logf("PR_SET_CHILD_SUBREAPER: %v (zombies may be left to PID 1)", errno)
	}
}

// assertProcessGone checks that pid has exited; a zombie counts as exited
// and is reaped if it has become our child.
func assertProcessGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return
		}
		if s := string(stat); strings.Contains(s[strings.LastIndexByte(s, ')')+1:], " Z ") {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil)
			return
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL) // leave no orphans behind
			t.Fatalf("process %d still running: %s", pid, stat)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// execHelper re-runs the test binary as the helper of TestRunnerParentDeath.
func execHelper(t *testing.T, fake, arg string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRunner$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NMAPRUN_HELPER="+fake, "NMAPRUN_HELPER_ARG="+arg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd
}

package harness

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say where a child's output goes and how it is tied to us.
type Options struct {
	// LogPath, when set, is the file the output is appended to (created if
	// missing); otherwise the output is kept in memory.
	LogPath string
	// Pdeathsig has the kernel SIGKILL the child should this process die
	// first; the child is then forked from one long-lived locked OS thread
	// (see spawn).
	Pdeathsig bool
}

// Proc is a child process in its own process group.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string // the output file; "" when the output is in memory

	buf      *Buffer
	done     chan struct{}
	killOnce sync.Once
}

// Start starts cmd (its Stdout, Stderr and SysProcAttr are set here) in a
// new process group and reaps it when it exits.
func Start(name string, cmd *exec.Cmd, opts Options) (*Proc, error) {
	p := &Proc{Name: name, Cmd: cmd, LogPath: opts.LogPath, done: make(chan struct{})}
	var f *os.File
	if opts.LogPath != "" {
		var err error
		if f, err = os.OpenFile(opts.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		p.buf = &Buffer{}
		cmd.Stdout, cmd.Stderr = p.buf, p.buf
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := cmd.Start
	if opts.Pdeathsig {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		start = func() error { return spawn(cmd) }
	}
	if err := start(); err != nil {
		if f != nil {
			_ = f.Close()
		}
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = cmd.Wait()
		if f != nil {
			_ = f.Close()
		}
		close(p.done)
	}()
	return p, nil
}

// PID of the process.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status once Done is closed (-1 if killed by a signal).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.Cmd.ProcessState.ExitCode()
}

// Kill sends SIGKILL to the process group (its children included) and waits
// for the process to be reaped. Safe to call more than once, concurrently.
func (p *Proc) Kill() {
	p.killOnce.Do(func() {
		if !p.Exited() {
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		}
		<-p.done
	})
}

// Stop sends SIGTERM to the process and waits up to grace for it to exit;
// past that it kills the process group and returns an error saying so.
func (p *Proc) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s of SIGTERM", p.Name, grace)
	}
}

// Output is everything the process has written so far.
func (p *Proc) Output() string {
	if p.buf != nil {
		return p.buf.String()
	}
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the output, for error messages.
func (p *Proc) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Output(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// WaitFor polls the output until it contains substr. It fails when the
// process exits first or within has passed.
func (p *Proc) WaitFor(substr string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		if strings.Contains(p.Output(), substr) {
			return nil
		}
		select {
		case <-p.done:
			if strings.Contains(p.Output(), substr) {
				return nil
			}
			return fmt.Errorf("%s exited before writing %q:\n%s", p.Name, substr, p.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not write %q within %s:\n%s", p.Name, substr, within, p.Output())
		}
	}
}

// HWMMB is the process's peak resident set size (VmHWM) in MiB.
func (p *Proc) HWMMB() (float64, error) {
	kb, err := StatusKB(p.PID(), "VmHWM")
	return float64(kb) / 1024, err
}

// RSSMB is the process's current resident set size (VmRSS) in MiB.
func (p *Proc) RSSMB() (float64, error) {
	kb, err := StatusKB(p.PID(), "VmRSS")
	return float64(kb) / 1024, err
}

// StatusKB returns the kB value of a /proc/PID/status field (VmHWM, VmRSS).
func StatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", field, v, err)
		}
		return kb, nil
	}
	return 0, errors.New(field + " not found in /proc/" + fmt.Sprint(pid) + "/status")
}

// Buffer is an io.Writer safe for a child's stdout and stderr at once.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	spawnOnce sync.Once
	spawnReq  chan func()
)

// spawn starts cmd from one OS thread that lives as long as this process.
// Pdeathsig fires when the thread that forked the child exits, not the
// process; forking from a goroutine's arbitrary thread could kill the child
// early should the runtime ever retire that thread.
func spawn(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReq = make(chan func())
		go func() {
			runtime.LockOSThread() // never unlocked: the thread stays until exit
			for f := range spawnReq {
				f()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnReq <- func() { errc <- cmd.Start() }
	return <-errc
}

// SampleRSS polls the process's VmRSS every interval, as a cross-check of
// VmHWM, until the returned function is called; that returns the largest
// sample in MiB (0 if none could be read).
func (p *Proc) SampleRSS(every time.Duration) (stop func() float64) {
	var maxKB int64
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if kb, err := StatusKB(p.PID(), "VmRSS"); err == nil && kb > maxKB {
				maxKB = kb
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	var once sync.Once
	return func() float64 {
		once.Do(func() { close(quit); <-finished })
		return float64(maxKB) / 1024
	}
}

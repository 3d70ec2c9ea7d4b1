//go:build unix

package nmaprun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
)

// waitDelay bounds how long Run waits for nmap's output pipes to close
// after nmap was killed or exited.
const waitDelay = time.Second

// Runner runs nmap. The zero value runs "nmap" from PATH without logging.
type Runner struct {
	// NmapPath is the nmap binary; empty means "nmap" looked up in PATH.
	NmapPath string
	// Logger receives debug and warning messages; nil disables logging.
	Logger hclog.Logger
}

// Run starts nmap with job.Args, streams its XML output to ev (see
// [Decode]) and waits for it to exit.
//
// nmap runs in its own process group. When ctx is done, or ev.Host returns an
// error, or the output cannot be decoded, the whole group is killed with
// SIGKILL; on Linux nmap is also killed if the agent dies. Run returns once
// nmap has exited: for a cancelled run the error wraps ctx.Err(); when nmap
// exits with a failure status, the error includes the tail of its stderr.
// The Summary holds whatever was learned before an error.
func (r *Runner) Run(ctx context.Context, job Job, ev Events) (Summary, error) {
	if ev == nil {
		return Summary{}, errors.New("nmaprun: Run called with nil Events")
	}
	if err := ctx.Err(); err != nil {
		return Summary{}, fmt.Errorf("nmap not started: %w", err)
	}
	log := r.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	path := r.NmapPath
	if path == "" {
		path = "nmap"
	}

	// The parent-death signal fires when the thread that forked nmap exits,
	// not the process. Keep this goroutine (and nothing else) on that thread
	// until nmap has been reaped, so the signal means "agent died".
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := exec.CommandContext(ctx, path, job.Args...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error { return killGroup(cmd.Process.Pid) }
	cmd.WaitDelay = waitDelay
	stderr := newTailBuffer(stderrTail)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return Summary{}, fmt.Errorf("creating nmap stdout pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return Summary{}, fmt.Errorf("starting nmap: %w", err)
	}
	pid := cmd.Process.Pid
	log.Debug("nmap started", "pid", pid, "args", job.Args)

	sum, decErr := Decode(ctx, stdout, job.ExpectedHosts, ev)
	var evErr *eventError
	killed := false
	if ctx.Err() == nil && (errors.As(decErr, &evErr) || !outputEnded(decErr)) {
		// We stop reading while nmap may still be scanning: it would block on
		// a full pipe, so kill it instead.
		if err := killGroup(pid); err != nil {
			log.Warn("killing nmap process group failed", "pgid", pid, "error", err)
		}
		killed = true
	} else {
		// nmap is finishing on its own (or being cancelled): consume what it
		// still writes so it never blocks on the pipe.
		_, _ = io.Copy(io.Discard, stdout)
	}
	waitErr := cmd.Wait()
	sum.Args = slices.Clone(job.Args)
	log.Debug("nmap exited", "pid", pid, "wait", waitErr, "decode", decErr)

	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return sum, fmt.Errorf("nmap scan cancelled: %w", ctx.Err())
	case errors.As(decErr, &evErr):
		return sum, fmt.Errorf("nmap scan aborted: %w", decErr)
	case waitErr != nil && (!killed || errors.As(waitErr, &exitErr) && exitErr.Exited()):
		err := fmt.Errorf("nmap failed: %w", waitErr)
		if decErr != nil {
			err = fmt.Errorf("%w; %w", err, decErr)
		}
		return sum, withStderr(err, stderr)
	case decErr != nil:
		return sum, withStderr(fmt.Errorf("reading nmap output: %w", decErr), stderr)
	}
	return sum, nil
}

func withStderr(err error, stderr *tailBuffer) error {
	if s := stderr.String(); s != "" {
		return fmt.Errorf("%w (stderr: %q)", err, s)
	}
	return err
}

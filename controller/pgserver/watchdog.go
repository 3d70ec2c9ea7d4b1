package pgserver

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// watchdogScript waits for EOF on stdin, which happens when the owning
// process closes the pipe or exits for any reason (including SIGKILL). It
// then fast-stops the postmaster (immediate after 10 s) and removes the given
// directories. $1 is pgdata, the remaining arguments are directories to
// delete. It runs as the owning process's user: root may signal the
// postmaster and delete root-owned directories.
const watchdogScript = `read -r _ || :
pidfile="$1/postmaster.pid"
shift
if [ -r "$pidfile" ]; then
	pid=$(head -n 1 "$pidfile")
	case "$pid" in ''|*[!0-9]*) pid= ;; esac
	if [ -n "$pid" ]; then
		comm=postgres
		[ -r "/proc/$pid/comm" ] && comm=$(cat "/proc/$pid/comm" 2>/dev/null)
		if [ "$comm" = postgres ]; then
			kill -INT "$pid" 2>/dev/null
			n=0
			while kill -0 "$pid" 2>/dev/null && [ "$n" -lt 100 ]; do sleep 0.1; n=$((n+1)); done
			kill -QUIT "$pid" 2>/dev/null
		fi
	fi
fi
rm -rf -- "$@"
`

// watchdog is the process that cleans up an Ephemeral cluster.
type watchdog struct {
	cmd  *exec.Cmd
	pipe *os.File // write end; closing it (or exiting) triggers the cleanup
	once sync.Once
	err  error
}

// liveWatchdogs keeps every armed watchdog reachable: if the pipe's *os.File
// were garbage collected its finalizer would close the fd and fire the
// watchdog while the cluster is still in use.
var liveWatchdogs sync.Map

// startWatchdog arms a watchdog for pgdata that deletes dirs.
func startWatchdog(pgdata string, dirs []string) (*watchdog, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("watchdog pipe: %w", err)
	}
	args := append([]string{"-c", watchdogScript, "pgserver-watchdog", pgdata}, dirs...)
	cmd := exec.Command("/bin/sh", args...)
	cmd.Stdin = r
	// Stdout and stderr stay nil (/dev/null): inheriting ours would keep
	// `go test` waiting for the pipe to close after the test binary exits.
	configureCmd(cmd, nil)
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("start watchdog: %w", err)
	}
	_ = r.Close()
	d := &watchdog{cmd: cmd, pipe: w}
	liveWatchdogs.Store(d, struct{}{})
	return d, nil
}

// release triggers the cleanup now and waits for it to finish.
func (d *watchdog) release() error {
	d.once.Do(func() {
		closeErr := d.pipe.Close()
		waitErr := d.cmd.Wait()
		liveWatchdogs.Delete(d)
		if err := errors.Join(closeErr, waitErr); err != nil {
			d.err = fmt.Errorf("watchdog: %w", err)
		}
	})
	return d.err
}

package pgserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	defaultStartTimeout = 5 * time.Minute // crash recovery of a big cluster can be slow
	defaultStopTimeout  = 2 * time.Minute
	// transientWindow bounds retries while a killed postmaster is reaped or
	// its children release shared memory.
	transientWindow = 30 * time.Second
	maxPortAttempts = 5
	pollInterval    = 100 * time.Millisecond
)

// postmasterPID reads the first line of pgdata/postmaster.pid; 0 if none.
func postmasterPID(pgdata string) int {
	f, err := os.Open(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// staleShmID returns the System V shared memory id recorded in a
// postmaster.pid whose postmaster is gone, or -1.
func staleShmID(pgdata string) int {
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return -1
	}
	lines := strings.Split(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || len(lines) < 7 {
		return -1
	}
	if st, _ := inspectProcess(pid); st != procGone {
		return -1
	}
	// Line 7: "<key> <shmid>".
	fields := strings.Fields(lines[6])
	if len(fields) != 2 {
		return -1
	}
	id, err := strconv.Atoi(fields[1])
	if err != nil || id < 0 {
		return -1
	}
	return id
}

// isPostgres reports whether a process command name belongs to PostgreSQL.
// An empty name (no /proc) is given the benefit of the doubt.
func isPostgres(comm string) bool {
	return comm == "" || comm == "postgres" || comm == "postmaster"
}

// timeoutArg converts the time left in ctx to pg_ctl's -t seconds.
func timeoutArg(ctx context.Context, def time.Duration) string {
	d := def
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// clearStale makes the data directory startable: it stops a postmaster left
// running by a crashed owner, waits for a killed one to be reaped (PostgreSQL
// treats an unreaped pid as alive), and removes a postmaster.pid whose pid now
// belongs to an unrelated process.
func (s *Server) clearStale(ctx context.Context) error {
	pid := postmasterPID(s.lay.pgdata)
	if pid == 0 {
		return nil
	}
	state, comm := inspectProcess(pid)
	switch {
	case state == procGone:
		s.log.Info("recovering from stale postmaster.pid (server was killed)", "stale_pid", pid)
		return nil
	case state == procRunning && !isPostgres(comm):
		s.log.Warn("postmaster.pid names an unrelated process; removing the stale lock file", "stale_pid", pid, "process", comm)
		if err := os.Remove(filepath.Join(s.lay.pgdata, "postmaster.pid")); err != nil && !isNotExist(err) {
			return fmt.Errorf("remove stale postmaster.pid: %w", err)
		}
		return nil
	case state == procRunning:
		s.log.Warn("a PostgreSQL server is still running for this data dir (its previous owner exited without stopping it); shutting it down", "pid", pid)
		_, err := s.stopPostmaster(ctx)
		return err
	}
	s.log.Info("waiting for killed postmaster to be reaped", "pid", pid)
	if err := waitGone(ctx, pid, transientWindow); err != nil {
		s.log.Warn("killed postmaster is still not reaped; trying to start anyway", "pid", pid, "error", err)
	}
	return nil
}

// waitGone polls until pid no longer exists (zombies count as existing).
func waitGone(ctx context.Context, pid int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if st, _ := inspectProcess(pid); st == procGone {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still exists after %s", pid, limit)
		}
		if err := sleepCtx(ctx, pollInterval); err != nil {
			return err
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return fmt.Errorf("wait: %w", ctx.Err())
	case <-t.C:
		return nil
	}
}

// startPostmaster runs pg_ctl start -w. An automatically chosen port that
// turns out to be taken is replaced; failures caused by a previous postmaster
// that is still going away are retried for a while. It returns the port the
// server listens on.
func (s *Server) startPostmaster(ctx context.Context, port int, auto bool) (int, error) {
	deadline := time.Now().Add(transientWindow)
	for attempt := 1; ; attempt++ {
		if err := s.writeConfig(port); err != nil {
			return 0, err
		}
		offset := fileSize(s.lay.logFile)
		// Address and port also go on the command line, which outranks every
		// config file, including ALTER SYSTEM's postgresql.auto.conf.
		serverArgs := fmt.Sprintf("-c listen_addresses=%s -p %d", ListenAddress, port)
		err := s.run.run(ctx, s.lay.clusterDir, s.bin.pgCtl,
			"start", "-D", s.lay.pgdata, "-l", s.lay.logFile, "-o", serverArgs, "-w", "-s", "-t", timeoutArg(ctx, defaultStartTimeout))
		if err == nil {
			return port, nil
		}
		serverLog := readFrom(s.lay.logFile, offset)
		switch {
		case ctx.Err() != nil:
		case auto && portTaken(serverLog) && attempt < maxPortAttempts:
			next, perr := freePort()
			if perr != nil {
				return 0, perr
			}
			s.log.Info("port was taken; picking another", "port", port, "next_port", next)
			port = next
			continue
		case transientStartFailure(serverLog) && time.Now().Before(deadline):
			s.log.Debug("previous postmaster is still going away; retrying start", "attempt", attempt, "reason", lastLine(serverLog))
			if serr := sleepCtx(ctx, 2*pollInterval); serr == nil {
				continue
			}
		}
		// pg_ctl may give up (timeout) while the postmaster keeps starting:
		// do not leave it running behind our back.
		if pid := postmasterPID(s.lay.pgdata); pid != 0 {
			if st, comm := inspectProcess(pid); st == procRunning && isPostgres(comm) {
				stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				_, _ = s.stopPostmaster(stopCtx)
				cancel()
			}
		}
		msg := fmt.Errorf("start PostgreSQL on %s:%d: %w", ListenAddress, port, err)
		if t := tail(serverLog); t != "" {
			msg = fmt.Errorf("%w\nserver log (%s):\n%s", msg, s.lay.logFile, indent(t))
		}
		return 0, msg
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func portTaken(serverLog string) bool {
	return strings.Contains(serverLog, "Address already in use") || strings.Contains(serverLog, "could not bind")
}

func transientStartFailure(serverLog string) bool {
	return strings.Contains(serverLog, `lock file "postmaster.pid" already exists`) ||
		strings.Contains(serverLog, "pre-existing shared memory block")
}

// stopPostmaster shuts the server down in fast mode, falling back to
// immediate mode, and reports whether a running postmaster was stopped. A
// postmaster that is already gone (or killed and not yet reaped) counts as
// stopped: pg_ctl would otherwise wait for its pid file to vanish until the
// timeout.
func (s *Server) stopPostmaster(ctx context.Context) (bool, error) {
	pid := postmasterPID(s.lay.pgdata)
	if pid == 0 {
		return false, nil
	}
	if st, comm := inspectProcess(pid); st != procRunning || !isPostgres(comm) {
		s.log.Debug("postmaster is not running; nothing to stop", "pid", pid, "state", st, "process", comm)
		return false, nil
	}
	begin := time.Now()
	defer func() { s.log.Debug("pg_ctl stop finished", "pid", pid, "elapsed", time.Since(begin)) }()
	fastErr := s.run.run(ctx, s.lay.clusterDir, s.bin.pgCtl,
		"stop", "-D", s.lay.pgdata, "-m", "fast", "-w", "-s", "-t", timeoutArg(ctx, defaultStopTimeout))
	if fastErr == nil {
		return true, nil
	}
	if st, _ := inspectProcess(pid); st != procRunning {
		return true, nil
	}
	s.log.Warn("fast shutdown failed; forcing an immediate shutdown", "pid", pid, "error", fastErr)
	immCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	immErr := s.run.run(immCtx, s.lay.clusterDir, s.bin.pgCtl,
		"stop", "-D", s.lay.pgdata, "-m", "immediate", "-w", "-s", "-t", timeoutArg(immCtx, 0))
	if immErr == nil {
		return true, nil
	}
	return false, fmt.Errorf("stop PostgreSQL (pid %d): %w", pid, errors.Join(fastErr, immErr))
}

//go:build unix

package pgserver

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"strconv"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on path. The lock is
// released when the returned file is closed or the process dies.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("lock %s: %w", path, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// configureCmd puts the child in its own process group (so a terminal's
// Ctrl-C reaches only us and we decide the shutdown order) and, when cred is
// set, switches it to that user.
func configureCmd(cmd *exec.Cmd, cred *ids) {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if cred != nil {
		attr.Credential = &syscall.Credential{Uid: cred.uid, Gid: cred.gid, Groups: cred.groups}
	}
	cmd.SysProcAttr = attr
}

// fileOwner returns the numeric owner of fi.
func fileOwner(fi fs.FileInfo) (uid, gid uint32, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Uid, st.Gid, true
}

// procState describes a process as seen from outside.
type procState int

const (
	procGone    procState = iota // no such process
	procZombie                   // exited, not yet reaped: still blocks a new postmaster
	procRunning                  // alive
)

// inspectProcess reports pid's state and command name. The name is empty when
// /proc is unavailable.
func inspectProcess(pid int) (procState, string) {
	if pid <= 0 {
		return procGone, ""
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil {
		// Format: "pid (comm) S ..."; comm may contain spaces and parens.
		open, closing := bytes.IndexByte(data, '('), bytes.LastIndexByte(data, ')')
		if open < 0 || closing < open || closing+2 >= len(data) {
			return procRunning, ""
		}
		comm := string(data[open+1 : closing])
		if data[closing+2] == 'Z' || data[closing+2] == 'X' {
			return procZombie, comm
		}
		return procRunning, comm
	}
	switch err := syscall.Kill(pid, 0); {
	case err == nil, errors.Is(err, syscall.EPERM):
		return procRunning, ""
	default:
		return procGone, ""
	}
}

//go:build unix

package nmaprun

import (
	"errors"
	"syscall"
)

// killGroup sends SIGKILL to every process in the process group led by pid.
// It must only be called before the leader has been reaped, while its pid
// (and so the group id) cannot have been reused.
func killGroup(pid int) error {
	if pid <= 0 {
		return errors.New("nmaprun: invalid pid")
	}
	err := syscall.Kill(-pid, syscall.SIGKILL)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

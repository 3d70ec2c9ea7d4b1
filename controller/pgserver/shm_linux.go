package pgserver

import (
	"fmt"
	"syscall"
)

// removeShm deletes a System V shared memory segment (IPC_RMID). A
// PostgreSQL killed with SIGKILL leaves its small segment behind; the next
// start on the same data dir would remove it, but Destroy deletes the data
// dir so nobody else will.
func removeShm(id int) error {
	const ipcRMID = 0
	if _, _, errno := syscall.Syscall(syscall.SYS_SHMCTL, uintptr(id), ipcRMID, 0); errno != 0 {
		return fmt.Errorf("remove shared memory segment %d: %w", id, errno)
	}
	return nil
}

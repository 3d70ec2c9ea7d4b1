//go:build unix

package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// secureDir makes sure the opened spool directory d is private: it must be
// owned by the effective user, and its mode is forced to 0700. The change is
// made through the open descriptor, so it applies to the directory that was
// checked even if the path is replaced meanwhile.
func secureDir(d *os.File, fi fs.FileInfo, log hclog.Logger) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("spool: stat %s: no owner information", d.Name())
	}
	if euid := os.Geteuid(); int64(st.Uid) != int64(euid) {
		return fmt.Errorf("spool: directory %s is owned by uid %d, not by this process (uid %d)", d.Name(), st.Uid, euid)
	}
	if perm := fi.Mode().Perm(); perm != dirPerm {
		if err := d.Chmod(dirPerm); err != nil {
			return fmt.Errorf("spool: set mode of %s to %v: %w", d.Name(), fs.FileMode(dirPerm), err)
		}
		log.Warn("spool directory had wrong permissions; fixed", "path", d.Name(), "old", perm, "new", fs.FileMode(dirPerm))
	}
	return nil
}

// lockDir takes an exclusive, non-blocking flock on the directory. It is
// released when d is closed or the process dies.
func lockDir(d *os.File) error {
	if err := syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("spool: lock %s: %w", d.Name(), ErrLocked)
		}
		return fmt.Errorf("spool: lock %s: %w", d.Name(), err)
	}
	return nil
}

// syncDir fsyncs a directory so that entries created, renamed or removed in
// it survive a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: open directory %s for sync: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("spool: sync directory %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("spool: close directory %s: %w", dir, err)
	}
	return nil
}

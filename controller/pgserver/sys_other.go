//go:build !unix

package pgserver

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
)

var errUnsupported = fmt.Errorf("managed PostgreSQL needs a unix system: %w", errors.ErrUnsupported)

func lockDir(string) (*os.File, error) { return nil, errUnsupported }

func configureCmd(*exec.Cmd, *ids) {}

func fileOwner(fs.FileInfo) (uid, gid uint32, ok bool) { return 0, 0, false }

type procState int

const (
	procGone procState = iota
	procZombie
	procRunning
)

func inspectProcess(int) (procState, string) { return procGone, "" }

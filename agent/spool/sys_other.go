//go:build !unix

package spool

import (
	"io/fs"
	"os"

	"github.com/hashicorp/go-hclog"
)

// secureDir is a no-op: POSIX ownership and mode bits do not apply. The
// directory keeps the access control it inherits.
func secureDir(*os.File, fs.FileInfo, hclog.Logger) error { return nil }

// lockDir is a no-op: the spool is not protected against a second process.
func lockDir(*os.File) error { return nil }

// syncDir is a no-op: directories cannot be fsynced here; file metadata is
// made durable by syncing the file itself.
func syncDir(string) error { return nil }

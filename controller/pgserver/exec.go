package pgserver

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

const (
	tailLines = 20
	tailBytes = 4096
)

// command builds an exec.Cmd for a PostgreSQL binary running as r in dir.
func (r runAs) command(ctx context.Context, dir, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = r.env()
	cmd.WaitDelay = 5 * time.Second
	configureCmd(cmd, r.credential())
	return cmd
}

// run executes bin. Errors carry the command line and the tail of its
// combined output.
func (r runAs) run(ctx context.Context, dir, bin string, args ...string) error {
	var out bytes.Buffer
	cmd := r.command(ctx, dir, bin, args...)
	cmd.Stdin = nil
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return &cmdError{cmd: filepath.Base(bin) + " " + strings.Join(args, " "), err: err, output: out.String()}
	}
	return nil
}

// cmdError is a failed PostgreSQL tool invocation.
type cmdError struct {
	cmd    string
	err    error
	output string
}

func (e *cmdError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.cmd, e.err)
	if t := tail(e.output); t != "" {
		msg += "\n" + indent(t)
	}
	return msg
}

func (e *cmdError) Unwrap() error { return e.err }

// tail returns the last lines of s, trimmed to a readable size.
func tail(s string) string {
	s = strings.TrimRight(s, "\n")
	if len(s) > tailBytes {
		s = s[len(s)-tailBytes:]
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
	}
	lines := strings.Split(s, "\n")
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}

// readFrom returns what was appended to path after offset (at most the last
// tailBytes). Missing files read as empty.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() < offset {
		offset = 0
	}
	if fi != nil && fi.Size()-offset > tailBytes {
		offset = fi.Size() - tailBytes
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(io.LimitReader(f, tailBytes))
	return string(b)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

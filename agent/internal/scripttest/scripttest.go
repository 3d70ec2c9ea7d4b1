// Package scripttest owns writing executables that tests run in place of
// nmap, so that no test can fail to start one with ETXTBSY.
package scripttest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Write writes an executable file at path holding content.
//
// The executable itself is written by a cp child, never through a file
// descriptor of this process: a parallel test forking at that moment would
// inherit the descriptor until its exec, and starting the file then fails
// with ETXTBSY ("text file busy", golang/go#22315).
func Write(t testing.TB, path, content string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), filepath.Base(path)+".src")
	if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", src, path).CombinedOutput(); err != nil {
		t.Fatalf("cp %s %s: %v: %s", src, path, err, out)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

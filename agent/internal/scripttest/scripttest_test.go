package scripttest

import (
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// Many scripts written and started at once, each while others fork: every
// one starts and prints what it holds.
func TestWrittenScriptsStartWhileOthersFork(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := filepath.Join(dir, "script-"+string(rune('a'+i%26))+string(rune('0'+i/26)))
			Write(t, path, "#!/bin/sh\necho ok\n")
			out, err := exec.Command(path).Output()
			if err != nil {
				t.Errorf("%s: %v", path, err)
				return
			}
			if string(out) != "ok\n" {
				t.Errorf("%s printed %q, want %q", path, out, "ok\n")
			}
		}()
	}
	wg.Wait()
}

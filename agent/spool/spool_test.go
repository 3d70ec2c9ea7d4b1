package spool

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestPermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) // dir does not exist yet
		wantErr string
		wantLog bool
	}{
		{name: "new directory", setup: func(*testing.T, string) {}},
		{name: "new nested directory", setup: func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Dir(dir)); err != nil { // a missing parent
				t.Fatal(err)
			}
		}},
		{name: "world-readable directory is fixed", wantLog: true, setup: func(t *testing.T, dir string) {
			mkdirMode(t, dir, 0o755)
		}},
		{name: "group-writable directory is fixed", wantLog: true, setup: func(t *testing.T, dir string) {
			mkdirMode(t, dir, 0o770)
		}},
		{name: "owner-only but read-only directory is fixed", wantLog: true, setup: func(t *testing.T, dir string) {
			mkdirMode(t, dir, 0o500)
		}},
		{name: "not a directory", wantErr: "not a directory", setup: func(t *testing.T, dir string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "owned by another user", wantErr: "is owned by uid 65534", setup: func(t *testing.T, dir string) {
			if os.Geteuid() != 0 {
				t.Skip("needs root to give a directory away")
			}
			mkdirMode(t, dir, 0o700)
			if err := os.Chown(dir, 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "parent", "spool")
			if err := os.Mkdir(filepath.Dir(dir), 0o700); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir)
			var logs bytes.Buffer
			s, err := Open(dir, WithLogger(hclog.New(&hclog.LoggerOptions{Output: &logs})))
			if tc.wantErr != "" {
				if err == nil {
					_ = s.Close()
					t.Fatal("Open succeeded, want error")
				}
				if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), dir) {
					t.Fatalf("error %q should contain %q and the path", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer s.Close()
			if got := strings.Contains(logs.String(), "wrong permissions"); got != tc.wantLog {
				t.Errorf("warning logged = %v, want %v; log: %s", got, tc.wantLog, logs.String())
			}
			checkMode(t, dir, 0o700)
			j := job{id: testJob, token: 1, batches: 1, finished: true}
			j.write(t, s)
			checkMode(t, pathOf(s, j), 0o600)
		})
	}
}

func mkdirMode(t *testing.T, dir string, mode fs.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
}

func checkMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

func TestLock(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openSpool(t, dir)
	if s2, err := Open(dir, WithLogger(hclog.NewNullLogger())); !errors.Is(err, ErrLocked) {
		if err == nil {
			_ = s2.Close()
		}
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	openSpool(t, dir) // released
}

func TestClose(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	w, err := s.Create(openMsg(testJob, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); !errors.Is(err, ErrInUse) {
		t.Fatalf("Close with open writer: %v, want ErrInUse", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	e := Entry{JobID: testJob, LeaseToken: 1}
	tests := []struct {
		name string
		op   func() error
	}{
		{"Create", func() error { _, err := s.Create(openMsg(testJob, 2)); return err }},
		{"Pending", func() error { _, err := s.Pending(); return err }},
		{"Replay", func() error { return s.Replay(e, func(*pb.StreamResultsRequest) error { return nil }) }},
		{"Remove", func() error { return s.Remove(e) }},
	}
	for _, tc := range tests {
		if err := tc.op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", tc.name, err)
		}
	}
}

// TestPendingAfterReopen simulates an agent restart: the spool is closed and
// reopened, and Pending must report every lease with its completeness.
func TestPendingAfterReopen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool")
	s := openSpool(t, dir)
	jobs := []job{
		{id: testJob, token: 1, batches: 2, finished: true},
		{id: testJob, token: 2, batches: 2},
		{id: "b2c3", token: 9, finished: true},
		{id: "c3d4", token: 1},
	}
	want := make(map[string]bool) // file name -> complete
	for i, j := range jobs {
		j.write(t, s)
		// Give each file a distinct mod time so the order is defined.
		mt := time.Now().Add(time.Duration(i-len(jobs)) * time.Minute)
		if err := os.Chtimes(pathOf(s, j), mt, mt); err != nil {
			t.Fatal(err)
		}
		want[fileName(j.id, j.token)] = j.finished
	}
	// Files Pending must ignore or flag.
	for name, data := range map[string]string{
		"notes.txt":            "x",
		"bad name.spool":       "x",
		"job-0.spool":          "x",
		"job-007.spool":        "x",
		"job-1.spool.tmp":      "x",
		"d4e5-3.spool":         fileMagic,  // crashed inside Create: torn, incomplete
		"e5f6-4.spool":         "garbage!", // damaged
		"job-" + "1" + ".jsp":  "x",
		".hidden-1.spool.swp":  "x",
		"symlink-target.bytes": "x",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("symlink-target.bytes", filepath.Join(dir, "link-1.spool")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "dir-1.spool"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openSpool(t, dir)
	active, err := s.Create(openMsg("active", 1)) // open writers are not pending
	if err != nil {
		t.Fatal(err)
	}
	defer active.Close()
	got, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	want["d4e5-3.spool"] = false
	if len(got) != len(want)+1 {
		t.Fatalf("Pending returned %d entries, want %d: %+v", len(got), len(want)+1, got)
	}
	for i, e := range got {
		name := fileName(e.JobID, e.LeaseToken)
		if i > 0 && e.ModTime.Before(got[i-1].ModTime) {
			t.Errorf("entries not sorted by mod time at %d", i)
		}
		if name == "e5f6-4.spool" {
			if e.Complete || !errors.Is(e.Err, ErrCorrupt) {
				t.Errorf("%s: %+v, want damaged", name, e)
			}
			continue
		}
		complete, ok := want[name]
		if !ok {
			t.Errorf("unexpected entry %+v", e)
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if e.Complete != complete || e.Err != nil || e.Size != fi.Size() || !e.ModTime.Equal(fi.ModTime()) {
			t.Errorf("%s: %+v, want complete=%v size=%d mtime=%v", name, e, complete, fi.Size(), fi.ModTime())
		}
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		entry  Entry
		open   bool // keep a writer open on the entry
		wantIs error
	}{
		{name: "written file", entry: Entry{JobID: testJob, LeaseToken: 1}},
		{name: "missing file", entry: Entry{JobID: testJob, LeaseToken: 2}, wantIs: fs.ErrNotExist},
		{name: "open writer", entry: Entry{JobID: testJob, LeaseToken: 3}, open: true, wantIs: ErrInUse},
		{name: "invalid entry", entry: Entry{JobID: "../x", LeaseToken: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			job{id: testJob, token: 1, finished: true}.write(t, s)
			if tc.open {
				w, err := s.Create(openMsg(tc.entry.JobID, tc.entry.LeaseToken))
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
			}
			err := s.Remove(tc.entry)
			switch {
			case tc.name == "invalid entry":
				if err == nil {
					t.Fatal("Remove of invalid entry succeeded")
				}
				return
			case tc.wantIs != nil:
				if !errors.Is(err, tc.wantIs) {
					t.Fatalf("Remove: %v, want %v", err, tc.wantIs)
				}
				return
			case err != nil:
				t.Fatalf("Remove: %v", err)
			}
			pend, err := s.Pending()
			if err != nil || len(pend) != 0 {
				t.Fatalf("Pending after Remove = %+v, %v; want none", pend, err)
			}
		})
	}
}

func TestParseFileName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		wantJob string
		wantTok int64
		ok      bool
	}{
		{testJob + "-1.spool", testJob, 1, true},
		{"job_7-9223372036854775807.spool", "job_7", 1<<63 - 1, true},
		{"a-b-c-12.spool", "a-b-c", 12, true},
		{"job-1.spoo", "", 0, false},
		{"job.spool", "", 0, false},
		{"-1.spool", "", 0, false},
		{"job-0.spool", "", 0, false},
		{"job--1.spool", "job-", 1, true}, // job id "job-"
		{"job-+1.spool", "", 0, false},
		{"job-01.spool", "", 0, false},
		{"job-9223372036854775808.spool", "", 0, false},
		{"a.b-1.spool", "", 0, false},
		{"job-1x.spool", "", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			job, tok, err := parseFileName(tc.name)
			if ok := err == nil; ok != tc.ok || job != tc.wantJob || tok != tc.wantTok {
				t.Fatalf("parseFileName(%q) = %q, %d, %v; want %q, %d, ok=%v", tc.name, job, tok, err, tc.wantJob, tc.wantTok, tc.ok)
			}
			if tc.ok && fileName(job, tok) != tc.name {
				t.Errorf("fileName does not round-trip %q", tc.name)
			}
		})
	}
}

// TestConcurrentUse exercises every method from many goroutines, for the race
// detector.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 4 {
				j := job{id: "job" + string(rune('a'+g)), token: int64(i + 1), batches: 3, finished: i%2 == 0}
				reqs, _, err := j.spool(s)
				if err != nil {
					errs <- err
					return
				}
				got, err := replayAll(s, j.entry())
				if err == nil && len(got) != len(reqs) {
					err = errors.New("short replay")
				}
				if err == nil {
					_, err = s.Pending()
				}
				if err == nil {
					err = s.Remove(j.entry())
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// One writer shared by several goroutines.
	w, err := s.Create(openMsg("shared", 1))
	if err != nil {
		t.Fatal(err)
	}
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				if err := w.AppendHosts(hostBatch(g*10+i, 2)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := w.Finish(summary(40)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := replayAll(s, Entry{JobID: "shared", LeaseToken: 1})
	if err != nil || len(got) != 1+20+1 {
		t.Fatalf("shared writer replay: %d records, %v", len(got), err)
	}
}

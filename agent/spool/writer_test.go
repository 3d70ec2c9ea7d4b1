package spool

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  job
	}{
		{"open only", job{id: testJob, token: 1}},
		{"open and summary", job{id: testJob, token: 2, finished: true}},
		{"batches, unfinished", job{id: testJob, token: 3, batches: 5}},
		{"batches and summary", job{id: testJob, token: 4, batches: 50, finished: true}},
		{"non-uuid job id", job{id: "job_42", token: 1 << 62, batches: 2, finished: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			want, _ := tc.job.write(t, s)
			got, err := replayAll(s, tc.job.entry())
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			checkReqs(t, got, want)
		})
	}
}

func TestEmptyBatchRoundTrip(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	open := openMsg(testJob, 7)
	w, err := s.Create(open)
	if err != nil {
		t.Fatal(err)
	}
	empty := &pb.HostBatch{} // encodes to a zero-length payload
	if err := w.AppendHosts(empty); err != nil {
		t.Fatal(err)
	}
	if err := w.Finish(&pb.ScanSummary{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := replayAll(s, Entry{JobID: testJob, LeaseToken: 7})
	if err != nil {
		t.Fatal(err)
	}
	checkReqs(t, got, []*pb.StreamResultsRequest{reqOpen(open), reqHosts(empty), reqSummary(&pb.ScanSummary{})})
}

func TestCreateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		open    *pb.ResultsOpen
		wantErr string
		wantIs  error
	}{
		{"nil", nil, "nil ResultsOpen", nil},
		{"empty job id", openMsg("", 1), "job id must be", nil},
		{"long job id", openMsg(strings.Repeat("a", maxJobIDLen+1), 1), "job id must be", nil},
		{"path separator", openMsg("../etc", 1), "invalid character", nil},
		{"dot", openMsg("a.b", 1), "invalid character", nil},
		{"zero lease", openMsg(testJob, 0), "lease token must be positive", nil},
		{"negative lease", openMsg(testJob, -3), "lease token must be positive", nil},
		{"duplicate", openMsg(testJob, 1), "", fs.ErrExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			if tc.wantIs != nil {
				job{id: testJob, token: 1}.write(t, s)
			}
			w, err := s.Create(tc.open)
			if err == nil {
				_ = w.Close()
				t.Fatal("Create succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not contain %q", err, tc.wantErr)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v is not %v", err, tc.wantIs)
			}
		})
	}
}

func TestCreateWhileOpen(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	w, err := s.Create(openMsg(testJob, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := s.Create(openMsg(testJob, 1)); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want fs.ErrExist", err)
	}
	// The failed Create must not have released the first writer's claim.
	if err := s.Remove(Entry{JobID: testJob, LeaseToken: 1}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Remove: %v, want ErrInUse", err)
	}
}

func TestWriterStates(t *testing.T) {
	t.Parallel()
	huge := &pb.HostBatch{Hosts: []*pb.HostResult{{Address: strings.Repeat("x", MaxRecordSize)}}}
	tests := []struct {
		name     string
		prepare  func(w *Writer) error
		op       func(w *Writer) error
		wantIs   error
		usable   bool // a later AppendHosts succeeds
		sticky   bool // a later AppendHosts returns the same error
		wantRecs int  // records replayed afterwards
	}{
		{
			name:     "append after finish",
			prepare:  func(w *Writer) error { return w.Finish(summary(0)) },
			op:       func(w *Writer) error { return w.AppendHosts(hostBatch(1, 1)) },
			wantIs:   ErrFinished,
			wantRecs: 2,
		},
		{
			name:     "finish twice",
			prepare:  func(w *Writer) error { return w.Finish(summary(0)) },
			op:       func(w *Writer) error { return w.Finish(summary(0)) },
			wantIs:   ErrFinished,
			wantRecs: 2,
		},
		{
			name:     "append after close",
			prepare:  func(w *Writer) error { return w.Close() },
			op:       func(w *Writer) error { return w.AppendHosts(hostBatch(1, 1)) },
			wantIs:   ErrClosed,
			wantRecs: 1,
		},
		{
			name:     "record too large",
			prepare:  func(*Writer) error { return nil },
			op:       func(w *Writer) error { return w.AppendHosts(huge) },
			wantIs:   ErrTooLarge,
			usable:   true,
			wantRecs: 2,
		},
		{
			name:     "nil batch",
			prepare:  func(*Writer) error { return nil },
			op:       func(w *Writer) error { return w.AppendHosts(nil) },
			usable:   true,
			wantRecs: 2,
		},
		{
			name:     "nil summary",
			prepare:  func(*Writer) error { return nil },
			op:       func(w *Writer) error { return w.Finish(nil) },
			usable:   true,
			wantRecs: 2,
		},
		{
			name: "sticky write error",
			prepare: func(w *Writer) error {
				return w.f.Close() // make the next write fail
			},
			op:       func(w *Writer) error { return w.AppendHosts(hostBatch(1, 1)) },
			wantIs:   fs.ErrClosed,
			sticky:   true,
			wantRecs: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			w, err := s.Create(openMsg(testJob, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			if err := tc.prepare(w); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			err = tc.op(w)
			if err == nil {
				t.Fatal("got nil error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Fatalf("error %v is not %v", err, tc.wantIs)
			}
			err2 := w.AppendHosts(hostBatch(2, 1))
			if tc.usable && err2 != nil {
				t.Fatalf("Writer unusable after error: %v", err2)
			}
			if !tc.usable && err2 == nil {
				t.Fatal("Writer still accepts records after error")
			}
			if tc.sticky && err2.Error() != err.Error() {
				t.Errorf("second error %q, want the sticky %q", err2, err)
			}
			got, err := replayAll(s, Entry{JobID: testJob, LeaseToken: 1})
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if len(got) != tc.wantRecs {
				t.Errorf("replayed %d records, want %d", len(got), tc.wantRecs)
			}
		})
	}
}

func TestWriterCloseIdempotent(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	w, err := s.Create(openMsg(testJob, 1))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := w.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
}

package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/protobuf/proto"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// keepBufferSize is the largest encode buffer a Writer keeps between appends;
// a larger one (from an unusually big batch) is dropped after use.
const keepBufferSize = 1 << 20

// Writer appends one job lease's results to its spool file. Every method
// that writes returns only after the data is on disk. Its methods are safe
// for concurrent use, though records are meant to come from one goroutine.
//
// A write or fsync failure is sticky: the Writer refuses further records and
// returns that error again, since what reached the disk is unknown. Whatever
// was written stays a torn tail at most, because nothing is appended after it.
type Writer struct {
	s    *Spool
	name string
	path string

	mu       sync.Mutex
	f        *os.File // nil once closed
	buf      []byte
	off      int64 // bytes written and synced
	finished bool
	err      error // sticky write or sync error
}

// Create starts the spool file for the job lease named by open, records open
// as its first record and makes the file durable (file and directory fsync)
// before returning. It fails with an error matching fs.ErrExist if the lease
// already has a spool file.
func (s *Spool) Create(open *pb.ResultsOpen) (*Writer, error) {
	if open == nil {
		return nil, errors.New("spool: create: nil ResultsOpen")
	}
	if err := validateID(open.GetJobId(), open.GetLeaseToken()); err != nil {
		return nil, err
	}
	name := fileName(open.GetJobId(), open.GetLeaseToken())
	path := filepath.Join(s.dir, name)
	if err := s.reserve(name, path); err != nil {
		return nil, err
	}
	w, err := s.create(name, path, open)
	if err != nil {
		s.release(name)
		return nil, err
	}
	return w, nil
}

func (s *Spool) reserve(name, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return ErrClosed
	}
	if _, ok := s.active[name]; ok {
		return fmt.Errorf("spool: create %s: already open: %w", path, fs.ErrExist)
	}
	s.active[name] = struct{}{}
	return nil
}

func (s *Spool) release(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.active, name)
}

func (s *Spool) create(name, path string, open *pb.ResultsOpen) (*Writer, error) {
	buf, err := appendRecord([]byte(fileMagic), kindOpen, open)
	if err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err) // "open <path>: ..."
	}
	w := &Writer{s: s, name: name, path: path, f: f}
	if err := f.Chmod(filePerm); err != nil { // in case the umask removed owner bits
		return nil, w.abandon(fmt.Errorf("spool: %w", err))
	}
	if err := w.writeSync(buf); err != nil {
		return nil, w.abandon(err)
	}
	if err := syncDir(s.dir); err != nil {
		return nil, w.abandon(err)
	}
	return w, nil
}

// abandon closes and deletes the file of a Writer that failed to start, so
// that no file claims a job was spooled when Create reported failure. It
// returns err.
func (w *Writer) abandon(err error) error {
	_ = w.f.Close()
	_ = os.Remove(w.path)
	w.f = nil
	return err
}

// AppendHosts appends one host batch and fsyncs it. A batch larger than
// [MaxRecordSize] fails with [ErrTooLarge] and leaves the Writer usable.
func (w *Writer) AppendHosts(batch *pb.HostBatch) error {
	if batch == nil {
		return fmt.Errorf("spool: append to %s: nil HostBatch", w.path)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.append(kindHosts, batch)
}

// Finish appends the summary record, which marks the file complete, and
// fsyncs it. No record can be appended afterwards.
func (w *Writer) Finish(summary *pb.ScanSummary) error {
	if summary == nil {
		return fmt.Errorf("spool: finish %s: nil ScanSummary", w.path)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.append(kindSummary, summary); err != nil {
		return err
	}
	w.finished = true
	return nil
}

func (w *Writer) append(k kind, m proto.Message) error {
	switch {
	case w.f == nil:
		return ErrClosed
	case w.err != nil:
		return w.err
	case w.finished:
		return fmt.Errorf("spool: append to %s: %w", w.path, ErrFinished)
	}
	buf, err := appendRecord(w.buf[:0], k, m)
	if err != nil {
		return fmt.Errorf("spool: append to %s: %w", w.path, err)
	}
	err = w.writeSync(buf)
	if cap(buf) <= keepBufferSize {
		w.buf = buf
	} else {
		w.buf = nil
	}
	return err
}

// writeSync writes b at the end of the file and fsyncs. A failure is sticky.
func (w *Writer) writeSync(b []byte) error {
	if _, err := w.f.Write(b); err != nil {
		w.err = fmt.Errorf("spool: write %s at offset %d: %w", w.path, w.off, err)
		return w.err
	}
	if err := w.f.Sync(); err != nil {
		w.err = fmt.Errorf("spool: sync %s: %w", w.path, err)
		return w.err
	}
	w.off += int64(len(b))
	return nil
}

// Close closes the file. A file closed without [Writer.Finish] stays in the
// spool as incomplete until removed. Closing a closed Writer returns nil.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f, w.buf = nil, nil
	w.s.release(w.name)
	if err != nil {
		return fmt.Errorf("spool: close %s: %w", w.path, err)
	}
	return nil
}

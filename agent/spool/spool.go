package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// Spool is an open spool directory. Its methods are safe for concurrent use.
type Spool struct {
	dir string
	log hclog.Logger

	mu     sync.Mutex
	lock   *os.File            // the directory, flocked; nil once closed
	active map[string]struct{} // file names with an open Writer
}

// Option configures [Open].
type Option func(*options)

type options struct {
	log hclog.Logger
}

// WithLogger sets the logger for warnings (a directory whose permissions had
// to be fixed, unexpected files). The default is hclog.Default().
func WithLogger(l hclog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Open opens the spool in dir, creating it (and missing parents) with mode
// 0700. An existing directory must be owned by the process's effective user;
// if its mode is not 0700 it is changed to 0700 and a warning is logged. The
// directory is locked against other processes until [Spool.Close]; a second
// Open of the same directory fails with [ErrLocked].
func Open(dir string, opts ...Option) (*Spool, error) {
	o := options{log: hclog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if dir == "" {
		return nil, errors.New("spool: empty directory path")
	}
	dir = filepath.Clean(dir)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("spool: create directory %s: %w", dir, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: open directory %s: %w", dir, err)
	}
	if err := prepareDir(d, o.log); err != nil {
		_ = d.Close()
		return nil, err
	}
	return &Spool{dir: dir, log: o.log, lock: d, active: make(map[string]struct{})}, nil
}

func prepareDir(d *os.File, log hclog.Logger) error {
	fi, err := d.Stat()
	if err != nil {
		return fmt.Errorf("spool: stat %s: %w", d.Name(), err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("spool: %s is not a directory", d.Name())
	}
	if err := secureDir(d, fi, log); err != nil {
		return err
	}
	return lockDir(d)
}

// Dir returns the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Close releases the directory lock. It fails with [ErrInUse] while any
// [Writer] is open. Closing a closed Spool returns nil.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	if n := len(s.active); n > 0 {
		return fmt.Errorf("spool: close %s: %d writers open: %w", s.dir, n, ErrInUse)
	}
	err := s.lock.Close()
	s.lock = nil
	if err != nil {
		return fmt.Errorf("spool: close %s: %w", s.dir, err)
	}
	return nil
}

func (s *Spool) ensureOpen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return ErrClosed
	}
	return nil
}

// Entry describes one spool file. [Spool.Replay] and [Spool.Remove] use only
// JobID and LeaseToken, so an Entry for a file written in this process can be
// built from its ResultsOpen.
type Entry struct {
	JobID      string
	LeaseToken int64
	// Complete reports that the file ends with an intact summary record and
	// every record before it is intact: it can be replayed in full.
	Complete bool
	Size     int64
	ModTime  time.Time
	// Err is set if the file could not be read or is damaged other than by a
	// torn tail (errors.Is(Err, ErrCorrupt)). Such an entry is not Complete.
	Err error
}

func (e Entry) name() (string, error) {
	if err := validateID(e.JobID, e.LeaseToken); err != nil {
		return "", err
	}
	return fileName(e.JobID, e.LeaseToken), nil
}

// Pending lists the spool files that no Writer of this Spool has open, oldest
// first. Each file is read once in full, with bounded memory, and checked
// exactly as [Spool.Replay] would check it, to find out whether it is
// complete; a damaged file is listed with Err set rather than failing the
// whole listing.
func (s *Spool) Pending() ([]Entry, error) {
	if err := s.ensureOpen(); err != nil {
		return nil, err
	}
	des, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("spool: list %s: %w", s.dir, err)
	}
	entries := make([]Entry, 0, len(des))
	for _, de := range des {
		e, ok := s.entry(de)
		if ok {
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b Entry) int {
		if c := a.ModTime.Compare(b.ModTime); c != 0 {
			return c
		}
		return strings.Compare(fileName(a.JobID, a.LeaseToken), fileName(b.JobID, b.LeaseToken))
	})
	return entries, nil
}

// entry inspects one directory entry; ok is false for entries that are not
// spool files or are open for writing.
func (s *Spool) entry(de fs.DirEntry) (e Entry, ok bool) {
	name := de.Name()
	if !strings.HasSuffix(name, fileSuffix) {
		return e, false
	}
	jobID, token, err := parseFileName(name)
	if err != nil || !de.Type().IsRegular() {
		s.log.Warn("ignoring unexpected file in spool directory", "path", filepath.Join(s.dir, name), "type", de.Type(), "error", err)
		return e, false
	}
	if s.isActive(name) {
		return e, false
	}
	info, err := de.Info()
	if errors.Is(err, fs.ErrNotExist) { // removed meanwhile
		return e, false
	}
	e = Entry{JobID: jobID, LeaseToken: token}
	if err != nil {
		e.Err = fmt.Errorf("spool: stat %s: %w", filepath.Join(s.dir, name), err)
		return e, true
	}
	e.Size, e.ModTime = info.Size(), info.ModTime()
	e.Complete, e.Err = scan(filepath.Join(s.dir, name), jobID, token, nil)
	if errors.Is(e.Err, fs.ErrNotExist) { // removed meanwhile
		return e, false
	}
	return e, true
}

func (s *Spool) isActive(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.active[name]
	return ok
}

// Remove deletes the file of e, once the controller has acknowledged the
// job's commit or rejected it for good, and fsyncs the directory so that the
// file does not reappear after a crash. It fails with [ErrInUse] while a
// Writer has the file open, and with an error matching fs.ErrNotExist if
// there is no such file.
func (s *Spool) Remove(e Entry) error {
	name, err := e.name()
	if err != nil {
		return err
	}
	path := filepath.Join(s.dir, name)
	if err := s.remove(name, path); err != nil {
		return err
	}
	return syncDir(s.dir)
}

func (s *Spool) remove(name, path string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch _, active := s.active[name]; {
	case s.lock == nil:
		return ErrClosed
	case active:
		return fmt.Errorf("spool: remove %s: %w", path, ErrInUse)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("spool: %w", err) // "remove <path>: ..."
	}
	return nil
}

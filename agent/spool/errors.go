package spool

import (
	"errors"
	"fmt"
)

var (
	// ErrCorrupt is matched (with errors.Is) by every [*CorruptError].
	ErrCorrupt = errors.New("spool: corrupt file")
	// ErrLocked means another process holds the spool directory open.
	ErrLocked = errors.New("spool: directory in use by another process")
	// ErrClosed is returned by methods of a closed [Spool] or [Writer].
	ErrClosed = errors.New("spool: closed")
	// ErrInUse is returned when removing a file that a [Writer] still has
	// open, or when closing a [Spool] that still has open writers.
	ErrInUse = errors.New("spool: file open for writing")
	// ErrFinished is returned when appending to a [Writer] after
	// [Writer.Finish].
	ErrFinished = errors.New("spool: job already finished")
	// ErrTooLarge is returned for a record whose payload exceeds
	// [MaxRecordSize]. Nothing is written.
	ErrTooLarge = errors.New("spool: record too large")
)

// CorruptError reports damage to a spool file that is not a torn tail.
type CorruptError struct {
	Path   string // file path
	Offset int64  // byte offset of the damaged record (or 0 for the file header)
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("spool: corrupt file %s at offset %d: %s", e.Path, e.Offset, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

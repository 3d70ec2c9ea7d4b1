// Package doctor checks an agent's host before it takes work: nmap and its
// version, raw sockets, the spool directory, each controller's reachability
// and clock, and the TLS material. Each check yields one line: OK, WARN
// (works, but worth knowing) or FAIL with what to fix.
package doctor

import (
	"context"
	"fmt"
	"io"
	"time"
)

// Status of one check.
type Status int

// Check outcomes; only Fail makes the doctor exit non-zero.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "OK"
	case Warn:
		return "WARN"
	}
	return "FAIL"
}

// Result is one check's line.
type Result struct {
	Check  string
	Status Status
	Detail string
}

// Report prints one line per result and reports whether any failed.
func Report(w io.Writer, results []Result) (failed bool) {
	for _, r := range results {
		fmt.Fprintf(w, "%-4s %s: %s\n", r.Status, r.Check, r.Detail)
		failed = failed || r.Status == Fail
	}
	return failed
}

// Okf makes one check's line with status OK.
func Okf(check, format string, args ...any) Result {
	return Result{Check: check, Status: OK, Detail: fmt.Sprintf(format, args...)}
}

// Warnf makes one check's line with status Warn.
func Warnf(check, format string, args ...any) Result {
	return Result{Check: check, Status: Warn, Detail: fmt.Sprintf(format, args...)}
}

// Failf makes one check's line with status Fail.
func Failf(check, format string, args ...any) Result {
	return Result{Check: check, Status: Fail, Detail: fmt.Sprintf(format, args...)}
}

// within runs f with a timeout of its own.
func within(ctx context.Context, d time.Duration, f func(context.Context) Result) Result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(ctx)
}

package spool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Replay streams the records of e's file to fn in order: the ResultsOpen,
// each HostBatch, then the ScanSummary if the file is complete. Records are
// read one at a time, so memory use is bounded by [MaxRecordSize] whatever
// the file size. fn may keep the messages it is given.
//
// A torn tail ends the stream without error; a file that holds no intact
// record at all yields nothing. Damage elsewhere, or an open record that does
// not name e's job and lease, stops the stream with a [*CorruptError] after
// the records before it were delivered. An error returned by fn stops the
// stream and is returned unchanged.
//
// Replay reads e's file as it is when Replay starts; it does not require the
// file to be closed, but is meant for files listed by [Spool.Pending].
func (s *Spool) Replay(e Entry, fn func(*pb.StreamResultsRequest) error) error {
	if fn == nil {
		return errors.New("spool: replay: nil callback")
	}
	name, err := e.name()
	if err != nil {
		return err
	}
	if err := s.ensureOpen(); err != nil {
		return err
	}
	_, err = scan(filepath.Join(s.dir, name), e.JobID, e.LeaseToken, fn)
	return err
}

// decode unmarshals a record into a fresh request.
func decode(rec record) (*pb.StreamResultsRequest, error) {
	var (
		m   proto.Message
		req *pb.StreamResultsRequest
	)
	switch rec.kind {
	case kindOpen:
		v := new(pb.ResultsOpen)
		m, req = v, &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: v}}
	case kindHosts:
		v := new(pb.HostBatch)
		m, req = v, &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: v}}
	case kindSummary:
		v := new(pb.ScanSummary)
		m, req = v, &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: v}}
	default:
		return nil, fmt.Errorf("unknown record kind %d", uint8(rec.kind))
	}
	if err := proto.Unmarshal(rec.body, m); err != nil {
		return nil, fmt.Errorf("decode %s record: %w", rec.kind, err)
	}
	return req, nil
}

// scan reads the file at path, which must belong to the given job lease. It
// checks the checksums, the order and the encoding of every record, passes
// each intact record to visit (if non-nil) and reports whether the file is
// complete. An error from visit is returned unchanged.
func scan(path, jobID string, leaseToken int64, visit func(*pb.StreamResultsRequest) error) (complete bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("spool: %w", err) // "open <path>: ..."
	}
	defer func() { _ = f.Close() }() // read-only: close cannot lose data

	r, err := newRecordReader(path, f)
	if err != nil {
		return false, err
	}
	if err := r.start(); err != nil {
		if errors.Is(err, errTorn) {
			return false, nil
		}
		return false, err
	}
	var last kind // zero before the first record
	for {
		rec, err := r.next()
		switch {
		case err == io.EOF:
			return last == kindSummary, nil
		case errors.Is(err, errTorn) && last == kindSummary:
			return false, r.corrupt(rec.off, "data after summary record")
		case errors.Is(err, errTorn):
			return false, nil
		case err != nil:
			return false, err
		}
		if err := checkOrder(last, rec.kind); err != nil {
			return false, r.corrupt(rec.off, "%v", err)
		}
		req, err := decode(rec)
		if err != nil {
			return false, r.corrupt(rec.off, "%v", err)
		}
		if err := checkOpen(req.GetOpen(), jobID, leaseToken); err != nil {
			return false, r.corrupt(rec.off, "%v", err)
		}
		if visit != nil {
			if err := visit(req); err != nil {
				return false, err
			}
		}
		last = rec.kind
	}
}

// checkOrder enforces open, hosts*, summary?.
func checkOrder(last, k kind) error {
	switch {
	case last == 0 && k != kindOpen:
		return fmt.Errorf("first record is %s, want open", k)
	case last == kindSummary:
		return fmt.Errorf("%s record after summary", k)
	case last != 0 && k == kindOpen:
		return errors.New("second open record")
	}
	return nil
}

// checkOpen verifies that an open record (if open is non-nil) names the
// expected job lease, so a misnamed file is never replayed under another
// lease.
func checkOpen(open *pb.ResultsOpen, jobID string, leaseToken int64) error {
	if open == nil {
		return nil
	}
	if open.GetJobId() != jobID || open.GetLeaseToken() != leaseToken {
		return fmt.Errorf("open record names job %q lease %d, file name says job %q lease %d",
			open.GetJobId(), open.GetLeaseToken(), jobID, leaseToken)
	}
	return nil
}

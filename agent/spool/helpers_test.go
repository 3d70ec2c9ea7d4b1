package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const testJob = "0b6c1f9e-5d4a-4a53-9a57-2f1d3c4b5a69"

func openSpool(t testing.TB, dir string) *Spool {
	t.Helper()
	s, err := Open(dir, WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newSpool(t testing.TB) *Spool {
	t.Helper()
	return openSpool(t, filepath.Join(t.TempDir(), "spool"))
}

func openMsg(job string, token int64) *pb.ResultsOpen {
	return &pb.ResultsOpen{AgentId: "agent-1", JobId: job, LeaseToken: token}
}

// hostBatch returns a batch of n hosts, distinct for each seq.
func hostBatch(seq, n int) *pb.HostBatch {
	b := &pb.HostBatch{}
	for i := range n {
		b.Hosts = append(b.Hosts, &pb.HostResult{
			Address:  fmt.Sprintf("10.%d.%d.%d", seq>>8&0xff, seq&0xff, i),
			Status:   "up",
			Reason:   "syn-ack",
			Hostname: fmt.Sprintf("host-%d-%d.example.net", seq, i),
			OsName:   "Linux 5.X",
			Ports: []*pb.PortResult{
				{Port: 22, Protocol: "tcp", State: "open", ServiceName: "ssh", ServiceProduct: "OpenSSH"},
				{Port: 443, Protocol: "tcp", State: "open", ServiceName: "https"},
			},
		})
	}
	return b
}

func summary(hosts int64) *pb.ScanSummary {
	return &pb.ScanSummary{HostsUp: hosts, HostsSent: hosts, Elapsed: durationpb.New(3 * time.Second), NmapVersion: "7.95"}
}

func reqOpen(m *pb.ResultsOpen) *pb.StreamResultsRequest {
	return &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: m}}
}

func reqHosts(m *pb.HostBatch) *pb.StreamResultsRequest {
	return &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: m}}
}

func reqSummary(m *pb.ScanSummary) *pb.StreamResultsRequest {
	return &pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: m}}
}

// job describes what to write for one lease.
type job struct {
	id       string
	token    int64
	batches  int
	finished bool
}

func (j job) entry() Entry { return Entry{JobID: j.id, LeaseToken: j.token} }

// write spools j through a Writer and returns the requests written, in
// order, and the file offset at which each one ends.
func (j job) write(t testing.TB, s *Spool) (reqs []*pb.StreamResultsRequest, ends []int64) {
	t.Helper()
	reqs, ends, err := j.spool(s)
	if err != nil {
		t.Fatal(err)
	}
	return reqs, ends
}

// spool is write for use outside the test goroutine.
func (j job) spool(s *Spool) (reqs []*pb.StreamResultsRequest, ends []int64, err error) {
	open := openMsg(j.id, j.token)
	w, err := s.Create(open)
	if err != nil {
		return nil, nil, fmt.Errorf("Create: %w", err)
	}
	defer func() {
		if cerr := w.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("Close: %w", cerr)
		}
	}()
	reqs, ends = append(reqs, reqOpen(open)), append(ends, w.off)
	for i := range j.batches {
		b := hostBatch(i, 1+i%4)
		if err := w.AppendHosts(b); err != nil {
			return nil, nil, fmt.Errorf("AppendHosts #%d: %w", i, err)
		}
		reqs, ends = append(reqs, reqHosts(b)), append(ends, w.off)
	}
	if j.finished {
		sum := summary(int64(j.batches))
		if err := w.Finish(sum); err != nil {
			return nil, nil, fmt.Errorf("Finish: %w", err)
		}
		reqs, ends = append(reqs, reqSummary(sum)), append(ends, w.off)
	}
	return reqs, ends, nil
}

// replayAll replays e and returns the delivered requests and the error.
func replayAll(s *Spool, e Entry) ([]*pb.StreamResultsRequest, error) {
	var got []*pb.StreamResultsRequest
	err := s.Replay(e, func(r *pb.StreamResultsRequest) error {
		got = append(got, r)
		return nil
	})
	return got, err
}

func checkReqs(t *testing.T, got, want []*pb.StreamResultsRequest) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("record %d:\n got %v\nwant %v", i, got[i], want[i])
		}
	}
}

// writeRaw writes a spool file from raw parts without fsync: string parts
// are written as is, messages as framed records.
func writeRaw(t testing.TB, path string, parts ...any) {
	t.Helper()
	var buf []byte
	for _, p := range parts {
		var err error
		switch p := p.(type) {
		case string:
			buf = append(buf, p...)
		case *pb.ResultsOpen:
			buf, err = appendRecord(buf, kindOpen, p)
		case *pb.HostBatch:
			buf, err = appendRecord(buf, kindHosts, p)
		case *pb.ScanSummary:
			buf, err = appendRecord(buf, kindSummary, p)
		default:
			t.Fatalf("writeRaw: unsupported part %T", p)
		}
		if err != nil {
			t.Fatalf("writeRaw: %v", err)
		}
	}
	if err := os.WriteFile(path, buf, filePerm); err != nil {
		t.Fatal(err)
	}
}

func pathOf(s *Spool, j job) string {
	return filepath.Join(s.Dir(), fileName(j.id, j.token))
}

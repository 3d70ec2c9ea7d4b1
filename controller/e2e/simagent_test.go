package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// simAgent speaks AgentService like a real agent but makes up its results,
// so lease and ingest behaviour can be tested without scanning anything.
type simAgent struct {
	t  testing.TB
	c  pb.AgentServiceClient
	id string
}

func register(t testing.TB, c pb.AgentServiceClient, site, name string, scope ...string) *simAgent {
	t.Helper()
	resp, err := c.Register(context.Background(), &pb.RegisterRequest{
		Site: site, Name: name, Scope: scope, Capabilities: &pb.AgentCapabilities{NmapVersion: "7.93"},
	})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return &simAgent{t: t, c: c, id: resp.GetAgentId()}
}

func (a *simAgent) acquire(wait time.Duration) *pb.Lease {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait+10*time.Second)
	defer cancel()
	resp, err := a.c.AcquireJob(ctx, &pb.AcquireJobRequest{AgentId: a.id, Wait: durationpb.New(wait)})
	if err != nil {
		a.t.Errorf("acquire: %v", err)
		return nil
	}
	return resp.GetLease()
}

// host is one made-up host result with the given open TCP ports.
func host(addr string, ports ...int) *pb.HostResult {
	h := &pb.HostResult{Address: addr, Status: "up", Reason: "syn-ack"}
	for _, p := range ports {
		h.Ports = append(h.Ports, &pb.PortResult{Protocol: "tcp", Port: int32(p), State: "open", ServiceName: "ssh"})
	}
	return h
}

// send streams results; batches are sent as given, then the summary unless
// abort is set (which cancels the stream instead).
func (a *simAgent) send(ctx context.Context, l *pb.Lease, batches [][]*pb.HostResult, abort bool) (*pb.StreamResultsResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.c.StreamResults(ctx)
	if err != nil {
		return nil, err
	}
	// The controller may end the stream before the summary (an already
	// committed job is acknowledged at open): Send then reports io.EOF and
	// CloseAndRecv has the answer.
	var early *pb.StreamResultsResponse
	sendMsg := func(m *pb.StreamResultsRequest) error {
		if err := stream.Send(m); err != nil {
			if errors.Is(err, io.EOF) {
				early, err = stream.CloseAndRecv()
				if err == nil {
					return errEarly
				}
			}
			return err
		}
		return nil
	}
	if err := sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: &pb.ResultsOpen{
		AgentId: a.id, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}}}); err != nil {
		return early, ignoreEarly(err)
	}
	sent := 0
	for _, b := range batches {
		if err := sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: &pb.HostBatch{Hosts: b}}}); err != nil {
			return early, ignoreEarly(err)
		}
		sent += len(b)
	}
	if abort {
		cancel()
		_, err := stream.CloseAndRecv()
		return nil, fmt.Errorf("aborted: %w", err)
	}
	if err := sendMsg(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: &pb.ScanSummary{
		HostsUp: int64(sent), HostsSent: int64(sent), Elapsed: durationpb.New(time.Second), NmapVersion: "7.93"}}}); err != nil {
		return early, ignoreEarly(err)
	}
	return stream.CloseAndRecv()
}

var errEarly = errors.New("the controller answered before the summary")

func ignoreEarly(err error) error {
	if errors.Is(err, errEarly) {
		return nil
	}
	return err
}

func (a *simAgent) heartbeat(l *pb.Lease, progress int32) pb.LeaseState {
	a.t.Helper()
	resp, err := a.c.Heartbeat(context.Background(), &pb.HeartbeatRequest{AgentId: a.id, Leases: []*pb.LeaseProgress{{
		JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken(), ProgressPercent: progress}}})
	if err != nil {
		a.t.Fatalf("heartbeat: %v", err)
	}
	return resp.GetLeases()[0].GetState()
}

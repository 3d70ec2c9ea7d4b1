package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// SimAgent speaks AgentService like a real agent but makes up its results:
// it registers, long-polls AcquireJob and streams prepared host batches.
type SimAgent struct {
	ID   string
	Name string
	// HeartbeatEvery is the interval the controller asked for at Register.
	HeartbeatEvery time.Duration
	c              pb.AgentServiceClient
	conn           *grpc.ClientConn // owned when the agent dialled its own connection
}

// RegisterSimAgent registers name in site with scope. conn nil dials a
// connection of the agent's own, as a real agent has.
func RegisterSimAgent(ctx context.Context, addr string, conn *grpc.ClientConn, site, name string, scope ...string) (*SimAgent, error) {
	a := &SimAgent{Name: name}
	if conn == nil {
		c, err := Dial(addr)
		if err != nil {
			return nil, err
		}
		conn, a.conn = c, c
	}
	a.c = pb.NewAgentServiceClient(conn)
	resp, err := a.c.Register(ctx, &pb.RegisterRequest{
		Site: site, Name: name, Scope: scope, Version: "bench",
		Capabilities: &pb.AgentCapabilities{NmapVersion: "7.93"},
	})
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("register %s: %w", name, err)
	}
	a.ID = resp.GetAgentId()
	a.HeartbeatEvery = resp.GetHeartbeatInterval().AsDuration()
	return a, nil
}

// Heartbeat sends an agent heartbeat renewing the leases held (none for an
// idle agent).
func (a *SimAgent) Heartbeat(ctx context.Context, held ...*pb.Lease) error {
	req := &pb.HeartbeatRequest{AgentId: a.ID}
	for _, l := range held {
		req.Leases = append(req.Leases, &pb.LeaseProgress{JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken(), ProgressPercent: 50})
	}
	_, err := a.c.Heartbeat(ctx, req)
	return err
}

// DialLight opens one agent's connection with small transport buffers, so
// a simulator holding ten thousand of them (one TCP connection per agent,
// as real agents have) stays cheap. The server side is untouched.
func DialLight(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithReadBufferSize(4<<10),
		grpc.WithWriteBufferSize(4<<10),
	)
}

// Close closes the agent's own connection.
func (a *SimAgent) Close() {
	if a.conn != nil {
		a.conn.Close()
	}
}

// Acquire long-polls for a lease; nil when none arrived within wait.
func (a *SimAgent) Acquire(ctx context.Context, wait time.Duration) (*pb.Lease, error) {
	cctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	resp, err := a.c.AcquireJob(cctx, &pb.AcquireJobRequest{AgentId: a.ID, Wait: durationpb.New(wait)})
	if err != nil {
		return nil, err
	}
	return resp.GetLease(), nil
}

// Results are prepared messages for one job: host batches and the summary.
type Results struct {
	Batches []*pb.HostBatch
	Summary *pb.ScanSummary
}

// Send streams open, every batch and the summary, and returns the ack.
func (a *SimAgent) Send(ctx context.Context, l *pb.Lease, r Results) (*pb.StreamResultsResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.c.StreamResults(ctx)
	if err != nil {
		return nil, err
	}
	send := func(m *pb.StreamResultsRequest) error {
		if err := stream.Send(m); err != nil {
			if errors.Is(err, io.EOF) { // the server ended the stream: its status says why
				_, err = stream.CloseAndRecv()
			}
			return err
		}
		return nil
	}
	if err := send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Open{Open: &pb.ResultsOpen{
		AgentId: a.ID, JobId: l.GetJobId(), LeaseToken: l.GetLeaseToken()}}}); err != nil {
		return nil, fmt.Errorf("send open: %w", err)
	}
	for i, b := range r.Batches {
		if err := send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Hosts{Hosts: b}}); err != nil {
			return nil, fmt.Errorf("send batch %d: %w", i, err)
		}
	}
	if err := send(&pb.StreamResultsRequest{Msg: &pb.StreamResultsRequest_Summary{Summary: r.Summary}}); err != nil {
		return nil, fmt.Errorf("send summary: %w", err)
	}
	return stream.CloseAndRecv()
}

// tinyResults is one host with one open port: the smallest real commit.
func tinyResults(addr string) Results {
	return Results{
		Batches: []*pb.HostBatch{{Hosts: []*pb.HostResult{{
			Address: addr, Status: "up", Reason: "syn-ack",
			Ports: []*pb.PortResult{{Protocol: "tcp", Port: 80, State: "open", Reason: "syn-ack", ServiceName: "http"}},
		}}}},
		Summary: &pb.ScanSummary{HostsUp: 1, HostsSent: 1, Elapsed: durationpb.New(time.Second), NmapVersion: "7.93", ScannedTcp: "80"},
	}
}

package worker

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// fakeController is a hand-written pb.AgentServiceClient: it records what
// the agent sends and answers as each test scripts it, so runJob's control
// flow is tested without a controller.
type fakeController struct {
	// heartbeat answers the n-th heartbeat (0-based); nil answers ACTIVE.
	heartbeat func(n int, req *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error)
	// stream configures the n-th StreamResults call (0-based); nil accepts.
	stream func(n int) streamScript

	mu         sync.Mutex
	heartbeats []*pb.HeartbeatRequest
	streams    []*fakeStream
	fails      []*pb.FailJobRequest
	releases   []*pb.ReleaseJobRequest
}

var _ pb.AgentServiceClient = (*fakeController)(nil)

// streamScript is how one results stream behaves.
type streamScript struct {
	// endAt, when > 0, ends the stream from the controller's side when the
	// agent sends its endAt-th message (0 is the open): that Send returns
	// io.EOF and CloseAndRecv returns endErr, as gRPC does.
	endAt  int
	endErr error
}

func (f *fakeController) Heartbeat(_ context.Context, in *pb.HeartbeatRequest, _ ...grpc.CallOption) (*pb.HeartbeatResponse, error) {
	f.mu.Lock()
	n := len(f.heartbeats)
	f.heartbeats = append(f.heartbeats, in)
	f.mu.Unlock()
	if f.heartbeat != nil {
		return f.heartbeat(n, in)
	}
	return leaseStates(in, pb.LeaseState_LEASE_STATE_ACTIVE), nil
}

func (f *fakeController) StreamResults(ctx context.Context, _ ...grpc.CallOption) (grpc.ClientStreamingClient[pb.StreamResultsRequest, pb.StreamResultsResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var script streamScript
	if f.stream != nil {
		script = f.stream(len(f.streams))
	}
	s := &fakeStream{ctx: ctx, script: script}
	f.streams = append(f.streams, s)
	return s, nil
}

func (f *fakeController) FailJob(_ context.Context, in *pb.FailJobRequest, _ ...grpc.CallOption) (*pb.FailJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = append(f.fails, in)
	return &pb.FailJobResponse{Status: pb.JobStatus_JOB_STATUS_PENDING}, nil
}

func (f *fakeController) ReleaseJob(_ context.Context, in *pb.ReleaseJobRequest, _ ...grpc.CallOption) (*pb.ReleaseJobResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.releases = append(f.releases, in)
	return &pb.ReleaseJobResponse{}, nil
}

// runJob makes none of these calls: a call is a test failure surfaced as an
// error the agent would log.
func (f *fakeController) Register(context.Context, *pb.RegisterRequest, ...grpc.CallOption) (*pb.RegisterResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake: Register")
}

func (f *fakeController) AcquireJob(context.Context, *pb.AcquireJobRequest, ...grpc.CallOption) (*pb.AcquireJobResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake: AcquireJob")
}

func (f *fakeController) Enroll(context.Context, *pb.EnrollRequest, ...grpc.CallOption) (*pb.EnrollResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake: Enroll")
}

func (f *fakeController) Renew(context.Context, *pb.RenewRequest, ...grpc.CallOption) (*pb.RenewResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake: Renew")
}

func (f *fakeController) GetServerTime(context.Context, *pb.GetServerTimeRequest, ...grpc.CallOption) (*pb.GetServerTimeResponse, error) {
	return nil, status.Error(codes.Unimplemented, "fake: GetServerTime")
}

// snapshot copies what was recorded.
func (f *fakeController) snapshot() (hb int, streams []*fakeStream, fails []*pb.FailJobRequest, releases []*pb.ReleaseJobRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.heartbeats), append([]*fakeStream(nil), f.streams...), append([]*pb.FailJobRequest(nil), f.fails...),
		append([]*pb.ReleaseJobRequest(nil), f.releases...)
}

func leaseStates(in *pb.HeartbeatRequest, st pb.LeaseState) *pb.HeartbeatResponse {
	resp := &pb.HeartbeatResponse{}
	for _, l := range in.GetLeases() {
		resp.Leases = append(resp.Leases, &pb.LeaseStatus{JobId: l.GetJobId(), State: st})
	}
	return resp
}

// fakeStream is one client-streaming StreamResults call.
type fakeStream struct {
	ctx    context.Context
	script streamScript

	mu     sync.Mutex
	msgs   []*pb.StreamResultsRequest
	ended  bool // the controller ended the stream (script.endAt)
	closed bool // the agent called CloseAndRecv
}

func (s *fakeStream) Send(m *pb.StreamResultsRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended || s.closed || s.ctx.Err() != nil {
		return io.EOF
	}
	if s.script.endAt > 0 && len(s.msgs) == s.script.endAt {
		s.ended = true
		return io.EOF
	}
	s.msgs = append(s.msgs, m)
	return nil
}

func (s *fakeStream) CloseAndRecv() (*pb.StreamResultsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	switch {
	case s.ended:
		return nil, s.script.endErr
	case s.ctx.Err() != nil:
		return nil, status.FromContextError(s.ctx.Err()).Err()
	}
	if len(s.msgs) == 0 || s.msgs[len(s.msgs)-1].GetSummary() == nil {
		return nil, status.Error(codes.Aborted, "fake: stream closed before its summary")
	}
	var hosts int64
	for _, m := range s.msgs {
		hosts += int64(len(m.GetHosts().GetHosts()))
	}
	return &pb.StreamResultsResponse{Hosts: hosts}, nil
}

// messages copies what the agent sent on this stream.
func (s *fakeStream) messages() []*pb.StreamResultsRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*pb.StreamResultsRequest(nil), s.msgs...)
}

func (s *fakeStream) Header() (metadata.MD, error) { return nil, nil }
func (s *fakeStream) Trailer() metadata.MD         { return nil }
func (s *fakeStream) CloseSend() error             { return nil }
func (s *fakeStream) Context() context.Context     { return s.ctx }
func (s *fakeStream) SendMsg(m any) error          { return s.Send(m.(*pb.StreamResultsRequest)) }
func (s *fakeStream) RecvMsg(any) error            { return status.Error(codes.Unimplemented, "fake: RecvMsg") }

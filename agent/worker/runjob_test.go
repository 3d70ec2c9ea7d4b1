package worker

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/agent/internal/scripttest"
	"github.com/scanorama/scanorama/agent/nmaprun"
	"github.com/scanorama/scanorama/agent/spool"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// listeners opens n loopback TCP listeners for nmap to find open: the only
// ports these tests scan.
func listeners(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// testAgent is an Agent wired to fake, a temporary spool and nmap at
// nmapPath, heartbeating every hb.
func testAgent(t *testing.T, fake *fakeController, nmapPath string, hb time.Duration) *Agent {
	t.Helper()
	sp, err := spool.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	log := hclog.NewNullLogger()
	return &Agent{
		cfg:     Config{Name: "test", Scope: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond},
		log:     log,
		client:  fake,
		spool:   sp,
		runner:  &nmaprun.Runner{NmapPath: nmapPath, Logger: log},
		agentID: "agent-1", heartbeat: hb,
	}
}

// loopbackLease scans ports of 127.0.0.1 (no host discovery: nothing but
// these ports is probed). timing 0 (paranoid) keeps nmap busy for minutes
// between probes, long enough for any heartbeat to stop it.
func loopbackLease(ports []int, timing *int32) *pb.Lease {
	ps := make([]string, len(ports))
	for i, p := range ports {
		ps[i] = strconv.Itoa(p)
	}
	return &pb.Lease{JobId: "job-1", LeaseToken: 7, Attempt: 1, Network: "127.0.0.1/32", Options: &pb.ScanOptions{
		ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: strings.Join(ps, ","), SkipHostDiscovery: true, Timing: timing,
	}}
}

// run runs one lease to its end; a hang fails the test instead of the suite.
func run(ctx context.Context, t *testing.T, a *Agent, l *pb.Lease) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); a.runJob(ctx, l) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("runJob did not return")
	}
}

func nmapPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nmap")
	if err != nil {
		t.Skip("nmap not installed")
	}
	return p
}

func spoolEmpty(t *testing.T, a *Agent) {
	t.Helper()
	left, err := a.spool.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Errorf("spool still holds %v", left)
	}
}

// checkStream: opened for the lease, hosts, and (when wantSummary) a
// summary last, whose partial flag is wantPartial.
func checkStream(t *testing.T, s *fakeStream, wantSummary, wantPartial bool) (hosts []*pb.HostResult) {
	t.Helper()
	msgs := s.messages()
	if len(msgs) == 0 || msgs[0].GetOpen() == nil {
		t.Fatalf("stream does not start with open: %v", msgs)
	}
	if o := msgs[0].GetOpen(); o.GetJobId() != "job-1" || o.GetLeaseToken() != 7 || o.GetAgentId() != "agent-1" {
		t.Errorf("open = %v", o)
	}
	for i, m := range msgs[1:] {
		if sum := m.GetSummary(); sum != nil {
			if i != len(msgs)-2 {
				t.Errorf("summary is not the last message")
			}
			if sum.GetPartial() != wantPartial {
				t.Errorf("summary partial = %v, want %v", sum.GetPartial(), wantPartial)
			}
			if sum.GetHostsSent() != int64(len(hosts)) {
				t.Errorf("summary says %d hosts sent, stream carried %d", sum.GetHostsSent(), len(hosts))
			}
			continue
		}
		hosts = append(hosts, m.GetHosts().GetHosts()...)
	}
	if got := msgs[len(msgs)-1].GetSummary() != nil; got != wantSummary {
		t.Errorf("stream ends with a summary: %v, want %v", got, wantSummary)
	}
	return hosts
}

func TestRunJobStreamsResultsThenCompletes(t *testing.T) {
	t.Parallel()
	ports := listeners(t, 2)
	fake := &fakeController{}
	a := testAgent(t, fake, nmapPath(t), time.Hour)
	run(context.Background(), t, a, loopbackLease(ports, nil))

	_, streams, fails, releases := fake.snapshot()
	if len(streams) != 1 {
		t.Fatalf("%d result streams, want the live one only", len(streams))
	}
	hosts := checkStream(t, streams[0], true, false)
	if len(hosts) != 1 || hosts[0].GetAddress() != "127.0.0.1" {
		t.Fatalf("hosts %v, want 127.0.0.1", hosts)
	}
	open := map[int32]bool{}
	for _, p := range hosts[0].GetPorts() {
		if p.GetState() == "open" {
			open[p.GetPort()] = true
		}
	}
	for _, p := range ports {
		if !open[int32(p)] {
			t.Errorf("port %d of our listener not reported open: %v", p, hosts[0].GetPorts())
		}
	}
	if len(fails) != 0 || len(releases) != 0 {
		t.Errorf("fails %v releases %v, want none", fails, releases)
	}
	spoolEmpty(t, a)
}

// The controller ends the live stream at the first hosts batch with
// FAILED_PRECONDITION (the lease moved on): the agent neither retries from
// the spool nor fails the job, and drops its results.
func TestRunJobLeaseLostMidStream(t *testing.T) {
	t.Parallel()
	ports := listeners(t, 1)
	fake := &fakeController{stream: func(int) streamScript {
		return streamScript{endAt: 1, endErr: status.Error(codes.FailedPrecondition, "lease lost: job job-1 is now at lease token 8")}
	}}
	a := testAgent(t, fake, nmapPath(t), time.Hour)
	run(context.Background(), t, a, loopbackLease(ports, nil))

	_, streams, fails, releases := fake.snapshot()
	if len(streams) != 1 {
		t.Fatalf("%d result streams, want 1 (no redelivery of a lost lease)", len(streams))
	}
	if msgs := streams[0].messages(); len(msgs) != 1 {
		t.Errorf("stream carried %d messages after the controller ended it, want only the open", len(msgs))
	}
	if len(fails) != 0 || len(releases) != 0 {
		t.Errorf("fails %v releases %v, want none: the lease is not ours to fail", fails, releases)
	}
	spoolEmpty(t, a)
}

// A heartbeat answer stops a running scan: CANCELLED commits the hosts
// nmap finished as a partial result (from the spool), LOST drops them.
func TestRunJobHeartbeatStopsTheScan(t *testing.T) {
	t.Parallel()
	nmap := nmapPath(t)
	paranoid := int32(0)
	for _, tc := range []struct {
		name        string
		state       pb.LeaseState
		wantStreams int
	}{
		{"cancelled", pb.LeaseState_LEASE_STATE_CANCELLED, 2},
		{"lost", pb.LeaseState_LEASE_STATE_LOST, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ports := listeners(t, 3)
			fake := &fakeController{heartbeat: func(_ int, in *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
				return leaseStates(in, tc.state), nil
			}}
			a := testAgent(t, fake, nmap, 50*time.Millisecond)
			run(context.Background(), t, a, loopbackLease(ports, &paranoid))

			hb, streams, fails, releases := fake.snapshot()
			if hb == 0 {
				t.Fatal("no heartbeat was sent")
			}
			if len(streams) != tc.wantStreams {
				t.Fatalf("%d result streams, want %d", len(streams), tc.wantStreams)
			}
			if streams[0].ctx.Err() == nil {
				t.Error("the live stream was not aborted")
			}
			if tc.wantStreams == 2 {
				checkStream(t, streams[1], true, true)
			}
			if len(fails) != 0 || len(releases) != 0 {
				t.Errorf("fails %v releases %v, want none", fails, releases)
			}
			spoolEmpty(t, a)
		})
	}
}

// nmap exits with an error: the job is failed back as retryable, naming
// nmap, and nothing is delivered. The nmap here is the real one, given an
// option it rejects.
func TestRunJobNmapFailureIsReported(t *testing.T) {
	t.Parallel()
	realNmap := nmapPath(t)
	wrapper := filepath.Join(t.TempDir(), "nmap")
	script := "#!/bin/sh\nexec " + realNmap + " --no-such-option-scanorama \"$@\"\n"
	scripttest.Write(t, wrapper, script)
	fake := &fakeController{}
	a := testAgent(t, fake, wrapper, time.Hour)
	run(context.Background(), t, a, loopbackLease(listeners(t, 1), nil))

	_, streams, fails, releases := fake.snapshot()
	if len(fails) != 1 {
		t.Fatalf("FailJob called %d times, want once", len(fails))
	}
	f := fails[0]
	if !f.GetRetryable() || !strings.HasPrefix(f.GetErrorMessage(), "nmap: ") || f.GetJobId() != "job-1" || f.GetLeaseToken() != 7 {
		t.Errorf("FailJob %v, want retryable, job-1/7, message starting \"nmap: \"", f)
	}
	if len(streams) != 1 {
		t.Fatalf("%d result streams, want the live one only", len(streams))
	}
	if msgs := streams[0].messages(); len(msgs) > 0 && msgs[len(msgs)-1].GetSummary() != nil {
		t.Error("a failed scan sent a summary")
	}
	if len(releases) != 0 {
		t.Errorf("releases %v, want none", releases)
	}
	spoolEmpty(t, a)
}

// A lease the agent must not run is failed for good before nmap starts, and
// a shutdown mid-scan gives the lease back at once.
func TestRunJobRefusesAndReleases(t *testing.T) {
	t.Parallel()
	nmap := nmapPath(t)
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		fake := &fakeController{}
		a := testAgent(t, fake, nmap, time.Hour)
		l := loopbackLease([]int{1}, nil)
		l.Network = "10.99.1.0/24" // outside the agent's scope: never scanned
		run(context.Background(), t, a, l)
		_, streams, fails, _ := fake.snapshot()
		if len(fails) != 1 || fails[0].GetRetryable() || !strings.Contains(fails[0].GetErrorMessage(), "outside this agent's scope") {
			t.Errorf("fails %v, want one permanent failure naming the scope", fails)
		}
		if len(streams) != 0 {
			t.Errorf("%d result streams for a refused job", len(streams))
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var once sync.Once
		fake := &fakeController{heartbeat: func(_ int, in *pb.HeartbeatRequest) (*pb.HeartbeatResponse, error) {
			once.Do(cancel) // the agent is told to stop while nmap runs
			return leaseStates(in, pb.LeaseState_LEASE_STATE_ACTIVE), nil
		}}
		a := testAgent(t, fake, nmap, 50*time.Millisecond)
		paranoid := int32(0)
		run(ctx, t, a, loopbackLease(listeners(t, 3), &paranoid))
		_, _, fails, releases := fake.snapshot()
		if len(releases) != 1 || releases[0].GetJobId() != "job-1" || releases[0].GetLeaseToken() != 7 {
			t.Errorf("releases %v, want the lease given back once", releases)
		}
		if len(fails) != 0 {
			t.Errorf("fails %v, want none", fails)
		}
		spoolEmpty(t, a)
	})
}

package e2e_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// WatchEvents shows a job's life live: leased, running with progress,
// completed, and the host changes it committed.
func TestWatchEventsShowsAJobLive(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.5.0/24", "22")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	watch, err := s.admin.WatchEvents(ctx, &pb.WatchEventsRequest{Site: "lab"})
	if err != nil {
		t.Fatal(err)
	}
	// The server sends headers once it has subscribed: from then on nothing
	// is missed.
	if _, err := watch.Header(); err != nil {
		t.Fatal(err)
	}
	a := register(t, s.agentc, "lab", "a", "10.99.0.0/16")
	l := a.acquire(5 * time.Second)
	if l == nil || l.GetJobId() != jobs[0].GetId() {
		t.Fatalf("lease %v", l)
	}
	if st := a.heartbeat(l, 40); st != pb.LeaseState_LEASE_STATE_ACTIVE {
		t.Fatalf("heartbeat %s", st)
	}
	if _, err := a.send(ctx, l, [][]*pb.HostResult{{host("10.99.5.10", 22)}}, false); err != nil {
		t.Fatal(err)
	}
	want := []string{"JOB_STATUS_LEASED", "JOB_STATUS_RUNNING 40", "JOB_STATUS_COMPLETED", "host_discovered", "port_opened"}
	var got []string
	for len(got) < len(want) {
		ev, err := watch.Recv()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch e := ev.GetEvent().(type) {
		case *pb.WatchEventsResponse_Job:
			if e.Job.GetJobId() != l.GetJobId() {
				continue
			}
			s := e.Job.GetStatus().String()
			if e.Job.GetStatus() == pb.JobStatus_JOB_STATUS_RUNNING {
				s += " " + strconv.Itoa(int(e.Job.GetProgressPercent()))
			}
			got = append(got, s)
		case *pb.WatchEventsResponse_HostChange:
			got = append(got, e.HostChange.GetEvent())
		}
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("events %v, want %v", got, want)
		}
	}
}

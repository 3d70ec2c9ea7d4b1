package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// runRound has agents on the given controllers complete every pending job
// of site "lab" in scope, each job's results made by results(network).
func runRound(t *testing.T, clients []pb.AgentServiceClient, name, scope string, jobs, agents int, results func(network string) []*pb.HostResult) {
	t.Helper()
	var done atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(3 * time.Minute)
	for i := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := register(t, clients[i%len(clients)], "lab", fmt.Sprintf("%s-%d", name, i), scope)
			for done.Load() < int64(jobs) && time.Now().Before(deadline) {
				l := a.acquire(300 * time.Millisecond)
				if l == nil {
					continue
				}
				if _, err := a.send(context.Background(), l, [][]*pb.HostResult{results(l.GetNetwork())}, false); err != nil {
					t.Errorf("commit %s: %v", l.GetJobId(), err)
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := done.Load(); n != int64(jobs) {
		t.Fatalf("round %s: %d of %d jobs committed", name, n, jobs)
	}
}

// historyIDs is every host_history id of the database in feed order.
func historyIDs(t *testing.T, s *stack) []int64 {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT id FROM host_history ORDER BY feed_seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return ids
}

// Two controllers commit 256 jobs from 16 agents at once (group commits
// interleaving) and one controller restarts, while a reader follows
// WatchChanges through both controllers, hanging up after a random number
// of changes and resuming from its last cursor. What it read is exactly
// host_history in commit order: nothing skipped, nothing twice.
func TestWatchChangesResumesWithoutGapOrDuplicate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	second := &stack{t: t, dbURL: s.dbURL, addr: freePort(t)}
	second.startController()
	second.connect()
	admins := []pb.AdminServiceClient{s.admin, second.admin}
	agents := []pb.AgentServiceClient{s.agentc, second.agentc}
	const scope = "2001:db8:97::/113"
	jobs := setupTarget(t, s, scope, "22,80")
	if len(jobs) != 128 {
		t.Fatalf("ScanNow made %d jobs, want 128", len(jobs))
	}

	var (
		mu      sync.Mutex
		got     []int64
		cursor  string
		resumes int
	)
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	// follow reads one connection's worth: until n changes, the end of the
	// stream (stop_at_tip) or an error, and keeps the last cursor.
	follow := func(i int, n int, atTip bool) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		mu.Lock()
		req := &pb.WatchChangesRequest{Site: "lab", Cursor: cursor, StopAtTip: atTip}
		resumes++
		mu.Unlock()
		stream, err := admins[i%2].WatchChanges(ctx, req)
		if err != nil {
			return err
		}
		for k := 0; atTip || k < n; k++ {
			m, err := stream.Recv()
			if err != nil {
				return err
			}
			mu.Lock()
			got = append(got, m.GetChange().GetId())
			cursor = m.GetCursor()
			mu.Unlock()
		}
		return nil
	}
	go func() {
		defer close(readerDone)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			// Errors (a controller restarting) are hang-ups like any other.
			_ = follow(i, 1+rng.IntN(60), false)
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
		}
	}()

	runRound(t, agents, "first", scope, len(jobs), 16, func(network string) []*pb.HostResult {
		return []*pb.HostResult{host(firstAddr(network, 1), 22, 80), host(firstAddr(network, 2), 22, 80), host(firstAddr(network, 3), 22)}
	})
	// The second controller restarts between the rounds.
	second.ctrl.kill()
	second.startController()
	resp, err := s.admin.ScanNow(s.ctx(), &pb.ScanNowRequest{TargetId: jobs[0].GetTargetId()})
	if err != nil {
		t.Fatal(err)
	}
	runRound(t, agents, "second", scope, len(resp.GetJobs()), 16, func(network string) []*pb.HostResult {
		return []*pb.HostResult{host(firstAddr(network, 2), 22), host(firstAddr(network, 3), 22, 80)}
	})
	close(stop)
	<-readerDone
	if err := follow(0, 0, true); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("final catch-up: %v", err)
	}

	want := historyIDs(t, s)
	if len(want) != 128*11 {
		t.Fatalf("host_history has %d rows, want %d", len(want), 128*11)
	}
	if !slices.Equal(got, want) {
		seen := map[int64]int{}
		dups := 0
		for _, id := range got {
			seen[id]++
			if seen[id] == 2 {
				dups++
			}
		}
		missing := 0
		for _, id := range want {
			if seen[id] == 0 {
				missing++
			}
		}
		t.Fatalf("read %d changes over %d connections, host_history has %d: %d missing, %d read twice, order differs: %v",
			len(got), resumes, len(want), missing, dups, !slices.Equal(slices.Compact(slices.Clone(got)), want))
	}
	t.Logf("read %d changes exactly once, in commit order, over %d connections", len(got), resumes)
}

// Bad requests get INVALID_ARGUMENT naming the field; a cursor older than
// retention gets OUT_OF_RANGE naming the oldest available change.
func TestWatchChangesRejectsBadCursors(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	jobs := setupTarget(t, s, "10.99.8.0/24", "22")
	if _, err := s.admin.CreateSite(s.ctx(), &pb.CreateSiteRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	runRound(t, []pb.AgentServiceClient{s.agentc}, "a", "10.99.0.0/16", len(jobs), 1, func(network string) []*pb.HostResult {
		return []*pb.HostResult{host(firstAddr(network, 1), 22), host(firstAddr(network, 2), 22)}
	})
	read := func(req *pb.WatchChangesRequest) ([]*pb.WatchChangesResponse, error) {
		req.StopAtTip = true
		stream, err := s.admin.WatchChanges(s.ctx(), req)
		if err != nil {
			return nil, err
		}
		var out []*pb.WatchChangesResponse
		for {
			m, err := stream.Recv()
			if err != nil {
				if errors.Is(err, io.EOF) {
					return out, nil
				}
				return out, err
			}
			out = append(out, m)
		}
	}
	all, err := read(&pb.WatchChangesRequest{Site: "lab"})
	if err != nil || len(all) != 4 {
		t.Fatalf("read %d changes, %v; want 4", len(all), err)
	}
	// Every site's feed and one site's feed resume from the middle alike.
	rest, err := read(&pb.WatchChangesRequest{Site: "lab", Cursor: all[1].GetCursor()})
	if err != nil || len(rest) != 2 || rest[0].GetChange().GetId() != all[2].GetChange().GetId() {
		t.Fatalf("resume after the second change: %v, %v", rest, err)
	}
	if tip, err := read(&pb.WatchChangesRequest{Site: "lab", FromNow: true}); err != nil || len(tip) != 0 {
		t.Fatalf("from_now read %d changes, %v; want none", len(tip), err)
	}

	for _, c := range []struct {
		name  string
		req   *pb.WatchChangesRequest
		field string
	}{
		{"garbage", &pb.WatchChangesRequest{Site: "lab", Cursor: "not-a-cursor"}, "cursor"},
		{"tampered", &pb.WatchChangesRequest{Site: "lab", Cursor: tamper(all[0].GetCursor())}, "cursor"},
		{"another site's", &pb.WatchChangesRequest{Site: "other", Cursor: all[0].GetCursor()}, "cursor"},
		{"one site's for all sites", &pb.WatchChangesRequest{Cursor: all[0].GetCursor()}, "cursor"},
		{"cursor and from_now", &pb.WatchChangesRequest{Site: "lab", Cursor: all[0].GetCursor(), FromNow: true}, "from_now"},
	} {
		_, err := read(c.req)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s cursor: %v; want InvalidArgument naming %s", c.name, err, c.field)
		}
	}
	if _, err := read(&pb.WatchChangesRequest{Site: "nowhere"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown site: %v; want NotFound", err)
	}

	// Retention prunes the first commit's changes (all four share its
	// time): its cursors are out of range but the last one, which resumes
	// right after what was pruned.
	if _, err := s.pool.Exec(context.Background(),
		`SELECT prune_change_feed((SELECT max(changed_at) FROM host_history) + interval '1 microsecond')`); err != nil {
		t.Fatal(err)
	}
	if n := s.count(`SELECT count(*) FROM host_history`); n != 0 {
		t.Fatalf("%d changes left after pruning", n)
	}
	_, err = read(&pb.WatchChangesRequest{Site: "lab", Cursor: all[0].GetCursor()})
	if status.Code(err) != codes.OutOfRange || !strings.Contains(err.Error(), "oldest available point is right after change") {
		t.Fatalf("pruned cursor: %v; want OutOfRange naming the oldest available point", err)
	}
	if rest, err := read(&pb.WatchChangesRequest{Site: "lab", Cursor: all[3].GetCursor()}); err != nil || len(rest) != 0 {
		t.Fatalf("cursor of the last pruned change: %d changes, %v; want none and no error", len(rest), err)
	}
	if fresh, err := read(&pb.WatchChangesRequest{Site: "lab"}); err != nil || len(fresh) != 0 {
		t.Fatalf("empty cursor after pruning read %d, %v; want none", len(fresh), err)
	}
}

// tamper flips a bit in the middle of a cursor.
func tamper(c string) string {
	b := []byte(c)
	if b[12] == 'A' {
		b[12] = 'B'
	} else {
		b[12] = 'A'
	}
	return string(b)
}

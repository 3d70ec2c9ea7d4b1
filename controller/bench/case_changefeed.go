package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Change feed and webhook cases: how long a committed change takes to reach
// a WatchChanges client and a webhook receiver, and how a burst of 50,000
// changes from one commit compares with POSTing the same bodies in a bare
// loop.

const (
	feedTrials = 200
	feedWarmup = 10
	burstHosts = 250
	burstPorts = 199 // 250 host_discovered + 250*199 port_opened = 50,000 changes
)

// hookReceiver records when each delivery arrived and what it carried.
type hookReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
	events int
	// arrivals: the arrival time of each event id.
	arrivals map[int64]time.Time
	changed  map[int64]time.Time
	done     chan struct{}
	want     int
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	now := time.Now()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var p struct {
		Events []struct {
			ID        int64     `json:"id"`
			ChangedAt time.Time `json:"changed_at"`
		} `json:"events"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	h.bodies = append(h.bodies, body)
	for _, e := range p.Events {
		if _, dup := h.arrivals[e.ID]; !dup {
			h.events++
		}
		h.arrivals[e.ID] = now
		h.changed[e.ID] = e.ChangedAt
	}
	if h.want > 0 && h.events >= h.want && h.done != nil {
		close(h.done)
		h.done = nil
	}
	h.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) expect(n int) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.want = h.events + n
	h.done = make(chan struct{})
	// Room for n more events up front: the timed deliveries should not pay
	// for growing the receiver's own bookkeeping, which the baseline's
	// repeats of the same events never do.
	h.arrivals, h.changed = grown(h.arrivals, n), grown(h.changed, n)
	return h.done
}

// grown is m copied into a map with room for n more keys.
func grown(m map[int64]time.Time, n int) map[int64]time.Time {
	g := make(map[int64]time.Time, len(m)+n)
	maps.Copy(g, m)
	return g
}

// flipResults alternates port 22 and port 80 open on one host, so every
// commit changes something (a port opened and one closed).
func flipResults(addr string, i int) Results {
	port := int32(22)
	if i%2 == 1 {
		port = 80
	}
	return Results{
		Batches: []*pb.HostBatch{{Hosts: []*pb.HostResult{{
			Address: addr, Status: "up", Reason: "syn-ack",
			Ports: []*pb.PortResult{{Protocol: "tcp", Port: port, State: "open", Reason: "syn-ack", ServiceName: "ssh"}},
		}}}},
		Summary: &pb.ScanSummary{HostsUp: 1, HostsSent: 1, Elapsed: durationpb.New(time.Second), NmapVersion: "7.93", ScannedTcp: "22,80"},
	}
}

func burstResults() Results {
	var r Results
	for h := range burstHosts {
		host := &pb.HostResult{Address: fmt.Sprintf("10.99.33.%d", 1+h), Status: "up", Reason: "syn-ack"}
		for p := range burstPorts {
			host.Ports = append(host.Ports, &pb.PortResult{Protocol: "tcp", Port: int32(1000 + p), State: "open", Reason: "syn-ack", ServiceName: "http"})
		}
		r.Batches = append(r.Batches, &pb.HostBatch{Hosts: []*pb.HostResult{host}})
	}
	r.Summary = &pb.ScanSummary{HostsUp: burstHosts, HostsSent: burstHosts, Elapsed: durationpb.New(time.Second), NmapVersion: "7.93", ScannedTcp: "1000-1198"}
	return r
}

func runChangeFeed(ctx context.Context, e *Env, o Options) ([]Result, error) {
	url, err := e.NewDatabase(ctx, "bench_feed")
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase("bench_feed")
	c, err := e.StartController(ctx, "controller-feed", url)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if _, err := c.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return nil, fmt.Errorf("CreateSite: %w", err)
	}
	t, err := c.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: "flip", Network: "10.99.32.1/32", Ports: "22,80"})
	if err != nil {
		return nil, fmt.Errorf("CreateTarget: %w", err)
	}
	recv := &hookReceiver{arrivals: map[int64]time.Time{}, changed: map[int64]time.Time{}}
	srv := httptest.NewServer(recv)
	defer srv.Close()
	if _, err := c.Admin.CreateWebhook(ctx, &pb.CreateWebhookRequest{Name: "bench", Url: srv.URL, Site: "bench"}); err != nil {
		return nil, fmt.Errorf("CreateWebhook: %w", err)
	}
	agent, err := RegisterSimAgent(ctx, c.Addr, nil, "bench", "sim-feed", "10.99.0.0/16")
	if err != nil {
		return nil, err
	}
	defer agent.Close()

	// A WatchChanges client following from the tip; arrival time per change.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := c.Admin.WatchChanges(wctx, &pb.WatchChangesRequest{Site: "bench", FromNow: true})
	if err != nil {
		return nil, fmt.Errorf("WatchChanges: %w", err)
	}
	type arrival struct {
		at      time.Time
		changed time.Time
	}
	watched := make(chan arrival, 1024)
	go func() {
		for {
			m, err := watch.Recv()
			if err != nil {
				close(watched)
				return
			}
			watched <- arrival{at: time.Now(), changed: m.GetChange().GetChangedAt().AsTime()}
		}
	}()
	time.Sleep(300 * time.Millisecond)

	var feedLag, hookLag []float64
	e.Log.Info("commit → WatchChanges client and → webhook receiver", "trials", feedTrials, "warmup", feedWarmup)
	for i := range feedTrials + feedWarmup {
		if _, err := c.Admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: t.GetTarget().GetId()}); err != nil {
			return nil, fmt.Errorf("ScanNow: %w", err)
		}
		l, err := agent.Acquire(ctx, 10*time.Second)
		if err != nil || l == nil {
			return nil, fmt.Errorf("AcquireJob: %v %v", l, err)
		}
		// host_discovered and port_opened first, then a port opened and one closed.
		const changes = 2
		done := recv.expect(changes)
		if _, err := agent.Send(ctx, l, flipResults("10.99.32.1", i)); err != nil {
			return nil, fmt.Errorf("commit: %w", err)
		}
		for range changes {
			select {
			case a, ok := <-watched:
				if !ok {
					return nil, fmt.Errorf("WatchChanges ended")
				}
				if i >= feedWarmup {
					feedLag = append(feedLag, a.at.Sub(a.changed).Seconds()*1000)
				}
			case <-time.After(30 * time.Second):
				return nil, fmt.Errorf("trial %d: no change at the WatchChanges client within 30s", i)
			}
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			return nil, fmt.Errorf("trial %d: no webhook delivery within 30s", i)
		}
	}
	recv.mu.Lock()
	for id, at := range recv.arrivals {
		if id > int64(2*feedWarmup) {
			hookLag = append(hookLag, at.Sub(recv.changed[id]).Seconds()*1000)
		}
	}
	recv.mu.Unlock()
	slices.Sort(feedLag)
	slices.Sort(hookLag)
	feedP99, hookP99 := percentile(feedLag, 99), percentile(hookLag, 99)
	e.Log.Info("change feed lag", "p50_ms", round(percentile(feedLag, 50), 2), "p99_ms", round(feedP99, 2))
	e.Log.Info("webhook latency", "p50_ms", round(percentile(hookLag, 50), 2), "p99_ms", round(hookP99, 2))
	results := []Result{
		{Name: "change_feed_lag_p99_ms", Value: f64(round(feedP99, 2)), Unit: "ms", Goal: "< 100", Note: fmt.Sprintf(
			"%d changes from %d one-host commits (after %d warm-up): the change's changed_at (its commit statement's start, database clock on this host) → received by a WatchChanges client following from the tip; p50 %.1f ms",
			len(feedLag), feedTrials, feedWarmup, percentile(feedLag, 50))},
		{Name: "webhook_latency_p99_ms", Value: f64(round(hookP99, 2)), Unit: "ms", Goal: "< 500", Note: fmt.Sprintf(
			"%d changes from the same commits: changed_at → the POST carrying it read by a loopback receiver; p50 %.1f ms",
			len(hookLag), percentile(hookLag, 50))},
	}
	if !o.Wants("webhook_burst_50k_vs_bare") {
		return results, nil
	}

	// Burst: one commit of 50,000 changes.
	bt, err := c.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: "burst", Network: "10.99.33.0/24", Ports: "1000-1198"})
	if err != nil {
		return nil, fmt.Errorf("CreateTarget: %w", err)
	}
	sn, err := c.Admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: bt.GetTarget().GetId()})
	if err != nil {
		return nil, fmt.Errorf("ScanNow: %w", err)
	}
	const burst = burstHosts * (1 + burstPorts)
	recv.mu.Lock()
	recv.bodies = nil
	recv.mu.Unlock()
	stopWatch()
	// Wait for the stream to end: a follower still paging on the server
	// would read the feed during the timed burst (measured: 21-24 extra
	// pages per run), load the bare loop never shares.
	for range watched {
	}
	if len(sn.GetJobs()) != 1 {
		return nil, fmt.Errorf("burst target made %d jobs, want 1", len(sn.GetJobs()))
	}
	l, err := agent.Acquire(ctx, 10*time.Second)
	if err != nil || l == nil {
		return nil, fmt.Errorf("AcquireJob: %v %v", l, err)
	}
	done := recv.expect(burst)
	if err := e.startPGStats(ctx); err != nil {
		return nil, err
	}
	if _, err := agent.Send(ctx, l, burstResults()); err != nil {
		return nil, fmt.Errorf("commit burst: %w", err)
	}
	committed := time.Now()
	select {
	case <-done:
	case <-time.After(10 * time.Minute):
		return nil, fmt.Errorf("burst: not every change delivered within 10 minutes")
	}
	burstAt := time.Now()
	product := burstAt.Sub(committed)
	e.logPGStats(ctx, "webhook burst (commit and delivery)", 15)
	recv.mu.Lock()
	bodies := slices.Clone(recv.bodies)
	recv.mu.Unlock()
	var size int
	for _, b := range bodies {
		size += len(b)
	}
	// Baseline: the same bodies POSTed one after another by a bare loop.
	client := &http.Client{}
	begin := time.Now()
	for _, b := range bodies {
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("bare POST: %w", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	bare := time.Since(begin)
	ratio := product.Seconds() / bare.Seconds()
	e.Log.Info("webhook burst", "changes", burst, "deliveries", len(bodies), "product_s", round(product.Seconds(), 3), "bare_s", round(bare.Seconds(), 3))
	return append(results, Result{
		Name: "webhook_burst_50k_vs_bare", Value: f64(round(product.Seconds(), 3)), Unit: "s",
		Baseline: f64(round(bare.Seconds(), 3)), Ratio: f64(round(ratio, 2)), Goal: "≤ 2",
		Note: fmt.Sprintf("%d changes from one commit: commit acknowledged → the last of %d deliveries (%.1f MB) received in full; baseline: the same bodies POSTed in order by a bare Go loop",
			burst, len(bodies), float64(size)/1e6),
	}), nil
}

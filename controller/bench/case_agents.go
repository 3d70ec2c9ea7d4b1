package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// agentCounts are the fleet sizes the agents case holds on one controller.
var agentCounts = []int{2000, 10000}

// agentsPollWait is the simulated agents' long-poll, as the real agent's.
const agentsPollWait = 25 * time.Second

func agentsMetrics(n int) []string {
	p := fmt.Sprintf("agents_%d_", n)
	return []string{p + "controller_rss_mb", p + "heartbeat_p99_ms", p + "false_lost", p + "jobs_per_s", p + "cpu_us_per_heartbeat"}
}

func agentsAllMetrics() []string {
	var out []string
	for _, n := range agentCounts {
		out = append(out, agentsMetrics(n)...)
	}
	return out
}

func init() {
	for _, n := range agentCounts {
		m := agentsMetrics(n)
		rss, p99 := "-", "-"
		if n == 10000 {
			rss, p99 = "< 1024", "< 250"
		}
		metricMeta[m[0]] = [2]string{"MB", rss}
		metricMeta[m[1]] = [2]string{"ms", p99}
		metricMeta[m[2]] = [2]string{"agents", "≤ 0"}
		metricMeta[m[3]] = [2]string{"jobs/s", "-"}
		metricMeta[m[4]] = [2]string{"µs", "-"}
	}
}

// raiseNoFile lifts this process's open-file limit to the hard limit. The
// explicit Setrlimit also makes the children (the controller) inherit it:
// Go only restores the original soft limit in children when the program
// did not set one itself. Ten thousand agents need ten thousand sockets on
// each side.
func raiseNoFile(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < need {
		return lim.Cur, fmt.Errorf("open-file limit %d < %d needed: raise the hard limit (ulimit -Hn)", lim.Cur, need)
	}
	return lim.Cur, nil
}

func runAgents(ctx context.Context, e *Env, o Options) ([]Result, error) {
	var out []Result
	for _, n := range agentCounts {
		if !slices.ContainsFunc(agentsMetrics(n), o.Wants) {
			continue
		}
		if _, err := raiseNoFile(uint64(n) + 2000); err != nil {
			return nil, err
		}
		rs, err := agentsAt(ctx, e, o, n)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// One fleet size failing keeps the other's numbers.
			e.Log.Error("agents case failed", "agents", n, "error", err)
			for _, m := range agentsMetrics(n) {
				out = append(out, FailedResult(m, fmt.Errorf("%d agents: %w", n, err)))
			}
			continue
		}
		out = append(out, rs...)
	}
	return out, nil
}

// agentSim runs simulated agents: one gRPC connection each, one goroutine
// each (its long-poll loop); heartbeats run from runtime timers, each call
// in a short-lived goroutine.
type agentSim struct {
	agents []*SimAgent
	held   []atomic.Pointer[pb.Lease] // the lease each agent works on, renewed by its heartbeats
	conns  []*grpc.ClientConn

	phase  atomic.Int32 // hbPhase: which window the heartbeats now timed fall in
	mu     sync.Mutex
	hbLat  []float64 // ms, while recording
	hbLag  []float64 // ms a heartbeat started after it was due, while recording
	hbKind []hbKind  // the window and lease of each hbLat entry

	heartbeats, hbErrs atomic.Int64
	polls, pollErrs    atomic.Int64
	jobsDone, sendErrs atomic.Int64
	firstErrMu         sync.Mutex
	firstErr           error
	pollsStarted       atomic.Int64
	lastJob            atomic.Int64 // unix nanos of the last committed job
	wg                 sync.WaitGroup
	heartbeatEvery     atomic.Int64 // time.Duration
}

func (s *agentSim) noteErr(err error) {
	s.firstErrMu.Lock()
	defer s.firstErrMu.Unlock()
	if s.firstErr == nil {
		s.firstErr = err
	}
}

func (s *agentSim) err() error {
	s.firstErrMu.Lock()
	defer s.firstErrMu.Unlock()
	return s.firstErr
}

func (s *agentSim) register(ctx, runCtx context.Context, addr string, n int) error {
	s.agents = make([]*SimAgent, n)
	s.conns = make([]*grpc.ClientConn, n)
	s.held = make([]atomic.Pointer[pb.Lease], n)
	var next atomic.Int64
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				conn, err := DialLight(addr)
				if err != nil {
					errs <- err
					return
				}
				s.conns[i] = conn
				a, err := RegisterSimAgent(ctx, addr, conn, "bench", fmt.Sprintf("sim-%05d", i), leaseScope.String())
				if err != nil {
					errs <- err
					return
				}
				s.agents[i] = a
				s.startOne(runCtx, i, a)
			}
		}()
	}
	wg.Wait()
	close(errs)
	return errors.Join(<-errs, ctx.Err())
}

// startOne starts agent i's long-poll loop and heartbeats (first one at a
// random point of the interval) as soon as it registered, as a real agent.
func (s *agentSim) startOne(ctx context.Context, i int, a *SimAgent) {
	s.wg.Add(1)
	go s.poll(ctx, a, &s.held[i])
	every := a.HeartbeatEvery
	if every <= 0 {
		every = 10 * time.Second
	}
	s.heartbeatEvery.Store(int64(every))
	s.schedule(ctx, a, &s.held[i], every, time.Now().Add(time.Duration(rand.Int64N(int64(every)))))
}

// schedule heartbeats a every interval from first, like the agent's ticker:
// a heartbeat that ends after the next was due is followed at once, missed
// ones are not made up.
func (s *agentSim) schedule(ctx context.Context, a *SimAgent, held *atomic.Pointer[pb.Lease], every time.Duration, first time.Time) {
	next := first
	var t *time.Timer
	fire := func() {
		if ctx.Err() != nil {
			return
		}
		begin := time.Now()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		var leases []*pb.Lease
		if l := held.Load(); l != nil {
			leases = append(leases, l)
		}
		err := a.Heartbeat(cctx, leases...)
		cancel()
		took := time.Since(begin)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			s.hbErrs.Add(1)
			s.noteErr(fmt.Errorf("heartbeat: %w", err))
		default:
			s.heartbeats.Add(1)
		}
		if ph := hbPhase(s.phase.Load()); ph != phaseOff {
			s.mu.Lock()
			s.hbLat = append(s.hbLat, took.Seconds()*1000)
			s.hbLag = append(s.hbLag, begin.Sub(next).Seconds()*1000)
			s.hbKind = append(s.hbKind, hbKind{phase: ph, lease: len(leases) > 0})
			s.mu.Unlock()
		}
		next = next.Add(every)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		t.Reset(time.Until(next))
	}
	t = time.AfterFunc(time.Hour, fire)
	t.Reset(time.Until(first))
	context.AfterFunc(ctx, func() { t.Stop() })
}

func (s *agentSim) poll(ctx context.Context, a *SimAgent, held *atomic.Pointer[pb.Lease]) {
	defer s.wg.Done()
	s.pollsStarted.Add(1)
	for ctx.Err() == nil {
		l, err := a.Acquire(ctx, agentsPollWait)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			s.pollErrs.Add(1)
			s.noteErr(fmt.Errorf("acquire: %w", err))
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.polls.Add(1)
		if l == nil {
			continue
		}
		p, err := netip.ParsePrefix(l.GetNetwork())
		if err != nil {
			s.sendErrs.Add(1)
			s.noteErr(fmt.Errorf("lease network %q: %w", l.GetNetwork(), err))
			continue
		}
		held.Store(l)
		_, err = a.Send(ctx, l, tinyResults(p.Addr().Next().String()))
		held.Store(nil)
		if err != nil {
			if ctx.Err() == nil {
				s.sendErrs.Add(1)
				s.noteErr(fmt.Errorf("stream results: %w", err))
			}
			continue
		}
		s.jobsDone.Add(1)
		s.lastJob.Store(time.Now().UnixNano())
	}
}

func (s *agentSim) close() {
	s.wg.Wait()
	for _, c := range s.conns {
		if c != nil {
			c.Close()
		}
	}
}

// lostWatch records every agent the controller marks lost while the
// simulator holds them all connected.
type lostWatch struct {
	mu   sync.Mutex
	ids  map[string]bool
	errs int
}

func (w *lostWatch) run(ctx context.Context, pool *pgxpool.Pool) {
	for {
		rows, err := pool.Query(ctx, "SELECT id::text FROM agents WHERE state = 'lost'")
		if err == nil {
			for rows.Next() {
				var id string
				if rows.Scan(&id) == nil {
					w.mu.Lock()
					w.ids[id] = true
					w.mu.Unlock()
				}
			}
			rows.Close()
			err = rows.Err()
		}
		if err != nil && ctx.Err() == nil {
			w.mu.Lock()
			w.errs++
			w.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
	}
}

func (w *lostWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.ids)
}

func agentsAt(ctx context.Context, e *Env, o Options, n int) ([]Result, error) {
	dbName := fmt.Sprintf("bench_agents_%d", n)
	url, err := e.NewDatabase(ctx, dbName)
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase(dbName)
	c, err := e.StartController(ctx, fmt.Sprintf("controller-agents-%d", n), url)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if _, err := c.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return nil, fmt.Errorf("CreateSite: %w", err)
	}
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	pcfg.MaxConns = 2
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()

	sim := &agentSim{}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	watch := &lostWatch{ids: map[string]bool{}}
	go watch.run(runCtx, pool)

	e.Log.Info("registering simulated agents (one gRPC connection each)", "agents", n)
	begin := time.Now()
	simCPU0 := selfCPU()
	defer sim.close()
	if err := sim.register(ctx, runCtx, c.Addr, n); err != nil {
		stopRun()
		return nil, fmt.Errorf("register: %w", err)
	}
	defer stopRun()
	for sim.pollsStarted.Load() < int64(n) {
		time.Sleep(50 * time.Millisecond)
	}
	e.Log.Info("agents registered and long-polling", "agents", n, "elapsed", time.Since(begin).Round(time.Millisecond))
	// Let the first heartbeat round and the registrations' touches settle.
	if err := sleepCtx(ctx, time.Duration(sim.heartbeatEvery.Load())); err != nil {
		return nil, err
	}

	// Idle window: every agent long-polls and heartbeats; nothing to do.
	sim.phase.Store(int32(phaseIdle))
	e.Log.Info("idle window", "agents", n, "duration", o.AgentsIdle)
	ctrl0, _, _ := procCPU(c.PID(), false)
	var pg0 float64
	if e.pg != nil {
		pg0 = treeCPU(e.pg.PID())
	}
	hb0, polls0, sim0 := sim.heartbeats.Load(), sim.polls.Load(), selfCPU()
	if err := sleepCtx(ctx, o.AgentsIdle); err != nil {
		return nil, err
	}
	ctrl1, _, _ := procCPU(c.PID(), false)
	var pg1 float64
	if e.pg != nil {
		pg1 = treeCPU(e.pg.PID())
	}
	hbIdle, pollsIdle, simIdle := sim.heartbeats.Load()-hb0, sim.polls.Load()-polls0, selfCPU()-sim0
	if hbIdle == 0 {
		return nil, fmt.Errorf("no heartbeat succeeded in the idle window: %v", sim.err())
	}
	usPerHB := (ctrl1 - ctrl0) * 1e6 / float64(hbIdle)
	pgUsPerHB := (pg1 - pg0) * 1e6 / float64(hbIdle)
	e.Log.Info("idle window done", "heartbeats", hbIdle, "long_polls_ended", pollsIdle,
		"controller_cpu_s", round(ctrl1-ctrl0, 2), "postgres_cpu_s", round(pg1-pg0, 2), "simulator_cpu_s", round(simIdle, 2),
		"controller_us_per_heartbeat", round(usPerHB, 1))

	// Jobs window: jobs appear for the whole fleet; the agents long-polling
	// lease them and stream one host each.
	nets, err := jobNetworks(o.AgentsJobs)
	if err != nil {
		return nil, err
	}
	// A fresh admin connection: the first one sat idle through the idle
	// window and a starved client may miss the server's keepalive ping.
	adminConn, err := Dial(c.Addr)
	if err != nil {
		return nil, err
	}
	defer adminConn.Close()
	admin := pb.NewAdminServiceClient(adminConn)
	if err := e.startPGStats(ctx); err != nil {
		return nil, err
	}
	cpu := e.startCPU(c.PID())
	sim.phase.Store(int32(phaseJobs))
	done0 := sim.jobsDone.Load()
	jbegin := time.Now()
	total := 0
	for i, nw := range nets {
		t, err := admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: fmt.Sprintf("agents-%d", i), Network: nw.String(), Ports: "80"})
		if err != nil {
			return nil, fmt.Errorf("CreateTarget %s: %w", nw, err)
		}
		sn, err := admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: t.GetTarget().GetId()})
		if err != nil {
			return nil, fmt.Errorf("ScanNow %s: %w", nw, err)
		}
		total += len(sn.GetJobs())
	}
	deadline := time.Now().Add(5 * time.Minute)
	for sim.jobsDone.Load()-done0 < int64(total) {
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d jobs committed after 5 min (first error: %v)", sim.jobsDone.Load()-done0, total, sim.err())
		}
		if err := c.CheckAlive(); err != nil {
			return nil, err
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return nil, err
		}
	}
	jobsSec := time.Unix(0, sim.lastJob.Load()).Sub(jbegin).Seconds()
	jobsPerS := float64(total) / jobsSec
	jobsCPU := cpu.String()
	e.Log.Info("jobs window done", "jobs", total, "seconds", round(jobsSec, 2), "jobs_per_s", round(jobsPerS, 1), "cpu", jobsCPU)
	e.logPGStats(ctx, "agents jobs window", 20)
	sim.phase.Store(int32(phaseOff))
	steady := time.Since(begin)

	// Liveness: one more look after the last heartbeats.
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	lost := watch.count()
	rss, err := c.HWMMB()
	if err != nil {
		return nil, err
	}
	if err := c.CheckAlive(); err != nil {
		return nil, err
	}
	var goroutines = runtime.NumGoroutine()
	stopRun()
	simCPU := selfCPU() - simCPU0

	sim.mu.Lock()
	lat, lag := slices.Clone(sim.hbLat), slices.Clone(sim.hbLag)
	split := splitHeartbeats(sim.hbLat, sim.hbKind)
	sim.mu.Unlock()
	slices.Sort(lat)
	slices.Sort(lag)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	errNote := ""
	if sim.firstErr != nil {
		errNote = fmt.Sprintf("; first error: %v", sim.err())
	}
	common := fmt.Sprintf("%d simulated agents (one gRPC connection each, long-poll %s, heartbeat every %s, one site) against one controller, simulator on the same machine",
		n, agentsPollWait, time.Duration(sim.heartbeatEvery.Load()))
	m := agentsMetrics(n)
	meta := func(i int) (string, string) { x := metricMeta[m[i]]; return x[0], x[1] }
	u0, g0 := meta(0)
	u1, g1 := meta(1)
	u2, g2 := meta(2)
	u3, g3 := meta(3)
	u4, g4 := meta(4)
	e.Log.Info("agents result", "agents", n, "rss_mb", round(rss, 1), "hb_p50_ms", round(p50, 2), "hb_p99_ms", round(p99, 2),
		"hb_max_ms", round(lat[len(lat)-1], 1), "lost", lost, "jobs_per_s", round(jobsPerS, 1), "sim_cpu_s", round(simCPU, 1))
	return []Result{
		{Name: m[0], Value: f64(round(rss, 1)), Unit: u0, Goal: g0,
			Note: fmt.Sprintf("%s: controller peak RSS (VmHWM) over %s of registration, idle and jobs; simulator %d goroutines", common, steady.Round(time.Second), goroutines)},
		{Name: m[1], Value: f64(round(p99, 2)), Unit: u1, Goal: g1,
			Note: fmt.Sprintf("%d heartbeat calls timed over the idle and jobs windows: p50 %.2f, p90 %.2f, max %.1f ms; start lag behind schedule p99 %.1f ms; %s; errors: %d heartbeat, %d long-poll, %d results; simulator CPU %.1f s over the run%s",
				len(lat), p50, percentile(lat, 90), lat[len(lat)-1], percentile(lag, 99), split, sim.hbErrs.Load(), sim.pollErrs.Load(), sim.sendErrs.Load(), simCPU, errNote)},
		{Name: m[2], Value: f64(float64(lost)), Unit: u2, Goal: g2,
			Note: fmt.Sprintf("distinct agents seen in state 'lost' (polled every 2 s, %d poll errors) while all stayed connected, over %s", watch.errs, steady.Round(time.Second))},
		{Name: m[3], Value: f64(round(jobsPerS, 1)), Unit: u3, Goal: g3,
			Note: fmt.Sprintf("%d jobs (ScanNow) leased by the long-polling fleet, one host streamed each; first ScanNow → last commit %.2f s; %s", total, jobsSec, jobsCPU)},
		{Name: m[4], Value: f64(round(usPerHB, 1)), Unit: u4, Goal: g4,
			Note: fmt.Sprintf("controller CPU over a %s idle window / heartbeats in it (%d; %d long-polls ended too): controller %.2f s; PostgreSQL %.2f s (%.1f µs/heartbeat); simulator %.2f s",
				o.AgentsIdle, hbIdle, pollsIdle, ctrl1-ctrl0, pg1-pg0, pgUsPerHB, simIdle)},
	}, nil
}

// hbPhase is the window a timed heartbeat falls in.
type hbPhase int32

const (
	phaseOff hbPhase = iota
	phaseIdle
	phaseJobs
)

// hbKind says where a heartbeat's time belongs: the p99 over both windows
// is the metric, and the split says which window (and whether renewing a
// lease, a database write) its tail comes from.
type hbKind struct {
	phase hbPhase
	lease bool
}

func splitHeartbeats(lat []float64, kinds []hbKind) string {
	groups := []struct {
		name string
		in   func(hbKind) bool
	}{
		{"idle window", func(k hbKind) bool { return k.phase == phaseIdle }},
		{"jobs window", func(k hbKind) bool { return k.phase == phaseJobs }},
		{"renewing a lease", func(k hbKind) bool { return k.lease }},
	}
	parts := make([]string, 0, len(groups))
	for _, g := range groups {
		var xs []float64
		for i, k := range kinds {
			if g.in(k) {
				xs = append(xs, lat[i])
			}
		}
		if len(xs) == 0 {
			parts = append(parts, g.name+": none")
			continue
		}
		slices.Sort(xs)
		parts = append(parts, fmt.Sprintf("%s: %d calls, p50 %.2f, p99 %.2f ms", g.name, len(xs), percentile(xs, 50), percentile(xs, 99)))
	}
	return strings.Join(parts, "; ")
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

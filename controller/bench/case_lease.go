package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// controllerPoolSize is the controller's default database pool (server.Config.MaxConns).
const controllerPoolSize = 40

// leaseScope is where the lease case's jobs live: shards (/120, 256
// addresses each) of an IPv6 documentation prefix. The jobs are rows served
// to simulated agents; nothing is ever probed, and the range says so.
var leaseScope = netip.MustParsePrefix("2001:db8:1::/96")

// jobNetworks splits n shard-sized jobs into as few targets as ScanNow
// allows (at most jobs.MaxShards shards per run), consecutively from the
// start of leaseScope.
func jobNetworks(n int) ([]netip.Prefix, error) {
	if n < 1 || n > 1<<16 {
		return nil, fmt.Errorf("jobs must be 1..65536 (shards of %s), got %d", leaseScope, n)
	}
	maxK := bits.Len(uint(jobs.MaxShards)) - 1
	base := leaseScope.Addr().As16()
	next := binary.BigEndian.Uint32(base[12:])
	shardSize := uint32(1) << (128 - jobs.ShardBitsV6)
	var out []netip.Prefix
	for left := n; left > 0; {
		k := min(bits.Len(uint(left))-1, maxK)
		a := base
		binary.BigEndian.PutUint32(a[12:], next)
		out = append(out, netip.PrefixFrom(netip.AddrFrom16(a), jobs.ShardBitsV6-k))
		next += uint32(1<<k) * shardSize
		left -= 1 << k
	}
	return out, nil
}

func runLease(ctx context.Context, e *Env, o Options) ([]Result, error) {
	nets, err := jobNetworks(o.LeaseJobs)
	if err != nil {
		return nil, err
	}
	// The jobs are created through the product (CreateTarget + ScanNow) in
	// the baseline's database, which is then cloned for the other runs: all
	// runs start from identical rows.
	sqlURL, err := e.NewDatabase(ctx, "bench_lease_sql")
	if err != nil {
		return nil, err
	}
	setup, err := e.StartController(ctx, "controller-lease-setup", sqlURL)
	if err != nil {
		return nil, err
	}
	err = createLeaseJobs(ctx, e, setup, nets, o.LeaseJobs)
	setup.Stop()
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase("bench_lease_sql")
	grpcURL, err := e.CloneDatabase(ctx, "bench_lease_sql", "bench_lease_grpc")
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase("bench_lease_grpc")
	bareURL, err := e.CloneDatabase(ctx, "bench_lease_sql", "bench_lease_bare")
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase("bench_lease_bare")

	ours, agentIDs, oursCPU, err := leaseThroughController(ctx, e, grpcURL, o)
	if err != nil {
		return nil, err
	}
	base, baseCPU, err := leaseBaseline(ctx, e, sqlURL, agentIDs, o.LeaseJobs, true)
	if err != nil {
		return nil, fmt.Errorf("baseline SQL loop: %w", err)
	}
	bare, bareCPU, err := leaseBaseline(ctx, e, bareURL, agentIDs, o.LeaseJobs, false)
	if err != nil {
		return nil, fmt.Errorf("bare SQL loop: %w", err)
	}
	ratio, bareRatio := ours/base, ours/bare
	e.Log.Info("lease_throughput_vs_sql", "grpc_jobs_per_s", round(ours, 1), "sql_jobs_per_s", round(base, 1), "ratio", round(ratio, 3),
		"bare_sql_jobs_per_s", round(bare, 1), "bare_ratio", round(bareRatio, 3))
	return []Result{{
		Name: "lease_throughput_vs_sql", Value: f64(round(ours, 1)), Unit: "jobs/s", Baseline: f64(round(base, 1)),
		Ratio: f64(round(ratio, 3)), Goal: "≥ 0.5",
		Note: fmt.Sprintf("%d jobs, %d simulated agents each AcquireJob → StreamResults (1 host, 1 port) → ack; "+
			"baseline: %d goroutines on a %d-connection pool running the same statements the controller runs "+
			"(AcquireJob, then CommitJobs with the same rows, one job per call). gRPC run %s; baseline %s",
			o.LeaseJobs, o.LeaseAgents, o.LeaseAgents, controllerPoolSize, oursCPU, baseCPU),
	}, {
		Name: "lease_throughput_vs_bare_sql", Value: f64(round(ours, 1)), Unit: "jobs/s", Baseline: f64(round(bare, 1)),
		Ratio: f64(round(bareRatio, 3)), Goal: "-",
		Note: fmt.Sprintf("the same gRPC run against AcquireJob + a bare status update that writes no results "+
			"(what lease_throughput_vs_sql compared with until 2026-12-01); baseline %s", bareCPU),
	}}, nil
}

func createLeaseJobs(ctx context.Context, e *Env, c *Controller, nets []netip.Prefix, want int) error {
	if _, err := c.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return fmt.Errorf("CreateSite: %w", err)
	}
	begin := time.Now()
	total := 0
	for i, n := range nets {
		t, err := c.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: fmt.Sprintf("lease-%d", i), Network: n.String(), Ports: "80"})
		if err != nil {
			return fmt.Errorf("CreateTarget %s: %w", n, err)
		}
		sn, err := c.Admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: t.GetTarget().GetId()})
		if err != nil {
			return fmt.Errorf("ScanNow %s: %w", n, err)
		}
		total += len(sn.GetJobs())
		e.Log.Info("created jobs", "target", n, "jobs", len(sn.GetJobs()), "total", total)
	}
	if total != want {
		return fmt.Errorf("created %d jobs, want %d", total, want)
	}
	e.Log.Info("jobs ready", "jobs", total, "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// leaseThroughController runs the agents against a controller and returns jobs/s.
func leaseThroughController(ctx context.Context, e *Env, url string, o Options) (float64, []string, string, error) {
	c, err := e.StartController(ctx, "controller-lease", url)
	if err != nil {
		return 0, nil, "", err
	}
	defer c.Stop()
	agents := make([]*SimAgent, o.LeaseAgents)
	ids := make([]string, o.LeaseAgents)
	for i := range agents {
		a, err := RegisterSimAgent(ctx, c.Addr, nil, "bench", fmt.Sprintf("sim-%03d", i), leaseScope.String())
		if err != nil {
			return 0, nil, "", err
		}
		defer a.Close()
		agents[i], ids[i] = a, a.ID
	}
	if err := e.Checkpoint(ctx); err != nil {
		return 0, nil, "", err
	}
	e.Log.Info("gRPC run: agents acquire → stream → commit", "agents", len(agents), "jobs", o.LeaseJobs)

	runCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var (
		done    atomic.Int64
		endNano atomic.Int64
		errOnce sync.Once
		runErr  error
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { runErr = err; cancel() })
	}
	total := int64(o.LeaseJobs)
	if err := e.startPGStats(ctx); err != nil {
		return 0, nil, "", err
	}
	cpu := e.startCPU(c.PID())
	begin := time.Now()
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				l, err := a.Acquire(runCtx, 2*time.Second)
				if err != nil {
					if runCtx.Err() == nil {
						fail(fmt.Errorf("agent %s: AcquireJob: %w", a.Name, err))
					}
					return
				}
				if l == nil {
					continue
				}
				n, err := netip.ParsePrefix(l.GetNetwork())
				if err != nil {
					fail(fmt.Errorf("lease network %q: %w", l.GetNetwork(), err))
					return
				}
				ack, err := a.Send(runCtx, l, tinyResults(n.Addr().Next().String()))
				if err != nil {
					if runCtx.Err() == nil {
						fail(fmt.Errorf("agent %s: StreamResults for job %s: %w", a.Name, l.GetJobId(), err))
					}
					return
				}
				if ack.GetPortRows() != 1 {
					fail(fmt.Errorf("job %s acknowledged %d port rows, want 1", l.GetJobId(), ack.GetPortRows()))
					return
				}
				if done.Add(1) == total {
					endNano.Store(time.Now().UnixNano())
					cancel()
				}
			}
		}()
	}
	progress := time.NewTicker(5 * time.Second)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
loop:
	for {
		select {
		case <-finished:
			break loop
		case <-progress.C:
			el := time.Since(begin).Seconds()
			e.Log.Info("gRPC run progress", "committed", done.Load(), "of", total, "jobs_per_s", round(float64(done.Load())/el, 1))
			if err := c.CheckAlive(); err != nil {
				fail(err)
			}
		}
	}
	progress.Stop()
	if runErr != nil {
		return 0, nil, "", fmt.Errorf("%w\ncontroller log:\n%s", runErr, c.Tail(15))
	}
	if done.Load() != total {
		return 0, nil, "", fmt.Errorf("only %d of %d jobs committed within the time limit", done.Load(), total)
	}
	sec := time.Unix(0, endNano.Load()).Sub(begin).Seconds()
	rate := float64(total) / sec
	cpuNote := cpu.String()
	e.Log.Info("gRPC run done", "jobs", total, "seconds", round(sec, 2), "jobs_per_s", round(rate, 1), "cpu", cpuNote)
	e.logPGStats(ctx, "lease gRPC run", 20)
	if err := checkCompleted(ctx, url, total); err != nil {
		return 0, nil, "", err
	}
	return rate, ids, cpuNote, nil
}

// leaseBaseline runs the controller's statements directly, with the same
// concurrency, and returns jobs/s: AcquireJob, then CommitJobs with the one
// host and port the simulated agents report. Without results it completes
// each job with a bare CompleteJob instead, writing no results at all.
func leaseBaseline(ctx context.Context, e *Env, url string, workerIDs []string, total int, results bool) (float64, string, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return 0, "", err
	}
	cfg.MaxConns = controllerPoolSize
	ingest.ConfigurePool(cfg) // CommitJobs stages rows in the session's TEMP tables, as in the controller
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return 0, "", err
	}
	defer pool.Close()
	q := db.New(pool)
	var siteID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT id FROM sites WHERE name = 'bench'").Scan(&siteID); err != nil {
		return 0, "", fmt.Errorf("read site: %w", err)
	}
	if err := e.Checkpoint(ctx); err != nil {
		return 0, "", err
	}
	phase := "lease SQL baseline (AcquireJob + CommitJobs)"
	if !results {
		phase = "lease bare SQL baseline (AcquireJob + CompleteJob, no results)"
	}
	e.Log.Info(phase, "workers", len(workerIDs), "pool", controllerPoolSize, "jobs", total)
	runCtx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var (
		done    atomic.Int64
		errOnce sync.Once
		runErr  error
		wg      sync.WaitGroup
	)
	stats := []byte(`{"hosts_down":0,"hosts_sent":1,"open_ports":1,"elapsed_seconds":1,"nmap_version":"7.93","scanned_tcp":"80"}`)
	if err := e.startPGStats(ctx); err != nil {
		return 0, "", err
	}
	cpu := e.startCPU(0)
	begin := time.Now()
	for _, id := range workerIDs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for runCtx.Err() == nil {
				job, err := q.AcquireJob(runCtx, db.AcquireJobParams{
					SiteID: siteID, Scope: []netip.Prefix{leaseScope}, RawSockets: false, WorkerID: id, TtlSeconds: 30,
				})
				if errors.Is(err, pgx.ErrNoRows) {
					return // the rest is taken
				}
				if err != nil {
					errOnce.Do(func() { runErr = fmt.Errorf("AcquireJob: %w", err); cancel() })
					return
				}
				var n int64
				if results {
					var rows []db.CommitJobsRow
					rows, err = q.CommitJobs(runCtx, tinyCommit(job.ID, id, job.LeaseToken, job.Network, stats))
					if err == nil && (len(rows) != 1 || rows[0].Outcome != "committed") {
						err = fmt.Errorf("commit: %+v", rows)
					}
					if err == nil {
						n = rows[0].PortRows
					}
				} else {
					n, err = q.CompleteJob(runCtx, db.CompleteJobParams{
						CompletedAt: pgtype.Timestamptz{Time: time.Now(), Valid: true}, ScanStats: stats,
						ID: job.ID, WorkerID: id, LeaseToken: job.LeaseToken,
					})
				}
				if err == nil && n != 1 {
					err = fmt.Errorf("wrote %d rows", n)
				}
				if err != nil {
					errOnce.Do(func() { runErr = fmt.Errorf("complete job %s: %w", job.ID, err); cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	sec := time.Since(begin).Seconds()
	if runErr != nil {
		return 0, "", runErr
	}
	if done.Load() != int64(total) {
		return 0, "", fmt.Errorf("baseline completed %d of %d jobs", done.Load(), total)
	}
	rate := float64(total) / sec
	cpuNote := cpu.String()
	e.Log.Info("baseline done", "jobs", total, "seconds", round(sec, 2), "jobs_per_s", round(rate, 1), "cpu", cpuNote)
	e.logPGStats(ctx, phase, 20)
	if err := checkCompleted(ctx, url, int64(total)); err != nil {
		return 0, "", err
	}
	return rate, cpuNote, nil
}

func checkCompleted(ctx context.Context, url string, want int64) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM scan_jobs WHERE status = 'completed'").Scan(&n); err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("%d jobs completed in the database, want %d", n, want)
	}
	return nil
}

// tinyCommit is the CommitJobs call the controller runs for tinyResults on
// a job of network n, as a batch of that one job: the same host, port and
// port ranges.
func tinyCommit(job uuid.UUID, worker string, token int64, n netip.Prefix, stats []byte) db.CommitJobsParams {
	return db.CommitJobsParams{
		JobIds: []uuid.UUID{job}, WorkerIds: []string{worker}, LeaseTokens: []int64{token},
		ScannedTcp: []string{"{[80,80]}"}, ScannedUdp: []string{"{}"}, Stats: [][]byte{stats},
		HostCounts: []int32{1}, PortCounts: []int32{1},
		HIp: []netip.Addr{n.Addr().Next()}, HStatus: []string{"up"}, HReason: []string{"syn-ack"},
		HMac: []net.HardwareAddr{nil}, HVendor: []string{""}, HHostname: []string{""},
		HOsName: []string{""}, HOsFamily: []string{""}, HOsConf: []int16{0},
		PIp: []netip.Addr{n.Addr().Next()}, PProtocol: []string{"tcp"}, PPort: []int32{80}, PState: []string{"open"},
		PReason: []string{"syn-ack"}, PName: []string{"http"}, PProduct: []string{""}, PVersion: []string{""},
		PExtra: []string{""}, PScripts: [][]byte{nil},
	}
}

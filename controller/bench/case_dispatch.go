package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const dispatchWarmup = 10

// percentile is the nearest-rank percentile of sorted samples.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

type acquired struct {
	lease *pb.Lease
	at    time.Time
	err   error
}

func runDispatch(ctx context.Context, e *Env, o Options) ([]Result, error) {
	url, err := e.NewDatabase(ctx, "bench_dispatch")
	if err != nil {
		return nil, err
	}
	defer e.DropDatabase("bench_dispatch")
	c, err := e.StartController(ctx, "controller-dispatch", url)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if _, err := c.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return nil, fmt.Errorf("CreateSite: %w", err)
	}
	t, err := c.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: "dispatch", Network: "10.99.30.1/32", Ports: "80"})
	if err != nil {
		return nil, fmt.Errorf("CreateTarget: %w", err)
	}
	agent, err := RegisterSimAgent(ctx, c.Addr, nil, "bench", "sim-dispatch", "10.99.30.0/24")
	if err != nil {
		return nil, err
	}
	defer agent.Close()

	trials := o.DispatchTrials + dispatchWarmup
	e.Log.Info("ScanNow → lease held by a long-polling agent", "trials", o.DispatchTrials, "warmup", dispatchWarmup)
	lat := make([]float64, 0, o.DispatchTrials)
	r := rand.New(rand.NewPCG(7, 7))
	for i := range trials {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		got := make(chan acquired, 1)
		go func() {
			l, err := agent.Acquire(ctx, 30*time.Second)
			got <- acquired{lease: l, at: time.Now(), err: err}
		}()
		// Let the long-poll park in the controller (a job that appears
		// earlier is found by its first query, which is no slower).
		time.Sleep(time.Duration(15+r.IntN(15)) * time.Millisecond)
		begin := time.Now()
		sn, err := c.Admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: t.GetTarget().GetId()})
		if err != nil {
			return nil, fmt.Errorf("ScanNow: %w", err)
		}
		a := <-got
		if a.err != nil {
			return nil, fmt.Errorf("AcquireJob: %w", a.err)
		}
		if a.lease == nil || len(sn.GetJobs()) != 1 || a.lease.GetJobId() != sn.GetJobs()[0].GetId() {
			return nil, fmt.Errorf("trial %d: agent got lease %v for ScanNow jobs %v", i, a.lease, sn.GetJobs())
		}
		ms := a.at.Sub(begin).Seconds() * 1000
		if i >= dispatchWarmup {
			lat = append(lat, ms)
		}
		// Finish the job so nothing is left to lease (or to be reaped and leased again).
		if _, err := agent.Send(ctx, a.lease, tinyResults("10.99.30.1")); err != nil {
			return nil, fmt.Errorf("commit trial job: %w", err)
		}
		if (i+1)%100 == 0 {
			e.Log.Info("dispatch progress", "trials", i+1, "of", trials)
		}
	}
	slices.Sort(lat)
	p50, p99 := percentile(lat, 50), percentile(lat, 99)
	e.Log.Info("dispatch latency", "p50_ms", round(p50, 2), "p99_ms", round(p99, 2), "max_ms", round(lat[len(lat)-1], 2))
	note := fmt.Sprintf("%d trials (after %d warm-up): ScanNow call start → AcquireJob (long-poll, 30s wait) returns the lease; min %.1f, p90 %.1f, max %.1f ms",
		len(lat), dispatchWarmup, lat[0], percentile(lat, 90), lat[len(lat)-1])
	return []Result{
		{Name: "dispatch_latency_p50_ms", Value: f64(round(p50, 2)), Unit: "ms", Goal: "-", Note: note},
		{Name: "dispatch_latency_p99_ms", Value: f64(round(p99, 2)), Unit: "ms", Goal: "< 50", Note: note},
	}, nil
}

// Command scanorama-bench runs Scanorama's benchmark cases (docs/DESIGN.md,
// § Benchmarks) and writes bench/results.json.
//
//	scanorama-bench [--case NAME[,NAME...]] [--out bench/results.json] [--keep] [-v]
//
// `make bench` runs every case; `make bench CASE=name` runs one. NAME is a
// case name (e.g. ingest_vs_copy) or a group (ingest, lease, dispatch, agent,
// agents, scale); `make bench-data` runs the scale group.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/bench"
	"github.com/scanorama/scanorama/deploy/listener"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.ListenerCommand {
		os.Exit(listener.Main(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("scanorama-bench", flag.ContinueOnError)
	caseFlag := fs.String("case", "", "case or group to run, comma separated (default: all): "+strings.Join(bench.KnownNames(), ", "))
	out := fs.String("out", filepath.Join("bench", "results.json"), "results file (relative paths are relative to the repository root)")
	keep := fs.Bool("keep", false, "keep the scratch directory (PostgreSQL cluster, logs) for inspection")
	reuse := fs.String("reuse", "", "reuse the scratch directory an earlier --keep run printed (its PostgreSQL cluster; the scale cases measure on the dataset it holds instead of generating one); implies --keep")
	pgStats := fs.Bool("pg-stats", false, "load pg_stat_statements and log the statements that cost PostgreSQL the most in each timed phase")
	verbose := fs.Bool("v", false, "debug logging (also for the controllers and agents started; their logs are under the scratch directory)")
	o := bench.DefaultOptions()
	fs.IntVar(&o.IngestHosts, "ingest-hosts", o.IngestHosts, "ingest case: hosts in the job (≤ 254)")
	fs.IntVar(&o.IngestPorts, "ingest-ports", o.IngestPorts, "ingest case: ports per host")
	fs.IntVar(&o.IngestRuns, "ingest-runs", o.IngestRuns, "ingest case: alternating COPY/controller runs (best of each counts)")
	fs.IntVar(&o.LeaseJobs, "lease-jobs", o.LeaseJobs, "lease case: jobs")
	fs.IntVar(&o.LeaseAgents, "lease-agents", o.LeaseAgents, "lease case: concurrent agents")
	fs.IntVar(&o.DispatchTrials, "dispatch-trials", o.DispatchTrials, "dispatch case: trials")
	fs.IntVar(&o.AgentTrials, "agent-trials", o.AgentTrials, "agent overhead case: trials of each side")
	fs.IntVar(&o.ScaleMonthRows, "scale-month-rows", o.ScaleMonthRows, "scale cases: port_scans rows in each of the dataset's 12 months, at least --scale-hosts (e.g. 100000 for a quick check)")
	fs.IntVar(&o.ScaleHosts, "scale-hosts", o.ScaleHosts, "scale cases: hosts in the dataset, over --scale-sites sites (e.g. 20000 for a quick check)")
	fs.IntVar(&o.ScaleSites, "scale-sites", o.ScaleSites, "scale cases: sites; the first in 10.99.0.0/16 (at most 64,512 hosts), the others each in a /108 of 2001:db8::/32")
	fs.IntVar(&o.ScaleReads, "scale-reads", o.ScaleReads, "scale cases: timed calls of each admin read")
	fs.IntVar(&o.ImportMB, "import-mb", o.ImportMB, "import case: megabytes of generated nmap XML imported")
	fs.IntVar(&o.ScaleIngestRuns, "scale-ingest-runs", o.ScaleIngestRuns, "scale cases: month-1/month-12 ingest pairs (best of each counts, ≤ 4)")
	fs.DurationVar(&o.AgentsIdle, "agents-idle", o.AgentsIdle, "agents case: idle window (CPU per heartbeat is measured over it)")
	fs.IntVar(&o.AgentsJobs, "agents-jobs", o.AgentsJobs, "agents case: jobs leased by the simulated fleet")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "scanorama-bench: unexpected argument %q (flags start with --)\n", fs.Arg(0))
		return 2
	}
	level := hclog.Info
	if *verbose {
		level = hclog.Debug
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: level, Output: os.Stderr, TimeFormat: "15:04:05.000"})

	sel, err := bench.Select(*caseFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scanorama-bench: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if err := bench.CheckPrereqs(ctx, sel); err != nil {
		fmt.Fprintf(os.Stderr, "scanorama-bench: %v\n", err)
		return 1
	}
	wd, _ := os.Getwd()
	root, err := bench.FindRoot(wd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "scanorama-bench: %v\n", err)
		return 1
	}
	outPath := *out
	if !filepath.IsAbs(outPath) {
		outPath = filepath.Join(root, outPath)
	}
	var env *bench.Env
	if *reuse != "" {
		env, err = bench.ReuseEnv(root, *reuse, log)
	} else {
		env, err = bench.NewEnv(root, *keep, log)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "scanorama-bench: %v\n", err)
		return 1
	}
	defer env.Close()
	env.PGStats = *pgStats
	if *verbose {
		env.ChildLogLevel = "debug"
	}

	begin := time.Now()
	var results []bench.Result
	var failed []string
	for _, s := range sel {
		if ctx.Err() != nil {
			break
		}
		gbegin := time.Now()
		log.Info("=== case group "+s.Group.Name, "cases", strings.Join(s.Metrics, ","))
		opts := o
		opts.Metrics = s.Metrics
		rs, err := s.Group.Run(ctx, env, opts)
		if err != nil {
			if ctx.Err() != nil {
				err = errors.Join(err, context.Cause(ctx))
			}
			log.Error("case group failed", "group", s.Group.Name, "error", err)
			failed = append(failed, s.Group.Name)
			for _, m := range s.Metrics {
				results = append(results, bench.FailedResult(m, err))
			}
			continue
		}
		for _, r := range rs {
			for _, m := range s.Metrics {
				if r.Name == m {
					results = append(results, r)
				}
			}
		}
		log.Info("=== case group done", "group", s.Group.Name, "elapsed", time.Since(gbegin).Round(time.Second))
	}

	fmt.Println()
	bench.PrintTable(os.Stdout, results)
	if err := bench.WriteJSON(outPath, results); err != nil {
		fmt.Fprintf(os.Stderr, "scanorama-bench: write %s: %v\n", outPath, err)
		return 1
	}
	fmt.Printf("\nwrote %s (%s)\n", outPath, time.Since(begin).Round(time.Second))
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "scanorama-bench: interrupted")
		return 130
	}
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "scanorama-bench: case groups failed: %s (see the log above)\n", strings.Join(failed, ", "))
		return 1
	}
	return 0
}

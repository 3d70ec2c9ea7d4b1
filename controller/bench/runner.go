package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Group is a set of cases measured together (one setup yields them all).
type Group struct {
	Name string
	// Metrics are the result names the group produces, in order.
	Metrics []string
	// Needs lists prerequisite checks beyond PostgreSQL and Go.
	Needs []Prereq
	Run   func(ctx context.Context, e *Env, o Options) ([]Result, error)
}

// Options tune case sizes (the defaults are the designed cases).
type Options struct {
	IngestHosts    int // hosts in the ingest job
	IngestPorts    int // ports per host
	IngestRuns     int // alternating baseline/product runs; the best of each counts
	LeaseJobs      int
	LeaseAgents    int
	DispatchTrials int
	AgentTrials    int // overhead trials (pairs)
	// ScaleMonthRows is the port_scans rows of each of the scale dataset's 12 months.
	ScaleMonthRows  int
	ScaleHosts      int           // hosts of the scale dataset, over ScaleSites sites
	ScaleSites      int           // sites: one IPv4 (10.99.0.0/16), the others IPv6 (2001:db8::/32)
	ScaleReads      int           // timed calls of each admin read
	ScaleIngestRuns int           // month-1/month-12 ingest pairs; the best of each counts
	AgentsIdle      time.Duration // agents case: the idle window CPU per heartbeat is measured over
	AgentsJobs      int           // agents case: jobs the fleet leases in the jobs window
	ImportMB        int           // import case: size of the generated nmap XML file
	// Metrics are the results the caller wants from the group (all when empty).
	Metrics []string
}

// Wants reports whether the caller asked for metric name.
func (o Options) Wants(name string) bool {
	return len(o.Metrics) == 0 || slices.Contains(o.Metrics, name)
}

// DefaultOptions are the sizes the design names.
func DefaultOptions() Options {
	return Options{IngestHosts: 250, IngestPorts: 4000, LeaseJobs: 10000, LeaseAgents: 100, DispatchTrials: 500, AgentTrials: 5, IngestRuns: 3,
		ScaleMonthRows: 1_700_000, ScaleHosts: 1_000_000, ScaleSites: 4, ScaleReads: 300, ScaleIngestRuns: 2,
		AgentsIdle: 60 * time.Second, AgentsJobs: 1000, ImportMB: 100}
}

// Groups lists every case group in run order.
func Groups() []Group {
	return []Group{
		{Name: "ingest", Metrics: []string{"ingest_vs_copy", "controller_ingest_peak_rss_mb"}, Run: runIngest},
		{Name: "lease", Metrics: []string{"lease_throughput_vs_sql", "lease_throughput_vs_bare_sql"}, Run: runLease},
		{Name: "dispatch", Metrics: []string{"dispatch_latency_p50_ms", "dispatch_latency_p99_ms"}, Run: runDispatch},
		{Name: "agent", Metrics: []string{"agent_overhead_vs_nmap", "agent_rss_growth_mb"},
			Needs: []Prereq{needRoot, needIP, needNmap, needNetns}, Run: runAgent},
		{Name: "feed", Metrics: []string{"change_feed_lag_p99_ms", "webhook_latency_p99_ms", "webhook_burst_50k_vs_bare"}, Run: runChangeFeed},
		{Name: "agents", Metrics: agentsAllMetrics(), Run: runAgents},
		{Name: "import", Metrics: []string{"import_100mb", "import_100mb_peak_rss_mb"}, Run: runImport},
		// Retention runs last: it archives a month of the shared dataset.
		{Name: "scale", Metrics: []string{"list_hosts_cidr_p99_ms", "get_host_p99_ms", "list_host_changes_p99_ms",
			"ingest_month12_vs_month1", "retention_month_s"}, Run: runScale},
	}
}

// Selection is what --case asked for.
type Selection struct {
	Group   Group
	Metrics []string // the group's results to report
}

// Select resolves --case: empty means everything; otherwise a comma list
// of case names and/or group names.
func Select(spec string) ([]Selection, error) {
	groups := Groups()
	if strings.TrimSpace(spec) == "" {
		out := make([]Selection, len(groups))
		for i, g := range groups {
			out[i] = Selection{Group: g, Metrics: g.Metrics}
		}
		return out, nil
	}
	want := map[string][]string{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		found := false
		for _, g := range groups {
			if g.Name == name {
				want[g.Name] = g.Metrics
				found = true
			} else if slices.Contains(g.Metrics, name) {
				if !slices.Contains(want[g.Name], name) {
					want[g.Name] = append(want[g.Name], name)
				}
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("--case: unknown case %q; known: %s", name, strings.Join(KnownNames(), ", "))
		}
	}
	var out []Selection
	for _, g := range groups {
		if m, ok := want[g.Name]; ok {
			var ordered []string
			for _, n := range g.Metrics {
				if slices.Contains(m, n) {
					ordered = append(ordered, n)
				}
			}
			out = append(out, Selection{Group: g, Metrics: ordered})
		}
	}
	return out, nil
}

// KnownNames lists every case and group name.
func KnownNames() []string {
	var out []string
	for _, g := range Groups() {
		out = append(out, g.Metrics...)
	}
	for _, g := range Groups() {
		out = append(out, g.Name+" (group)")
	}
	return out
}

// Prereq checks one prerequisite and says how to fix it.
type Prereq func(ctx context.Context) error

func needGo(context.Context) error {
	if _, err := exec.LookPath("go"); err != nil {
		return errors.New("the go toolchain is not in PATH (the bench builds scanorama-controller and scanorama-agent with `go build`)")
	}
	return nil
}

func needPostgres(context.Context) error {
	if os.Getenv("SCANORAMA_PG_BINDIR") != "" {
		return nil
	}
	if _, err := exec.LookPath("pg_ctl"); err == nil {
		return nil
	}
	if m, _ := globAny("/usr/lib/postgresql/*/bin/pg_ctl"); m {
		return nil
	}
	return errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found: run `make deps` (or `apt-get install postgresql`), or set SCANORAMA_PG_BINDIR")
}

func needRoot(context.Context) error {
	if os.Geteuid() != 0 {
		return errors.New("the agent cases create network namespaces and must run as root (sudo make bench CASE=agent)")
	}
	return nil
}

func needIP(context.Context) error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("`ip` (iproute2) is not in PATH: apt-get install iproute2")
	}
	return nil
}

func needNmap(context.Context) error {
	if _, err := exec.LookPath("nmap"); err != nil {
		return errors.New("nmap is not in PATH: run `make deps` (or `apt-get install nmap`)")
	}
	return nil
}

func needNetns(ctx context.Context) error {
	if os.Geteuid() != 0 {
		return nil // reported by needRoot
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil // reported by needIP
	}
	return probeNetns(ctx)
}

// CheckPrereqs runs every check the selection needs and joins the failures.
func CheckPrereqs(ctx context.Context, sel []Selection) error {
	checks := []Prereq{needGo, needPostgres}
	for _, s := range sel {
		checks = append(checks, s.Group.Needs...)
	}
	var errs []string
	seen := map[string]bool{}
	for _, c := range checks {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := c(cctx)
		cancel()
		if err != nil && !seen[err.Error()] {
			seen[err.Error()] = true
			errs = append(errs, "  - "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("missing prerequisites:\n%s", strings.Join(errs, "\n"))
	}
	return nil
}

func globAny(pattern string) (bool, error) {
	m, err := filepath.Glob(pattern)
	return len(m) > 0, err
}

// metricMeta is each case's unit and goal, for rows of failed cases.
var metricMeta = map[string][2]string{
	"ingest_vs_copy":                {"s", "≤ 1.5"},
	"controller_ingest_peak_rss_mb": {"MB", "< 200"},
	"lease_throughput_vs_sql":       {"jobs/s", "≥ 0.5"},
	"lease_throughput_vs_bare_sql":  {"jobs/s", "-"},
	"dispatch_latency_p50_ms":       {"ms", "-"},
	"dispatch_latency_p99_ms":       {"ms", "< 50"},
	"agent_overhead_vs_nmap":        {"s", "≤ 1.05"},
	"agent_rss_growth_mb":           {"MB", "< 64"},
	"list_hosts_cidr_p99_ms":        {"ms", "< 20"},
	"get_host_p99_ms":               {"ms", "< 20"},
	"list_host_changes_p99_ms":      {"ms", "< 20"},
	"ingest_month12_vs_month1":      {"s", "≤ 1.1"},
	"retention_month_s":             {"s", "< 5"},
	"change_feed_lag_p99_ms":        {"ms", "< 100"},
	"webhook_latency_p99_ms":        {"ms", "< 500"},
	"webhook_burst_50k_vs_bare":     {"s", "≤ 2"},
	"import_100mb":                  {"s", "-"},
	"import_100mb_peak_rss_mb":      {"MB", "growth < 64 MB"},
}

// FailedResult is the row of a case that could not be measured.
func FailedResult(name string, err error) Result {
	m := metricMeta[name]
	msg, _, _ := strings.Cut(err.Error(), "\n")
	return Result{Name: name, Unit: m[0], Goal: m[1], Note: "FAILED: " + msg}
}

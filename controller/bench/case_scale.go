package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const (
	scaleReadWarmup = 20
	scaleDB         = "bench_scale"
)

// runScale generates a year of data once and measures on it, in order: the
// admin reads, the 1M-row ingest against the same ingest into an empty
// database, and last (it changes the data) archiving the oldest month.
func runScale(ctx context.Context, e *Env, o Options) ([]Result, error) {
	if o.ScaleIngestRuns < 1 || o.ScaleIngestRuns > len(scaleIngestNets) {
		return nil, fmt.Errorf("scale ingest runs must be 1..%d, got %d", len(scaleIngestNets), o.ScaleIngestRuns)
	}
	if o.IngestHosts < 1 || o.IngestHosts > 254 {
		return nil, fmt.Errorf("ingest hosts must be 1..254 (one /24 job), got %d", o.IngestHosts)
	}
	var d *scaleData
	if e.Reused {
		var err error
		if d, err = loadScaleData(ctx, e, scaleDB, o.ScaleHosts, o.ScaleSites); err != nil {
			return nil, fmt.Errorf("reuse the scale data: %w", err)
		}
	}
	if d == nil {
		e.Log.Info("generating a year of data", "month_rows", o.ScaleMonthRows, "hosts", o.ScaleHosts, "sites", o.ScaleSites)
		var err error
		if d, err = generateScaleData(ctx, e, scaleDB, o.ScaleHosts, o.ScaleSites, o.ScaleMonthRows); err != nil {
			return nil, err
		}
	}
	defer e.DropDatabase(scaleDB)
	e.Log.Info(d.Summary())
	if err := e.Checkpoint(ctx); err != nil {
		return nil, err
	}

	var out []Result
	if o.Wants("list_hosts_cidr_p99_ms") || o.Wants("get_host_p99_ms") || o.Wants("list_host_changes_p99_ms") {
		rs, err := scaleReads(ctx, e, d, o)
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	if o.Wants("ingest_month12_vs_month1") {
		r, err := scaleIngest(ctx, e, d, o)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if o.Wants("retention_month_s") {
		r, err := scaleRetention(ctx, e, d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// timeCalls runs call warm-up times untimed, then n times timed, and returns
// the sorted latencies in ms.
func timeCalls(ctx context.Context, n int, call func(ctx context.Context, i int) error) ([]float64, error) {
	lat := make([]float64, 0, n)
	for i := range n + scaleReadWarmup {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		begin := time.Now()
		err := call(cctx, i)
		ms := time.Since(begin).Seconds() * 1000
		cancel()
		if err != nil {
			return nil, err
		}
		if i >= scaleReadWarmup {
			lat = append(lat, ms)
		}
	}
	slices.Sort(lat)
	return lat, nil
}

// siteHost is a known host of the dataset.
type siteHost struct{ site, ip string }

func scaleReads(ctx context.Context, e *Env, d *scaleData, o Options) ([]Result, error) {
	pool, err := pgxpool.New(ctx, d.URL)
	if err != nil {
		return nil, err
	}
	var ips []siteHost
	rows, err := pool.Query(ctx, "SELECT s.name, host(h.ip_address) FROM hosts h JOIN sites s ON s.id = h.site_id ORDER BY h.site_id, h.ip_address")
	if err == nil {
		for rows.Next() {
			var sh siteHost
			if err = rows.Scan(&sh.site, &sh.ip); err != nil {
				break
			}
			ips = append(ips, sh)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	pool.Close()
	if err != nil || len(ips) == 0 {
		return nil, fmt.Errorf("read the known hosts: %d, %v", len(ips), err)
	}
	c, err := e.StartController(ctx, "controller-scale", d.URL)
	if err != nil {
		return nil, err
	}
	defer c.Stop()
	if err := e.Checkpoint(ctx); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(11, 11))
	n := max(o.ScaleReads, 1)
	phase := func(what string, call func(ctx context.Context, i int) error) ([]float64, error) {
		e.Log.Info("timing "+what, "calls", n, "warmup", scaleReadWarmup)
		if err := e.startPGStats(ctx); err != nil {
			return nil, err
		}
		lat, err := timeCalls(ctx, n, call)
		if err != nil {
			return nil, fmt.Errorf("%s: %w\ncontroller log:\n%s", what, err, c.Tail(15))
		}
		e.Log.Info(what, "p50_ms", round(percentile(lat, 50), 2), "p99_ms", round(percentile(lat, 99), 2), "max_ms", round(lat[len(lat)-1], 2))
		e.logPGStats(ctx, what, 8)
		return lat, nil
	}

	// ListHosts of a whole job network (a /24 or /120: 256 hosts, one page)
	// of a random site.
	listLat, err := phase("ListHosts network=/24 or /120", func(ctx context.Context, _ int) error {
		nw := d.ReadNetworks[r.IntN(len(d.ReadNetworks))]
		resp, err := c.Admin.ListHosts(ctx, &pb.ListHostsRequest{Site: nw.Site, Network: nw.Network.String(), PageSize: 256})
		if err != nil {
			return err
		}
		if len(resp.GetHosts()) != 256 {
			return fmt.Errorf("ListHosts site %s %s returned %d hosts, want 256", nw.Site, nw.Network, len(resp.GetHosts()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	getLat, err := phase("GetHost", func(ctx context.Context, _ int) error {
		h := ips[r.IntN(len(ips))]
		resp, err := c.Admin.GetHost(ctx, &pb.GetHostRequest{Site: h.site, IpAddress: h.ip})
		if err != nil {
			return err
		}
		if resp.GetHost().GetIpAddress() != h.ip || len(resp.GetHost().GetPorts()) == 0 {
			return fmt.Errorf("GetHost %s %s returned %s with %d ports", h.site, h.ip, resp.GetHost().GetIpAddress(), len(resp.GetHost().GetPorts()))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// ListHostChanges: a random host's, then the whole site's, alternately.
	var hostLat, siteLat []float64
	changesLat, err := phase("ListHostChanges page_size=50 (host, site alternately)", func(ctx context.Context, i int) error {
		h := ips[r.IntN(len(ips))]
		req := &pb.ListHostChangesRequest{Site: h.site, PageSize: 50}
		if i%2 == 0 {
			req.IpAddress = h.ip
		}
		begin := time.Now()
		resp, err := c.Admin.ListHostChanges(ctx, req)
		ms := time.Since(begin).Seconds() * 1000
		if err != nil {
			return err
		}
		if len(resp.GetChanges()) == 0 || (req.IpAddress == "" && len(resp.GetChanges()) != 50) {
			return fmt.Errorf("ListHostChanges %q returned %d changes", req.IpAddress, len(resp.GetChanges()))
		}
		if i >= scaleReadWarmup {
			if req.IpAddress != "" {
				hostLat = append(hostLat, ms)
			} else {
				siteLat = append(siteLat, ms)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(hostLat)
	slices.Sort(siteLat)

	res := func(name string, lat []float64, what, size string) Result {
		p99 := percentile(lat, 99)
		return Result{
			Name: name, Value: f64(round(p99, 2)), Unit: "ms", Goal: "< 20",
			Note: fmt.Sprintf("p50 %.2f ms, p90 %.2f, max %.2f; %d calls (after %d warm-up) through the controller's AdminService over gRPC: %s. %s",
				percentile(lat, 50), percentile(lat, 90), lat[len(lat)-1], len(lat), scaleReadWarmup, what, size),
		}
	}
	return []Result{
		res("list_hosts_cidr_p99_ms", listLat, "ListHosts site=<random site> network=<random full /24 or /120 of it> page_size=256 (all 256 hosts)", d.Summary()),
		res("get_host_p99_ms", getLat, "GetHost of a random known host (ports and 20 recent changes)", d.Size()),
		res("list_host_changes_p99_ms", changesLat, fmt.Sprintf(
			"ListHostChanges page_size=50 of a random host (p50 %.2f, p99 %.2f ms) and of a random host's whole site (p50 %.2f, p99 %.2f ms), alternately",
			percentile(hostLat, 50), percentile(hostLat, 99), percentile(siteLat, 50), percentile(siteLat, 99)), d.Size()),
	}, nil
}

// scaleIngest times the 1M-row ingest into the year's database and into an
// empty one, alternately, each run on a /24 that holds no hosts yet.
func scaleIngest(ctx context.Context, e *Env, d *scaleData, o Options) (Result, error) {
	g := portGen{hosts: o.IngestHosts, ports: o.IngestPorts}
	rows := int64(g.hosts) * int64(g.ports)
	nets, err := freeIngestNets(ctx, d)
	if err != nil {
		return Result{}, err
	}
	if len(nets) < o.ScaleIngestRuns {
		return Result{}, fmt.Errorf("%d ingest runs need as many empty /24s of %v, the dataset has %d left (earlier runs of a reused directory filled the others)",
			o.ScaleIngestRuns, scaleIngestNets, len(nets))
	}
	best1, best12 := ingestMeasure{total: math.Inf(1)}, ingestMeasure{total: math.Inf(1)}
	var all []string
	for run := range o.ScaleIngestRuns {
		nw := nets[run]
		e.Log.Info("ingest into an empty database (month 1)", "run", run+1, "network", nw, "rows", rows)
		url, err := e.NewDatabase(ctx, "bench_ingest_month1")
		if err != nil {
			return Result{}, err
		}
		m1, err := ingestInto(ctx, e, g, url, nw, fmt.Sprintf("month1-run%d-%s", run+1, nw.Addr()))
		e.DropDatabase("bench_ingest_month1")
		if err != nil {
			return Result{}, fmt.Errorf("month-1 ingest: %w", err)
		}
		e.Log.Info("ingest into the year's database (month 12)", "run", run+1, "network", nw, "rows", rows)
		// The network in the name: a reused dataset keeps earlier runs' targets.
		m12, err := ingestInto(ctx, e, g, d.URL, nw, fmt.Sprintf("month12-run%d-%s", run+1, nw.Addr()))
		if err != nil {
			return Result{}, fmt.Errorf("month-12 ingest: %w", err)
		}
		if m1.total < best1.total {
			best1 = m1
		}
		if m12.total < best12.total {
			best12 = m12
		}
		all = append(all, fmt.Sprintf("run %d: month 12 %.2fs vs month 1 %.2fs", run+1, m12.total, m1.total))
	}
	ratio := best12.total / best1.total
	e.Log.Info("ingest_month12_vs_month1", "month12_s", round(best12.total, 2), "month1_s", round(best1.total, 2), "ratio", round(ratio, 3))
	return Result{
		Name: "ingest_month12_vs_month1", Value: f64(round(best12.total, 3)), Unit: "s", Baseline: f64(round(best1.total, 3)),
		Ratio: f64(round(ratio, 3)), Goal: "≤ 1.1",
		Note: fmt.Sprintf("%d hosts × %d ports = %d rows in one new /24 job through a fresh controller, into the year's database "+
			"(later runs also see the earlier runs' rows) vs a fresh empty one; best of %d each (%s). "+
			"Best month 12: stream+stage %.2fs, merge+commit %.2fs, %s, %s; best month 1: stream+stage %.2fs, merge+commit %.2fs, %s, %s. %s",
			g.hosts, g.ports, rows, len(all), strings.Join(all, "; "),
			best12.staged, best12.total-best12.staged, best12.cpu, best12.wal, best1.staged, best1.total-best1.staged, best1.cpu, best1.wal, d.Summary()),
	}, nil
}

// freeIngestNets are the scaleIngestNets that hold no hosts yet: all of
// them in a fresh dataset, fewer in a reused one.
func freeIngestNets(ctx context.Context, d *scaleData) ([]netip.Prefix, error) {
	pool, err := pgxpool.New(ctx, d.URL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var free []netip.Prefix
	for _, nw := range scaleIngestNets {
		var used bool
		if err := pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM hosts WHERE ip_address <<= $1)", nw).Scan(&used); err != nil {
			return nil, fmt.Errorf("hosts in %s: %w", nw, err)
		}
		if !used {
			free = append(free, nw)
		}
	}
	return free, nil
}

// scaleRetention archives the oldest month through the product's
// retention query and checks where its rows went.
func scaleRetention(ctx context.Context, e *Env, d *scaleData) (Result, error) {
	pool, err := pgxpool.New(ctx, d.URL)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	oldest, cutoff, part := d.Months[0], d.Months[1], d.Partitions[0]
	if err := e.Checkpoint(ctx); err != nil {
		return Result{}, err
	}
	e.Log.Info("archiving the oldest month (ArchivePortScansBefore)", "partition", part, "rows", d.MonthRows, "cutoff", cutoff.Format(time.RFC3339))
	if err := e.startPGStats(ctx); err != nil {
		return Result{}, err
	}
	begin := time.Now()
	moved, err := db.New(pool).ArchivePortScansBefore(ctx, cutoff)
	sec := time.Since(begin).Seconds()
	if err != nil {
		return Result{}, fmt.Errorf("ArchivePortScansBefore: %w", err)
	}
	e.Log.Info("archived", "moved", moved, "seconds", round(sec, 3))
	e.logPGStats(ctx, "retention (archive one month)", 5)
	if !slices.Equal(moved, []string{part}) {
		return Result{}, fmt.Errorf("ArchivePortScansBefore(%s) moved %v, want [%s]", cutoff.Format(time.RFC3339), moved, part)
	}
	var archived, live, attached int64
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM archive."+part).Scan(&archived); err != nil {
		return Result{}, fmt.Errorf("read archive.%s: %w", part, err)
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM port_scans WHERE scanned_at >= $1 AND scanned_at < $2", oldest, cutoff).Scan(&live); err != nil {
		return Result{}, err
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'port_scans'::regclass AND c.relname = $1`, part).Scan(&attached); err != nil {
		return Result{}, err
	}
	if archived != d.MonthRows || live != 0 || attached != 0 {
		return Result{}, fmt.Errorf("after archiving %s: archive.%s holds %d rows (want %d), port_scans still has %d rows of the month, %d partitions named so",
			part, part, archived, d.MonthRows, live, attached)
	}
	return Result{
		Name: "retention_month_s", Value: f64(round(sec, 3)), Unit: "s", Goal: "< 5",
		Note: fmt.Sprintf("db.Queries.ArchivePortScansBefore(%s) (the controller's retention query) detached %s (%d rows) into schema archive; "+
			"checked: archive.%s holds the %d rows, port_scans none of that month. %s",
			cutoff.Format("2006-01-02"), part, d.MonthRows, part, archived, d.Size()),
	}, nil
}

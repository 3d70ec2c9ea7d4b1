package bench

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// A year of data for the scale cases: --scale-hosts hosts over --scale-sites
// sites (scalelayout.go: "bench" in scaleNetwork, the others in IPv6
// documentation space; rows only: nothing is ever probed), twelve monthly
// port_scans partitions ending with the current month, the completed jobs
// those rows belong to, services and host_history. Generated server-side
// with INSERT ... SELECT generate_series.
var (
	scaleNetwork = netip.MustParsePrefix("10.99.0.0/16")
	// scaleIngestNets hold no hosts in the dataset: the month-12 ingest runs
	// stream their new /24 there (one /24 per run), as into an empty
	// database, so both sides do the same work.
	scaleIngestNets = []netip.Prefix{
		netip.MustParsePrefix("10.99.20.0/24"), netip.MustParsePrefix("10.99.21.0/24"),
		netip.MustParsePrefix("10.99.22.0/24"), netip.MustParsePrefix("10.99.23.0/24"),
	}
)

const scaleHoleLo, scaleHoleHi = 20, 23 // the /24s (third octet) of scaleIngestNets

const scaleMonths = 12

// scaleData describes the generated dataset.
type scaleData struct {
	DB, URL    string
	Sites      []scaleSite
	Hosts      int64
	PortRows   int64 // all months
	MonthRows  int64 // rows in the oldest month
	Jobs       int64
	Services   int64
	History    int64
	Months     []time.Time // month starts (UTC), oldest first
	GenSec     float64
	Partitions []string
	SizeMB     float64
	// TableMB is pg_total_relation_size of the big tables (port_scans: all
	// its partitions).
	TableMB map[string]float64
	// ReadNetworks are the job networks holding 256 hosts, by site.
	ReadNetworks []scaleNet
}

// scaleNet is one job network of a site.
type scaleNet struct {
	Site    string
	Network netip.Prefix
}

// Size is the dataset size for result notes.
func (d *scaleData) Size() string {
	sites := make([]string, 0, len(d.Sites))
	for _, s := range d.Sites {
		sites = append(sites, fmt.Sprintf("%s %d in %s", s.Name, s.Hosts, s.Target))
	}
	tables := make([]string, 0, len(d.TableMB))
	for _, t := range scaleSizeTables {
		tables = append(tables, fmt.Sprintf("%s %.0f", t, d.TableMB[t]))
	}
	return fmt.Sprintf("dataset: %d hosts in %d sites (%s), %d port_scans rows in %d monthly partitions (%d in the oldest), %d jobs, %d services, %d host_history rows, %.0f MB (MB by table: %s)",
		d.Hosts, len(d.Sites), strings.Join(sites, ", "), d.PortRows, len(d.Months), d.MonthRows, d.Jobs, d.Services, d.History, d.SizeMB, strings.Join(tables, ", "))
}

// Summary is Size and how long generating it took.
func (d *scaleData) Summary() string {
	if d.GenSec == 0 {
		return d.Size() + "; reused from an earlier run's kept directory"
	}
	return fmt.Sprintf("%s; generated server-side in %.0fs", d.Size(), d.GenSec)
}

func monthStarts(now time.Time, n int) []time.Time {
	now = now.UTC()
	cur := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	out := make([]time.Time, n)
	for i := range out {
		out[i] = cur.AddDate(0, i-(n-1), 0)
	}
	return out
}

// Ports scanned each month, the first few of them open on every host.
const (
	scalePorts    = `ARRAY[22,80,443,3389,445,139,21,25,53,110,143,3306,8080,8443,5432,993]`
	scaleSvcNames = `ARRAY['ssh','http','https','ms-wbt-server','microsoft-ds','netbios-ssn','ftp','smtp','domain','pop3','imap','mysql','http-proxy','https-alt','postgresql','imaps']`
	scaleProducts = `ARRAY['OpenSSH','nginx','nginx','xrdp','','Samba smbd','vsftpd','Postfix smtpd','ISC BIND','Dovecot pop3d','Dovecot imapd','MySQL','','','PostgreSQL DB','']`
)

// scaleSizeTables are the tables whose size the dataset reports.
var scaleSizeTables = []string{"port_scans", "hosts", "services", "host_history", "scan_jobs"}

// scaleJobID is the SQL id of the job of block blk of site site_no in month
// (SQL expressions): deterministic, so no mapping table is needed.
func scaleJobID(site, month, blk string) string {
	return `md5(format('bench-scale-%s-%s-%s', ` + site + `, ` + month + `, ` + blk + `))::uuid`
}

// generateScaleData creates database name and fills it with a year of data:
// hosts over sites (scaleLayout) and monthRows port_scans rows per month.
func generateScaleData(ctx context.Context, e *Env, name string, hosts, sites, monthRows int) (*scaleData, error) {
	layout, err := scaleLayout(hosts, sites)
	if err != nil {
		return nil, err
	}
	if monthRows < hosts {
		return nil, fmt.Errorf("--scale-month-rows must be at least --scale-hosts (every host is scanned every month), got %d < %d", monthRows, hosts)
	}
	d := &scaleData{DB: name, Sites: layout, TableMB: map[string]float64{}}
	url, err := e.NewDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	d.URL = url
	begin := time.Now()
	// The sites and the targets the jobs belong to go through the product.
	ctrl, err := e.StartController(ctx, "controller-scale-setup", url)
	if err != nil {
		return nil, err
	}
	targetIDs := make([]uuid.UUID, len(layout))
	for i, s := range layout {
		if _, err := ctrl.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: s.Name}); err != nil {
			ctrl.Stop()
			return nil, fmt.Errorf("CreateSite %s: %w", s.Name, err)
		}
		t, err := ctrl.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: s.Name, Name: "year", Network: s.Target.String(), Ports: "1-1024"})
		if err != nil {
			ctrl.Stop()
			return nil, fmt.Errorf("CreateTarget %s %s: %w", s.Name, s.Target, err)
		}
		if targetIDs[i], err = uuid.Parse(t.GetTarget().GetId()); err != nil {
			ctrl.Stop()
			return nil, err
		}
	}
	ctrl.Stop()

	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 2 // one INSERT per core
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	now := time.Now().UTC()
	d.Months = monthStarts(now, scaleMonths)
	ends := make([]time.Time, scaleMonths)
	for i, m := range d.Months {
		ends[i] = m.AddDate(0, 1, 0)
	}
	ends[scaleMonths-1] = now // the current month so far
	perHost := (monthRows + hosts - 1) / hosts

	step := func(what, sql string, args ...any) (int64, error) {
		sbegin := time.Now()
		tag, err := pool.Exec(ctx, sql, args...)
		if err != nil {
			return 0, fmt.Errorf("generate %s: %w", what, err)
		}
		e.Log.Info("scale data: "+what, "rows", tag.RowsAffected(), "elapsed", time.Since(sbegin).Round(time.Millisecond))
		return tag.RowsAffected(), nil
	}
	if _, err := step("partitions", "SELECT ensure_port_scan_partitions($1, $2)", d.Months[0], scaleMonths); err != nil {
		return nil, err
	}
	// Two helper tables, dropped before the data is used: the sites (with
	// their targets) and each host's site, global index and block.
	var (
		nos, bits      []int32
		bases          []netip.Addr
		firsts, counts []int64
		v4s            []bool
	)
	for _, s := range layout {
		nos, bits, bases = append(nos, int32(s.No)), append(bits, int32(s.JobBits())), append(bases, s.Target.Addr())
		firsts, counts, v4s = append(firsts, s.First), append(counts, s.Hosts), append(v4s, s.V4())
	}
	if _, err := step("bench_scale_sites", `
		CREATE UNLOGGED TABLE bench_scale_sites AS
		SELECT x.site_no, t.site_id, t.id AS target_id, t.profile_id, x.base, x.bits, x.first, x.hosts, x.v4,
		       (x.hosts + 255) / 256 AS blocks
		FROM unnest($1::int[], $2::uuid[], $3::inet[], $4::int[], $5::bigint[], $6::bigint[], $7::bool[])
		     AS x(site_no, target_id, base, bits, first, hosts, v4)
		JOIN scan_targets t ON t.id = x.target_id`,
		nos, targetIDs, bases, bits, firsts, counts, v4s); err != nil {
		return nil, err
	}
	// One completed job per block (a /24 or /120) and month, committed at
	// an even spread over the month.
	if d.Jobs, err = step("scan_jobs", fmt.Sprintf(`
		INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, ports, options, status, attempt,
		                       scheduled_at, started_at, completed_at, progress_percent, scan_stats, created_at)
		SELECT %[1]s, s.target_id, s.site_id, s.profile_id,
		       set_masklen(s.base + %[2]s, s.bits)::cidr, '1-1024', '{}', 'completed', 1,
		       t - interval '20 minutes', t - interval '20 minutes', t, 100,
		       jsonb_build_object('hosts_up', least(256, s.hosts - b * 256), 'nmap_version', '7.93'), t - interval '20 minutes'
		FROM unnest($1::timestamptz[], $2::timestamptz[]) WITH ORDINALITY AS mo(ms, me, m)
		CROSS JOIN bench_scale_sites s
		CROSS JOIN LATERAL generate_series(0, s.blocks - 1) b
		CROSS JOIN LATERAL (SELECT mo.ms + (mo.me - mo.ms) * ((b + 0.5) / s.blocks) AS t) x`,
		scaleJobID("s.site_no", "mo.m - 1", "b"), scaleOffsetSQL("b * 256")), d.Months, ends); err != nil {
		return nil, err
	}
	last := scaleMonths - 1
	if d.Hosts, err = step("hosts", fmt.Sprintf(`
		INSERT INTO hosts (site_id, ip_address, hostname, mac_address, vendor, os_family, os_name, os_confidence,
		                   status, discovery_count, first_seen, last_seen, last_job_id, open_ports)
		SELECT s.site_id, s.base + %[3]s,
		       CASE WHEN g %% 4 = 0 THEN format('host-%%s.bench.example', g) END,
		       CASE WHEN g %% 2 = 0 THEN format('02:42:%%s:%%s:%%s:%%s', lpad(to_hex(s.site_no), 2, '0'), lpad(to_hex((l >> 16) & 255), 2, '0'),
		                                        lpad(to_hex((l >> 8) & 255), 2, '0'), lpad(to_hex(l & 255), 2, '0'))::macaddr END,
		       CASE WHEN g %% 2 = 0 THEN 'Bench Devices' END,
		       (ARRAY['Linux','Windows','embedded',NULL])[g %% 4 + 1],
		       (ARRAY['Linux 5.15','Windows Server 2022','Linux 4.19',NULL])[g %% 4 + 1],
		       CASE WHEN g %% 4 <> 3 THEN 90 END,
		       CASE WHEN g %% 20 = 0 THEN 'down' ELSE 'up' END, %[1]d, $1, j.completed_at, j.id,
		       2 + g %% 3 -- the open ports the services step gives host hi = g
		FROM bench_scale_sites s
		CROSS JOIN LATERAL generate_series(0::bigint, s.hosts - 1) l
		CROSS JOIN LATERAL (SELECT s.first + l AS g) x
		JOIN scan_jobs j ON j.id = %[2]s`, scaleMonths, scaleJobID("s.site_no", fmt.Sprint(last), "l >> 8"), scaleOffsetSQL("l")),
		d.Months[0]); err != nil {
		return nil, err
	}
	if _, err := step("bench_scale_hosts", fmt.Sprintf(`
		CREATE UNLOGGED TABLE bench_scale_hosts AS
		SELECT h.id, h.site_id, s.site_no, s.first + l AS hi, l >> 8 AS blk, h.status, h.last_seen, h.last_job_id
		FROM hosts h
		JOIN bench_scale_sites s ON s.site_id = h.site_id
		CROSS JOIN LATERAL (SELECT h.ip_address - s.base AS off) o
		CROSS JOIN LATERAL (SELECT CASE WHEN s.v4 AND o.off >= %[1]d THEN o.off - %[2]d ELSE o.off END AS l) x`,
		scaleHoleFirst+scaleHoleSize, scaleHoleSize)); err != nil {
		return nil, err
	}
	if err := checkScaleHosts(ctx, pool, layout); err != nil {
		return nil, err
	}
	// port_scans: rows r = k*hosts + hi < monthRows, k-th port of host hi;
	// two months at a time (one INSERT per core).
	monthSQL := fmt.Sprintf(`
		INSERT INTO port_scans (job_id, host_id, port, protocol, state, reason, service_name, service_product,
		                        service_version, service_extra_info, scanned_at)
		SELECT j.id, h.id, CASE WHEN k < 16 THEN (%[1]s)[k + 1] ELSE 1024 + k END, 'tcp',
		       CASE WHEN k < 2 + hi %% 3 THEN 'open' WHEN (hi + k) %% 3 = 0 THEN 'closed' ELSE 'filtered' END,
		       CASE WHEN k < 2 + hi %% 3 THEN 'syn-ack' WHEN (hi + k) %% 3 = 0 THEN 'conn-refused' ELSE 'no-response' END,
		       CASE WHEN k < 2 + hi %% 3 THEN (%[2]s)[k + 1] END,
		       CASE WHEN k < 2 + hi %% 3 THEN NULLIF((%[3]s)[k + 1], '') END,
		       CASE WHEN k < 2 + hi %% 3 AND k %% 2 = 0 THEN format('%%s.%%s', 1 + $1::int %% 9, hi %% 7) END,
		       NULL, j.completed_at
		FROM bench_scale_hosts h
		JOIN scan_jobs j ON j.id = %[4]s
		CROSS JOIN generate_series(0, $2 - 1) k
		WHERE k::bigint * $3 + hi < $4`,
		scalePorts, scaleSvcNames, scaleProducts, scaleJobID("h.site_no", "$1::int", "h.blk"))
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		months   = make(chan int)
	)
	monthRowsDone := make([]int64, scaleMonths)
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for m := range months {
				n, err := step(fmt.Sprintf("port_scans %s", d.Months[m].Format("2006-01")), monthSQL, m, perHost, int64(hosts), int64(monthRows))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				monthRowsDone[m] = n
				mu.Unlock()
			}
		}()
	}
	for m := range scaleMonths {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		months <- m
	}
	close(months)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	for _, n := range monthRowsDone {
		d.PortRows += n
	}
	d.MonthRows = monthRowsDone[0]
	// services: the open ports (what is true now), 2 + hi % 3 a host. The
	// hosts rows already carry that count, so the trigger that keeps it
	// (migration 0021) is off for this one statement: it would update every
	// host once more and leave hosts twice its size.
	if _, err := step("services trigger off", "ALTER TABLE services DISABLE TRIGGER services_open_ports_insert"); err != nil {
		return nil, err
	}
	if d.Services, err = step("services", fmt.Sprintf(`
		INSERT INTO services (host_id, port, protocol, state, service_name, service_product, service_version,
		                      first_seen, last_seen, last_job_id)
		SELECT h.id, (%[1]s)[k + 1], 'tcp', 'open', (%[2]s)[k + 1], NULLIF((%[3]s)[k + 1], ''),
		       CASE WHEN k %% 2 = 0 THEN format('%%s.%%s', 1 + %[4]d %% 9, hi %% 7) END, $1, h.last_seen, h.last_job_id
		FROM bench_scale_hosts h
		CROSS JOIN LATERAL generate_series(0, 1 + hi %% 3) k`, scalePorts, scaleSvcNames, scaleProducts, last), d.Months[0]); err != nil {
		return nil, err
	}
	if _, err := step("services trigger on", "ALTER TABLE services ENABLE TRIGGER services_open_ports_insert"); err != nil {
		return nil, err
	}
	if _, err := step("open_ports check", `DO $$ BEGIN
		IF EXISTS (SELECT 1 FROM hosts h
		           LEFT JOIN (SELECT host_id, count(*) AS n FROM services WHERE state = 'open' GROUP BY host_id) c ON c.host_id = h.id
		           WHERE h.open_ports <> coalesce(c.n, 0)) THEN
			RAISE EXCEPTION 'hosts.open_ports differs from the services generated';
		END IF; END $$`); err != nil {
		return nil, err
	}
	// host_history: discovery in the first month, then a few port and
	// service changes a year, oldest first (ids grow with time, as live).
	if d.History, err = step("host_history", fmt.Sprintf(`
		INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, changed_by, change_reason, feed_seq)
		SELECT host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, 'bench-data', 'scan',
		       nextval('host_history_feed_seq') -- final numbers now: nothing is left for the commit-time renumbering
		FROM (
		    SELECT h.id AS host_id, h.site_id, j.id AS job_id, ev.event, ev.port, ev.protocol, ev.old_value, ev.new_value,
		           j.completed_at AS changed_at, hi
		    FROM bench_scale_hosts h
		    CROSS JOIN generate_series(0, %[1]d) m
		    JOIN scan_jobs j ON j.id = %[2]s
		    CROSS JOIN LATERAL (
		        SELECT 'host_discovered' AS event, NULL::int AS port, NULL AS protocol, NULL AS old_value, 'up' AS new_value
		        WHERE m = 0
		        UNION ALL
		        SELECT CASE WHEN m %% 2 = 0 THEN 'port_closed' ELSE 'port_opened' END, (%[3]s)[5 + m %% 4], 'tcp',
		               CASE WHEN m %% 2 = 0 THEN 'open' ELSE 'closed' END, CASE WHEN m %% 2 = 0 THEN 'closed' ELSE 'open' END
		        WHERE m > 0 AND (hi + m) %% 4 = 0
		        UNION ALL
		        SELECT 'service_changed', 22, 'tcp', format('OpenSSH 8.%%s', m), format('OpenSSH 9.%%s', m)
		        WHERE m > 0 AND (hi * 7 + m) %% 9 = 0
		        UNION ALL
		        SELECT 'host_down', NULL, NULL, 'up', 'down'
		        WHERE m = %[1]d AND h.status = 'down'
		    ) ev
		) e
		ORDER BY changed_at, hi`, last, scaleJobID("h.site_no", "m", "h.blk"), scalePorts)); err != nil {
		return nil, err
	}
	if _, err := step("drop helper tables", "DROP TABLE bench_scale_hosts, bench_scale_sites"); err != nil {
		return nil, err
	}
	// A year-old database has been vacuumed and analyzed: do both now so
	// that autovacuum does not do it during the timed phases.
	if _, err := step("vacuum analyze", "VACUUM (ANALYZE)"); err != nil {
		return nil, err
	}
	d.GenSec = time.Since(begin).Seconds()
	for m := range scaleMonths {
		d.Partitions = append(d.Partitions, "port_scans_"+d.Months[m].Format("2006_01"))
	}
	for _, s := range layout {
		for _, nw := range s.FullBlocks() {
			d.ReadNetworks = append(d.ReadNetworks, scaleNet{Site: s.Name, Network: nw})
		}
	}
	if err := d.measureSize(ctx, pool); err != nil {
		return nil, err
	}
	e.Log.Info("scale data ready", "hosts", d.Hosts, "sites", len(layout), "port_scans", d.PortRows, "jobs", d.Jobs, "services", d.Services,
		"host_history", d.History, "size_mb", round(d.SizeMB, 0), "table_mb", d.TableMB, "elapsed", time.Since(begin).Round(time.Millisecond))
	return d, nil
}

// measureSize fills SizeMB and TableMB.
func (d *scaleData) measureSize(ctx context.Context, pool *pgxpool.Pool) error {
	var size int64
	if err := pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return err
	}
	d.SizeMB = float64(size) / (1 << 20)
	for _, t := range scaleSizeTables {
		// port_scans is partitioned: its own size is 0; sum its partitions.
		var b int64
		if err := pool.QueryRow(ctx, `SELECT pg_total_relation_size($1::regclass) +
			coalesce((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = $1::regclass), 0)`, t).Scan(&b); err != nil {
			return fmt.Errorf("size of %s: %w", t, err)
		}
		d.TableMB[t] = round(float64(b)/(1<<20), 0)
	}
	return nil
}

// checkScaleHosts compares each site's generated hosts (count, lowest and
// highest address) with the layout's arithmetic, so the SQL and Go twins
// of the address mapping cannot drift apart unnoticed.
func checkScaleHosts(ctx context.Context, pool *pgxpool.Pool, layout []scaleSite) error {
	for _, s := range layout {
		var (
			n        int64
			lo, hi   netip.Addr
			loI, hiI int64
		)
		if err := pool.QueryRow(ctx, `
			SELECT count(*), min(h.ip_address), max(h.ip_address), min(x.hi), max(x.hi)
			FROM bench_scale_hosts x JOIN hosts h ON h.id = x.id WHERE x.site_no = $1`, s.No).Scan(&n, &lo, &hi, &loI, &hiI); err != nil {
			return fmt.Errorf("check site %s's hosts: %w", s.Name, err)
		}
		if n != s.Hosts || lo != s.Addr(0) || hi != s.Addr(s.Hosts-1) || loI != s.First || hiI != s.First+s.Hosts-1 {
			return fmt.Errorf("site %s: generated %d hosts %s..%s (index %d..%d), layout says %d hosts %s..%s (index %d..%d)",
				s.Name, n, lo, hi, loI, hiI, s.Hosts, s.Addr(0), s.Addr(s.Hosts-1), s.First, s.First+s.Hosts-1)
		}
	}
	return nil
}

// loadScaleData describes the dataset an earlier run generated into
// database name of a reused scratch directory (Env.Reused), or returns nil
// when there is none. hosts and sites must be the flags it was generated
// with: they fix the layout, which loadScaleData checks against the hosts.
// Earlier runs' ingests and archiving stay: the months are the partitions
// still attached, the rows those present now.
func loadScaleData(ctx context.Context, e *Env, name string, hosts, sites int) (*scaleData, error) {
	layout, err := scaleLayout(hosts, sites)
	if err != nil {
		return nil, err
	}
	pg, err := e.Postgres(ctx)
	if err != nil {
		return nil, err
	}
	d := &scaleData{DB: name, URL: pg.URL(name), Sites: layout, TableMB: map[string]float64{}}
	pool, err := pgxpool.New(ctx, pg.URL("postgres"))
	if err != nil {
		return nil, err
	}
	var exists bool
	err = pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists)
	pool.Close()
	if err != nil || !exists {
		return nil, err
	}
	pool, err = pgxpool.New(ctx, d.URL)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	// A site's hosts outside the ingest /24s must match the layout exactly.
	for _, s := range layout {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM hosts h JOIN sites s ON s.id = h.site_id
			WHERE s.name = $1 AND h.ip_address <<= $2 AND NOT h.ip_address <<= ANY ($3::inet[])`,
			s.Name, s.Target, scaleIngestNets).Scan(&n); err != nil {
			return nil, fmt.Errorf("count site %s's hosts: %w", s.Name, err)
		}
		if n != s.Hosts {
			return nil, fmt.Errorf("database %s: site %s holds %d hosts, the layout of --scale-hosts %d --scale-sites %d says %d: pass the flags it was generated with",
				name, s.Name, n, hosts, sites, s.Hosts)
		}
		d.Hosts += n
	}
	rows, err := pool.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'port_scans'::regclass AND c.relname ~ '^port_scans_[0-9]{4}_[0-9]{2}$' ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	d.Partitions, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	for _, p := range d.Partitions {
		m, err := time.Parse("port_scans_2006_01", p)
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", p, err)
		}
		if m.After(time.Now()) {
			// Made ahead by the controllers: not the dataset's.
			continue
		}
		d.Months = append(d.Months, m)
	}
	d.Partitions = d.Partitions[:len(d.Months)]
	if len(d.Months) < 2 {
		return nil, fmt.Errorf("database %s holds %d monthly partitions, want at least 2", name, len(d.Months))
	}
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{d.Partitions[0]}.Sanitize()).Scan(&d.MonthRows); err != nil {
		return nil, err
	}
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM port_scans), (SELECT count(*) FROM scan_jobs),
		(SELECT count(*) FROM services), (SELECT count(*) FROM host_history)`).Scan(&d.PortRows, &d.Jobs, &d.Services, &d.History); err != nil {
		return nil, err
	}
	for _, s := range layout {
		for _, nw := range s.FullBlocks() {
			d.ReadNetworks = append(d.ReadNetworks, scaleNet{Site: s.Name, Network: nw})
		}
	}
	if err := d.measureSize(ctx, pool); err != nil {
		return nil, err
	}
	e.Log.Info("reusing the scale data of "+e.Tmp, "hosts", d.Hosts, "port_scans", d.PortRows, "months", len(d.Months),
		"size_mb", round(d.SizeMB, 0))
	return d, nil
}

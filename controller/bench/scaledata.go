package bench

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// A year of data for the scale cases: one site "bench" whose hosts fill
// scaleNetwork (rows only: nothing is ever probed), twelve monthly
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
	scaleHoleLo, scaleHoleHi = 20, 23 // the /24s (third octet) of scaleIngestNets
)

const (
	scaleMonths = 12
	// scaleHosts is 10.99.0.0/16 minus the four ingest /24s.
	scaleHosts = 1<<16 - 4*256
)

// scaleData describes the generated dataset.
type scaleData struct {
	DB, URL      string
	Hosts        int64
	PortRows     int64 // all months
	MonthRows    int64 // rows in the oldest month
	Jobs         int64
	Services     int64
	History      int64
	Months       []time.Time // month starts (UTC), oldest first
	GenSec       float64
	Partitions   []string
	SizeMB       float64
	ReadNetworks []netip.Prefix // /24s holding hosts
}

// Size is the dataset size for result notes.
func (d *scaleData) Size() string {
	return fmt.Sprintf("dataset: %d hosts in %s, %d port_scans rows in %d monthly partitions (%d in the oldest), %d jobs, %d services, %d host_history rows, %.0f MB",
		d.Hosts, scaleNetwork, d.PortRows, len(d.Months), d.MonthRows, d.Jobs, d.Services, d.History, d.SizeMB)
}

// Summary is Size and how long generating it took.
func (d *scaleData) Summary() string {
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

// The hosts' dense index: the address offset in 10.99.0.0/16, with the
// ingest /24s left out.
const scaleHostIdx = `(CASE WHEN (h.ip_address - '10.99.0.0'::inet) >= 24*256 THEN (h.ip_address - '10.99.0.0'::inet) - 1024 ELSE (h.ip_address - '10.99.0.0'::inet) END)`

// Ports scanned each month, the first few of them open on every host.
const (
	scalePorts    = `ARRAY[22,80,443,3389,445,139,21,25,53,110,143,3306,8080,8443,5432,993]`
	scaleSvcNames = `ARRAY['ssh','http','https','ms-wbt-server','microsoft-ds','netbios-ssn','ftp','smtp','domain','pop3','imap','mysql','http-proxy','https-alt','postgresql','imaps']`
	scaleProducts = `ARRAY['OpenSSH','nginx','nginx','xrdp','','Samba smbd','vsftpd','Postfix smtpd','ISC BIND','Dovecot pop3d','Dovecot imapd','MySQL','','','PostgreSQL DB','']`
)

// scaleJobID is the SQL id of host h's job in month (an SQL expression):
// deterministic, so no mapping table is needed.
func scaleJobID(month string) string {
	return `md5(format('bench-scale-%s-%s', ` + month + `, (h.ip_address - '10.99.0.0'::inet) >> 8))::uuid`
}

// generateScaleData creates database name and fills it with a year of data
// of monthRows port_scans rows per month.
func generateScaleData(ctx context.Context, e *Env, name string, monthRows int) (*scaleData, error) {
	if monthRows < 1 {
		return nil, fmt.Errorf("--scale-month-rows must be at least 1, got %d", monthRows)
	}
	d := &scaleData{DB: name}
	url, err := e.NewDatabase(ctx, name)
	if err != nil {
		return nil, err
	}
	d.URL = url
	begin := time.Now()
	// The site and the target the jobs belong to go through the product.
	ctrl, err := e.StartController(ctx, "controller-scale-setup", url)
	if err != nil {
		return nil, err
	}
	if _, err := ctrl.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		ctrl.Stop()
		return nil, fmt.Errorf("CreateSite: %w", err)
	}
	t, err := ctrl.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: "year", Network: scaleNetwork.String(), Ports: "1-1024"})
	ctrl.Stop()
	if err != nil {
		return nil, fmt.Errorf("CreateTarget: %w", err)
	}
	targetID, err := uuid.Parse(t.GetTarget().GetId())
	if err != nil {
		return nil, err
	}

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
	var siteID, profileID uuid.UUID
	if err := pool.QueryRow(ctx, "SELECT site_id, profile_id FROM scan_targets WHERE id = $1", targetID).Scan(&siteID, &profileID); err != nil {
		return nil, fmt.Errorf("read target: %w", err)
	}
	now := time.Now().UTC()
	d.Months = monthStarts(now, scaleMonths)
	ends := make([]time.Time, scaleMonths)
	for i, m := range d.Months {
		ends[i] = m.AddDate(0, 1, 0)
	}
	ends[scaleMonths-1] = now // the current month so far
	perHost := (monthRows + scaleHosts - 1) / scaleHosts

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
	// One completed job per /24 and month, committed at an even spread
	// over the month.
	if d.Jobs, err = step("scan_jobs", `
		INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, ports, options, status, attempt,
		                       scheduled_at, started_at, completed_at, progress_percent, scan_stats, created_at)
		SELECT md5(format('bench-scale-%s-%s', mo.m - 1, j))::uuid, $1, $2, $3,
		       set_masklen('10.99.0.0'::inet + j * 256, 24)::cidr, '1-1024', '{}', 'completed', 1,
		       t - interval '20 minutes', t - interval '20 minutes', t, 100,
		       jsonb_build_object('hosts_up', 256, 'nmap_version', '7.93'), t - interval '20 minutes'
		FROM unnest($4::timestamptz[], $5::timestamptz[]) WITH ORDINALITY AS mo(ms, me, m)
		CROSS JOIN generate_series(0, 255) j
		CROSS JOIN LATERAL (SELECT mo.ms + (mo.me - mo.ms) * ((j + 0.5) / 256.0) AS t) x
		WHERE j NOT BETWEEN $6 AND $7`,
		targetID, siteID, profileID, d.Months, ends, scaleHoleLo, scaleHoleHi); err != nil {
		return nil, err
	}
	last := scaleMonths - 1
	if d.Hosts, err = step("hosts", fmt.Sprintf(`
		INSERT INTO hosts (site_id, ip_address, hostname, mac_address, vendor, os_family, os_name, os_confidence,
		                   status, discovery_count, first_seen, last_seen, last_job_id)
		SELECT $1, h.ip_address,
		       CASE WHEN n %% 4 = 0 THEN format('host-%%s.bench.example', n) END,
		       CASE WHEN n %% 2 = 0 THEN format('02:42:0a:63:%%s:%%s', lpad(to_hex(n >> 8), 2, '0'), lpad(to_hex(n & 255), 2, '0'))::macaddr END,
		       CASE WHEN n %% 2 = 0 THEN 'Bench Devices' END,
		       (ARRAY['Linux','Windows','embedded',NULL])[n %% 4 + 1],
		       (ARRAY['Linux 5.15','Windows Server 2022','Linux 4.19',NULL])[n %% 4 + 1],
		       CASE WHEN n %% 4 <> 3 THEN 90 END,
		       CASE WHEN n %% 20 = 0 THEN 'down' ELSE 'up' END, %d, $2, j.completed_at, j.id
		FROM generate_series(0, 65535) n
		CROSS JOIN LATERAL (SELECT '10.99.0.0'::inet + n AS ip_address) h
		JOIN scan_jobs j ON j.id = %s
		WHERE (n >> 8) NOT BETWEEN $3 AND $4`, scaleMonths, scaleJobID(fmt.Sprint(last))),
		siteID, d.Months[0], scaleHoleLo, scaleHoleHi); err != nil {
		return nil, err
	}
	// port_scans: rows r = k*hosts + idx < monthRows, k-th port of host idx;
	// two months at a time (one INSERT per core).
	monthSQL := fmt.Sprintf(`
		INSERT INTO port_scans (job_id, host_id, port, protocol, state, reason, service_name, service_product,
		                        service_version, service_extra_info, scanned_at)
		SELECT j.id, h.id, CASE WHEN k < 16 THEN (%[1]s)[k + 1] ELSE 1024 + k END, 'tcp',
		       CASE WHEN k < 2 + hi %% 3 THEN 'open' WHEN (hi + k) %% 3 = 0 THEN 'closed' ELSE 'filtered' END,
		       CASE WHEN k < 2 + hi %% 3 THEN 'syn-ack' WHEN (hi + k) %% 3 = 0 THEN 'conn-refused' ELSE 'no-response' END,
		       CASE WHEN k < 2 + hi %% 3 THEN (%[2]s)[k + 1] END,
		       CASE WHEN k < 2 + hi %% 3 THEN NULLIF((%[3]s)[k + 1], '') END,
		       CASE WHEN k < 2 + hi %% 3 AND k %% 2 = 0 THEN format('%%s.%%s', 1 + $2::int %% 9, hi %% 7) END,
		       NULL, j.completed_at
		FROM hosts h
		CROSS JOIN LATERAL (SELECT %[4]s AS hi) x
		JOIN scan_jobs j ON j.id = %[5]s
		CROSS JOIN generate_series(0, $3 - 1) k
		WHERE h.site_id = $1 AND k::bigint * %[6]d + hi < $4`,
		scalePorts, scaleSvcNames, scaleProducts, scaleHostIdx, scaleJobID("$2::int"), scaleHosts)
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
				n, err := step(fmt.Sprintf("port_scans %s", d.Months[m].Format("2006-01")), monthSQL, siteID, m, perHost, monthRows)
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
	// services: the open ports (what is true now).
	if d.Services, err = step("services", fmt.Sprintf(`
		INSERT INTO services (host_id, port, protocol, state, service_name, service_product, service_version,
		                      first_seen, last_seen, last_job_id)
		SELECT h.id, (%[1]s)[k + 1], 'tcp', 'open', (%[2]s)[k + 1], NULLIF((%[3]s)[k + 1], ''),
		       CASE WHEN k %% 2 = 0 THEN format('%%s.%%s', 1 + %[5]d %% 9, hi %% 7) END, $2, h.last_seen, h.last_job_id
		FROM hosts h
		CROSS JOIN LATERAL (SELECT %[4]s AS hi) x
		CROSS JOIN LATERAL generate_series(0, 1 + hi %% 3) k
		WHERE h.site_id = $1`, scalePorts, scaleSvcNames, scaleProducts, scaleHostIdx, last), siteID, d.Months[0]); err != nil {
		return nil, err
	}
	// host_history: discovery in the first month, then a few port and
	// service changes a year, oldest first (ids grow with time, as live).
	if d.History, err = step("host_history", fmt.Sprintf(`
		INSERT INTO host_history (host_id, site_id, job_id, event, port, protocol, old_value, new_value, changed_at, changed_by, change_reason, feed_seq)
		SELECT host_id, $1, job_id, event, port, protocol, old_value, new_value, changed_at, 'bench-data', 'scan',
		       nextval('host_history_feed_seq') -- final numbers now: nothing is left for the commit-time renumbering
		FROM (
		    SELECT h.id AS host_id, j.id AS job_id, ev.event, ev.port, ev.protocol, ev.old_value, ev.new_value,
		           j.completed_at AS changed_at, hi
		    FROM hosts h
		    CROSS JOIN LATERAL (SELECT %[1]s AS hi) x
		    CROSS JOIN generate_series(0, %[2]d) m
		    JOIN scan_jobs j ON j.id = %[3]s
		    CROSS JOIN LATERAL (
		        SELECT 'host_discovered' AS event, NULL::int AS port, NULL AS protocol, NULL AS old_value, 'up' AS new_value
		        WHERE m = 0
		        UNION ALL
		        SELECT CASE WHEN m %% 2 = 0 THEN 'port_closed' ELSE 'port_opened' END, (%[4]s)[5 + m %% 4], 'tcp',
		               CASE WHEN m %% 2 = 0 THEN 'open' ELSE 'closed' END, CASE WHEN m %% 2 = 0 THEN 'closed' ELSE 'open' END
		        WHERE m > 0 AND (hi + m) %% 4 = 0
		        UNION ALL
		        SELECT 'service_changed', 22, 'tcp', format('OpenSSH 8.%%s', m), format('OpenSSH 9.%%s', m)
		        WHERE m > 0 AND (hi * 7 + m) %% 9 = 0
		        UNION ALL
		        SELECT 'host_down', NULL, NULL, 'up', 'down'
		        WHERE m = %[2]d AND h.status = 'down'
		    ) ev
		    WHERE h.site_id = $1
		) e
		ORDER BY changed_at, hi`, scaleHostIdx, last, scaleJobID("m"), scalePorts), siteID); err != nil {
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
	for i := range 256 {
		if i < scaleHoleLo || i > scaleHoleHi {
			d.ReadNetworks = append(d.ReadNetworks, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 99, byte(i), 0}), 24))
		}
	}
	var size int64
	if err := pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return nil, err
	}
	d.SizeMB = float64(size) / (1 << 20)
	e.Log.Info("scale data ready", "hosts", d.Hosts, "port_scans", d.PortRows, "jobs", d.Jobs, "services", d.Services,
		"host_history", d.History, "size_mb", round(d.SizeMB, 0), "elapsed", time.Since(begin).Round(time.Millisecond))
	return d, nil
}

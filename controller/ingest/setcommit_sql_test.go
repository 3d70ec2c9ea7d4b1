package ingest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/gen/db"
)

// ingest_commit_many merges a group of two or more jobs set-based (every
// merge step once for the whole group) and keeps the per-job loop as its
// fallback. These tests commit the same randomized groups once through each
// path, into two fresh databases, and require the same outcome: results of
// every call, hosts, services, port_scans, job_hosts, jobs, leases, and
// host_history with its change-feed order.

// setJob is one job's part of a group commit, with how its row is set up
// before the commit.
type setJob struct {
	id       uuid.UUID
	site     int
	network  string
	excluded []string
	worker   string
	token    int64  // the token the commit presents
	setup    string // leased, running, cancelled, fenced, stolen, failed, missing, recommit, bad
	tcp, udp string
	stats    []byte
	rows     rowBuffer
}

// setScenario is a sequence of group commits (rounds) on two sites sharing
// one address plan, so one address is two hosts.
type setScenario struct {
	sites   [2]uuid.UUID
	targets [2]uuid.UUID
	rounds  [][]*setJob
}

var (
	setAddrs    = []string{"10.99.50.1", "10.99.50.2", "10.99.50.3", "10.99.50.65", "10.99.50.66", "10.99.50.130", "10.99.50.131", "10.99.50.200"}
	setNetworks = []string{"10.99.50.0/24", "10.99.50.0/24", "10.99.50.0/26", "10.99.50.64/26", "10.99.50.128/25", "10.99.50.2/32"}
	setExcluded = []string{"10.99.50.0/30", "10.99.50.64/31", "10.99.50.200/32"}
	setOS       = []string{"", "Linux 5.X", "Linux 6.X"}
	setServices = []string{"", "ssh", "ssh OpenSSH 8.9", "ssh OpenSSH 9.6", "http nginx 1.25"}
	setPorts    = []struct {
		proto string
		port  int32
	}{{"tcp", 22}, {"tcp", 80}, {"tcp", 443}, {"udp", 53}}
	setTCP = []string{"{[1,1024]}", "{[22,22]}", "{[22,80]}", "{}"}
	setUDP = []string{"{[53,53]}", "{}"}
)

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// newSetScenario draws rounds of 2–8 jobs: overlapping networks and hosts
// (jobs of one group that must be merged in order), both sites, exclusions,
// partial commits of cancelled jobs, fenced-off jobs (token or worker moved
// on), jobs that failed or vanished, re-commits of committed jobs, the same
// job twice in a group, and jobs the database rejects.
func newSetScenario(seed uint64, rounds int) *setScenario {
	r := rand.New(rand.NewPCG(seed, 0x5e7c0)) //nolint:gosec // a reproducible test scenario
	uid := func() uuid.UUID {
		var u uuid.UUID
		for i := range u {
			u[i] = byte(r.UintN(256))
		}
		u[6], u[8] = (u[6]&0x0f)|0x40, (u[8]&0x3f)|0x80
		return u
	}
	sc := &setScenario{sites: [2]uuid.UUID{uid(), uid()}, targets: [2]uuid.UUID{uid(), uid()}}
	var committed []*setJob
	for range rounds {
		var group []*setJob
		for range 2 + r.IntN(7) {
			roll := r.IntN(100)
			if roll < 10 && len(committed) > 0 {
				old := pick(r, committed)
				again := &setJob{id: old.id, site: old.site, network: old.network, worker: old.worker, token: old.token,
					setup: "recommit", tcp: old.tcp, udp: old.udp}
				if r.IntN(4) == 0 {
					again.token += 5
				}
				fillRows(r, again)
				group = append(group, again)
				continue
			}
			j := &setJob{id: uid(), site: r.IntN(2), network: pick(r, setNetworks), worker: fmt.Sprintf("w%d", 1+r.IntN(3)),
				token: 1 + r.Int64N(3), setup: "leased", tcp: pick(r, setTCP), udp: pick(r, setUDP)}
			switch {
			case roll < 16:
				j.setup = "running"
			case roll < 28:
				j.setup = "cancelled"
			case roll < 33:
				j.setup = "fenced"
			case roll < 36:
				j.setup = "stolen"
			case roll < 39:
				j.setup = "failed"
			case roll < 41:
				j.setup = "missing"
			case roll < 43:
				j.setup = "bad"
			}
			if r.IntN(4) == 0 {
				j.excluded = []string{pick(r, setExcluded)}
			}
			if r.IntN(3) > 0 {
				j.stats = fmt.Appendf(nil, `{"hosts_sent":%d}`, r.IntN(9))
			}
			fillRows(r, j)
			group = append(group, j)
			if j.setup != "missing" && j.setup != "bad" {
				committed = append(committed, j)
			}
		}
		if r.IntN(12) == 0 {
			dup := *group[r.IntN(len(group))]
			dup.rows, dup.setup = rowBuffer{}, "recommit" // its row exists already
			fillRows(r, &dup)
			group = append(group, &dup)
		}
		sc.rounds = append(sc.rounds, group)
	}
	return sc
}

// fillRows draws what the job's scan reported: hosts of its network up or
// down, with OS, names and ports in every state.
func fillRows(r *rand.Rand, j *setJob) {
	n := netip.MustParsePrefix(j.network)
	for _, a := range setAddrs {
		ip := netip.MustParseAddr(a)
		if !n.Contains(ip) || r.IntN(2) == 0 {
			continue
		}
		h := hostRow{ip: ip, status: "up", reason: "syn-ack", hostname: pick(r, []string{"", "a.lab", "b.lab"}),
			vendor: pick(r, []string{"", "Acme"}), osName: pick(r, setOS)}
		if r.IntN(5) == 0 {
			h.status, h.reason = "down", "no-response"
		}
		if h.osName != "" {
			h.osFamily, _, _ = strings.Cut(h.osName, " ")
			h.osAccuracy = 90
		}
		if r.IntN(4) == 0 {
			h.mac = net.HardwareAddr{2, 0, 0, 0, 0, byte(r.IntN(3))}
		}
		if j.setup == "bad" && r.IntN(2) == 0 {
			h.osAccuracy = 200 // hosts_os_confidence_check
		}
		j.rows.addHost(h)
		if h.status != "up" {
			continue
		}
		for _, p := range setPorts {
			if r.IntN(2) == 0 {
				continue
			}
			row := portRow{ip: ip, protocol: p.proto, port: p.port, state: "open", reason: "syn-ack"}
			switch r.IntN(5) {
			case 0:
				row.state, row.reason = "closed", "reset"
			case 1:
				row.state, row.reason = "filtered", "no-response"
			default:
				row.name, row.product, row.version = serviceParts(pick(r, setServices))
				if r.IntN(4) == 0 {
					row.extra = "x"
				}
				if r.IntN(4) == 0 {
					row.scripts = []byte(`{"banner":"hi"}`)
				}
			}
			j.rows.addPort(row)
		}
	}
	if j.setup == "bad" && !slices.Contains(j.rows.hOSConf, 200) {
		j.rows.addHost(hostRow{ip: n.Addr(), status: "up", reason: "syn-ack", osName: "Linux 5.X", osFamily: "Linux", osAccuracy: 200})
	}
}

// setRun is one database the scenario ran in, and what each call said.
type setRun struct {
	pool    *pgxpool.Pool
	results [][]string
	paths   []string
	times   []time.Time // each round's statement_timestamp, the commit's clock
	jobsOf  [][]string  // each round's job ids, in the group's order
}

const commitManyWithTime = `
SELECT statement_timestamp(), r.idx, r.outcome, r.message, r.job_site_id, r.merged_hosts, r.up_hosts, r.port_rows, r.changes
FROM ingest_commit_many(
    $1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[], $7::integer[], $8::integer[],
    $9::inet[], $10::text[], $11::text[], $12::macaddr[], $13::text[], $14::text[], $15::text[], $16::text[], $17::smallint[],
    $18::inet[], $19::text[], $20::integer[], $21::text[], $22::text[], $23::text[], $24::text[], $25::text[], $26::text[],
    $27::jsonb[]) AS r`

// runSetScenario sets up and commits every round on one connection; mode
// is the session's scanorama.commit_many (” for the default).
func runSetScenario(t *testing.T, sc *setScenario, mode string) *setRun {
	t.Helper()
	ctx := context.Background()
	pool := newPool(t)
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", strings.Fields(sql)[0], err)
		}
	}
	if mode != "" {
		exec(`SELECT set_config('scanorama.commit_many', $1, false)`, mode)
	}
	for i := range sc.sites {
		exec(`INSERT INTO sites (id, name, created_by) VALUES ($1, $2, 'test')`, sc.sites[i], fmt.Sprintf("site-%d", i))
		exec(`INSERT INTO scan_targets (id, site_id, name, network, profile_id, enabled, next_run_at, created_by)
			SELECT $1, $2, 'net', '10.99.50.0/24', id, true, now(), 'test' FROM scan_profiles WHERE name = 'quick'`,
			sc.targets[i], sc.sites[i])
	}
	run := &setRun{pool: pool}
	for _, group := range sc.rounds {
		var arg db.CommitJobsParams
		var all rowBuffer
		var ids []string
		for _, j := range group {
			setUpJob(t, exec, sc, j)
			ids = append(ids, j.id.String())
			arg.JobIds, arg.WorkerIds, arg.LeaseTokens = append(arg.JobIds, j.id), append(arg.WorkerIds, j.worker), append(arg.LeaseTokens, j.token)
			arg.ScannedTcp, arg.ScannedUdp, arg.Stats = append(arg.ScannedTcp, j.tcp), append(arg.ScannedUdp, j.udp), append(arg.Stats, j.stats)
			arg.HostCounts = append(arg.HostCounts, int32(len(j.rows.hIP)))
			arg.PortCounts = append(arg.PortCounts, int32(len(j.rows.pIP)))
			all.append(&j.rows)
		}
		all.setManyArrays(&arg)
		rows, err := conn.Query(ctx, commitManyWithTime, arg.JobIds, arg.WorkerIds, arg.LeaseTokens, arg.ScannedTcp,
			arg.ScannedUdp, arg.Stats, arg.HostCounts, arg.PortCounts, arg.HIp, arg.HStatus, arg.HReason, arg.HMac,
			arg.HVendor, arg.HHostname, arg.HOsName, arg.HOsFamily, arg.HOsConf, arg.PIp, arg.PProtocol, arg.PPort,
			arg.PState, arg.PReason, arg.PName, arg.PProduct, arg.PVersion, arg.PExtra, arg.PScripts)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		var at time.Time
		for rows.Next() {
			var c db.CommitJobsRow
			if err := rows.Scan(&at, &c.Idx, &c.Outcome, &c.Message, &c.JobSiteID, &c.MergedHosts, &c.UpHosts, &c.PortRows, &c.Changes); err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%d %s %q site=%s hosts=%d up=%d ports=%d changes=%d",
				c.Idx, c.Outcome, c.Message, c.JobSiteID, c.MergedHosts, c.UpHosts, c.PortRows, c.Changes))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		var path string
		if err := conn.QueryRow(ctx, `SELECT current_setting('scanorama.commit_many_path', true)`).Scan(&path); err != nil {
			t.Fatal(err)
		}
		run.results, run.paths, run.times = append(run.results, got), append(run.paths, path), append(run.times, at)
		run.jobsOf = append(run.jobsOf, ids)
	}
	return run
}

// setUpJob writes the job's row (and lease) as its setup says; a re-commit
// or a missing job writes nothing.
func setUpJob(t *testing.T, exec func(string, ...any), sc *setScenario, j *setJob) {
	t.Helper()
	status, worker, token := "leased", j.worker, j.token
	switch j.setup {
	case "recommit", "missing":
		return
	case "running", "cancelled", "failed":
		status = j.setup
	case "fenced":
		token++
	case "stolen":
		worker = "thief"
	}
	excluded := j.excluded
	if excluded == nil {
		excluded = []string{}
	}
	exec(`INSERT INTO scan_jobs (id, target_id, site_id, profile_id, network, exclusions, options, status, attempt, worker_id,
		                       lease_token, timeout_at, started_at, completed_at)
		SELECT $1, $2, $3, id, $4::cidr, $5::text[]::cidr[], '{}', $6, 1, $7, $8,
		       CASE WHEN $6 IN ('leased', 'running') THEN now() + interval '1 hour' END, now(),
		       CASE WHEN $6 IN ('cancelled', 'failed') THEN now() END
		FROM scan_profiles WHERE name = 'quick'`,
		j.id, sc.targets[j.site], sc.sites[j.site], j.network, excluded, status, worker, token)
	exec(`INSERT INTO scan_job_leases (job_id, lease_token, worker_id) VALUES ($1, $2, $3)`, j.id, token, worker)
}

// historyRow is one host_history row, its timestamps as round numbers.
type historyRow struct {
	site, ip, job, event, port, old, new, by, why string
	round, class                                  int
	feedSeq                                       int64
}

// historyClass is the step of ingest_commit that writes an event, in the
// order a job's events are written.
func historyClass(event, why string) int {
	switch event {
	case "os_changed":
		return 2
	case "host_down":
		if why == "no reply to this scan" {
			return 3
		}
		return 1
	case "port_opened":
		return 4
	case "service_changed":
		return 5
	case "port_closed":
		return 6
	}
	return 1
}

// dump is everything the commits left, as comparable lines: timestamps
// written by a commit become the number of its round.
func (run *setRun) dump(t *testing.T) map[string][]string {
	t.Helper()
	ctx := context.Background()
	round := func(col string) string {
		return fmt.Sprintf(`coalesce(array_position($1::timestamptz[], %s)::text, CASE WHEN %s IS NULL THEN 'null' ELSE 'other' END)`, col, col)
	}
	sections := map[string]string{
		"hosts": `SELECT concat_ws('|', site_id, host(ip_address), hostname, mac_address, vendor, os_family, os_name, os_confidence,
		                status, discovery_count, ignore_scanning, ` + round("first_seen") + `, ` + round("last_seen") + `, last_job_id, '.')
		          FROM hosts`,
		"services": `SELECT concat_ws('|', h.site_id, host(h.ip_address), s.port, s.protocol, s.state, s.service_name, s.service_product,
		                s.service_version, s.service_extra_info, ` + round("s.first_seen") + `, ` + round("s.last_seen") + `, s.last_job_id, '.')
		          FROM services s JOIN hosts h ON h.id = s.host_id`,
		"port_scans": `SELECT concat_ws('|', p.job_id, h.site_id, host(h.ip_address), p.port, p.protocol, p.state, p.reason, p.service_name,
		                p.service_product, p.service_version, p.service_extra_info, p.scripts, ` + round("p.scanned_at") + `, '.')
		          FROM port_scans p JOIN hosts h ON h.id = p.host_id`,
		"job_hosts": `SELECT concat_ws('|', jh.job_id, host(jh.ip_address), h.site_id, host(h.ip_address), jh.status, jh.reason, jh.hostname,
		                jh.mac_address, jh.vendor, jh.os_name, jh.os_confidence, '.')
		          FROM job_hosts jh JOIN hosts h ON h.id = jh.host_id`,
		"jobs": `SELECT concat_ws('|', id, status, ` + round("completed_at") + `, progress_percent, timeout_at IS NULL, error_message, partial,
		                hosts_finished, finished_hosts, scan_stats, worker_id, lease_token, '.')
		          FROM scan_jobs`,
		"leases": `SELECT concat_ws('|', job_id, lease_token, worker_id, ended_at IS NULL, outcome, '.') FROM scan_job_leases`,
	}
	out := map[string][]string{}
	for name, sql := range sections {
		var args []any
		if strings.Contains(sql, "$1") {
			args = append(args, run.times)
		}
		rows, err := run.pool.Query(ctx, sql, args...)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		slices.Sort(out[name])
	}
	out["history"] = run.history(t)
	return out
}

// history checks the change feed's order in this database and returns the
// history rows in a canonical order. Every row is stamped (feed_seq > 0).
// On each host, events follow the jobs' order (round, then place in the
// group) and, within a job, ingest_commit's step order; so does each job's
// own sequence. Only rows of one job, one step and one host (ports of a
// host) may come in either order: the per-job path's order among them is
// its plan's.
func (run *setRun) history(t *testing.T) []string {
	t.Helper()
	rows, err := run.pool.Query(context.Background(), `
		SELECT hh.site_id::text, host(h.ip_address), coalesce(hh.job_id::text, '-'), hh.event,
		       coalesce(hh.port || '/' || hh.protocol, '-'), coalesce(hh.old_value, '∅'), coalesce(hh.new_value, '∅'),
		       hh.changed_by, coalesce(hh.change_reason, '∅'), coalesce(array_position($1::timestamptz[], hh.changed_at), 0), hh.feed_seq
		FROM host_history hh JOIN hosts h ON h.id = hh.host_id
		ORDER BY hh.feed_seq`, run.times)
	if err != nil {
		t.Fatal(err)
	}
	var hist []historyRow
	for rows.Next() {
		var r historyRow
		if err := rows.Scan(&r.site, &r.ip, &r.job, &r.event, &r.port, &r.old, &r.new, &r.by, &r.why, &r.round, &r.feedSeq); err != nil {
			t.Fatal(err)
		}
		r.class = historyClass(r.event, r.why)
		hist = append(hist, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// place is a job's position in its round's group.
	place := func(r historyRow) int {
		if r.round < 1 {
			return -1
		}
		return slices.Index(run.jobsOf[r.round-1], r.job)
	}
	key := func(r historyRow) []int { return []int{r.round, place(r), r.class} }
	lastOnHost, lastOfJob := map[string][]int{}, map[string][]int{}
	for _, r := range hist {
		if r.feedSeq <= 0 || r.round == 0 {
			t.Errorf("history row %+v: not stamped, or not written by a commit", r)
		}
		k := key(r)
		if prev, ok := lastOnHost[r.site+r.ip]; ok && slices.Compare(prev, k) > 0 {
			t.Errorf("feed order on host %s: %v after %v", r.ip, k, prev)
		}
		if prev, ok := lastOfJob[r.job]; ok && slices.Compare(prev, k) > 0 {
			t.Errorf("feed order of job %s: %v after %v", r.job, k, prev)
		}
		lastOnHost[r.site+r.ip], lastOfJob[r.job] = k, k
	}
	slices.SortStableFunc(hist, func(a, b historyRow) int {
		return cmp.Or(cmp.Compare(a.site, b.site), cmp.Compare(a.ip, b.ip), slices.Compare(key(a), key(b)), cmp.Compare(a.port, b.port))
	})
	out := make([]string, len(hist))
	for i, r := range hist {
		out[i] = strings.Join([]string{r.site, r.ip, fmt.Sprint(r.round), fmt.Sprint(place(r)), r.job, r.event, r.port, r.old, r.new, r.by, r.why}, "|")
	}
	return out
}

func TestSetBasedGroupCommitMatchesPerJob(t *testing.T) {
	t.Parallel()
	const seeds, rounds = 12, 10
	type tally struct{ set, split, fallback, perJob int }
	totals := make(chan tally, seeds)
	fallbacks := make(chan string, seeds*rounds)
	t.Run("seeds", func(t *testing.T) {
		for seed := range uint64(seeds) {
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				sc := newSetScenario(seed, rounds)
				perJob, set := runSetScenario(t, sc, "per_job"), runSetScenario(t, sc, "")
				var n tally
				for i := range sc.rounds {
					if p := perJob.paths[i]; p != "per_job" {
						t.Errorf("round %d: per-job database took path %q", i+1, p)
					}
					switch p := set.paths[i]; {
					case p == "set:1":
						n.set++
					case strings.HasPrefix(p, "set:"):
						n.set++
						n.split++
					case strings.HasPrefix(p, "fallback:"):
						n.fallback++
						fallbacks <- p
					default:
						n.perJob++
					}
					if !slices.Equal(perJob.results[i], set.results[i]) {
						t.Errorf("round %d (%s) results differ:\nper job: %s\nset:     %s", i+1, set.paths[i],
							strings.Join(perJob.results[i], "\n         "), strings.Join(set.results[i], "\n         "))
					}
				}
				want, got := perJob.dump(t), set.dump(t)
				for _, name := range []string{"hosts", "services", "port_scans", "job_hosts", "jobs", "leases", "history"} {
					if len(want[name]) == 0 && name != "leases" {
						t.Errorf("%s: no rows at all; the scenario tests nothing", name)
					}
					if !slices.Equal(want[name], got[name]) {
						t.Errorf("%s differ (paths %v):\nper job:\n  %s\nset:\n  %s", name, set.paths,
							strings.Join(want[name], "\n  "), strings.Join(got[name], "\n  "))
					}
				}
				totals <- n
			})
		}
	})
	close(totals)
	close(fallbacks)
	var firstFallbacks []string
	for p := range fallbacks {
		if len(firstFallbacks) < 5 {
			firstFallbacks = append(firstFallbacks, p)
		}
	}
	var all tally
	for n := range totals {
		all.set, all.split, all.fallback, all.perJob = all.set+n.set, all.split+n.split, all.fallback+n.fallback, all.perJob+n.perJob
	}
	for _, p := range firstFallbacks {
		t.Log(p)
	}
	t.Logf("set-based rounds %d (of them split into passes %d), fallbacks %d, per-job %d", all.set, all.split, all.fallback, all.perJob)
	// The comparison means something only if the set-based path ran, split
	// groups, and fell back.
	if !t.Failed() && (all.set < seeds*rounds/2 || all.split == 0 || all.fallback == 0) {
		t.Errorf("scenario coverage too thin: %+v", all)
	}
}

// Two set-based group commits at once, both reporting a host the site did
// not know: the second waits for the first one's row, the host is
// discovered once, and both groups commit every job set-based.
func TestConcurrentGroupCommitsDiscoverAHostOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newSQLFixture(t, arrayPath)
	jobs := []uuid.UUID{f.newJob(t, nil), f.newJob(t, nil), f.newJob(t, nil), f.newJob(t, nil)}
	// Partial commits (the jobs were cancelled while leased) touch only
	// their reported hosts, so each group's two jobs share one pass and the
	// first group does not mark the second group's hosts down.
	if _, err := f.pool.Exec(ctx, `UPDATE scan_jobs SET status = 'cancelled', completed_at = now()`); err != nil {
		t.Fatal(err)
	}
	group := func(a, b uuid.UUID, other string) db.CommitJobsParams {
		var all rowBuffer
		all.append(oneHost(netip.MustParseAddr("10.99.50.77"), ""))
		all.append(oneHost(netip.MustParseAddr(other), ""))
		arg := db.CommitJobsParams{
			JobIds: []uuid.UUID{a, b}, WorkerIds: []string{"w", "w"}, LeaseTokens: []int64{1, 1},
			ScannedTcp: []string{"{[22,22]}", "{[22,22]}"}, ScannedUdp: []string{"{}", "{}"}, Stats: [][]byte{nil, nil},
			HostCounts: []int32{1, 1}, PortCounts: []int32{1, 1},
		}
		all.setManyArrays(&arg)
		return arg
	}
	commit := func(q *db.Queries, arg db.CommitJobsParams) error {
		rows, err := q.CommitJobs(ctx, arg)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if r.Outcome != "committed" {
				return fmt.Errorf("job %d: %s %s", r.Idx, r.Outcome, r.Message)
			}
		}
		return nil
	}
	path := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) string {
		var p string
		if err := q.QueryRow(ctx, `SELECT current_setting('scanorama.commit_many_path', true)`).Scan(&p); err != nil {
			t.Fatal(err)
		}
		return p
	}

	tx := openTx(ctx, t, f.pool)
	if err := commit(db.New(tx), group(jobs[0], jobs[1], "10.99.50.78")); err != nil {
		t.Fatalf("first group: %v", err)
	}
	if p := path(tx); p != "set:1" {
		t.Fatalf("first group took path %q, want set:1", p)
	}

	second, err := f.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Release()
	done := make(chan error, 1)
	go func() { done <- commit(db.New(second), group(jobs[2], jobs[3], "10.99.50.79")) }()
	waitForLockWait(ctx, t, f.pool, "%ingest_commit_many%", func() (string, bool) {
		select {
		case err := <-done:
			return fmt.Sprint(err), true
		default:
			return "", false
		}
	})
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("second group: %v", err)
	}
	if p := path(second); p != "set:1" {
		t.Errorf("second group took path %q, want set:1", p)
	}
	got := f.lines(t, `SELECT event || ' ' || host(h.ip_address) || ' ' || (hh.job_id = $1) FROM host_history hh
		JOIN hosts h ON h.id = hh.host_id WHERE hh.event = 'host_discovered'`, jobs[0])
	want := []string{"host_discovered 10.99.50.77 true", "host_discovered 10.99.50.78 false", "host_discovered 10.99.50.79 false"}
	if !slices.Equal(got, want) {
		t.Errorf("discoveries = %v, want %v", got, want)
	}
}

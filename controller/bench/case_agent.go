package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/agent/scanspec/specpb"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// The agent cases' address plan, all inside labNetwork.
var (
	overheadNet = netip.MustParsePrefix("10.99.1.0/24")
	rssSmallNet = netip.MustParsePrefix("10.99.48.0/28")
	rssLargeNet = netip.MustParsePrefix("10.99.16.0/20")
)

const (
	labPorts  = "22,80,443" // 22 and 80 open on every live host, 443 closed
	openPorts = "22,80"
)

func labLiveHosts() []netip.Addr {
	var live []netip.Addr
	for i := 1; i <= 24; i++ { // 24 of the /24
		live = append(live, netip.AddrFrom4([4]byte{10, 99, 1, byte(i)}))
	}
	for i := 1; i <= 3; i++ { // 3 of the /28
		live = append(live, netip.AddrFrom4([4]byte{10, 99, 48, byte(i)}))
	}
	for k := range 64 { // 64 spread over the /20
		live = append(live, netip.AddrFrom4([4]byte{10, 99, byte(16 + k/4), byte(10 + (k%4)*60)}))
	}
	return live
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type agentLab struct {
	e        *Env
	lab      *netLab
	ctrl     *Controller
	pool     *pgxpool.Pool
	bin      string
	n        int
	tgtID    map[string]string
	logLevel string
}

func runAgent(ctx context.Context, e *Env, o Options) ([]Result, error) {
	agentBin, err := e.Binary(ctx, "agent/cmd/scanorama-agent")
	if err != nil {
		return nil, err
	}
	lab, err := setupLab(ctx, e, labLiveHosts(), openPorts)
	if err != nil {
		return nil, err
	}
	url, err := e.NewDatabase(ctx, "bench_agent")
	if err != nil {
		return nil, err
	}
	ctrl, err := e.StartController(ctx, "controller-agent", url)
	if err != nil {
		return nil, err
	}
	defer ctrl.Stop()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	al := &agentLab{e: e, lab: lab, ctrl: ctrl, pool: pool, bin: agentBin, tgtID: map[string]string{}, logLevel: e.ChildLogLevel}
	if err := al.setup(ctx); err != nil {
		return nil, err
	}
	var out []Result
	if o.Wants("agent_overhead_vs_nmap") {
		ovh, err := al.overhead(ctx, o.AgentTrials)
		if err != nil {
			return nil, fmt.Errorf("agent_overhead_vs_nmap: %w", err)
		}
		out = append(out, ovh)
	}
	if o.Wants("agent_rss_growth_mb") {
		rss, err := al.rssGrowth(ctx)
		if err != nil {
			return nil, fmt.Errorf("agent_rss_growth_mb: %w", err)
		}
		out = append(out, rss)
	}
	return out, nil
}

func (al *agentLab) setup(ctx context.Context) error {
	c := al.ctrl.Admin
	if _, err := c.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return fmt.Errorf("CreateSite: %w", err)
	}
	for _, p := range []struct {
		name   string
		timing int32
	}{{"bench-t4", 4}, {"bench-t5", 5}} {
		if _, err := c.CreateProfile(ctx, &pb.CreateProfileRequest{Name: p.name, Description: "scanorama-bench",
			Options: &pb.ScanOptions{ScanType: pb.ScanType_SCAN_TYPE_CONNECT, Ports: labPorts, Timing: proto.Int32(p.timing)}}); err != nil {
			return fmt.Errorf("CreateProfile %s: %w", p.name, err)
		}
	}
	for _, t := range []struct {
		name    string
		net     netip.Prefix
		profile string
	}{{"overhead", overheadNet, "bench-t4"}, {"rss-small", rssSmallNet, "bench-t5"}, {"rss-large", rssLargeNet, "bench-t5"}} {
		r, err := c.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "bench", Name: t.name, Network: t.net.String(), Ports: labPorts, Profile: t.profile})
		if err != nil {
			return fmt.Errorf("CreateTarget %s: %w", t.name, err)
		}
		al.tgtID[t.name] = r.GetTarget().GetId()
	}
	return nil
}

// startAgent starts a fresh real agent process whose nmap runs in the scan
// namespace, and waits until it is registered and long-polling.
func (al *agentLab) startAgent(ctx context.Context, logLevel string) (*Proc, error) {
	al.n++
	name := fmt.Sprintf("netns-agent-%d", al.n)
	p, err := al.e.StartProc("agent-"+name, al.bin,
		"--controller", al.ctrl.Addr, "--insecure", "--site", "bench", "--name", name, "--scope", labNetwork.String(),
		"--spool-dir", filepath.Join(al.e.Tmp, "spool-"+name), "--nmap", al.lab.nmapWrapper, "--log-level", logLevel)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var n int
		if err := al.pool.QueryRow(ctx, "SELECT count(*) FROM agents WHERE name = $1", name).Scan(&n); err != nil {
			return nil, err
		}
		if n == 1 {
			break
		}
		if p.Exited() || time.Now().After(deadline) {
			p.Kill()
			return nil, fmt.Errorf("agent %s did not register:\n%s", name, p.Tail(20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let its AcquireJob park
	return p, nil
}

// scan runs ScanNow on a target and waits until every job it created is
// committed; it returns the job ids and the wall time from the ScanNow call
// to the last commit notification.
func (al *agentLab) scan(ctx context.Context, target string, agent *Proc) ([]string, time.Duration, error) {
	conn, err := pgx.Connect(ctx, al.ctrl.URL)
	if err != nil {
		return nil, 0, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN scanorama_events"); err != nil {
		return nil, 0, err
	}
	begin := time.Now()
	sn, err := al.ctrl.Admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: al.tgtID[target]})
	if err != nil {
		return nil, 0, fmt.Errorf("ScanNow %s: %w", target, err)
	}
	pending := map[string]bool{}
	var ids []string
	for _, j := range sn.GetJobs() {
		pending[j.GetId()] = true
		ids = append(ids, j.GetId())
	}
	deadline := time.Now().Add(5 * time.Minute)
	for len(pending) > 0 {
		wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, 0, ctx.Err()
			}
			// Quiet for 2s: make sure nothing failed (failures are not notified).
			if err := al.checkNotFailed(ctx, ids); err != nil {
				return nil, 0, fmt.Errorf("%w\nagent log:\n%s", err, agent.Tail(20))
			}
			if agent.Exited() {
				return nil, 0, fmt.Errorf("agent exited:\n%s", agent.Tail(20))
			}
			if time.Now().After(deadline) {
				return nil, 0, fmt.Errorf("%d jobs of %s not committed after 5 minutes", len(pending), target)
			}
			continue
		}
		var ev struct {
			Type   string `json:"type"`
			JobID  string `json:"job_id"`
			Status string `json:"status"`
		}
		if json.Unmarshal([]byte(n.Payload), &ev) != nil || ev.Type != "job" || !pending[ev.JobID] {
			continue
		}
		switch ev.Status {
		case "completed":
			delete(pending, ev.JobID)
		case "failed", "cancelled":
			return nil, 0, fmt.Errorf("job %s %s", ev.JobID, ev.Status)
		}
	}
	el := time.Since(begin)
	// The commit is what we time; the agent still has to read its ack
	// (stopping it earlier would leave the results in its spool).
	for _, id := range ids {
		if err := waitLog(agent, "job_id="+id, "committed", 10*time.Second); err != nil {
			return nil, 0, err
		}
	}
	return ids, el, nil
}

// waitLog waits until a line of p's log contains both substrings.
func waitLog(p *Proc, a, b string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		data, _ := os.ReadFile(p.LogPath)
		for _, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, a) && strings.Contains(line, b) {
				return nil
			}
		}
		if p.Exited() || time.Now().After(deadline) {
			return fmt.Errorf("%s: no log line with %q and %q:\n%s", p.Name, a, b, p.Tail(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (al *agentLab) checkNotFailed(ctx context.Context, ids []string) error {
	rows, err := al.pool.Query(ctx, "SELECT id, status, coalesce(error_message, '') FROM scan_jobs WHERE id = ANY($1::uuid[]) AND status IN ('failed', 'cancelled')", ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	if rows.Next() {
		var id uuid.UUID
		var st, msg string
		if err := rows.Scan(&id, &st, &msg); err != nil {
			return err
		}
		return fmt.Errorf("job %s %s: %s", id, st, msg)
	}
	return rows.Err()
}

// nmapArgs builds the argument vector the agent builds for a job, from the
// job's frozen options, with agent/scanspec.
func (al *agentLab) nmapArgs(ctx context.Context, jobID string) ([]string, error) {
	var raw []byte
	var network netip.Prefix
	var excl []netip.Prefix
	if err := al.pool.QueryRow(ctx, "SELECT options, network, exclusions FROM scan_jobs WHERE id = $1", jobID).Scan(&raw, &network, &excl); err != nil {
		return nil, fmt.Errorf("read job %s: %w", jobID, err)
	}
	var opts pb.ScanOptions
	if err := protojson.Unmarshal(raw, &opts); err != nil {
		return nil, err
	}
	so, err := specpb.FromPB(&opts)
	if err != nil {
		return nil, err
	}
	return scanspec.Args(so, []netip.Prefix{network}, excl)
}

func (al *agentLab) hostsUp(ctx context.Context, jobID string) (int64, error) {
	var up int64
	err := al.pool.QueryRow(ctx, "SELECT coalesce((scan_stats->>'hosts_up')::bigint, -1) FROM scan_jobs WHERE id = $1", jobID).Scan(&up)
	return up, err
}

func (al *agentLab) overhead(ctx context.Context, trials int) (Result, error) {
	// Debug logging: the agent's "nmap started/exited" lines give the breakdown.
	agent, err := al.startAgent(ctx, "debug")
	if err != nil {
		return Result{}, err
	}
	defer agent.Stop()
	// Warm-up: one scan each way (page cache, nmap data files, connections).
	ids, _, err := al.scan(ctx, "overhead", agent)
	if err != nil {
		return Result{}, err
	}
	up, err := al.hostsUp(ctx, ids[0])
	if err != nil {
		return Result{}, err
	}
	if up != 24 {
		return Result{}, fmt.Errorf("the scan of %s found %d hosts up, want 24: the namespace lab is not working", overheadNet, up)
	}
	args, err := al.nmapArgs(ctx, ids[0])
	if err != nil {
		return Result{}, err
	}
	al.e.Log.Info("agent vs bare nmap, same options and target", "target", overheadNet, "trials", trials, "nmap_args", fmt.Sprint(args))
	if _, err := al.lab.nmap(ctx, args); err != nil {
		return Result{}, err
	}
	var viaAgent, bare, dispatch, inNmap, after []float64
	for i := range trials {
		runAgent := func() error {
			begin := time.Now()
			ids, d, err := al.scan(ctx, "overhead", agent)
			if err != nil {
				return err
			}
			viaAgent = append(viaAgent, d.Seconds())
			if b, ok := agentBreakdown(agent, ids[0]); ok {
				dispatch = append(dispatch, b.leased.Sub(begin).Seconds())
				inNmap = append(inNmap, b.exited.Sub(b.started).Seconds())
				// Log times have millisecond resolution: clamp the rounding.
				after = append(after, max(0, begin.Add(d).Sub(b.exited).Seconds()))
			}
			return nil
		}
		runNmap := func() error {
			d, err := al.lab.nmap(ctx, args)
			bare = append(bare, d.Seconds())
			return err
		}
		order := []func() error{runNmap, runAgent}
		if i%2 == 1 {
			order = []func() error{runAgent, runNmap}
		}
		for _, f := range order {
			if err := f(); err != nil {
				return Result{}, err
			}
		}
		al.e.Log.Info("overhead trial", "trial", i+1, "agent_s", round(viaAgent[i], 3), "nmap_s", round(bare[i], 3))
	}
	a, b := median(viaAgent), median(bare)
	breakdown := ""
	if len(dispatch) > 0 {
		breakdown = fmt.Sprintf("; medians through the agent: ScanNow → lease %.0f ms, nmap run %.3f s (bare %.3f s), nmap exit → commit %.0f ms",
			median(dispatch)*1000, median(inNmap), b, median(after)*1000)
	}
	return Result{
		Name: "agent_overhead_vs_nmap", Value: f64(round(a, 3)), Unit: "s", Baseline: f64(round(b, 3)), Ratio: f64(round(a/b, 3)),
		Goal: "≤ 1.05",
		Note: fmt.Sprintf("median of %d alternating trials: ScanNow → job committed through a real agent (nmap in a netns) vs the same nmap argv "+
			"(agent/scanspec.Args of the job) run bare in the same netns; %s, 24 hosts up, ports %s, -T4%s", trials, overheadNet, labPorts, breakdown),
	}, nil
}

func (al *agentLab) rssGrowth(ctx context.Context) (Result, error) {
	peak := func(target string) (float64, int, error) {
		agent, err := al.startAgent(ctx, al.logLevel)
		if err != nil {
			return 0, 0, err
		}
		defer agent.Stop()
		ids, d, err := al.scan(ctx, target, agent)
		if err != nil {
			return 0, 0, err
		}
		hwm, err := agent.HWMMB()
		if err != nil {
			return 0, 0, err
		}
		al.e.Log.Info("agent peak RSS", "target", target, "jobs", len(ids), "seconds", round(d.Seconds(), 1), "vmhwm_mb", round(hwm, 1))
		return hwm, len(ids), nil
	}
	small, _, err := peak("rss-small")
	if err != nil {
		return Result{}, err
	}
	large, jobsLarge, err := peak("rss-large")
	if err != nil {
		return Result{}, err
	}
	return Result{
		Name: "agent_rss_growth_mb", Value: f64(round(large-small, 1)), Unit: "MB", Goal: "< 64",
		Note: fmt.Sprintf("agent VmHWM scanning %s (%d /24 jobs, 64 hosts up) %.1f MB minus %s (1 job, 3 up) %.1f MB; fresh agent process each, -T5, ports %s",
			rssLargeNet, jobsLarge, large, rssSmallNet, small, labPorts),
	}, nil
}

type jobTimes struct{ leased, started, exited time.Time }

// agentBreakdown reads the agent's debug log: when it leased the job, and
// when its nmap started and exited.
func agentBreakdown(p *Proc, jobID string) (jobTimes, bool) {
	data, err := os.ReadFile(p.LogPath)
	if err != nil {
		return jobTimes{}, false
	}
	var t jobTimes
	inJob := false
	for _, line := range strings.Split(string(data), "\n") {
		ts, _, _ := strings.Cut(line, " ")
		at, err := time.Parse("2006-01-02T15:04:05.000Z07:00", ts)
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, "lease acquired") && strings.Contains(line, "job_id="+jobID):
			t.leased, inJob = at, true
		case inJob && t.started.IsZero() && strings.Contains(line, "nmap started"):
			t.started = at
		case inJob && t.exited.IsZero() && strings.Contains(line, "nmap exited"):
			t.exited = at
			return t, !t.started.IsZero()
		}
	}
	return t, false
}

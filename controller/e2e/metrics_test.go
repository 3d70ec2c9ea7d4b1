package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanorama/scanorama/controller/internal/harness"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

const (
	prometheusBin = "/usr/bin/prometheus"
	promtoolBin   = "promtool"
)

// A real Prometheus scrapes a controller and an agent while the agent scans a
// loopback listener: both targets are up, the ingest counters moved, both
// /metrics pass promtool's lint, and every scanorama_ metric the Grafana
// dashboard queries is one of the exported names.
func TestMetricsScrapedByPrometheus(t *testing.T) {
	t.Parallel()
	needBinary(t, prometheusBin)
	needBinary(t, promtoolBin)
	ctrlMetrics, agentMetrics := freePort(t), freePort(t)
	s := newStack(t, "--metrics-listen", ctrlMetrics)
	prom := startPrometheus(t, ctrlMetrics, agentMetrics)

	port := listener(t, false)
	ctx := s.ctx()
	if _, err := s.admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "lab"}); err != nil {
		t.Fatal(err)
	}
	s.agent("agent-1", "lab", "127.0.0.1/32", "--metrics-listen", agentMetrics)
	tgt, err := s.admin.CreateTarget(ctx, &pb.CreateTargetRequest{Site: "lab", Name: "loopback", Network: "127.0.0.1/32", Ports: fmt.Sprint(port)})
	if err != nil {
		t.Fatal(err)
	}
	scan, err := s.admin.ScanNow(ctx, &pb.ScanNowRequest{TargetId: tgt.GetTarget().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if job := s.waitJob(scan.GetJobs()[0].GetId(), 90*time.Second); job.GetStatus() != pb.JobStatus_JOB_STATUS_COMPLETED {
		t.Fatalf("job %s: %s", job.GetStatus(), job.GetErrorMessage())
	}

	// Prometheus scrapes every second; the job committed, so within a few
	// scrapes both targets are up and the ingest counters are above zero.
	for _, q := range []struct{ query, want string }{
		{`up{job="scanorama-controller"}`, "1"},
		{`up{job="scanorama-agent"}`, "1"},
		{`scanorama_ingest_port_rows_total > 0`, ""},
		{`scanorama_ingest_streams_total{outcome="committed"} > 0`, ""},
		{`scanorama_agent_nmap_runs_total{outcome="completed"} > 0`, ""},
		{`scanorama_jobs{status="completed",site="lab"} > 0`, ""},
	} {
		prom.waitQuery(t, q.query, q.want, 60*time.Second)
	}

	ctrlBody, agentBody := scrape(t, ctrlMetrics), scrape(t, agentMetrics)
	t.Run("promtool", func(t *testing.T) {
		for name, body := range map[string][]byte{"controller": ctrlBody, "agent": agentBody} {
			cmd := exec.Command(promtoolBin, "check", "metrics")
			cmd.Stdin = bytes.NewReader(body)
			out, err := cmd.CombinedOutput()
			if err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("promtool check metrics on the %s's /metrics: %v\n%s", name, err, out)
			}
		}
	})
	t.Run("names", func(t *testing.T) {
		names := metricNames(append(append([]byte{}, ctrlBody...), agentBody...))
		for _, want := range []string{
			"scanorama_jobs", "scanorama_jobs_oldest_pending_age_seconds", "scanorama_agents", "scanorama_leases_total",
			"scanorama_lease_fenced_writes_total", "scanorama_ingest_streams_total", "scanorama_ingest_port_rows_total",
			"scanorama_ingest_commit_duration_seconds", "scanorama_ingest_group_commit_jobs", "scanorama_db_pool_acquired_connections",
			"scanorama_db_pool_acquire_wait_seconds_total", "scanorama_events_dropped_total", "scanorama_reaper_runs_total",
			"scanorama_grpc_server_handled_total", "scanorama_agent_grpc_client_handled_total",
			"scanorama_agent_nmap_run_duration_seconds", "scanorama_agent_hosts_streamed_total", "scanorama_agent_spool_bytes",
			"scanorama_agent_spool_files", "scanorama_agent_delivery_retries_total", "scanorama_agent_heartbeat_failures_total",
			"scanorama_agent_lease_losses_total", "go_goroutines", "process_resident_memory_bytes",
		} {
			if !names[want] {
				t.Errorf("metric %s is not exported", want)
			}
		}
		// Bounded labels: no series names a job, an address or an agent.
		for _, line := range strings.Split(string(ctrlBody)+string(agentBody), "\n") {
			if strings.HasPrefix(line, "scanorama_") && regexp.MustCompile(`[{,](job_id|agent_id|agent|ip|address|name|lease_token)="`).MatchString(line) {
				t.Errorf("unbounded label in %q", line)
			}
		}
	})
	t.Run("dashboard", func(t *testing.T) {
		checkDashboard(t, metricNames(append(append([]byte{}, ctrlBody...), agentBody...)))
	})
}

// The example scrape configuration in deploy/ is valid.
func TestDeployPrometheusConfig(t *testing.T) {
	t.Parallel()
	needBinary(t, promtoolBin)
	out, err := exec.Command(promtoolBin, "check", "config", "../../deploy/prometheus/prometheus.yml").CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config: %v\n%s", err, out)
	}
	mustContain(t, string(out), "SUCCESS")
}

// checkDashboard parses deploy/grafana/scanorama.json and checks that every
// scanorama_ metric its queries name is exported (histogram series by their
// family name).
func checkDashboard(t *testing.T, exported map[string]bool) {
	t.Helper()
	raw, err := os.ReadFile("../../deploy/grafana/scanorama.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("deploy/grafana/scanorama.json: %v", err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		exprs = append(exprs, v.Definition)
	}
	nameRe := regexp.MustCompile(`scanorama_[a-zA-Z0-9_]+`)
	seen := 0
	for _, e := range exprs {
		for _, n := range nameRe.FindAllString(e, -1) {
			seen++
			family := n
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := strings.CutSuffix(n, suffix); ok && exported[f] {
					family = f
				}
			}
			if !exported[family] {
				t.Errorf("dashboard query %q names %s, which neither the controller nor the agent exports", e, n)
			}
		}
	}
	if seen < 10 {
		t.Errorf("dashboard names only %d scanorama_ metrics", seen)
	}
	for _, want := range []string{"Jobs by status", "Leases", "Ingest rate", "Commit latency", "Agents by state"} {
		found := false
		for _, p := range dash.Panels {
			found = found || p.Title == want
		}
		if !found {
			t.Errorf("dashboard has no panel %q", want)
		}
	}
}

// metricNames lists the metric families of a text exposition ("# TYPE" lines).
func metricNames(body []byte) map[string]bool {
	names := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" && f[1] == "TYPE" {
			names[f[2]] = true
		}
	}
	return names
}

func scrape(t *testing.T, addr string) []byte {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", addr, resp.Status, err)
	}
	return body
}

func needBinary(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found (Debian package prometheus; make deps installs it): %v", name, err)
	}
}

// promServer is a Prometheus server this test started.
type promServer struct {
	addr string
	proc *proc
}

// startPrometheus runs /usr/bin/prometheus on a free loopback port with a
// temporary TSDB, scraping the two targets every second; it is killed by
// PID when the test ends.
func startPrometheus(t *testing.T, controller, agent string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: scanorama-controller
    static_configs: [{targets: [%q]}]
  - job_name: scanorama-agent
    static_configs: [{targets: [%q]}]
`, controller, agent)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &promServer{addr: freePort(t)}
	cmd := exec.Command(prometheusBin, "--config.file", cfgFile, "--storage.tsdb.path", filepath.Join(dir, "data"),
		"--web.listen-address", p.addr, "--log.level", "warn")
	p.proc = startCmd(t, "prometheus", cmd, harness.Options{})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.proc.Done():
			t.Fatalf("prometheus exited:\n%s", p.proc.Output())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 60s:\n%s", p.proc.Output())
		}
	}
}

// waitQuery polls an instant query until it returns a sample (whose value
// is want, when want is set).
func (p *promServer) waitQuery(t *testing.T, query, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		values, err := p.query(query)
		if err == nil && len(values) > 0 && (want == "" || values[0] == want) {
			if f, _ := strconv.ParseFloat(values[0], 64); want == "" && f <= 0 {
				t.Fatalf("query %s returned %v", query, values)
			}
			return
		}
		last = fmt.Sprintf("values %v, error %v", values, err)
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("query %s: no expected sample after %s (last: %s)", query, within, last)
}

func (p *promServer) query(q string) ([]string, error) {
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, body.Error)
	}
	var out []string
	for _, r := range body.Data.Result {
		if s, ok := r.Value[1].(string); ok {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out, nil
}

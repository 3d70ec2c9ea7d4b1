package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// The spool gauges count the spool files and their bytes, and nothing else
// in the directory.
func TestSpoolGauges(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for name, size := range map[string]int{"a.spool": 10, "b.spool": 32, "lock": 5, ".doctor-1": 3} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := New("lab", dir)
	want := `# HELP scanorama_agent_spool_bytes Bytes of the result files in the spool.
# TYPE scanorama_agent_spool_bytes gauge
scanorama_agent_spool_bytes{site="lab"} 42
# HELP scanorama_agent_spool_files Result files in the spool (being written or waiting for the controller's acknowledgement).
# TYPE scanorama_agent_spool_files gauge
scanorama_agent_spool_files{site="lab"} 2
`
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), "scanorama_agent_spool_bytes", "scanorama_agent_spool_files"); err != nil {
		t.Fatal(err)
	}
}

func TestAgentMetricsLint(t *testing.T) {
	t.Parallel()
	m := New("lab", t.TempDir())
	m.Run(RunCompleted, 3*time.Second)
	m.HostStreamed()
	m.Delivered("live")
	m.DeliveryRetry()
	m.HeartbeatFailed()
	m.LeaseLost()
	m.JobRefused()
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	if got := testutil.ToFloat64(m.runs.WithLabelValues(RunCompleted)); got != 1 {
		t.Errorf("completed runs = %v, want 1", got)
	}
	var none *Agent
	none.Run(RunFailed, time.Second)
	none.HostStreamed()
}

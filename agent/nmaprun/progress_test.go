package nmaprun

import (
	"slices"
	"strings"
	"testing"
)

func TestClassifyTask(t *testing.T) {
	t.Parallel()
	tests := []struct {
		task string
		want phase
		ok   bool
	}{
		{"Ping Scan", phaseDiscovery, true},
		{"ARP Ping Scan", phaseDiscovery, true},
		{"ND Ping Scan", phaseDiscovery, true},
		{"Connect Scan", phasePortScan, true},
		{"SYN Stealth Scan", phasePortScan, true},
		{"UDP Scan", phasePortScan, true},
		{"Service scan", phaseService, true},
		{"OS Scan", phaseOS, true},
		{"OS detection", phaseOS, true},
		{"NSE", phaseScript, true},
		{"Script Pre-Scan", phaseScript, true},
		{"Parallel DNS resolution of 1 host.", phaseNone, false},
		{"Traceroute", phaseNone, false},
		{"Idle Scan", phaseNone, false},
		{"", phaseNone, false},
	}
	for _, tt := range tests {
		got, ok := classifyTask(tt.task)
		if got != tt.want || ok != tt.ok {
			t.Errorf("classifyTask(%q) = %v, %v; want %v, %v", tt.task, got, ok, tt.want, tt.ok)
		}
	}
}

// step is one input to the progress model; want is the percentage the model
// reports after it (the previous value when nothing increased).
type step struct {
	kind string // begin, progress, end, host, finish
	task string
	pct  float64
	want int
}

func TestProgressModel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     string
		expected uint64
		steps    []step
	}{
		{
			// Weights: discovery 10, ports 55 -> 15.4% / 84.6%.
			name: "connect scan of one host",
			args: "-sT -p 22,80",
			steps: []step{
				{kind: "begin", task: "Connect Scan", want: 15},
				{kind: "progress", task: "Connect Scan", pct: 50, want: 57},
				{kind: "progress", task: "Connect Scan", pct: 40, want: 57}, // never backwards
				{kind: "end", task: "Connect Scan", want: 99},               // 100 only at finish
				{kind: "host", want: 99},
				{kind: "finish", want: 100},
			},
		},
		{
			// -Pn: ports 55, service 20, scripts 10 of 85.
			name: "pre-scan NSE is ignored",
			args: "-sT -Pn -sV --script banner -p 22",
			steps: []step{
				{kind: "begin", task: "NSE", want: 0},
				{kind: "progress", task: "NSE", pct: 90, want: 0},
				{kind: "end", task: "NSE", want: 0},
				{kind: "begin", task: "Connect Scan", want: 0},
				{kind: "progress", task: "Connect Scan", pct: 50, want: 32},
				{kind: "begin", task: "Service scan", want: 64},
				{kind: "progress", task: "Service scan", pct: 50, want: 76},
				{kind: "begin", task: "NSE", want: 88},
				{kind: "progress", task: "NSE", pct: 97.73, want: 99},
				{kind: "host", want: 99},
				{kind: "begin", task: "NSE", want: 99}, // post-scan
				{kind: "finish", want: 100},
			},
		},
		{
			name: "phases that were not requested are ignored",
			args: "-sS -p 22",
			steps: []step{
				{kind: "progress", task: "Ping Scan", pct: 50, want: 7},
				{kind: "progress", task: "Parallel DNS resolution of 2 hosts.", pct: 90, want: 7},
				{kind: "progress", task: "Service scan", pct: 50, want: 7}, // no -sV: NSE/service ignored
				{kind: "progress", task: "SYN Stealth Scan", pct: 10, want: 23},
			},
		},
		{
			name: "ping sweep",
			args: "-sn -PE",
			steps: []step{
				{kind: "begin", task: "Ping Scan", want: 0},
				{kind: "progress", task: "Ping Scan", pct: 37.5, want: 37},
				{kind: "progress", task: "Ping Scan", pct: 250, want: 99}, // clamped
				{kind: "finish", want: 100},
			},
		},
		{
			name: "percentages below zero are clamped",
			args: "-sn",
			steps: []step{
				{kind: "progress", task: "Ping Scan", pct: -20, want: 0},
			},
		},
		{
			// 256 hosts, -Pn connect scan: a group is one Connect Scan. The
			// first group is assumed to hold 64 hosts, later ones as many as
			// the previous group.
			name:     "host groups with known host count",
			args:     "-sT -Pn --top-ports 1000",
			expected: 256,
			steps: []step{
				{kind: "progress", task: "Connect Scan", pct: 50, want: 12},
				{kind: "end", task: "Connect Scan", want: 25},
				{kind: "host", want: 25}, // hosts of group 1 arrive: 64 of them
			},
		},
		{
			name:     "unknown group size is learned from the previous group",
			args:     "-sT -Pn -p 80",
			expected: 10,
			steps: []step{
				{kind: "progress", task: "Connect Scan", pct: 100, want: 99}, // first guess 64 > 10 hosts
				{kind: "host", want: 99},
				{kind: "begin", task: "Connect Scan", want: 99},
				{kind: "finish", want: 100},
			},
		},
		{
			name:     "ping sweep in batches counts reported hosts",
			args:     "-sn",
			expected: 8192,
			steps: []step{
				{kind: "progress", task: "Ping Scan", pct: 50, want: 25},
				{kind: "end", task: "Ping Scan", want: 50}, // first batch: 4096 of 8192
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newProgressModel(strings.Fields(tt.args), tt.expected)
			last := -1
			for i, s := range tt.steps {
				switch s.kind {
				case "begin":
					m.task(s.task, taskBegin, 0)
				case "progress":
					m.task(s.task, taskProgress, s.pct)
				case "end":
					m.task(s.task, taskEnd, 0)
				case "host":
					m.host()
				case "finish":
					m.finish()
				default:
					t.Fatalf("bad step kind %q", s.kind)
				}
				got, changed := m.percent()
				if got != s.want {
					t.Fatalf("step %d (%s %q %v): percent %d, want %d", i, s.kind, s.task, s.pct, got, s.want)
				}
				if changed != (got > last) {
					t.Fatalf("step %d: changed=%v but %d -> %d", i, changed, last, got)
				}
				last = got
			}
		})
	}
}

// TestProgressGroupsMonotonic feeds many host groups with a known host count
// and checks that progress keeps moving and never goes backwards.
func TestProgressGroupsMonotonic(t *testing.T) {
	t.Parallel()
	const hosts, group = 1000, 100
	m := newProgressModel([]string{"-sT", "-sV", "--top-ports", "100"}, hosts)
	var seen []int
	record := func() {
		if p, ok := m.percent(); ok {
			seen = append(seen, p)
		}
	}
	for g := 0; g < hosts/group; g++ {
		if g == 0 {
			m.task("Ping Scan", taskEnd, 0)
			record()
		}
		for _, task := range []string{"Connect Scan", "Service scan"} {
			for pct := 0.0; pct <= 100; pct += 25 {
				m.task(task, taskProgress, pct)
				record()
			}
		}
		for range group {
			m.host()
			record()
		}
	}
	m.finish()
	record()
	if !slices.IsSorted(seen) || seen[len(seen)-1] != 100 || slices.Index(seen, 100) != len(seen)-1 {
		t.Fatalf("progress not monotonic or not ending at 100: %v", seen)
	}
	if len(seen) < 50 {
		t.Fatalf("progress too coarse over %d groups: %v", hosts/group, seen)
	}
}

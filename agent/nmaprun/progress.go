package nmaprun

import (
	"strings"
)

// phase is one of the stages nmap runs for each host group, in run order.
type phase int

const (
	phaseDiscovery phase = iota // Ping Scan, ARP Ping Scan, ND Ping Scan
	phasePortScan               // Connect Scan, SYN Stealth Scan, UDP Scan, ...
	phaseService                // Service scan (-sV)
	phaseOS                     // OS detection (-O)
	phaseScript                 // NSE (--script)
	numPhases
	phaseNone phase = -1
)

// phaseWeights are the relative costs of the phases within one host group.
// Only enabled phases count; the weights are renormalised over them.
var phaseWeights = [numPhases]float64{
	phaseDiscovery: 10,
	phasePortScan:  55,
	phaseService:   20,
	phaseOS:        5,
	phaseScript:    10,
}

// First host group size guesses (nmap's own defaults are at least these),
// used until a group has completed and its real size is known. Guessing low
// makes progress jump forward at the end of a group instead of stalling.
const (
	firstGroupGuessPorts = 64
	firstGroupGuessPing  = 4096
)

// classifyTask maps an nmap task name (<taskbegin task=...>) to its phase.
// Tasks that do not fit the model (DNS resolution, traceroute) report false.
func classifyTask(task string) (phase, bool) {
	t := strings.ToLower(strings.TrimSpace(task))
	switch {
	case strings.HasSuffix(t, "ping scan"):
		return phaseDiscovery, true
	case t == "service scan":
		return phaseService, true
	case t == "os scan" || strings.HasPrefix(t, "os detection"):
		return phaseOS, true
	case t == "nse" || strings.HasPrefix(t, "script"):
		return phaseScript, true
	case strings.HasSuffix(t, " scan") && t != "idle scan":
		return phasePortScan, true
	}
	return phaseNone, false
}

// progressModel turns nmap's per-phase task reports into one monotonic
// overall percentage.
//
// nmap processes targets in host groups and runs the enabled phases for each
// group; each phase reports its own 0-100 percentage. Within a group the
// model weights the enabled phases (derived from nmap's argument vector).
// When ExpectedHosts is known, a group's share of the run is estimated from
// the number of hosts reported so far and the size of the previous group.
// The reported value never decreases, stays below 100 until finish, and NSE
// activity before the first scan phase (script pre-scanning) is ignored.
type progressModel struct {
	weight          [numPhases]float64 // normalised; zero for disabled phases
	expected        float64            // expected hosts, 0 if unknown
	firstGroupGuess float64

	cur         phase   // phase currently running, phaseNone before the first
	curFrac     float64 // completed fraction of cur, 0..1
	hostsDone   float64 // hosts reported so far
	groupStart  float64 // hostsDone when the current group began
	lastGroup   float64 // size of the previous completed group, 0 if none
	reported    int     // last percentage returned, -1 before the first
	finished    bool
	sawScanning bool // a non-NSE phase has run, so NSE is no longer pre-scanning
}

// newProgressModel derives the enabled phases from nmap's argument vector.
func newProgressModel(args []string, expectedHosts uint64) *progressModel {
	var enabled [numPhases]bool
	pingOnly := false
	enabled[phaseDiscovery] = true
	for _, a := range args {
		switch {
		case a == "-sn":
			pingOnly = true
		case a == "-Pn":
			enabled[phaseDiscovery] = false
		case a == "-sV":
			enabled[phaseService] = true
		case a == "-O":
			enabled[phaseOS] = true
		case a == "-A":
			enabled[phaseService], enabled[phaseOS], enabled[phaseScript] = true, true, true
		case a == "-sC" || a == "--script" || strings.HasPrefix(a, "--script="):
			enabled[phaseScript] = true
		}
	}
	enabled[phasePortScan] = !pingOnly
	if pingOnly {
		enabled[phaseService], enabled[phaseOS] = false, false
		enabled[phaseDiscovery] = true
	}

	m := &progressModel{cur: phaseNone, reported: -1, expected: float64(expectedHosts)}
	m.firstGroupGuess = firstGroupGuessPorts
	if pingOnly {
		m.firstGroupGuess = firstGroupGuessPing
	}
	var sum float64
	for p := range numPhases {
		if enabled[p] {
			sum += phaseWeights[p]
		}
	}
	for p := range numPhases {
		if enabled[p] {
			m.weight[p] = phaseWeights[p] / sum
		}
	}
	return m
}

// taskEvent kinds.
const (
	taskBegin = iota
	taskProgress
	taskEnd
)

// task records a <taskbegin>, <taskprogress> or <taskend> element.
func (m *progressModel) task(name string, kind int, percent float64) {
	p, ok := classifyTask(name)
	if !ok || m.weight[p] == 0 {
		return // not part of the model, or not requested (-sV runs NSE version scripts)
	}
	if p == phaseScript && !m.sawScanning {
		return // script pre-scanning runs before any host group
	}
	if p != phaseScript {
		m.sawScanning = true
	}
	if p != m.cur {
		if m.cur != phaseNone && p < m.cur {
			m.newGroup()
		}
		m.cur, m.curFrac = p, 0
	}
	switch kind {
	case taskProgress:
		m.curFrac = max(m.curFrac, min(max(percent, 0), 100)/100)
	case taskEnd:
		m.curFrac = 1
	}
}

// newGroup is called when an earlier phase starts again: nmap moved on to
// the next host group.
func (m *progressModel) newGroup() {
	if n := m.hostsDone - m.groupStart; n > 0 {
		m.lastGroup = n
	}
	m.groupStart = m.hostsDone
}

// host records one reported host.
func (m *progressModel) host() { m.hostsDone++ }

// finish marks the run as complete.
func (m *progressModel) finish() { m.finished = true }

// percent returns the overall percentage and whether it increased since
// the previous call.
func (m *progressModel) percent() (int, bool) {
	v := 100
	if !m.finished {
		v = min(int(m.fraction()*100), 99)
	}
	if v <= m.reported {
		return m.reported, false
	}
	m.reported = v
	return v, true
}

// fraction estimates overall completion in [0, 1].
func (m *progressModel) fraction() float64 {
	var group float64 // completed fraction of the current host group
	if m.cur != phaseNone {
		for p := range m.cur {
			group += m.weight[p]
		}
		group += m.weight[m.cur] * m.curFrac
	}
	group = min(group, 1)
	if m.expected <= 1 {
		return group
	}
	size := m.lastGroup
	if size == 0 {
		size = m.firstGroupGuess
	}
	size = max(min(size, m.expected-m.groupStart), 1)
	f := (m.groupStart + group*size) / m.expected
	f = max(f, m.hostsDone/m.expected)
	return min(max(f, 0), 1)
}

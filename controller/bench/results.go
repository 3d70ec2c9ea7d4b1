package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Result is one row of bench/results.json.
type Result struct {
	Name  string   `json:"name"`
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
	// Baseline is the comparison measured in the same run, if any.
	Baseline *float64 `json:"baseline"`
	// Ratio compares Value with Baseline as the case defines it.
	Ratio *float64 `json:"ratio"`
	Goal  string   `json:"goal"`
	// Note explains how the value was obtained, or why it is missing.
	Note string `json:"note,omitempty"`
}

func f64(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// round keeps results.json readable.
func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Met reports whether the result meets its goal: "yes", "NO" or "-" when the
// goal or the measured quantity is missing. A goal applies to the ratio
// when the result has a baseline, else to the value.
func (r Result) Met() string {
	goal := strings.TrimSpace(r.Goal)
	if goal == "" || goal == "-" {
		return "-"
	}
	x := r.Value
	if r.Baseline != nil {
		x = r.Ratio
	}
	if x == nil {
		return "-"
	}
	for _, op := range []string{"≤", "≥", "<=", ">=", "<", ">"} {
		rest, ok := strings.CutPrefix(goal, op)
		if !ok {
			continue
		}
		limit, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return "-"
		}
		var met bool
		switch op {
		case "≤", "<=":
			met = *x <= limit
		case "≥", ">=":
			met = *x >= limit
		case "<":
			met = *x < limit
		case ">":
			met = *x > limit
		}
		if met {
			return "yes"
		}
		return "NO"
	}
	return "-"
}

func fmtNum(p *float64) string {
	if p == nil {
		return "null"
	}
	v := *p
	switch a := math.Abs(v); {
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
}

// PrintTable writes the results as an aligned table followed by the notes.
func PrintTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "name\tvalue\tunit\tbaseline\tratio\tgoal\tmet\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Name, fmtNum(r.Value), r.Unit, fmtNum(r.Baseline), fmtNum(r.Ratio), r.Goal, r.Met())
	}
	tw.Flush()
	for _, r := range results {
		if r.Note != "" {
			fmt.Fprintf(w, "  %s: %s\n", r.Name, r.Note)
		}
	}
}

// WriteJSON writes results to path (creating its directory) atomically.
func WriteJSON(path string, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep "< 200" readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(results); err != nil {
		return err
	}
	b := bytes.TrimRight(buf.Bytes(), "\n")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

package nmaprun

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// countingEvents checks invariants without keeping hosts.
type countingEvents struct {
	t     *testing.T
	hosts int
	last  int
}

func (c *countingEvents) Host(_ context.Context, h Host) error {
	c.hosts++
	if !h.Address.IsValid() {
		c.t.Fatalf("host without address delivered: %+v", h)
	}
	for _, s := range []string{h.Status, h.Reason, h.MAC, h.Vendor, h.Hostname, h.OSName, h.OSFamily} {
		if !utf8.ValidString(s) || len(s) > maxFieldLen {
			c.t.Fatalf("unbounded or invalid field %q", s)
		}
	}
	for _, p := range h.Ports {
		for _, s := range p.Scripts {
			if !utf8.ValidString(s.Output) || len(s.Output) > maxScriptOutputLen {
				c.t.Fatalf("unbounded or invalid script output (%d bytes)", len(s.Output))
			}
		}
	}
	return nil
}

func (c *countingEvents) Progress(p int) {
	if p <= c.last && c.last != 0 || p < 0 || p > 100 {
		c.t.Fatalf("progress %d after %d", p, c.last)
	}
	c.last = p
}

func FuzzDecode(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.xml")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<nmaprun><host><address addr="::1" addrtype="ipv6"/></host></nmaprun>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := &countingEvents{t: t}
		sum, err := Decode(context.Background(), bytes.NewReader(data), 3, ev)
		if sum.HostsReported != ev.hosts {
			t.Fatalf("HostsReported %d, delivered %d", sum.HostsReported, ev.hosts)
		}
		if err == nil && ev.last != 100 {
			t.Fatalf("success without 100%% progress (last %d)", ev.last)
		}
		if err != nil && errors.Is(err, context.Canceled) {
			t.Fatalf("unexpected cancellation: %v", err)
		}
	})
}

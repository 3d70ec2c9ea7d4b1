package webhooks

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/gen/db"
)

var update = flag.Bool("update", false, "rewrite the golden payloads under testdata/")

func sampleEvents() []Event {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	job := uuid.MustParse("00000000-0000-4000-8000-00000000000a")
	var enc encoder
	return []Event{
		enc.event(&changefeed.Row{
			HostHistory: db.HostHistory{ID: 1, FeedSeq: 1, Event: "host_discovered", NewValue: pgtype.Text{String: "up", Valid: true},
				ChangedAt: at, JobID: uuid.NullUUID{UUID: job, Valid: true}},
			SiteName: "lab", IpAddress: netip.MustParseAddr("10.99.0.10"), Hostname: pgtype.Text{String: "db1.example.org", Valid: true},
		}),
		enc.event(&changefeed.Row{
			HostHistory: db.HostHistory{ID: 2, FeedSeq: 2, Event: "port_opened", Port: pgtype.Int4{Int32: 22, Valid: true},
				Protocol: pgtype.Text{String: "tcp", Valid: true}, NewValue: pgtype.Text{String: "open", Valid: true},
				ChangedAt: at, JobID: uuid.NullUUID{UUID: job, Valid: true}},
			SiteName: "lab", IpAddress: netip.MustParseAddr("2001:db8::10"),
		}),
		enc.event(&changefeed.Row{
			HostHistory: db.HostHistory{ID: 3, FeedSeq: 3, Event: "service_changed", Port: pgtype.Int4{Int32: 443, Valid: true},
				Protocol: pgtype.Text{String: "tcp", Valid: true}, OldValue: pgtype.Text{String: "https nginx 1.24", Valid: true},
				NewValue: pgtype.Text{String: "https nginx 1.26", Valid: true}, ChangedAt: at},
			SiteName: "lab", IpAddress: netip.MustParseAddr("10.99.0.11"),
		}),
	}
}

// Sample payloads of both formats validate against the schema the README
// points receivers to, and match their golden files.
func TestPayloadsMatchTheSchema(t *testing.T) {
	t.Parallel()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	schema, err := c.Compile("../../deploy/webhook-payload.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"json", "slack"} {
		body, err := new(encoder).body("00000000-0000-4000-8000-0000000000d1", "alerts", format, sampleEvents())
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := schema.Validate(inst); err != nil {
			t.Errorf("%s payload does not match the schema: %v\n%s", format, err, body)
		}
		var pretty bytes.Buffer
		_ = json.Indent(&pretty, body, "", "  ")
		golden := filepath.Join("testdata", "payload-"+format+".json")
		if *update {
			if err := os.WriteFile(golden, append(pretty.Bytes(), '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if string(want) != pretty.String()+"\n" {
			t.Errorf("%s payload differs from %s:\n%s", format, golden, pretty.String())
		}
	}
	// And the schema is not a rubber stamp.
	for name, bad := range map[string]string{
		"no events":     `{"delivery_id":"00000000-0000-4000-8000-0000000000d1","webhook":"a","events":[]}`,
		"unknown event": `{"delivery_id":"00000000-0000-4000-8000-0000000000d1","webhook":"a","events":[{"id":1,"event":"port_ajar","site":"s","ip_address":"10.99.0.1","hostname":null,"port":null,"protocol":null,"old_value":null,"new_value":null,"changed_at":"2026-03-01T12:00:00Z","job_id":null}]}`,
		"extra field":   `{"delivery_id":"00000000-0000-4000-8000-0000000000d1","webhook":"a","events":[],"x":1}`,
	} {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(bad))
		if err != nil {
			t.Fatal(err)
		}
		if schema.Validate(inst) == nil {
			t.Errorf("%s: the schema accepts %s", name, bad)
		}
	}
}

func TestSignature(t *testing.T) {
	t.Parallel()
	body := []byte(`{"delivery_id":"x"}`)
	sig := Sign("0123456789abcdef", body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("signature %q", sig)
	}
	if !Verify("0123456789abcdef", body, sig) || Verify("0123456789abcdeF", body, sig) || Verify("0123456789abcdef", append(body, ' '), sig) {
		t.Fatal("Verify does not tell good from bad")
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	for u, ok := range map[string]bool{
		"https://hooks.example.com/scanorama": true,
		"http://127.0.0.1:8080/x?y=1":         true,
		"":                                    false,
		"hooks.example.com/x":                 false,
		"ftp://hooks.example.com/":            false,
		"http:///x":                           false,
		"https://u:p@hooks.example.com/":      false,
		"https://hooks.example.com/#frag":     false,
	} {
		if err := CheckURL(u); (err == nil) != ok {
			t.Errorf("CheckURL(%q) = %v", u, err)
		}
	}
}

func TestBackoffGrowsWithJitterAndCap(t *testing.T) {
	t.Parallel()
	d := &Dispatcher{opts: Options{RetryBase: 100 * time.Millisecond, RetryMax: time.Second}}
	for attempt, hi := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 50 {
			if got := d.backoff(attempt); got > hi || got < hi/2 {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", attempt, got, hi/2, hi)
			}
		}
	}
}

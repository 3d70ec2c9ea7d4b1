package webhooks

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/gen/db"
)

func ptr[T any](v T) *T { return &v }

// The hand-written encoder writes exactly what encoding/json writes for
// the same payload: receivers verify signatures over these bytes, and
// bodies written before this encoder came from encoding/json.
func TestAppendBodyMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 13, 31, 48, 61234000, time.UTC)
	full := Event{
		ID: 42, Event: "service_changed", Site: "lab", IPAddress: "10.99.0.10", Hostname: ptr("db1.example.org"),
		Port: ptr(int32(443)), Protocol: ptr("tcp"), OldValue: ptr("https nginx 1.24"), NewValue: ptr("https nginx 1.26"),
		ChangedAt: at, JobID: ptr("00000000-0000-4000-8000-00000000000a"),
	}
	with := func(f func(*Event)) Event { e := full; f(&e); return e }
	cases := []struct {
		name   string
		events []Event
		text   string
	}{
		{name: "nil events", events: nil},
		{name: "no events", events: []Event{}},
		{name: "every field", events: []Event{full}},
		{name: "every optional field null", events: []Event{{ID: 1, Event: "host_up", Site: "s", IPAddress: "2001:db8::1", ChangedAt: at}}},
		{name: "several", events: []Event{full, with(func(e *Event) { e.ID, e.Port = 43, ptr(int32(65535)) }), full}},
		{name: "max id and zero port", events: []Event{with(func(e *Event) { e.ID, e.Port = 1<<63-1, ptr(int32(0)) })}},
		{name: "negative id", events: []Event{with(func(e *Event) { e.ID = -7 })}},
		{name: "unicode hostname", events: []Event{with(func(e *Event) { e.Hostname = ptr("bücher.例え.テスト") })}},
		{name: "quote and backslash", events: []Event{with(func(e *Event) { e.Hostname = ptr(`a"b\c`) })}},
		{name: "html characters", events: []Event{with(func(e *Event) { e.Hostname, e.NewValue = ptr("<script>&amp;</script>"), ptr("a>b") })}},
		{name: "control characters", events: []Event{with(func(e *Event) { e.Hostname = ptr("tab\there\nnl\r\x00\x01\x1f\b\f") })}},
		{name: "DEL", events: []Event{with(func(e *Event) { e.Hostname = ptr("del\x7f") })}},
		{name: "line and paragraph separators", events: []Event{with(func(e *Event) { e.Hostname = ptr("a\u2028b\u2029c") })}},
		{name: "invalid UTF-8", events: []Event{with(func(e *Event) { e.Hostname, e.OldValue = ptr("bad\xff\xfehost"), ptr("\xc3") })}},
		{name: "emoji and astral plane", events: []Event{with(func(e *Event) { e.NewValue = ptr("nginx 🚀 𝔘") })}},
		{name: "empty strings", events: []Event{with(func(e *Event) { e.Hostname, e.Site, e.OldValue = ptr(""), "", ptr("") })}},
		{name: "whole seconds", events: []Event{with(func(e *Event) { e.ChangedAt = at.Truncate(time.Second) })}},
		{name: "nanoseconds", events: []Event{with(func(e *Event) { e.ChangedAt = at.Add(7) })}},
		{name: "non-UTC zone", events: []Event{with(func(e *Event) { e.ChangedAt = at.In(time.FixedZone("x", -(5*3600 + 30*60))) })}},
		{name: "year zero", events: []Event{with(func(e *Event) { e.ChangedAt = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) })}},
		{name: "slack text", events: []Event{full}, text: SlackText([]Event{full, with(func(e *Event) { e.Hostname = ptr("<b>") })})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := Payload{DeliveryID: "00000000-0000-4000-8000-0000000000d1", Webhook: "alerts \"ü\" <x>", Events: tc.events, Text: tc.text}
			checkSameAsEncodingJSON(t, &p)
		})
	}
	// A builder keeps one encoder for every body of a turn: what it
	// remembers of the bodies before (the last time, the size per event)
	// changes nothing in the next, in either order.
	for _, order := range []string{"forward", "backward"} {
		enc := new(encoder)
		for i := range cases {
			tc := cases[i]
			if order == "backward" {
				tc = cases[len(cases)-1-i]
			}
			p := Payload{DeliveryID: "d", Webhook: "w", Events: tc.events, Text: tc.text}
			want, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := enc.appendBody(nil, &p)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s, %s after the others: reused encoder wrote %s (%v), want %s", order, tc.name, got, err, want)
			}
		}
	}
}

// Events made by one encoder from many rows, which remembers the last
// address and job it formatted, are the events a fresh encoder makes.
func TestEncoderEventsAreFreshOnes(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 13, 31, 48, 61234000, time.FixedZone("x", 3600))
	jobA, jobB := uuid.MustParse("00000000-0000-4000-8000-00000000000a"), uuid.MustParse("00000000-0000-4000-8000-00000000000b")
	row := func(ip string, job uuid.UUID, valid bool) changefeed.Row {
		r := changefeed.Row{HostHistory: db.HostHistory{ID: 1, Event: "port_opened", ChangedAt: at, JobID: uuid.NullUUID{UUID: job, Valid: valid}}, SiteName: "lab"}
		if ip != "" {
			r.IpAddress = netip.MustParseAddr(ip)
		}
		return r
	}
	rows := []changefeed.Row{
		row("", uuid.Nil, false), // the zero address, as the encoder starts
		row("10.99.0.1", jobA, true), row("10.99.0.1", jobA, true), row("10.99.0.2", jobA, true),
		row("10.99.0.2", jobB, true), row("10.99.0.2", jobB, false), row("10.99.0.2", jobB, true),
		row("2001:db8::1", uuid.Nil, true), row("", uuid.Nil, true), row("10.99.0.1", jobA, true),
	}
	enc := new(encoder)
	for i := range rows {
		got, want := enc.event(&rows[i]), new(encoder).event(&rows[i])
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Fatalf("row %d: %s, want %s", i, g, w)
		}
	}
}

// Times encoding/json refuses are refused the same way.
func TestBodyRefusesWhatEncodingJSONRefuses(t *testing.T) {
	t.Parallel()
	for _, at := range []time.Time{
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("far", 24*3600)),
	} {
		events := []Event{{ID: 1, Event: "host_up", Site: "s", IPAddress: "10.99.0.1", ChangedAt: at}}
		_, want := json.Marshal(Payload{DeliveryID: "d", Webhook: "w", Events: events})
		_, got := new(encoder).body("d", "w", "json", events)
		if want == nil || got == nil || got.Error() != want.Error() {
			t.Errorf("%v: body error %v, encoding/json error %v", at, got, want)
		}
	}
}

// Arbitrary strings and numbers (go test -fuzz=FuzzAppendBody explores
// further; the seeds run with every test run).
func FuzzAppendBody(f *testing.F) {
	for _, s := range []string{"", "plain", "ü", "\u2028", "\xff", `"\<>&`, "\x00\x7f", "🚀"} {
		f.Add(s, int64(1), int32(80), int64(0))
	}
	f.Fuzz(func(t *testing.T, s string, id int64, port int32, nanos int64) {
		e := Event{ID: id, Event: s, Site: s, IPAddress: s, Hostname: &s, Port: &port, Protocol: &s, OldValue: &s,
			NewValue: &s, ChangedAt: time.Unix(0, nanos).UTC(), JobID: &s}
		checkSameAsEncodingJSON(t, &Payload{DeliveryID: s, Webhook: s, Events: []Event{e, {ChangedAt: e.ChangedAt}}, Text: s})
	})
}

func checkSameAsEncodingJSON(t *testing.T, p *Payload) {
	t.Helper()
	want, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := new(encoder).appendBody(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendBody differs from encoding/json:\n got %s\nwant %s", got, want)
	}
	format := "json"
	if p.Text != "" {
		format = "slack"
	}
	if p.Text == "" || p.Text == SlackText(p.Events) {
		body, err := new(encoder).body(p.DeliveryID, p.Webhook, format, p.Events)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("body differs from encoding/json:\n got %s\nwant %s", body, want)
		}
	}
}

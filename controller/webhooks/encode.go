package webhooks

import (
	"encoding/json"
	"errors"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/controller/state"
)

// A burst encodes tens of thousands of events: encoding/json's reflection
// cost a tenth of the controller's CPU in a 50,000-change burst. appendBody
// writes the same bytes encoding/json writes for Payload (field order,
// null for nil pointers, HTML-safe escaping, RFC 3339 times with
// nanoseconds, "text" omitted when empty) without reflection; strings that
// need escaping are handed to encoding/json itself, and a time it would
// refuse sends the whole payload there (for its error), so even those
// come out identical
// (TestAppendBodyMatchesEncodingJSON).

// bytesPerEvent sizes the first buffer up front: a port event with a
// hostname takes about 250 bytes. Later bodies of an encoder are sized by
// the last one's bytes per event: a buffer too small is grown by copying
// into one twice its size, which the body then holds until it is sent.
const bytesPerEvent = 256

// encoder turns feed rows into events and events into JSON, remembering
// the last change time, address and job it formatted: a burst's changes
// come host by host from one job's commit, so consecutive events mostly
// share them. A webhook's turn keeps one for its builder; the zero value
// is ready. Not safe for concurrent use.
type encoder struct {
	at     time.Time // UTC
	atJSON []byte
	ip     netip.Addr
	ipText string
	job    uuid.UUID
	jobID  *string
	// perEvent is the last body's bytes per event, with some room.
	perEvent int
	// spare: where body buffers come from when it has them (nil: fresh
	// ones).
	spare *spareBuffers
}

// body encodes a delivery.
func (enc *encoder) body(deliveryID, webhook, format string, events []Event) ([]byte, error) {
	p := Payload{DeliveryID: deliveryID, Webhook: webhook, Events: events}
	if state.WebhookFormat(format) == state.FormatSlack {
		p.Text = SlackText(events)
	}
	perEvent := bytesPerEvent
	if enc.perEvent > 0 {
		perEvent = enc.perEvent
	}
	b, err := enc.appendBody(enc.spare.get(128+len(p.Text)+perEvent*len(events)), &p)
	if err != nil {
		return json.Marshal(p)
	}
	if len(events) > 0 {
		enc.perEvent = (len(b)-len(p.Text))/len(events) + 16
	}
	return b, nil
}

// appendBody appends the JSON of p to b.
func (enc *encoder) appendBody(b []byte, p *Payload) ([]byte, error) {
	b = append(b, `{"delivery_id":`...)
	b = appendString(b, p.DeliveryID)
	b = append(b, `,"webhook":`...)
	b = appendString(b, p.Webhook)
	b = append(b, `,"events":`...)
	if p.Events == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range p.Events {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = enc.appendEvent(b, &p.Events[i]); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	if p.Text != "" {
		b = append(b, `,"text":`...)
		b = appendString(b, p.Text)
	}
	return append(b, '}'), nil
}

func (enc *encoder) appendEvent(b []byte, e *Event) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, e.ID, 10)
	b = append(b, `,"event":`...)
	b = appendString(b, e.Event)
	b = append(b, `,"site":`...)
	b = appendString(b, e.Site)
	b = append(b, `,"ip_address":`...)
	b = appendString(b, e.IPAddress)
	b = append(b, `,"hostname":`...)
	b = appendOptString(b, e.Hostname)
	b = append(b, `,"port":`...)
	if e.Port == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, int64(*e.Port), 10)
	}
	b = append(b, `,"protocol":`...)
	b = appendOptString(b, e.Protocol)
	b = append(b, `,"old_value":`...)
	b = appendOptString(b, e.OldValue)
	b = append(b, `,"new_value":`...)
	b = appendOptString(b, e.NewValue)
	b = append(b, `,"changed_at":`...)
	var err error
	if b, err = enc.appendTime(b, e.ChangedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"job_id":`...)
	b = appendOptString(b, e.JobID)
	return append(b, '}'), nil
}

func appendOptString(b []byte, s *string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	return appendString(b, *s)
}

// plain marks the bytes encoding/json copies as they are: printable ASCII
// but for the quote, the backslash and the HTML-sensitive <, > and &.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s quoted; anything but plain ASCII goes through
// encoding/json (escapes, U+2028/U+2029, invalid UTF-8 as U+FFFD).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || !plain[c] {
			enc, _ := json.Marshal(s) // a string always encodes
			return append(b, enc...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// errNotRFC3339 is a time encoding/json refuses (MarshalJSON fails): the
// caller then lets encoding/json encode the whole payload, for its error.
var errNotRFC3339 = errors.New("time not representable in RFC 3339")

// appendTime appends t as time.Time.MarshalJSON does. A UTC time equal
// to the last one is copied from the last one's text (the same instant in
// the same zone formats the same).
func (enc *encoder) appendTime(b []byte, t time.Time) ([]byte, error) {
	utc := t.Location() == time.UTC
	if utc && enc.atJSON != nil && t.Equal(enc.at) {
		return append(b, enc.atJSON...), nil
	}
	_, offset := t.Zone()
	if y := t.Year(); y < 0 || y > 9999 || offset <= -24*3600 || offset >= 24*3600 {
		return nil, errNotRFC3339
	}
	start := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if utc {
		enc.at, enc.atJSON = t, append(enc.atJSON[:0], b[start:]...)
	}
	return b, nil
}

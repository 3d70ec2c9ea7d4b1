package webhooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/scanorama/scanorama/controller/changefeed"
)

// Headers of every delivery.
const (
	// HeaderDelivery is the delivery's id: the same on every attempt, so a
	// receiver that saw it already can drop the repeat.
	HeaderDelivery = "X-Scanorama-Delivery"
	// HeaderSignature is "sha256=" and the hex HMAC-SHA256 of the body
	// keyed by the webhook's secret.
	HeaderSignature = "X-Scanorama-Signature"
)

// Event is one change in a delivery (deploy/webhook-payload.schema.json).
type Event struct {
	ID        int64     `json:"id"`
	Event     string    `json:"event"`
	Site      string    `json:"site"`
	IPAddress string    `json:"ip_address"`
	Hostname  *string   `json:"hostname"`
	Port      *int32    `json:"port"`
	Protocol  *string   `json:"protocol"`
	OldValue  *string   `json:"old_value"`
	NewValue  *string   `json:"new_value"`
	ChangedAt time.Time `json:"changed_at"`
	JobID     *string   `json:"job_id"`
}

// Payload is the body of a delivery.
type Payload struct {
	DeliveryID string  `json:"delivery_id"`
	Webhook    string  `json:"webhook"`
	Events     []Event `json:"events"`
	// Text is set for format "slack": a line per event, for a Slack
	// incoming webhook.
	Text string `json:"text,omitempty"`
}

// event is r as a delivery's event. Its strings point into r: it is for
// encoding while r is at hand.
func (enc *encoder) event(r *changefeed.Row) Event {
	h := &r.HostHistory
	if r.IpAddress != enc.ip || enc.ipText == "" {
		enc.ip, enc.ipText = r.IpAddress, r.IpAddress.String()
	}
	e := Event{
		ID: h.ID, Event: h.Event, Site: r.SiteName, IPAddress: enc.ipText,
		ChangedAt: h.ChangedAt.UTC(),
	}
	if r.Hostname.Valid {
		e.Hostname = &r.Hostname.String
	}
	if h.Port.Valid {
		e.Port = &h.Port.Int32
	}
	if h.Protocol.Valid {
		e.Protocol = &h.Protocol.String
	}
	if h.OldValue.Valid {
		e.OldValue = &h.OldValue.String
	}
	if h.NewValue.Valid {
		e.NewValue = &h.NewValue.String
	}
	if h.JobID.Valid {
		if h.JobID.UUID != enc.job || enc.jobID == nil {
			s := h.JobID.UUID.String()
			enc.job, enc.jobID = h.JobID.UUID, &s
		}
		e.JobID = enc.jobID
	}
	return e
}

// SlackText is one readable line per event.
func SlackText(events []Event) string {
	var b strings.Builder
	for i, e := range events {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "[%s] %s", e.Site, e.IPAddress)
		if e.Hostname != nil && *e.Hostname != "" {
			fmt.Fprintf(&b, " (%s)", *e.Hostname)
		}
		fmt.Fprintf(&b, " %s", strings.ReplaceAll(e.Event, "_", " "))
		if e.Port != nil {
			fmt.Fprintf(&b, " %d/%s", *e.Port, deref(e.Protocol))
		}
		if o, n := deref(e.OldValue), deref(e.NewValue); o != "" || n != "" {
			fmt.Fprintf(&b, ": %s → %s", orDash(o), orDash(n))
		}
	}
	return b.String()
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Sign returns the X-Scanorama-Signature value of body.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature is body's under secret; receivers (and
// tests) use it.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(signature), []byte(Sign(secret, body)))
}

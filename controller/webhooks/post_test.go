package webhooks

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// countingConn counts the writes made to a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// A delivery, headers and a full batch's body, leaves in one write: with
// net/http's default 4 KB write buffer it took five (4 KB, then 32 KB
// copies), and on a loaded machine each write can wake the receiver for
// part of a body.
func TestPostWritesADeliveryInOneWrite(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	events := make([]Event, 0, BatchSize)
	for len(events) < BatchSize {
		events = append(events, sampleEvents()...)
	}
	events = events[:BatchSize]
	for _, format := range []state.WebhookFormat{state.FormatJSON, state.FormatSlack} {
		t.Run(string(format), func(t *testing.T) {
			t.Parallel()
			d := New(nil, nil, DefaultOptions(), hclog.NewNullLogger())
			var writes atomic.Int64
			tr := d.client.Transport.(*http.Transport)
			var dialer net.Dialer
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := dialer.DialContext(ctx, network, addr)
				return countingConn{Conn: c, writes: &writes}, err
			}
			w := db.Webhook{Name: "hook", Url: srv.URL, Secret: "s3cret", Format: string(format)}
			id := uuid.New()
			body, err := new(encoder).body(id.String(), w.Name, w.Format, events)
			if err != nil {
				t.Fatal(err)
			}
			const posts = 3
			for range posts {
				if _, err := d.post(t.Context(), w, db.WebhookDelivery{ID: id, Body: body}, "", nil); err != nil {
					t.Fatal(err)
				}
			}
			if got := writes.Load(); got != posts {
				t.Errorf("%d POSTs of a %d KB body took %d writes, want one each", posts, len(body)>>10, got)
			}
		})
	}
}

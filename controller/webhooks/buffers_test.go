package webhooks

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/gen/db"
)

func sameBuffer(a, b []byte) bool { return cap(a) > 0 && cap(b) > 0 && &a[:1][0] == &b[:1][0] }

func TestSpareBuffersHandBackWhatFits(t *testing.T) {
	t.Parallel()
	var s spareBuffers
	fresh := s.get(1000)
	if len(fresh) != 0 || cap(fresh) != spareRound {
		t.Fatalf("fresh buffer: len %d cap %d, want 0 and %d (rounded up)", len(fresh), cap(fresh), spareRound)
	}
	s.put(append(fresh, "body"...))
	if got := s.get(spareRound); !sameBuffer(got, fresh) || len(got) != 0 {
		t.Fatalf("a spare that fits was not handed back empty")
	}
	s.put(fresh)
	if got := s.get(spareRound + 1); sameBuffer(got, fresh) || cap(got) != 2*spareRound {
		t.Fatalf("a spare too small was handed back, or the fresh one is not rounded up (cap %d)", cap(got))
	}
	if len(s.free) != 0 {
		t.Fatalf("the spare too small is still kept")
	}
	for range spareLimit + 5 {
		s.put(make([]byte, 0, 1))
	}
	if len(s.free) != spareLimit {
		t.Fatalf("%d spares kept, want at most %d", len(s.free), spareLimit)
	}
	var none *spareBuffers // a POST not from a turn: nothing is kept
	none.put(fresh)
	if got := none.get(10); cap(got) < 10 {
		t.Fatalf("nil spares: cap %d", cap(got))
	}
}

// A lent body goes back only when the client has returned and every write
// it started has finished; a count that does not add up keeps it.
func TestLentBodyGoesBackAfterTheLastWrite(t *testing.T) {
	t.Parallel()
	type step int
	const (
		gotConn step = iota
		wrote
		returned
	)
	for _, tc := range []struct {
		name  string
		steps []step
		back  bool
	}{
		{"written, then returned", []step{gotConn, wrote, returned}, true},
		{"returned while still writing", []step{gotConn, returned}, false},
		{"returned, then written", []step{gotConn, returned, wrote}, true},
		{"retried on a second connection", []step{gotConn, wrote, gotConn, returned}, false},
		{"retried and both written", []step{gotConn, wrote, gotConn, wrote, returned}, true},
		{"never connected", []step{returned}, true},
		{"a write without its connection", []step{wrote, gotConn, returned}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var s spareBuffers
			buf := make([]byte, 10, spareRound)
			l := lend(buf, &s)
			tr := l.trace()
			for _, st := range tc.steps {
				switch st {
				case gotConn:
					tr.GotConn(httptrace.GotConnInfo{})
				case wrote:
					tr.WroteRequest(httptrace.WroteRequestInfo{})
				case returned:
					l.clientReturned()
				}
			}
			if back := len(s.free) == 1 && sameBuffer(s.free[0], buf); back != tc.back {
				t.Fatalf("buffer back = %v, want %v", back, tc.back)
			}
		})
	}
}

// Through net/http: the body arrives whole, and its buffer is spare once
// the POST returned.
func TestPostHandsTheBodyBackWhenDone(t *testing.T) {
	t.Parallel()
	got := make(chan []byte, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- b
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	d := New(nil, nil, DefaultOptions(), hclog.NewNullLogger())
	var s spareBuffers
	body := append(s.get(100<<10), make([]byte, 100<<10)...)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	want := string(body)
	w := db.Webhook{Name: "hook", Url: srv.URL, Secret: "s3cret"}
	if _, err := d.post(t.Context(), w, db.WebhookDelivery{ID: uuid.New(), Body: body}, "", &s); err != nil {
		t.Fatal(err)
	}
	if string(<-got) != want {
		t.Fatal("the receiver got another body")
	}
	if len(s.free) != 1 || !sameBuffer(s.free[0], body) {
		t.Fatalf("the body's buffer is not spare after the POST (%d spares)", len(s.free))
	}
}

// The builder waits while buildAhead bodies are held for a sender that is
// sending, and goes on when one is taken, when the sender is idle, or when
// its context ends.
func TestBuilderWaitsForRoomWhileTheSenderSends(t *testing.T) {
	t.Parallel()
	h := newHeld()
	ids := make([]uuid.UUID, buildAhead)
	built := make([]draft, buildAhead)
	for i := range built {
		ids[i] = uuid.New()
		built[i] = draft{id: ids[i], body: []byte("{}")}
	}
	h.add(built, func([]byte) string { return "sig" })
	waited := func(ctx context.Context) <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- h.waitRoom(ctx) }()
		return ch
	}
	blocked := func(ch <-chan error) bool {
		select {
		case err := <-ch:
			t.Logf("waitRoom returned (%v)", err)
			return false
		case <-time.After(50 * time.Millisecond):
			return true
		}
	}
	returns := func(what string, ch <-chan error, wantErr bool) {
		select {
		case err := <-ch:
			if (err != nil) != wantErr {
				t.Fatalf("%s: waitRoom = %v", what, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: the builder still waits", what)
		}
	}

	ch := waited(t.Context())
	if !blocked(ch) {
		t.Fatal("the builder went on with buildAhead bodies held")
	}
	h.take(ids[0])
	returns("one taken", ch, false)

	h.add([]draft{{id: uuid.New(), body: []byte("{}")}}, func([]byte) string { return "sig" })
	ch = waited(t.Context())
	if !blocked(ch) {
		t.Fatal("the builder went on with buildAhead bodies held again")
	}
	h.setIdle(true)
	returns("sender idle", ch, false)

	h.setIdle(false)
	ctx, cancel := context.WithCancel(t.Context())
	ch = waited(ctx)
	if !blocked(ch) {
		t.Fatal("the builder went on once the sender was sending again")
	}
	cancel()
	returns("context ended", ch, true)
}

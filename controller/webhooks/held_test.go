package webhooks

import (
	"bytes"
	"testing"

	"github.com/google/uuid"
)

func TestHeldBodiesAreTakenOnceWithinTheLimit(t *testing.T) {
	t.Parallel()
	h := newHeld()
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	big := bytes.Repeat([]byte("x"), heldLimit/2)
	signed := 0
	sign := func([]byte) string { signed++; return "sig" }
	h.add([]draft{{id: a, body: big}, {id: b, body: big}, {id: c, body: []byte("{}")}}, sign)
	// The second half fills the limit exactly; the third body is past it,
	// and is signed when it is sent, not here.
	if got := len(h.ids()); got != 2 || signed != 2 {
		t.Fatalf("holding %d bodies, %d signed; want 2 and 2 (the third is past the limit)", got, signed)
	}
	for _, tc := range []struct {
		name string
		id   uuid.UUID
		want bool
	}{
		{"held", a, true},
		{"taken already", a, false},
		{"past the limit", c, false},
		{"never built here", uuid.New(), false},
		{"held too", b, true},
	} {
		if b, ok := h.take(tc.id); ok != tc.want || (ok && (!bytes.Equal(b.body, big) || b.signature != "sig")) {
			t.Errorf("%s: take = %v, want %v", tc.name, ok, tc.want)
		}
	}
	if h.size != 0 || len(h.ids()) != 0 {
		t.Fatalf("after taking everything: %d bytes, %d ids held", h.size, len(h.ids()))
	}
	// Room again once taken.
	h.add([]draft{{id: c, body: []byte("{}")}}, sign)
	if b, ok := h.take(c); !ok || string(b.body) != "{}" {
		t.Fatalf("take after room was made: %q %v", b.body, ok)
	}
}

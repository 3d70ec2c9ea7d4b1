package webhooks

import (
	"context"
	"sync"

	"github.com/google/uuid"
)

// heldLimit bounds the bytes of bodies one turn holds for its sender; past
// it, the sender reads the rest back from the outbox.
const heldLimit = 32 << 20

// held is the bodies of the deliveries one turn built, committed and has
// not sent yet, so the sender POSTs them without reading them back (a
// 50,000-change burst writes about 12 MB of bodies). A body is added only
// after the build that wrote it committed, and it is the very slice that
// was written, so what goes out is byte for byte what a retry would send.
// The outbox stays what the sender follows: which delivery is next, and
// its state, come from the database.
type held struct {
	mu     sync.Mutex
	bodies map[uuid.UUID]signedBody
	size   int
	// spare: the buffers of bodies sent, or written and not held, for
	// the builder to encode the next ones into.
	spare spareBuffers
	// idle: the sender has nothing due (or has stopped), so it takes
	// nothing until the builder commits more.
	idle bool
	// changed is poked when a body is taken or idle changes.
	changed chan struct{}
}

// buildAhead is how many held bodies the builder may be ahead of a
// sending sender before it waits: so the buffers of sent bodies come back
// while the build still needs them (without it a burst's builder finished
// with a quarter of the bodies sent and nearly every buffer fresh).
const buildAhead = 16

// signedBody is a body and its signature, made by the builder so the
// sender, which POSTs one delivery after another, does not hash 12 MB of
// a burst's bodies between them.
type signedBody struct {
	body      []byte
	signature string
}

func newHeld() *held {
	return &held{bodies: make(map[uuid.UUID]signedBody), changed: make(chan struct{}, 1)}
}

func (h *held) poke() {
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

// setIdle records whether the sender waits for the builder; an idle
// sender lets the builder go on however far ahead it is.
func (h *held) setIdle(idle bool) {
	h.mu.Lock()
	h.idle = idle
	h.mu.Unlock()
	h.poke()
}

// waitRoom returns once fewer than buildAhead bodies are held or the
// sender is idle.
func (h *held) waitRoom(ctx context.Context) error {
	for {
		h.mu.Lock()
		room := len(h.bodies) < buildAhead || h.idle
		h.mu.Unlock()
		if room {
			return nil
		}
		select {
		case <-h.changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// add holds, signed with sign, the bodies of one committed build while
// they fit. Only what is held is signed here: a body past the limit is
// read back and signed when it is sent, and its buffer is spare now. The
// hashing is done outside the lock, the sender takes bodies meanwhile;
// taking only makes room, so what fitted still fits.
func (h *held) add(built []draft, sign func([]byte) string) {
	h.mu.Lock()
	room := heldLimit - h.size
	h.mu.Unlock()
	fit := make([]signedBody, 0, len(built))
	for _, d := range built {
		if room -= len(d.body); room < 0 {
			break
		}
		fit = append(fit, signedBody{body: d.body, signature: sign(d.body)})
	}
	for _, d := range built[len(fit):] {
		h.spare.put(d.body)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, b := range fit {
		h.bodies[built[i].id] = b
		h.size += len(b.body)
	}
}

// ids is what is held now.
func (h *held) ids() []uuid.UUID {
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]uuid.UUID, 0, len(h.bodies))
	for id := range h.bodies {
		ids = append(ids, id)
	}
	return ids
}

// take hands over and forgets the body of id.
func (h *held) take(id uuid.UUID) (signedBody, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.bodies[id]
	if ok {
		delete(h.bodies, id)
		h.size -= len(b.body)
		h.poke()
	}
	return b, ok
}

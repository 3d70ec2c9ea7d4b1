package webhooks

import (
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
}

// signedBody is a body and its signature, made by the builder so the
// sender, which POSTs one delivery after another, does not hash 12 MB of
// a burst's bodies between them.
type signedBody struct {
	body      []byte
	signature string
}

func newHeld() *held { return &held{bodies: make(map[uuid.UUID]signedBody)} }

// add holds, signed with sign, the bodies of one committed build while
// they fit. Only what is held is signed here: a body past the limit is
// read back and signed when it is sent. The hashing is done outside the
// lock, the sender takes bodies meanwhile; taking only makes room, so
// what fitted still fits.
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
	}
	return b, ok
}

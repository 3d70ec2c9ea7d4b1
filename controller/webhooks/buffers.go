package webhooks

import (
	"net/http/httptrace"
	"sync"
)

// spareLimit bounds the buffers a turn keeps for bodies to come: enough
// for a sender that is a few dozen deliveries behind its builder.
const spareLimit = 32

// spareRound is the granule of a body buffer's size.
const spareRound = 16 << 10

// spareBuffers recycles a turn's body buffers: a body the transport is done
// with takes the place of a fresh buffer for the next one built. A 50,000-
// change burst encodes about 13 MB of bodies, and fresh memory is paid for
// page by page (a fault each 4 KB, about 6 µs apiece on our VMs).
type spareBuffers struct {
	mu   sync.Mutex
	free [][]byte
}

// get is an empty buffer with room for n bytes, a spare one when one is
// big enough.
func (s *spareBuffers) get(n int) []byte {
	if s != nil {
		s.mu.Lock()
		for len(s.free) > 0 {
			b := s.free[len(s.free)-1]
			s.free = s.free[:len(s.free)-1]
			if cap(b) >= n {
				s.mu.Unlock()
				return b[:0]
			}
		}
		s.mu.Unlock()
	}
	// Rounded up, so the next body of about the same size fits.
	return make([]byte, 0, (n+spareRound-1)/spareRound*spareRound)
}

// put hands b over for reuse; nothing else may read or write it after.
func (s *spareBuffers) put(b []byte) {
	if s == nil || cap(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.free) < spareLimit {
		s.free = append(s.free, b[:0])
	}
}

// lentBody is a body lent to net/http for one POST: its buffer goes back
// to the spares once the client has returned and every write of the
// request, retries on another connection included, has finished. The
// body goes out as a *bytes.Reader, which net/http writes with the headers
// in one write; it reads the buffer only while writing, between getting a
// connection and reporting the request written (httptrace). A count that
// does not add up (a write reported without its connection) keeps the
// buffer from reuse rather than guess.
type lentBody struct {
	mu       sync.Mutex
	buf      []byte
	spare    *spareBuffers
	writing  int  // connections got, writes not finished
	returned bool // the client returned
	done     bool // released, or never to be
}

func lend(buf []byte, spare *spareBuffers) *lentBody { return &lentBody{buf: buf, spare: spare} }

// trace is the request's hooks that follow its writes.
func (l *lentBody) trace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.writing++
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.writing--; l.writing < 0 {
				l.done = true
			}
			l.release()
		},
	}
}

// clientReturned is called once the client returned.
func (l *lentBody) clientReturned() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.returned = true
	l.release()
}

func (l *lentBody) release() {
	if l.done || !l.returned || l.writing != 0 {
		return
	}
	l.done = true
	l.spare.put(l.buf)
	l.buf = nil
}

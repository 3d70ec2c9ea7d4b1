package nmaprun

import (
	"strings"
	"sync"
)

// stderrTail is how much of nmap's stderr is kept for error messages.
const stderrTail = 4 << 10

// tailBuffer is an io.Writer keeping only the last max bytes written.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
	cut bool // bytes were dropped
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{max: limit} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
		t.cut = true
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
		t.cut = true
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// String returns the kept bytes as cleaned text, prefixed with "..." when
// earlier output was dropped.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(clean(string(t.buf), true))
	if t.cut && s != "" {
		s = "..." + s
	}
	return s
}

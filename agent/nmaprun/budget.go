package nmaprun

import (
	"errors"
	"io"
)

// Byte budgets bounding the memory the decoder can be made to use.
const (
	// maxHostBytes bounds one <host> element. A host answering on every
	// TCP port with service and script output stays well below it.
	maxHostBytes = 64 << 20
	// maxTokenBytes bounds every other top-level token or element.
	maxTokenBytes = 1 << 20
)

// errTooLarge is returned when one XML element exceeds its byte budget.
var errTooLarge = errors.New("nmap XML element exceeds size limit")

// budgetReader fails with errTooLarge once more than the current budget has
// been read since the last reset. The XML decoder reads ahead through a
// small buffer, so the effective bound is the budget plus that buffer.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) reset(n int64) { b.left = n }

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

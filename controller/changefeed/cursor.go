package changefeed

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"

	"github.com/google/uuid"
)

// cursorVersion is the first byte of every cursor; a format change bumps it.
const cursorVersion = 1

// A cursor is base64url(version | scope | seq | mac): scope is 8 bytes of a
// hash of the feed's epoch and the site (or "all sites"), seq the feed_seq
// of the last change the client received, mac 8 bytes of an HMAC keyed by
// the epoch. A cursor is therefore opaque, bound to one database and one
// scope, and a typo or a forged sequence number does not decode.
const cursorLen = 1 + 8 + 8 + 8

// ErrForeignCursor is a cursor that decodes but belongs to another site,
// to "all sites" rather than one, or to another database.
var ErrForeignCursor = errors.New("cursor belongs to another site or another database")

// ErrBadCursor is anything that is not a cursor of this API.
var ErrBadCursor = errors.New("not a cursor returned by WatchChanges")

// Scope is what a cursor is valid for: one feed (epoch) and one site, or
// every site when Site is the zero UUID.
type Scope struct {
	Epoch uuid.UUID
	Site  uuid.UUID
}

func (s Scope) tag() []byte {
	h := sha256.New()
	h.Write([]byte("scanorama change feed scope\x00"))
	h.Write(s.Epoch[:])
	h.Write(s.Site[:])
	return h.Sum(nil)[:8]
}

func (s Scope) mac(b []byte) []byte {
	m := hmac.New(sha256.New, s.Epoch[:])
	m.Write(b)
	return m.Sum(nil)[:8]
}

// Encode returns the cursor for seq in scope.
func (s Scope) Encode(seq int64) string {
	b := make([]byte, 0, cursorLen)
	b = append(b, cursorVersion)
	b = append(b, s.tag()...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = append(b, s.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode returns the feed_seq a cursor of scope stands for.
func (s Scope) Decode(cursor string) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(b) != cursorLen || b[0] != cursorVersion {
		return 0, ErrBadCursor
	}
	body, mac := b[:cursorLen-8], b[cursorLen-8:]
	sameScope := hmac.Equal(body[1:9], s.tag())
	switch {
	case hmac.Equal(mac, s.mac(body)) && sameScope:
	case !sameScope:
		// Signed for another site of this database, or by another database.
		return 0, ErrForeignCursor
	default:
		return 0, ErrBadCursor
	}
	seq := int64(binary.BigEndian.Uint64(body[9:17]))
	if seq < 0 {
		return 0, ErrBadCursor
	}
	return seq, nil
}

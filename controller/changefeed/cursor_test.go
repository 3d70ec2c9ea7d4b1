package changefeed

import (
	"errors"
	"testing"

	"github.com/google/uuid"
)

func TestCursors(t *testing.T) {
	t.Parallel()
	epoch, other := uuid.MustParse("00000000-0000-4000-8000-0000000000e1"), uuid.MustParse("00000000-0000-4000-8000-0000000000e2")
	siteA, siteB := uuid.MustParse("00000000-0000-4000-8000-0000000000a1"), uuid.MustParse("00000000-0000-4000-8000-0000000000b1")
	a := Scope{Epoch: epoch, Site: siteA}
	for _, seq := range []int64{0, 1, 42, 1 << 40} {
		got, err := a.Decode(a.Encode(seq))
		if err != nil || got != seq {
			t.Fatalf("round trip of %d: %d, %v", seq, got, err)
		}
	}
	c := a.Encode(7)
	tampered := []byte(c)
	tampered[len(tampered)-12] ^= 1
	for _, tc := range []struct {
		name   string
		scope  Scope
		cursor string
		want   error
	}{
		{"garbage", a, "hello", ErrBadCursor},
		{"not base64", a, "!!!!", ErrBadCursor},
		{"empty", a, "", ErrBadCursor},
		{"tampered", a, string(tampered), ErrBadCursor},
		{"another site", Scope{Epoch: epoch, Site: siteB}, c, ErrForeignCursor},
		{"all sites", Scope{Epoch: epoch}, c, ErrForeignCursor},
		{"another database", Scope{Epoch: other, Site: siteA}, c, ErrForeignCursor},
	} {
		if _, err := tc.scope.Decode(tc.cursor); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

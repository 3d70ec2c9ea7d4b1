package changefeed

import (
	"testing"
	"unsafe"

	"github.com/jackc/pgx/v5/pgtype"
)

// sharedText hands out the values it was given, NULL as NULL, one string
// per distinct value while under its limit and a string of its own past it.
func TestSharedTextScansWhatItIsGiven(t *testing.T) {
	t.Parallel()
	seen := make(map[string]string)
	var dst pgtype.Text
	st := &sharedText{dst: &dst, seen: seen}
	scan := func(v []byte) pgtype.Text {
		t.Helper()
		if err := st.ScanBytes(v); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	if got := scan(nil); got.Valid {
		t.Fatalf("NULL scanned as %+v", got)
	}
	if got := scan([]byte{}); !got.Valid || got.String != "" {
		t.Fatalf("empty string scanned as %+v", got)
	}
	buf := []byte("open")
	first := scan(buf)
	buf[0] = 'X' // the bytes are pgx's, reused after the call
	if first.String != "open" {
		t.Fatalf("value changed with the bytes it came from: %q", first.String)
	}
	if again := scan([]byte("open")); again.String != "open" || unsafe.StringData(again.String) != unsafe.StringData(first.String) {
		t.Fatalf("a repeated value was not shared: %q", again.String)
	}
	for i := len(seen); i < sharedTextLimit; i++ {
		scan([]byte{byte(i), byte(i >> 8), byte(i >> 16), 'v'})
	}
	if len(seen) != sharedTextLimit {
		t.Fatalf("%d values kept, want the limit %d", len(seen), sharedTextLimit)
	}
	if got := scan([]byte("past the limit")); got.String != "past the limit" || len(seen) != sharedTextLimit {
		t.Fatalf("past the limit: %q, %d values kept", got.String, len(seen))
	}
}

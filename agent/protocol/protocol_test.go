package protocol

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	cases := []struct {
		reported uint32
		ok       bool
	}{
		{0, true}, // from before versioning: protocol 1
		{1, true},
		{Version, true},
		{Version + 1, false},
		{99, false},
	}
	for _, c := range cases {
		err := Check(c.reported)
		if (err == nil) != c.ok {
			t.Errorf("Check(%d) = %v, want ok=%v", c.reported, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("Check(%d) error %q does not name the versions", c.reported, err)
		}
	}
}

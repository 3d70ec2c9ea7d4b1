package ingest

import (
	"errors"
	"testing"

	"github.com/scanorama/scanorama/controller/apierr"
)

// A rejection's metric label is the field path without indices: bounded,
// and free of the offending values.
func TestRejectReason(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err  error
		want string
	}{
		{apierr.InvalidField("hosts[3].address", "not an IP address: %q", "10.99.0.999"), "hosts.address"},
		{apierr.InvalidField("hosts[12].ports[4].port", "must be 1..65535, got %d", 0), "hosts.ports.port"},
		{apierr.InvalidField("summary.hosts_sent", "summary says 3"), "summary.hosts_sent"},
		{errors.New("not a status"), "unknown"},
	} {
		if got := rejectReason(tc.err); got != tc.want {
			t.Errorf("rejectReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

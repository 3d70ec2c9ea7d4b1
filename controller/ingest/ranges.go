package ingest

import (
	"fmt"
	"strings"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/apierr"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// scannedRanges returns the TCP and UDP ports the scan covered, as
// PostgreSQL int4multirange literals. A port open before and inside this
// set but absent from the results is closed now; ports outside it were not
// looked at and keep their state. nmap's own account (<scaninfo>) wins over
// the job's port spec, which is empty for top-ports profiles.
func scannedRanges(sum *pb.ScanSummary, jobPorts string) (tcp, udp string, err error) {
	if sum.GetScannedTcp() != "" || sum.GetScannedUdp() != "" {
		t, err := portList(sum.GetScannedTcp())
		if err != nil {
			return "", "", apierr.InvalidField("summary.scanned_tcp", "%v", err)
		}
		u, err := portList(sum.GetScannedUdp())
		if err != nil {
			return "", "", apierr.InvalidField("summary.scanned_udp", "%v", err)
		}
		return multirange(t), multirange(u), nil
	}
	var spec scanspec.PortSpec
	if jobPorts != "" {
		if spec, err = scanspec.ParsePorts(jobPorts); err != nil {
			return "", "", fmt.Errorf("job ports %q: %w", jobPorts, err)
		}
	}
	return multirange(spec.TCP), multirange(spec.UDP), nil
}

// portList parses a plain port list such as nmap's scaninfo "22,80,8000-8100".
func portList(s string) ([]scanspec.PortRange, error) {
	if s == "" {
		return nil, nil
	}
	spec, err := scanspec.ParsePorts(s)
	if err != nil {
		return nil, err
	}
	return spec.TCP, nil
}

func multirange(rs []scanspec.PortRange) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "[%d,%d]", r.Start, r.End)
	}
	b.WriteByte('}')
	return b.String()
}

package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/agent/scanspec/specpb"
	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/nmapxml"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// nmapXMLFlush is the buffered size at which an nmap XML export sends a chunk.
const nmapXMLFlush = 64 << 10

// exportNmapXML streams a job's or a site's results as one nmaprun
// document: hosts page by page in address order, each with its ports, read
// by a second keyset cursor that walks the same order.
func (s *Server) exportNmapXML(ctx context.Context, req *pb.ExportResultsRequest, stream pb.AdminService_ExportResultsServer) error {
	var (
		run   nmapxml.Run
		hosts func(after netip.Addr) ([]nmapxml.Host, error)
		ports func(after exportRow) ([]exportRow, error)
	)
	if req.GetJobId() != "" {
		id, err := parseID("job_id", req.GetJobId())
		if err != nil {
			return err
		}
		job, err := s.q.NmapXMLJob(ctx, id)
		if errors.Is(err, pgx.ErrNoRows) {
			return apierr.NotFound("job_id", "no job %s", id)
		}
		if err != nil {
			return s.internal("read job", err)
		}
		run = jobRun(job)
		recorded, err := s.q.JobHasHostRecords(ctx, id)
		if err != nil {
			return s.internal("read job hosts", err)
		}
		hosts = func(after netip.Addr) ([]nmapxml.Host, error) {
			if recorded {
				// What the job itself reported (job_hosts): later jobs
				// change hosts' current state, not this.
				rows, err := s.q.NmapXMLRecordedJobHosts(ctx, db.NmapXMLRecordedJobHostsParams{JobID: id, AfterIp: after, RowLimit: exportPage})
				out := make([]nmapxml.Host, len(rows))
				for i, r := range rows {
					out[i] = nmapxml.Host{Addr: r.IpAddress, Status: r.Status, Reason: r.Reason.String, Hostname: r.Hostname.String,
						MAC: macString(r.MacAddress), Vendor: r.Vendor.String, OSName: r.OsName.String, OSAccuracy: int(r.OsConfidence.Int16)}
				}
				return out, err
			}
			// A job committed before job_hosts existed: its hosts as known now.
			rows, err := s.q.NmapXMLJobHosts(ctx, db.NmapXMLJobHostsParams{JobID: id, SiteID: job.SiteID, AfterIp: after, RowLimit: exportPage})
			out := make([]nmapxml.Host, len(rows))
			for i, r := range rows {
				out[i] = nmapxml.Host{Addr: r.IpAddress, Status: r.Status, Hostname: r.Hostname.String, MAC: macString(r.MacAddress),
					Vendor: r.Vendor.String, OSName: r.OsName.String, OSAccuracy: int(r.OsConfidence.Int16)}
			}
			return out, err
		}
		ports = func(after exportRow) ([]exportRow, error) {
			rows, err := s.q.ExportJobResults(ctx, db.ExportJobResultsParams{JobID: id, AfterIp: after.IP, AfterProtocol: after.Protocol, AfterPort: after.Port, RowLimit: exportPage})
			out := make([]exportRow, len(rows))
			for i, r := range rows {
				out[i] = fromJobRow(r)
			}
			return out, err
		}
	} else {
		st, err := s.siteByName(ctx, s.q, "site", req.GetSite())
		if err != nil {
			return err
		}
		// A site's current state is no single scan: no args and no
		// scaninfo, started and finished now.
		now := time.Now()
		run = nmapxml.Run{Start: now, End: now}
		hosts = func(after netip.Addr) ([]nmapxml.Host, error) {
			rows, err := s.q.NmapXMLSiteHosts(ctx, db.NmapXMLSiteHostsParams{SiteID: st.ID, AfterIp: after, RowLimit: exportPage})
			out := make([]nmapxml.Host, len(rows))
			for i, r := range rows {
				out[i] = nmapxml.Host{Addr: r.IpAddress, Status: r.Status, Hostname: r.Hostname.String, MAC: macString(r.MacAddress),
					Vendor: r.Vendor.String, OSName: r.OsName.String, OSAccuracy: int(r.OsConfidence.Int16)}
			}
			return out, err
		}
		ports = func(after exportRow) ([]exportRow, error) {
			rows, err := s.q.NmapXMLSitePorts(ctx, db.NmapXMLSitePortsParams{SiteID: st.ID, AfterIp: after.IP, AfterProtocol: after.Protocol, AfterPort: after.Port, RowLimit: exportPage})
			out := make([]exportRow, len(rows))
			for i, r := range rows {
				out[i] = exportRow{IP: r.IpAddress, Port: r.Port, Protocol: r.Protocol, State: r.State, Reason: r.Reason,
					Service: r.ServiceName.String, Product: r.ServiceProduct.String, Version: r.ServiceVersion.String,
					ExtraInfo: r.ServiceExtraInfo.String}
			}
			return out, err
		}
	}

	var (
		w   nmapxml.Writer
		buf bytes.Buffer
	)
	w.Header(&buf, run)
	pc := portCursor{fetch: ports, after: exportRow{IP: netip.IPv4Unspecified()}}
	after := netip.IPv4Unspecified()
	for {
		page, err := hosts(after)
		if err != nil {
			return s.internal("export hosts", err)
		}
		for _, h := range page {
			if h.Ports, err = pc.take(h.Addr); err != nil {
				return s.internal("export ports", err)
			}
			w.Host(&buf, h)
			if buf.Len() >= nmapXMLFlush {
				if err := stream.Send(&pb.ExportResultsResponse{Data: buf.String()}); err != nil {
					return err
				}
				buf.Reset()
			}
		}
		if len(page) < exportPage {
			break
		}
		after = page[len(page)-1].Addr
	}
	w.Footer(&buf, run)
	return stream.Send(&pb.ExportResultsResponse{Data: buf.String()})
}

// portCursor walks port rows in (address, protocol, port) order alongside
// the hosts, a page at a time.
type portCursor struct {
	fetch func(after exportRow) ([]exportRow, error)
	rows  []exportRow
	i     int
	after exportRow
	done  bool
}

// take returns the ports of ip, skipping rows of addresses before it (a
// port of a host the host query did not return).
func (c *portCursor) take(ip netip.Addr) ([]nmapxml.Port, error) {
	var out []nmapxml.Port
	for {
		if c.i >= len(c.rows) {
			if c.done {
				return out, nil
			}
			rows, err := c.fetch(c.after)
			if err != nil {
				return nil, err
			}
			c.rows, c.i, c.done = rows, 0, len(rows) < exportPage
			if len(rows) == 0 {
				return out, nil
			}
			c.after = rows[len(rows)-1]
		}
		r := c.rows[c.i]
		switch {
		case r.IP.Less(ip):
			c.i++
		case r.IP == ip:
			out = append(out, nmapxml.Port{Protocol: r.Protocol, Port: r.Port, State: r.State, Reason: r.Reason,
				Service: r.Service, Product: r.Product, Version: r.Version, ExtraInfo: r.ExtraInfo})
			c.i++
		default:
			return out, nil
		}
	}
}

// scaninfoTypes maps a profile's scan type to nmap's <scaninfo type> for TCP.
var scaninfoTypes = map[string]string{"syn": "syn", "connect": "connect"}

// jobRun describes a job's run as nmap would have: the command line its
// typed options stand for (what the agent ran, derived from the same
// options), the ports it scanned per protocol, and its timing.
func jobRun(j db.NmapXMLJobRow) nmapxml.Run {
	var st struct {
		ElapsedSec  float64 `json:"elapsed_seconds"`
		NmapVersion string  `json:"nmap_version"`
		ScannedTCP  string  `json:"scanned_tcp"`
		ScannedUDP  string  `json:"scanned_udp"`
	}
	if len(j.ScanStats) > 0 {
		_ = json.Unmarshal(j.ScanStats, &st)
	}
	run := nmapxml.Run{Version: st.NmapVersion, Start: j.CreatedAt, End: time.Now()}
	if j.StartedAt.Valid {
		run.Start = j.StartedAt.Time
	}
	if j.CompletedAt.Valid {
		run.End = j.CompletedAt.Time
	}
	run.Elapsed = run.End.Sub(run.Start)
	if st.ElapsedSec > 0 {
		run.Elapsed = time.Duration(st.ElapsedSec * float64(time.Second))
	}
	if state.JobKind(j.Kind) != state.KindScan {
		// An imported file's command line and scan type were not kept.
		return run
	}
	var opts pb.ScanOptions
	if protojson.Unmarshal(j.Options, &opts) == nil {
		if o, err := specpb.FromPB(&opts); err == nil {
			if args, err := scanspec.Args(o, []netip.Prefix{j.Network}, nil); err == nil {
				run.Args = "nmap " + strings.Join(args, " ")
			}
		}
	}
	if t, ok := scaninfoTypes[j.ScanType]; ok && st.ScannedTCP != "" {
		run.ScanInfo = append(run.ScanInfo, nmapxml.ScanInfo{Type: t, Protocol: "tcp", Services: st.ScannedTCP})
	}
	if st.ScannedUDP != "" {
		run.ScanInfo = append(run.ScanInfo, nmapxml.ScanInfo{Type: "udp", Protocol: "udp", Services: st.ScannedUDP})
	}
	return run
}

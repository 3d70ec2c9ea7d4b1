package admin

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// exportPage bounds the rows read per query and sent per message, so an
// export of any size streams in constant memory.
const exportPage = 1000

type exportRow struct {
	IP        netip.Addr
	Hostname  string
	MAC       string
	Port      int32
	Protocol  string
	State     string
	Reason    string
	Service   string
	Product   string
	Version   string
	ExtraInfo string
	SeenAt    time.Time
}

func fromJobRow(r db.ExportJobResultsRow) exportRow {
	return exportRow{r.IpAddress, r.Hostname.String, macString(r.MacAddress), r.Port, r.Protocol, r.State, r.Reason.String,
		r.ServiceName.String, r.ServiceProduct.String, r.ServiceVersion.String, r.ServiceExtraInfo.String, r.SeenAt}
}

func fromSiteRow(r db.ExportSiteResultsRow) exportRow {
	return exportRow{r.IpAddress, r.Hostname.String, macString(r.MacAddress), r.Port, r.Protocol, r.State, r.Reason,
		r.ServiceName.String, r.ServiceProduct.String, r.ServiceVersion.String, r.ServiceExtraInfo.String, r.SeenAt}
}

func macString(m []byte) string {
	if len(m) == 0 {
		return ""
	}
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5])
}

// encoder writes rows in one export format.
type encoder interface {
	header(b *bytes.Buffer)
	row(b *bytes.Buffer, r exportRow)
	footer(b *bytes.Buffer)
}

type jsonlEncoder struct{ site string }

func (jsonlEncoder) header(*bytes.Buffer) {}
func (e jsonlEncoder) row(b *bytes.Buffer, r exportRow) {
	line, _ := json.Marshal(map[string]any{
		"site": e.site, "ip_address": r.IP.String(), "hostname": r.Hostname, "mac_address": r.MAC,
		"port": r.Port, "protocol": r.Protocol, "state": r.State, "reason": r.Reason, "service_name": r.Service,
		"service_product": r.Product, "service_version": r.Version, "service_extra_info": r.ExtraInfo,
		"seen_at": r.SeenAt.UTC().Format(time.RFC3339Nano),
	})
	b.Write(line)
	b.WriteByte('\n')
}
func (jsonlEncoder) footer(*bytes.Buffer) {}

type csvEncoder struct{ site string }

var csvColumns = []string{"site", "ip_address", "hostname", "mac_address", "port", "protocol", "state", "reason",
	"service_name", "service_product", "service_version", "service_extra_info", "seen_at"}

func (csvEncoder) header(b *bytes.Buffer) { writeCSV(b, csvColumns) }
func (e csvEncoder) row(b *bytes.Buffer, r exportRow) {
	writeCSV(b, []string{e.site, r.IP.String(), r.Hostname, r.MAC, strconv.Itoa(int(r.Port)), r.Protocol, r.State, r.Reason,
		r.Service, r.Product, r.Version, r.ExtraInfo, r.SeenAt.UTC().Format(time.RFC3339Nano)})
}
func (csvEncoder) footer(*bytes.Buffer) {}

func writeCSV(b *bytes.Buffer, rec []string) {
	w := csv.NewWriter(b)
	_ = w.Write(rec)
	w.Flush()
}

// ExportResults implements AdminService.ExportResults.
func (s *Server) ExportResults(req *pb.ExportResultsRequest, stream pb.AdminService_ExportResultsServer) error {
	ctx := stream.Context()
	if (req.GetJobId() == "") == (req.GetSite() == "") {
		return apierr.InvalidField("job_id", "give exactly one of job_id and site")
	}
	var fetch func(after exportRow) ([]exportRow, error)
	site := req.GetSite()
	if req.GetFormat() == pb.ExportFormat_EXPORT_FORMAT_NMAP_XML {
		return s.exportNmapXML(ctx, req, stream)
	}
	if req.GetJobId() != "" {
		id, err := parseID("job_id", req.GetJobId())
		if err != nil {
			return err
		}
		job, err := s.job(ctx, id)
		if err != nil {
			return err
		}
		site = job.GetSite()
		fetch = func(after exportRow) ([]exportRow, error) {
			rows, err := s.q.ExportJobResults(ctx, db.ExportJobResultsParams{JobID: id, AfterIp: after.IP, AfterProtocol: after.Protocol, AfterPort: after.Port, RowLimit: exportPage})
			out := make([]exportRow, len(rows))
			for i, r := range rows {
				out[i] = fromJobRow(r)
			}
			return out, err
		}
	} else {
		st, err := s.siteByName(ctx, s.q, "site", site)
		if err != nil {
			return err
		}
		fetch = func(after exportRow) ([]exportRow, error) {
			rows, err := s.q.ExportSiteResults(ctx, db.ExportSiteResultsParams{SiteID: st.ID, AfterIp: after.IP, AfterProtocol: after.Protocol, AfterPort: after.Port, RowLimit: exportPage})
			out := make([]exportRow, len(rows))
			for i, r := range rows {
				out[i] = fromSiteRow(r)
			}
			return out, err
		}
	}
	var enc encoder
	switch req.GetFormat() {
	case pb.ExportFormat_EXPORT_FORMAT_JSONL, pb.ExportFormat_EXPORT_FORMAT_UNSPECIFIED:
		enc = jsonlEncoder{site: site}
	case pb.ExportFormat_EXPORT_FORMAT_CSV:
		enc = csvEncoder{site: site}
	default:
		return apierr.InvalidField("format", "unknown format %d", req.GetFormat())
	}
	var buf bytes.Buffer
	enc.header(&buf)
	after := exportRow{IP: netip.IPv4Unspecified()}
	for {
		rows, err := fetch(after)
		if err != nil {
			return s.internal("export results", err)
		}
		for _, r := range rows {
			enc.row(&buf, r)
		}
		if len(rows) < exportPage {
			break
		}
		after = rows[len(rows)-1]
		if err := stream.Send(&pb.ExportResultsResponse{Data: buf.String()}); err != nil {
			return err
		}
		buf.Reset()
	}
	enc.footer(&buf)
	return stream.Send(&pb.ExportResultsResponse{Data: buf.String()})
}

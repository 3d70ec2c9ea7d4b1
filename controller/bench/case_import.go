package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/scanorama/scanorama/controller/nmapxml"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// importPorts is how many TCP ports each generated host lists: a -p 1-40
// scan with every port shown (nmap -v with --open left off), made by the
// ingest case's port generator: mostly closed and filtered, a few open with
// services and versions.
const importPorts = 40

// importNetwork holds the generated hosts (data only: nothing is probed).
var importNetwork = netip.MustParsePrefix("10.99.0.0/16")

// writeImportFile writes an nmap -oX document of at least mb megabytes of
// realistic hosts (names, MACs, vendors, OS guesses, g's ports) starting at
// the ingest case's first address, and returns how many hosts it holds.
func writeImportFile(path string, mb int) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	g := portGen{ports: importPorts}
	start := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	run := nmapxml.Run{Args: "nmap -n -sS -sV -O -v -p 1-40 -oX - 10.99.0.0/16", Version: "7.93", Start: start,
		End: start.Add(2 * time.Hour), Elapsed: 2 * time.Hour,
		ScanInfo: []nmapxml.ScanInfo{{Type: "syn", Protocol: "tcp", Services: fmt.Sprintf("1-%d", importPorts)}}}
	var (
		xw      nmapxml.Writer
		buf     bytes.Buffer
		written int64
	)
	xw.Header(&buf, run)
	oses := []string{"Linux 5.15 - 6.1", "Microsoft Windows Server 2019", "FreeBSD 13.2", ""}
	addr := hostAddr(ingestNetwork, 0)
	n := 0
	for ; written < int64(mb)<<20; n++ {
		if !importNetwork.Contains(addr) {
			return n, fmt.Errorf("%d MB of hosts do not fit in %s", mb, importNetwork)
		}
		h := nmapxml.Host{Addr: addr, Status: "up", Reason: "arp-response",
			MAC: fmt.Sprintf("02:42:0a:63:%02x:%02x", (n>>8)&0xff, n&0xff), Vendor: "Super Micro Computer",
			Hostname: fmt.Sprintf("srv-%05d.bench.internal", n), OSName: oses[n%len(oses)], OSAccuracy: 96}
		for _, p := range g.host(n) {
			h.Ports = append(h.Ports, nmapxml.Port{Protocol: "tcp", Port: p.port, State: p.state, Reason: p.reason,
				Service: p.name, Product: p.product, Version: p.version, ExtraInfo: p.extra})
		}
		xw.Host(&buf, h)
		written += int64(buf.Len())
		if _, err := buf.WriteTo(w); err != nil {
			return n, err
		}
		addr = addr.Next()
	}
	xw.Footer(&buf, run)
	if _, err := buf.WriteTo(w); err != nil {
		return n, err
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	return n, f.Close()
}

func runImport(ctx context.Context, e *Env, o Options) ([]Result, error) {
	mb := o.ImportMB
	if mb < 1 {
		return nil, fmt.Errorf("import size must be at least 1 MB, got %d", mb)
	}
	path := filepath.Join(e.Tmp, "import.xml")
	e.Log.Info("generating nmap XML", "mb", mb)
	hosts, err := writeImportFile(path, mb)
	if err != nil {
		return nil, fmt.Errorf("generate the import file: %w", err)
	}
	defer os.Remove(path)
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	fileMB := float64(st.Size()) / (1 << 20)
	g := portGen{hosts: hosts, ports: importPorts}
	rows := int64(hosts) * importPorts

	copySec, copyCPU, err := ingestBaseline(ctx, e, g)
	if err != nil {
		return nil, fmt.Errorf("baseline COPY: %w", err)
	}
	m, err := importThroughController(ctx, e, path, rows)
	if err != nil {
		return nil, err
	}
	ratio := m.total / copySec
	growth := m.hwmMB - m.startMB
	e.Log.Info("import_100mb", "file_mb", round(fileMB, 1), "rows", rows, "import_s", round(m.total, 2), "copy_s", round(copySec, 2),
		"controller_vmhwm_mb", round(m.hwmMB, 1), "start_mb", round(m.startMB, 1))
	return []Result{
		{
			Name: "import_100mb", Value: f64(round(m.total, 2)), Unit: "s", Baseline: f64(round(copySec, 2)),
			Ratio: f64(round(ratio, 2)), Goal: "-",
			Note: fmt.Sprintf("ImportResults of a generated %.1f MB nmap -oX file (%d hosts × %d ports = %d port rows, 64 KiB chunks) into a fresh "+
				"controller and database, open → response: %.0f rows/s (%s); baseline: one pgx COPY of the same port rows into port_scans: %.0f rows/s (%s)",
				fileMB, hosts, importPorts, rows, float64(rows)/m.total, m.cpu, float64(rows)/copySec, copyCPU),
		},
		{
			Name: "import_100mb_peak_rss_mb", Value: f64(round(m.hwmMB, 1)), Unit: "MB", Goal: "growth < 64 MB",
			Note: fmt.Sprintf("controller VmHWM after the import; %.1f MB before it, so it grew %.1f MB (%.2f MB per MB of file); sampled VmRSS max %.1f MB",
				m.startMB, growth, growth/fileMB, m.sampledMB),
		},
	}, nil
}

// importThroughController sends the file through ImportResults to a fresh
// controller on a fresh database and checks every row arrived.
func importThroughController(ctx context.Context, e *Env, path string, rows int64) (ingestMeasure, error) {
	var m ingestMeasure
	url, err := e.NewDatabase(ctx, "bench_import")
	if err != nil {
		return m, err
	}
	defer e.DropDatabase("bench_import")
	ctrl, err := e.StartController(ctx, "controller-import", url)
	if err != nil {
		return m, err
	}
	defer ctrl.Stop()
	if _, err := ctrl.Admin.CreateSite(ctx, &pb.CreateSiteRequest{Name: "bench"}); err != nil {
		return m, fmt.Errorf("CreateSite: %w", err)
	}
	if _, err := ctrl.Admin.CreateTarget(ctx, &pb.CreateTargetRequest{
		Site: "bench", Name: "import", Network: importNetwork.String(), Ports: fmt.Sprintf("1-%d", importPorts),
	}); err != nil {
		return m, fmt.Errorf("CreateTarget: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return m, err
	}
	defer f.Close()
	if err := e.Checkpoint(ctx); err != nil {
		return m, err
	}
	m.startMB, _ = ctrl.RSSMB()
	stopSampling := ctrl.SampleRSS(20 * time.Millisecond)
	e.Log.Info("importing", "rows", rows)
	cpu := e.startCPU(ctrl.PID())
	begin := time.Now()
	resp, err := sendFile(ctx, ctrl.Admin, f)
	m.total = time.Since(begin).Seconds()
	m.cpu = cpu.String()
	sampledMB := stopSampling()
	if err != nil {
		return m, fmt.Errorf("ImportResults: %w\ncontroller log:\n%s", err, ctrl.Tail(20))
	}
	if resp.GetPortRows() != rows {
		return m, fmt.Errorf("import stored %d port rows, want %d", resp.GetPortRows(), rows)
	}
	if m.hwmMB, err = ctrl.HWMMB(); err != nil {
		return m, fmt.Errorf("read controller VmHWM: %w", err)
	}
	m.sampledMB = sampledMB
	return m, nil
}

// sendFile streams r through ImportResults in 64 KiB chunks.
func sendFile(ctx context.Context, c pb.AdminServiceClient, r io.Reader) (*pb.ImportResultsResponse, error) {
	st, err := c.ImportResults(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Start{Start: &pb.ImportStart{Site: "bench"}}}); err != nil {
		return st.CloseAndRecv()
	}
	buf := make([]byte, 64<<10)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if err := st.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Data{Data: append([]byte(nil), buf[:n]...)}}); err != nil {
				return st.CloseAndRecv()
			}
		}
		if errors.Is(rerr, io.EOF) {
			return st.CloseAndRecv()
		}
		if rerr != nil {
			return nil, rerr
		}
	}
}

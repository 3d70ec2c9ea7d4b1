package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/agent/worker"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// importChunk is the size of the data messages the file is sent in.
const importChunk = 256 << 10

// importCmd sends an nmap XML file to a running controller's
// AdminService.ImportResults, as grpcurl would, and prints the new job.
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: scanorama-controller import --site SITE [--target ID] [--controller ADDR] [TLS flags] FILE.xml")
		fs.PrintDefaults()
	}
	controller := fs.String("controller", env("SCANORAMA_CONTROLLER", "127.0.0.1:7443"), "controller address host:port (env SCANORAMA_CONTROLLER)")
	site := fs.String("site", "", "site the results belong to")
	target := fs.String("target", "", "target ID whose network the results must lie in (default: each host goes to the site's target containing its address, one job per target)")
	var tlsOpt worker.TLS
	fs.BoolVar(&tlsOpt.Enabled, "tls", envBool("SCANORAMA_TLS"), "speak TLS to the controller, verifying it against the system's roots or --tls-ca (implied by the other --tls flags) (env SCANORAMA_TLS)")
	fs.StringVar(&tlsOpt.CAFile, "tls-ca", env("SCANORAMA_TLS_CA", ""), "PEM CA bundle that signed the controller's certificate (env SCANORAMA_TLS_CA)")
	fs.StringVar(&tlsOpt.CertFile, "tls-cert", env("SCANORAMA_TLS_CERT", ""), "PEM client certificate, for a controller that requires one (env SCANORAMA_TLS_CERT)")
	fs.StringVar(&tlsOpt.KeyFile, "tls-key", env("SCANORAMA_TLS_KEY", ""), "PEM private key of --tls-cert (env SCANORAMA_TLS_KEY)")
	fs.StringVar(&tlsOpt.ServerName, "tls-server-name", env("SCANORAMA_TLS_SERVER_NAME", ""), "name to verify in the controller's certificate (default: the --controller host) (env SCANORAMA_TLS_SERVER_NAME)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *site == "" {
		return fail(stderr, errors.New("--site: required"))
	}
	if fs.NArg() != 1 {
		return fail(stderr, fmt.Errorf("give exactly one nmap XML file after the flags (got %d arguments)", fs.NArg()))
	}
	if strings.TrimSpace(*controller) == "" {
		return fail(stderr, errors.New("--controller: required"))
	}
	if tlsOpt.CAFile != "" || tlsOpt.CertFile != "" || tlsOpt.KeyFile != "" || tlsOpt.ServerName != "" {
		tlsOpt.Enabled = true
	}
	creds, err := tlsOpt.Credentials()
	if err != nil {
		return fail(stderr, err)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return fail(stderr, fmt.Errorf("FILE: %w", err))
	}
	defer f.Close()
	conn, err := grpc.NewClient(*controller, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fail(stderr, fmt.Errorf("--controller: %w", err))
	}
	defer conn.Close()
	resp, err := sendImport(ctx, pb.NewAdminServiceClient(conn), &pb.ImportStart{Site: *site, TargetId: *target}, f)
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return fail(stderr, fmt.Errorf("import refused (%s): %s", st.Code(), st.Message()))
		}
		return fail(stderr, err)
	}
	fmt.Fprintf(stdout, "imported as job %s: %d hosts, %d port rows, %d changes\n",
		resp.GetJobId(), resp.GetHosts(), resp.GetPortRows(), resp.GetChanges())
	if len(resp.GetJobs()) > 1 {
		for _, j := range resp.GetJobs() {
			fmt.Fprintf(stdout, "  job %s (target %s): %d hosts, %d port rows, %d changes\n",
				j.GetJobId(), j.GetTargetId(), j.GetHosts(), j.GetPortRows(), j.GetChanges())
		}
	}
	return 0
}

// sendImport streams start and then r in chunks.
func sendImport(ctx context.Context, c pb.AdminServiceClient, start *pb.ImportStart, r io.Reader) (*pb.ImportResultsResponse, error) {
	stream, err := c.ImportResults(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Start{Start: start}}); err != nil {
		return stream.CloseAndRecv()
	}
	buf := make([]byte, importChunk)
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			msg := &pb.ImportResultsRequest{Msg: &pb.ImportResultsRequest_Data{Data: append([]byte(nil), buf[:n]...)}}
			if err := stream.Send(msg); err != nil {
				// The server ended the stream; its status says why.
				return stream.CloseAndRecv()
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("read FILE: %w", rerr)
		}
	}
	return stream.CloseAndRecv()
}

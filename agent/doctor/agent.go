package doctor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/scanorama/scanorama/agent/nmaprun"
	"github.com/scanorama/scanorama/agent/worker"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Limits the agent checks judge by.
const (
	// MinSpoolFree is the free space below which the spool check fails: a
	// large job's results wait there until the controller acknowledges them.
	MinSpoolFree = 256 << 20
	// MaxClockSkew is the skew against a controller above which the clock
	// check fails: job times, schedules and lease deadlines are compared
	// across machines.
	MaxClockSkew = 2 * time.Second
	// CertWarnWithin warns of a certificate that expires this soon.
	CertWarnWithin = 14 * 24 * time.Hour
	callTimeout    = 5 * time.Second
)

// Agent runs every agent check for cfg (the agent's own configuration).
func Agent(ctx context.Context, cfg worker.Config) []Result {
	var out []Result
	caps, err := nmaprun.DetectCapabilities(ctx, cfg.NmapPath)
	if err != nil {
		out = append(out, Failf("nmap", "%v; install nmap (apt-get install nmap) or point --nmap at it", err))
	} else {
		path := cfg.NmapPath
		if p, err := execPath(cfg.NmapPath); err == nil {
			path = p
		}
		out = append(out, Okf("nmap", "%s, version %s", path, caps.NmapVersion))
		if caps.RawSockets {
			out = append(out, Okf("raw sockets", "available: SYN, UDP and OS detection scans can run"))
		} else {
			out = append(out, Warnf("raw sockets", "not available: only TCP connect scans run here; run as root or "+
				"grant CAP_NET_RAW (setcap cap_net_raw,cap_net_admin+eip on the nmap binary and the agent)"))
		}
	}
	out = append(out, spoolCheck(cfg.SpoolDir))
	out = append(out, tlsChecks(cfg.TLS, time.Now())...)
	if _, err := cfg.TLS.Credentials(); err != nil {
		return append(out, Failf("tls", "%v", err))
	}
	for _, c := range cfg.Controllers {
		out = append(out, controllerChecks(ctx, c, cfg.TLS)...)
	}
	return out
}

func execPath(p string) (string, error) {
	if filepath.IsAbs(p) {
		return p, nil
	}
	return lookPath(p)
}

// spoolCheck writes, syncs and removes a probe file and reads the free space.
func spoolCheck(dir string) Result {
	const check = "spool"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Failf(check, "cannot create %s: %v; fix --spool-dir or its parent's permissions", dir, err)
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		return Failf(check, "%s is not writable: %v; fix --spool-dir's permissions", dir, err)
	}
	_, werr := f.Write([]byte("scanorama doctor\n"))
	serr := f.Sync()
	cerr := f.Close()
	rerr := os.Remove(f.Name())
	if err := errors.Join(werr, serr, cerr, rerr); err != nil {
		return Failf(check, "write to %s failed: %v", dir, err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return Failf(check, "cannot read free space of %s: %v", dir, err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free < MinSpoolFree {
		return Failf(check, "%s is writable but has only %s free (need %s); free space or move --spool-dir", dir, bytesIEC(free), bytesIEC(MinSpoolFree))
	}
	return Okf(check, "%s is writable, %s free", dir, bytesIEC(free))
}

// tlsChecks reads the CA bundle and the client certificate and reports
// their validity periods.
func tlsChecks(t worker.TLS, now time.Time) []Result {
	if !t.Enabled {
		return []Result{Warnf("tls", "plaintext to the controller: nothing to check; use --tls-ca (and --tls-cert/--tls-key for mTLS) outside a trusted network")}
	}
	var out []Result
	if t.CAFile != "" {
		certs, err := ReadCerts(t.CAFile)
		if err != nil {
			out = append(out, Failf("tls ca", "--tls-ca %s: %v", t.CAFile, err))
		} else {
			for _, c := range certs {
				out = append(out, certExpiry("tls ca", "--tls-ca", c, now))
			}
		}
	} else {
		out = append(out, Okf("tls ca", "the system's roots verify the controller"))
	}
	if t.CertFile != "" {
		certs, err := ReadCerts(t.CertFile)
		if err != nil {
			out = append(out, Failf("tls cert", "--tls-cert %s: %v", t.CertFile, err))
		} else {
			out = append(out, certExpiry("tls cert", "--tls-cert", certs[0], now))
		}
	}
	return out
}

// ReadCerts reads every PEM certificate of file.
func ReadCerts(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return certs, nil
}

// CertExpiry judges one certificate's validity period at now.
func certExpiry(check, flag string, c *x509.Certificate, now time.Time) Result {
	name := c.Subject.CommonName
	if name == "" {
		name = c.Subject.String()
	}
	left := c.NotAfter.Sub(now)
	switch {
	case now.Before(c.NotBefore):
		return Failf(check, "%s %q is not valid before %s; check this host's clock or reissue it", flag, name, c.NotBefore.UTC().Format(time.RFC3339))
	case left <= 0:
		return Failf(check, "%s %q expired at %s; renew it", flag, name, c.NotAfter.UTC().Format(time.RFC3339))
	case left < CertWarnWithin:
		return Warnf(check, "%s %q expires in %s (%s); renew it soon", flag, name, days(left), c.NotAfter.UTC().Format(time.RFC3339))
	}
	return Okf(check, "%s %q valid until %s (%s)", flag, name, c.NotAfter.UTC().Format(time.RFC3339), days(left))
}

// controllerChecks dials one controller on its own: its health (the TLS
// handshake included) and its clock.
func controllerChecks(ctx context.Context, addr string, t worker.TLS) []Result {
	check := "controller " + addr
	if t.Enabled && t.ServerName == "" {
		// Each controller's certificate is checked against its own host, as
		// the agent does.
		t.ServerName, _, _ = net.SplitHostPort(addr)
	}
	creds, err := t.Credentials()
	if err != nil {
		return []Result{Failf(check, "%v", err)}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return []Result{Failf(check, "%v; fix --controller", err)}
	}
	defer conn.Close()
	health := within(ctx, callTimeout, func(ctx context.Context) Result {
		began := time.Now()
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: pb.AgentService_ServiceDesc.ServiceName}, grpc.WaitForReady(true))
		if err != nil {
			return Failf(check, "unreachable: %v; check that the controller runs, --controller, the firewall and the TLS flags", err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			return Failf(check, "reachable but %s (the controller cannot reach its database?)", resp.GetStatus())
		}
		return Okf(check, "reachable, SERVING, round trip %s", time.Since(began).Round(time.Microsecond))
	})
	if health.Status == Fail {
		return []Result{health}
	}
	clock := within(ctx, callTimeout, func(ctx context.Context) Result {
		return clockSkew(ctx, "clock vs "+addr, pb.NewAgentServiceClient(conn))
	})
	return []Result{health, clock}
}

// clockSkew compares this host's clock with the controller's, assuming the
// answer was taken halfway through the round trip.
func clockSkew(ctx context.Context, check string, c pb.AgentServiceClient) Result {
	sent := time.Now()
	resp, err := c.GetServerTime(ctx, &pb.GetServerTimeRequest{})
	received := time.Now()
	if err != nil {
		return Failf(check, "cannot read the controller's clock: %v (a controller older than this agent?)", err)
	}
	rtt := received.Sub(sent)
	mid := sent.Add(rtt / 2)
	skew := mid.Sub(resp.GetServerTime().AsTime())
	desc := fmt.Sprintf("this host is %s %s the controller (±%s)", abs(skew).Round(time.Millisecond), aheadBehind(skew), (rtt / 2).Round(time.Microsecond))
	if abs(skew) > MaxClockSkew+rtt/2 {
		return Failf(check, "%s, more than %s; synchronise the clocks (chrony or systemd-timesyncd)", desc, MaxClockSkew)
	}
	return Okf(check, "%s", desc)
}

func aheadBehind(d time.Duration) string {
	if d < 0 {
		return "behind"
	}
	return "ahead of"
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func days(d time.Duration) string {
	return fmt.Sprintf("%d days", int(math.Floor(d.Hours()/24)))
}

func bytesIEC(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

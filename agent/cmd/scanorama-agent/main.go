// Command scanorama-agent runs a Scanorama agent in one network segment: it
// dials out to the controller, leases scan jobs of its site inside its
// scope, runs nmap locally and streams the results back.
//
//	scanorama-agent --controller HOST:PORT[,HOST:PORT...] --site NAME [--name NAME] [--scope CIDR,...]
//	scanorama-agent --controller HOST:PORT --enroll-token TOKEN --data-dir DIR [--name NAME] [--scope CIDR,...]
//	scanorama-agent doctor [the same flags]   check this host; one line per check, exit 1 if any failed
//
// Every flag has an environment twin: --controller is SCANORAMA_CONTROLLER, and so on.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/agent/doctor"
	"github.com/scanorama/scanorama/agent/enroll"
	"github.com/scanorama/scanorama/agent/metrics"
	"github.com/scanorama/scanorama/agent/worker"
)

var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	// doctor takes exactly the agent's flags, checks this host with them and
	// exits; it never enrolls (an --enroll-token stays unused).
	doctorMode := len(args) > 0 && args[0] == "doctor"
	cmdName := "scanorama-agent"
	if doctorMode {
		args, cmdName = args[1:], "scanorama-agent doctor"
	}
	fs := flag.NewFlagSet(cmdName, flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	controllers := fs.String("controller", env("SCANORAMA_CONTROLLER", ""), "controller address host:port; several separated by commas (env SCANORAMA_CONTROLLER)")
	site := fs.String("site", env("SCANORAMA_SITE", ""), "site (network segment) this agent serves; an enrolled agent's comes from its certificate (env SCANORAMA_SITE)")
	dataDir := fs.String("data-dir", env("SCANORAMA_DATA_DIR", ".scanorama-agent"), "directory of the agent's identity (key, certificate, CA; 0600) and, unless --spool-dir, its spool (env SCANORAMA_DATA_DIR)")
	enrollToken := fs.String("enroll-token", env("SCANORAMA_ENROLL_TOKEN", ""), "one-time token from 'scanorama-controller agent enroll'; used only while --data-dir holds no identity (env SCANORAMA_ENROLL_TOKEN)")
	name := fs.String("name", env("SCANORAMA_AGENT_NAME", host), "agent name, unique in its site (env SCANORAMA_AGENT_NAME)")
	scope := fs.String("scope", env("SCANORAMA_SCOPE", ""), "CIDRs this agent may scan, comma separated; jobs outside are refused (env SCANORAMA_SCOPE)")
	spoolDir := fs.String("spool-dir", env("SCANORAMA_SPOOL_DIR", ""), "directory for results not yet acknowledged; default --data-dir/spool (env SCANORAMA_SPOOL_DIR)")
	concurrency := fs.Int("concurrency", envInt("SCANORAMA_CONCURRENCY", 1), "jobs (nmap processes) to run at once, 1..64 (env SCANORAMA_CONCURRENCY)")
	nmapPath := fs.String("nmap", env("SCANORAMA_NMAP", "nmap"), "nmap binary (env SCANORAMA_NMAP)")
	logLevel := fs.String("log-level", env("SCANORAMA_LOG_LEVEL", "info"), "trace, debug, info, warn or error (env SCANORAMA_LOG_LEVEL)")
	logJSON := fs.Bool("log-json", envBool("SCANORAMA_LOG_JSON"), "log JSON lines (env SCANORAMA_LOG_JSON)")
	var tlsOpt worker.TLS
	fs.BoolVar(&tlsOpt.Enabled, "tls", envBool("SCANORAMA_TLS"), "speak TLS to the controller, verifying it against the system's roots or --tls-ca (implied by the other --tls flags) (env SCANORAMA_TLS)")
	fs.StringVar(&tlsOpt.CAFile, "tls-ca", env("SCANORAMA_TLS_CA", ""), "PEM CA bundle that signed the controller's certificate (env SCANORAMA_TLS_CA)")
	fs.StringVar(&tlsOpt.CertFile, "tls-cert", env("SCANORAMA_TLS_CERT", ""), "PEM client certificate, for a controller that requires one (env SCANORAMA_TLS_CERT)")
	fs.StringVar(&tlsOpt.KeyFile, "tls-key", env("SCANORAMA_TLS_KEY", ""), "PEM private key of --tls-cert (env SCANORAMA_TLS_KEY)")
	fs.StringVar(&tlsOpt.ServerName, "tls-server-name", env("SCANORAMA_TLS_SERVER_NAME", ""), "name to verify in the controller's certificate (default: the --controller host) (env SCANORAMA_TLS_SERVER_NAME)")
	metricsListen := fs.String("metrics-listen", env("SCANORAMA_METRICS_LISTEN", ""), "serve Prometheus metrics at /metrics on this host:port; empty: off (env SCANORAMA_METRICS_LISTEN)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	insecurePlain := fs.Bool("insecure", envBool("SCANORAMA_INSECURE"), "speak plaintext to a controller serving --insecure on loopback (tests, demos); otherwise TLS is required (env SCANORAMA_INSECURE)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Println(version)
		return 0
	}
	if *spoolDir == "" {
		*spoolDir = filepath.Join(*dataDir, "spool")
	}
	lvl := hclog.LevelFromString(*logLevel)
	if lvl == hclog.NoLevel {
		fmt.Fprintf(stderr, "scanorama-agent: --log-level: unknown level %q (trace, debug, info, warn, error)\n", *logLevel)
		return 2
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "scanorama", Level: lvl, JSONFormat: *logJSON, Output: os.Stderr})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// An enrolled agent (identity under --data-dir, or --enroll-token to get
	// one) takes its site from its certificate and speaks mTLS with the
	// controller CA; otherwise the --site/--tls flags apply as before.
	var ident *enroll.Credentials
	if *insecurePlain && *enrollToken != "" {
		fmt.Fprintln(stderr, "scanorama-agent: --enroll-token: enrollment needs TLS; drop --insecure")
		return 2
	}
	if tlsOpt.CertFile == "" && tlsOpt.KeyFile == "" && !*insecurePlain {
		token := *enrollToken
		if doctorMode {
			token = ""
		}
		var code int
		if ident, code = identity(ctx, fs, stderr, logger, *controllers, *dataDir, token, *name); code != 0 {
			return code
		}
	} else if *enrollToken != "" {
		fmt.Fprintln(stderr, "scanorama-agent: --enroll-token: not used with --tls-cert/--tls-key (an external PKI identity)")
		return 2
	}
	if ident != nil {
		certSite := ident.Identity().Site
		if *site != "" && *site != certSite {
			fmt.Fprintf(stderr, "scanorama-agent: --site: %q conflicts with this agent's enrolled site %q (from its certificate in --data-dir)\n", *site, certSite)
			return 2
		}
		*site = certSite
	}
	cfg, err := config(fs, *controllers, *site, *name, *scope, *spoolDir, *nmapPath)
	if err != nil {
		fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
		return 2
	}
	if tlsOpt.CAFile != "" || tlsOpt.CertFile != "" || tlsOpt.KeyFile != "" || tlsOpt.ServerName != "" {
		tlsOpt.Enabled = true
	}
	switch {
	case ident != nil:
		tlsOpt = worker.TLS{Config: ident.TLSConfig(tlsOpt.ServerName)}
		cfg.Dialer = ident.Dialer()
	case tlsOpt.Enabled && *insecurePlain:
		fmt.Fprintln(stderr, "scanorama-agent: --insecure: conflicts with --tls flags (plaintext or TLS, not both)")
		return 2
	case !tlsOpt.Enabled && !*insecurePlain:
		fmt.Fprintln(stderr, "scanorama-agent: no transport security: enroll with --enroll-token (or keep an enrolled identity in --data-dir), "+
			"give --tls (with --tls-ca, --tls-cert/--tls-key as the controller needs), "+
			"or --insecure to speak plaintext to a controller serving --insecure on loopback")
		return 2
	}
	cfg.TLS = tlsOpt
	if _, err := tlsOpt.Credentials(); err != nil {
		fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
		return 2
	}
	cfg.Logger = logger
	cfg.Version = version
	cfg.Concurrency = *concurrency
	if *concurrency < 1 || *concurrency > 64 {
		fmt.Fprintf(stderr, "scanorama-agent: --concurrency: %d is outside 1..64\n", *concurrency)
		return 2
	}
	if *metricsListen != "" {
		if _, _, err := net.SplitHostPort(*metricsListen); err != nil {
			fmt.Fprintf(stderr, "scanorama-agent: --metrics-listen: %q is not host:port\n", *metricsListen)
			return 2
		}
	}
	if doctorMode {
		if doctor.Report(os.Stdout, doctor.Agent(ctx, cfg)) {
			return 1
		}
		return 0
	}
	if *metricsListen != "" {
		cfg.Metrics = metrics.New(cfg.Site, cfg.SpoolDir)
		if _, err := metrics.Serve(ctx, *metricsListen, cfg.Metrics.Registry(), cfg.Logger.Named("metrics")); err != nil {
			fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
			return 1
		}
	}

	a, err := worker.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
		return 1
	}
	defer a.Close()
	if ident != nil {
		go ident.Renewing(ctx, a.Client())
	}
	if err := a.Run(ctx); err != nil && ctx.Err() == nil {
		cfg.Logger.Error("agent failed", "error", err)
		return 1
	}
	return 0
}

func config(fs *flag.FlagSet, controllers, site, name, scope, spoolDir, nmapPath string) (worker.Config, error) {
	if fs.NArg() > 0 {
		return worker.Config{}, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	cfg := worker.Config{Site: site, Name: name, SpoolDir: spoolDir, NmapPath: nmapPath}
	for _, c := range splitList(controllers) {
		if _, port, err := net.SplitHostPort(c); err != nil || port == "" {
			return cfg, fmt.Errorf("--controller: %q is not host:port", c)
		}
		cfg.Controllers = append(cfg.Controllers, c)
	}
	if len(cfg.Controllers) == 0 {
		return cfg, fmt.Errorf("--controller: required, e.g. --controller 127.0.0.1:7443")
	}
	if site == "" {
		return cfg, fmt.Errorf("--site: required, e.g. --site lab (or enroll with --enroll-token)")
	}
	for _, s := range splitList(scope) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, fmt.Errorf("--scope: %q is not a CIDR", s)
		}
		cfg.Scope = append(cfg.Scope, p.Masked())
	}
	return cfg, nil
}

// identity loads the agent's enrolled identity from dataDir, or enrolls
// with token when there is none. It returns nil (and 0) for an agent that
// is not enrolled and has no token, and a non-zero exit code on failure.
func identity(ctx context.Context, fs *flag.FlagSet, stderr io.Writer, log hclog.Logger, controllers, dataDir, token, name string) (*enroll.Credentials, int) {
	creds, err := enroll.Load(dataDir, log)
	switch {
	case errors.Is(err, enroll.ErrNotEnrolled) && token == "":
		return nil, 0
	case errors.Is(err, enroll.ErrNotEnrolled):
		if _, err := config(fs, controllers, "-", name, "", "-", "-"); err != nil {
			fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
			return nil, 2
		}
		host, _ := os.Hostname()
		creds, err = enroll.Enroll(ctx, enroll.Request{
			Controllers: splitList(controllers), Token: token, Name: name, Hostname: host, Version: version, Dir: dataDir,
		}, log.Named("enroll"))
		if err != nil {
			fmt.Fprintf(stderr, "scanorama-agent: %v\n", err)
			return nil, 1
		}
		return creds, 0
	case err != nil:
		fmt.Fprintf(stderr, "scanorama-agent: --data-dir: %v\n", err)
		return nil, 2
	}
	if token != "" {
		log.Info("already enrolled; --enroll-token is not needed any more and is ignored", "agent_id", creds.Identity().AgentID, "site", creds.Identity().Site)
	}
	return creds, 0
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

func env(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func envBool(key string) bool {
	switch strings.ToLower(os.Getenv(key)) {
	case "1", "true", "yes":
		return true
	}
	return false
}

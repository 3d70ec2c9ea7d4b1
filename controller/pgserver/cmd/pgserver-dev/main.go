// Command pgserver-dev starts and stops a pgserver-managed PostgreSQL for
// development and `make test`, so that every test binary shares one server
// instead of starting its own.
//
//	eval "$(go run ./controller/pgserver/cmd/pgserver-dev start -data-dir .scanorama-test -export)"
//	go test ./...
//	go run ./controller/pgserver/cmd/pgserver-dev stop -data-dir .scanorama-test
//
// start prints SCANORAMA_TEST_DATABASE_URL=<superuser URL> on stdout (with
// -export: a quoted `export` line for eval) and leaves the server running.
// Running start again restarts the server with the same URL. Logs go to
// stderr. By default the server runs with fsync off (fast, for throwaway test
// data); -durable keeps the production settings.
//
// stop shuts the server down; -remove also deletes the data directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scanorama/scanorama/controller/pgserver"
)

const (
	defaultDataDir = ".scanorama-test"
	envName        = "SCANORAMA_TEST_DATABASE_URL"
	timeout        = 5 * time.Minute
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "pgserver-dev:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  pgserver-dev start [-data-dir DIR] [-port N] [-bin-dir DIR] [-user NAME] [-durable] [-export]
  pgserver-dev stop  [-data-dir DIR] [-remove]
`)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		usage(stderr)
		return flag.ErrHelp
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	logger := hclog.New(&hclog.LoggerOptions{Name: "pgserver-dev", Output: stderr, Level: hclog.Info})

	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := pgserver.Options{Logger: logger, StartMessage: "pgserver-dev: PostgreSQL is running"}
	fs.StringVar(&opts.DataDir, "data-dir", defaultDataDir, "cluster directory")
	fs.StringVar(&opts.BinDir, "bin-dir", "", "PostgreSQL bin dir (default: autodetect, see $"+pgserver.EnvBinDir+")")
	fs.StringVar(&opts.User, "user", pgserver.DefaultOSUser, "OS user PostgreSQL runs as when started by root")

	switch args[0] {
	case "start":
		fs.IntVar(&opts.Port, "port", 0, "port on 127.0.0.1 (0: remembered or free port)")
		durable := fs.Bool("durable", false, "keep fsync on (production settings)")
		export := fs.Bool("export", false, "print a shell `export` line for eval")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if !*durable {
			opts.Settings = pgserver.UnsafeTestSettings()
			// Every test binary of a `make test` run shares this cluster
			// (two run at a time, each starting controllers with pools of
			// their own), so it gets more connections than one binary's.
			opts.Settings["max_connections"] = "500"
		}
		srv, err := pgserver.Start(ctx, opts)
		if err != nil {
			return err
		}
		srv.Detach() // keep running after we exit
		url := srv.URL("postgres")
		if *export {
			_, err = fmt.Fprintf(stdout, "export %s='%s'\n", envName, url)
		} else {
			_, err = fmt.Fprintf(stdout, "%s=%s\n", envName, url)
		}
		return err
	case "stop":
		remove := fs.Bool("remove", false, "also delete the data directory")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *remove {
			return pgserver.DestroyDataDir(ctx, opts)
		}
		return pgserver.StopDataDir(ctx, opts)
	default:
		usage(stderr)
		return fmt.Errorf("unknown command %q: %w", args[0], flag.ErrHelp)
	}
}

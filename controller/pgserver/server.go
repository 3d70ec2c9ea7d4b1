package pgserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Server is a managed PostgreSQL cluster started by Start. Its URL stays
// valid across Restart and Stop/Start cycles on the same data directory.
// Methods are safe for concurrent use.
type Server struct {
	opts     Options
	log      hclog.Logger
	run      runAs
	bin      binaries
	lay      layout
	password string
	port     int

	mu   sync.Mutex
	lock *os.File  // flock on DataDir/.lock; nil once stopped
	dog  *watchdog // Ephemeral only
}

// Start brings up the cluster in o.DataDir, creating it on first use, and
// makes sure the database "scanorama" exists. A postmaster left running by a
// crashed previous owner is shut down first; a stale postmaster.pid from a
// killed server is recovered from. It returns ErrDataDirInUse (wrapped) when
// another live Server owns the data directory.
func Start(ctx context.Context, o Options) (*Server, error) {
	begin := time.Now()
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	log := o.Logger.Named("pgserver").With("data_dir", o.DataDir)
	run, err := resolveRunAs(o.User)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	lay, err := resolveLayout(o.DataDir, run, log)
	if err != nil {
		return nil, fmt.Errorf("pgserver: prepare %s: %w", o.DataDir, err)
	}
	lock, err := lockDir(lay.lockFile)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{opts: o, log: log, run: run, lay: lay, lock: lock}
	if err := s.boot(ctx); err != nil {
		s.abort()
		return nil, fmt.Errorf("pgserver: start managed PostgreSQL in %s: %w", o.DataDir, err)
	}
	fields := []any{
		"data_dir", lay.dataDir, "bin_dir", s.bin.dir, "version", s.bin.major,
		"port", s.port, "os_user", run.name, "log_file", lay.logFile,
		"pid", s.PID(), "elapsed", time.Since(begin).Round(time.Millisecond),
	}
	if lay.relocated {
		fields = append(fields, "cluster_dir", lay.clusterDir)
	}
	o.Logger.Named("pgserver").Info(o.StartMessage, fields...)
	return s, nil
}

// boot runs every step of Start after the lock is taken.
func (s *Server) boot(ctx context.Context) error {
	if s.opts.Ephemeral {
		// Armed before initdb so that even a crash mid-start cleans up.
		dirs := []string{s.lay.dataDir}
		if s.lay.relocated {
			dirs = append(dirs, s.lay.clusterDir)
		}
		dog, err := startWatchdog(s.lay.pgdata, dirs)
		if err != nil {
			return err
		}
		s.dog = dog
	}
	major, err := clusterMajor(s.lay.pgdata)
	if err != nil {
		return err
	}
	if s.bin, err = findBinaries(ctx, s.opts.BinDir, major); err != nil {
		return err
	}
	if major != "" && major != s.bin.major {
		return fmt.Errorf("cluster %s was created by PostgreSQL %s but %s holds PostgreSQL %s: install version %s and point %s at its bin dir, or pg_upgrade the cluster",
			s.lay.pgdata, major, s.bin.dir, s.bin.major, major, EnvBinDir)
	}
	if s.password, err = loadPassword(s.lay.passwordFile, major == ""); err != nil {
		return err
	}
	if major == "" {
		if err := s.initCluster(ctx); err != nil {
			return err
		}
	}
	if err := s.lay.prepareRuntime(s.run); err != nil {
		return err
	}
	if err := s.clearStale(ctx); err != nil {
		return err
	}
	port, auto, err := choosePort(s.opts.Port, s.lay.portFile)
	if err != nil {
		return err
	}
	if s.port, err = s.startPostmaster(ctx, port, auto); err != nil {
		return err
	}
	if err := savePort(s.lay.portFile, s.port); err != nil {
		return err
	}
	return s.EnsureDatabase(ctx, DefaultDatabase)
}

// abort undoes a failed Start: stop whatever got started and release the
// data directory.
func (s *Server) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.stopPostmaster(ctx); err != nil {
		s.log.Error("stop PostgreSQL after failed start", "error", err)
	}
	s.releaseLock()
	if s.dog != nil {
		if err := s.dog.release(); err != nil {
			s.log.Warn("ephemeral cleanup", "error", err)
		}
	}
}

// URL returns a connection URL for database as the superuser, e.g.
// postgres://scanorama:PASSWORD@127.0.0.1:PORT/scanorama?sslmode=disable.
func (s *Server) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(SuperUser, s.password),
		Host:     net.JoinHostPort(ListenAddress, strconv.Itoa(s.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Port is the TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// DataDir is the absolute data directory.
func (s *Server) DataDir() string { return s.lay.dataDir }

// PGData is the physical cluster directory (differs from DataDir/pgdata
// when the cluster was relocated; see the package documentation).
func (s *Server) PGData() string { return s.lay.pgdata }

// LogFile is the server log.
func (s *Server) LogFile() string { return s.lay.logFile }

// PID returns the postmaster's pid from postmaster.pid, or 0 when the server
// is not running (or the file is unreadable).
func (s *Server) PID() int { return postmasterPID(s.lay.pgdata) }

// Stop shuts the server down (fast mode: open transactions are rolled back,
// committed data is safe) and releases the data directory. It is idempotent,
// and succeeds when the postmaster already died.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lock == nil {
		return nil
	}
	stopped, err := s.stopPostmaster(ctx)
	if err != nil {
		return fmt.Errorf("pgserver: stop: %w", err)
	}
	s.releaseLock()
	if stopped {
		s.log.Info("managed PostgreSQL stopped")
	}
	return nil
}

// Restart stops the server (fast mode; tolerating a postmaster that was
// killed) and starts it again on the same port. It also starts a server that
// was stopped with Stop.
func (s *Server) Restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	begin := time.Now()
	if s.lock == nil {
		lock, err := lockDir(s.lay.lockFile)
		if err != nil {
			return fmt.Errorf("pgserver: restart: %w", err)
		}
		s.lock = lock
	}
	if _, err := s.stopPostmaster(ctx); err != nil {
		return fmt.Errorf("pgserver: restart: %w", err)
	}
	if err := s.lay.prepareRuntime(s.run); err != nil {
		return fmt.Errorf("pgserver: restart: %w", err)
	}
	if err := s.clearStale(ctx); err != nil {
		return fmt.Errorf("pgserver: restart: %w", err)
	}
	if _, err := s.startPostmaster(ctx, s.port, false); err != nil {
		return fmt.Errorf("pgserver: restart: %w", err)
	}
	s.log.Info("managed PostgreSQL restarted", "port", s.port, "pid", s.PID(), "elapsed", time.Since(begin).Round(time.Millisecond))
	return nil
}

// Destroy stops the server and deletes the data directory, including a
// relocated cluster directory. Meant for throwaway clusters.
func (s *Server) Destroy(ctx context.Context) error {
	if err := s.Stop(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if pid := postmasterPID(s.lay.pgdata); pid != 0 && waitGone(ctx, pid, 10*time.Second) == nil {
		if id := staleShmID(s.lay.pgdata); id >= 0 { // killed, never restarted
			errs = append(errs, removeShm(id))
		}
	}
	if s.dog != nil {
		errs = append(errs, s.dog.release())
		s.dog = nil
	}
	if s.lay.relocated {
		errs = append(errs, os.RemoveAll(s.lay.clusterDir))
	}
	errs = append(errs, os.RemoveAll(s.lay.dataDir))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pgserver: destroy %s: %w", s.lay.dataDir, err)
	}
	return nil
}

// EnsureDatabase creates database name when it does not exist.
func (s *Server) EnsureDatabase(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to managed PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // duplicate_database: created concurrently
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	s.log.Info("created database", "database", name)
	return nil
}

func (s *Server) releaseLock() {
	if s.lock != nil {
		_ = s.lock.Close()
		s.lock = nil
	}
}

// StopDataDir stops a server left running in o.DataDir by a process that
// has exited (for example `pgserver-dev start`). It is a no-op when the
// directory or its cluster does not exist or no server runs, and fails with
// ErrDataDirInUse while a live Server owns the directory.
func StopDataDir(ctx context.Context, o Options) error {
	s, err := attach(ctx, o)
	if err != nil || s == nil {
		return err
	}
	return s.Stop(ctx)
}

// DestroyDataDir is StopDataDir followed by deleting the data directory
// (and a relocated cluster directory).
func DestroyDataDir(ctx context.Context, o Options) error {
	s, err := attach(ctx, o)
	if err != nil || s == nil {
		return err
	}
	return s.Destroy(ctx)
}

// attach takes ownership of an existing data directory without starting the
// server. It returns nil, nil when the directory does not exist.
func attach(ctx context.Context, o Options) (*Server, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	if _, err := os.Stat(o.DataDir); isNotExist(err) {
		return nil, nil
	}
	log := o.Logger.Named("pgserver").With("data_dir", o.DataDir)
	run, err := resolveRunAs(o.User)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	lay := newLayout(o.DataDir, o.DataDir)
	if _, err := os.Lstat(lay.pgdata); err == nil {
		// Only resolve (and possibly follow a relocation link) when a cluster
		// exists: resolving a cluster-less dir could create a relocation.
		if lay, err = resolveLayout(o.DataDir, run, log); err != nil {
			return nil, fmt.Errorf("pgserver: inspect %s: %w", o.DataDir, err)
		}
	}
	lock, err := lockDir(lay.lockFile)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	s := &Server{opts: o, log: log, run: run, lay: lay, lock: lock}
	major, err := clusterMajor(lay.pgdata)
	if err == nil && major != "" {
		s.bin, err = findBinaries(ctx, o.BinDir, major)
	}
	if err != nil {
		s.releaseLock()
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	return s, nil
}

// Detach gives up ownership of the data directory and leaves the server
// running, for tools that start a server and exit (pgserver-dev). A later
// Start restarts it with the same URL; StopDataDir stops it.
func (s *Server) Detach() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLock()
}

package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgserver"
)

// ModulePath is the module the bench must run in.
const ModulePath = "github.com/scanorama/scanorama"

// Env is what every case shares: the repository, a scratch directory, the
// built binaries and one managed PostgreSQL cluster.
type Env struct {
	Root string // repository root (holds go.mod)
	Tmp  string // scratch directory, removed by Close unless Keep
	Keep bool
	Log  hclog.Logger

	mu       sync.Mutex
	bins     map[string]string
	pg       *pgserver.Server
	cleanups []func()
}

// FindRoot walks up from dir to the go.mod of ModulePath.
func FindRoot(dir string) (string, error) {
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil {
			if line, _, _ := strings.Cut(string(b), "\n"); strings.TrimSpace(line) == "module "+ModulePath {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod of %s above %s: run the bench from the repository (make bench)", ModulePath, dir)
		}
	}
}

// NewEnv creates the scratch directory.
func NewEnv(root string, keep bool, log hclog.Logger) (*Env, error) {
	tmp, err := os.MkdirTemp("", "scanorama-bench-")
	if err != nil {
		return nil, fmt.Errorf("create scratch directory: %w", err)
	}
	// PostgreSQL runs as another user when we are root; let it traverse.
	if err := os.Chmod(tmp, 0o711); err != nil {
		return nil, err
	}
	for _, d := range []string{"bin", "logs"} {
		if err := os.MkdirAll(filepath.Join(tmp, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Env{Root: root, Tmp: tmp, Keep: keep, Log: log, bins: map[string]string{}}, nil
}

// OnClose registers f to run (last registered first) when the env closes.
func (e *Env) OnClose(f func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cleanups = append(e.cleanups, f)
}

// Close runs the cleanups, stops PostgreSQL and removes the scratch directory.
func (e *Env) Close() {
	e.mu.Lock()
	cleanups := e.cleanups
	e.cleanups = nil
	pg := e.pg
	e.pg = nil
	e.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var err error
		if e.Keep {
			err = pg.Stop(ctx)
		} else {
			err = pg.Destroy(ctx)
		}
		if err != nil {
			e.Log.Warn("stopping PostgreSQL", "error", err)
		}
	}
	if e.Keep {
		e.Log.Info("kept scratch directory", "dir", e.Tmp)
		return
	}
	_ = os.RemoveAll(e.Tmp)
}

// Binary builds ./pkg (e.g. "controller/cmd/scanorama-controller") once into
// the scratch directory and returns its path.
func (e *Env) Binary(ctx context.Context, pkg string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.bins[pkg]; ok {
		return p, nil
	}
	out := filepath.Join(e.Tmp, "bin", filepath.Base(pkg))
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./"+pkg)
	cmd.Dir = e.Root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./%s: %w\n%s", pkg, err, b)
	}
	e.Log.Info("built", "binary", filepath.Base(pkg), "elapsed", time.Since(begin).Round(time.Millisecond))
	e.bins[pkg] = out
	return out, nil
}

// Postgres starts the shared cluster on first use.
func (e *Env) Postgres(ctx context.Context) (*pgserver.Server, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.pg != nil {
		return e.pg, nil
	}
	begin := time.Now()
	pg, err := pgserver.Start(ctx, pgserver.Options{
		DataDir: filepath.Join(e.Tmp, "pg"),
		// Durable defaults (fsync, synchronous_commit, full_page_writes on):
		// Ephemeral only skips fsync in initdb and removes the cluster if the
		// bench dies.
		Ephemeral:    !e.Keep,
		Logger:       e.Log.Named("pg"),
		StartMessage: "benchmark PostgreSQL started",
	})
	if err != nil {
		return nil, fmt.Errorf("%w\n(PostgreSQL 15+ server binaries are needed: run `make deps`, "+
			"or `apt-get install postgresql`, or point %s at the directory holding initdb, pg_ctl and postgres)", err, pgserver.EnvBinDir)
	}
	e.pg = pg
	e.Log.Info("PostgreSQL ready", "port", pg.Port(), "settings", "pgserver defaults (durable)", "elapsed", time.Since(begin).Round(time.Millisecond))
	return pg, nil
}

// NewDatabase creates an empty database named name (dropping a leftover),
// migrates it with controller/migrate and returns its URL.
func (e *Env) NewDatabase(ctx context.Context, name string) (string, error) {
	pg, err := e.Postgres(ctx)
	if err != nil {
		return "", err
	}
	if err := e.adminExec(ctx, pg, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)",
		"CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", err
	}
	url := pg.URL(name)
	if _, err := migrate.UpURL(ctx, url, hclog.NewNullLogger()); err != nil {
		return "", fmt.Errorf("migrate %s: %w", name, err)
	}
	return url, nil
}

// CloneDatabase creates dst as a copy of src; src must have no sessions.
func (e *Env) CloneDatabase(ctx context.Context, src, dst string) (string, error) {
	pg, err := e.Postgres(ctx)
	if err != nil {
		return "", err
	}
	if err := e.adminExec(ctx, pg, "DROP DATABASE IF EXISTS "+pgx.Identifier{dst}.Sanitize()+" WITH (FORCE)",
		"CREATE DATABASE "+pgx.Identifier{dst}.Sanitize()+" TEMPLATE "+pgx.Identifier{src}.Sanitize()); err != nil {
		return "", err
	}
	return pg.URL(dst), nil
}

// Checkpoint flushes dirty buffers so a timed phase does not pay for the
// previous one's writes.
func (e *Env) Checkpoint(ctx context.Context) error {
	pg, err := e.Postgres(ctx)
	if err != nil {
		return err
	}
	return e.adminExec(ctx, pg, "CHECKPOINT")
}

func (e *Env) adminExec(ctx context.Context, pg *pgserver.Server, stmts ...string) error {
	conn, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to benchmark PostgreSQL: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// procStatus returns the kB value of a /proc/PID/status field (VmHWM, VmRSS).
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		var kb int64
		if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", field, v, err)
		}
		return kb, nil
	}
	return 0, errors.New(field + " not found in /proc/" + fmt.Sprint(pid) + "/status")
}

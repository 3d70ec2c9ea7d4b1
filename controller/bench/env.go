package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	// Reused is set when Tmp is the kept scratch directory of an earlier
	// run (ReuseEnv): its cluster starts again with the databases it holds,
	// and the scale cases measure on the dataset found there instead of
	// generating it (half an hour at the designed size).
	Reused bool
	Log    hclog.Logger
	// ChildLogLevel is the --log-level of the controllers and agents started.
	ChildLogLevel string
	// PGStats loads pg_stat_statements into the cluster and makes the timed
	// phases log the statements that cost PostgreSQL the most.
	PGStats bool

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
	return &Env{Root: root, Tmp: tmp, Keep: keep, Log: log, ChildLogLevel: "info", bins: map[string]string{}}, nil
}

// ReuseEnv opens the scratch directory dir that an earlier --keep run left
// behind. It is kept again on Close.
func ReuseEnv(root, dir string, log hclog.Logger) (*Env, error) {
	if _, err := os.Stat(filepath.Join(dir, "pg")); err != nil {
		return nil, fmt.Errorf("%s is not a kept bench scratch directory: %w", dir, err)
	}
	for _, d := range []string{"bin", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	return &Env{Root: root, Tmp: dir, Keep: true, Reused: true, Log: log, ChildLogLevel: "info", bins: map[string]string{}}, nil
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
	var settings map[string]string
	if e.PGStats {
		settings = map[string]string{"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}
	}
	pg, err := pgserver.Start(ctx, pgserver.Options{
		Settings: settings,
		DataDir:  filepath.Join(e.Tmp, "pg"),
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
	if e.PGStats {
		if err := e.adminExec(ctx, pg, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
			return "", err
		}
	}
	return url, nil
}

// DropDatabase removes a database a case is done with (best effort; the
// cluster is thrown away at the end anyway).
func (e *Env) DropDatabase(name string) {
	if e.Keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := e.Postgres(ctx)
	if err != nil {
		return
	}
	if err := e.adminExec(ctx, pg, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		e.Log.Warn("drop database", "database", name, "error", err)
	}
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

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// procCPU returns the CPU seconds (user+system) a process used, plus those
// of its waited-for children when children is set.
func procCPU(pid int, children bool) (float64, int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name may hold spaces; fields start after its ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime..cstime are fields 14..17; ppid is 4.
	if len(f) < 15 {
		return 0, 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	var ticks, ppid int64
	fmt.Sscan(f[1], &ppid)
	n := 2
	if children {
		n = 4
	}
	for _, v := range f[11 : 11+n] {
		var t int64
		fmt.Sscan(v, &t)
		ticks += t
	}
	return float64(ticks) / clockTicks, int(ppid), nil
}

// treeCPU is the CPU seconds of pid, its reaped children and its live
// children (one level: PostgreSQL's postmaster and its backends).
func treeCPU(pid int) float64 {
	total, _, err := procCPU(pid, true)
	if err != nil {
		return 0
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var child int
		if _, err := fmt.Sscan(e.Name(), &child); err != nil || child == pid {
			continue
		}
		if sec, ppid, err := procCPU(child, false); err == nil && ppid == pid {
			total += sec
		}
	}
	return total
}

// selfCPU is the CPU seconds this process used.
func selfCPU() float64 {
	sec, _, _ := procCPU(os.Getpid(), false)
	return sec
}

// cpuMeter records CPU use of the controller, PostgreSQL and the bench
// itself (the simulated agents) over a timed phase.
type cpuMeter struct {
	ctrlPID, pgPID    int
	ctrl0, pg0, self0 float64
	begin             time.Time
}

func (e *Env) startCPU(ctrlPID int) *cpuMeter {
	m := &cpuMeter{ctrlPID: ctrlPID, begin: time.Now()}
	if e.pg != nil {
		m.pgPID = e.pg.PID()
	}
	if ctrlPID > 0 {
		m.ctrl0, _, _ = procCPU(ctrlPID, false)
	}
	if m.pgPID > 0 {
		m.pg0 = treeCPU(m.pgPID)
	}
	m.self0 = selfCPU()
	return m
}

// String summarizes CPU seconds used since start.
func (m *cpuMeter) String() string {
	wall := time.Since(m.begin).Seconds()
	var parts []string
	if m.ctrlPID > 0 {
		c, _, _ := procCPU(m.ctrlPID, false)
		parts = append(parts, fmt.Sprintf("controller %.1f", c-m.ctrl0))
	}
	if m.pgPID > 0 {
		parts = append(parts, fmt.Sprintf("PostgreSQL %.1f", treeCPU(m.pgPID)-m.pg0))
	}
	parts = append(parts, fmt.Sprintf("bench client %.1f", selfCPU()-m.self0))
	return fmt.Sprintf("CPU s: %s (wall %.1fs × %d CPUs)", strings.Join(parts, ", "), wall, runtime.NumCPU())
}

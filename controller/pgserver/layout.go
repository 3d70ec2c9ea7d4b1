package pgserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"
)

const (
	pgdataName   = "pgdata"
	logName      = "postgres.log"
	socketName   = "run"
	passwordName = "pgpassword"
	portName     = "port"
	lockName     = ".lock"
	// relocationRoot is created in the PostgreSQL user's home when DataDir
	// is unreachable for that user.
	relocationRoot = "scanorama"
	// originName records, inside a relocated cluster dir, which DataDir it
	// belongs to (for humans cleaning up).
	originName = "DATADIR"
	// maxLogSize triggers a one-step rotation of postgres.log at start.
	maxLogSize = 10 << 20
)

// layout says where each piece of a cluster lives on disk.
type layout struct {
	dataDir    string // user-facing directory (symlinks resolved)
	clusterDir string // holds pgdata, run/ and postgres.log; == dataDir unless relocated
	relocated  bool

	pgdata, socketDir, logFile       string // in clusterDir
	passwordFile, portFile, lockFile string // in dataDir
}

func newLayout(dataDir, clusterDir string) layout {
	return layout{
		dataDir:      dataDir,
		clusterDir:   clusterDir,
		relocated:    dataDir != clusterDir,
		pgdata:       filepath.Join(clusterDir, pgdataName),
		socketDir:    filepath.Join(clusterDir, socketName),
		logFile:      filepath.Join(clusterDir, logName),
		passwordFile: filepath.Join(dataDir, passwordName),
		portFile:     filepath.Join(dataDir, portName),
		lockFile:     filepath.Join(dataDir, lockName),
	}
}

// resolveLayout creates dataDir if needed and decides where the cluster
// lives: in dataDir, or relocated into the PostgreSQL user's home when that
// user cannot reach dataDir (see the package documentation).
func resolveLayout(dataDir string, r runAs, log hclog.Logger) (layout, error) {
	if err := createDataDir(dataDir, r); err != nil {
		return layout{}, err
	}
	dataDir, err := filepath.EvalSymlinks(dataDir)
	if err != nil {
		return layout{}, fmt.Errorf("resolve data dir: %w", err)
	}
	link := filepath.Join(dataDir, pgdataName)
	fi, err := os.Lstat(link)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(link)
		if err != nil {
			return layout{}, fmt.Errorf("read relocation link: %w", err)
		}
		if !filepath.IsAbs(target) {
			target = filepath.Join(dataDir, target)
		}
		lay := newLayout(dataDir, filepath.Dir(target))
		if _, err := os.Stat(lay.clusterDir); err != nil {
			return layout{}, fmt.Errorf("cluster dir %s (linked from %s) is unusable; remove the link to start over: %w", lay.clusterDir, link, err)
		}
		return lay, nil
	case err == nil && fi.IsDir():
		if blocker, err := r.searchable(dataDir); err != nil {
			return layout{}, err
		} else if blocker != "" {
			return layout{}, fmt.Errorf("cluster %s exists but OS user %q cannot reach it because %s is not searchable by that user; pass a --data-dir it can reach or move the data dir", link, r.name, blocker)
		}
		return newLayout(dataDir, dataDir), nil
	case err == nil:
		return layout{}, fmt.Errorf("%s exists and is neither a directory nor a link to one", link)
	case !errors.Is(err, fs.ErrNotExist):
		return layout{}, fmt.Errorf("inspect %s: %w", link, err)
	}
	blocker, err := r.searchable(dataDir)
	if err != nil {
		return layout{}, err
	}
	if blocker == "" {
		return newLayout(dataDir, dataDir), nil
	}
	return relocate(dataDir, blocker, r, log)
}

// createDataDir creates dataDir when missing. As root it gets 0711 so the
// PostgreSQL user can traverse to pgdata without listing the directory.
func createDataDir(dataDir string, r runAs) error {
	fi, err := os.Stat(dataDir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("data dir %s is not a directory", dataDir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("inspect data dir: %w", err)
	}
	mode := fs.FileMode(0o700)
	if r.drop {
		mode = 0o711
	}
	if err := os.MkdirAll(dataDir, mode); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Chmod(dataDir, mode); err != nil { // umask may have masked bits
		return fmt.Errorf("chmod data dir: %w", err)
	}
	return nil
}

// relocate places a new cluster in HOME/scanorama/<hash of dataDir> and
// links it from dataDir.
func relocate(dataDir, blocker string, r runAs, log hclog.Logger) (layout, error) {
	unreachable := fmt.Errorf("OS user %q cannot reach data dir %s (%s is not searchable by it)", r.name, dataDir, blocker)
	if r.home == "" {
		return layout{}, fmt.Errorf("%w and has no home directory to hold the cluster; pass a --data-dir it can reach (e.g. under /tmp or /var/lib)", unreachable)
	}
	if b, err := r.searchable(r.home); err != nil || b != "" {
		return layout{}, fmt.Errorf("%w and its home %s is not usable either; pass a --data-dir it can reach (e.g. under /tmp or /var/lib)", unreachable, r.home)
	}
	sum := sha256.Sum256([]byte(dataDir))
	root := filepath.Join(r.home, relocationRoot)
	clusterDir := filepath.Join(root, hex.EncodeToString(sum[:8]))
	for _, dir := range []string{root, clusterDir} {
		if err := r.mkdirOwned(dir); err != nil {
			return layout{}, fmt.Errorf("%w; relocating the cluster failed: %w", unreachable, err)
		}
	}
	lay := newLayout(dataDir, clusterDir)
	if _, err := os.Lstat(lay.pgdata); err == nil {
		// The data dir lost its link (it was deleted and recreated) but the
		// cluster is still there. Never delete data implicitly.
		return layout{}, fmt.Errorf("%w; an earlier relocated cluster for this data dir exists at %s but the link %s is gone: recreate the link (ln -s %s %s) to keep it, or delete %s to start over",
			unreachable, lay.pgdata, filepath.Join(dataDir, pgdataName), lay.pgdata, filepath.Join(dataDir, pgdataName), clusterDir)
	}
	origin := filepath.Join(clusterDir, originName)
	if err := os.WriteFile(origin, []byte(dataDir+"\n"), 0o644); err != nil {
		return layout{}, fmt.Errorf("record relocation origin: %w", err)
	}
	if err := os.Symlink(lay.pgdata, filepath.Join(dataDir, pgdataName)); err != nil {
		return layout{}, fmt.Errorf("link relocated cluster: %w", err)
	}
	if err := os.Symlink(lay.logFile, filepath.Join(dataDir, logName)); err != nil && !errors.Is(err, fs.ErrExist) {
		return layout{}, fmt.Errorf("link relocated log: %w", err)
	}
	log.Warn("data dir is not reachable by the PostgreSQL OS user; cluster relocated into its home and linked from the data dir",
		"os_user", r.name, "blocked_by", blocker, "cluster_dir", clusterDir)
	return lay, nil
}

// prepareRuntime creates the socket dir and the log file (rotating a large
// log) with the ownership PostgreSQL needs.
func (lay layout) prepareRuntime(r runAs) error {
	if err := r.mkdirOwned(lay.socketDir); err != nil {
		return err
	}
	if fileSize(lay.logFile) > maxLogSize {
		if err := os.Rename(lay.logFile, lay.logFile+".1"); err != nil {
			return fmt.Errorf("rotate server log: %w", err)
		}
	}
	f, err := os.OpenFile(lay.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	return r.own(lay.logFile)
}

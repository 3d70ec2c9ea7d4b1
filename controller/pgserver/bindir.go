package pgserver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// debianBinGlob matches the per-version binary directories of Debian and
// Ubuntu's postgresql-NN packages.
const debianBinGlob = "/usr/lib/postgresql/*/bin"

// binaries are the PostgreSQL tools pgserver runs.
type binaries struct {
	dir    string
	initdb string
	pgCtl  string
	major  string // "15"; "9.6" style for pre-10 versions
}

// findBinaries picks the bin directory. explicit wins; then $SCANORAMA_PG_BINDIR;
// then /usr/lib/postgresql/*/bin, preferring wantMajor (the version of an
// existing cluster) and otherwise the highest version; then $PATH.
func findBinaries(ctx context.Context, explicit, wantMajor string) (binaries, error) {
	var candidates []string
	switch {
	case explicit != "":
		candidates = []string{explicit}
	case os.Getenv(EnvBinDir) != "":
		candidates = []string{os.Getenv(EnvBinDir)}
	default:
		dirs, _ := filepath.Glob(debianBinGlob) // only fails on a malformed pattern
		candidates = orderBinDirs(dirs, wantMajor)
		if p, err := exec.LookPath("pg_ctl"); err == nil {
			candidates = append(candidates, filepath.Dir(p))
		}
	}
	var errs []error
	for _, dir := range candidates {
		b, err := probeBinDir(ctx, dir)
		if err == nil {
			return b, nil
		}
		errs = append(errs, err)
	}
	if len(candidates) == 0 {
		return binaries{}, fmt.Errorf("no PostgreSQL binaries found in %s or $PATH: install PostgreSQL (e.g. apt-get install postgresql) or set %s", debianBinGlob, EnvBinDir)
	}
	return binaries{}, fmt.Errorf("no usable PostgreSQL bin dir (set %s or Options.BinDir): %w", EnvBinDir, errors.Join(errs...))
}

// probeBinDir checks dir holds initdb, pg_ctl and postgres and reads the
// version from pg_ctl.
func probeBinDir(ctx context.Context, dir string) (binaries, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return binaries{}, fmt.Errorf("resolve bin dir %q: %w", dir, err)
	}
	b := binaries{dir: abs, initdb: filepath.Join(abs, "initdb"), pgCtl: filepath.Join(abs, "pg_ctl")}
	for _, p := range []string{b.initdb, b.pgCtl, filepath.Join(abs, "postgres")} {
		fi, err := os.Stat(p)
		if err != nil {
			return binaries{}, fmt.Errorf("bin dir %s: %w", abs, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return binaries{}, fmt.Errorf("bin dir %s: %s is not executable", abs, p)
		}
	}
	out, err := exec.CommandContext(ctx, b.pgCtl, "--version").Output()
	if err != nil {
		return binaries{}, fmt.Errorf("run %s --version: %w", b.pgCtl, err)
	}
	if b.major, err = parseMajor(string(out)); err != nil {
		return binaries{}, fmt.Errorf("bin dir %s: %w", abs, err)
	}
	return b, nil
}

// parseMajor extracts the major version from "pg_ctl (PostgreSQL) 15.10
// (Debian 15.10-1.pgdg120+1)". Releases before 10 use two components.
func parseMajor(versionOutput string) (string, error) {
	const marker = "(PostgreSQL) "
	i := strings.Index(versionOutput, marker)
	if i < 0 {
		return "", fmt.Errorf("unrecognised version output %q", strings.TrimSpace(versionOutput))
	}
	fields := strings.Fields(versionOutput[i+len(marker):])
	if len(fields) == 0 {
		return "", fmt.Errorf("unrecognised version output %q", strings.TrimSpace(versionOutput))
	}
	// Keep the numeric prefix: "15.10", "9.6.24", "17devel" -> "17".
	v := strings.TrimRight(leadingDigitsAndDots(fields[0]), ".")
	parts := strings.Split(v, ".")
	first, err := strconv.Atoi(parts[0])
	if err != nil {
		return "", fmt.Errorf("unrecognised version %q: %w", fields[0], err)
	}
	if first < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1], nil
	}
	return strconv.Itoa(first), nil
}

func leadingDigitsAndDots(s string) string {
	for i, r := range s {
		if (r < '0' || r > '9') && r != '.' {
			return s[:i]
		}
	}
	return s
}

// orderBinDirs sorts /usr/lib/postgresql/<ver>/bin directories: the one for
// wantMajor first, then by descending version.
func orderBinDirs(dirs []string, wantMajor string) []string {
	version := func(dir string) string { return filepath.Base(filepath.Dir(dir)) }
	out := slices.Clone(dirs)
	slices.SortStableFunc(out, func(a, b string) int {
		va, vb := version(a), version(b)
		if (va == wantMajor) != (vb == wantMajor) {
			if va == wantMajor {
				return -1
			}
			return 1
		}
		return compareVersions(vb, va)
	})
	return out
}

// compareVersions compares dotted numeric versions ("9.6" < "15").
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x - y
		}
	}
	return 0
}

// clusterMajor reads PG_VERSION of an existing cluster ("" when none).
func clusterMajor(pgdata string) (string, error) {
	b, err := os.ReadFile(filepath.Join(pgdata, "PG_VERSION"))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cluster version: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

package pgserver

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// ids are the numeric credentials of an OS user.
type ids struct {
	uid, gid uint32
	groups   []uint32
}

// runAs is the OS identity PostgreSQL runs under.
type runAs struct {
	name string
	home string
	ids
	// drop is true when this process is root and children must switch to
	// ids; files PostgreSQL writes must then be chowned to it.
	drop bool
}

// resolveRunAs returns the identity for PostgreSQL processes: the current
// user, or osUser when the current process is root.
func resolveRunAs(osUser string) (runAs, error) {
	if os.Geteuid() != 0 {
		r := runAs{name: strconv.Itoa(os.Geteuid()), home: os.Getenv("HOME")}
		r.uid, r.gid = uint32(os.Geteuid()), uint32(os.Getegid())
		if u, err := user.Current(); err == nil {
			r.name, r.home = u.Username, u.HomeDir
		}
		return r, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return runAs{}, fmt.Errorf("PostgreSQL refuses to run as root and OS user %q cannot be used (create it or pick another): %w", osUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("parse uid %q of user %q: %w", u.Uid, osUser, err)
	}
	if uid == 0 {
		return runAs{}, fmt.Errorf("OS user %q has uid 0; PostgreSQL refuses to run as root", osUser)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return runAs{}, fmt.Errorf("parse gid %q of user %q: %w", u.Gid, osUser, err)
	}
	r := runAs{name: u.Username, home: u.HomeDir, drop: true}
	r.uid, r.gid = uint32(uid), uint32(gid)
	gids, err := u.GroupIds()
	if err != nil {
		return runAs{}, fmt.Errorf("list groups of user %q: %w", osUser, err)
	}
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			r.groups = append(r.groups, uint32(n))
		}
	}
	return r, nil
}

// credential is what configureCmd needs to switch users, nil when no switch
// is needed.
func (r runAs) credential() *ids {
	if !r.drop {
		return nil
	}
	return &r.ids
}

// own chowns path (not following symlinks) to the PostgreSQL user when
// running as root.
func (r runAs) own(path string) error {
	if !r.drop {
		return nil
	}
	if err := os.Lchown(path, int(r.uid), int(r.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", path, r.name, err)
	}
	return nil
}

// mkdirOwned creates dir (if missing) with mode 0700, owned by the PostgreSQL
// user.
func (r runAs) mkdirOwned(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	return r.own(dir)
}

// env is the environment for PostgreSQL binaries: ours without PG*, locale
// and HOME variables (they would change which cluster or language the tools
// use), plus the C locale so messages we match on stay in English.
func (r runAs) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "PG") || strings.HasPrefix(name, "LC_") || name == "LANG" || name == "LANGUAGE" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C", "LANG=C")
	if r.home != "" {
		env = append(env, "HOME="+r.home)
	}
	return env
}

// searchable reports whether the PostgreSQL user may search (traverse) dir
// and each of its ancestors. It returns the first directory that blocks it.
// Without a user switch everything is considered reachable.
func (r runAs) searchable(dir string) (blocker string, err error) {
	if !r.drop {
		return "", nil
	}
	dir = filepath.Clean(dir)
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("stat %s: %w", p, err)
		}
		uid, gid, ok := fileOwner(fi)
		if ok && !permits(fi.Mode(), uid, gid, r.ids, 0o1) {
			blocker = p // keep walking up: report the outermost blocker
		}
		if p == filepath.Dir(p) {
			return blocker, nil
		}
	}
}

// permits applies the classic owner/group/other check for one permission
// bit (4=read, 2=write, 1=execute/search) as the kernel does: the owner
// class applies to the owner even if group or other would allow more.
func permits(mode fs.FileMode, ownerUID, ownerGID uint32, who ids, bit fs.FileMode) bool {
	perm := mode.Perm()
	switch {
	case who.uid == 0:
		return true
	case who.uid == ownerUID:
		return perm&(bit<<6) != 0
	case who.gid == ownerGID || containsGID(who.groups, ownerGID):
		return perm&(bit<<3) != 0
	default:
		return perm&bit != 0
	}
}

func containsGID(gids []uint32, g uint32) bool {
	for _, x := range gids {
		if x == g {
			return true
		}
	}
	return false
}

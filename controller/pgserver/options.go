package pgserver

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"

	"github.com/hashicorp/go-hclog"
)

const (
	// SuperUser is the name of the cluster's superuser role.
	SuperUser = "scanorama"
	// DefaultDatabase is created by Start when it is missing.
	DefaultDatabase = "scanorama"
	// DefaultOSUser is the OS user PostgreSQL runs as when the process is root.
	DefaultOSUser = "postgres"
	// DefaultDataDir is the data directory used when Options.DataDir is empty.
	DefaultDataDir = ".scanorama"
	// EnvBinDir names the environment variable consulted first when
	// Options.BinDir is empty.
	EnvBinDir = "SCANORAMA_PG_BINDIR"
	// DefaultStartMessage is logged once the server is up.
	DefaultStartMessage = "no --database-url given; running a managed PostgreSQL"
	// ListenAddress is the only TCP address the server listens on.
	ListenAddress = "127.0.0.1"
)

// ErrDataDirInUse is returned by Start when another live Server (in this or
// another process) owns the data directory.
var ErrDataDirInUse = errors.New("data directory is in use by another scanorama process")

// Options configures Start. The zero value is usable: it runs a cluster in
// ./.scanorama on a free port.
type Options struct {
	// DataDir holds the cluster (DataDir/pgdata, created on first start), its
	// log and its password. Default ".scanorama".
	DataDir string
	// BinDir holds initdb, pg_ctl and postgres. Empty means autodetect:
	// $SCANORAMA_PG_BINDIR, then /usr/lib/postgresql/*/bin (the version that
	// created an existing cluster, else the highest), then $PATH.
	BinDir string
	// Port to listen on at 127.0.0.1. 0 picks one: the port remembered in
	// DataDir/port if it is still free, else a free ephemeral port.
	Port int
	// User is the OS user PostgreSQL runs as when the process is root
	// (PostgreSQL refuses to run as root). Ignored otherwise. Default
	// "postgres".
	User string
	// Logger receives lifecycle logs. Default hclog.Default().
	Logger hclog.Logger
	// Settings override or extend the server configuration (see
	// DefaultSettings). listen_addresses, port and unix_socket_directories are
	// reserved and rejected.
	Settings map[string]string
	// Ephemeral marks a throwaway cluster (tests): initdb skips fsync, and a
	// watchdog shuts the server down and removes DataDir when this process
	// exits without calling Destroy, whatever the reason (panic, os.Exit,
	// SIGKILL).
	Ephemeral bool
	// StartMessage is logged at Info once the server is up. Default
	// DefaultStartMessage.
	StartMessage string
}

// DefaultSettings returns the server configuration pgserver uses unless
// Options.Settings overrides it. It is tuned for a small machine and is
// durable: fsync and synchronous_commit stay on so that committed scan results
// survive a crash.
func DefaultSettings() map[string]string {
	return map[string]string{
		"max_connections":         "200",
		"shared_buffers":          "128MB",
		"fsync":                   "on",
		"synchronous_commit":      "on",
		"full_page_writes":        "on",
		"password_encryption":     "scram-sha-256",
		"unix_socket_permissions": "0700",
		"log_line_prefix":         "%m [%p] %q%u@%d ",
	}
}

// UnsafeTestSettings returns settings that trade durability for speed
// (fsync, synchronous_commit and full_page_writes off). Only for throwaway
// test clusters: an OS crash can corrupt such a cluster. Killing the server
// process, even with SIGKILL, does not lose committed data.
func UnsafeTestSettings() map[string]string {
	return map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
	}
}

// reservedSettings are controlled by pgserver itself: the server must only
// listen on 127.0.0.1 and inside the cluster directory.
var reservedSettings = map[string]bool{
	"listen_addresses":        true,
	"port":                    true,
	"unix_socket_directories": true,
}

var settingName = regexp.MustCompile(`^[a-z_][a-z0-9_.]*$`)

// withDefaults validates o and fills in defaults. It does not touch the disk.
func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		o.DataDir = DefaultDataDir
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, fmt.Errorf("resolve data dir %q: %w", o.DataDir, err)
	}
	o.DataDir = abs
	if o.Port < 0 || o.Port > 65535 {
		return o, fmt.Errorf("invalid port %d: want 0 (auto) or 1-65535", o.Port)
	}
	if o.User == "" {
		o.User = DefaultOSUser
	}
	if o.Logger == nil {
		o.Logger = hclog.Default()
	}
	if o.StartMessage == "" {
		o.StartMessage = DefaultStartMessage
	}
	settings := DefaultSettings()
	for k, v := range o.Settings {
		if !settingName.MatchString(k) {
			return o, fmt.Errorf("invalid setting name %q", k)
		}
		if reservedSettings[k] {
			return o, fmt.Errorf("setting %q is managed by pgserver and cannot be overridden", k)
		}
		settings[k] = v
	}
	o.Settings = settings
	return o, nil
}

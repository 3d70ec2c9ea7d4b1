// Package pgserver owns the controller's managed PostgreSQL cluster: the
// zero-config default used when the controller is started without a database
// URL.
//
// Start creates a cluster under Options.DataDir on first use (initdb with
// UTF8, scram-sha-256 authentication, data checksums and a generated
// superuser password) and starts it with pg_ctl. The server only ever listens
// on 127.0.0.1 and on a unix socket inside the cluster directory.
//
// # Layout
//
// Everything lives in the data directory (default ./.scanorama):
//
//	DataDir/pgdata         the cluster (PGDATA), owned by the OS user PostgreSQL runs as
//	DataDir/run/           unix socket directory
//	DataDir/postgres.log   server log (rotated once to postgres.log.1 when > 10 MiB)
//	DataDir/pgpassword     superuser password, mode 0600
//	DataDir/port           last port used, reused on the next start when still free
//	DataDir/.lock          flock held while a Server owns the directory
//
// # Running as root
//
// PostgreSQL refuses to run as root. When the effective uid is 0 every
// PostgreSQL binary runs as Options.User (default "postgres") via
// SysProcAttr.Credential, and pgdata, the socket directory and the log file
// are chowned to that user. The data directory itself stays owned by root;
// when pgserver creates it, it gets mode 0711 so the PostgreSQL user can
// traverse it but not list it. The password file stays root-only.
//
// The PostgreSQL user must be able to search every ancestor of DataDir. When
// it cannot (for example a checkout under /root, which is 0700, or a
// t.TempDir()), pgserver never changes the ancestors' permissions. Instead it
// relocates the cluster into a directory that user owns,
// HOME/scanorama/<hash of DataDir> (for the Debian postgres user:
// /var/lib/postgresql/scanorama/...), and records the relocation with the
// symlinks DataDir/pgdata and DataDir/postgres.log. Later starts follow the
// symlink. Destroy removes the relocated directory as well. If the user's home
// is not usable either, Start fails with an error that says which directory
// blocks access and asks for a different --data-dir.
//
// # Crash recovery
//
// A flock on DataDir/.lock ensures one owner per data directory. If Start
// finds a postmaster still running for the directory (a previous owner
// crashed), it shuts that orphan down and starts a fresh one with the current
// configuration. A stale postmaster.pid left by a killed server is handled by
// PostgreSQL itself; Start waits for the killed postmaster to be reaped and
// retries while its old children still hold the shared memory segment.
//
// Options.Ephemeral ties a cluster to the current process: a small watchdog
// shell shuts the postmaster down and deletes the directories when the process
// exits for any reason, including panics and SIGKILL. Test harnesses use it.
//
// The companion command cmd/pgserver-dev starts and stops a cluster for
// `make test` and prints SCANORAMA_TEST_DATABASE_URL.
package pgserver

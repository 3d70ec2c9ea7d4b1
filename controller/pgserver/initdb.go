package pgserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
)

// initCluster runs initdb into a scratch directory and renames it into place
// once configured, so that an interrupted initdb never leaves a half-made
// pgdata behind.
func (s *Server) initCluster(ctx context.Context) error {
	tmp := s.lay.pgdata + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove leftover %s: %w", tmp, err)
	}
	// Created by us and handed over: as root, initdb cannot create entries
	// in the root-owned data dir.
	if err := s.run.mkdirOwned(tmp); err != nil {
		return err
	}
	pwFile := filepath.Join(s.lay.clusterDir, ".initdb-pwfile")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("write initdb password file: %w", err)
	}
	defer os.Remove(pwFile)
	if err := s.run.own(pwFile); err != nil {
		return err
	}
	args := []string{
		"-D", tmp,
		"-U", SuperUser,
		"--pwfile=" + pwFile,
		"--auth-local=scram-sha-256",
		"--auth-host=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C",
		"--data-checksums",
	}
	if compareVersions(s.bin.major, "14") >= 0 {
		args = append(args, "--no-instructions")
	}
	if s.opts.Ephemeral {
		args = append(args, "--no-sync")
	}
	s.log.Info("creating PostgreSQL cluster", "pgdata", s.lay.pgdata, "os_user", s.run.name)
	if err := s.run.run(ctx, s.lay.clusterDir, s.bin.initdb, args...); err != nil {
		_ = os.RemoveAll(tmp)
		return fmt.Errorf("initdb: %w", err)
	}
	if err := appendInclude(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.lay.pgdata); err != nil {
		return fmt.Errorf("move new cluster into place: %w", err)
	}
	return nil
}

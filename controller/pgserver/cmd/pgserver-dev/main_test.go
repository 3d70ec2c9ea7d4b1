package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStartStop(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL: skipped under -short")
	}
	parent, err := os.MkdirTemp("", "pgserver-dev-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o711); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "cluster")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	var out, logs bytes.Buffer
	if err := run(ctx, []string{"start", "-data-dir", dir}, &out, &logs); err != nil {
		t.Fatalf("start: %v\n%s", err, logs.String())
	}
	t.Cleanup(func() { _ = run(context.Background(), []string{"stop", "-data-dir", dir, "-remove"}, &out, &logs) })
	url, ok := strings.CutPrefix(strings.TrimSpace(out.String()), envName+"=")
	if !ok {
		t.Fatalf("start printed %q", out.String())
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SELECT current_setting('fsync')").Scan(&fsync); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	if fsync != "off" {
		t.Errorf("fsync = %s, want off for a dev test server", fsync)
	}

	// A second start (e.g. a rerun of make test) keeps the URL.
	out.Reset()
	if err := run(ctx, []string{"start", "-data-dir", dir, "-export"}, &out, &logs); err != nil {
		t.Fatalf("second start: %v\n%s", err, logs.String())
	}
	if want := "export " + envName + "='" + url + "'\n"; out.String() != want {
		t.Fatalf("second start printed %q, want %q", out.String(), want)
	}

	if err := run(ctx, []string{"stop", "-data-dir", dir}, &out, &logs); err != nil {
		t.Fatalf("stop: %v\n%s", err, logs.String())
	}
	if conn, err := pgx.Connect(ctx, url); err == nil {
		conn.Close(ctx)
		t.Fatal("server still accepts connections after stop")
	}
	if err := run(ctx, []string{"stop", "-data-dir", dir, "-remove"}, &out, &logs); err != nil {
		t.Fatalf("stop -remove: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("data dir survived stop -remove: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"bad flag", []string{"start", "-nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if !errors.Is(err, flag.ErrHelp) && (err == nil || !strings.Contains(err.Error(), "flag provided but not defined")) {
				t.Fatalf("err = %v", err)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote to stdout: %q", out.String())
			}
		})
	}
}

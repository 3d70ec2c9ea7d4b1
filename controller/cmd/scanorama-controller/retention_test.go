package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRetentionValue(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"0", 0, false},
		{"400d", 400 * 24 * time.Hour, false},
		{"720h", 720 * time.Hour, false},
		{" 30d ", 30 * 24 * time.Hour, false},
		{"10m", 0, true},
		{"-5d", 0, true},
		{"forever", 0, true},
		{"1.5d", 0, true},
		{"40000d", 0, true},
	} {
		var v retentionValue
		err := v.Set(tc.in)
		if (err != nil) != tc.bad || (!tc.bad && v.d != tc.want) {
			t.Errorf("Set(%q) = %v, %v; want %v, bad %v", tc.in, v.d, err, tc.want, tc.bad)
		}
	}
}

// A bad retention value stops serve before anything starts, naming the flag.
func TestServeRejectsBadRetentionFlags(t *testing.T) {
	t.Parallel()
	for _, flag := range []string{"--history-retention", "--job-retention", "--archive-retention", "--webhook-delivery-retention"} {
		var stderr bytes.Buffer
		code := run([]string{"serve", flag, "soon"}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), strings.TrimPrefix(flag, "-")) {
			t.Errorf("serve %s soon: exit %d, %q; want 2 and the flag named", flag, code, stderr.String())
		}
	}
}

// backup and restore say which flag is missing or wrong and touch nothing.
func TestBackupRestoreFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		flag string
	}{
		{[]string{"backup", "--database-url", "postgres://127.0.0.1:1/x"}, "--out"},
		{[]string{"backup", "--database-url", "postgres://127.0.0.1:1/x", "--out", dir + "/missing/x.dump"}, "--out"},
		{[]string{"backup", "--database-url", "postgres://127.0.0.1:1/x", "--out", dir}, "--out"},
		{[]string{"restore", "--database-url", "postgres://127.0.0.1:1/x"}, "--in"},
		{[]string{"restore", "--database-url", "postgres://127.0.0.1:1/x", "--in", dir + "/nope.dump"}, "--in"},
	} {
		var stderr bytes.Buffer
		code := run(tc.args, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.flag) {
			t.Errorf("%v: exit %d, %q; want 2 naming %s", tc.args, code, stderr.String(), tc.flag)
		}
	}
}

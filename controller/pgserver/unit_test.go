package pgserver

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPermits(t *testing.T) {
	t.Parallel()
	pg := ids{uid: 101, gid: 104, groups: []uint32{104, 110}}
	tests := []struct {
		name     string
		mode     fs.FileMode
		uid, gid uint32
		want     bool
	}{
		{"root 0755", 0o755, 0, 0, true},
		{"root 0711", 0o711, 0, 0, true},
		{"root 0700", 0o700, 0, 0, false},
		{"owner 0700", 0o700, 101, 0, true},
		{"owner class wins over other", 0o077, 101, 0, false},
		{"primary group 0750", 0o750, 0, 104, true},
		{"supplementary group 0710", 0o710, 0, 110, true},
		{"group class wins over other", 0o701, 0, 104, false},
		{"other group 0750", 0o750, 0, 5, false},
		{"sticky tmp", fs.ModeSticky | 0o777, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := permits(tt.mode, tt.uid, tt.gid, pg, 0o1); got != tt.want {
				t.Fatalf("permits(%v, %d, %d) = %v, want %v", tt.mode, tt.uid, tt.gid, got, tt.want)
			}
		})
	}
}

func TestParseMajor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"pg_ctl (PostgreSQL) 15.10 (Debian 15.10-1.pgdg120+1)\n", "15", false},
		{"pg_ctl (PostgreSQL) 16.4\n", "16", false},
		{"pg_ctl (PostgreSQL) 9.6.24\n", "9.6", false},
		{"pg_ctl (PostgreSQL) 18devel\n", "18", false},
		{"pg_ctl (PostgreSQL) 17beta2\n", "17", false},
		{"something else", "", true},
		{"pg_ctl (PostgreSQL) \n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseMajor(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("parseMajor(%q) = %q, %v; want %q, err %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestOrderBinDirs(t *testing.T) {
	t.Parallel()
	dirs := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/17/bin", "/usr/lib/postgresql/13/bin"}
	tests := []struct {
		want      string
		wantFirst string
	}{
		{"", "/usr/lib/postgresql/17/bin"},
		{"13", "/usr/lib/postgresql/13/bin"},
		{"9.6", "/usr/lib/postgresql/9.6/bin"},
		{"12", "/usr/lib/postgresql/17/bin"},
	}
	for _, tt := range tests {
		t.Run("want="+tt.want, func(t *testing.T) {
			t.Parallel()
			got := orderBinDirs(dirs, tt.want)
			if got[0] != tt.wantFirst {
				t.Fatalf("first = %s, want %s (all %v)", got[0], tt.wantFirst, got)
			}
			if len(got) != len(dirs) {
				t.Fatalf("lost entries: %v", got)
			}
		})
	}
}

func TestRenderConfig(t *testing.T) {
	t.Parallel()
	conf := renderConfig(5544, "/data/it's/run", map[string]string{"work_mem": "4MB", "application_name": "a'b"})
	for _, want := range []string{
		"listen_addresses = '127.0.0.1'\n",
		"port = 5544\n",
		"unix_socket_directories = '/data/it''s/run'\n",
		"application_name = 'a''b'\n",
		"work_mem = '4MB'\n",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Index(conf, "application_name") > strings.Index(conf, "work_mem") {
		t.Error("settings are not sorted")
	}
}

func TestSocketDirFits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dirLen int
		want   bool
	}{
		{20, true},
		{92, true},
		{93, false},
		{200, false},
	}
	for _, tt := range tests {
		dir := "/" + strings.Repeat("x", tt.dirLen-1)
		if got := socketDirFits(dir, 65535); got != tt.want {
			t.Errorf("len %d: got %v, want %v", tt.dirLen, got, tt.want)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	o, err := Options{Settings: map[string]string{"fsync": "off", "work_mem": "8MB"}}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(o.DataDir) || filepath.Base(o.DataDir) != DefaultDataDir {
		t.Errorf("DataDir = %q", o.DataDir)
	}
	if o.User != DefaultOSUser || o.Logger == nil || o.StartMessage != DefaultStartMessage {
		t.Errorf("defaults not applied: %+v", o)
	}
	if o.Settings["fsync"] != "off" || o.Settings["work_mem"] != "8MB" || o.Settings["max_connections"] != "200" {
		t.Errorf("settings not merged: %v", o.Settings)
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	var lines []string
	for i := range 50 {
		lines = append(lines, strings.Repeat("x", i))
	}
	got := strings.Split(tail(strings.Join(lines, "\n")+"\n"), "\n")
	if len(got) != tailLines || got[len(got)-1] != lines[49] {
		t.Fatalf("tail kept %d lines ending %q", len(got), got[len(got)-1])
	}
	if long := tail(strings.Repeat("y", 3*tailBytes)); len(long) > tailBytes {
		t.Fatalf("tail kept %d bytes", len(long))
	}
}

func TestTimeoutArg(t *testing.T) {
	t.Parallel()
	if got := timeoutArg(context.Background(), time.Minute); got != "60" {
		t.Errorf("no deadline: %s", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if got := timeoutArg(ctx, time.Minute); !slices.Contains([]string{"2", "3"}, got) {
		t.Errorf("2.5s deadline: %s", got)
	}
	expired, cancel2 := context.WithTimeout(context.Background(), -time.Second)
	defer cancel2()
	if got := timeoutArg(expired, time.Minute); got != "1" {
		t.Errorf("expired: %s", got)
	}
}

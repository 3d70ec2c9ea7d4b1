package listener

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// start binds args on loopback port 0 and serves until the test ends.
func start(t *testing.T, args ...string) net.Addr {
	t.Helper()
	ls, err := Listen(args)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ls.Close)
	go func() { _ = ls.Serve() }()
	return ls.Addrs()[0]
}

func exchange(t *testing.T, addr net.Addr, send string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
	}
	if strings.HasPrefix(send, "SSH-") || send == "" {
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	b, _ := io.ReadAll(c)
	return string(b)
}

func TestListenerServes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		args []string
		send string
		want []string
	}{
		{"ssh banner at once", []string{"-ssh", "127.0.0.1:0"}, "", []string{DefaultSSHBanner + "\r\n"}},
		{"ssh custom banner", []string{"-ssh", "127.0.0.1:0", "-ssh-banner", "SSH-2.0-Test"}, "", []string{"SSH-2.0-Test\r\n"}},
		{"http get", []string{"-http", "127.0.0.1:0"}, "GET / HTTP/1.0\r\n\r\n", []string{"HTTP/1.0 200 OK\r\n", "Server: nginx/1.22.1\r\n", body}},
		{"http server header", []string{"-http", "127.0.0.1:0", "-server", "scanorama-demo/1.0"}, "HEAD / HTTP/1.1\r\n\r\n", []string{"Server: scanorama-demo/1.0\r\n"}},
		{"http garbage gets go's 400", []string{"-http", "127.0.0.1:0"}, "HELLO\r\n", []string{"HTTP/1.1 400 Bad Request\r\n", "400 Bad Request"}},
		{"accept closes", []string{"-accept", "127.0.0.1:0"}, "x", []string{""}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := exchange(t, start(t, tc.args...), tc.send)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("reply %q does not contain %q", got, w)
				}
			}
			if tc.name == "accept closes" && got != "" {
				t.Fatalf("accept socket replied %q", got)
			}
		})
	}
}

func TestListenerRefusesBadInput(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args []string
		want string
	}{
		{nil, "nothing to listen on"},
		{[]string{"-http", "127.0.0.1:0", "extra"}, `unexpected argument "extra"`},
		{[]string{"-http", "not-an-address"}, "-http not-an-address"},
		{[]string{"-bogus", "x"}, "flag provided but not defined: -bogus"},
	}
	for _, tc := range cases {
		if _, err := Listen(tc.args); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Listen(%q) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestMainReportsEverySocketThenReady(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	go Main([]string{"-http", "127.0.0.1:0", "-accept", "127.0.0.1:0"}, pw, io.Discard)
	sc := bufio.NewScanner(pr)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if sc.Text() == "ready" {
			break
		}
	}
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "listening 127.0.0.1:") || !strings.HasPrefix(lines[1], "listening 127.0.0.1:") {
		t.Fatalf("stdout %q, want two listening lines then ready", lines)
	}
}

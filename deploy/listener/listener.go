// Package listener is the one TCP listener program the demo, the end-to-end
// tests and the benchmarks scan (three copies of it existed before). It
// binds exactly the addresses it is given, prints "listening ADDR" for each
// socket and then "ready", and serves until it is killed. It never dials
// anywhere; callers bind it to loopback or to addresses inside network
// namespaces they created.
//
//	scanorama-listener -http 127.0.0.1:0 -server scanorama-demo/1.0
//	scanorama-listener -ssh 10.99.0.10:2201 -http 10.99.0.10:8080
//	scanorama-listener -accept 0.0.0.0:22,0.0.0.0:80
//
// -ssh sockets send the banner line at once (what nmap -sV needs to call the
// port ssh and read its version); -http sockets answer one HTTP/1.x request
// by hand rather than through net/http, so the replies stay byte-for-byte
// stable across Go releases (nmap 7.93 recognizes the "400 Bad Request" form
// as a Go HTTP server); -accept sockets accept and close (an open port and
// nothing more, the cheapest thing to scan). Every flag takes a
// comma-separated list.
package listener

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultSSHBanner is what -ssh sockets announce unless -ssh-banner says otherwise.
const DefaultSSHBanner = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"

// Main parses args (without the program name), binds every socket, reports
// them on stdout and serves until the process ends. It returns an exit code
// when it cannot start.
func Main(args []string, stdout, stderr io.Writer) int {
	ls, err := Listen(args)
	if err != nil {
		fmt.Fprintf(stderr, "scanorama-listener: %v\n", err)
		return 2
	}
	for _, l := range ls.Addrs() {
		fmt.Fprintf(stdout, "listening %s\n", l)
	}
	fmt.Fprintln(stdout, "ready")
	err = ls.Serve()
	fmt.Fprintf(stderr, "scanorama-listener: %v\n", err)
	return 1
}

// Listeners are bound sockets with what each serves.
type Listeners struct {
	socks []sock
}

type sock struct {
	l     net.Listener
	serve func(net.Conn)
}

// Listen parses the flags and binds every socket; nothing is served yet.
func Listen(args []string) (*Listeners, error) {
	fs := flag.NewFlagSet("scanorama-listener", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	sshList := fs.String("ssh", "", "addr:port list announcing -ssh-banner")
	httpList := fs.String("http", "", "addr:port list answering HTTP/1.x")
	acceptList := fs.String("accept", "", "addr:port list that accept and close")
	banner := fs.String("ssh-banner", DefaultSSHBanner, "SSH identification line (without CRLF)")
	server := fs.String("server", "nginx/1.22.1", "HTTP Server header; a product nmap knows lets -sV match on its first HTTP probe (fast)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	ls := &Listeners{}
	for _, spec := range []struct {
		flag, list string
		serve      func(net.Conn)
	}{
		{"-ssh", *sshList, func(c net.Conn) { serveSSH(c, *banner) }},
		{"-http", *httpList, func(c net.Conn) { serveHTTP(c, *server) }},
		{"-accept", *acceptList, func(c net.Conn) { _ = c.Close() }},
	} {
		for _, addr := range split(spec.list) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				ls.Close()
				return nil, fmt.Errorf("%s %s: %w", spec.flag, addr, err)
			}
			ls.socks = append(ls.socks, sock{l, spec.serve})
		}
	}
	if len(ls.socks) == 0 {
		return nil, errors.New("nothing to listen on: pass -ssh, -http and/or -accept")
	}
	return ls, nil
}

// Addrs are the bound addresses, in flag order (port 0 resolved).
func (ls *Listeners) Addrs() []net.Addr {
	out := make([]net.Addr, len(ls.socks))
	for i, s := range ls.socks {
		out[i] = s.l.Addr()
	}
	return out
}

// Serve accepts on every socket until one fails (Close makes them fail).
func (ls *Listeners) Serve() error {
	errc := make(chan error, len(ls.socks))
	for _, s := range ls.socks {
		go func() {
			for {
				c, err := s.l.Accept()
				if err != nil {
					errc <- err
					return
				}
				go s.serve(c)
			}
		}()
	}
	return <-errc
}

// Close closes every socket.
func (ls *Listeners) Close() {
	for _, s := range ls.socks {
		_ = s.l.Close()
	}
}

func serveSSH(c net.Conn, banner string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s\r\n", banner)
	// Keep the connection open like a real server waiting for the client's
	// identification, so a probe reads the banner and nothing else.
	_, _ = bufio.NewReader(c).ReadString('\n')
}

const body = "Hello from scanorama-listener.\n"

func serveHTTP(c net.Conn, server string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	f := strings.Fields(line)
	if len(f) == 3 && (f[0] == "GET" || f[0] == "HEAD") && strings.HasPrefix(f[2], "HTTP/1.") {
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nServer: %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", server, len(body))
		if f[0] == "GET" {
			fmt.Fprint(c, body)
		}
		return
	}
	fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n400 Bad Request")
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Command nslistener is a test helper for the e2e package's network-namespace
// tests. It binds the exact addresses it is given (normally addresses inside
// a namespace the test created, started with `ip netns exec`), prints
// "ready" once every socket listens, and serves until it is killed:
//
//	nslistener -ssh 10.99.0.10:2201 -ssh-banner 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3' -http 10.99.0.10:8080
//
// -ssh sockets send the banner line at once (what nmap -sV needs to call the
// port ssh and read its version); -http sockets answer one HTTP/1.0 request.
// Both flags take comma-separated lists. It never dials anywhere.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	sshList := flag.String("ssh", "", "addr:port list answering with -ssh-banner")
	httpList := flag.String("http", "", "addr:port list answering HTTP")
	banner := flag.String("ssh-banner", "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3", "SSH identification line (without CRLF)")
	name := flag.String("server", "nginx/1.22.1", "HTTP Server header; a product nmap knows lets -sV match on its first HTTP probe (fast)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected argument %q", flag.Arg(0)))
	}
	var ls []net.Listener
	for _, spec := range []struct {
		list  string
		serve func(net.Conn)
	}{
		{*sshList, func(c net.Conn) { serveSSH(c, *banner) }},
		{*httpList, func(c net.Conn) { serveHTTP(c, *name) }},
	} {
		for _, addr := range split(spec.list) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				fail(err)
			}
			ls = append(ls, l)
			go accept(l, spec.serve)
		}
	}
	if len(ls) == 0 {
		fail(fmt.Errorf("nothing to listen on: pass -ssh and/or -http"))
	}
	for _, l := range ls {
		fmt.Fprintf(os.Stdout, "listening %s\n", l.Addr())
	}
	fmt.Fprintln(os.Stdout, "ready")
	select {}
}

func accept(l net.Listener, serve func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			fail(err)
		}
		go serve(c)
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

func serveHTTP(c net.Conn, server string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	const body = "hello from nslistener\n"
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

func fail(err error) {
	fmt.Fprintf(os.Stderr, "nslistener: %v\n", err)
	os.Exit(1)
}

// Command scanorama-demo-listener opens a small HTTP service on a free
// loopback port for `make demo` to scan, prints "port N" once it listens,
// and serves until it is killed. It only ever binds 127.0.0.1.
//
// It answers by hand rather than through net/http so that its replies are
// byte-for-byte stable across Go releases: nmap 7.93's service database
// recognizes this exact "400 Bad Request" form as a Go HTTP server, which
// lets the demo show service detection working.
package main

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"os"
	"strings"
	"time"
)

const body = "Hello from the Scanorama demo listener.\n"

func main() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("scanorama-demo-listener: %v", err)
	}
	fmt.Fprintf(os.Stdout, "port %d\n", lis.Addr().(*net.TCPAddr).Port)
	for {
		c, err := lis.Accept()
		if err != nil {
			log.Fatalf("scanorama-demo-listener: %v", err)
		}
		go serve(c)
	}
}

func serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	f := strings.Fields(line)
	if len(f) == 3 && (f[0] == "GET" || f[0] == "HEAD") && strings.HasPrefix(f[2], "HTTP/1.") {
		fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nServer: scanorama-demo/1.0\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", len(body))
		if f[0] == "GET" {
			fmt.Fprint(c, body)
		}
		return
	}
	fmt.Fprint(c, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n400 Bad Request")
}

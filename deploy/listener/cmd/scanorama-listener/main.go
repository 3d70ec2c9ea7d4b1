// Command scanorama-listener serves the TCP sockets it is given for the
// demo, tests and benchmarks to scan; see package listener.
package main

import (
	"os"

	"github.com/scanorama/scanorama/deploy/listener"
)

func main() {
	os.Exit(listener.Main(os.Args[1:], os.Stdout, os.Stderr))
}

package pgserver

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"strings"
)

// choosePort returns the port to start on and whether it was picked
// automatically (an automatic port may be re-picked when it turns out to be
// taken). requested > 0 is used as is; otherwise the remembered port wins
// when it is still free.
func choosePort(requested int, portFile string) (port int, auto bool, err error) {
	if requested > 0 {
		return requested, false, nil
	}
	if p, ok := rememberedPort(portFile); ok && portFree(p) {
		return p, true, nil
	}
	p, err := freePort()
	return p, true, err
}

// rememberedPort reads the port saved by the previous start.
func rememberedPort(portFile string) (int, bool) {
	b, err := os.ReadFile(portFile)
	if err != nil {
		return 0, false
	}
	p, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || p <= 0 || p > 65535 {
		return 0, false
	}
	return p, true
}

func savePort(portFile string, port int) error {
	if err := writeFileAtomic(portFile, []byte(strconv.Itoa(port)+"\n"), 0o644); err != nil {
		return fmt.Errorf("remember port: %w", err)
	}
	return nil
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ListenAddress, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// portFree reports whether port can be bound on 127.0.0.1 right now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort(ListenAddress, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

// isNotExist is a small helper shared by file readers.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Proc is a child process in its own process group, logging to a file.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	done    chan struct{}
	once    sync.Once
}

// StartProc starts bin with args; output goes to logs/<name>.log.
func (e *Env) StartProc(name, bin string, args ...string) (*Proc, error) {
	logPath := filepath.Join(e.Tmp, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	e.OnClose(p.Kill)
	return p, nil
}

// PID of the process.
func (p *Proc) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to 20 s, then kills the process group.
func (p *Proc) Stop() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Kill sends SIGKILL to the process group (its children included) and waits.
func (p *Proc) Kill() {
	p.once.Do(func() {
		if !p.Exited() {
			_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		}
		<-p.done
	})
}

// Tail returns the end of the process's log, for error messages.
func (p *Proc) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// HWMMB is the process's peak resident set size (VmHWM) in MiB.
func (p *Proc) HWMMB() (float64, error) {
	kb, err := procStatus(p.PID(), "VmHWM")
	return float64(kb) / 1024, err
}

// RSSMB is the process's current resident set size in MiB.
func (p *Proc) RSSMB() (float64, error) {
	kb, err := procStatus(p.PID(), "VmRSS")
	return float64(kb) / 1024, err
}

// Controller is a running scanorama-controller with gRPC clients.
type Controller struct {
	*Proc
	Addr  string
	URL   string
	Conn  *grpc.ClientConn
	Admin pb.AdminServiceClient
	Agent pb.AgentServiceClient
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Dial opens a client connection to a controller that accepts large messages.
func Dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.MaxCallSendMsgSize(16<<20)),
	)
}

// StartController builds (once) and starts the real controller binary
// against dbURL and waits until it serves.
func (e *Env) StartController(ctx context.Context, name, dbURL string, extra ...string) (*Controller, error) {
	bin, err := e.Binary(ctx, "controller/cmd/scanorama-controller")
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	// Loopback only: --insecure (plaintext, no authentication) measures the
	// controller's work, not TLS handshakes.
	args := append([]string{"serve", "--insecure", "--listen", addr, "--database-url", dbURL, "--log-level", e.ChildLogLevel}, extra...)
	p, err := e.StartProc(name, bin, args...)
	if err != nil {
		return nil, err
	}
	c := &Controller{Proc: p, Addr: addr, URL: dbURL}
	if err := c.waitHealthy(ctx); err != nil {
		p.Kill()
		return nil, err
	}
	conn, err := Dial(addr)
	if err != nil {
		p.Kill()
		return nil, err
	}
	c.Conn, c.Admin, c.Agent = conn, pb.NewAdminServiceClient(conn), pb.NewAgentServiceClient(conn)
	e.Log.Debug("controller serving", "name", name, "addr", addr, "pid", p.PID())
	return c, nil
}

func (c *Controller) waitHealthy(ctx context.Context) error {
	conn, err := grpc.NewClient(c.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		resp, err := hc.Check(cctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		select {
		case <-c.Done():
			return fmt.Errorf("controller exited during start-up:\n%s", c.Tail(30))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("controller not healthy after 60s:\n%s", c.Tail(30))
}

// Stop closes the client connection and stops the controller.
func (c *Controller) Stop() {
	if c.Conn != nil {
		c.Conn.Close()
	}
	c.Proc.Stop()
}

// CheckAlive fails when the controller has exited.
func (c *Controller) CheckAlive() error {
	if c.Exited() {
		return errors.New("controller exited unexpectedly:\n" + c.Tail(30))
	}
	return nil
}

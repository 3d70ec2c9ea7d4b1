package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scanorama/scanorama/controller/internal/harness"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Proc is a child process in its own process group, logging to a file
// (the shared harness.Proc; Stop keeps the bench's 20 s grace).
type Proc struct{ *harness.Proc }

// stopGrace is how long Stop waits after SIGTERM before killing.
const stopGrace = 20 * time.Second

// StartProc starts bin with args; output goes to logs/<name>.log. The
// process is killed when the env closes.
func (e *Env) StartProc(name, bin string, args ...string) (*Proc, error) {
	hp, err := harness.Start(name, exec.Command(bin, args...), harness.Options{LogPath: filepath.Join(e.Tmp, "logs", name+".log")})
	if err != nil {
		return nil, err
	}
	e.OnClose(hp.Kill)
	return &Proc{hp}, nil
}

// Stop sends SIGTERM and waits up to 20 s, then kills the process group.
func (p *Proc) Stop() { _ = p.Proc.Stop(stopGrace) }

// Controller is a running scanorama-controller with gRPC clients.
type Controller struct {
	*Proc
	Addr  string
	URL   string
	Conn  *grpc.ClientConn
	Admin pb.AdminServiceClient
	Agent pb.AgentServiceClient
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
	addr, err := harness.FreeAddr(netip.MustParseAddr("127.0.0.1"))
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
	err := harness.WaitServing(ctx, c.Proc.Proc, c.Addr, insecure.NewCredentials(), 60*time.Second, 100*time.Millisecond)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("%w:\n%s", err, c.Tail(30))
	}
	return err
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

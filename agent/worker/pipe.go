package worker

import (
	"context"
	"sync/atomic"

	"github.com/scanorama/scanorama/agent/spool"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Bounds on one spooled and streamed batch.
const (
	pipeQueue     = 1024
	batchMaxHosts = 256
	batchMaxPorts = 20_000
)

// hostPipe moves finished hosts from nmap's output loop to the spool and the
// wire without making nmap wait for an fsync: hosts queue while the previous
// batch is synced, and each sync covers everything queued since (a group
// commit). A host is still sent only after it is on disk.
type hostPipe struct {
	w    *spool.Writer
	live *liveStream
	in   chan *pb.HostResult
	done chan struct{}

	failed atomic.Bool
	err    error // set before failed; read after done
	sent   int64 // read after done
}

func newHostPipe(w *spool.Writer, live *liveStream) *hostPipe {
	p := &hostPipe{w: w, live: live, in: make(chan *pb.HostResult, pipeQueue), done: make(chan struct{})}
	go p.run()
	return p
}

func (p *hostPipe) run() {
	defer close(p.done)
	for h := range p.in {
		batch, ports := []*pb.HostResult{h}, len(h.GetPorts())
	drain:
		for len(batch) < batchMaxHosts && ports < batchMaxPorts {
			select {
			case next, ok := <-p.in:
				if !ok {
					break drain
				}
				batch, ports = append(batch, next), ports+len(next.GetPorts())
			default:
				break drain
			}
		}
		if p.failed.Load() {
			continue // keep draining so the producer never blocks
		}
		b := &pb.HostBatch{Hosts: batch}
		if err := p.w.AppendHosts(b); err != nil {
			p.err = err
			p.failed.Store(true)
			continue
		}
		p.sent += int64(len(batch))
		p.live.send(b)
	}
}

// put queues a host; it fails once spooling has failed, which stops the scan.
func (p *hostPipe) put(ctx context.Context, h *pb.HostResult) error {
	if p.failed.Load() {
		return errSpool
	}
	select {
	case p.in <- h:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close waits for every queued host to be spooled and sent.
func (p *hostPipe) close() (sent int64, err error) {
	close(p.in)
	<-p.done
	return p.sent, p.err
}

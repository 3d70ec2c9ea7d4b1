package server

import (
	"runtime"

	"google.golang.org/grpc"
)

// connOptions keep an idle agent connection cheap. Every agent holds one
// connection that is idle between a heartbeat (10 s) and its long-poll's
// end (25 s); with ten thousand of them, per-connection buffers dominate
// the controller's memory:
//   - the write buffer (32 KiB by default, per connection) is taken from a
//     shared pool for each flush instead of being held (gRPC's default since
//     SharedWriteBuffer was deprecated, so no option is needed for it);
//   - the read buffer shrinks from 32 KiB to 8 KiB: an agent's calls are a
//     few hundred bytes, and result batches bigger than the buffer are read
//     straight into the frame (bufio skips its buffer for large reads);
//   - calls run on a pool of stream workers instead of a new goroutine
//     each (a heartbeat is ~1,000 calls a second at 10,000 agents); calls
//     that block (long-polls) overflow to goroutines as before.
func connOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ReadBufferSize(8 << 10),
		grpc.NumStreamWorkers(uint32(max(runtime.NumCPU(), 4))),
	}
}

package spool

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestReplayBoundedMemory replays a file far larger than the read buffers
// and checks that the live heap does not grow with it.
//
// Not parallel: it measures the process-wide heap, so it must run while no
// other test allocates (parallel tests only start once sequential ones end).
func TestReplayBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and replays a 24 MB file")
	}
	const (
		records     = 20_000
		hostsPerRec = 2
		sampleEvery = 2_500
	)
	s := newSpool(t)
	j := job{id: testJob, token: 1}
	path := filepath.Join(s.Dir(), fileName(j.id, j.token))

	// Write the file directly (no fsync per record) to keep the test fast;
	// the Writer's framing is the same appendRecord.
	// Every record carries the same ~1 KiB batch.
	batch := hostBatch(1, hostsPerRec)
	for _, h := range batch.GetHosts() {
		h.OsName = strings.Repeat("Linux 5.X ", 50)
	}
	parts := []any{fileMagic, openMsg(j.id, j.token)}
	for range records {
		parts = append(parts, batch)
	}
	parts = append(parts, summary(records*hostsPerRec))
	writeRaw(t, path, parts...)

	pend, err := s.Pending()
	if err != nil || len(pend) != 1 || !pend[0].Complete {
		t.Fatalf("Pending = %+v, %v; want one complete entry", pend, err)
	}
	size := pend[0].Size

	base := liveHeap()
	var peak uint64
	n, hosts := 0, 0
	err = s.Replay(pend[0], func(r *pb.StreamResultsRequest) error {
		n++
		hosts += len(r.GetHosts().GetHosts())
		if n%sampleEvery == 0 {
			peak = max(peak, liveHeap())
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if want := records + 2; n != want {
		t.Fatalf("replayed %d records, want %d", n, want)
	}
	if hosts != records*hostsPerRec {
		t.Fatalf("replayed %d hosts, want %d", hosts, records*hostsPerRec)
	}
	growth := int64(peak) - int64(base)
	t.Logf("file %d bytes, live heap %d bytes before replay, peak growth %d bytes", size, base, growth)
	if limit := size / 8; growth > limit {
		t.Errorf("live heap grew by %d bytes replaying a %d-byte file; want < %d", growth, size, limit)
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

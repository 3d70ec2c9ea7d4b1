package spool

import (
	"fmt"
	"testing"
)

// BenchmarkAppendHosts measures one durable append (encode, write, fsync) of
// a typical batch. The fsync dominates and depends on the disk under
// b.TempDir(); the result is for information only.
func BenchmarkAppendHosts(b *testing.B) {
	for _, hosts := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			s := newSpool(b)
			w, err := s.Create(openMsg(testJob, 1))
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			batch := hostBatch(1, hosts)
			before := w.off
			if err := w.AppendHosts(batch); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(w.off - before)
			b.ReportAllocs()
			for b.Loop() {
				if err := w.AppendHosts(batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

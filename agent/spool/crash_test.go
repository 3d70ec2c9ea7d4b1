package spool

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// TestTornTail cuts the file at every byte offset inside its last record, as
// a crash in the middle of the last write would, and checks that replay
// yields exactly the records before it, without error.
func TestTornTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		job  job
	}{
		{"last record is summary", job{id: testJob, token: 1, batches: 3, finished: true}},
		{"last record is host batch", job{id: testJob, token: 1, batches: 3}},
		{"only record is open", job{id: testJob, token: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			reqs, ends := tc.job.write(t, s)
			path := pathOf(s, tc.job)
			full, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			last := len(ends) - 1
			lastStart := int64(0) // the file header goes with the open record
			if last > 0 {
				lastStart = ends[last-1]
			}
			for cut := lastStart; cut < ends[last]; cut++ {
				if err := os.WriteFile(path, full[:cut], filePerm); err != nil {
					t.Fatal(err)
				}
				got, err := replayAll(s, tc.job.entry())
				if err != nil {
					t.Fatalf("cut at %d: Replay: %v", cut, err)
				}
				checkReqs(t, got, reqs[:last])
				pend, err := s.Pending()
				if err != nil || len(pend) != 1 || pend[0].Complete || pend[0].Err != nil {
					t.Fatalf("cut at %d: Pending = %+v, %v; want one incomplete entry", cut, pend, err)
				}
			}
		})
	}
}

// TestDamagedTail covers tails a crash can leave other than a clean cut.
func TestDamagedTail(t *testing.T) {
	t.Parallel()
	j := job{id: testJob, token: 1, batches: 3}
	tests := []struct {
		name   string
		damage func(b []byte, lastStart int) []byte
	}{
		{"bad body checksum", func(b []byte, _ int) []byte {
			b[len(b)-1] ^= 0xff
			return b
		}},
		{"body zeroed", func(b []byte, lastStart int) []byte {
			clear(b[lastStart+recordHeaderSize:])
			return b
		}},
		{"header and body zeroed", func(b []byte, lastStart int) []byte {
			clear(b[lastStart:])
			return b
		}},
		{"header checksum zeroed", func(b []byte, lastStart int) []byte {
			clear(b[lastStart+9 : lastStart+recordHeaderSize])
			return b
		}},
		{"zeros appended", func(b []byte, _ int) []byte {
			return append(b, make([]byte, 100_000)...)
		}},
		{"zeros appended after partial record", func(b []byte, lastStart int) []byte {
			return append(b[:lastStart+5], make([]byte, 4000)...)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			reqs, ends := j.write(t, s)
			path := pathOf(s, j)
			full, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			lastStart := int(ends[len(ends)-2])
			want := reqs[:len(reqs)-1]
			if strings.HasPrefix(tc.name, "zeros appended") && !strings.Contains(tc.name, "partial") {
				want = reqs // nothing of the last record is damaged
			}
			if err := os.WriteFile(path, tc.damage(full, lastStart), filePerm); err != nil {
				t.Fatal(err)
			}
			got, err := replayAll(s, j.entry())
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			checkReqs(t, got, want)
		})
	}
}

// TestCorruption checks that damage which is not a torn tail is an error
// naming the file and the offset, after the intact records before it.
func TestCorruption(t *testing.T) {
	t.Parallel()
	j := job{id: testJob, token: 1, batches: 3, finished: true}
	// Records: open (ends[0]), batches 0..2 (ends[1..3]), summary (ends[4]).
	tests := []struct {
		name       string
		damage     func(t *testing.T, path string, b []byte, ends []int64) []byte
		wantOffset func(ends []int64) int64
		wantRecs   int
		wantReason string
	}{
		{
			name: "body byte flipped mid-file",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				b[ends[1]+recordHeaderSize+2] ^= 0x01
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "record checksum mismatch",
		},
		{
			name: "kind byte flipped mid-file",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				b[ends[2]+4] ^= 0x01
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[2] },
			wantRecs:   3,
			wantReason: "record header checksum mismatch",
		},
		{
			name: "length grown mid-file",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				b[ends[1]] += 7
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "record header checksum mismatch",
		},
		{
			name: "length pointing past end of file",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				b[ends[1]+3] = 0x7f
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "record header checksum mismatch",
		},
		{
			name: "middle record zeroed",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				clear(b[ends[1]:ends[2]])
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "record header checksum mismatch",
		},
		{
			name: "bad magic",
			damage: func(_ *testing.T, _ string, b []byte, _ []int64) []byte {
				b[0] = 'X'
				return b
			},
			wantOffset: func([]int64) int64 { return 0 },
			wantReason: "not a spool file",
		},
		{
			name: "short foreign file",
			damage: func(_ *testing.T, _ string, _ []byte, _ []int64) []byte {
				return []byte("hello")
			},
			wantOffset: func([]int64) int64 { return 0 },
			wantReason: "not a spool file",
		},
		{
			name: "unsupported version",
			damage: func(_ *testing.T, _ string, b []byte, _ []int64) []byte {
				b[magicSize] = 2
				return b
			},
			wantOffset: func([]int64) int64 { return 0 },
			wantReason: "unsupported format version 2",
		},
		{
			name: "garbage after summary",
			damage: func(_ *testing.T, _ string, b []byte, _ []int64) []byte {
				return append(b, 1, 2, 3)
			},
			wantOffset: func(ends []int64) int64 { return ends[4] },
			wantRecs:   5,
			wantReason: "data after summary",
		},
		{
			name: "record after summary",
			damage: func(t *testing.T, _ string, b []byte, _ []int64) []byte {
				b, err := appendRecord(b, kindHosts, hostBatch(9, 1))
				if err != nil {
					t.Fatal(err)
				}
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[4] },
			wantRecs:   5,
			wantReason: "hosts record after summary",
		},
		{
			name: "open record for another lease",
			damage: func(t *testing.T, _ string, b []byte, ends []int64) []byte {
				out, err := appendRecord([]byte(fileMagic), kindOpen, openMsg(testJob, 2))
				if err != nil {
					t.Fatal(err)
				}
				return append(out, b[ends[0]:]...)
			},
			wantOffset: func([]int64) int64 { return int64(fileHeaderSize) },
			wantReason: "open record names job",
		},
		{
			name: "first record not open",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				return append([]byte(fileMagic), b[ends[0]:]...)
			},
			wantOffset: func([]int64) int64 { return int64(fileHeaderSize) },
			wantReason: "first record is hosts, want open",
		},
		{
			name: "second open record",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				return append(b[:ends[0]], b[fileHeaderSize:]...)
			},
			wantOffset: func(ends []int64) int64 { return ends[0] },
			wantRecs:   1,
			wantReason: "second open record",
		},
		{
			name: "length over limit",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				h := b[ends[1]:ends[2]]
				binary.LittleEndian.PutUint32(h[0:4], MaxRecordSize+1)
				binary.LittleEndian.PutUint32(h[9:13], checksum(h[:9]))
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "exceeds limit",
		},
		{
			name: "unknown kind with valid checksums",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				h := b[ends[1]:ends[2]]
				h[4] = 9
				binary.LittleEndian.PutUint32(h[9:13], checksum(h[:9]))
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "unknown record kind 9",
		},
		{
			name: "undecodable payload with valid checksums",
			damage: func(_ *testing.T, _ string, b []byte, ends []int64) []byte {
				r := b[ends[1]:ends[2]]
				body := r[recordHeaderSize:]
				for i := range body {
					body[i] = 0xff
				}
				binary.LittleEndian.PutUint32(r[5:9], checksum(body))
				binary.LittleEndian.PutUint32(r[9:13], checksum(r[:9]))
				return b
			},
			wantOffset: func(ends []int64) int64 { return ends[1] },
			wantRecs:   2,
			wantReason: "decode hosts record",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSpool(t)
			_, ends := j.write(t, s)
			path := pathOf(s, j)
			full, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.damage(t, path, full, ends), filePerm); err != nil {
				t.Fatal(err)
			}
			got, err := replayAll(s, j.entry())
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Replay error = %v, want *CorruptError", err)
			}
			if ce.Path != path || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s", err, path)
			}
			if want := tc.wantOffset(ends); ce.Offset != want {
				t.Errorf("offset = %d, want %d (%v)", ce.Offset, want, err)
			}
			if !strings.Contains(ce.Reason, tc.wantReason) {
				t.Errorf("reason %q does not contain %q", ce.Reason, tc.wantReason)
			}
			if len(got) != tc.wantRecs {
				t.Errorf("delivered %d records before the error, want %d", len(got), tc.wantRecs)
			}
			pend, err := s.Pending()
			if err != nil || len(pend) != 1 {
				t.Fatalf("Pending = %+v, %v", pend, err)
			}
			if pend[0].Complete || !errors.Is(pend[0].Err, ErrCorrupt) {
				t.Errorf("Pending entry = %+v, want incomplete with ErrCorrupt", pend[0])
			}
		})
	}
}

func TestReplayCallbackError(t *testing.T) {
	t.Parallel()
	s := newSpool(t)
	j := job{id: testJob, token: 1, batches: 5, finished: true}
	j.write(t, s)
	stop := errors.New("stop")
	n := 0
	err := s.Replay(j.entry(), func(*pb.StreamResultsRequest) error {
		n++
		if n == 3 {
			return stop
		}
		return nil
	})
	if err != stop { //nolint:errorlint // must be returned unchanged
		t.Fatalf("Replay = %v, want the callback's error unchanged", err)
	}
	if n != 3 {
		t.Errorf("callback called %d times, want 3", n)
	}
}

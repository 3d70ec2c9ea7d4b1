package spool

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"google.golang.org/protobuf/proto"
)

// MaxRecordSize bounds the protobuf payload of one record. It is enforced when
// writing and when reading, so a damaged length field can never make the
// reader allocate more than this.
const MaxRecordSize = 16 << 20

const (
	// fileMagic is the file header: a 7-byte magic and a format version byte.
	fileMagic        = "SCNSPL\x00\x01"
	fileHeaderSize   = len(fileMagic)
	magicSize        = fileHeaderSize - 1
	recordHeaderSize = 13
	readBufferSize   = 64 << 10
)

// kind identifies the protobuf message held by a record.
type kind uint8

const (
	kindOpen    kind = 1 // ResultsOpen
	kindHosts   kind = 2 // HostBatch
	kindSummary kind = 3 // ScanSummary
)

func (k kind) String() string {
	switch k {
	case kindOpen:
		return "open"
	case kindHosts:
		return "hosts"
	case kindSummary:
		return "summary"
	default:
		return fmt.Sprintf("kind(%d)", uint8(k))
	}
}

func (k kind) valid() bool { return k >= kindOpen && k <= kindSummary }

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// appendRecord appends one framed record holding m to buf. On error buf is
// returned unchanged in length.
func appendRecord(buf []byte, k kind, m proto.Message) ([]byte, error) {
	n := proto.Size(m)
	if n > MaxRecordSize {
		return buf, fmt.Errorf("%w: %s record is %d bytes, limit %d", ErrTooLarge, k, n, MaxRecordSize)
	}
	start := len(buf)
	buf = append(buf, make([]byte, recordHeaderSize)...)
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(buf, m)
	if err != nil {
		return buf[:start], fmt.Errorf("marshal %s record: %w", k, err)
	}
	payload := out[start+recordHeaderSize:]
	if len(payload) > MaxRecordSize { // m changed since proto.Size
		return out[:start], fmt.Errorf("%w: %s record is %d bytes, limit %d", ErrTooLarge, k, len(payload), MaxRecordSize)
	}
	h := out[start : start+recordHeaderSize]
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	h[4] = byte(k)
	binary.LittleEndian.PutUint32(h[5:9], checksum(payload))
	binary.LittleEndian.PutUint32(h[9:13], checksum(h[:9]))
	return out, nil
}

// errTorn is returned by recordReader when the rest of the file is a torn
// tail: the damaged remains of the last write before a crash.
var errTorn = errors.New("torn tail")

// record is one intact record. body is valid until the next call to next.
type record struct {
	kind kind
	off  int64
	body []byte
}

// recordReader streams the records of one spool file with bounded memory. It
// reads at most the size the file had when the reader was created.
type recordReader struct {
	path string
	r    *bufio.Reader
	size int64
	off  int64 // offset of the next unread byte
	body []byte
}

func newRecordReader(path string, f *os.File) (*recordReader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("spool: stat %s: %w", path, err)
	}
	size := fi.Size()
	return &recordReader{
		path: path,
		r:    bufio.NewReaderSize(io.NewSectionReader(f, 0, size), readBufferSize),
		size: size,
	}, nil
}

func (r *recordReader) corrupt(off int64, format string, args ...any) error {
	return &CorruptError{Path: r.path, Offset: off, Reason: fmt.Sprintf(format, args...)}
}

func (r *recordReader) read(p []byte) error {
	if _, err := io.ReadFull(r.r, p); err != nil {
		return fmt.Errorf("spool: read %s at offset %d: %w", r.path, r.off, err)
	}
	r.off += int64(len(p))
	return nil
}

// start reads and checks the file header. It returns errTorn if the file
// ends before a complete header was written.
func (r *recordReader) start() error {
	var h [fileHeaderSize]byte
	n := int(min(r.size, int64(fileHeaderSize)))
	if err := r.read(h[:n]); err != nil {
		return err
	}
	switch {
	case n < fileHeaderSize && (string(h[:n]) == fileMagic[:n] || allZero(h[:n])):
		return errTorn
	case n < fileHeaderSize:
		return r.corrupt(0, "not a spool file")
	case allZero(h[:]):
		return r.tornIfZero(0, "not a spool file")
	case string(h[:magicSize]) != fileMagic[:magicSize]:
		return r.corrupt(0, "not a spool file")
	case h[magicSize] != fileMagic[magicSize]:
		return r.corrupt(0, "unsupported format version %d", h[magicSize])
	}
	return nil
}

// next returns the next intact record. At the end of the file it returns
// io.EOF, at a torn tail errTorn, and for damage elsewhere a *CorruptError;
// rec.off is set in every case.
//
// A damaged record is a torn tail if it is the last one in the file: it is
// cut short, or it ends exactly at the end of the file, or nothing but zero
// bytes follows its header (the file grew before its data was written). In
// none of these cases can an intact record follow the damage.
func (r *recordReader) next() (rec record, err error) {
	rec.off = r.off
	rem := r.size - r.off
	switch {
	case rem == 0:
		return rec, io.EOF
	case rem < recordHeaderSize:
		return rec, errTorn
	}
	var h [recordHeaderSize]byte
	if err := r.read(h[:]); err != nil {
		return rec, err
	}
	n := binary.LittleEndian.Uint32(h[0:4])
	end := rec.off + recordHeaderSize + int64(n)
	if checksum(h[:9]) != binary.LittleEndian.Uint32(h[9:13]) {
		if n <= MaxRecordSize && end == r.size {
			return rec, errTorn
		}
		return rec, r.tornIfZero(rec.off, "record header checksum mismatch")
	}
	switch {
	case n > MaxRecordSize:
		return rec, r.corrupt(rec.off, "record length %d exceeds limit %d", n, MaxRecordSize)
	case end > r.size:
		return rec, errTorn
	}
	if cap(r.body) < int(n) {
		r.body = make([]byte, n)
	}
	rec.body = r.body[:n]
	if err := r.read(rec.body); err != nil {
		return rec, err
	}
	if checksum(rec.body) != binary.LittleEndian.Uint32(h[5:9]) {
		if end == r.size || allZero(rec.body) {
			return rec, r.tornIfZero(rec.off, "record checksum mismatch")
		}
		return rec, r.corrupt(rec.off, "record checksum mismatch")
	}
	rec.kind = kind(h[4])
	if !rec.kind.valid() {
		return rec, r.corrupt(rec.off, "unknown record kind %d", h[4])
	}
	return rec, nil
}

// tornIfZero returns errTorn if every remaining byte of the file is zero (or
// none remains): no intact record can follow, so the damage at off is a torn
// tail. Otherwise it returns a *CorruptError for off with reason.
func (r *recordReader) tornIfZero(off int64, reason string) error {
	for r.off < r.size {
		p, err := r.r.Peek(int(min(r.size-r.off, readBufferSize)))
		if err != nil {
			return fmt.Errorf("spool: read %s at offset %d: %w", r.path, r.off, err)
		}
		if !allZero(p) {
			return r.corrupt(off, "%s", reason)
		}
		n, _ := r.r.Discard(len(p)) // cannot fail: p is buffered
		r.off += int64(n)
	}
	return errTorn
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

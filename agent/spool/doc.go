// Package spool owns the agent's durable, private on-disk spool of scan
// results. A host result is appended to the spool, and fsynced, before it is
// sent to the controller, and the spool file is removed only after the
// controller has acknowledged the job's commit (or rejected it for good). A
// crash of the agent or the machine at any point therefore loses no result
// that nmap produced and the agent accepted.
//
// # Layout
//
// A spool is one directory, mode 0700, owned by the agent's user and locked
// against a second agent process while a [Spool] holds it open. Each job lease
// has one file, mode 0600, named "<job_id>-<lease_token>.spool". Other files
// in the directory are ignored.
//
// # File format
//
// A spool file is an 8-byte file header followed by records:
//
//	file header: "SCNSPL" 0x00 <version=1>
//	record:      length  uint32 LE   protobuf payload length, at most MaxRecordSize
//	             kind    uint8       1 = ResultsOpen, 2 = HostBatch, 3 = ScanSummary
//	             bodyCRC uint32 LE   CRC-32C (Castagnoli) of the payload
//	             hdrCRC  uint32 LE   CRC-32C of the 9 bytes above
//	             payload [length]byte
//
// The first record is the job's ResultsOpen, then zero or more HostBatch
// records, then at most one ScanSummary. The summary record is the completion
// marker: a file is complete exactly when it ends with an intact summary.
//
// # Crash recovery
//
// Every record is written with one write and fsynced before the append
// returns, so a crash can damage only the last record. When reading, a damaged
// last record is a torn tail: it marks the end of the file and is not an
// error. A record is taken to be the last one if it is cut short (short
// header or short body), if it ends exactly at the end of the file (a
// checksum mismatch at the tail), or if nothing but zero bytes follows its
// header (a file system that grew the file before writing its data). In none
// of these cases can an intact record follow the damage. Any other damage,
// and anything after a summary, is a [*CorruptError] naming the file and the
// offset of the damaged record. Spool files are never reopened for writing,
// so a torn tail is never followed by new records and needs no truncation.
package spool

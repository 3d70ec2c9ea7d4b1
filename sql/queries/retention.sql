-- name: ArchivePortScansBefore :one
SELECT archive_port_scans_before(@cutoff::timestamptz)::text[] AS moved;

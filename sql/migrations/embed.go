// Package migrations embeds Scanorama's versioned schema migrations
// (NNNN_name.sql, applied in order by controller/migrate).
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS

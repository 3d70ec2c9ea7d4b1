// Package functions embeds the canonical source of the PL/pgSQL functions
// that migrations define and redefine (see ingest_commit.sql): the file a
// developer edits, checked against the migrated database by a test.
package functions

import "embed"

// FS holds every canonical function file.
//
//go:embed *.sql
var FS embed.FS

// Package staging embeds the DDL of the per-session TEMP tables that result
// ingestion copies rows into before merging them in one transaction.
package staging

import _ "embed"

// DDL creates the staging tables if the session does not have them yet.
//
//go:embed ingest.sql
var DDL string

package planmode

import (
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestArgs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, sql string
		custom    bool
	}{
		{"marked", "-- name: ListHosts :many\nSELECT 1,\n -- scanorama:custom-plan (why)\n 2", true},
		{"unmarked", "-- name: GetHost :one\nSELECT 1", false},
	} {
		args := Args(tc.sql, []any{1, "x"})
		got := len(args) == 3 && args[0] == pgx.QueryExecModeExec
		if got != tc.custom || args[len(args)-1] != "x" {
			t.Errorf("%s: args %v, want exec mode first: %v", tc.name, args, tc.custom)
		}
	}
}

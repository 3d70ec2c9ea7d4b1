package pgtest

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Helper-process modes: the test binary re-executes itself to exercise
// process-level behaviour (panics, an external server).
const (
	helperEnv    = "PGTEST_TEST_HELPER"
	helperPanic  = "panic"    // no template; TestHelperPanics starts the cluster and panics
	helperNested = "external" // runs the ordinary tests against EnvDatabaseURL
	markerRows   = 3
	markerTable  = "tpl_marker"
	markerDDL    = "CREATE TABLE " + markerTable + " (id int PRIMARY KEY)"
)

// hookCalls counts template hook runs; the harness must run it once.
var hookCalls atomic.Int32

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != helperPanic {
		SetTemplate(markerTemplate)
	}
	Main(m)
}

// markerTemplate stands in for the migrations package.
func markerTemplate(ctx context.Context, url string) error {
	hookCalls.Add(1)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, markerDDL); err != nil {
		return fmt.Errorf("create marker: %w", err)
	}
	_, err = conn.Exec(ctx, "INSERT INTO "+markerTable+" SELECT generate_series(1, $1::int)", markerRows)
	if err != nil {
		return fmt.Errorf("fill marker: %w", err)
	}
	return nil
}

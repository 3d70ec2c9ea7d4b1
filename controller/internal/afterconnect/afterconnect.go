// Package afterconnect owns how several packages each prepare every new
// connection of one pool: each adds its step, run after the ones before.
package afterconnect

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Add runs step on every new connection of the pool, after whatever
// AfterConnect cfg already has; the first error refuses the connection.
func Add(cfg *pgxpool.Config, step func(context.Context, *pgx.Conn) error) {
	prev := cfg.AfterConnect
	cfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		if prev != nil {
			if err := prev(ctx, conn); err != nil {
				return err
			}
		}
		return step(ctx, conn)
	}
}

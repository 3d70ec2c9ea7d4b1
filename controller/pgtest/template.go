package pgtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// TemplateFunc prepares a database (typically: runs migrations) given a
// superuser URL to it. It must close its connections before returning.
type TemplateFunc func(ctx context.Context, url string) error

var hook struct {
	mu   sync.Mutex
	fn   TemplateFunc
	used bool
}

// SetTemplate registers fn to build a template database once per test
// binary; every NewDatabase then clones it. Call it before the first
// NewDatabase, typically from TestMain before Main:
//
//	func TestMain(m *testing.M) {
//		pgtest.SetTemplate(migrations.Up)
//		pgtest.Main(m)
//	}
//
// It panics when called after the template was already used.
func SetTemplate(fn TemplateFunc) {
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.used {
		panic("pgtest: SetTemplate called after the first NewDatabase; call it from TestMain")
	}
	hook.fn = fn
}

// templateHook returns the registered hook and freezes it.
func templateHook() TemplateFunc {
	hook.mu.Lock()
	defer hook.mu.Unlock()
	hook.used = true
	return hook.fn
}

// template returns the name of the template database to clone, building it
// on first use; "" when no hook is registered.
func (b *backend) template(ctx context.Context) (string, error) {
	b.tplOnce.Do(func() {
		fn := templateHook()
		if fn == nil {
			return
		}
		begin := time.Now()
		name := newName("tpl")
		if err := b.buildTemplate(ctx, name, fn); err != nil {
			b.tplErr = fmt.Errorf("pgtest: build template database: %w", err)
			if derr := b.dropDatabase(context.WithoutCancel(ctx), name); derr != nil {
				logger().Warn("drop failed template", "database", name, "error", derr)
			}
			return
		}
		b.tplName = name
		logger().Info("built template database", "database", name, "elapsed", time.Since(begin))
	})
	return b.tplName, b.tplErr
}

func (b *backend) buildTemplate(ctx context.Context, name string, fn TemplateFunc) error {
	if err := b.createDatabase(ctx, name, ""); err != nil {
		return err
	}
	if err := fn(ctx, b.databaseURL(name)); err != nil {
		return fmt.Errorf("template hook: %w", err)
	}
	// Nobody may connect to the template any more: CREATE DATABASE ...
	// TEMPLATE fails while the source has sessions.
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := b.admin.Exec(ctx, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("mark %s as template: %w", name, err)
	}
	if _, err := b.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return fmt.Errorf("disconnect leftover template sessions: %w", err)
	}
	return nil
}

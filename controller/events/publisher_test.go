package events

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"

	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Everything published reaches a listener, in order, in few statements;
// what is still queued when Run's context ends is sent before Done closes.
func TestPublisherDeliversInOrder(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	ctx := context.Background()
	listener, err := pgx.Connect(ctx, pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(ctx)
	if _, err := listener.Exec(ctx, "LISTEN "+ChannelEvents); err != nil {
		t.Fatal(err)
	}

	pub := NewPublisher(pool, 1000, hclog.NewNullLogger())
	const n = 600
	for i := range n / 2 { // queued before Run: the first sends are batches
		pub.Publish(fmt.Sprintf("event-%d", i))
	}
	runCtx, stop := context.WithCancel(ctx)
	go pub.Run(runCtx)
	for i := n / 2; i < n; i++ {
		pub.Publish(fmt.Sprintf("event-%d", i))
	}
	for i := range n {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		note, err := listener.WaitForNotification(wctx)
		cancel()
		if err != nil {
			t.Fatalf("notification %d: %v", i, err)
		}
		if want := fmt.Sprintf("event-%d", i); note.Payload != want || note.Channel != ChannelEvents {
			t.Fatalf("notification %d = %s %q, want %q", i, note.Channel, note.Payload, want)
		}
	}

	pub.Publish("last")
	stop()
	<-pub.Done()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if note, err := listener.WaitForNotification(wctx); err != nil || note.Payload != "last" {
		t.Fatalf("event queued at shutdown: %v, %v", note, err)
	}
	if d := pub.Dropped(); d != 0 {
		t.Fatalf("dropped %d events", d)
	}
}

// A full queue drops and counts instead of blocking the caller.
func TestPublisherDropsWhenFull(t *testing.T) {
	t.Parallel()
	pub := NewPublisher(pgtest.NewPool(t), 2, hclog.NewNullLogger())
	done := make(chan struct{})
	go func() {
		for i := range 5 {
			pub.Publish(fmt.Sprint(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Publish blocked on a full queue")
	}
	if d := pub.Dropped(); d != 3 {
		t.Fatalf("dropped %d, want 3", d)
	}
}

// Package webhooks owns webhook delivery. Each webhook follows the change
// feed (controller/changefeed) with a cursor kept in the database and turns
// what it reads into deliveries: rows of an outbox, each a batch of at most
// BatchSize changes with a fixed id and body, written in the same
// transaction that moves the cursor. A dispatcher then POSTs each webhook's
// deliveries in order, retrying with exponential backoff and jitter until
// the retry budget is spent (the delivery is then dead and holds the line
// until RetryWebhookDeliveries re-drives it). Nothing is kept in memory
// that a restart could lose, and a claim on the webhook's row, held by an
// open transaction, lets only one controller work on a webhook at a time.
package webhooks

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

// BatchSize bounds the changes of one delivery.
const BatchSize = 500

// readAhead is how many feed rows one build reads: enough for
// buildBatches deliveries when no row is filtered out.
const readAhead = buildBatches * BatchSize

// Options tune delivery.
type Options struct {
	// RetryBase is the first retry's delay; each retry doubles it, up to
	// RetryMax, and a random part of up to half is taken off.
	RetryBase, RetryMax time.Duration
	// MaxAttempts is the retry budget: a delivery that failed this many
	// times is dead.
	MaxAttempts int
	// Timeout bounds one POST.
	Timeout time.Duration
	// PollEvery bounds how long an idle dispatcher waits without a wake-up.
	PollEvery time.Duration
}

// DefaultOptions are the controller's defaults.
func DefaultOptions() Options {
	return Options{RetryBase: time.Second, RetryMax: 5 * time.Minute, MaxAttempts: 10, Timeout: 10 * time.Second, PollEvery: time.Second}
}

// Dispatcher builds and sends deliveries.
type Dispatcher struct {
	pool   *pgxpool.Pool
	q      *db.Queries
	wake   changefeed.Waker
	opts   Options
	client *http.Client
	log    hclog.Logger
}

// New returns a Dispatcher; wake may be nil (then it polls).
func New(pool *pgxpool.Pool, wake changefeed.Waker, opts Options, log hclog.Logger) *Dispatcher {
	return &Dispatcher{
		pool: pool, q: db.New(pool), wake: wake, opts: opts, log: log.Named("webhooks"),
		client: &http.Client{
			Transport: transport(),
			Timeout:   opts.Timeout,
			// A receiver that redirects is misconfigured; following would
			// send the signed body somewhere nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// writeBuffer holds a delivery's request whole: a full batch's body is
// about 130 KB (JSON) to 150 KB (Slack).
const writeBuffer = 256 << 10

// transport is http.DefaultTransport's setup with a write buffer that
// holds a whole delivery, so each POST is one write: with the default
// 4 KB buffer a body left in five (4 KB, then 32 KB copies), and on a busy
// machine the receiver woke for each part (measured in the 50,000-change
// burst: product median 0.323 → 0.299 s over 12 pairs). The buffer lives
// with each open connection, and the dispatcher keeps at most one busy per
// webhook plus net/http's idle ones (at most 100).
func transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.WriteBufferSize = writeBuffer
	return t
}

// Run dispatches until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) {
	var wake <-chan string
	if d.wake != nil {
		ch, unsubscribe := d.wake.SubscribeEvents(1)
		defer unsubscribe()
		wake = ch
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	// With no webhook at all, wake-ups (every job event) are not worth a
	// query each; the poll still notices a webhook created elsewhere.
	idle := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			if idle {
				continue
			}
		case <-timer.C:
		}
		claimed, busy, err := d.Cycle(ctx)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("webhook dispatch failed; retrying", "error", err)
		}
		idle = claimed == 0 && err == nil
		next := d.opts.PollEvery
		if busy {
			next = 0
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// claimLimit bounds the webhooks one controller works on per cycle (more
// than that are not expected; the rest would wait for a later cycle).
const claimLimit = 1000

// cycleBudget bounds one cycle's work on a webhook, so claims turn over.
const cycleBudget = 5 * time.Second

// Cycle claims the webhooks no other controller is working on and, for
// each, builds the deliveries the feed has for it and sends the due ones.
// It reports how many webhooks it claimed and whether there may be more to
// do right away.
func (d *Dispatcher) Cycle(ctx context.Context) (int, bool, error) {
	claim, err := d.pool.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("begin claim: %w", err)
	}
	defer func() { _ = claim.Rollback(context.WithoutCancel(ctx)) }()
	hooks, err := d.q.WithTx(claim).ClaimWebhooks(ctx, claimLimit)
	if err != nil {
		return 0, false, fmt.Errorf("claim webhooks: %w", err)
	}
	busy := false
	for _, w := range hooks {
		more, err := d.work(ctx, w)
		if err != nil {
			return len(hooks), busy, fmt.Errorf("webhook %s: %w", w.Name, err)
		}
		busy = busy || more
	}
	return len(hooks), busy, claim.Commit(ctx)
}

// work builds and sends for one claimed webhook until nothing is due or
// the budget is spent; true when the budget ran out first. Reading the
// feed, building and sending overlap: a reader goroutine reads the next
// feed page while a builder writes the deliveries of the one before (each
// build commits before the sender can read what it wrote) and this one
// POSTs the oldest due delivery, so a burst takes about the longest of the
// three, not their sum. Order is unchanged: pages are built in feed order,
// each build checks it starts where the last one ended, and the sender
// always takes the oldest undelivered delivery.
func (d *Dispatcher) work(ctx context.Context, w db.Webhook) (bool, error) {
	deadline := time.Now().Add(cycleBudget)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cursor, err := d.q.GetWebhookCursor(ctx, w.ID)
	if err != nil {
		return false, fmt.Errorf("read cursor: %w", err)
	}
	var (
		pages = make(chan page, 1)
		// spare: pages the builder is done with, for the reader to read
		// into again (a page is about 1 MB; fresh ones cost page faults and
		// collections).
		spare     = make(chan []changefeed.Row, 2)
		built     = make(chan struct{}, 1)
		done      = make(chan struct{})
		buildErr  error
		buildMore bool
	)
	h := newHeld()
	// The builder's, for every page of the turn.
	enc := encoder{spare: &h.spare}
	readCtx, stopReading := context.WithCancel(ctx)
	var reading sync.WaitGroup
	reading.Add(1)
	go func() {
		defer reading.Done()
		d.readFeed(readCtx, w, cursor, deadline, pages, spare)
	}()
	defer func() {
		stopReading()
		reading.Wait()
	}()
	go func() {
		defer close(done)
		for p := range pages {
			err := p.err
			if err == nil {
				err = h.waitRoom(ctx)
			}
			if err == nil {
				err = d.build(ctx, w, p, h, &enc)
			}
			// Nothing built refers to the page any more: bodies are
			// encoded, events dropped.
			select {
			case spare <- p.rows:
			default:
			}
			if err != nil {
				buildErr = err
				stopReading() // the sender still sends what was built
				return
			}
			select {
			case built <- struct{}{}:
			default:
			}
			buildMore = p.full
		}
	}()
	busy, err := d.sendAll(ctx, w, deadline, built, done, h)
	if err != nil {
		cancel()
	}
	<-done
	if err != nil {
		return false, err
	}
	if buildErr != nil {
		return false, buildErr
	}
	return busy || buildMore, nil
}

// page is one read of the feed for a webhook: the rows after after.
type page struct {
	after int64
	rows  []changefeed.Row
	// full: the read returned as many rows as it asked for; there may be
	// more.
	full bool
	err  error
}

// readFeed reads the feed after cursor page by page, one page ahead of the
// builder, until a page is not full or the deadline passes. Reading
// outside the build's transaction is safe: rows become visible in feed_seq
// order (changefeed), so a later read after the last row seen misses
// nothing, and the build moves the cursor only past rows it turned into
// deliveries.
func (d *Dispatcher) readFeed(ctx context.Context, w db.Webhook, after int64, deadline time.Time, out chan<- page, spare <-chan []changefeed.Row) {
	defer close(out)
	// The first page is one delivery's worth: the sender starts on it
	// while the next, full page is read.
	limit := int32(BatchSize)
	for {
		var buf []changefeed.Row
		select {
		case buf = <-spare:
		default:
		}
		var rows []changefeed.Row
		err := pgx.BeginTxFunc(ctx, d.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) (err error) {
			rows, err = changefeed.ReadPage(ctx, tx, w.SiteID.UUID, after, limit, w.TargetID.Valid, buf)
			return err
		})
		p := page{after: after, rows: rows, full: len(rows) == int(limit), err: err}
		if err != nil {
			p.err = fmt.Errorf("read change feed: %w", err)
		}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
		if !p.full || err != nil || !time.Now().Before(deadline) {
			return
		}
		after, limit = rows[len(rows)-1].HostHistory.FeedSeq, readAhead
	}
}

// sendAll sends due deliveries in order while the builder runs, waiting for
// its next build whenever nothing is due, until the builder has finished
// and nothing more is due (false) or the deadline passes (true). The
// delivered marks are written behind the POSTs (a marker goroutine), so
// the next window does not wait for them; sendAll returns only once every
// mark is written, while the claim on the webhook still holds.
func (d *Dispatcher) sendAll(ctx context.Context, w db.Webhook, deadline time.Time, built, done <-chan struct{}, h *held) (busy bool, err error) {
	// Once it returns it takes nothing more.
	defer h.setIdle(true)
	m := d.startMarker(context.WithoutCancel(ctx))
	defer func() {
		if merr := m.close(); merr != nil && err == nil {
			err = merr
		}
	}()
	finished := false
	var after int64 // the last delivery POSTed in this turn
	for time.Now().Before(deadline) {
		sent, err := d.sendNext(ctx, w, deadline, &after, m, h)
		if err != nil || sent {
			if err != nil {
				return false, err
			}
			continue
		}
		if finished {
			return false, nil
		}
		h.setIdle(true)
		select {
		case <-built:
		case <-done:
			// One more look: the last build may have written deliveries.
			finished = true
		}
		h.setIdle(false)
	}
	return true, nil
}

// marker writes delivered marks in the background, in the order the
// deliveries went out, several windows in one transaction when they queue
// up.
type marker struct {
	queue chan delivered
	done  chan error
}

func (d *Dispatcher) startMarker(ctx context.Context) *marker {
	m := &marker{queue: make(chan delivered, 64), done: make(chan error, 1)}
	go func() {
		var first error
		for ok := range m.queue {
			// Take whatever else is queued into the same transaction.
			for more := true; more; {
				select {
				case next, open := <-m.queue:
					if !open {
						more = false
						break
					}
					ok.ids, ok.statuses = append(ok.ids, next.ids...), append(ok.statuses, next.statuses...)
				default:
					more = false
				}
			}
			if err := d.markDelivered(ctx, ok); err != nil && first == nil {
				first = err
			}
		}
		m.done <- first
	}()
	return m
}

// add queues the marks of one window.
func (m *marker) add(ok delivered) {
	if len(ok.ids) > 0 {
		m.queue <- ok
	}
}

// close waits until every queued mark is written; the first error.
func (m *marker) close() error {
	close(m.queue)
	return <-m.done
}

// buildBatches bounds the deliveries one build transaction writes: one
// read of the feed, one INSERT and one durable commit for several
// deliveries (a burst costs statements and WAL flushes per build, not per
// change or per delivery).
const buildBatches = 8

// draft is one delivery a build is about to write, its body encoded.
type draft struct {
	id          uuid.UUID
	first, last int64
	count       int32
	body        []byte
}

// build turns one page of the feed into up to about buildBatches
// deliveries, moving the cursor past the page, in one transaction. The
// transaction commits durably before any of them is sent: a delivery id
// once POSTed is never made again with other contents.
func (d *Dispatcher) build(ctx context.Context, w db.Webhook, p page, h *held, enc *encoder) error {
	tx, err := d.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := d.q.WithTx(tx)
	cursor, err := q.GetWebhookCursor(ctx, w.ID)
	if err != nil {
		return fmt.Errorf("read cursor: %w", err)
	}
	if cursor != p.after {
		// Only the claim holder moves the cursor, and it builds pages in
		// order; anything else means the page is stale, so build nothing.
		return fmt.Errorf("cursor at %d, page read after %d", cursor, p.after)
	}
	c := cutter{w: w, enc: enc, from: cursor, last: cursor, batches: make([]draft, 0, buildBatches)}
	if w.DownAfterScans > 1 {
		// Held-back host_down changes whose scans are now in come first:
		// they fired before anything the feed has after the cursor.
		due, err := q.DuePendingDowns(ctx, db.DuePendingDownsParams{WebhookID: w.ID, DownAfterScans: w.DownAfterScans})
		if err != nil {
			return fmt.Errorf("read held-back host_down changes: %w", err)
		}
		for _, r := range due {
			row := changefeed.Row(r)
			if err := c.add(&row); err != nil {
				return err
			}
			if _, err := q.DeletePendingDown(ctx, db.DeletePendingDownParams{WebhookID: w.ID, HostID: r.HostHistory.HostID}); err != nil {
				return err
			}
		}
	}
	for i := range p.rows {
		r := &p.rows[i]
		c.last = r.HostHistory.FeedSeq
		keep, err := d.filter(ctx, q, w, r)
		if err != nil {
			return err
		}
		if keep {
			if err := c.add(r); err != nil {
				return err
			}
		}
	}
	if err := c.cut(); err != nil {
		return err
	}
	if c.last == cursor && len(c.batches) == 0 {
		return tx.Commit(ctx)
	}
	if c.last != cursor {
		if err := q.SetWebhookCursor(ctx, db.SetWebhookCursorParams{WebhookID: w.ID, FeedSeq: c.last}); err != nil {
			return err
		}
	}
	if err := d.insert(ctx, tx, w, c.batches); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	h.add(c.batches, func(body []byte) string { return Sign(w.Secret, body) })
	return nil
}

// cutter cuts a build's events into deliveries of at most BatchSize and
// encodes each as it is cut, so one buffer of events serves every delivery
// of the build. Each delivery covers the feed from the one before it up to
// its last event (the last one up to the last row read, filtered-out rows
// included).
type cutter struct {
	w          db.Webhook
	enc        *encoder
	from, last int64
	events     []Event
	batches    []draft
}

// add appends r's event, cutting a delivery when it makes BatchSize.
func (c *cutter) add(r *changefeed.Row) error {
	if c.events == nil {
		c.events = make([]Event, 0, BatchSize)
	}
	c.events = append(c.events, c.enc.event(r))
	if len(c.events) == BatchSize {
		return c.cut()
	}
	return nil
}

// cut makes a delivery of the events added since the last cut, if any.
func (c *cutter) cut() error {
	if len(c.events) == 0 {
		return nil
	}
	id := uuid.New()
	body, err := c.enc.body(id.String(), c.w.Name, c.w.Format, c.events)
	if err != nil {
		return err
	}
	c.batches = append(c.batches, draft{id: id, first: min(c.from+1, c.last), last: c.last, count: int32(len(c.events)), body: body})
	c.from, c.events = c.last, c.events[:0]
	return nil
}

// deliveryColumns are the columns a build writes; the rest take their
// defaults, seq in the order the rows are copied, which is feed order.
var deliveryColumns = []string{"id", "webhook_id", "first_feed_seq", "last_feed_seq", "event_count", "body"}

// insert copies batches, in order, into the outbox. COPY rather than an
// INSERT of arrays: a burst's bodies (about 12 MB for 50,000 changes) are
// then written to the connection once, not first gathered into array
// parameters (measured: the arrays' encoding was a quarter of the
// controller's CPU in a burst).
func (d *Dispatcher) insert(ctx context.Context, tx pgx.Tx, w db.Webhook, batches []draft) error {
	if len(batches) == 0 {
		return nil
	}
	rows := make([][]any, len(batches))
	for i, b := range batches {
		rows[i] = []any{b.id, w.ID, b.first, b.last, b.count, b.body}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"webhook_deliveries"}, deliveryColumns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("write deliveries: %w", err)
	}
	return nil
}

// filter applies the webhook's target, events and flap suppression to r.
func (d *Dispatcher) filter(ctx context.Context, q *db.Queries, w db.Webhook, r *changefeed.Row) (bool, error) {
	if w.TargetID.Valid && (!r.TargetID.Valid || r.TargetID.UUID != w.TargetID.UUID) {
		return false, nil
	}
	wants := func(ev string) bool { return len(w.Events) == 0 || slices.Contains(w.Events, ev) }
	h := r.HostHistory
	if w.DownAfterScans > 1 {
		switch ev := state.ChangeEvent(h.Event); {
		case ev == state.HostDown && wants(string(state.HostDown)):
			return false, q.AddPendingDown(ctx, db.AddPendingDownParams{
				WebhookID: w.ID, HostID: h.HostID, HistoryID: h.ID, FeedSeq: h.FeedSeq, Since: h.ChangedAt,
			})
		case ev == state.HostUp || ev == state.HostDiscovered:
			n, err := q.DeletePendingDown(ctx, db.DeletePendingDownParams{WebhookID: w.ID, HostID: h.HostID})
			if err != nil {
				return false, err
			}
			if n > 0 {
				// Back before its down alert went out: neither is sent.
				return false, nil
			}
		}
	}
	return wants(h.Event), nil
}

// sendWindow bounds the deliveries one read fetches for sending: one
// statement for the bodies and one for their delivered marks per window,
// rather than per delivery.
const sendWindow = 8

// sendNext POSTs the webhook's oldest undelivered deliveries after *after
// (those before it went out in this turn and are being marked by m), in
// order, while they are due and the deadline has not passed; true when it
// delivered all it read (there may be more right away).
func (d *Dispatcher) sendNext(ctx context.Context, w db.Webhook, deadline time.Time, after *int64, m *marker, h *held) (sent bool, err error) {
	rows, err := d.q.NextWebhookDeliveries(ctx, db.NextWebhookDeliveriesParams{
		WebhookID: w.ID, AfterSeq: *after, RowLimit: sendWindow, Held: h.ids(),
	})
	if err != nil {
		return false, fmt.Errorf("read next deliveries: %w", err)
	}
	var ok delivered
	// Also on the way out through shutdown: a POST that went out is recorded.
	defer func() { m.add(ok) }()
	for _, row := range rows {
		del := db.WebhookDelivery(row)
		var signature string
		if b, ok := h.take(del.ID); ok {
			del.Body, signature = b.body, b.signature
		}
		if state.DeliveryState(del.State) == state.DeliveryDead || del.NextAttemptAt.After(time.Now()) {
			return false, nil
		}
		if time.Now().After(deadline) {
			return true, nil
		}
		// The body's buffer is the spares' once the POST is done with it:
		// nothing below reads it.
		status, perr := d.post(ctx, w, del, signature, &h.spare)
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		if perr == nil {
			ok.ids, ok.statuses = append(ok.ids, del.ID), append(ok.statuses, int32(status))
			*after = del.Seq
			continue
		}
		// A failure ends this webhook's turn: later deliveries wait behind it.
		return false, d.markFailed(context.WithoutCancel(ctx), w, del, status, perr)
	}
	return len(rows) > 0, nil
}

// delivered is what a window delivered: ids and HTTP statuses.
type delivered struct {
	ids      []uuid.UUID
	statuses []int32
}

// markFailed records a failed attempt: a retry after the backoff, or dead
// once the retry budget is spent.
func (d *Dispatcher) markFailed(ctx context.Context, w db.Webhook, del db.WebhookDelivery, status int, err error) error {
	attempts := int(del.Attempts) + 1
	dead := attempts >= d.opts.MaxAttempts
	retry := d.backoff(attempts)
	d.log.Warn("webhook delivery failed", "webhook", w.Name, "delivery", del.ID, "attempt", attempts, "dead", dead,
		"retry_in", retry, "error", err)
	p := db.MarkWebhookFailedParams{ID: del.ID, Dead: dead, RetryAfterSeconds: retry.Seconds(), LastError: pgtype.Text{String: err.Error(), Valid: true}}
	if status != 0 {
		p.LastStatus = pgtype.Int4{Int32: int32(status), Valid: true}
	}
	return d.q.MarkWebhookFailed(ctx, p)
}

// backoff is the delay before attempt+1: RetryBase doubled per attempt,
// capped at RetryMax, less a random part of up to half (jitter, so many
// webhooks failing together do not retry together).
func (d *Dispatcher) backoff(attempt int) time.Duration {
	delay := d.opts.RetryBase
	for i := 1; i < attempt && delay < d.opts.RetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, d.opts.RetryMax)
	return delay - time.Duration(rand.Int64N(int64(delay)/2+1))
}

// post sends del, with its signature when the builder made it already.
// The transport hands del.Body's buffer to spare when it is done with it.
func (d *Dispatcher) post(ctx context.Context, w db.Webhook, del db.WebhookDelivery, signature string, spare *spareBuffers) (int, error) {
	if signature == "" {
		signature = Sign(w.Secret, del.Body)
	}
	body := lend(del.Body, spare)
	defer body.clientReturned()
	ctx = httptrace.WithClientTrace(ctx, body.trace())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.Url, bytes.NewReader(del.Body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scanorama-webhooks/1")
	req.Header.Set(HeaderDelivery, del.ID.String())
	req.Header.Set(HeaderSignature, signature)
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("receiver answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// markDelivered records deliveries as delivered without waiting for the WAL
// flush: should a crash lose the mark, a delivery goes out again with the
// same id and body, which receivers already deduplicate.
func (d *Dispatcher) markDelivered(ctx context.Context, ok delivered) error {
	if len(ok.ids) == 0 {
		return nil
	}
	return pgx.BeginFunc(ctx, d.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL synchronous_commit = off"); err != nil {
			return err
		}
		return d.q.WithTx(tx).MarkWebhookDeliveriesDelivered(ctx, db.MarkWebhookDeliveriesDeliveredParams{Ids: ok.ids, Statuses: ok.statuses})
	})
}

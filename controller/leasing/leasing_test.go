package leasing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/migrate"
	"github.com/scanorama/scanorama/controller/pgtest"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
)

func TestMain(m *testing.M) {
	pgtest.SetTemplate(migrate.Template)
	pgtest.Main(m)
}

// quietWaker never wakes anyone: these tests lease what is already queued.
type quietWaker struct{}

func (quietWaker) SubscribeJobs(string) (<-chan struct{}, func()) { return nil, func() {} }
func (quietWaker) WakeSite(string)                                {}
func (quietWaker) WakeOne(string)                                 {}

type discard struct{}

func (discard) Publish(string) {}

type leaseFixture struct {
	pool  *pgxpool.Pool
	l     *Leaser
	agent db.Agent
	job   uuid.UUID
}

// newLeaseFixture is a site with one agent and one pending job on
// 10.99.70.0/24 that may be tried maxAttempts times.
func newLeaseFixture(t *testing.T, maxAttempts int) *leaseFixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.NewPool(t)
	var site, profile, target, agent, job uuid.UUID
	steps := []struct {
		sql  string
		dst  *uuid.UUID
		args func() []any
	}{
		{`INSERT INTO sites (name, created_by) VALUES ('lab', 'test') RETURNING id`, &site, func() []any { return nil }},
		{`SELECT id FROM scan_profiles WHERE name = 'quick'`, &profile, func() []any { return nil }},
		{`INSERT INTO scan_targets (site_id, name, network, profile_id, enabled, created_by)
		  VALUES ($1, 'net', '10.99.70.0/24', $2, true, 'test') RETURNING id`, &target, func() []any { return []any{site, profile} }},
		{`INSERT INTO agents (site_id, name, scope, nmap_version, raw_sockets, version, hostname, state, last_seen)
		  VALUES ($1, 'a', '{10.99.0.0/16}', '7.93', false, 'test', 'host', 'active', now()) RETURNING id`, &agent, func() []any { return []any{site} }},
		{`INSERT INTO scan_jobs (target_id, site_id, profile_id, network, options, max_attempts)
		  VALUES ($1, $2, $3, '10.99.70.0/24', '{}', $4) RETURNING id`, &job, func() []any { return []any{target, site, profile, maxAttempts} }},
	}
	for _, s := range steps {
		if err := pool.QueryRow(ctx, s.sql, s.args()...).Scan(s.dst); err != nil {
			t.Fatalf("%s: %v", s.sql, err)
		}
	}
	a, err := db.New(pool).GetAgent(ctx, agent)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{TTL: time.Minute, MaxWait: time.Second}
	return &leaseFixture{pool: pool, l: New(pool, quietWaker{}, discard{}, cfg, hclog.NewNullLogger()), agent: a, job: job}
}

func (f *leaseFixture) acquire(t *testing.T) LeaseRef {
	t.Helper()
	j, err := f.l.Acquire(context.Background(), f.agent, 50*time.Millisecond)
	if err != nil || j == nil {
		t.Fatalf("acquire: %v, %v", j, err)
	}
	return LeaseRef{JobID: j.ID, WorkerID: f.agent.ID.String(), Token: j.LeaseToken}
}

func (f *leaseFixture) jobRow(t *testing.T) (status string, attempt int, token int64, progress int) {
	t.Helper()
	if err := f.pool.QueryRow(context.Background(),
		`SELECT status, attempt, lease_token, progress_percent FROM scan_jobs WHERE id = $1`, f.job).
		Scan(&status, &attempt, &token, &progress); err != nil {
		t.Fatal(err)
	}
	return
}

func (f *leaseFixture) exec(t *testing.T, sql string) {
	t.Helper()
	if _, err := f.pool.Exec(context.Background(), sql, f.job); err != nil {
		t.Fatal(err)
	}
}

func TestHeartbeatStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		before  string // SQL on the job ($1) after it was leased
		mutate  func(r LeaseRef) LeaseRef
		want    LeaseState
		renewed bool
	}{
		{name: "holder renews", want: LeaseActive, renewed: true},
		{name: "cancelled under this lease", before: `UPDATE scan_jobs SET status = 'cancelled', completed_at = now() WHERE id = $1`, want: LeaseCancelled},
		{name: "stale token", mutate: func(r LeaseRef) LeaseRef { r.Token--; return r }, want: LeaseLost},
		{name: "another worker", mutate: func(r LeaseRef) LeaseRef { r.WorkerID = uuid.NewString(); return r }, want: LeaseLost},
		{name: "cancelled, but the token is stale", before: `UPDATE scan_jobs SET status = 'cancelled', completed_at = now() WHERE id = $1`,
			mutate: func(r LeaseRef) LeaseRef { r.Token++; return r }, want: LeaseLost},
		{name: "leased again after expiry", before: `UPDATE scan_jobs SET lease_token = lease_token + 1, worker_id = 'other' WHERE id = $1`, want: LeaseLost},
		{name: "job completed", before: `UPDATE scan_jobs SET status = 'completed', completed_at = now() WHERE id = $1`, want: LeaseLost},
		{name: "job gone", before: `DELETE FROM scan_jobs WHERE id = $1`, want: LeaseLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newLeaseFixture(t, 3)
			ref := f.acquire(t)
			if tt.before != "" {
				f.exec(t, tt.before)
			}
			if tt.mutate != nil {
				ref = tt.mutate(ref)
			}
			res, err := f.l.Heartbeat(ctx, ref, 40)
			if err != nil {
				t.Fatal(err)
			}
			if res.State != tt.want {
				t.Fatalf("state %v, want %v", res.State, tt.want)
			}
			if tt.renewed {
				if until := time.Until(res.TimeoutAt); until < 50*time.Second {
					t.Errorf("timeout_at only %s ahead after a renewal with a one-minute TTL", until)
				}
				if status, _, _, progress := f.jobRow(t); status != "running" || progress != 40 {
					t.Errorf("job %s at %d%%, want running at 40%%", status, progress)
				}
				// Progress never goes back, and 100 is the commit's to set.
				for _, p := range []int{10, 100} {
					if _, err := f.l.Heartbeat(ctx, ref, p); err != nil {
						t.Fatal(err)
					}
				}
				if _, _, _, progress := f.jobRow(t); progress != 99 {
					t.Errorf("progress %d after 10 then 100, want 99", progress)
				}
			}
		})
	}
}

func TestFailAndReleaseAreFenced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name        string
		maxAttempts int
		op          func(l *Leaser, r LeaseRef) (state.JobStatus, error)
		stale       bool
		wantStatus  string // the job's status afterwards
		wantErr     error
		returned    bool // a release gives the attempt back
	}{
		{name: "retryable failure with attempts left goes back to the queue", maxAttempts: 3,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return l.Fail(ctx, r, "nmap crashed", true) }, wantStatus: "pending"},
		{name: "retryable failure on the last attempt fails the job", maxAttempts: 1,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return l.Fail(ctx, r, "nmap crashed", true) }, wantStatus: "failed"},
		{name: "permanent failure fails the job", maxAttempts: 3,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return l.Fail(ctx, r, "bad target", false) }, wantStatus: "failed"},
		{name: "a stale holder cannot fail the job", maxAttempts: 3, stale: true,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return l.Fail(ctx, r, "late", false) }, wantStatus: "leased", wantErr: ErrLeaseLost},
		{name: "release returns the job", maxAttempts: 3,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return "", l.Release(ctx, r) }, wantStatus: "pending", returned: true},
		{name: "a stale holder cannot release the job", maxAttempts: 3, stale: true,
			op: func(l *Leaser, r LeaseRef) (state.JobStatus, error) { return "", l.Release(ctx, r) }, wantStatus: "leased", wantErr: ErrLeaseLost},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newLeaseFixture(t, tt.maxAttempts)
			ref := f.acquire(t)
			if tt.stale {
				ref.Token--
			}
			_, err := tt.op(f.l, ref)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			status, attempt, token, _ := f.jobRow(t)
			if status != tt.wantStatus {
				t.Errorf("job %s, want %s", status, tt.wantStatus)
			}
			wantAttempt := 1
			if tt.returned {
				wantAttempt = 0
			}
			if attempt != wantAttempt || token != ref.Token+map[bool]int64{true: 1, false: 0}[tt.stale] {
				t.Errorf("attempt %d token %d, want attempt %d and the lease's token", attempt, token, wantAttempt)
			}
			var ended int
			if err := f.pool.QueryRow(ctx, `SELECT count(*) FROM scan_job_leases WHERE job_id = $1 AND ended_at IS NOT NULL`, f.job).Scan(&ended); err != nil {
				t.Fatal(err)
			}
			if want := map[bool]int{true: 0, false: 1}[tt.wantErr != nil]; ended != want {
				t.Errorf("%d leases ended, want %d", ended, want)
			}
		})
	}
}

// A released job is leased again with a new token; the old token is dead.
func TestReleasedJobIsLeasedWithANewToken(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newLeaseFixture(t, 3)
	first := f.acquire(t)
	if err := f.l.Release(ctx, first); err != nil {
		t.Fatal(err)
	}
	second := f.acquire(t)
	if second.Token <= first.Token {
		t.Fatalf("token %d after %d", second.Token, first.Token)
	}
	if res, err := f.l.Heartbeat(ctx, first, 50); err != nil || res.State != LeaseLost {
		t.Fatalf("old lease heartbeat: %v, %v; want lost", res.State, err)
	}
	if j, err := f.l.Acquire(ctx, f.agent, 20*time.Millisecond); err != nil || j != nil {
		t.Fatalf("a second acquire found %v, %v; the only job is leased", j, err)
	}
}

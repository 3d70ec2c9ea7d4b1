package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/scanorama/scanorama/gen/db"
)

// DBCacheFor is how long the database collector reuses one reading: several
// Prometheus servers scraping every second cost one query set per period.
const DBCacheFor = 5 * time.Second

// dbQueries is what the database collector reads.
type dbQueries interface {
	MetricsJobsBySiteStatus(ctx context.Context) ([]db.MetricsJobsBySiteStatusRow, error)
	MetricsOldestPendingJobAge(ctx context.Context) (float64, error)
	MetricsAgentsBySiteState(ctx context.Context) ([]db.MetricsAgentsBySiteStateRow, error)
}

// dbCollector reports jobs by site and status, the oldest due pending job's
// age and agents by site and state, read from PostgreSQL at most once per
// DBCacheFor. A failed read reports scanorama_db_collector_up 0 and keeps
// nothing stale.
type dbCollector struct {
	q   dbQueries
	log hclog.Logger

	jobsDesc, pendingDesc, agentsDesc, upDesc *prometheus.Desc

	now     func() time.Time
	mu      sync.Mutex
	readAt  time.Time
	cached  []prometheus.Metric
	lastErr error
}

// RegisterDatabase adds the collector that reads job and agent counts.
func (m *Controller) RegisterDatabase(pool *pgxpool.Pool, log hclog.Logger) {
	if m == nil {
		return
	}
	m.reg.MustRegister(newDBCollector(db.New(pool), log))
}

func newDBCollector(q dbQueries, log hclog.Logger) *dbCollector {
	return &dbCollector{
		q: q, log: log, now: time.Now,
		jobsDesc: prometheus.NewDesc(namespace+"_jobs", "Scan jobs by site and status (read from the database, cached for a few seconds).",
			[]string{"site", "status"}, nil),
		pendingDesc: prometheus.NewDesc(namespace+"_jobs_oldest_pending_age_seconds", "How long the oldest due pending job has waited for an agent (0 when none waits).",
			nil, nil),
		agentsDesc: prometheus.NewDesc(namespace+"_agents", "Registered agents by site and state (active, draining, lost, offline).",
			[]string{"site", "state"}, nil),
		upDesc: prometheus.NewDesc(namespace+"_db_collector_up", "1 when the last database read for the job and agent gauges succeeded.",
			nil, nil),
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.jobsDesc
	ch <- c.pendingDesc
	ch <- c.agentsDesc
	ch <- c.upDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.readAt) >= DBCacheFor {
		c.cached, c.lastErr = c.read()
		c.readAt = now
		if c.lastErr != nil {
			c.log.Warn("metrics: could not read job and agent counts", "error", c.lastErr)
		}
	}
	up := 1.0
	if c.lastErr != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.upDesc, prometheus.GaugeValue, up)
	for _, m := range c.cached {
		ch <- m
	}
}

func (c *dbCollector) read() ([]prometheus.Metric, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	jobs, err := c.q.MetricsJobsBySiteStatus(ctx)
	if err != nil {
		return nil, err
	}
	age, err := c.q.MetricsOldestPendingJobAge(ctx)
	if err != nil {
		return nil, err
	}
	agents, err := c.q.MetricsAgentsBySiteState(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]prometheus.Metric, 0, len(jobs)+len(agents)+1)
	for _, j := range jobs {
		out = append(out, prometheus.MustNewConstMetric(c.jobsDesc, prometheus.GaugeValue, float64(j.Jobs), j.Site, j.Status))
	}
	out = append(out, prometheus.MustNewConstMetric(c.pendingDesc, prometheus.GaugeValue, age))
	for _, a := range agents {
		out = append(out, prometheus.MustNewConstMetric(c.agentsDesc, prometheus.GaugeValue, float64(a.Agents), a.Site, a.State))
	}
	return out, nil
}

// poolStater is what the pool collector reads; *pgxpool.Pool has it.
type poolStater interface {
	Stat() *pgxpool.Stat
}

// poolCollector reports pgxpool.Stat() at scrape time; reading it costs no
// database round trip.
type poolCollector struct {
	p                                                  poolStater
	acquired, idle, total, max, acquires, waitSeconds  *prometheus.Desc
	emptyAcquires, canceledAcquires, constructing, new *prometheus.Desc
}

// RegisterPool adds the collector of the database pool's statistics.
func (m *Controller) RegisterPool(p poolStater) {
	if m == nil {
		return
	}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(namespace+"_db_pool_"+name, help, nil, nil)
	}
	m.reg.MustRegister(&poolCollector{
		p:                p,
		acquired:         d("acquired_connections", "Connections currently checked out of the pool."),
		idle:             d("idle_connections", "Idle connections in the pool."),
		total:            d("total_connections", "Connections in the pool (acquired, idle and being opened)."),
		max:              d("max_connections", "The pool's size limit (--db-max-conns)."),
		constructing:     d("constructing_connections", "Connections being opened."),
		acquires:         d("acquires_total", "Successful connection acquires."),
		waitSeconds:      d("acquire_wait_seconds_total", "Total time acquires waited for a connection (empty pool)."),
		emptyAcquires:    d("empty_acquires_total", "Acquires that had to wait because no idle connection was free."),
		canceledAcquires: d("canceled_acquires_total", "Acquires cancelled by their context while waiting."),
		new:              d("new_connections_total", "Connections opened."),
	})
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.max, c.constructing, c.acquires, c.waitSeconds, c.emptyAcquires, c.canceledAcquires, c.new} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	n := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.total, float64(s.TotalConns()))
	g(c.max, float64(s.MaxConns()))
	g(c.constructing, float64(s.ConstructingConns()))
	n(c.acquires, float64(s.AcquireCount()))
	n(c.waitSeconds, s.AcquireDuration().Seconds())
	n(c.emptyAcquires, float64(s.EmptyAcquireCount()))
	n(c.canceledAcquires, float64(s.CanceledAcquireCount()))
	n(c.new, float64(s.NewConnsCount()))
}

// RegisterEventDrops adds scanorama_events_dropped_total, read from the
// publisher's own counter.
func (m *Controller) RegisterEventDrops(dropped func() int64) {
	if m == nil {
		return
	}
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Namespace: namespace, Name: "events_dropped_total",
		Help: "Job events the publisher dropped (queue full or database unreachable); watchers may have missed them.",
	}, func() float64 { return float64(dropped()) }))
}

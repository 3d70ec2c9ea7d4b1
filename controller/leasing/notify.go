package leasing

import (
	"context"

	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/gen/db"
)

// notifyJob publishes a job state change for watchers; delivered at commit
// when q is in a transaction. Watching is best effort, so a failure to
// publish is logged, not returned.
func (l *Leaser) notifyJob(ctx context.Context, q *db.Queries, ev events.JobEvent) {
	if err := q.NotifyJobEvent(ctx, ev.Payload()); err != nil && ctx.Err() == nil {
		l.log.Debug("could not publish job event", "job_id", ev.JobID, "error", err)
	}
}

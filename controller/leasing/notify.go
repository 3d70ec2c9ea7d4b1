package leasing

import (
	"context"
	"encoding/json"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/gen/db"
)

// jobEvent is the payload WatchEvents streams; see controller/admin/watch.go.
type jobEvent struct {
	Type            string    `json:"type"`
	JobID           uuid.UUID `json:"job_id"`
	SiteID          uuid.UUID `json:"site_id"`
	Status          string    `json:"status"`
	ProgressPercent int32     `json:"progress_percent"`
	WorkerID        string    `json:"worker_id,omitempty"`
}

// notifyJob publishes a job state change for watchers; delivered at commit
// when q is in a transaction. Watching is best effort, so a failure to
// publish is logged, not returned.
func (l *Leaser) notifyJob(ctx context.Context, q *db.Queries, ev jobEvent) {
	ev.Type = "job"
	b, _ := json.Marshal(ev)
	if err := q.NotifyJobEvent(ctx, string(b)); err != nil && ctx.Err() == nil {
		l.log.Debug("could not publish job event", "job_id", ev.JobID, "error", err)
	}
}

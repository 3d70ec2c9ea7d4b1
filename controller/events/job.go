package events

import (
	"encoding/json"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/controller/state"
)

// JobEvent is the payload published on ChannelEvents when a job changes
// state or reports progress; WatchEvents streams it.
type JobEvent struct {
	Type            string          `json:"type"`
	JobID           uuid.UUID       `json:"job_id"`
	SiteID          uuid.UUID       `json:"site_id"`
	Status          state.JobStatus `json:"status"`
	ProgressPercent int32           `json:"progress_percent"`
	WorkerID        string          `json:"worker_id,omitempty"`
	// Changes counts the host_history rows a completed job wrote.
	Changes int64 `json:"changes,omitempty"`
}

// Payload encodes the event for pg_notify.
func (e JobEvent) Payload() string {
	e.Type = "job"
	b, _ := json.Marshal(e)
	return string(b)
}

// ParseJobEvent decodes a payload; false for anything that is not a job event.
func ParseJobEvent(payload string) (JobEvent, bool) {
	var e JobEvent
	if json.Unmarshal([]byte(payload), &e) != nil || e.Type != "job" {
		return JobEvent{}, false
	}
	return e, true
}

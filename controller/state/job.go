package state

import pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"

// JobStatus is scan_jobs.status.
type JobStatus string

// Job statuses (scan_jobs_status_check).
const (
	JobPending   JobStatus = "pending"
	JobLeased    JobStatus = "leased"
	JobRunning   JobStatus = "running"
	JobCompleted JobStatus = "completed"
	JobFailed    JobStatus = "failed"
	JobCancelled JobStatus = "cancelled"
)

var jobStatuses = newMapping("job status",
	pair[JobStatus, pb.JobStatus]{JobPending, pb.JobStatus_JOB_STATUS_PENDING},
	pair[JobStatus, pb.JobStatus]{JobLeased, pb.JobStatus_JOB_STATUS_LEASED},
	pair[JobStatus, pb.JobStatus]{JobRunning, pb.JobStatus_JOB_STATUS_RUNNING},
	pair[JobStatus, pb.JobStatus]{JobCompleted, pb.JobStatus_JOB_STATUS_COMPLETED},
	pair[JobStatus, pb.JobStatus]{JobFailed, pb.JobStatus_JOB_STATUS_FAILED},
	pair[JobStatus, pb.JobStatus]{JobCancelled, pb.JobStatus_JOB_STATUS_CANCELLED},
)

// JobStatuses lists every job status.
func JobStatuses() []JobStatus { return jobStatuses.values() }

// ParseJobStatus reads a status from the database or an event payload.
func ParseJobStatus(s string) (JobStatus, error) { return jobStatuses.parse(s) }

// ToPB is the API's value of s; an unknown status is an error.
func (s JobStatus) ToPB() (pb.JobStatus, error) { return jobStatuses.to(s) }

// JobStatusFromPB is the database string of an API status; UNSPECIFIED and
// unknown numbers are errors.
func JobStatusFromPB(p pb.JobStatus) (JobStatus, error) { return jobStatuses.from(p) }

// Unfinished says the job may still run: pending, leased or running.
func (s JobStatus) Unfinished() bool { return s == JobPending || s == JobLeased || s == JobRunning }

// JobKind is scan_jobs.kind.
type JobKind string

// Job kinds (scan_jobs_kind_check).
const (
	KindScan   JobKind = "scan"   // run by an agent
	KindImport JobKind = "import" // results of an nmap run made elsewhere
)

var jobKinds = newVocab("job kind", KindScan, KindImport)

// JobKinds lists every job kind.
func JobKinds() []JobKind { return jobKinds.values() }

// ParseJobKind reads a kind from the database.
func ParseJobKind(s string) (JobKind, error) { return jobKinds.parse(s) }

// LeaseOutcome is job_leases.outcome: how a lease ended.
type LeaseOutcome string

// Lease outcomes (job_leases_outcome_check).
const (
	LeaseCompleted LeaseOutcome = "completed"
	LeaseFailed    LeaseOutcome = "failed"
	LeaseExpired   LeaseOutcome = "expired"
	LeaseReleased  LeaseOutcome = "released"
	LeaseCancelled LeaseOutcome = "cancelled"
)

var leaseOutcomes = newVocab("lease outcome", LeaseCompleted, LeaseFailed, LeaseExpired, LeaseReleased, LeaseCancelled)

// LeaseOutcomes lists every lease outcome.
func LeaseOutcomes() []LeaseOutcome { return leaseOutcomes.values() }

// ParseLeaseOutcome reads an outcome from the database.
func ParseLeaseOutcome(s string) (LeaseOutcome, error) { return leaseOutcomes.parse(s) }

// RunOutcome is scan_runs.outcome: whether a scheduled run created its jobs.
// (A run's origin and phase are jobs.Origin* and jobs.Phase*.)
type RunOutcome string

// Run outcomes (scan_runs_outcome_check).
const (
	RunCreated RunOutcome = "created"
	RunSkipped RunOutcome = "skipped"
)

var runOutcomes = newVocab("run outcome", RunCreated, RunSkipped)

// RunOutcomes lists every run outcome.
func RunOutcomes() []RunOutcome { return runOutcomes.values() }

// ParseRunOutcome reads an outcome from the database.
func ParseRunOutcome(s string) (RunOutcome, error) { return runOutcomes.parse(s) }

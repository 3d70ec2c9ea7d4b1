package admin

import (
	"context"
	"fmt"
	"math"
	"net/netip"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/controller/state"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// runProgress sums a run's jobs: what its original jobs cover, and how much
// of it completed jobs and the finished hosts of partial (interrupted) jobs
// account for, across scan windows.
func (s *Server) runProgress(ctx context.Context, runID string) (*pb.RunProgress, error) {
	id, err := uuid.Parse(runID)
	if err != nil {
		return nil, fmt.Errorf("run id %q: %w", runID, err)
	}
	rows, err := s.q.RunJobsProgress(ctx, uuid.NullUUID{UUID: id, Valid: true})
	if err != nil {
		return nil, err
	}
	p := &pb.RunProgress{RunId: runID, Jobs: int32(len(rows))}
	for _, r := range rows {
		covers := scanspec.HostCount([]netip.Prefix{r.Network}, r.Exclusions)
		if r.RemainderOf.Valid {
			p.RemainderJobs++
		} else {
			p.HostsTotal = addCapped(p.HostsTotal, covers)
		}
		switch st := state.JobStatus(r.Status); {
		case st == state.JobCompleted:
			p.JobsCompleted++
			p.HostsDone = addCapped(p.HostsDone, covers)
		case st.Unfinished():
			p.JobsUnfinished++
		}
		if r.Partial {
			p.JobsPartial++
			p.HostsDone = addCapped(p.HostsDone, uint64(max(r.HostsFinished.Int64, 0)))
		}
	}
	return p, nil
}

func addCapped(sum int64, n uint64) int64 {
	if n > math.MaxInt64-uint64(sum) {
		return math.MaxInt64
	}
	return sum + int64(n)
}

package admin

import (
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/controller/events"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// maxChangesPerJobEvent bounds the host changes streamed for one committed job.
const maxChangesPerJobEvent = 1000

// WatchEvents implements AdminService.WatchEvents: job state and progress
// as it changes, and the host changes each job committed.
func (s *Server) WatchEvents(req *pb.WatchEventsRequest, stream pb.AdminService_WatchEventsServer) error {
	ctx := stream.Context()
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return err
	}
	// Job events arrive as notifications, outside row-level security: a
	// site-scoped caller gets only its sites' (the host changes read
	// below are filtered by the database as well).
	caller, ok := authz.FromContext(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "no caller")
	}
	ch, unsubscribe := s.events.SubscribeEvents(256)
	defer unsubscribe()
	// Headers go out once the subscription exists: a client that waits for
	// them (stream.Header()) knows every later event reaches it.
	if err := stream.SendHeader(nil); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case raw := <-ch:
			ev, ok := events.ParseJobEvent(raw)
			if !ok {
				continue
			}
			if (site.Valid && ev.SiteID != site.UUID) || !caller.SeesSite(ev.SiteID) {
				continue
			}
			status, err := ev.Status.ToPB()
			if err != nil {
				// A publisher wrote a status the API has no value for: a
				// bug to see in the log, not JOB_STATUS_UNSPECIFIED on the wire.
				s.log.Error("job event with an unknown status", "job_id", ev.JobID, "error", err)
				continue
			}
			now := timestamppb.New(time.Now())
			if err := stream.Send(&pb.WatchEventsResponse{Time: now, Event: &pb.WatchEventsResponse_Job{Job: &pb.JobEvent{
				JobId: ev.JobID.String(), Status: status,
				ProgressPercent: ev.ProgressPercent, WorkerId: ev.WorkerID,
			}}}); err != nil {
				return err
			}
			if ev.Status != state.JobCompleted || ev.Changes == 0 {
				continue
			}
			rows, err := s.q.ListJobHostChanges(ctx, db.ListJobHostChangesParams{JobID: uuid.NullUUID{UUID: ev.JobID, Valid: true}, RowLimit: maxChangesPerJobEvent})
			if err != nil {
				return s.internal("read job changes", err)
			}
			for _, r := range rows {
				c := changePB(db.ListHostChangesRow(r))
				if err := stream.Send(&pb.WatchEventsResponse{Time: now, Event: &pb.WatchEventsResponse_HostChange{HostChange: c}}); err != nil {
					return err
				}
			}
		}
	}
}

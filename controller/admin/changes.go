package admin

import (
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/changefeed"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// WatchChanges implements AdminService.WatchChanges: host changes in commit
// order, each with the cursor to resume right after it.
func (s *Server) WatchChanges(req *pb.WatchChangesRequest, stream pb.AdminService_WatchChangesServer) error {
	ctx := stream.Context()
	if req.GetFromNow() && req.GetCursor() != "" {
		return apierr.InvalidField("from_now", "exclusive with cursor: a cursor already says where to start")
	}
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return err
	}
	feed := changefeed.New(s.pool, s.events)
	scope, err := feed.Scope(ctx, site.UUID)
	if err != nil {
		return s.internal("watch changes", err)
	}
	var seq int64
	if req.GetCursor() != "" {
		if seq, err = scope.Decode(req.GetCursor()); err != nil {
			if errors.Is(err, changefeed.ErrForeignCursor) {
				return apierr.InvalidField("cursor", "belongs to another site or another database (site %q asked)", req.GetSite())
			}
			return apierr.InvalidField("cursor", "not a cursor returned by WatchChanges")
		}
	}
	after, err := feed.Start(ctx, seq, req.GetCursor() != "", req.GetFromNow())
	if e, ok := changefeed.IsOutOfRange(err); ok {
		return status.Error(codes.OutOfRange, e.Error())
	}
	if errors.Is(err, changefeed.ErrBadCursor) {
		return apierr.InvalidField("cursor", "not a cursor returned by WatchChanges")
	}
	if err != nil {
		return s.internal("watch changes", err)
	}
	err = feed.Follow(ctx, site.UUID, after, req.GetStopAtTip(), func(r changefeed.Row) error {
		return stream.Send(&pb.WatchChangesResponse{
			Change: changePB(db.ListHostChangesRow{HostHistory: r.HostHistory, SiteName: r.SiteName, IpAddress: r.IpAddress}),
			Cursor: scope.Encode(r.HostHistory.FeedSeq),
		})
	})
	if err != nil && ctx.Err() != nil {
		return nil
	}
	if e, ok := changefeed.IsOutOfRange(err); ok {
		return status.Error(codes.OutOfRange, e.Error())
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return err
		}
		return s.internal("watch changes", err)
	}
	return nil
}

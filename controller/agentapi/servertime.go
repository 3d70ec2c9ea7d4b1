package agentapi

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// GetServerTime implements AgentService.GetServerTime: the controller's wall
// clock, for an agent measuring its skew (leases expire by the database's
// clock, which an operator keeps in step with the controller's).
func (s *Server) GetServerTime(context.Context, *pb.GetServerTimeRequest) (*pb.GetServerTimeResponse, error) {
	return &pb.GetServerTimeResponse{ServerTime: timestamppb.New(time.Now())}, nil
}

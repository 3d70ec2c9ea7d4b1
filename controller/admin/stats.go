package admin

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// GetStats implements AdminService.GetStats. The figures come from one
// read-only snapshot, so they add up with each other.
func (s *Server) GetStats(ctx context.Context, req *pb.GetStatsRequest) (*pb.GetStatsResponse, error) {
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	resp := &pb.GetStatsResponse{Jobs: map[string]int64{}, Agents: map[string]int64{}}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		jobs, err := q.JobCountsByStatus(ctx, site)
		if err != nil {
			return fmt.Errorf("count jobs: %w", err)
		}
		for _, j := range jobs {
			resp.Jobs[j.Status] = j.Jobs
		}
		queue, err := q.QueueHealth(ctx, site)
		if err != nil {
			return fmt.Errorf("queue health: %w", err)
		}
		if queue.OldestPendingSeconds >= 0 {
			resp.OldestPendingAge = durationpb.New(time.Duration(queue.OldestPendingSeconds * float64(time.Second)))
		}
		resp.ExpiredLeases = queue.ExpiredLeases
		agents, err := q.AgentCountsByState(ctx, site)
		if err != nil {
			return fmt.Errorf("count agents: %w", err)
		}
		for _, a := range agents {
			resp.Agents[a.State] = a.Agents
		}
		hosts, err := q.HostCounts(ctx, site)
		if err != nil {
			return fmt.Errorf("count hosts: %w", err)
		}
		resp.Hosts, resp.HostsUp, resp.OpenServices = hosts.Hosts, hosts.HostsUp, hosts.OpenServices
		if resp.Pauses, err = s.pauses(ctx, q, site); err != nil {
			return err
		}
		return storageStats(ctx, q, resp)
	})
	if err != nil {
		return nil, s.internal("read stats", err)
	}
	return resp, nil
}

func storageStats(ctx context.Context, q *db.Queries, resp *pb.GetStatsResponse) error {
	parts, err := q.PortScanPartitions(ctx)
	if err != nil {
		return fmt.Errorf("list port_scans partitions: %w", err)
	}
	for _, p := range parts {
		resp.Partitions = append(resp.Partitions, &pb.PartitionStats{
			Name: p.Name, Archived: p.Archived, RowsEstimate: p.RowsEstimate, Bytes: p.Bytes,
		})
	}
	if resp.DatabaseBytes, err = q.DatabaseBytes(ctx); err != nil {
		return fmt.Errorf("database size: %w", err)
	}
	return nil
}

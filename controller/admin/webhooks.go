package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/state"
	"github.com/scanorama/scanorama/controller/webhooks"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// CreateWebhook implements AdminService.CreateWebhook. A new webhook
// reports changes committed from now on.
func (s *Server) CreateWebhook(ctx context.Context, req *pb.CreateWebhookRequest) (*pb.CreateWebhookResponse, error) {
	var bad []*apierr.FieldError
	if !nameRe.MatchString(req.GetName()) {
		bad = append(bad, apierr.Field("name", "must be 1-63 lower-case letters, digits, '.', '_' or '-', starting with a letter or digit; got %q", req.GetName()))
	}
	if err := webhooks.CheckURL(req.GetUrl()); err != nil {
		bad = append(bad, apierr.Field("url", "%s", err.Error()))
	}
	if err := webhooks.CheckEvents(req.GetEvents()); err != nil {
		bad = append(bad, apierr.Field("events", "%s", err.Error()))
	}
	secret := req.GetSecret()
	if secret != "" && (len(secret) < 16 || len(secret) > 256) {
		bad = append(bad, apierr.Field("secret", "must be 16-256 bytes (or empty to have one made), got %d", len(secret)))
	}
	down := req.GetDownAfterScans()
	if down == 0 {
		down = 1
	}
	if down < 1 || down > 100 {
		bad = append(bad, apierr.Field("down_after_scans", "must be 1-100, got %d", req.GetDownAfterScans()))
	}
	format := state.FormatJSON
	if req.GetFormat() != pb.WebhookFormat_WEBHOOK_FORMAT_UNSPECIFIED {
		f, err := state.WebhookFormatFromPB(req.GetFormat())
		if err != nil {
			bad = append(bad, apierr.Field("format", "unknown format %d", req.GetFormat()))
		}
		format = f
	}
	var target uuid.NullUUID
	if req.GetTargetId() != "" {
		id, err := uuid.Parse(req.GetTargetId())
		if err != nil {
			bad = append(bad, apierr.Field("target_id", "not a UUID: %q", req.GetTargetId()))
		}
		target = uuid.NullUUID{UUID: id, Valid: err == nil}
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	site, err := s.optionalSite(ctx, req.GetSite())
	if err != nil {
		return nil, err
	}
	siteName := req.GetSite()
	if target.Valid {
		t, err := s.q.GetTarget(ctx, target.UUID)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apierr.NotFound("target_id", "no target %s", target.UUID)
		}
		if err != nil {
			return nil, s.internal("look up target", err)
		}
		if site.Valid && t.ScanTarget.SiteID != site.UUID {
			return nil, apierr.InvalidField("target_id", "target %s is in site %q, not %q", target.UUID, t.SiteName, req.GetSite())
		}
		site, siteName = uuid.NullUUID{UUID: t.ScanTarget.SiteID, Valid: true}, t.SiteName
	}
	if secret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, s.internal("make a secret", err)
		}
		secret = hex.EncodeToString(b)
	}
	events := req.GetEvents()
	if events == nil {
		events = []string{}
	}
	w, err := s.q.CreateWebhook(ctx, db.CreateWebhookParams{
		Name: req.GetName(), Url: req.GetUrl(), SiteID: site, TargetID: target, Events: events, Secret: secret,
		DownAfterScans: down, Format: string(format), CreatedBy: actor(ctx),
	})
	if err != nil {
		return nil, s.internal("create webhook "+req.GetName(), err)
	}
	s.log.Info("webhook created", "webhook", w.Name, "by", actor(ctx))
	out, err := webhookPB(db.Webhook(w), siteName, 0, 0)
	if err != nil {
		return nil, s.internal("create webhook "+req.GetName(), err)
	}
	return &pb.CreateWebhookResponse{Webhook: out, Secret: secret}, nil
}

// ListWebhooks implements AdminService.ListWebhooks, by name.
func (s *Server) ListWebhooks(ctx context.Context, req *pb.ListWebhooksRequest) (*pb.ListWebhooksResponse, error) {
	var cur nameCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListWebhooksRow, error) {
		return s.q.ListWebhooks(ctx, db.ListWebhooksParams{AfterName: cur.Name, RowLimit: limit})
	}, func(r db.ListWebhooksRow) nameCursor { return nameCursor{Name: r.Webhook.Name} })
	if err != nil {
		return nil, s.internal("list webhooks", err)
	}
	resp := &pb.ListWebhooksResponse{NextPageToken: next}
	for _, r := range rows {
		out, err := webhookPB(r.Webhook, r.SiteName.String, r.Pending, r.Dead)
		if err != nil {
			return nil, s.internal("list webhooks", err)
		}
		resp.Webhooks = append(resp.Webhooks, out)
	}
	return resp, nil
}

// DeleteWebhook implements AdminService.DeleteWebhook; its deliveries go with it.
func (s *Server) DeleteWebhook(ctx context.Context, req *pb.DeleteWebhookRequest) (*pb.DeleteWebhookResponse, error) {
	id, err := parseID("id", req.GetId())
	if err != nil {
		return nil, err
	}
	n, err := s.q.DeleteWebhook(ctx, id)
	if err != nil {
		return nil, s.internal("delete webhook", err)
	}
	if n == 0 {
		return nil, apierr.NotFound("id", "no webhook %s", id)
	}
	s.log.Info("webhook deleted", "webhook_id", id, "by", actor(ctx))
	return &pb.DeleteWebhookResponse{}, nil
}

type deliveryCursor struct{ Seq int64 }

// ListWebhookDeliveries implements AdminService.ListWebhookDeliveries, newest first.
func (s *Server) ListWebhookDeliveries(ctx context.Context, req *pb.ListWebhookDeliveriesRequest) (*pb.ListWebhookDeliveriesResponse, error) {
	id, err := s.webhookID(ctx, req.GetWebhookId())
	if err != nil {
		return nil, err
	}
	p := db.ListWebhookDeliveriesParams{WebhookID: id}
	if req.GetState() != pb.WebhookDeliveryState_WEBHOOK_DELIVERY_STATE_UNSPECIFIED {
		st, err := state.DeliveryStateFromPB(req.GetState())
		if err != nil {
			return nil, apierr.InvalidField("state", "unknown state %d", req.GetState())
		}
		p.State = pgText(string(st))
	}
	cur := deliveryCursor{Seq: math.MaxInt64}
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ListWebhookDeliveriesRow, error) {
		p.BeforeSeq, p.RowLimit = cur.Seq, limit
		return s.q.ListWebhookDeliveries(ctx, p)
	}, func(r db.ListWebhookDeliveriesRow) deliveryCursor { return deliveryCursor{Seq: r.Seq} })
	if err != nil {
		return nil, s.internal("list webhook deliveries", err)
	}
	resp := &pb.ListWebhookDeliveriesResponse{NextPageToken: next}
	for _, r := range rows {
		st, err := state.DeliveryState(r.State).ToPB()
		if err != nil {
			return nil, s.internal("list webhook deliveries", err)
		}
		d := &pb.WebhookDelivery{
			Id: r.ID.String(), WebhookId: r.WebhookID.String(), Events: r.EventCount, Attempts: r.Attempts,
			State:         st,
			NextAttemptAt: timestamppb.New(r.NextAttemptAt), LastError: r.LastError.String, LastStatus: r.LastStatus.Int32,
			CreatedAt: timestamppb.New(r.CreatedAt), FirstFeedSeq: r.FirstFeedSeq, LastFeedSeq: r.LastFeedSeq,
		}
		if r.DeliveredAt.Valid {
			d.DeliveredAt = timestamppb.New(r.DeliveredAt.Time)
		}
		resp.Deliveries = append(resp.Deliveries, d)
	}
	return resp, nil
}

// RetryWebhookDeliveries implements AdminService.RetryWebhookDeliveries:
// dead deliveries are pending again with a fresh retry budget, and go out
// in their original order (same ids and bodies).
func (s *Server) RetryWebhookDeliveries(ctx context.Context, req *pb.RetryWebhookDeliveriesRequest) (*pb.RetryWebhookDeliveriesResponse, error) {
	id, err := s.webhookID(ctx, req.GetWebhookId())
	if err != nil {
		return nil, err
	}
	n, err := s.q.RetryWebhookDeliveries(ctx, id)
	if err != nil {
		return nil, s.internal("re-drive webhook deliveries", err)
	}
	s.log.Info("webhook deliveries re-driven", "webhook_id", id, "count", n, "by", actor(ctx))
	return &pb.RetryWebhookDeliveriesResponse{Redriven: n}, nil
}

func (s *Server) webhookID(ctx context.Context, raw string) (uuid.UUID, error) {
	id, err := parseID("webhook_id", raw)
	if err != nil {
		return id, err
	}
	if _, err := s.q.GetWebhook(ctx, id); errors.Is(err, pgx.ErrNoRows) {
		return id, apierr.NotFound("webhook_id", "no webhook %s", id)
	} else if err != nil {
		return id, s.internal("look up webhook", err)
	}
	return id, nil
}

func webhookPB(w db.Webhook, site string, pending, dead int64) (*pb.Webhook, error) {
	format, err := state.WebhookFormat(w.Format).ToPB()
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", w.Name, err)
	}
	out := &pb.Webhook{
		Id: w.ID.String(), Name: w.Name, Url: w.Url, Site: site, Events: w.Events, DownAfterScans: w.DownAfterScans,
		Format:    format,
		CreatedAt: timestamppb.New(w.CreatedAt), PendingDeliveries: pending, DeadDeliveries: dead,
	}
	if w.TargetID.Valid {
		out.TargetId = w.TargetID.UUID.String()
	}
	return out, nil
}

func pgText(s string) pgtype.Text { return pgtype.Text{String: s, Valid: true} }

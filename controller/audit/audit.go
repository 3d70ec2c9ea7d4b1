// Package audit owns the audit_log table: who did what, to which objects,
// when, from where and with what outcome. AdminService's mutating calls are
// recorded by Recorder (installed as authz's Auditor); other actions
// (token minting from the CLI, agent enrollment, approval and revocation)
// call Record directly. Requests are stored with secret fields removed;
// nothing here ever sees a token's secret.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/scanorama/scanorama/controller/authz"
	"github.com/scanorama/scanorama/gen/db"
)

// Event is one audited action.
type Event struct {
	// Actor is the caller's identity (authz.Principal.Identity).
	Actor string
	Role  string
	// Action is an RPC full method name or a named action ("token.create").
	Action string
	// SiteID or, when unset, SiteName names the site concerned, if any.
	SiteID    uuid.NullUUID
	SiteName  string
	ObjectIDs []string
	// Request is stored redacted (see Redact).
	Request proto.Message
	Peer    string
	Outcome codes.Code
	Message string
}

// Record writes ev with dbtx (a pool or the caller's transaction, running
// as the owning role).
func Record(ctx context.Context, dbtx db.DBTX, ev Event) error {
	q := db.New(dbtx)
	site := ev.SiteID
	if !site.Valid && ev.SiteName != "" {
		rows, err := q.SiteIDsByName(ctx, []string{ev.SiteName})
		if err != nil {
			return fmt.Errorf("audit: resolve site: %w", err)
		}
		if len(rows) == 1 {
			site = uuid.NullUUID{UUID: rows[0].ID, Valid: true}
		}
	}
	var req []byte
	if ev.Request != nil {
		var err error
		if req, err = Redact(ev.Request); err != nil {
			return fmt.Errorf("audit: encode request: %w", err)
		}
	}
	ids := ev.ObjectIDs
	if ids == nil {
		ids = []string{}
	}
	msg := ev.Message
	if len(msg) > 1024 {
		msg = msg[:1024]
	}
	err := q.InsertAuditEvent(ctx, db.InsertAuditEventParams{
		Actor: ev.Actor, Role: ev.Role, Action: ev.Action, SiteID: site, ObjectIds: ids,
		Request: req, Peer: ev.Peer, Outcome: ev.Outcome.String(), Message: msg,
	})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// secretFields are removed from requests before they are stored.
var secretFields = map[string]bool{
	"secret": true, "token": true, "password": true, "private_key": true, "key": true,
	"enroll_token": true, "enrollment_token": true, "bearer": true, "csr": true,
}

// IsSecretField reports whether a field of this name is never recorded.
func IsSecretField(name string) bool {
	n := strings.ToLower(name)
	return secretFields[n] || strings.HasSuffix(n, "_secret") || strings.HasSuffix(n, "_token") && n != "page_token" && n != "next_page_token"
}

// Redact returns m as JSON with every secret field (at any depth) removed.
func Redact(m proto.Message) ([]byte, error) {
	c := proto.Clone(m)
	strip(c.ProtoReflect())
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(c)
	if err != nil {
		return nil, err
	}
	// protojson's output is deliberately unstable; store a compact form.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func strip(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		// Secrets are strings or bytes; a message field named "token"
		// (an APIToken) is walked, not dropped.
		if (fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind) && IsSecretField(string(fd.Name())) {
			m.Clear(fd)
			return true
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				strip(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				strip(mv.Message())
				return true
			})
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			strip(v.Message())
		}
		return true
	})
}

// Recorder audits AdminService calls; it implements authz.Auditor.
type Recorder struct {
	DB  db.DBTX
	Log hclog.Logger
}

// RecordCall implements authz.Auditor. A failure to record is logged: the
// call itself has already happened.
func (r *Recorder) RecordCall(ctx context.Context, p authz.Principal, fullMethod string, req, resp proto.Message, err error) {
	ev := Event{Actor: p.Identity(), Role: p.Role.String(), Action: fullMethod, Request: req, Peer: p.Peer,
		Outcome: status.Code(err)}
	if err != nil {
		ev.Message = status.Convert(err).Message()
	}
	if req != nil {
		ev.SiteName = siteOf(fullMethod, req.ProtoReflect())
		ev.ObjectIDs = idsOf(req.ProtoReflect(), false)
	}
	if resp != nil && err == nil {
		ev.ObjectIDs = appendUnique(ev.ObjectIDs, idsOf(resp.ProtoReflect(), true)...)
	}
	if rerr := Record(context.WithoutCancel(ctx), r.DB, ev); rerr != nil && r.Log != nil {
		r.Log.Error("write audit record", "action", fullMethod, "actor", ev.Actor, "error", rerr)
	}
}

// siteOf names the request's site: its "site" field, or "name" for the
// site RPCs themselves.
func siteOf(method string, m protoreflect.Message) string {
	if s := stringField(m, "site"); s != "" {
		return s
	}
	if strings.HasSuffix(method, "Site") {
		return stringField(m, "name")
	}
	return ""
}

func stringField(m protoreflect.Message, name string) string {
	fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return ""
	}
	return m.Get(fd).String()
}

// idsOf collects object ids: the message's id/target_id/job_id fields and,
// with nested, the id of each message (or list of messages) it holds.
func idsOf(m protoreflect.Message, nested bool) []string {
	var out []string
	for _, f := range []string{"id", "target_id", "job_id", "agent_id"} {
		if s := stringField(m, f); s != "" {
			out = append(out, s)
		}
	}
	if !nested {
		return out
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Message() == nil || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len() && len(out) < 100; i++ {
				out = append(out, idsOf(l.Get(i).Message(), false)...)
			}
			return true
		}
		out = append(out, idsOf(v.Message(), false)...)
		return true
	})
	return out
}

func appendUnique(a []string, more ...string) []string {
	for _, s := range more {
		dup := false
		for _, x := range a {
			if x == s {
				dup = true
				break
			}
		}
		if !dup {
			a = append(a, s)
		}
	}
	return a
}

package authz

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// Every AdminService method, unary or streaming, present now or added
// later, must have a rule; and the table names no method that does not
// exist.
func TestTableCoversAdminService(t *testing.T) {
	t.Parallel()
	methods := map[string]bool{}
	for _, m := range pb.AdminService_ServiceDesc.Methods {
		methods[m.MethodName] = true
	}
	for _, s := range pb.AdminService_ServiceDesc.Streams {
		methods[s.StreamName] = true
	}
	for m := range methods {
		r, ok := Table[m]
		if !ok {
			t.Errorf("AdminService/%s is not in authz.Table: it is denied to everyone; give it a rule", m)
			continue
		}
		if r.Least < RoleViewer || r.Least > RoleAdmin {
			t.Errorf("AdminService/%s: least role %v is not viewer, operator or admin", m, r.Least)
		}
		if got, ok := RuleFor(adminService + m); !ok || got != r {
			t.Errorf("RuleFor(%s) = %v, %v", adminService+m, got, ok)
		}
	}
	for m := range Table {
		if !methods[m] {
			t.Errorf("authz.Table names %s, which AdminService does not have", m)
		}
	}
}

func TestRuleForUnknownIsDenied(t *testing.T) {
	t.Parallel()
	for _, m := range []string{"", "/scanorama.v1.AdminService/", "/scanorama.v1.AdminService/NoSuchThing",
		"/scanorama.v1.AgentService/Register", "/scanorama.v1.AdminServiceX/ListSites"} {
		if _, ok := RuleFor(m); ok {
			t.Errorf("RuleFor(%q) found a rule", m)
		}
	}
}

type fakeTokens map[string]Principal

func (f fakeTokens) Verify(_ context.Context, tok string) (Principal, error) {
	if p, ok := f[tok]; ok {
		return p, nil
	}
	return Principal{}, ErrInvalidToken
}

type recorded struct{ methods []string }

func (r *recorded) RecordCall(_ context.Context, _ Principal, m string, _, _ proto.Message, _ error) {
	r.methods = append(r.methods, m)
}

func TestInterceptor(t *testing.T) {
	t.Parallel()
	toks := fakeTokens{
		"viewer": {Kind: KindToken, ID: "0000000000000001", Name: "v", Role: RoleViewer},
		"admin":  {Kind: KindToken, ID: "0000000000000002", Name: "a", Role: RoleAdmin},
	}
	cases := []struct {
		name     string
		insecure bool
		auth     []string
		method   string
		want     codes.Code
		audited  bool
	}{
		{"no credentials", false, nil, "ListSites", codes.Unauthenticated, false},
		{"insecure without credentials", true, nil, "CreateSite", codes.OK, true},
		{"insecure with a bad token", true, []string{"Bearer nope"}, "ListSites", codes.Unauthenticated, false},
		{"insecure with a viewer token", true, []string{"Bearer viewer"}, "CreateSite", codes.PermissionDenied, false},
		{"not bearer", false, []string{"Basic abc"}, "ListSites", codes.Unauthenticated, false},
		{"two headers", false, []string{"Bearer viewer", "Bearer admin"}, "ListSites", codes.Unauthenticated, false},
		{"viewer reads", false, []string{"Bearer viewer"}, "ListSites", codes.OK, false},
		{"viewer writes", false, []string{"bearer viewer"}, "ScanNow", codes.PermissionDenied, false},
		{"admin writes", false, []string{"Bearer admin"}, "CreateToken", codes.OK, true},
		{"unknown method", false, []string{"Bearer admin"}, "Nope", codes.PermissionDenied, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorded{}
			a := &Authorizer{Tokens: toks, Insecure: tc.insecure, Audit: rec}
			ctx := context.Background()
			if tc.auth != nil {
				md := metadata.MD{}
				for _, v := range tc.auth {
					md.Append("authorization", v)
				}
				ctx = metadata.NewIncomingContext(ctx, md)
			}
			called := false
			_, err := a.UnaryInterceptor()(ctx, &pb.ListSitesRequest{}, &grpc.UnaryServerInfo{FullMethod: adminService + tc.method},
				func(ctx context.Context, _ any) (any, error) {
					called = true
					if _, ok := FromContext(ctx); !ok {
						return nil, errors.New("no principal in the handler's context")
					}
					return &pb.ListSitesResponse{}, nil
				})
			if status.Code(err) != tc.want {
				t.Fatalf("code %v (%v); want %v", status.Code(err), err, tc.want)
			}
			if called != (tc.want == codes.OK) {
				t.Errorf("handler called = %v", called)
			}
			if (len(rec.methods) > 0) != tc.audited {
				t.Errorf("audited = %v; want %v", rec.methods, tc.audited)
			}
		})
	}
}

func TestOtherServicesPassThrough(t *testing.T) {
	t.Parallel()
	a := &Authorizer{}
	called := false
	_, err := a.UnaryInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/grpc.health.v1.Health/Check"},
		func(context.Context, any) (any, error) { called = true; return nil, nil })
	if err != nil || !called {
		t.Fatalf("health check: %v, called %v", err, called)
	}
}

func TestIdentityNeverEmpty(t *testing.T) {
	t.Parallel()
	for _, p := range []Principal{{Kind: KindToken, ID: "ab", Name: "n"}, {Kind: KindCertificate, Name: "CN=x"}, {Kind: KindInsecure, Peer: "127.0.0.1:5"}, {Kind: KindCLI, Name: "root"}} {
		if p.Identity() == "" || p.Identity() == "unknown" {
			t.Errorf("%+v: identity %q", p, p.Identity())
		}
	}
}

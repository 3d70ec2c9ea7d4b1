package admin

import (
	"context"
	"errors"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/scanorama/scanorama/agent/scanspec"
	"github.com/scanorama/scanorama/agent/scanspec/specpb"
	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/jobs"
	"github.com/scanorama/scanorama/gen/db"
	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// optionViolations turns scanspec validation errors into API field violations.
func optionViolations(prefix string, err error) []*apierr.FieldError {
	var out []*apierr.FieldError
	var walk func(error)
	walk = func(e error) {
		var fe *scanspec.FieldError
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if errors.As(e, &fe) {
			out = append(out, apierr.Field(prefix+fe.Field, "%s", fe.Reason))
			return
		}
		out = append(out, apierr.Field(strings.TrimSuffix(prefix, "."), "%v", e))
	}
	walk(err)
	return out
}

// CreateProfile implements AdminService.CreateProfile.
func (s *Server) CreateProfile(ctx context.Context, req *pb.CreateProfileRequest) (*pb.CreateProfileResponse, error) {
	var bad []*apierr.FieldError
	if !nameRe.MatchString(req.GetName()) {
		bad = append(bad, apierr.Field("name", "must be 1-63 lower-case letters, digits, '.', '_' or '-'; got %q", req.GetName()))
	}
	if len(req.GetDescription()) > 1024 {
		bad = append(bad, apierr.Field("description", "at most 1024 bytes"))
	}
	in := req.GetOptions()
	if in == nil {
		bad = append(bad, apierr.Field("options", "required"))
		return nil, apierr.Invalid(bad...)
	}
	// A profile may leave ports to its targets: validate as if one were given.
	probe := proto.Clone(in).(*pb.ScanOptions)
	if probe.GetPorts() == "" && probe.GetTopPorts() == 0 && probe.GetScanType() != pb.ScanType_SCAN_TYPE_PING {
		probe.Ports = "1"
		if probe.GetScanType() == pb.ScanType_SCAN_TYPE_UDP {
			probe.Ports = "U:1"
		}
	}
	opts, err := specpb.FromPB(probe)
	if err != nil {
		bad = append(bad, optionViolations("options.", err)...)
	}
	if len(bad) > 0 {
		return nil, apierr.Invalid(bad...)
	}
	p := db.CreateProfileParams{
		Name: req.GetName(), Description: req.GetDescription(), ScanType: string(opts.ScanType),
		Ports: in.GetPorts(), TopPorts: in.GetTopPorts(), ServiceDetection: opts.ServiceDetection,
		VersionLight: opts.VersionLight, OsDetection: opts.OSDetection,
		HostTimeoutSeconds: int32(opts.HostTimeout.Seconds()), MinRate: int32(opts.MinRate), MaxRate: int32(opts.MaxRate),
		Scripts: nonNilStrings(opts.Scripts), SkipHostDiscovery: opts.SkipHostDiscovery, CreatedBy: actor(ctx),
		PingMethods: []string{},
	}
	if in.GetPorts() != "" {
		p.Ports = opts.Ports.String()
	}
	if opts.VersionIntensity != scanspec.Unset {
		p.VersionIntensity = pgtype.Int2{Int16: int16(opts.VersionIntensity), Valid: true}
	}
	if opts.Timing != scanspec.Unset {
		p.Timing = pgtype.Int2{Int16: int16(opts.Timing), Valid: true}
	}
	if opts.MaxRetries != scanspec.Unset {
		p.MaxRetries = pgtype.Int2{Int16: int16(opts.MaxRetries), Valid: true}
	}
	for _, m := range opts.PingMethods {
		p.PingMethods = append(p.PingMethods, string(m))
	}
	row, err := s.q.CreateProfile(ctx, p)
	if err != nil {
		return nil, s.internal("create profile "+req.GetName(), err)
	}
	out, err := profilePB(row)
	if err != nil {
		return nil, s.internal("create profile "+req.GetName(), err)
	}
	return &pb.CreateProfileResponse{Profile: out}, nil
}

// ListProfiles implements AdminService.ListProfiles.
func (s *Server) ListProfiles(ctx context.Context, req *pb.ListProfilesRequest) (*pb.ListProfilesResponse, error) {
	var cur nameCursor
	rows, next, err := paginate(req, &cur, func(limit int32) ([]db.ScanProfile, error) {
		return s.q.ListProfiles(ctx, db.ListProfilesParams{AfterName: cur.Name, RowLimit: limit})
	}, func(r db.ScanProfile) nameCursor { return nameCursor{r.Name} })
	if err != nil {
		return nil, s.internal("list profiles", err)
	}
	resp := &pb.ListProfilesResponse{NextPageToken: next}
	for _, r := range rows {
		out, err := profilePB(r)
		if err != nil {
			return nil, s.internal("list profiles", err)
		}
		resp.Profiles = append(resp.Profiles, out)
	}
	return resp, nil
}

func profilePB(p db.ScanProfile) (*pb.Profile, error) {
	opts, err := jobs.ProfileOptions(p)
	if err != nil {
		return nil, err
	}
	return &pb.Profile{
		Id: p.ID.String(), Name: p.Name, Description: p.Description, Options: opts,
		Builtin: p.Builtin, CreatedAt: timestamppb.New(p.CreatedAt),
	}, nil
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

package state

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/scanorama/scanorama/gen/pb/scanorama/v1"
)

// enumCase checks one DB-string <-> API-enum mapping against every value the
// generated enum declares and every Go constant.
type enumCase struct {
	name   string
	desc   protoreflect.EnumDescriptor
	consts []string
	toPB   func(string) (protoreflect.EnumNumber, error)
	fromPB func(protoreflect.EnumNumber) (string, error)
	parse  func(string) error
}

func enumCases() []enumCase {
	return []enumCase{
		{
			name: "job status", desc: pb.JobStatus(0).Descriptor(), consts: strs(JobStatuses()),
			toPB: func(s string) (protoreflect.EnumNumber, error) {
				p, err := JobStatus(s).ToPB()
				return p.Number(), err
			},
			fromPB: func(n protoreflect.EnumNumber) (string, error) {
				s, err := JobStatusFromPB(pb.JobStatus(n))
				return string(s), err
			},
			parse: func(s string) error { _, err := ParseJobStatus(s); return err },
		},
		{
			name: "webhook format", desc: pb.WebhookFormat(0).Descriptor(), consts: strs(WebhookFormats()),
			toPB: func(s string) (protoreflect.EnumNumber, error) {
				p, err := WebhookFormat(s).ToPB()
				return p.Number(), err
			},
			fromPB: func(n protoreflect.EnumNumber) (string, error) {
				s, err := WebhookFormatFromPB(pb.WebhookFormat(n))
				return string(s), err
			},
			parse: func(s string) error { _, err := ParseWebhookFormat(s); return err },
		},
		{
			name: "delivery state", desc: pb.WebhookDeliveryState(0).Descriptor(), consts: strs(DeliveryStates()),
			toPB: func(s string) (protoreflect.EnumNumber, error) {
				p, err := DeliveryState(s).ToPB()
				return p.Number(), err
			},
			fromPB: func(n protoreflect.EnumNumber) (string, error) {
				s, err := DeliveryStateFromPB(pb.WebhookDeliveryState(n))
				return string(s), err
			},
			parse: func(s string) error { _, err := ParseDeliveryState(s); return err },
		},
	}
}

func TestEnumMappingsCoverEveryValue(t *testing.T) {
	t.Parallel()
	for _, c := range enumCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			values := c.desc.Values()
			mapped := 0
			for i := 0; i < values.Len(); i++ {
				v := values.Get(i)
				s, err := c.fromPB(v.Number())
				if v.Number() == 0 {
					if err == nil {
						t.Errorf("%s maps to %q; UNSPECIFIED must be an error", v.Name(), s)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", v.Name(), err)
					continue
				}
				mapped++
				back, err := c.toPB(s)
				if err != nil || back != v.Number() {
					t.Errorf("%s -> %q -> %d, %v; want the same value back", v.Name(), s, back, err)
				}
				if !slices.Contains(c.consts, s) {
					t.Errorf("%s -> %q, which is not a declared constant", v.Name(), s)
				}
			}
			if mapped != len(c.consts) {
				t.Errorf("%d enum values (without UNSPECIFIED) but %d constants %v", mapped, len(c.consts), c.consts)
			}
			for _, s := range c.consts {
				n, err := c.toPB(s)
				if err != nil || n == 0 {
					t.Errorf("constant %q -> %d, %v", s, n, err)
					continue
				}
				if back, err := c.fromPB(n); err != nil || back != s {
					t.Errorf("constant %q -> %d -> %q, %v", s, n, back, err)
				}
				if err := c.parse(s); err != nil {
					t.Errorf("parse(%q): %v", s, err)
				}
			}
			for _, bad := range unknownStrings(c.consts) {
				if n, err := c.toPB(bad); err == nil {
					t.Errorf("toPB(%q) = %d with no error", bad, n)
				}
				if err := c.parse(bad); err == nil {
					t.Errorf("parse(%q): no error", bad)
				}
			}
			if s, err := c.fromPB(protoreflect.EnumNumber(values.Len() + 100)); err == nil {
				t.Errorf("an undeclared enum number maps to %q", s)
			}
		})
	}
}

func TestVocabulariesParseOnlyTheirOwn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		consts []string
		parse  func(string) error
	}{
		{"agent state", strs(AgentStates()), func(s string) error { _, err := ParseAgentState(s); return err }},
		{"change event", strs(ChangeEvents()), func(s string) error { _, err := ParseChangeEvent(s); return err }},
		{"lease outcome", strs(LeaseOutcomes()), func(s string) error { _, err := ParseLeaseOutcome(s); return err }},
		{"job kind", strs(JobKinds()), func(s string) error { _, err := ParseJobKind(s); return err }},
		{"run outcome", strs(RunOutcomes()), func(s string) error { _, err := ParseRunOutcome(s); return err }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			if len(c.consts) == 0 {
				t.Fatal("no constants")
			}
			for _, s := range c.consts {
				if err := c.parse(s); err != nil {
					t.Errorf("parse(%q): %v", s, err)
				}
			}
			for _, bad := range unknownStrings(c.consts) {
				if err := c.parse(bad); err == nil {
					t.Errorf("parse(%q): no error", bad)
				}
			}
		})
	}
}

func TestUnfinished(t *testing.T) {
	t.Parallel()
	want := map[JobStatus]bool{JobPending: true, JobLeased: true, JobRunning: true}
	for _, s := range JobStatuses() {
		if got := s.Unfinished(); got != want[s] {
			t.Errorf("%s.Unfinished() = %v, want %v", s, got, want[s])
		}
	}
}

func TestDuplicateDeclarationsPanic(t *testing.T) {
	t.Parallel()
	for name, fn := range map[string]func(){
		"vocab":       func() { newVocab("x", "a", "a") },
		"unspecified": func() { newMapping("x", pair[JobStatus, pb.JobStatus]{JobPending, 0}) },
		"enum twice": func() {
			newMapping("x", pair[JobStatus, pb.JobStatus]{JobPending, 1}, pair[JobStatus, pb.JobStatus]{JobLeased, 1})
		},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

// unknownStrings are near misses of valid values: case, spacing, the API
// spelling, and the empty string.
func unknownStrings(valid []string) []string {
	out := []string{"", "unspecified", "UNSPECIFIED", "nonsense"}
	for _, s := range valid {
		out = append(out, s+" ", " "+s, s+"x")
		if up := upperOf(s); up != s {
			out = append(out, up)
		}
	}
	return out
}

func upperOf(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func strs[S ~string](in []S) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = string(s)
	}
	return out
}

package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scanorama/scanorama/controller/apierr"
	"github.com/scanorama/scanorama/controller/ingest"
	"github.com/scanorama/scanorama/controller/leasing"
)

func pgErr(code string) error {
	return fmt.Errorf("insert: %w", &pgconn.PgError{Code: code, Message: "msg " + code, ConstraintName: "c_" + code})
}

// TestTranslate is the whole mapping, for both kinds of caller.
func TestTranslate(t *testing.T) {
	t.Parallel()
	passThrough := apierr.InvalidField("name", "bad")
	cases := []struct {
		name         string
		err          error
		people       codes.Code
		agents       codes.Code
		msgHas       string // in both messages
		peopleMsgHas string
	}{
		{"nil", nil, codes.OK, codes.OK, "", ""},
		{"a status passes through", passThrough, codes.InvalidArgument, codes.InvalidArgument, "name: bad", ""},
		{"wrapped status passes through", fmt.Errorf("tx: %w", status.Error(codes.NotFound, "gone")), codes.NotFound, codes.NotFound, "gone", ""},
		{"canceled", fmt.Errorf("query: %w", context.Canceled), codes.Canceled, codes.Canceled, "", ""},
		{"deadline", fmt.Errorf("query: %w", context.DeadlineExceeded), codes.DeadlineExceeded, codes.DeadlineExceeded, "", ""},
		{"lease lost", fmt.Errorf("%w: job x is now at lease token 3", leasing.ErrLeaseLost), codes.FailedPrecondition, codes.FailedPrecondition, "lease lost: job x", ""},
		{"incomplete stream", ingest.ErrIncomplete, codes.Aborted, codes.Aborted, "before its summary", ""},
		{"unique violation", pgErr("23505"), codes.AlreadyExists, codes.Unavailable, "do it", "already exists (c_23505)"},
		{"foreign key violation", pgErr("23503"), codes.FailedPrecondition, codes.Unavailable, "do it", "still referenced (c_23503)"},
		{"check violation", pgErr("23514"), codes.InvalidArgument, codes.Unavailable, "do it", "msg 23514"},
		{"invalid text representation", pgErr("22P02"), codes.InvalidArgument, codes.Unavailable, "do it", "msg 22P02"},
		{"string too long", pgErr("22001"), codes.InvalidArgument, codes.Unavailable, "do it", "msg 22001"},
		{"row-level security", pgErr("42501"), codes.PermissionDenied, codes.Unavailable, "do it", "outside its sites"},
		{"serialization failure", pgErr("40001"), codes.Aborted, codes.Unavailable, "retry", ""},
		{"deadlock", pgErr("40P01"), codes.Aborted, codes.Unavailable, "retry", ""},
		{"admin shutdown", pgErr("57P01"), codes.Unavailable, codes.Unavailable, "database unavailable", ""},
		{"too many connections", pgErr("53300"), codes.Unavailable, codes.Unavailable, "database unavailable", ""},
		{"other database error", pgErr("XX000"), codes.Internal, codes.Unavailable, "do it", "see the controller log"},
		{"transaction closed", fmt.Errorf("commit: %w", pgx.ErrTxClosed), codes.Internal, codes.Unavailable, "do it", "see the controller log"},
		{"cannot connect", connectError(t), codes.Unavailable, codes.Unavailable, "database unavailable", ""},
		{"anything else", errors.New("disk on fire"), codes.Internal, codes.Unavailable, "do it", "see the controller log"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for _, who := range []struct {
				name string
				tr   apierr.Translator
				want codes.Code
			}{{"people", apierr.People, c.people}, {"agents", apierr.Agents, c.agents}} {
				got := who.tr.Err(hclog.NewNullLogger(), "do it", c.err)
				if c.err == nil {
					if got != nil {
						t.Errorf("%s: nil became %v", who.name, got)
					}
					continue
				}
				st, ok := status.FromError(got)
				if !ok {
					t.Fatalf("%s: %v is not a status", who.name, got)
				}
				if st.Code() != who.want {
					t.Errorf("%s: code %s (%q), want %s", who.name, st.Code(), st.Message(), who.want)
				}
				if !strings.Contains(st.Message(), c.msgHas) {
					t.Errorf("%s: message %q lacks %q", who.name, st.Message(), c.msgHas)
				}
				if who.name == "people" && !strings.Contains(st.Message(), c.peopleMsgHas) {
					t.Errorf("%s: message %q lacks %q", who.name, st.Message(), c.peopleMsgHas)
				}
			}
		})
	}
}

// connectError is a real *pgconn.ConnectError: a connection to a loopback
// port this test opened and closed again, so nothing listens there.
func connectError(t *testing.T) error {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = pgconn.Connect(ctx, "postgres://nobody@"+addr+"/none?sslmode=disable")
	var ce *pgconn.ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("connect to a closed port: %v, want a ConnectError", err)
	}
	return err
}

// TestSentinelsStayComparable: errors.Is still finds the domain errors
// through wrapping after they became sentinels with a code.
func TestSentinelsStayComparable(t *testing.T) {
	t.Parallel()
	wrapped := fmt.Errorf("fail job: %w", fmt.Errorf("%w: job is failed", leasing.ErrLeaseLost))
	if !errors.Is(wrapped, leasing.ErrLeaseLost) {
		t.Error("errors.Is lost ErrLeaseLost")
	}
	if errors.Is(wrapped, ingest.ErrIncomplete) {
		t.Error("ErrLeaseLost matched ErrIncomplete")
	}
	if leasing.ErrLeaseLost.Error() != "lease lost" {
		t.Errorf("message changed: %q", leasing.ErrLeaseLost.Error())
	}
}

func TestIsUniqueViolation(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		err  error
		want bool
	}{{pgErr("23505"), true}, {pgErr("23503"), false}, {errors.New("23505"), false}, {nil, false}} {
		if got := apierr.IsUniqueViolation(c.err); got != c.want {
			t.Errorf("IsUniqueViolation(%v) = %v", c.err, got)
		}
	}
}

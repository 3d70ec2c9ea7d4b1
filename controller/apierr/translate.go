package apierr

import (
	"context"
	"errors"

	"github.com/hashicorp/go-hclog"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Sentinel returns an error value that carries its own gRPC code, for a
// package's exported error variables (leasing.ErrLeaseLost,
// ingest.ErrIncomplete): the translator maps them without importing their
// packages, and errors.Is keeps working through %w.
func Sentinel(code codes.Code, msg string) error { return &sentinel{code: code, msg: msg} }

type sentinel struct {
	code codes.Code
	msg  string
}

func (e *sentinel) Error() string { return e.msg }

// apiCode is implemented by errors that know which gRPC code they are.
type apiCode interface{ APICode() codes.Code }

func (e *sentinel) APICode() codes.Code { return e.code }

// Translator turns an error from below the API (the database, a context, a
// domain sentinel) into the gRPC status a caller sees. Both services use it;
// they differ only in who the caller is.
type Translator struct {
	// Unexpected is the code of an error that is nobody's mistake the caller
	// could fix.
	Unexpected codes.Code
	// RetryDatabase makes every database error UNAVAILABLE, constraint
	// violations included. Agents retry UNAVAILABLE and keep their spooled
	// results, but drop results on INVALID_ARGUMENT and FAILED_PRECONDITION
	// (agent/worker/deliver.go): a database fault must never cost data.
	RetryDatabase bool
}

var (
	// People is for AdminService: constraint violations that slipped past
	// validation are the caller's mistake; anything else is INTERNAL and
	// logged, with no detail on the wire.
	People = Translator{Unexpected: codes.Internal}
	// Agents is for AgentService: anything that is not the agent's fault is
	// UNAVAILABLE, so it retries.
	Agents = Translator{Unexpected: codes.Unavailable, RetryDatabase: true}
)

// PostgreSQL error codes the translator knows.
const (
	pgUniqueViolation      = "23505"
	pgForeignKeyViolation  = "23503"
	pgCheckViolation       = "23514"
	pgInvalidTextRepr      = "22P02"
	pgStringTooLong        = "22001"
	pgInsufficientPriv     = "42501" // row-level security or a missing grant
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgAdminShutdown        = "57P01"
	pgCannotConnectNow     = "57P03"
	pgTooManyConnections   = "53300"
)

// Err maps err for the call described by what ("create target", "fail
// job"). A gRPC status passes through unchanged; nil stays nil.
func (t Translator) Err(log hclog.Logger, what string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	var coded apiCode
	if errors.As(err, &coded) {
		return status.Error(coded.APICode(), err.Error())
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) || pgconn.SafeToRetry(err) {
		// The statement never reached the server: nothing happened.
		log.Error(what+" failed", "error", err)
		return status.Errorf(codes.Unavailable, "%s: database unavailable; retry later", what)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxClosed) {
		if st := t.database(what, pgErr); st != nil {
			return st
		}
		log.Error(what+" failed", "error", err)
		if t.RetryDatabase {
			return status.Errorf(codes.Unavailable, "%s: database error; retry later", what)
		}
		return status.Errorf(t.Unexpected, "%s failed; see the controller log", what)
	}
	log.Error(what+" failed", "error", err)
	if t.Unexpected == codes.Internal {
		return status.Errorf(codes.Internal, "%s failed; see the controller log", what)
	}
	return status.Errorf(t.Unexpected, "%s: %v", what, err)
}

// database maps the PostgreSQL errors that mean something to a caller; nil
// for the rest (logged and sent as Unexpected).
func (t Translator) database(what string, pgErr *pgconn.PgError) error {
	if pgErr == nil {
		return nil
	}
	switch pgErr.Code {
	case pgSerializationFailure, pgDeadlockDetected:
		// A concurrent transaction won: the same call may succeed again.
		if t.RetryDatabase {
			return status.Errorf(codes.Unavailable, "%s: concurrent update; retry", what)
		}
		return status.Errorf(codes.Aborted, "%s: conflicted with a concurrent change; retry", what)
	case pgAdminShutdown, pgCannotConnectNow, pgTooManyConnections:
		return status.Errorf(codes.Unavailable, "%s: database unavailable; retry later", what)
	}
	if t.RetryDatabase {
		return nil
	}
	switch pgErr.Code {
	case pgUniqueViolation:
		return status.Errorf(codes.AlreadyExists, "%s: already exists (%s)", what, pgErr.ConstraintName)
	case pgForeignKeyViolation:
		return status.Errorf(codes.FailedPrecondition, "%s: still referenced (%s)", what, pgErr.ConstraintName)
	case pgInsufficientPriv:
		return status.Errorf(codes.PermissionDenied, "%s: not allowed for this caller (outside its sites)", what)
	case pgCheckViolation, pgInvalidTextRepr, pgStringTooLong:
		return status.Errorf(codes.InvalidArgument, "%s: %s", what, pgErr.Message)
	}
	return nil
}

// IsUniqueViolation says err is PostgreSQL's unique_violation, for callers
// that name the clashing field themselves.
func IsUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == pgUniqueViolation
}

// Package apierr builds the gRPC errors both controller services return, so
// that every user mistake reads the same way: INVALID_ARGUMENT with a
// google.rpc.BadRequest naming the field, NOT_FOUND naming what was missing;
// and the one translation of errors from below the API (PostgreSQL codes,
// context errors, lost leases, incomplete streams) into gRPC statuses
// (translate.go), so a service never invents its own.
package apierr

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FieldError is one invalid field.
type FieldError struct {
	Field       string
	Description string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Description }

// Field returns a FieldError for field.
func Field(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Description: fmt.Sprintf(format, args...)}
}

// Invalid returns INVALID_ARGUMENT listing every violation in the message
// and as google.rpc.BadRequest details.
func Invalid(violations ...*FieldError) error {
	br := &errdetails.BadRequest{}
	msgs := make([]string, 0, len(violations))
	for _, v := range violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.Field, Description: v.Description,
		})
		msgs = append(msgs, v.Error())
	}
	st := status.New(codes.InvalidArgument, strings.Join(msgs, "; "))
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// InvalidField is Invalid with a single violation.
func InvalidField(field, format string, args ...any) error {
	return Invalid(Field(field, format, args...))
}

// NotFound returns NOT_FOUND for a missing object named by field.
func NotFound(field, format string, args ...any) error {
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: field, Description: fmt.Sprintf(format, args...),
	}}}
	st := status.New(codes.NotFound, field+": "+fmt.Sprintf(format, args...))
	if withDetails, err := st.WithDetails(br); err == nil {
		st = withDetails
	}
	return st.Err()
}

// FailedPrecondition returns FAILED_PRECONDITION: the request is well formed
// but the object's state does not allow it.
func FailedPrecondition(field, format string, args ...any) error {
	return status.Errorf(codes.FailedPrecondition, "%s: %s", field, fmt.Sprintf(format, args...))
}

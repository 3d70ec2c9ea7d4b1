package admin

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/scanorama/scanorama/controller/apierr"
)

const (
	defaultPageSize = 50
	maxPageSize     = 1000
)

func pageSize(n int32) (int32, error) {
	switch {
	case n < 0:
		return 0, apierr.InvalidField("page_size", "must not be negative, got %d", n)
	case n == 0:
		return defaultPageSize, nil
	case n > maxPageSize:
		return maxPageSize, nil
	}
	return n, nil
}

// Page tokens are opaque to clients: base64 of a JSON keyset cursor, so a
// page stays stable while rows are inserted concurrently.
func encodeToken(cursor any) string {
	b, _ := json.Marshal(cursor)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(tok string, cursor any) error {
	if tok == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || json.Unmarshal(b, cursor) != nil {
		return apierr.InvalidField("page_token", "not a token returned by this API")
	}
	return nil
}

// Cursors shared by the lists: by name, and by (creation time, id).
type nameCursor struct{ Name string }

type timeCursor struct {
	Created time.Time
	ID      uuid.UUID
}

type pageRequest interface {
	GetPageSize() int32
	GetPageToken() string
}

// paginate runs one keyset-paged list: it decodes the request's cursor into
// cur, fetches one row more than the page holds, and returns the page and
// the token for the next one (empty on the last page). Errors are ready for
// Server.internal: validation errors are already gRPC statuses.
func paginate[R, C any](req pageRequest, cur *C, fetch func(limit int32) ([]R, error), cursorOf func(last R) C) ([]R, string, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, "", err
	}
	if err := decodeToken(req.GetPageToken(), cur); err != nil {
		return nil, "", err
	}
	rows, err := fetch(size + 1)
	if err != nil {
		return nil, "", err
	}
	if int32(len(rows)) > size {
		return rows[:size], encodeToken(cursorOf(rows[size-1])), nil
	}
	return rows, "", nil
}

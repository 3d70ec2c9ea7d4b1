package admin

import (
	"encoding/base64"
	"encoding/json"

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

// Package pguuid owns how the controller's connections read and write
// PostgreSQL uuids as github.com/google/uuid values: straight from and to
// the 16 bytes of the binary format. pgx would otherwise go through uuid's
// sql.Scanner, formatting every uuid as text only for uuid.Parse to turn
// it back (measured: a tenth of the controller's CPU reading a
// 50,000-change webhook burst, three uuids a row). Writing went the same
// long way for every uuid parameter and every element of a uuid[] one:
// uuid's driver.Valuer formats the text, pgx fails to encode that string
// as a binary uuid (formatting an error message it then drops), parses
// the text back and encodes the result. Every other value and target, and
// the text format, keeps pgx's own plans.
package pguuid

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/internal/afterconnect"
)

// ConfigurePool registers the codec on every connection of the pool, after
// whatever AfterConnect the config already has.
func ConfigurePool(cfg *pgxpool.Config) {
	afterconnect.Add(cfg, func(_ context.Context, conn *pgx.Conn) error {
		Register(conn.TypeMap())
		return nil
	})
}

// Register replaces the uuid type's codec in m, and uuid[]'s element type.
func Register(m *pgtype.Map) {
	t := &pgtype.Type{Name: "uuid", OID: pgtype.UUIDOID, Codec: codec{}}
	m.RegisterType(t)
	m.RegisterType(&pgtype.Type{Name: "_uuid", OID: pgtype.UUIDArrayOID, Codec: &pgtype.ArrayCodec{ElementType: t}})
}

// codec is pgx's UUIDCodec with direct binary plans for google/uuid values
// and targets.
type codec struct{ pgtype.UUIDCodec }

func (c codec) PlanScan(m *pgtype.Map, oid uint32, format int16, target any) pgtype.ScanPlan {
	if format == pgtype.BinaryFormatCode {
		switch target.(type) {
		case *uuid.UUID:
			return scanUUID{}
		case *uuid.NullUUID:
			return scanNullUUID{}
		}
	}
	return c.UUIDCodec.PlanScan(m, oid, format, target)
}

func (c codec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if format == pgtype.BinaryFormatCode {
		switch value.(type) {
		case uuid.UUID:
			return encodeUUID{}
		case uuid.NullUUID:
			return encodeNullUUID{}
		}
	}
	return c.UUIDCodec.PlanEncode(m, oid, format, value)
}

// encodeUUID writes the 16 bytes.
type encodeUUID struct{}

func (encodeUUID) Encode(value any, buf []byte) ([]byte, error) {
	u := value.(uuid.UUID)
	return append(buf, u[:]...), nil
}

// encodeNullUUID writes the 16 bytes, or NULL (a nil buffer, to pgx) for
// an invalid value, as uuid.NullUUID's Value does.
type encodeNullUUID struct{}

func (encodeNullUUID) Encode(value any, buf []byte) ([]byte, error) {
	n := value.(uuid.NullUUID)
	if !n.Valid {
		return nil, nil
	}
	return append(buf, n.UUID[:]...), nil
}

// scanUUID does what uuid.UUID's Scan does with the value, NULL included
// (it leaves the target as it was).
type scanUUID struct{}

func (scanUUID) Scan(src []byte, dst any) error {
	if src == nil {
		return nil
	}
	if len(src) != len(uuid.UUID{}) {
		return fmt.Errorf("invalid length for uuid: %d", len(src))
	}
	copy(dst.(*uuid.UUID)[:], src)
	return nil
}

// scanNullUUID does what uuid.NullUUID's Scan does: NULL is the zero,
// invalid value.
type scanNullUUID struct{}

func (scanNullUUID) Scan(src []byte, dst any) error {
	n := dst.(*uuid.NullUUID)
	if src == nil {
		*n = uuid.NullUUID{}
		return nil
	}
	if err := (scanUUID{}).Scan(src, &n.UUID); err != nil {
		return err
	}
	n.Valid = true
	return nil
}

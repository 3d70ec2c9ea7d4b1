// Package pguuid owns how the controller's connections read PostgreSQL
// uuids into github.com/google/uuid values: straight from the 16 bytes of
// the binary format. pgx would otherwise go through uuid's sql.Scanner,
// formatting every uuid as text only for uuid.Parse to turn it back
// (measured: a tenth of the controller's CPU reading a 50,000-change
// webhook burst, three uuids a row). Every other target, and the text
// format, keeps pgx's own plans.
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

// codec is pgx's UUIDCodec with direct binary plans for google/uuid targets.
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

package pguuid_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/scanorama/scanorama/controller/internal/pguuid"
	"github.com/scanorama/scanorama/controller/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Every target reads what it read before the codec, in both formats and
// for NULL; the google/uuid ones now straight from the binary bytes.
func TestScansAsBeforeWithAndWithoutTheCodec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast := pgtest.NewPool(t) // pgtest's pools carry the codec, as the controller's do
	plain, err := pgxpool.New(ctx, fast.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	const id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	want := uuid.MustParse(id)
	sentinel := uuid.MustParse("00000000-0000-0000-0000-0000000000ff")
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
		for _, tc := range []struct {
			name  string
			sql   string
			dst   func() any
			check func(t *testing.T, got any)
		}{
			{"uuid", "SELECT '" + id + "'::uuid", func() any { return new(uuid.UUID) }, func(t *testing.T, got any) {
				if *got.(*uuid.UUID) != want {
					t.Errorf("got %v", got)
				}
			}},
			{"NULL into uuid leaves it", "SELECT NULL::uuid", func() any { u := sentinel; return &u }, func(t *testing.T, got any) {
				if *got.(*uuid.UUID) != sentinel {
					t.Errorf("got %v", got)
				}
			}},
			{"null uuid", "SELECT '" + id + "'::uuid", func() any { return new(uuid.NullUUID) }, func(t *testing.T, got any) {
				if n := *got.(*uuid.NullUUID); !n.Valid || n.UUID != want {
					t.Errorf("got %+v", n)
				}
			}},
			{"NULL into null uuid", "SELECT NULL::uuid", func() any { return &uuid.NullUUID{UUID: sentinel, Valid: true} }, func(t *testing.T, got any) {
				if n := *got.(*uuid.NullUUID); n.Valid || n.UUID != uuid.Nil {
					t.Errorf("got %+v", n)
				}
			}},
			{"array", "SELECT ARRAY['" + id + "'::uuid, '" + sentinel.String() + "']", func() any { return new([]uuid.UUID) }, func(t *testing.T, got any) {
				if g := *got.(*[]uuid.UUID); len(g) != 2 || g[0] != want || g[1] != sentinel {
					t.Errorf("got %v", g)
				}
			}},
			{"string", "SELECT '" + id + "'::uuid", func() any { return new(string) }, func(t *testing.T, got any) {
				if *got.(*string) != id {
					t.Errorf("got %v", *got.(*string))
				}
			}},
			{"pgtype", "SELECT '" + id + "'::uuid", func() any { return new(pgtype.UUID) }, func(t *testing.T, got any) {
				if g := *got.(*pgtype.UUID); !g.Valid || g.Bytes != want {
					t.Errorf("got %+v", g)
				}
			}},
		} {
			for name, pool := range map[string]*pgxpool.Pool{"plain": plain, "codec": fast} {
				dst := tc.dst()
				if err := pool.QueryRow(ctx, tc.sql, mode).Scan(dst); err != nil {
					t.Fatalf("%s %s (mode %v): %v", name, tc.name, mode, err)
				}
				t.Run(name+"/"+tc.name, func(t *testing.T) { tc.check(t, dst) })
			}
		}
	}
	conn, err := fast.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	for _, dst := range []any{new(uuid.UUID), new(uuid.NullUUID)} {
		if plan := fmt.Sprintf("%T", conn.Conn().TypeMap().PlanScan(pgtype.UUIDOID, pgtype.BinaryFormatCode, dst)); plan != "pguuid.scanUUID" && plan != "pguuid.scanNullUUID" {
			t.Errorf("%T is read by %s, not straight from the bytes", dst, plan)
		}
	}
	// A uuid the codec reads is one the server accepts back as a parameter.
	var echoed uuid.UUID
	if err := fast.QueryRow(ctx, "SELECT $1::uuid", want).Scan(&echoed); err != nil || echoed != want {
		t.Fatalf("round trip: %v %v", echoed, err)
	}
}

// Parameters arrive as the server would read them from text, NULL
// included, and google/uuid values and lists of them go out as their 16
// bytes rather than through uuid's driver.Valuer.
func TestWritesAsBeforeWithAndWithoutTheCodec(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fast := pgtest.NewPool(t)
	plain, err := pgxpool.New(ctx, fast.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()

	a, b := uuid.MustParse("7c9e6679-7425-40de-944b-e07fc1f90ae7"), uuid.MustParse("00000000-0000-0000-0000-0000000000ff")
	for _, tc := range []struct {
		name string
		sql  string
		arg  any
		want string
		// extended: pgx sends lists in the extended protocol only (in the
		// simple one it has no type to format them by, codec or not).
		extended bool
	}{
		{"uuid", "SELECT $1::uuid::text", a, a.String(), false},
		{"null uuid", "SELECT $1::uuid::text", uuid.NullUUID{UUID: a, Valid: true}, a.String(), false},
		{"invalid null uuid", "SELECT coalesce($1::uuid::text, 'NULL')", uuid.NullUUID{UUID: a}, "NULL", false},
		{"string", "SELECT $1::uuid::text", a.String(), a.String(), false},
		{"pgtype", "SELECT $1::uuid::text", pgtype.UUID{Bytes: b, Valid: true}, b.String(), false},
		{"list", "SELECT $1::uuid[]::text", []uuid.UUID{a, b}, "{" + a.String() + "," + b.String() + "}", true},
		{"empty list", "SELECT $1::uuid[]::text", []uuid.UUID{}, "{}", true},
		{"list of null uuids", "SELECT $1::uuid[]::text", []uuid.NullUUID{{UUID: a, Valid: true}, {}}, "{" + a.String() + ",NULL}", true},
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeSimpleProtocol} {
			if tc.extended && mode == pgx.QueryExecModeSimpleProtocol {
				continue
			}
			for name, pool := range map[string]*pgxpool.Pool{"plain": plain, "codec": fast} {
				var got string
				if err := pool.QueryRow(ctx, tc.sql, mode, tc.arg).Scan(&got); err != nil {
					t.Fatalf("%s %s (mode %v): %v", name, tc.name, mode, err)
				}
				if got != tc.want {
					t.Errorf("%s %s (mode %v): got %s, want %s", name, tc.name, mode, got, tc.want)
				}
			}
		}
	}
	conn, err := fast.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	m := conn.Conn().TypeMap()
	for _, v := range []any{a, uuid.NullUUID{UUID: a, Valid: true}} {
		if plan := fmt.Sprintf("%T", m.PlanEncode(pgtype.UUIDOID, pgtype.BinaryFormatCode, v)); plan != "pguuid.encodeUUID" && plan != "pguuid.encodeNullUUID" {
			t.Errorf("%T is written by %s, not as its bytes", v, plan)
		}
	}
	if _, err := m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, []uuid.UUID{a, b}, nil); err != nil {
		t.Errorf("[]uuid.UUID does not encode as a binary uuid[]: %v", err)
	}
}

// BenchmarkEncodeList writes a page's worth of host ids as a uuid[]
// parameter, with pgx's plans and with the codec's.
func BenchmarkEncodeList(b *testing.B) {
	ids := make([]uuid.UUID, 250)
	for i := range ids {
		ids[i] = uuid.New()
	}
	for _, withCodec := range []bool{false, true} {
		m := pgtype.NewMap()
		if withCodec {
			pguuid.Register(m)
		}
		b.Run(fmt.Sprintf("codec=%v", withCodec), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = m.Encode(pgtype.UUIDArrayOID, pgtype.BinaryFormatCode, ids, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

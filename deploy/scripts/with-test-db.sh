#!/usr/bin/env bash
# with-test-db.sh CMD...: run CMD with SCANORAMA_TEST_DATABASE_URL pointing at
# one throwaway PostgreSQL cluster (pgserver-dev, fsync off) that every test
# binary of the run shares, and remove the cluster afterwards, whatever CMD's
# outcome. A URL already in the environment is used as it is.
set -euo pipefail
if [ -n "${SCANORAMA_TEST_DATABASE_URL:-}" ]; then
	exec "$@"
fi
cd "$(dirname "$0")/../.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/scanorama-test-pg.XXXXXX")
pgdev=(go run ./controller/pgserver/cmd/pgserver-dev)
cleanup() { "${pgdev[@]}" stop -data-dir "$dir" -remove >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
eval "$("${pgdev[@]}" start -data-dir "$dir" -export)"
export SCANORAMA_TEST_DATABASE_URL
"$@"

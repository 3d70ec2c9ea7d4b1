#!/usr/bin/env bash
# test.sh: the body of `make test` after check-gen and lint-fast. Runs every
# test (-race) against one shared throwaway PostgreSQL and golangci-lint.
# The first run builds golangci-lint from source (minutes on a 2-core
# machine), so that build runs niced alongside the tests instead of before
# them; the linter itself runs last.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=$(mktemp "${TMPDIR:-/tmp}/scanorama-golangci-build.XXXXXX")
trap 'rm -f "$log"' EXIT
nice -n 10 make -s golangci-lint >"$log" 2>&1 &
build=$!
rc=0
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags
deploy/scripts/with-test-db.sh go test ${GO_TEST_FLAGS:--race -count=1} ./... || rc=$?
if ! wait "$build"; then
	echo "test.sh: building golangci-lint failed:" >&2
	cat "$log" >&2
	exit 1
fi
bin/golangci-lint run ./... || rc=1
exit "$rc"

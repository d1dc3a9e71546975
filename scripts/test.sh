#!/usr/bin/env bash
# The one command that runs every test of the project:
#
#   ./scripts/test.sh
#
# On a fresh Debian machine with only Go it installs what the tests need
# (vorbis-tools and flac for the real-encoder fixtures, PostgreSQL for the
# ledger tests, started as a throwaway cluster on 127.0.0.1), then runs
# go vet, every package's tests under the race detector, and each fuzz
# target briefly (FUZZTIME, default 5s).
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5s}

need=()
command -v oggenc >/dev/null || need+=(vorbis-tools)
command -v flac >/dev/null || need+=(flac)
if ((${#need[@]})); then
	echo "test.sh: installing ${need[*]}" >&2
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi

# PostgreSQL for the ledger tests: installed if missing, started on a free
# loopback port, PLAYS_TEST_PG_DSN exported, stopped when this shell exits.
# shellcheck source=scripts/pg-test.sh
source scripts/pg-test.sh

echo "== go vet" >&2
go vet ./...

echo "== go test -race" >&2
go test -race -count=1 -timeout 40m ./...

echo "== fuzzing, $FUZZTIME per target" >&2
fuzz() { # package target
	go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$FUZZTIME"
}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		fuzz "$pkg" "$target"
	done
done
echo "== all tests passed" >&2

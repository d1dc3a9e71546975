#!/usr/bin/env bash
# The HTTP caching conformance suite (http-tests/cache-tests, npm package
# http-cache-tests) against an edge in http mode.
#
# It installs the suite into bench/out/cache-tests when missing, starts the
# suite's origin (server/server.mjs on 127.0.0.1:8000), starts cmd/edge on
# 127.0.0.1:8100 with the contract configuration (one http route, /, whose
# upstream is the suite's server: no keys, shields or cluster), runs every
# test, writes the results to bench/cache-tests-results.json and prints the
# score and the failing tests by suite. The score counts the tests the
# suite runs against a shared cache (its browser_only tests are skipped:
# 350 of 355 in 0.4.5) and a test passes when its result is true.
#
#   bench/cache-tests.sh [test-id]    # one test, verbose, when an id is given
#
# Needs node (>= 14.8) and npm. Both processes are stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=${CACHE_TESTS_VERSION:-0.4.5}
DIR=${CACHE_TESTS_DIR:-bench/out/cache-tests}
RESULTS=${CACHE_TESTS_RESULTS:-bench/cache-tests-results.json}
SUITE=$DIR/node_modules/http-cache-tests
if [ ! -f "$SUITE/cli.mjs" ] || ! grep -q "\"version\": \"$VERSION\"" "$SUITE/package.json"; then
	mkdir -p "$DIR"
	(cd "$DIR" && npm install --silent --no-audit --no-fund "http-cache-tests@$VERSION" >/dev/null)
fi
SUITE=$(cd "$SUITE" && pwd)
WORK=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/edge.yaml" <<'YAML'
name: edge-1
role: edge
listen: 127.0.0.1:8100
routes:
  - {prefix: /, mode: http, upstreams: ["http://127.0.0.1:8000"]}
YAML
go build -o "$WORK/edge" ./cmd/edge

(cd "$SUITE" && npm_config_protocol=http npm_config_port=8000 npm_config_pidfile="$WORK/server.pid" \
	exec node server/server.mjs) >"$WORK/server.log" 2>&1 &
pids+=($!)
"$WORK/edge" -config "$WORK/edge.yaml" 2>"$WORK/edge.log" &
pids+=($!)
for _ in $(seq 100); do
	if curl -fso /dev/null http://127.0.0.1:8100/healthz && curl -so /dev/null http://127.0.0.1:8000/; then
		break
	fi
	sleep 0.1
done

run() {
	(cd "$SUITE" && npm_config_base=http://127.0.0.1:8100 npm_config_id="$1" npm_package_config_id="$1" \
		node --no-warnings cli.mjs)
}
if [ $# -gt 0 ]; then
	run "$1"
	exit 0
fi
run "" >"$WORK/results.json"
cp "$WORK/results.json" "$RESULTS"
node --input-type=module - "$SUITE" "$RESULTS" <<'JS'
import fs from 'fs'
const [suite, file] = process.argv.slice(2)
const { default: tests } = await import(suite + '/tests/index.mjs')
const { default: surrogate } = await import(suite + '/tests/surrogate-control.mjs')
tests.push(surrogate)
const results = JSON.parse(fs.readFileSync(file))
let pass = 0, total = 0
const failed = {}
const partial = [0, 0]
for (const s of tests) {
  for (const t of s.tests) {
    if (t.browser_only) continue // private-cache tests: the runner skips them for a shared cache
    total++
    const r = results[t.id]
    const ok = r === true
    if (ok) pass++
    else (failed[s.id] ||= []).push(t.id + (t.kind ? ` (${t.kind})` : ''))
    if (s.id === 'partial') { partial[1]++; if (ok) partial[0]++ }
  }
}
for (const [id, list] of Object.entries(failed)) console.log(`failing in ${id}: ${list.join(', ')}`)
console.log(`partial content: ${partial[0]} of ${partial[1]}`)
console.log(`score: ${pass} of ${total} (${(100 * pass / total).toFixed(1)} %)`)
JS

#!/usr/bin/env bash
# Chaos suite: six faults, each on a fresh POP of separate processes on
# loopback (cmd/origin, 2 x cmd/shield with disk tiers, 3 x cmd/edge,
# gossip with a shared key, every node adding itself to the addr file),
# driven by the load tool (manifests minted by the edges, --failover to
# the next edge as a load balancer would) and a probe that asks every
# edge for one cached and one uncached range every 0.5 s.
#
#   bench/chaos.sh [--duration S] [--json FILE] [--only SCENARIO[,SCENARIO]] [--rate R] [--no-failover]
#
# Scenarios: baseline, shield-kill (kill -9 a shield, restart 20 s
# later), edge-kill (kill -9 an edge, restart), edge-term (SIGTERM an
# edge, restart), origin-down (the origin process killed for 60 s, then
# restarted on its data), edge-stop (SIGSTOP an edge for 20 s). Each run
# lasts S seconds (default 60; origin-down at least 90), the fault starts
# at S/3 (origin-down: 20 s). Printed per scenario: requests, errors,
# verify failures, track starts and their errors, p99 TTFB over all
# requests (a failed one at its time to failure), p99 in the window
# before the fault (as long as the fault) and during it (edge-stop: over
# the listeners of the other edges only), recovery time (the first second
# after the fault from which every second has no error and a p99 within
# 2x the baseline window's), the probe's failures and slowest answer, and
# each role's peak RSS against its configured cache budgets.
#
# --json FILE writes a list of objects, one per scenario, with at least
# scenario, requests, errors, verify_failures, track_starts,
# track_start_errors, p99_ms, baseline_window_p99_ms, fault_window_p99_ms.
#
# The machine is shared: every process runs with GOMAXPROCS=1 and runs
# are short. Everything listens on 127.0.0.1 and is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(mktemp -d /tmp/chaos-bin.XXXXXX)
trap 'rm -rf "$BIN"' EXIT
go build -o "$BIN/" ./cmd/origin ./cmd/shield ./cmd/edge ./cmd/loadtest
exec python3 bench/chaos.py --bin "$BIN" "$@"

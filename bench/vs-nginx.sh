#!/usr/bin/env bash
# Throughput of the edge against nginx, side by side on this machine.
#
# Both cache the same 3.5 MB files from the same origin (cmd/origin over a
# directory catalog, its internal listener's /media): (a) the edge
# (cmd/edge, memory chunk cache, token checks on) and (b) Debian's nginx as
# a caching proxy (proxy_cache with slice 256k, cache on tmpfs). Both send
# the tier credential the origin requires; nginx cannot compute an HMAC,
# so the script signs each file's path once (python3) into an nginx map,
# valid for tierauth.MaxSkew (60 s): long enough for the warm-up pass,
# after which nginx serves from its cache. wrk -t2 -c64 sends random 64 KiB ranges over
# the warm set to each in turn, after a warm-up pass, and the script prints
# requests/s and p99 for both and their ratio.
#
#   bench/vs-nginx.sh [seconds per run, default 20] [files, default 100]
#
# EDGE_PROCS sets the edge's GOMAXPROCS (default 2, as nginx has 2
# workers); with 1 it leaves a core to wrk: less throughput, shorter tail.
#
# It installs nginx and wrk with apt-get when they are missing. Everything
# listens on 127.0.0.1 and is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-20}
FILES=${2:-100}
OUT=${BENCH_OUT:-bench/out}
mkdir -p "$OUT"
need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

work=$(mktemp -d /tmp/vs-nginx.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$work" /dev/shm/vs-nginx-cache
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
wait_ready() { for _ in $(seq 1 200); do curl -sf "$1" >/dev/null && return 0; sleep 0.05; done; echo "not ready: $1" >&2; exit 1; }

echo "building" >&2
go build -o "$work/origin" ./cmd/origin
go build -o "$work/edge" ./cmd/edge

echo "making $FILES files of 3.5 MB" >&2
for i in $(seq 0 $((FILES - 1))); do
	mkdir -p "$work/catalog/b$i"
	head -c 3500000 /dev/urandom >"$work/catalog/b$i/160.ogg"
done

OPORT=$(free_port) TPORT=$(free_port) EPORT=$(free_port) NPORT=$(free_port)
SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
TIER=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# A demo identity provider: its public key for the origin, a token for the
# manifests.
"$work/origin" demo-identity --country SE >"$work/identity.json"
IDKEY=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["public_key"])' "$work/identity.json")
TOKEN=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["users"][0]["token"])' "$work/identity.json")
cat >"$work/origin.yaml" <<YAML
listen: 127.0.0.1:$OPORT
internal_addr: 127.0.0.1:$TPORT
catalog: $work/catalog
data_dir: $work/data
keys: [{id: bench, secret: $SECRET}]
tier_keys: [{id: bench, secret: $TIER}]
identity: {public_keys: ["$IDKEY"]}
YAML
cat >"$work/edge.yaml" <<YAML
name: edge-bench
role: edge
listen: 127.0.0.1:$EPORT
upstreams: [http://127.0.0.1:$TPORT]
keys: [{id: bench, secret: $SECRET}]
tier_keys: [{id: bench, secret: $TIER}]
cache: {memory_bytes: 1GiB, chunk_size: 256KiB}
YAML
cat >"$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx-error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  keepalive_requests 1000000;
  proxy_cache_path /dev/shm/vs-nginx-cache levels=1:2 keys_zone=audio:64m max_size=1g inactive=1h use_temp_path=off;
  upstream origin { server 127.0.0.1:$TPORT; keepalive 64; }
  map \$uri \$tier_auth { include $work/tier-auth.map; }
  server {
    listen 127.0.0.1:$NPORT;
    location /media/ {
      slice 256k;
      proxy_cache audio;
      proxy_cache_key \$uri\$slice_range;
      proxy_set_header Range \$slice_range;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Tier-Auth \$tier_auth;
      proxy_cache_valid 200 206 1h;
      proxy_cache_lock on;
      proxy_pass http://origin;
    }
  }
}
NGINX

"$work/origin" -config "$work/origin.yaml" 2>"$work/origin.log" & pids+=($!)
GOMAXPROCS=${EDGE_PROCS:-2} "$work/edge" -config "$work/edge.yaml" 2>"$work/edge.log" & pids+=($!)
wait_ready "http://127.0.0.1:$OPORT/readyz"
wait_ready "http://127.0.0.1:$EPORT/readyz"

# Paths: the edge's come from the origin's manifests (signed URLs).
: >"$work/edge-paths" ; : >"$work/nginx-paths"
for i in $(seq 0 $((FILES - 1))); do
	curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$OPORT/v1/manifest/b$i" |
		python3 -c 'import json,sys; m=json.load(sys.stdin); print([t["url"] for t in m["tiers"] if t["kbps"]==160][0])' >>"$work/edge-paths"
	echo "/media/b$i/160.ogg" >>"$work/nginx-paths"
done

# nginx's tier credentials (see package tierauth for the format), signed
# now and started at once: the warm-up pass below fills its cache.
python3 - "$TIER" "$FILES" >"$work/tier-auth.map" <<'PY'
import base64, hashlib, hmac, sys, time
key, ts = bytes.fromhex(sys.argv[1]), str(int(time.time()))
for i in range(int(sys.argv[2])):
    target = f"/media/b{i}/160.ogg"
    msg = b"\0".join([b"tierauth-v1", b"bench", b"GET", target.encode(), ts.encode()])
    sig = base64.urlsafe_b64encode(hmac.new(key, msg, hashlib.sha256).digest()).rstrip(b"=").decode()
    print(f'{target} "bench.{ts}.{sig}";')
PY
"$NGINX" -c "$work/nginx.conf" -p "$work"

cat >"$work/ranges.lua" <<'LUA'
local paths = {}
local size = 3500000
local span = 65536
init = function(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  math.randomseed(tonumber(args[2]) or 1)
end
request = function()
  local p = paths[math.random(#paths)]
  local start = math.random(0, size - span)
  return wrk.format("GET", p, { ["Range"] = "bytes=" .. start .. "-" .. (start + span - 1) })
end
LUA

run() { # name url pathsfile seconds
	wrk -t2 -c64 -d"$4"s --latency -s "$work/ranges.lua" "$2" -- "$3" 7 >"$OUT/wrk-$1.txt" 2>&1
}
rps() { awk '/^Requests\/sec/ {print $2}' "$1"; }
p99() { awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v=v/1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v=v*1000}; print v}' "$1"; }

echo "warming both caches" >&2
for i in $(seq 0 $((FILES - 1))); do
	curl -sf -o /dev/null "http://127.0.0.1:$EPORT$(sed -n "$((i + 1))p" "$work/edge-paths")"
	curl -sf -o /dev/null "http://127.0.0.1:$NPORT/media/b$i/160.ogg"
done
run edge-warm "http://127.0.0.1:$EPORT" "$work/edge-paths" 5
run nginx-warm "http://127.0.0.1:$NPORT" "$work/nginx-paths" 5

echo "measuring ${DUR}s each, alternating" >&2
run nginx "http://127.0.0.1:$NPORT" "$work/nginx-paths" "$DUR"
run edge "http://127.0.0.1:$EPORT" "$work/edge-paths" "$DUR"
for f in edge nginx; do
	if grep -q "Non-2xx" "$OUT/wrk-$f.txt"; then echo "$f: non-2xx responses:" >&2; grep Non-2xx "$OUT/wrk-$f.txt" >&2; fi
done
E_RPS=$(rps "$OUT/wrk-edge.txt") N_RPS=$(rps "$OUT/wrk-nginx.txt")
E_P99=$(p99 "$OUT/wrk-edge.txt") N_P99=$(p99 "$OUT/wrk-nginx.txt")
python3 - "$E_RPS" "$N_RPS" "$E_P99" "$N_P99" <<'PY' | tee "$OUT/summary.txt"
import sys
e, n, ep, np_ = map(float, sys.argv[1:])
print(f"edge   {e:10.0f} req/s  p99 {ep:7.2f} ms")
print(f"nginx  {n:10.0f} req/s  p99 {np_:7.2f} ms")
print(f"ratio  {e/n:10.2f}x req/s (goal >= 1.2)  p99 edge/nginx {ep/np_:.2f} (goal <= 1.0)")
PY

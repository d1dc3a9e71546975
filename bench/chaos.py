"""Drives bench/chaos.sh: see the comment there. Standard library only."""

import argparse
import base64
import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

EDGES, SHIELDS = 3, 2
EDGE_CACHE, EDGE_HOT, SHIELD_CACHE = 64, 16, 256  # MiB
SCENARIOS = ["baseline", "shield-kill", "edge-kill", "edge-term", "origin-down", "edge-stop"]


def hexkey(n=32):
    return os.urandom(n).hex()


class POP:
    """One POP of separate processes on fixed loopback ports."""

    def __init__(self, bindir, base_port):
        self.bin = bindir
        self.dir = tempfile.mkdtemp(prefix="chaos-pop.")
        self.addr_file = os.path.join(self.dir, "pop.json")
        self.procs = {}  # name -> Popen
        self.rss_peak = {}  # name -> bytes
        self.p = base_port
        keys = {"token": hexkey(), "tier": hexkey(), "ticket": hexkey(), "pop_ticket": hexkey()}
        # The identity provider: a demo key pair and a user per country
        # of the load tool's listeners, in the addr file before any node
        # adds itself.
        idp = json.loads(subprocess.run([os.path.join(bindir, "origin"), "demo-identity", "--country", "US,BR,GB,DE,MX,SE,FR,JP,IN,ES"],
                                        check=True, capture_output=True, text=True).stdout)
        with open(self.addr_file, "w") as f:
            json.dump({"users": idp["users"]}, f)
        self.users = {u["country"]: u["token"] for u in idp["users"]}
        gossip = base64.b64encode(os.urandom(32)).decode()
        o_pub, o_int = self.p, self.p + 1
        self.origin_internal = f"http://127.0.0.1:{o_int}"
        seeds = [f"127.0.0.1:{self.p + 30 + i}" for i in range(SHIELDS)] + [f"127.0.0.1:{self.p + 60 + i}" for i in range(EDGES)]
        tier = f"tier_keys: [{{id: tier1, secret: {keys['tier']}}}]\n"
        cl = lambda role, port: (
            f"cluster: {{role: {role}, pop: chaos, bind_addr: 127.0.0.1, bind_port: {port}, "
            f"seeds: [{', '.join(seeds)}], secret_keys: [{gossip}], suspicion_mult: 3}}\n")
        self.conf = {}
        self.conf["origin"] = (
            f"listen: 127.0.0.1:{o_pub}\ninternal_addr: 127.0.0.1:{o_int}\nname: origin\n"
            f"catalog: synthetic:100000\nseed: 1\nkeys: [{{id: k1, secret: {keys['token']}}}]\n"
            f"identity: {{public_keys: [\"{idp['public_key']}\"]}}\n"
            f"ticket_keys: [{{id: origin, secret: {keys['ticket']}}}, {{id: pop-chaos, secret: {keys['pop_ticket']}}}]\n"
            # One demo user per country stands for all its listeners.
            f"plays: {{user_rate: 10000, user_burst: 100000}}\n"
            f"data_dir: {self.dir}/origin\n" + tier)
        shield_urls = []
        for i in range(SHIELDS):
            name = f"shield-{i+1}"
            shield_urls.append(f"http://127.0.0.1:{self.p + 10 + i}")
            self.conf[name] = (
                f"name: {name}\nrole: shield\nlisten: 127.0.0.1:{self.p + 10 + i}\n"
                f"internal_addr: 127.0.0.1:{self.p + 20 + i}\nupstreams: [{self.origin_internal}]\n"
                f"drain_delay: 1s\n"
                f"cache: {{memory_bytes: {SHIELD_CACHE}MiB, disk_dir: {self.dir}/{name}, disk_bytes: 1GiB}}\n"
                + cl("shield", self.p + 30 + i) + tier)
        for i in range(EDGES):
            name = f"edge-{i+1}"
            self.conf[name] = (
                f"name: {name}\nrole: edge\nlisten: 127.0.0.1:{self.p + 40 + i}\n"
                f"internal_addr: 127.0.0.1:{self.p + 50 + i}\nupstreams: [{', '.join(shield_urls)}]\n"
                f"drain_delay: 1s\nkeys: [{{id: k1, secret: {keys['token']}}}]\n"
                f"cache: {{memory_bytes: {EDGE_CACHE}MiB}}\nhot_cache: {{memory_bytes: {EDGE_HOT}MiB}}\n"
                f"prefetch: {{origin_url: {self.origin_internal}}}\n"
                f"manifest: {{enabled: true, origin_url: {self.origin_internal}, refresh: 15s, "
                f"identity: {{public_keys: [\"{idp['public_key']}\"]}}, ticket_keys: [{{id: pop-chaos, secret: {keys['pop_ticket']}}}]}}\n"
                + cl("edge", self.p + 60 + i) + tier)
        for name, text in self.conf.items():
            with open(os.path.join(self.dir, name + ".yaml"), "w") as f:
                f.write(text)
        self.edge_public = [f"http://127.0.0.1:{self.p + 40 + i}" for i in range(EDGES)]
        self.ready_urls = {"origin": f"http://127.0.0.1:{o_int}/readyz"}
        for i in range(SHIELDS):
            self.ready_urls[f"shield-{i+1}"] = f"http://127.0.0.1:{self.p + 20 + i}/readyz"
        for i in range(EDGES):
            self.ready_urls[f"edge-{i+1}"] = f"http://127.0.0.1:{self.p + 50 + i}/readyz"
        self.stop_rss = threading.Event()
        self.rss_thread = threading.Thread(target=self._sample_rss, daemon=True)

    def start(self, name):
        binary = "origin" if name == "origin" else name.split("-")[0]
        log = open(os.path.join(self.dir, name + ".log"), "a")
        env = dict(os.environ, GOMAXPROCS="1")
        self.procs[name] = subprocess.Popen(
            [os.path.join(self.bin, binary), "-config", os.path.join(self.dir, name + ".yaml"), "-addr-file", self.addr_file],
            stdout=log, stderr=log, env=env)

    def start_all(self):
        self.start("origin")
        self.wait_ready(["origin"])
        for i in range(SHIELDS):
            self.start(f"shield-{i+1}")
        for i in range(EDGES):
            self.start(f"edge-{i+1}")
        self.wait_ready(list(self.ready_urls))
        self.rss_thread.start()

    def wait_ready(self, names, timeout=120):
        end = time.time() + timeout
        for n in names:
            while True:
                if self.procs[n].poll() is not None:
                    raise SystemExit(f"chaos: {n} exited at start; see {self.dir}/{n}.log")
                try:
                    with urllib.request.urlopen(self.ready_urls[n], timeout=2) as r:
                        if r.status == 200:
                            break
                except Exception:
                    pass
                if time.time() > end:
                    raise SystemExit(f"chaos: {n} not ready after {timeout}s; see {self.dir}/{n}.log")
                time.sleep(0.2)

    def signal(self, name, sig):
        self.procs[name].send_signal(sig)

    def wait_exit(self, name, timeout=30):
        try:
            self.procs[name].wait(timeout)
        except subprocess.TimeoutExpired:
            self.procs[name].kill()
            self.procs[name].wait()

    def _sample_rss(self):
        while not self.stop_rss.is_set():
            for name, p in list(self.procs.items()):
                try:
                    with open(f"/proc/{p.pid}/status") as f:
                        for line in f:
                            if line.startswith("VmHWM:"):
                                v = int(line.split()[1]) * 1024
                                self.rss_peak[name] = max(self.rss_peak.get(name, 0), v)
                except OSError:
                    pass
            self.stop_rss.wait(1)

    def stop_all(self):
        self.stop_rss.set()
        for name, p in self.procs.items():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGCONT)
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for name, p in self.procs.items():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def metric(self, name, metric):
        """Sum of a metric family at a node's internal listener (None if down)."""
        url = self.ready_urls[name].replace("/readyz", "/metrics")
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                total = 0.0
                for line in r.read().decode().splitlines():
                    if "{" in metric:
                        if line.startswith(metric + " "):
                            total += float(line.rsplit(" ", 1)[1])
                    elif line.startswith(metric + " ") or line.startswith(metric + "{"):
                        total += float(line.rsplit(" ", 1)[1])
                return total
        except Exception:
            return None


class Probe:
    """Every 0.5 s per edge: one cached range (the same one each time) and
    one uncached one (a new track), each after a manifest from that edge."""

    def __init__(self, pop, exclude=None):
        self.pop, self.stop, self.results = pop, threading.Event(), []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(EDGES)]
        self.rng = random.Random(7)

    def get(self, url, rng=None, timeout=10):
        req = urllib.request.Request(url)
        if rng:
            req.add_header("Range", rng)
        start = time.time()
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                r.read()
                return r.status, time.time() - start
        except urllib.error.HTTPError as e:
            return e.code, time.time() - start
        except Exception:
            return 0, time.time() - start

    def manifest(self, edge, track):
        req = urllib.request.Request(f"{edge}/v1/manifest/{track}")
        req.add_header("Authorization", "Bearer " + self.pop.users["SE"])
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.load(r)
        except Exception:
            return None

    def run(self, i):
        edge = self.pop.edge_public[i]
        cached = None
        while not self.stop.is_set():
            t0 = time.time()
            if cached is None:
                m = self.manifest(edge, "t1")
                cached = m["tiers"][0]["url"] if m and m.get("tiers") else None
            for kind in ("cached", "uncached"):
                url = cached
                if kind == "uncached":
                    # A track of the catalog's cold half; a few tries, as
                    # some are not licensed in SE (403).
                    url = None
                    for _ in range(5):
                        m = self.manifest(edge, f"t{self.rng.randrange(50000, 100000)}")
                        if m and m.get("tiers"):
                            url = m["tiers"][0]["url"]
                            break
                if url is None:
                    self.results.append((t0, i, kind, 0, 0.0))
                    continue
                code, took = self.get(edge + url, "bytes=0-1023")
                self.results.append((t0, i, kind, code, took))
            self.stop.wait(max(0, 0.5 - (time.time() - t0)))

    def start(self):
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(15)


def p99(xs):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, math.ceil(0.99 * len(xs)) - 1)]


def run_scenario(args, name, base_port):
    pop = POP(args.bin, base_port)
    pop.start_all()
    duration = args.duration
    fault_at, fault_len = duration / 3, 20.0
    if name == "origin-down":
        duration, fault_at, fault_len = max(duration, 90), 20.0, 60.0
    victim = {"shield-kill": "shield-1", "edge-kill": "edge-2", "edge-term": "edge-2", "edge-stop": "edge-2", "origin-down": "origin"}.get(name)
    reqlog = os.path.join(pop.dir, "requests.csv")
    ltjson = os.path.join(pop.dir, "loadtest.json")
    ltlog = open(os.path.join(pop.dir, "loadtest.log"), "w")
    probe = Probe(pop)
    peer_bytes0 = sum(pop.metric(f"edge-{i+1}", "edge_peer_fill_bytes_total") or 0 for i in range(EDGES))
    lt = subprocess.Popen([os.path.join(args.bin, "loadtest"), "--addr-file", pop.addr_file, "--duration", f"{duration}s",
                           "--rate", str(args.rate), "--catalog", "synthetic:100000", "--seed", "1", "--manifests", "edge",
                           *([] if args.no_failover else ["--failover"]), "--requests-log", reqlog, "--json", ltjson, "--quiet"],
                          stdout=ltlog, stderr=ltlog, env=dict(os.environ, GOMAXPROCS="1"))
    t_start = time.time()
    probe.start()
    events = []
    # Every second: what the edges that stay up see (misses, fetches to
    # shields, peer skips, live edges), to line up with the latencies.
    timeline, stop_tl = [], threading.Event()

    def sample():
        keep = [f"edge-{i+1}" for i in range(EDGES) if f"edge-{i+1}" != victim]
        while not stop_tl.is_set():
            row = {"t": round(time.time() - t_start, 1)}
            for m in ("edge_cache_misses_total", "edge_upstream_fetches_total", "edge_peer_skipped_total", "edge_peer_hedged_total"):
                row[m] = sum(pop.metric(n, m) or 0 for n in keep)
            row["alive_edges_seen"] = pop.metric(keep[0], 'cluster_members{role="edge",state="alive"}')
            timeline.append(row)
            stop_tl.wait(1)
    tl = threading.Thread(target=sample, daemon=True)
    tl.start()

    def at(t):
        d = t_start + t - time.time()
        if d > 0:
            time.sleep(d)

    if victim:
        at(fault_at)
        events.append(("fault", time.time() - t_start))
        if name in ("shield-kill", "edge-kill", "origin-down"):
            pop.signal(victim, signal.SIGKILL)
            pop.wait_exit(victim)
        elif name == "edge-term":
            pop.signal(victim, signal.SIGTERM)
            pop.wait_exit(victim)
        elif name == "edge-stop":
            pop.signal(victim, signal.SIGSTOP)
        at(fault_at + fault_len)
        if name == "edge-stop":
            pop.signal(victim, signal.SIGCONT)
        else:
            pop.start(victim)
        events.append(("restore", time.time() - t_start))
    lt.wait()
    probe.finish()
    stop_tl.set()
    tl.join(10)
    peer_bytes1 = sum(pop.metric(f"edge-{i+1}", "edge_peer_fill_bytes_total") or 0 for i in range(EDGES))
    hedged = sum(pop.metric(f"edge-{i+1}", "edge_peer_hedged_total") or 0 for i in range(EDGES))
    skipped = sum(pop.metric(f"edge-{i+1}", "edge_peer_skipped_total") or 0 for i in range(EDGES))
    pop.stop_all()
    with open(ltjson) as f:
        res = json.load(f)
    rows = []
    with open(reqlog) as f:
        for r in csv.DictReader(f):
            rows.append((float(r["t_ms"]) / 1000, r["kind"], int(r["edge"]), float(r["ttfb_ms"]), r["ok"] == "1", int(r["home"])))
    ranges = [r for r in rows if r[1] == "range"]
    others = ranges
    if name == "edge-stop":
        # The load tool numbers edges in addr-file order (the order the
        # nodes added themselves).
        with open(pop.addr_file) as f:
            order = json.load(f)["edges"]
        vi = order.index(pop.edge_public[int(victim.split("-")[1]) - 1])
        # The other edges' listeners: sessions that started elsewhere
        # (a session of the stopped edge that failed over brings its own
        # backlog with it: still that edge's listener).
        others = [r for r in ranges if r[5] != vi]
    base_win = [r[3] for r in others if fault_at - fault_len <= r[0] < fault_at]
    fault_win = [r[3] for r in others if fault_at <= r[0] < fault_at + fault_len]
    base_p99 = p99(base_win)
    # Recovery: the first second after the fault's end from which every
    # second has no error and a p99 within 2x the baseline window's.
    recovery = None
    if victim:
        end = fault_at + fault_len
        secs = {}
        for r in ranges:
            if r[0] >= end:
                secs.setdefault(int(r[0] - end), []).append(r)
        last_bad = -1
        for s in sorted(secs):
            rs = secs[s]
            if any(not r[4] for r in rs) or (base_p99 and p99([r[3] for r in rs]) > 2 * base_p99):
                last_bad = s
        recovery = last_bad + 1
    pr = probe.results
    out = {
        "scenario": name,
        "requests": res["requests"],
        "errors": res["errors"],
        "range_errors": sum(1 for r in ranges if not r[4]),
        "verify_failures": res["verify_failures"],
        "track_starts": res.get("track_starts", 0),
        "track_start_errors": res.get("track_start_errors", 0),
        "failovers": res.get("failovers", 0),
        "p99_ms": res.get("all_ttfb_p99_ms"),
        "p99_ok_ms": res.get("ttfb_p99_ms"),
        "baseline_window_p99_ms": base_p99,
        "fault_window_p99_ms": p99(fault_win),
        "recovery_s": recovery,
        "probe_requests": len(pr),
        "probe_failures": sum(1 for r in pr if r[3] not in (200, 206)),
        "probe_max_ms": round(max((r[4] for r in pr), default=0) * 1000, 1),
        # edge-stop: the probe of the other edges only.
        "probe_max_ms_others": round(max((r[4] for r in pr if name != "edge-stop" or r[1] != int(victim.split("-")[1]) - 1), default=0) * 1000, 1),
        "peer_fill_bytes": peer_bytes1 - peer_bytes0,
        "peer_hedged": hedged,
        "peer_skipped": skipped,
        "rss_peak_mb": {k: round(v / 2**20, 1) for k, v in sorted(pop.rss_peak.items())},
        "errors_by_kind": res.get("errors_by_kind", {}),
        "duration_s": duration,
        "fault_at_s": fault_at if victim else None,
        "fault_s": fault_len if victim else None,
        "dir": pop.dir,
        "timeline": timeline,
    }
    return out


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.0f}{unit}" if v >= 100 else f"{v:.1f}{unit}"
    return f"{v}{unit}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--json")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--rate", type=float, default=2.0)
    ap.add_argument("--base-port", type=int, default=27100)
    ap.add_argument("--no-failover", action="store_true", help="pin every session to its edge (no load-balancer failover)")
    args = ap.parse_args()
    results = []
    for i, name in enumerate(args.only.split(",")):
        if name not in SCENARIOS:
            raise SystemExit(f"chaos: unknown scenario {name}; one of {SCENARIOS}")
        print(f"chaos: {name} ...", file=sys.stderr, flush=True)
        r = run_scenario(args, name, args.base_port + 100 * i)
        results.append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    hdr = ["scenario", "requests", "errors", "verify", "starts", "start err", "p99 all", "p99 ok", "base win p99", "fault win p99", "recovery", "probe fail/max", "peer MB", "hedged"]
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in results:
        print("| " + " | ".join([
            r["scenario"], str(r["requests"]), str(r["errors"]), str(r["verify_failures"]), str(r["track_starts"]),
            str(r["track_start_errors"]), fmt(r["p99_ms"], " ms"), fmt(r["p99_ok_ms"], " ms"),
            fmt(r["baseline_window_p99_ms"], " ms"), fmt(r["fault_window_p99_ms"], " ms"), fmt(r["recovery_s"], " s"),
            f"{r['probe_failures']}/{r['probe_requests']}, {fmt(r['probe_max_ms_others'], ' ms')}",
            f"{r['peer_fill_bytes'] / 1e6:.1f}", str(int(r["peer_hedged"]))]) + " |")
    print()
    # The stated bound: peak RSS within memory_limit (derived: 1.5 x the
    # cache budgets + 64 MiB, + 64 MiB for an edge's manifest snapshot)
    # plus 32 MiB the Go runtime cannot limit (the binary's mapped pages).
    budgets = {"edge": EDGE_CACHE + EDGE_HOT, "shield": SHIELD_CACHE}
    limits = {"edge": 1.5 * (EDGE_CACHE + EDGE_HOT) + 64 + 64, "shield": 1.5 * SHIELD_CACHE + 64}
    print("| scenario | origin peak RSS | shield peak RSS / cache budget / memory_limit | edge peak RSS / cache budget / memory_limit | within memory_limit + 32 MiB |")
    print("|---|---|---|---|---|")
    for r in results:
        cells, ok = [], True
        for role in ("origin", "shield", "edge"):
            peaks = [v for k, v in r["rss_peak_mb"].items() if k.split("-")[0] == role]
            if not peaks:
                cells.append("-")
            elif role in budgets:
                m = max(peaks)
                ok = ok and m <= limits[role] + 32
                cells.append(f"{m:.0f} MiB / {budgets[role]} = {m / budgets[role]:.2f}x / {m / limits[role]:.2f}x")
            else:
                cells.append(f"{max(peaks):.0f} MiB")
        r["rss_within_limit"] = ok
        print(f"| {r['scenario']} | " + " | ".join(cells) + f" | {'yes' if ok else 'NO'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

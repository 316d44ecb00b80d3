#!/usr/bin/env python3
"""Publishing benchmark against a local `crier serve` (standard library only).

  throughput: "the nine o'clock burst": 10,000 posts due at the same instant across 200
              sandbox accounts whose every call takes 300 ms (the sandbox's `latency_ms`
              fault); reports targets published per second (from the due time to the last
              published_at), the burst's lateness (p50/p99/max of published_at - due), and
              checks every post reached its timeline exactly once.
  lateness:   a steady 50 posts per second for 30 s, each due 2 s after it is created;
              reports p50/p99/max of published_at - scheduled_at.

Settings (environment): BENCH_POSTS (10000), BENCH_ACCOUNTS (200), BENCH_LATENCY_MS (300),
BENCH_RATE (50), BENCH_RATE_SECONDS (30; 0 skips the steady part), BENCH_WORKERS (0: one
`crier serve` node doing everything; N >= 1: one `--role api` node and N `--role worker` nodes,
each with its own data dir, on the shared --database-url, which must then be PostgreSQL).

Usage: publish.py BIN DATA_DIR [--database-url URL]   (bench/publish.sh calls it)
Only 127.0.0.1 is contacted; the servers are stopped and nothing is left running on exit.
"""
import http.client
import json
import os
import subprocess
import sys
import time

from benchlib import free_port, stop, wait_port
from datetime import datetime, timedelta, timezone

POSTS = int(os.environ.get("BENCH_POSTS", "10000"))
ACCOUNTS = int(os.environ.get("BENCH_ACCOUNTS", "200"))
RATE = int(os.environ.get("BENCH_RATE", "50"))
# Simulated network latency of every sandbox publish call, in ms (POST /v1/accounts/{id}/faults).
LATENCY_MS = int(os.environ.get("BENCH_LATENCY_MS", "300"))
RATE_SECONDS = int(os.environ.get("BENCH_RATE_SECONDS", "30"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "0"))
# Every node gets the same keyring, so credentials sealed by one node open on the others.
SECRET_KEYS = "k1=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"


class Api:
    def __init__(self, port, key):
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        for attempt in range(3):
            try:
                payload = json.dumps(body) if body is not None else None
                headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
                self.conn.request(method, path, payload, headers)
                resp = self.conn.getresponse()
                data = json.loads(resp.read() or b"null")
                return resp.status, data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise

    def pages(self, path):
        offset = 0
        while True:
            sep = "&" if "?" in path else "?"
            status, page = self.call("GET", f"{path}{sep}limit=50&offset={offset}")
            assert status == 200, page
            yield from page["data"]
            offset += len(page["data"])
            if not page["has_more"]:
                return


def ts(dt):
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def admin(binary, data, extra, *args):
    out = subprocess.run([binary, "--data-dir", data, *extra, "admin", *args, "--json"],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def wait_idle(api, deadline):
    """Until nothing is scheduled or publishing."""
    while time.time() < deadline:
        _, q = api.call("GET", "/v1/queue?limit=1")
        _, p = api.call("GET", "/v1/posts?status=publishing&limit=1")
        if not q["data"] and not p["data"]:
            return True
        time.sleep(0.1)
    return False


def start_node(binary, data, extra, role, port, env):
    os.makedirs(data, exist_ok=True)
    return subprocess.Popen([binary, "--data-dir", data, *extra, "serve", "--role", role,
                             "--bind", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def pct(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def main():
    binary, data = sys.argv[1], sys.argv[2]
    extra = sys.argv[3:]
    if WORKERS and not any(a.startswith("postgres") for a in extra):
        sys.exit("BENCH_WORKERS needs a shared PostgreSQL database (BENCH_DATABASE_URL)")
    subprocess.run([binary, "--data-dir", data, *extra, "migrate"], check=True,
                   capture_output=True, timeout=120)
    admin(binary, data, extra, "workspace", "create", "bench")
    key = admin(binary, data, extra, "key", "create", "--workspace", "bench", "--scope", "all",
                "--per-minute", "1000000", "--per-day", "100000000")["key"]
    port = free_port()
    env = dict(os.environ, CRIER_LOG_LEVEL=os.environ.get("CRIER_LOG_LEVEL", "warn"),
               CRIER_SECRET_KEYS=SECRET_KEYS, CRIER_MIGRATE_ON_START="false")
    nodes = []
    try:
        nodes.append(start_node(binary, data, extra, "all" if not WORKERS else "api", port, env))
        for i in range(WORKERS):
            wport = free_port()
            nodes.append(start_node(binary, f"{data}/worker{i}", extra, "worker", wport, env))
            wait_port(wport, nodes[-1])
        wait_port(port, nodes[0])
        api = Api(port, key)
        accounts = []
        for i in range(ACCOUNTS):
            status, a = api.call("POST", "/v1/connect/sandbox", {"handle": f"bench{i}"})
            assert status == 201, a
            accounts.append(a["id"])
            if LATENCY_MS:
                status, f = api.call("POST", f"/v1/accounts/{a['id']}/faults", {"latency_ms": LATENCY_MS})
                assert status == 200, f

        # ---- throughput ----
        created = time.time()
        lead = int(os.environ.get("BENCH_LEAD_SECONDS", str(max(20, POSTS // 250))))
        due = datetime.now(timezone.utc) + timedelta(seconds=lead)
        for b in range(0, POSTS, 100):
            posts = [{"body": f"throughput {n}", "account_ids": [accounts[n % ACCOUNTS]],
                      "scheduled_at": ts(due)} for n in range(b, min(b + 100, POSTS))]
            status, body = api.call("POST", "/v1/batches", {"posts": posts})
            assert status == 201, body
        made = time.time() - created
        assert datetime.now(timezone.utc) < due, "creating the posts took longer than the lead time"
        assert wait_idle(api, time.time() + 600), "publishing did not finish in 10 minutes"
        published = [p for p in api.pages("/v1/posts?status=published")]
        assert len(published) == POSTS, f"{len(published)} of {POSTS} published"
        burst_late = sorted((parse(p["published_at"]) - due).total_seconds() for p in published)
        seconds = burst_late[-1]
        keys = [e["idempotency_key"] for a in accounts for e in api.pages(f"/v1/accounts/{a}/timeline")]
        assert len(keys) == POSTS and len(set(keys)) == POSTS, "not exactly once"
        print(f"throughput: {POSTS} posts across {ACCOUNTS} accounts, {LATENCY_MS} ms per call "
              f"(created in {made:.1f} s) "
              f"on {'one node' if not WORKERS else f'{WORKERS} worker nodes'}: "
              f"published in {seconds:.2f} s after their due time: {POSTS / seconds:.0f} targets/s; "
              f"lateness p50 {pct(burst_late, 0.5) * 1000:.0f} ms, "
              f"p99 {pct(burst_late, 0.99) * 1000:.0f} ms, max {seconds * 1000:.0f} ms; "
              f"timelines hold each exactly once ({len(keys)} entries, {len(set(keys))} distinct)")
        if not RATE_SECONDS:
            return

        # ---- lateness at a steady rate ----
        start = time.time()
        for sec in range(RATE_SECONDS):
            base = datetime.now(timezone.utc) + timedelta(seconds=2)
            posts = [{"body": f"steady {sec}.{i}", "account_ids": [accounts[(sec * RATE + i) % ACCOUNTS]],
                      "scheduled_at": ts(base + timedelta(milliseconds=i * 1000 // RATE))}
                     for i in range(RATE)]
            status, body = api.call("POST", "/v1/batches", {"posts": posts})
            assert status == 201, body
            time.sleep(max(0.0, start + sec + 1 - time.time()))
        assert wait_idle(api, time.time() + 120), "steady posts did not finish"
        late = sorted((parse(p["published_at"]) - parse(p["scheduled_at"])).total_seconds()
                      for p in api.pages("/v1/posts?status=published") if p["body"].startswith("steady"))
        assert len(late) == RATE * RATE_SECONDS, f"{len(late)} steady posts published"
        print(f"lateness at {RATE} posts/s for {RATE_SECONDS} s ({len(late)} posts): "
              f"p50 {pct(late, 0.50) * 1000:.0f} ms, p99 {pct(late, 0.99) * 1000:.0f} ms, "
              f"max {late[-1] * 1000:.0f} ms")
    finally:
        stop(nodes)


if __name__ == "__main__":
    main()

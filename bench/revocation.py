#!/usr/bin/env python3
"""Revocation propagation across nodes (standard library only).

Starts three API nodes (`crier serve --role api`) of one binary on one PostgreSQL database and
one Redis, creates BENCH_KEYS keys through node 0, has every node verify (and cache) each key,
then revokes the keys one at a time through node 0. For each revocation it measures, on nodes
1 and 2, the time from node 0's answer to the first `401` for that key, polling both nodes
at once. Reports the median, p95 and maximum over all samples (goal: <= 100 ms).

    revocation.py BIN WORK_DIR DATABASE_URL REDIS_URL     (bench/revocation.sh calls it)

The database must be fresh (the script migrates it). Only 127.0.0.1 is contacted; the nodes are
stopped on exit. BENCH_KEYS (default 200) sets the number of samples per node.
"""
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from benchlib import free_port, stop, wait_port

KEYS = int(os.environ.get("BENCH_KEYS", "200"))
SECRET_KEYS = "k1=BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc"
# A node that still accepts a revoked key after this long is a failure, not a slow sample.
GIVE_UP_S = 10.0


def call(conn, method, path, key, body=None):
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    resp = conn.getresponse()
    data = resp.read()
    return resp.status, (json.loads(data) if data else None)


def watch(port, key, start, out, i):
    """Polls `GET /v1/me` with `key` on `port` until it is refused; the seconds since `start`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        while True:
            status, body = call(conn, "GET", "/v1/me", key)
            if status == 401:
                out[i] = time.perf_counter() - start[0]
                return
            # Anything but 200 (the key still works) is reported, not waited out.
            if status != 200:
                out[i] = f"node {port}: HTTP {status} {body}"
                return
            if time.perf_counter() - start[0] > GIVE_UP_S:
                out[i] = None
                return
    finally:
        conn.close()


def main():
    binary, work, database, redis = sys.argv[1:5]
    base = [binary, "--data-dir", f"{work}/admin", "--database-url", database]
    subprocess.run([*base, "migrate"], check=True, capture_output=True, timeout=120)

    def admin(*args):
        out = subprocess.run([*base, "admin", *args, "--json"], check=True,
                             capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)

    admin("workspace", "create", "revocation-bench", "--plan", "self-hosted")
    root = admin("key", "create", "--workspace", "revocation-bench", "--scope", "all",
                 "--per-minute", "1000000", "--per-day", "100000000")["key"]
    env = dict(os.environ, CRIER_LOG_LEVEL=os.environ.get("CRIER_LOG_LEVEL", "warn"),
               CRIER_SECRET_KEYS=SECRET_KEYS, CRIER_MIGRATE_ON_START="false",
               CRIER_REDIS_URL=redis,
               # Every revoked key's refusals count as failed authentications from 127.0.0.1;
               # at the default 30 a minute the address would be throttled mid-run.
               CRIER_AUTH_FAILURES_PER_MINUTE="100000")
    ports = [free_port() for _ in range(3)]
    nodes = []
    try:
        for i, port in enumerate(ports):
            os.makedirs(f"{work}/node{i}", exist_ok=True)
            nodes.append(subprocess.Popen(
                [binary, "--data-dir", f"{work}/node{i}", "--database-url", database, "serve",
                 "--role", "api", "--bind", f"127.0.0.1:{port}"],
                env=env, stdout=subprocess.DEVNULL,
                stderr=open(f"{work}/node{i}.log", "wb")))
        for port, node in zip(ports, nodes):
            wait_port(port, node)
        conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in ports]
        keys = []
        for n in range(KEYS):
            status, k = call(conns[0], "POST", "/v1/keys", root,
                             {"name": f"revocation {n}", "scopes": ["keys:read"],
                              "rate_limit": {"per_minute": 1_000_000, "per_day": 100_000_000}})
            assert status == 201, k
            keys.append((k["id"], k["key"]))
        # Every node has verified, and so cached, every key: a revocation must reach the caches.
        for conn in conns:
            for _, secret in keys:
                status, body = call(conn, "GET", "/v1/me", secret)
                assert status == 200, body
        samples = []
        for key_id, secret in keys:
            out = [None, None]
            start = [0.0]
            threads = [threading.Thread(target=watch, args=(p, secret, start, out, i))
                       for i, p in enumerate(ports[1:])]
            status, body = call(conns[0], "DELETE", f"/v1/keys/{key_id}", root)
            start[0] = time.perf_counter()
            assert status == 200, body
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert None not in out, f"a node still accepted key {key_id} after {GIVE_UP_S} s"
            bad = [o for o in out if isinstance(o, str)]
            assert not bad, f"key {key_id}: {bad}"
            samples.extend(out)
        samples.sort()
        ms = [s * 1000 for s in samples]
        print(f"revocation propagation to 2 other nodes ({len(ms)} samples, {KEYS} keys): "
              f"median {statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms, "
              f"max {ms[-1]:.1f} ms [goal <= 100 ms]")
    finally:
        stop(nodes)


if __name__ == "__main__":
    main()

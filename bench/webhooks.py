#!/usr/bin/env python3
"""Webhook delivery benchmark against a local release `crier serve` (standard library only).

The receiver is crates/crier-worker/examples/webhook_sink.rs (one thread, answers 200 at once);
it is first measured alone with its own load generator, so that it is known not to be the limit.

  drain: N `webhook.test` events are queued (POST /v1/webhooks/{id}/test) on an API-only node
         (CRIER_WORKERS=false), then a node with workers starts on the same data and delivers
         the backlog; reports deliveries per second from the first received to the last.
  live:  with the workers running, N more events are created as fast as 4 clients can; reports
         deliveries per second from the first received to the last, and the creation rate.

Deliveries are signed as always (HMAC-SHA256, Standard Webhooks); the sink counts requests that
carry a `v1,` signature and distinct webhook-ids (each must arrive once).

Usage: webhooks.py CRIER_BIN SINK_BIN WORK_DIR   (bench/webhooks.sh calls it)
Only 127.0.0.1 is contacted; the server and the sink are stopped on exit.
"""
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

EVENTS = int(os.environ.get("BENCH_EVENTS", "5000"))
CLIENTS = 4


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"process exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on {port} after {seconds} s")


class Http:
    def __init__(self, port, key=None):
        self.port, self.key = port, key
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        for attempt in range(3):
            try:
                self.conn.request(method, path, json.dumps(body) if body is not None else None,
                                  headers)
                resp = self.conn.getresponse()
                raw = resp.read()
                return resp.status, json.loads(raw) if raw.startswith((b"{", b"[")) else raw
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                if attempt == 2:
                    raise


def admin(binary, data, *args):
    out = subprocess.run([binary, "--data-dir", data, "admin", *args, "--json"],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def uptime():
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


class Server:
    def __init__(self, binary, data, workers):
        self.port = free_port()
        env = dict(os.environ, CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
                   CRIER_WORKERS="true" if workers else "false",
                   CRIER_LOG_LEVEL=os.environ.get("CRIER_LOG_LEVEL", "warn"))
        self.proc = subprocess.Popen([binary, "--data-dir", data, "serve", "--bind",
                                      f"127.0.0.1:{self.port}"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def create_events(port, key, wid, n):
    """POST /v1/webhooks/{wid}/test n times from CLIENTS threads; returns the seconds taken."""
    errors = []

    def worker(share):
        api = Http(port, key)
        for _ in range(share):
            status, body = api.call("POST", f"/v1/webhooks/{wid}/test")
            if status != 202:
                errors.append((status, body))
                return
    shares = [n // CLIENTS + (1 if i < n % CLIENTS else 0) for i in range(CLIENTS)]
    started = time.time()
    threads = [threading.Thread(target=worker, args=(s,)) for s in shares]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(f"creating events failed: {errors[:3]}")
    return time.time() - started


def wait_delivered(sink, n, seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        _, s = sink.call("GET", "/stats")
        if s["count"] >= n:
            return s
        time.sleep(0.1)
    raise SystemExit(f"only {s['count']} of {n} delivered in {seconds} s")


def report(name, stats, n, extra=""):
    secs = (stats["last_ms"] - stats["first_ms"]) / 1000
    assert stats["count"] == n and stats["unique"] == n, f"not each once: {stats}"
    assert stats["signed"] == n, f"unsigned deliveries: {stats}"
    print(f"{name}: {n} deliveries (each once, all signed) in {secs:.2f} s from the first "
          f"received to the last: {n / secs:.0f} deliveries/s{extra}")


def main():
    binary, sink_bin, work = sys.argv[1], sys.argv[2], sys.argv[3]
    data = os.path.join(work, "data")
    sink_port = free_port()
    sink_proc = subprocess.Popen([sink_bin, "serve", f"127.0.0.1:{sink_port}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        wait_port(sink_port, sink_proc)
        sink = Http(sink_port)
        print(f"machine: {os.cpu_count()} CPUs; load before: {uptime()}")

        # ---- the receiver alone ----
        out = subprocess.run([sink_bin, "load", f"http://127.0.0.1:{sink_port}/alone", "20000",
                              "64"], check=True, capture_output=True, text=True, timeout=300)
        print(f"receiver alone: {out.stdout.strip()}")
        sink.call("POST", "/reset")

        admin(binary, data, "workspace", "create", "bench")
        key = admin(binary, data, "key", "create", "--workspace", "bench", "--scope", "all",
                    "--per-minute", "1000000", "--per-day", "100000000")["key"]

        # ---- drain a queued backlog ----
        server = Server(binary, data, workers=False)
        api = Http(server.port, key)
        status, e = api.call("POST", "/v1/webhooks", {
            "url": f"http://127.0.0.1:{sink_port}/hook", "events": ["*"]})
        assert status == 201, e
        wid = e["id"]
        took = create_events(server.port, key, wid, EVENTS)
        print(f"queued {EVENTS} events on an API-only node in {took:.1f} s "
              f"({EVENTS / took:.0f} events/s)")
        server.stop()
        _, s = sink.call("GET", "/stats")
        assert s["count"] == 0, "an API-only node delivered"
        server = Server(binary, data, workers=True)
        report("drain", wait_delivered(sink, EVENTS), EVENTS)
        print(f"load after drain: {uptime()}")

        # ---- live: created while the workers deliver ----
        sink.call("POST", "/reset")
        took = create_events(server.port, key, wid, EVENTS)
        report("live", wait_delivered(sink, EVENTS), EVENTS,
               f" (created at {EVENTS / took:.0f} events/s by {CLIENTS} clients)")
        print(f"load after: {uptime()}")
    finally:
        if server:
            server.stop()
        sink_proc.terminate()
        sink_proc.wait(timeout=10)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Checks crier's webhook signatures with an independent implementation: the Standard Webhooks
reference library (`standardwebhooks` from PyPI), run by scripts/verify-webhooks.sh in its own
virtualenv.

A real `crier serve` (fresh data dir, 127.0.0.1 only, private networks allowed for webhooks)
delivers to a receiver in this process (http.server) that captures every request. Events come
from the whole product: a test event, a key created and revoked through the API, a post to a
sandbox account published now and one scheduled, the account disconnected. Then the secret is
rotated with an overlap, and events are sent during the overlap (a test event, a new key) and
after it (a test event).

Every captured delivery is verified with `standardwebhooks.Webhook(secret).verify(body,
headers)`: before the rotation with the first secret (and not with the second); during the
overlap with both; after it with the new one only (the old one must fail). Any mismatch fails
the run (exit 1). The last line is `N passed, M failed`.

Usage: verify_webhooks.py CRIER_BIN WORK_DIR
"""
import http.client
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

OVERLAP_SECONDS = 10
WAIT_SECONDS = 30


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Captured:
    """Requests the receiver got, in arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def add(self, headers, body):
        with self.lock:
            self.items.append((headers, body))

    def all(self):
        with self.lock:
            return list(self.items)


def receiver(captured):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            captured.add({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Api:
    def __init__(self, port, key):
        self.port, self.key = port, key

    def call(self, method, path, body=None, expect=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            resp = conn.getresponse()
            data = json.loads(resp.read() or b"null")
        finally:
            conn.close()
        if expect is not None and resp.status != expect:
            raise SystemExit(f"FAIL: {method} {path} answered {resp.status}, not {expect}: {data}")
        return data


def admin(binary, data, *args):
    out = subprocess.run([binary, "--data-dir", data, "admin", *args, "--json"],
                         check=True, capture_output=True, text=True, timeout=60)
    return json.loads(out.stdout)


def wait_for(what, check, seconds=WAIT_SECONDS):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise SystemExit(f"FAIL: timed out after {seconds} s waiting for {what}")


def types_of(items):
    return [json.loads(body)["type"] for _, body in items]


def main():
    binary, work = sys.argv[1], sys.argv[2]
    data = os.path.join(work, "data")
    captured = Captured()
    rx = receiver(captured)
    hook_url = f"http://127.0.0.1:{rx.server_address[1]}/hooks/crier"

    admin(binary, data, "workspace", "create", "verify-webhooks")
    key = admin(binary, data, "key", "create", "--workspace", "verify-webhooks", "--scope", "all",
                "--test", "--name", "verifier")["key"]
    port = free_port()
    env = dict(os.environ, CRIER_WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
               CRIER_LOG_LEVEL=os.environ.get("CRIER_LOG_LEVEL", "warn"))
    log = open(os.path.join(work, "server.log"), "wb")
    server = subprocess.Popen([binary, "--data-dir", data, "serve", "--bind", f"127.0.0.1:{port}"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    with open(os.path.join(work, "server.pid"), "w") as f:
        f.write(str(server.pid))
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return True
            except OSError:
                return server.poll() is not None and sys.exit("FAIL: crier serve exited")
        wait_for("crier serve to listen", up)
        return run(Api(port, key), hook_url, captured)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        rx.shutdown()
        log.close()


def run(api, hook_url, captured):
    e = api.call("POST", "/v1/webhooks", {"url": hook_url, "events": ["*"],
                                          "description": "verify-webhooks"}, expect=201)
    first_secret = e["secret"]
    assert first_secret.startswith("whsec_"), e
    wid = e["id"]

    # ---- events from the whole product, signed with the first secret ----
    api.call("POST", f"/v1/webhooks/{wid}/test", expect=202)
    k = api.call("POST", "/v1/keys", {"name": "made through the API", "scopes": ["posts:read"]},
                 expect=201)
    acct = api.call("POST", "/v1/connect/sandbox", {"handle": "verifier"}, expect=201)["id"]
    now_post = api.call("POST", "/v1/posts", {"body": "published now", "account_ids": [acct]},
                        expect=201)["id"]
    api.call("POST", f"/v1/posts/{now_post}/publish", expect=200)
    later = datetime.now(timezone.utc) + timedelta(seconds=2)
    later_post = api.call("POST", "/v1/posts", {"body": "published later", "account_ids": [acct]},
                          expect=201)["id"]
    api.call("POST", f"/v1/posts/{later_post}/schedule",
             {"scheduled_at": later.isoformat(timespec="milliseconds").replace("+00:00", "Z")},
             expect=200)
    expected = ["webhook.test", "key.created", "post.published", "post.scheduled",
                "post.published"]

    def have(kinds):
        got = types_of(captured.all())
        return all(got.count(t) >= kinds.count(t) for t in set(kinds))
    wait_for(f"deliveries of {expected}", lambda: have(expected))
    api.call("DELETE", f"/v1/keys/{k['id']}", expect=200)
    api.call("DELETE", f"/v1/accounts/{acct}", expect=200)
    expected += ["key.revoked", "account.disconnected"]
    wait_for(f"deliveries of {expected}", lambda: have(expected))
    time.sleep(0.5)  # anything else on its way lands before the rotation
    before = len(captured.all())

    # ---- rotation with an overlap: both signatures, then the new one only ----
    r = api.call("POST", f"/v1/webhooks/{wid}/rotate", {"overlap_seconds": OVERLAP_SECONDS},
                 expect=200)
    rotated_at = time.time()
    second_secret = r["secret"]
    assert second_secret != first_secret
    api.call("POST", f"/v1/webhooks/{wid}/test", expect=202)
    api.call("POST", "/v1/keys", {"name": "made during the overlap", "scopes": ["posts:read"]},
             expect=201)
    wait_for("deliveries during the overlap", lambda: len(captured.all()) >= before + 2)
    time.sleep(0.3)
    during = len(captured.all())
    if time.time() - rotated_at > OVERLAP_SECONDS - 1:
        raise SystemExit("FAIL: the overlap deliveries came too late to tell the phases apart")
    time.sleep(max(0.0, rotated_at + OVERLAP_SECONDS + 1 - time.time()))
    api.call("POST", f"/v1/webhooks/{wid}/test", expect=202)
    wait_for("a delivery after the overlap", lambda: len(captured.all()) >= during + 1)
    time.sleep(0.3)

    # ---- verify every captured delivery with the reference library ----
    items = captured.all()
    phases = [("before rotation", items[:before], [first_secret], [second_secret]),
              ("during overlap", items[before:during], [first_secret, second_secret], []),
              ("after overlap", items[during:], [second_secret], [first_secret])]
    passed = failed = 0
    for phase, group, good, bad in phases:
        if not group:
            print(f"FAIL {phase}: no delivery captured")
            failed += 1
        for headers, body in group:
            problems = []
            payload = None
            for secret in good:
                try:
                    payload = Webhook(secret).verify(body, headers)
                except WebhookVerificationError as err:
                    problems.append(f"does not verify with {'new' if secret == second_secret else 'old'} secret: {err}")
            for secret in bad:
                try:
                    Webhook(secret).verify(body, headers)
                    problems.append("verifies with a secret that must not sign it")
                except WebhookVerificationError:
                    pass
            sigs = headers.get("webhook-signature", "").split(" ")
            if len(sigs) != len(good) or not all(s.startswith("v1,") for s in sigs):
                problems.append(f"expected {len(good)} v1 signature(s), got {sigs}")
            if payload is not None:
                if sorted(payload) != ["created_at", "data", "id", "type"]:
                    problems.append(f"body keys {sorted(payload)}")
                if payload.get("id") != headers.get("webhook-id"):
                    problems.append("body id differs from webhook-id")
            kind = json.loads(body).get("type")
            if problems:
                failed += 1
                print(f"FAIL {phase}: {kind} {headers.get('webhook-id')}: {'; '.join(problems)}")
            else:
                passed += 1
                print(f"ok   {phase}: {kind} {headers.get('webhook-id')} "
                      f"({len(sigs)} signature{'s' if len(sigs) > 1 else ''})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Creates N API keys through a local crier's API (POST /v1/keys) and writes their secrets,
one a line, to a file. Standard library only; one keep-alive connection per worker thread.

    mint_keys.py PORT ADMIN_KEY COUNT OUT_FILE [THREADS]

Talks only to 127.0.0.1. The admin key needs keys:write and limits at least as high as the
keys it creates (each gets 1,000,000 a minute and 1,000,000,000 a day).
"""

import http.client
import json
import sys
import threading

HOST = "127.0.0.1"
MAX_COUNT = 100_000


def mint(port, admin_key, indices, out, errors):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {
        "Authorization": f"Bearer {admin_key}",
        "Content-Type": "application/json",
    }
    try:
        for i in indices:
            body = json.dumps(
                {
                    "name": f"load {i}",
                    "scopes": ["keys:read"],
                    "rate_limit": {"per_minute": 1_000_000, "per_day": 1_000_000_000},
                }
            )
            conn.request("POST", "/v1/keys", body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 201:
                errors.append(f"key {i}: HTTP {resp.status}: {data[:300]!r}")
                return
            out[i] = json.loads(data)["key"]
    except Exception as e:  # noqa: BLE001 - reported to the caller below
        errors.append(f"worker failed: {e!r}")
    finally:
        conn.close()


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    port = int(sys.argv[1])
    admin_key = sys.argv[2]
    count = int(sys.argv[3])
    path = sys.argv[4]
    threads = int(sys.argv[5]) if len(sys.argv) == 6 else 4
    if not 1 <= count <= MAX_COUNT:
        sys.exit(f"COUNT must be 1 to {MAX_COUNT}")
    threads = max(1, min(threads, 16, count))
    out = [None] * count
    errors = []
    workers = [
        threading.Thread(
            target=mint,
            args=(port, admin_key, range(t, count, threads), out, errors),
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors or any(k is None for k in out):
        sys.exit("mint_keys: " + ("; ".join(errors[:5]) or "some keys are missing"))
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()

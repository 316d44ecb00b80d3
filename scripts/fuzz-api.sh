#!/usr/bin/env bash
# Fuzzes a real `crier serve` against its own OpenAPI description with schemathesis (PyPI,
# pinned below, installed into a virtualenv under target/): every check, every phase
# (examples, coverage, fuzzing, stateful, which follows the document's links), a bounded
# number of examples per operation and a time budget. Exit 1 on any failure.
#
# The server: CRIER_BIN (or a release build made here), a fresh data dir, 127.0.0.1 on a free
# port. Webhook and feed URLs may point at private networks (so the fuzzer's localhost URLs
# are accepted, as they would be on a self-hosted box), and every outbound request of the
# webhook and feed workers goes to an HTTP proxy on a loopback port nothing listens on: the
# fuzzer invents URLs, and the server must not call random hosts on the internet for it.
# Deliveries and polls simply fail.
#
# The workspace is on the `self-hosted` plan (no quotas) and its all-scopes live key has the
# plan's ceilings as rate limits, and the per-address throttle of failed authentications is
# lifted (the fuzzer sends bad credentials on purpose, from the same address as the good ones),
# so the fuzzer is never throttled. Queue slots are set, and
# scripts/fuzz_api_hooks.py fills in, for valid cases only, what a schema cannot say (which
# accounts are connected, that a time is in the future, the sandbox network's text limits).
# Stateful tests chain requests through the 201 responses' links.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/target/fuzz-venv"
PACKAGE="schemathesis==4.32.5"
# Wall-clock budget of the schemathesis run itself (the whole script stays under 8 minutes
# on a 2-core machine), and examples per operation and phase.
MAX_TIME=${FUZZ_MAX_TIME:-300}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-60}

if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "${PACKAGE#*==}"; then
  echo "fuzz-api: installing $PACKAGE into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE"
fi

if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --quiet --release -p crier --manifest-path "$ROOT/Cargo.toml"
  CRIER_BIN="$ROOT/target/release/crier"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-fuzz-api.XXXXXX")
SERVER_PID=
MODEL_PID=
cleanup() {
  if [[ -n $MODEL_PID ]]; then
    kill "$MODEL_PID" 2>/dev/null || true
  fi
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
# Nothing listens here: with private networks allowed (the general switch, which lets the
# environment's proxies apply to every outbound call: webhooks, feeds, knowledge pages, media
# imports, the networks' servers), every request the fuzzer makes the server send is refused
# on loopback, and none leaves the machine.
DEAD_PROXY="http://127.0.0.1:$(free_port)"
DATA="$WORK/data"
BASE="http://127.0.0.1:$PORT"

admin() { "$CRIER_BIN" --data-dir "$DATA" admin "$@" --json; }
admin workspace create fuzz --plan self-hosted >/dev/null
KEY_JSON=$(admin key create --workspace fuzz --scope all --name fuzz \
  --per-minute 1000000 --per-day 1000000000)
KEY=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["key"])' "$KEY_JSON")
KEY_ID=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["id"])' "$KEY_JSON")
# The fuzzer finds key ids in list responses and would revoke, rotate or narrow its own key;
# the hooks point those requests at this decoy instead.
DECOY_ID=$(admin key create --workspace fuzz --scope all --name decoy |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# A model server for `rewrite` and `compose` (without one they answer 503, which the fuzzer
# counts as a server error): scripts/fake_model.py, deterministic, stdlib only, on loopback.
MODEL_PORT=$(free_port)
python3 "$ROOT/scripts/fake_model.py" "$MODEL_PORT" >"$WORK/model.log" 2>&1 &
MODEL_PID=$!
env CRIER_ALLOW_PRIVATE_NETWORKS=true \
  CRIER_AI_BASE_URL="http://127.0.0.1:$MODEL_PORT/v1" CRIER_AI_MODEL=fake \
  CRIER_AI_EMBEDDINGS_MODEL=fake \
  HTTP_PROXY="$DEAD_PROXY" HTTPS_PROXY="$DEAD_PROXY" ALL_PROXY="$DEAD_PROXY" \
  http_proxy="$DEAD_PROXY" https_proxy="$DEAD_PROXY" all_proxy="$DEAD_PROXY" \
  NO_PROXY= no_proxy= CRIER_LOG_LEVEL=warn CRIER_AUTH_FAILURES_PER_MINUTE=1000000 \
  "$CRIER_BIN" --data-dir "$DATA" serve --bind "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  curl -fsS "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
  sleep 0.1
done

api() {
  curl -fsS -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' "$@"
}
# Slots every two hours, every day (100): `{"slot":"next"}` finds a free one.
python3 -c '
import json
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
slots = [{"day": d, "time": f"{h:02}:{m:02}"} for d in days for h in range(0, 24, 2) for m in (0, 30)]
print(json.dumps({"slots": slots[:100]}))' >"$WORK/slots.json"
api -X PUT --data @"$WORK/slots.json" "$BASE/v1/queue/slots" >/dev/null

echo "fuzz-api: schemathesis against $BASE (at most ${MAX_TIME}s, $MAX_EXAMPLES examples per operation)" >&2
status=0
(
  cd "$WORK"
  export SCHEMATHESIS_HOOKS=fuzz_api_hooks PYTHONPATH="$ROOT/scripts"
  export FUZZ_BASE_URL="$BASE" FUZZ_KEY="$KEY" FUZZ_SLOTS_FILE="$WORK/slots.json"
  export FUZZ_KEY_ID="$KEY_ID" FUZZ_DECOY_KEY_ID="$DECOY_ID"
  timeout $((MAX_TIME + 120)) "$VENV/bin/schemathesis" --config-file "$ROOT/scripts/fuzz-api.toml" \
    run "$BASE/v1/openapi.json" \
    -H "Authorization: Bearer $KEY" -H "X-API-Key: $KEY" \
    --checks all \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$MAX_EXAMPLES" \
    --max-time "$MAX_TIME" \
    --workers 1 \
    --seed "${FUZZ_SEED:-20261202}" \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    --report junit --report-dir "$ROOT/target/fuzz-api-report"
) 2>&1 | tee "$WORK/schemathesis.log" || status=$?
# A crash inside Hypothesis itself (a "Runtime Error" whose traceback is in
# hypothesis/internal, seen once as "AST constructor recursion depth mismatch") says nothing
# about the API. A run that found no failure and whose only errors are such crashes passes,
# loudly; any failure, any other error, a dead server or a server ERROR line still fails it.
if [[ $status -ne 0 ]] && ! grep -q '^Failures:' "$WORK/schemathesis.log" \
  && grep -q 'hypothesis/internal' "$WORK/schemathesis.log" \
  && ! grep -A20 '^Errors:' "$WORK/schemathesis.log" | grep -E '^\s+🚫' | grep -vq 'Runtime Error'; then
  echo "fuzz-api: WARNING: no failures; only Hypothesis-internal runtime errors (see above)" >&2
  status=0
fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "fuzz-api: the server died; its log:" >&2
  tail -n 40 "$WORK/server.log" >&2
  exit 1
fi
if grep -q ' ERROR ' "$WORK/server.log"; then
  echo "fuzz-api: the server logged errors:" >&2
  grep ' ERROR ' "$WORK/server.log" | head -n 20 >&2
  status=1
fi
if [[ $status -ne 0 ]]; then
  echo "fuzz-api: FAILED (exit $status)" >&2
  exit 1
fi
echo "fuzz-api: no failures" >&2

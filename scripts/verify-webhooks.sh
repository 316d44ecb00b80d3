#!/usr/bin/env bash
# Verifies the signatures of webhooks delivered by a real `crier serve` with an independent
# implementation: the Standard Webhooks reference library (`standardwebhooks` from PyPI),
# installed into a virtualenv under target/. See scripts/verify_webhooks.py for what is sent
# and checked. Uses CRIER_BIN, or builds target/debug/crier. Only 127.0.0.1 is used; the server,
# the receiver and the temp dir are cleaned up on exit. Exit 1 on any mismatch.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/target/webhook-venv"
PACKAGE="standardwebhooks>=1.0,<2"

if ! "$VENV/bin/python" -c 'import standardwebhooks' 2>/dev/null; then
  echo "verify-webhooks: installing $PACKAGE into $VENV" >&2
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE"
fi

if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --quiet -p crier --manifest-path "$ROOT/Cargo.toml"
  CRIER_BIN="$ROOT/target/debug/crier"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-verify-webhooks.XXXXXX")
PY_PID=
cleanup() {
  if [[ -n $PY_PID ]] && kill -0 "$PY_PID" 2>/dev/null; then
    kill "$PY_PID" 2>/dev/null || true
    wait "$PY_PID" 2>/dev/null || true
  fi
  # The server is the Python script's child; should the script have died without stopping
  # it, stop it by its recorded id.
  if [[ -f $WORK/server.pid ]]; then
    pid=$(cat "$WORK/server.pid")
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
    fi
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

status=0
timeout 180 "$VENV/bin/python" "$ROOT/scripts/verify_webhooks.py" "$CRIER_BIN" "$WORK" &
PY_PID=$!
wait "$PY_PID" || status=$?
PY_PID=
if [[ $status -ne 0 ]]; then
  echo "verify-webhooks: FAILED (exit $status); the server's log:" >&2
  tail -n 40 "$WORK/server.log" >&2 2>/dev/null || true
  exit 1
fi

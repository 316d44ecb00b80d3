#!/usr/bin/env bash
# Webhook delivery benchmark against a release build of crier on SQLite: deliveries per second
# to a local receiver (crates/crier-worker/examples/webhook_sink.rs, measured alone first), with
# signing on. BENCH_EVENTS sets the number of events per phase (default 5000). See
# bench/webhooks.py for what it measures. Everything runs on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p crier-worker --example webhook_sink >&2
SINK_BIN="$ROOT/target/release/examples/webhook_sink"
if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --release -p crier --manifest-path "$ROOT/Cargo.toml" >&2
  CRIER_BIN="$ROOT/target/release/crier"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-webhooks.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 "$ROOT/bench/webhooks.py" "$CRIER_BIN" "$SINK_BIN" "$WORK"

#!/usr/bin/env bash
# Publishing benchmark (throughput and lateness) against a release build of crier, on SQLite by
# default or on PostgreSQL with BENCH_DATABASE_URL=postgres://… (a fresh database it may fill).
# See bench/publish.py for what it measures. Everything runs on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --release -p crier --manifest-path "$ROOT/Cargo.toml" >&2
  CRIER_BIN="$ROOT/target/release/crier"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-publish.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
extra=()
[[ -n ${BENCH_DATABASE_URL:-} ]] && extra=(--database-url "$BENCH_DATABASE_URL")
python3 "$ROOT/bench/publish.py" "$CRIER_BIN" "$WORK" "${extra[@]}"

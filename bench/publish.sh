#!/usr/bin/env bash
# Publishing benchmark (the nine o'clock burst and lateness) against a release build of crier,
# on SQLite by default, or on PostgreSQL with BENCH_PG=1 (a fresh database on the server of
# BENCH_POSTGRES_URL, dropped afterwards; BENCH_WORKERS=N runs N worker nodes beside one API
# node). See bench/publish.py for what it measures. Everything runs on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/fresh_db.sh"
if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --release -p crier --manifest-path "$ROOT/Cargo.toml" >&2
  CRIER_BIN="$ROOT/target/release/crier"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-publish.XXXXXX")
trap 'rm -rf "$WORK"; drop_db' EXIT
extra=()
if [[ ${BENCH_PG:-0} == 1 ]]; then
  extra=(--database-url "$(fresh_db)")
fi
python3 "$ROOT/bench/publish.py" "$CRIER_BIN" "$WORK" "${extra[@]}"

#!/usr/bin/env bash
# Revocation propagation across three API nodes on PostgreSQL and Redis (see
# bench/revocation.py). Creates a fresh database on the PostgreSQL server of
# BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432) and drops it on exit;
# BENCH_REDIS_URL defaults to redis://127.0.0.1:6379. Everything runs on 127.0.0.1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/fresh_db.sh"
if [[ -z ${CRIER_BIN:-} ]]; then
  cargo build --release -p crier --manifest-path "$ROOT/Cargo.toml" >&2
  CRIER_BIN="$ROOT/target/release/crier"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-revocation.XXXXXX")
DB_URL=$(fresh_db)
trap 'rm -rf "$WORK"; drop_db' EXIT
python3 "$ROOT/bench/revocation.py" "$CRIER_BIN" "$WORK" "$DB_URL" \
  "${BENCH_REDIS_URL:-redis://127.0.0.1:6379}"

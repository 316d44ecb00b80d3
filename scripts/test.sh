#!/usr/bin/env bash
# The whole test suite. Tests that need PostgreSQL read CRIER_TEST_DATABASE_URL; without it they
# skip (on a laptop), and with CI=true they fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CI:-}" = "true" ] && [ -z "${CRIER_TEST_DATABASE_URL:-}" ]; then
  echo "CRIER_TEST_DATABASE_URL must be set in CI" >&2
  exit 1
fi
# A real S3 implementation (s3s-fs, which checks SigV4 signatures) for the media tests' S3
# path; installed once under target/peers/, stopped when this script ends.
scripts/peers/s3.sh start
trap 'scripts/peers/s3.sh stop' EXIT
set -a
. target/peers/s3.env
set +a
cargo test --workspace "$@"
# Webhook signatures checked by an independent implementation (Python, from PyPI) against a real
# server on SQLite.
scripts/verify-webhooks.sh
# The API against its own OpenAPI description (schemathesis, every check and phase), on the
# release server CI builds (CRIER_BIN); by hand: scripts/fuzz-api.sh.
if [ -n "${CRIER_BIN:-}" ]; then
  scripts/fuzz-api.sh
fi

#!/usr/bin/env bash
# The whole test suite. Tests that need PostgreSQL read CRIER_TEST_DATABASE_URL; without it they
# skip (on a laptop), and with CI=true they fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CI:-}" = "true" ] && [ -z "${CRIER_TEST_DATABASE_URL:-}" ]; then
  echo "CRIER_TEST_DATABASE_URL must be set in CI" >&2
  exit 1
fi
# The real Bluesky PDS for the connector's tests (installed once into target/peers; needs npm).
# Without it those tests skip, unless CRIER_REQUIRE_PEERS=1.
if scripts/peers/pds.sh start; then
  set -a; . target/peers/pds.env; set +a
  trap 'scripts/peers/pds.sh stop' EXIT
elif [ "${CRIER_REQUIRE_PEERS:-}" = "1" ]; then
  exit 1
fi
cargo test --workspace "$@"
# Webhook signatures checked by an independent implementation (Python, from PyPI) against a real
# server on SQLite.
scripts/verify-webhooks.sh
# The API against its own OpenAPI description (schemathesis, every check and phase), on the
# release server CI builds (CRIER_BIN); by hand: scripts/fuzz-api.sh.
if [ -n "${CRIER_BIN:-}" ]; then
  scripts/fuzz-api.sh
fi

#!/usr/bin/env bash
# The whole test suite. Tests that need PostgreSQL read CRIER_TEST_DATABASE_URL; without it they
# skip (on a laptop), and with CI=true they fail instead of skipping.
#
# Peers: real server software the network connectors and the media store are verified against
# (a Bluesky PDS, mastodon-mock, s3s-fs, oidc-provider; see README "Networks"), and Chromium
# for the browser tests, installed by
# scripts/peers/*.sh into target/peers (cached between runs) and started on 127.0.0.1 for the run. Set
# CRIER_SKIP_PEERS=1 to run without them (their tests then skip); with CI=true a peer that does
# not start fails the run, and tests that need one fail instead of skipping.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${CI:-}" = "true" ] && [ -z "${CRIER_TEST_DATABASE_URL:-}" ]; then
  echo "CRIER_TEST_DATABASE_URL must be set in CI" >&2
  exit 1
fi
PEERS=(pds mastodon s3 oidc llm browser mcp tools)
stop_peers() {
  for p in "${PEERS[@]}"; do
    [ -x "scripts/peers/$p.sh" ] && "scripts/peers/$p.sh" stop >/dev/null 2>&1 || true
  done
}
if [ -z "${CRIER_SKIP_PEERS:-}" ]; then
  trap stop_peers EXIT
  for p in "${PEERS[@]}"; do
    if ! "scripts/peers/$p.sh" start; then
      echo "test: peer $p did not start" >&2
      if [ "${CI:-}" = "true" ]; then exit 1; fi
      continue
    fi
    set -a
    # shellcheck disable=SC1090
    . "target/peers/$p.env"
    set +a
  done
  if [ "${CI:-}" = "true" ]; then export CRIER_REQUIRE_PEERS=1; fi
fi
# Every target runs even after one fails, so one run shows every failure.
cargo test --workspace --no-fail-fast "$@"
# Webhook signatures checked by an independent implementation (Python, from PyPI) against a real
# server on SQLite.
scripts/verify-webhooks.sh
# The API against its own OpenAPI description (schemathesis, every check and phase), on the
# server binary CI names in CRIER_BIN; by hand: scripts/fuzz-api.sh.
if [ -n "${CRIER_BIN:-}" ]; then
  scripts/fuzz-api.sh
fi

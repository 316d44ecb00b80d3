#!/usr/bin/env bash
# mastodon-mock (PyPI, a stateful Mastodon API mock) on 127.0.0.1, for the Mastodon connector's
# tests (crates/crier-networks/tests/mastodon.rs).
#
#   scripts/peers/mastodon.sh start   # installs once into target/peers/mastodon-venv, starts on a
#                                     # free loopback port, writes target/peers/mastodon.env
#   scripts/peers/mastodon.sh stop    # stops the server this script started
#
# Then: `set -a; . target/peers/mastodon.env; set +a; cargo test -p crier-networks --test mastodon`.
# The server keeps its state in memory (`--in-memory`) with the demo users (ada, grace, alan,
# katherine), so every start is a fresh instance.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS="$ROOT/target/peers"
VENV="$PEERS/mastodon-venv"
PACKAGE="mastodon-mock==0.6.1"
PIDFILE="$PEERS/mastodon.pid"
ENVFILE="$PEERS/mastodon.env"
LOG="$PEERS/mastodon.log"

install() {
  if "$VENV/bin/pip" show mastodon-mock 2>/dev/null | grep -qx "Version: ${PACKAGE#*==}"; then
    return
  fi
  echo "mastodon.sh: installing $PACKAGE into $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$PEERS"
  python3 -m venv "$VENV"
  timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE"
}

# free_port, stop
# shellcheck source=scripts/peers/lib.sh
. "$ROOT/scripts/peers/lib.sh"

start() {
  install
  stop
  mkdir -p "$PEERS"
  local port url
  port=$(free_port)
  url="http://127.0.0.1:$port"
  "$VENV/bin/mastodon_mock" serve --host 127.0.0.1 --port "$port" --in-memory --demo \
    >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  # Bounded wait: 30 s.
  for _ in $(seq 150); do
    if curl -fsS --max-time 2 "$url/api/v2/instance" >/dev/null 2>&1; then
      echo "CRIER_TEST_MASTODON_URL=$url" >"$ENVFILE"
      echo "mastodon.sh: mastodon-mock at $url (env in $ENVFILE)" >&2
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "mastodon.sh: mastodon-mock exited; its log:" >&2
      cat "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.2
  done
  echo "mastodon.sh: mastodon-mock did not answer at $url within 30 s; its log:" >&2
  cat "$LOG" >&2
  stop
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

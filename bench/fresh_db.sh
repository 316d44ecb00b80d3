# Sourced by the benchmarks: a fresh PostgreSQL database for one run, dropped afterwards.
#   DB_URL=$(fresh_db); trap drop_db EXIT
# The server is BENCH_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432, as in CI).
BENCH_POSTGRES_URL=${BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}
BENCH_DB_NAME="crier_bench_$$_$RANDOM"
fresh_db() {
  psql -q "$BENCH_POSTGRES_URL/postgres" -c "CREATE DATABASE $BENCH_DB_NAME" >/dev/null ||
    { echo "could not create a database on $BENCH_POSTGRES_URL" >&2; return 1; }
  echo "$BENCH_POSTGRES_URL/$BENCH_DB_NAME"
}
drop_db() {
  psql -q "$BENCH_POSTGRES_URL/postgres" -c "DROP DATABASE IF EXISTS $BENCH_DB_NAME WITH (FORCE)" \
    >/dev/null 2>&1 || true
}

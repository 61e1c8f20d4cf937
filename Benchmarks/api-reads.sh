#!/usr/bin/env bash
# API reads, ChatServer against the Python original (Benchmarks/ReferenceDjango), in one run on
# the same machine and core: requests per second on GET /api/chat/ (a user's 20 chats,
# JWT-authenticated) for Django on PostgreSQL and ChatServer on PostgreSQL and on SQLite, with the
# server's own CPU per request (/proc), and GET /healthz; each server pinned to the last core, wrk
# on the others (wrk's own cost stays off the server's core).
#
# Needs: a release build (swift build -c release --product chat-server), PostgreSQL on 127.0.0.1
# with the role chat_test (.ci/run makes it), wrk (apt-get install wrk), and Python with
#   python3 -m pip install django djangorestframework djangorestframework-simplejwt uvicorn "psycopg[binary,pool]"
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-1}
PG=postgres://chat_test:chat_test@127.0.0.1:5432
CORES=$(nproc)
SERVER_CORE=$((CORES - 1))
LOAD_CORES="0-$((CORES > 1 ? CORES - 2 : 0))"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

for db in bench_django bench_swift; do
  runuser -u postgres -- dropdb --if-exists "$db"
  runuser -u postgres -- createdb -O chat_test "$db"
done

wait_for() { for _ in $(seq 1 300); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
# Successful (2xx) answers a second: wrk's requests less its "Non-2xx or 3xx responses", over the run.
rps() {
  taskset -c "$LOAD_CORES" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" ${2:+-H "Authorization: Bearer $2"} "$1" | tee /dev/stderr |
    awk '/ requests in / {requests = $1; seconds = $4 + 0} /Non-2xx or 3xx/ {failed = $NF} END {printf "%.0f\n", (requests - failed) / seconds}'
}

echo "--- Django reference (uvicorn, one process, core $SERVER_CORE)" >&2
(
  cd Benchmarks/ReferenceDjango
  export DATABASE_URL=$PG/bench_django
  python3 manage.py makemigrations authentication chat -v 0
  python3 manage.py migrate -v 0
)
DJANGO_TOKEN=$(cd Benchmarks/ReferenceDjango && DATABASE_URL=$PG/bench_django python3 manage.py seed_bench --chats 20)
(cd Benchmarks/ReferenceDjango && DATABASE_URL=$PG/bench_django exec taskset -c "$SERVER_CORE" \
  python3 -m uvicorn core.asgi:application --host 127.0.0.1 --port 8101 --log-level warning --no-access-log) &
pids+=($!)
wait_for http://127.0.0.1:8101/api/chat/
sleep 1
curl -fs -H "Authorization: Bearer $DJANGO_TOKEN" http://127.0.0.1:8101/api/chat/ | head -c 200 >&2; echo >&2
DJANGO_RPS=$(rps http://127.0.0.1:8101/api/chat/ "$DJANGO_TOKEN")
cleanup; pids=()

# ChatServer on one database: starts it on core $SERVER_CORE, seeds a user with 20 chats, measures.
# Prints "<GET /api/chat/ req/s> <GET /healthz req/s> <server CPU µs per /api/chat/ request>".
chatserver() {
  local url=$1 port=$2
  SECRET_KEY=$(openssl rand -hex 32) ALLOWED_HOSTS=127.0.0.1 DATABASE_URL=$url LOG_LEVEL=error \
    RATE_LIMIT_ENABLED=false DATABASE_POOL_SIZE=8 \
    taskset -c "$SERVER_CORE" .build/release/chat-server serve --env production --hostname 127.0.0.1 --port "$port" >/dev/null 2>&1 &
  local pid=$!
  pids+=($pid)
  wait_for "http://127.0.0.1:$port/healthz"
  local token
  token=$(curl -fs -X POST "http://127.0.0.1:$port/auth/register/" -H "Content-Type: application/json" \
    -d '{"email":"bench@example.com","password":"benchmark-password"}' | python3 -c "import json,sys; print(json.load(sys.stdin)['access'])")
  for i in $(seq 1 20); do
    curl -fs -o /dev/null -X POST "http://127.0.0.1:$port/api/chat/" -H "Authorization: Bearer $token" \
      -H "Content-Type: application/json" -d "{\"title\":\"Chat $i\"}"
  done
  curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$port/api/chat/" | head -c 200 >&2; echo >&2
  local before after list health requests
  before=$(cpu_seconds "$pid")
  list=$(rps "http://127.0.0.1:$port/api/chat/" "$token")
  after=$(cpu_seconds "$pid")
  requests=$(python3 -c "print(float('$list') * float('${DURATION%s}'))")
  health=$(rps "http://127.0.0.1:$port/healthz" "")
  echo "$list $health $(python3 -c "print(round(($after - $before) / $requests * 1e6, 1))")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

# user + system CPU seconds of a process, from /proc/<pid>/stat
cpu_seconds() { awk -v tck="$(getconf CLK_TCK)" '{print ($14 + $15) / tck}' "/proc/$1/stat"; }

echo "--- ChatServer on PostgreSQL (release build, core $SERVER_CORE)" >&2
read -r PG_RPS PG_HEALTH PG_CPU < <(chatserver "$PG/bench_swift" 8102)
echo "--- ChatServer on SQLite (release build, core $SERVER_CORE)" >&2
SQLITE_DIR=$(mktemp -d)
read -r SQLITE_RPS SQLITE_HEALTH SQLITE_CPU < <(chatserver "sqlite://$SQLITE_DIR/bench.sqlite3" 8103)
rm -rf "$SQLITE_DIR"

python3 - "$DJANGO_RPS" "$PG_RPS" "$PG_CPU" "$SQLITE_RPS" "$SQLITE_CPU" "$PG_HEALTH" <<'PY'
import sys
django, pg, pg_cpu, sqlite, sqlite_cpu, health = map(float, sys.argv[1:])
print("GET /api/chat/ (a user's 20 chats, JWT), server on one core, wrk on the other:")
print(f"  Django reference (PostgreSQL)  {django:>8,.0f} req/s")
print(f"  ChatServer, PostgreSQL         {pg:>8,.0f} req/s  {pg / django:5.1f}x   {pg_cpu:.0f} µs server CPU per request")
print(f"  ChatServer, SQLite             {sqlite:>8,.0f} req/s  {sqlite / django:5.1f}x   {sqlite_cpu:.0f} µs server CPU per request")
print(f"GET /healthz: ChatServer {health:,.0f} req/s")
PY

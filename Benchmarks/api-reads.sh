#!/usr/bin/env bash
# API reads, ChatServer against the Python original (Benchmarks/ReferenceDjango), in one run on
# the same machine, PostgreSQL and core: requests per second on GET /api/chat/ (a user's 20 chats,
# JWT-authenticated), each server pinned to the last core, wrk on the others.
#
# Needs: a release build (swift build -c release --product chat-server), PostgreSQL on 127.0.0.1
# with the role chat_test (.ci/run makes it), wrk (apt-get install wrk), and Python with
#   python3 -m pip install django djangorestframework djangorestframework-simplejwt uvicorn "psycopg[binary]"
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
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

wait_for() { for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
rps() { taskset -c "$LOAD_CORES" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" -H "Authorization: Bearer $2" "$1" | tee /dev/stderr | awk '/Requests\/sec/ {print $2}'; }

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

echo "--- ChatServer (release build, core $SERVER_CORE)" >&2
SECRET_KEY=$(openssl rand -hex 32) ALLOWED_HOSTS=127.0.0.1 DATABASE_URL=$PG/bench_swift LOG_LEVEL=error \
  RATE_LIMIT_ENABLED=false DATABASE_POOL_SIZE=8 \
  taskset -c "$SERVER_CORE" .build/release/chat-server serve --env production --hostname 127.0.0.1 --port 8102 >/dev/null 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:8102/healthz
SWIFT_TOKEN=$(curl -fs -X POST http://127.0.0.1:8102/auth/register/ -H "Content-Type: application/json" \
  -d '{"email":"bench@example.com","password":"benchmark-password"}' | python3 -c "import json,sys; print(json.load(sys.stdin)['access'])")
for i in $(seq 1 20); do
  curl -fs -o /dev/null -X POST http://127.0.0.1:8102/api/chat/ -H "Authorization: Bearer $SWIFT_TOKEN" \
    -H "Content-Type: application/json" -d "{\"title\":\"Chat $i\"}"
done
curl -fs -H "Authorization: Bearer $SWIFT_TOKEN" http://127.0.0.1:8102/api/chat/ | head -c 200 >&2; echo >&2
SWIFT_RPS=$(rps http://127.0.0.1:8102/api/chat/ "$SWIFT_TOKEN")

python3 - "$DJANGO_RPS" "$SWIFT_RPS" <<'PY'
import sys
django, swift = float(sys.argv[1]), float(sys.argv[2])
print(f"GET /api/chat/ (20 chats), one core each: Django reference {django:,.0f} req/s, ChatServer {swift:,.0f} req/s: {swift / django:.1f}x")
PY

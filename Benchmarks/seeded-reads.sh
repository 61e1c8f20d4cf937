#!/usr/bin/env bash
# Reads on a full database: 1,000 users with 10 chats of 10 messages each (10,000 chats, 100,000
# messages, Benchmarks/seed.py), on SQLite and on PostgreSQL. For one user of them it measures
# requests per second and latency (wrk --latency: p50, p99; 32 connections, so latency includes
# queueing on the one core) of the chat list, a chat with its messages, a search, and the usage
# answer; and the search alone on one connection (what one query takes). With BEFORE=<an older chat-server> it measures the
# same reads (those it has) on that build too, on a database seeded as it knows it, in the same run.
#
#   swift build -c release --product chat-server
#   BEFORE=/path/to/old/chat-server Benchmarks/seeded-reads.sh
#
# Needs wrk, PostgreSQL with .ci/run's role, python3 with psycopg (pip install "psycopg[binary]").
# The server is pinned to the last core, wrk to the others.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-32}
USERS=${USERS:-1000}
PG=postgres://chat_test:chat_test@127.0.0.1:5432
CORES=$(nproc)
SERVER_CORE=$((CORES - 1))
LOAD_CORES="0-$((CORES > 1 ? CORES - 2 : 0))"
PORT=8141
RESULTS=$(mktemp)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; }
trap cleanup EXIT

# wrk's requests per second, p50 and p99 (ms) of GET $1 with bearer token $2, over $3 connections.
measure() {
  taskset -c "$LOAD_CORES" wrk -t1 -c"${3:-$CONNECTIONS}" -d"$DURATION" --latency -H "Authorization: Bearer $2" "$1" | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + str(label) + r"%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m: return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print(f"{rps:.0f} {ms(50):.2f} {ms(99):.2f} {errors.group(1) if errors else 0}")'
}

# One build on one database: seed, start, measure; appends "label db endpoint rps p50 p99 errors" to $RESULTS.
run() {
  local label=$1 binary=$2 db=$3 legacy=$4 url dir
  dir=$(mktemp -d)
  if [ "$db" = sqlite ]; then
    url="sqlite://$dir/seeded.sqlite3"
  else
    runuser -u postgres -- dropdb --if-exists bench_seeded
    runuser -u postgres -- createdb -O chat_test bench_seeded
    url="$PG/bench_seeded?sslmode=disable"
  fi
  export SECRET_KEY=$(openssl rand -hex 32) ALLOWED_HOSTS=127.0.0.1 DATABASE_URL=$url LOG_LEVEL=error RATE_LIMIT_ENABLED=false \
    DATABASE_POOL_SIZE=8 BCRYPT_COST=4 OFFLINE_WORD_DELAY=0
  "$binary" migrate --yes >/dev/null 2>&1 || "$binary" migrate >/dev/null
  taskset -c "$SERVER_CORE" "$binary" serve --env production --hostname 127.0.0.1 --port $PORT >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.1; done
  local session token user
  session=$(curl -fs -X POST "http://127.0.0.1:$PORT/auth/register/" -H "Content-Type: application/json" \
    -d '{"email":"bench@example.com","password":"benchmark-password"}')
  token=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['access'])" "$session")
  user=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['user']['id'])" "$session")
  local started=$SECONDS
  python3 Benchmarks/seed.py "$url" --users "$USERS" --owner "$user" $([ "$legacy" = yes ] && echo --legacy)
  echo "--- $label on $db: seeded in $((SECONDS - started)) s" >&2
  local chat words
  chat=$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/chat/?limit=1" | python3 -c "import json,sys; print(json.load(sys.stdin)['results'][0]['id'])")
  # Two words of one of the user's own messages: a search with something to find.
  words=$(curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$PORT/api/chat/$chat/" \
    | python3 -c "import json,sys; w=json.load(sys.stdin)['messages'][0]['content'].rstrip('.').lower().split(); print(w[0] + '%20' + w[3])")
  for endpoint in list detail search usage; do
    case $endpoint in
      list) path=/api/chat/ ;;
      detail) path=/api/chat/$chat/ ;;
      search) [ "$legacy" = yes ] && continue; path="/api/search/?q=$words" ;;
      usage) [ "$legacy" = yes ] && continue; path=/api/usage/ ;;
    esac
    echo "$label $db $endpoint $(measure "http://127.0.0.1:$PORT$path" "$token")" >>"$RESULTS"
  done
  # A search alone (one connection, no queue): what one query costs.
  [ "$legacy" = yes ] || echo "$label $db search1 $(measure "http://127.0.0.1:$PORT/api/search/?q=$words" "$token" 1)" >>"$RESULTS"
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=
  rm -rf "$dir"
}

for db in sqlite postgres; do
  [ -n "${BEFORE:-}" ] && run before "$BEFORE" "$db" yes
  run now .build/release/chat-server "$db" no
done

python3 - "$RESULTS" "$USERS" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1]) if line.strip()]
users = int(sys.argv[2])
print(f"Seeded: {users} users × 10 chats × 10 messages (+ the measured user's own 10 chats); server on one core.")
print("| endpoint | database | before: req/s | now: req/s | now: p50 | now: p99 | non-2xx |")
print("|---|---|---:|---:|---:|---:|---:|")
names = {"list": "GET /api/chat/", "detail": "GET /api/chat/<id>/", "search": "GET /api/search/?q=<2 words>",
         "search1": "the same search, one connection", "usage": "GET /api/usage/"}
for db in ("sqlite", "postgres"):
    for endpoint in ("list", "detail", "search", "search1", "usage"):
        now = next((r for r in rows if r[0] == "now" and r[1] == db and r[2] == endpoint), None)
        before = next((r for r in rows if r[0] == "before" and r[1] == db and r[2] == endpoint), None)
        if not now: continue
        print(f"| {names[endpoint]} | {'SQLite' if db == 'sqlite' else 'PostgreSQL'} | {before[3] if before else '—'} | {now[3]} | "
              f"{now[4]} ms | {now[5]} ms | {now[6]} |")
PY

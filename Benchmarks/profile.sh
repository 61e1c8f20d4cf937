#!/usr/bin/env bash
# Where a request's time goes, per endpoint: the release server on SQLite with a user and 20 chats.
#
#   Benchmarks/profile.sh perf [ENDPOINT…]   # sampled under wrk load (perf record -g), top symbols
#
# (Instruction counts with valgrind's callgrind, which would not depend on the machine's load, are
# not available here: valgrind 3.19, Debian 12's, cannot read the Swift toolchain's DWARF 5, and
# without it crashes in libdispatch's thread set-up. perf samples instead, with wrk's cost kept off
# the server's numbers: perf records the server's process only.)
#
# ENDPOINT: healthz, list (GET /api/chat/), chat (GET /api/chat/<id>/ with 2 messages),
# models (GET /api/models/), me (GET /auth/me/); all by default.
# Needs a release build (swift build -c release --product chat-server), wrk, and perf (linux-perf).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-perf}
shift || true
ENDPOINTS=${*:-healthz list chat models me}
PORT=8131
DIR=$(mktemp -d)
SERVER_PID=
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT

BINARY=.build/release/chat-server
start_server() {
  SECRET_KEY=$(openssl rand -hex 32) ALLOWED_HOSTS=127.0.0.1 DATABASE_URL="sqlite://$DIR/profile.sqlite3" LOG_LEVEL=error \
    RATE_LIMIT_ENABLED=false taskset -c "$(($(nproc) - 1))" "$BINARY" serve --env production --hostname 127.0.0.1 --port $PORT \
    >"$DIR/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && return 0; sleep 0.1; done
  echo "the server did not start:" >&2; cat "$DIR/server.log" >&2; exit 1
}

seed() {
  TOKEN=$(curl -fs -X POST "http://127.0.0.1:$PORT/auth/register/" -H "Content-Type: application/json" \
    -d '{"email":"profile@example.com","password":"profile-password"}' | python3 -c "import json,sys; print(json.load(sys.stdin)['access'])")
  for i in $(seq 1 20); do
    CHAT=$(curl -fs -X POST "http://127.0.0.1:$PORT/api/chat/" -H "Authorization: Bearer $TOKEN" \
      -H "Content-Type: application/json" -d "{\"title\":\"Chat $i\"}" | python3 -c "import json,sys; print(json.load(sys.stdin)['id'])")
  done
  curl -fs -o /dev/null -X POST "http://127.0.0.1:$PORT/api/chat/$CHAT/send/" -H "Authorization: Bearer $TOKEN" \
    -H "Content-Type: application/json" -d '{"content":"Hello"}'
  sleep 3  # the offline provider's reply ends
}

path_of() {
  case $1 in
    healthz) echo /healthz ;;
    list) echo /api/chat/ ;;
    chat) echo "/api/chat/$CHAT/" ;;
    models) echo /api/models/ ;;
    me) echo /auth/me/ ;;
    *) echo "unknown endpoint $1" >&2; exit 1 ;;
  esac
}

case $MODE in
perf)
  start_server
  seed
  for endpoint in $ENDPOINTS; do
    path=$(path_of "$endpoint")
    echo "=== $endpoint: GET $path, sampled under wrk -c64 for 8 s"
    taskset -c 0 wrk -t1 -c64 -d12s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT$path" >"$DIR/wrk.txt" &
    wrk_pid=$!
    sleep 2
    perf record -F 1999 -g -p "$SERVER_PID" -o "$DIR/perf.data" -- sleep 8 2>/dev/null >/dev/null
    wait "$wrk_pid"
    grep Requests/sec "$DIR/wrk.txt"
    echo "--- by library (self time)"
    perf report -i "$DIR/perf.data" --no-children --sort dso -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8 || true
    echo "--- by function (self time)"
    perf report -i "$DIR/perf.data" --no-children --sort symbol -g none 2>/dev/null | grep -v '^#' | grep -v '^$' \
      | awk '{$NF=""; $(NF-1)=""; print}' | cut -c1-150 | head -25 || true
  done
  ;;
*)
  echo "usage: $0 perf [ENDPOINT…]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Tries the deploy files on one machine: two ChatServer instances on one PostgreSQL database
# behind deploy/nginx-chat-server.conf as shipped (TLS with a throwaway certificate, least_conn,
# no chat affinity), and the web chat driven across them in headless Chromium: the browser goes
# through nginx, while replies are started and stopped through each instance's own API in turn,
# so that at least one of the two runs has its reply and its stream on different instances.
#
#   DATABASE_URL=postgres://chat:chat@127.0.0.1:5432/chat_trial deploy/try-two-instances.sh [path/to/chat-server]
#
# Needs nginx, openssl, chromium and chromedriver with python3's selenium, a built chat-server
# (default .build/debug/chat-server) and a PostgreSQL database it may create its tables in.
# Replies come from the offline provider (no ANTHROPIC_API_KEY), a word every 80 ms.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
server=${1:-$root/.build/debug/chat-server}
: "${DATABASE_URL:?set DATABASE_URL to a PostgreSQL database}"
ports=(18000 18001)
work=$(mktemp -d)
chmod 755 "$work"
pids=()
cleanup() {
    [ -f "$work/nginx.pid" ] && nginx -p "$work" -c "$work/nginx.conf" -s stop 2>/dev/null || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -days 1 \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# The site file as shipped; only its names, ports, certificate and upstream list are this trial's.
sed -e "s/chat\.example\.com/localhost/g" \
    -e "s/listen 80;/listen 8080;/; s/listen \[::\]:80;/listen [::]:8080;/" \
    -e "s/listen 443 ssl http2;/listen 8443 ssl http2;/; s/listen \[::\]:443 ssl http2;/listen [::]:8443 ssl http2;/" \
    -e "s#/etc/letsencrypt/live/localhost/fullchain.pem#$work/cert.pem#; s#/etc/letsencrypt/live/localhost/privkey.pem#$work/key.pem#" \
    -e "s/server 127.0.0.1:8000;/server 127.0.0.1:${ports[0]};\n    server 127.0.0.1:${ports[1]};/" \
    "$root/deploy/nginx-chat-server.conf" > "$work/site.conf"
grep -q "least_conn" "$work/site.conf"
! grep -q "hash " "$work/site.conf"
mkdir -m 777 "$work/tmp"
cat > "$work/nginx.conf" <<EOF
pid $work/nginx.pid;
error_log $work/error.log;
events {}
http {
    log_format upstream '\$request_method \$uri -> \$upstream_addr \$status';
    access_log $work/access.log upstream;
    client_body_temp_path $work/tmp/body;
    proxy_temp_path $work/tmp/proxy;
    include $work/site.conf;
}
EOF
nginx -t -p "$work" -c "$work/nginx.conf" 2>&1 | grep -v "syntax is ok\|test is successful" || true

# Two instances: the same SECRET_KEY, the same database, this nginx as their trusted proxy.
export SECRET_KEY; SECRET_KEY=$(openssl rand -hex 32)
export ALLOWED_HOSTS=localhost,127.0.0.1 TRUSTED_PROXIES=127.0.0.1 OFFLINE_WORD_DELAY=0.08 LOG_LEVEL=warning
unset ANTHROPIC_API_KEY
"$server" migrate >/dev/null
for port in "${ports[@]}"; do
    AUTO_MIGRATE=false "$server" serve --port "$port" > "$work/instance-$port.log" 2>&1 &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "instance on $port did not start:"; cat "$work/instance-$port.log"; exit 1; }
done
nginx -p "$work" -c "$work/nginx.conf"
curl -skf https://localhost:8443/healthz >/dev/null

status=0
for port in "${ports[@]}"; do
    echo "== browser through nginx (https://localhost:8443), replies through the instance on $port"
    python3 "$root/BrowserTests/web_two_instances.py" --insecure --base https://localhost:8443 \
        --other "http://127.0.0.1:$port" --metrics "http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]}" \
        --artifacts "$root/artifacts/browser/two-instances-$port" || status=1
done
echo "== where nginx sent the event streams and the other requests"
grep "/messages/" "$work/access.log" | sort | uniq -c
grep -v "/messages/" "$work/access.log" | awk '{print $4}' | sort | uniq -c
exit $status

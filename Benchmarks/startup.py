#!/usr/bin/env python3
"""Start-up time: from exec to the first answered request, on a fresh SQLite database (so the
migrations run) and on one already migrated, a few times each; prints each and the median.

    swift build -c release --product chat-server
    python3 Benchmarks/startup.py [--binary .build/release/chat-server] [--runs 5]

The server is started as `chat-server serve --env production` on a free port; the clock stops at
the first `GET /healthz` answered 200 (polled over a kept-open socket every millisecond).
"""
import argparse
import os
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            return s.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def start_once(binary, database):
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "startup-benchmark-secret-key-0123456789abcdef",
           "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": f"sqlite://{database}", "AUTO_MIGRATE": "true",
           "LOG_LEVEL": "warning"}
    started = time.perf_counter()
    server = subprocess.Popen([binary, "serve", "--env", "production", "--hostname", "127.0.0.1", "--port", str(port)],
                              env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not healthy(port):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with {server.returncode}")
            if time.perf_counter() - started > 30:
                raise SystemExit("no answer within 30 s")
            time.sleep(0.001)
        return time.perf_counter() - started
    finally:
        server.terminate()
        server.wait()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/chat-server"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        database = os.path.join(directory, "startup.sqlite3")
        fresh, migrated = [], []
        for _ in range(args.runs):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(database + suffix):
                    os.remove(database + suffix)
            fresh.append(start_once(args.binary, database))
            migrated.append(start_once(args.binary, database))
    for name, times in (("fresh SQLite (migrations run)", fresh), ("migrated SQLite", migrated)):
        shown = ", ".join(f"{t * 1000:.0f}" for t in times)
        print(f"{name:32} median {statistics.median(times) * 1000:.0f} ms  ({shown} ms)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Memory while files upload: the server's resident set (VmRSS from /proc) sampled every 20 ms
while a client sends files of 1 MB and 20 MB (FILE_MAX_SIZE), each at a limited rate so that the
upload lasts seconds; prints the RSS before, the peak during each upload, and after. A server that
buffered uploads whole would grow by the file's size (and more); one that streams stays flat.

    swift build -c release --product chat-server     (or use .build/debug/chat-server)
    python3 Benchmarks/upload-rss.py [--binary .build/release/chat-server] [--storage database|directory]

The client is Python's http.client over a socket, sending 64 KiB at a time with a pause (about
8 MB/s), so it costs far less CPU than the server's parse, hash and store.
"""
import argparse
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def request(port, method, path, body=None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    data = response.read()
    connection.close()
    return response.status, data


def upload(port, token, size, rate=8 << 20):
    boundary = "rss-benchmark-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
            "Content-Type: text/plain\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    chunk = (b"abcdefghijklmnopqrstuvwxyz012345" * 2048)  # 64 KiB of text
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    connection.putrequest("POST", "/api/files/")
    connection.putheader("Host", "127.0.0.1")
    connection.putheader("Authorization", f"Bearer {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + size + len(tail)))
    connection.endheaders()
    connection.send(head)
    sent = 0
    while sent < size:
        piece = chunk[: min(len(chunk), size - sent)]
        connection.send(piece)
        sent += len(piece)
        time.sleep(len(piece) / rate)
    connection.send(tail)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def start_server(binary, storage, prefix, extra=None):
    """Starts `binary` on a fresh SQLite database in a temporary directory, files kept as `storage`
    says, limits off; waits until it answers. Returns the process, its port and the directory."""
    work = tempfile.mkdtemp(prefix=prefix)
    port = free_port()
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "rss-benchmark-secret-key-0123456789abcdef-0123",
           "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": f"sqlite://{work}/db.sqlite3", "AUTO_MIGRATE": "true",
           "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "RATE_LIMIT_ENABLED": "false", **(extra or {})}
    if storage == "directory":
        env["FILE_STORAGE"] = f"directory:{work}/files"
    server = subprocess.Popen([binary, "serve", "--env", "production"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                break
        except OSError:
            time.sleep(0.05)
    return server, port, work


def register(port, email):
    """Signs up `email`; its access token."""
    status, body = request(port, "POST", "/auth/register/", json.dumps({"email": email, "password": "rss-benchmark-pw"}),
                           {"Content-Type": "application/json", "Host": "127.0.0.1"})
    assert status == 201, body
    return json.loads(body)["access"]


class PeakRSS:
    """The process's VmRSS sampled every 20 ms while the `with` block runs: `before`, `peak`, `after` (KiB)."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self.before = self.peak = rss_kib(self.pid)
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self._sample)
        self.sampler.start()
        return self

    def _sample(self):
        while not self.done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.done.set()
        self.sampler.join()
        self.after = rss_kib(self.pid)
        return False


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/chat-server"))
    parser.add_argument("--storage", default="database", choices=["database", "directory"])
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)
    server, port, _ = start_server(args.binary, args.storage, "upload-rss-")
    try:
        token = register(port, "rss@example.com")
        # Warm up (first upload allocates the pools), then measure.
        upload(port, token, 1 << 20)
        print(f"storage: {args.storage}; binary: {args.binary}")
        for size in (1 << 20, 20 << 20, 20 << 20):
            with PeakRSS(server.pid) as rss:
                started = time.time()
                status, body = upload(port, token, size)
                elapsed = time.time() - started
            assert status == 201, body
            print(f"{size >> 20:>3} MB upload in {elapsed:5.1f} s: RSS before {rss.before / 1024:6.1f} MB, "
                  f"peak {rss.peak / 1024:6.1f} MB (+{(rss.peak - rss.before) / 1024:5.1f}), after {rss.after / 1024:6.1f} MB")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

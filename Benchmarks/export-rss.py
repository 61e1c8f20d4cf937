#!/usr/bin/env python3
"""Memory and CPU while an account is exported (GET /auth/me/export/): an account with 12 files of
20 MB (FILE_MAX_SIZE) and a few chats is exported while the server's resident set (VmRSS) is
sampled every 20 ms and its CPU time (utime + stime from /proc/<pid>/stat) read before and after.
Prints the archive's size, how long it took, the RSS before, at its peak and after, and the
server's CPU per MB. A server that built the ZIP in memory would grow by the archive's size; one
that streams it stays flat.

    swift build -c release --product chat-server     (or use .build/debug/chat-server)
    python3 Benchmarks/export-rss.py [--binary .build/release/chat-server] [--storage database|directory]

The client reads the response 256 KiB at a time with http.client and checks the archive with
zipfile afterwards (not timed); it costs far less than the server's reads, CRC and writes.
"""
import argparse
import importlib.util
import json
import os
import subprocess
import tempfile
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("upload_rss", os.path.join(ROOT, "Benchmarks", "upload-rss.py"))
upload_rss = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(upload_rss)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/chat-server"))
    parser.add_argument("--storage", default="database", choices=["database", "directory"])
    parser.add_argument("--files", type=int, default=12)
    args = parser.parse_args()
    args.binary = os.path.abspath(args.binary)
    work = tempfile.mkdtemp(prefix="export-rss-")
    port = upload_rss.free_port()
    env = {"PATH": "/usr/bin:/bin", "SECRET_KEY": "export-rss-benchmark-secret-key-0123456789abcdef",
           "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": f"sqlite://{work}/db.sqlite3", "AUTO_MIGRATE": "true",
           "PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "warning", "RATE_LIMIT_ENABLED": "false",
           "OFFLINE_WORD_DELAY": "0"}
    if args.storage == "directory":
        env["FILE_STORAGE"] = f"directory:{work}/files"
    server = subprocess.Popen([args.binary, "serve", "--env", "production"], env=env, cwd=work,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if upload_rss.request(port, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        headers = {"Content-Type": "application/json", "Host": "127.0.0.1"}
        status, body = upload_rss.request(port, "POST", "/auth/register/",
                                          json.dumps({"email": "export@example.com", "password": "export-benchmark-pw"}), headers)
        assert status == 201, body
        token = json.loads(body)["access"]
        auth = dict(headers, Authorization=f"Bearer {token}")
        for n in range(20):
            status, body = upload_rss.request(port, "POST", "/api/chat/", json.dumps({"content": f"Question {n}"}), auth)
            assert status == 201, body
        for _ in range(args.files):
            status, body = upload_rss.upload(port, token, 20 << 20, rate=1 << 40)
            assert status == 201, body
        print(f"storage: {args.storage}; binary: {args.binary}; {args.files} files of 20 MB, 20 chats")

        for run in range(2):
            before = upload_rss.rss_kib(server.pid)
            peak = [before]
            done = threading.Event()

            def sample():
                while not done.is_set():
                    peak[0] = max(peak[0], upload_rss.rss_kib(server.pid))
                    time.sleep(0.02)
            sampler = threading.Thread(target=sample)
            sampler.start()
            cpu = cpu_seconds(server.pid)
            started = time.time()
            connection = upload_rss.http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            connection.request("GET", "/auth/me/export/", headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"})
            response = connection.getresponse()
            assert response.status == 200, response.status
            path = os.path.join(work, f"export-{run}.zip")
            size = 0
            with open(path, "wb") as out:
                while piece := response.read(256 << 10):
                    out.write(piece)
                    size += len(piece)
            elapsed = time.time() - started
            used = cpu_seconds(server.pid) - cpu
            done.set()
            sampler.join()
            connection.close()
            after = upload_rss.rss_kib(server.pid)
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None
                entries = len(archive.infolist())
            os.remove(path)
            mb = size / (1 << 20)
            print(f"export {run + 1}: {mb:6.1f} MB, {entries} entries, in {elapsed:4.1f} s ({mb / elapsed:5.0f} MB/s); "
                  f"RSS before {before / 1024:6.1f} MB, peak {peak[0] / 1024:6.1f} MB (+{(peak[0] - before) / 1024:5.1f}), "
                  f"after {after / 1024:6.1f} MB; server CPU {used:4.2f} s ({used / mb * 1000:4.1f} ms per MB)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

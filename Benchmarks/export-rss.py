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
    server, port, work = upload_rss.start_server(args.binary, args.storage, "export-rss-", {"OFFLINE_WORD_DELAY": "0"})
    try:
        token = upload_rss.register(port, "export@example.com")
        auth = {"Content-Type": "application/json", "Host": "127.0.0.1", "Authorization": f"Bearer {token}"}
        for n in range(20):
            status, body = upload_rss.request(port, "POST", "/api/chat/", json.dumps({"content": f"Question {n}"}), auth)
            assert status == 201, body
        for _ in range(args.files):
            status, body = upload_rss.upload(port, token, 20 << 20, rate=1 << 40)
            assert status == 201, body
        print(f"storage: {args.storage}; binary: {args.binary}; {args.files} files of 20 MB, 20 chats")

        for run in range(2):
            path = os.path.join(work, f"export-{run}.zip")
            with upload_rss.PeakRSS(server.pid) as rss:
                cpu = cpu_seconds(server.pid)
                started = time.time()
                connection = upload_rss.http.client.HTTPConnection("127.0.0.1", port, timeout=300)
                connection.request("GET", "/auth/me/export/", headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"})
                response = connection.getresponse()
                assert response.status == 200, response.status
                size = 0
                with open(path, "wb") as out:
                    while piece := response.read(256 << 10):
                        out.write(piece)
                        size += len(piece)
                elapsed = time.time() - started
                used = cpu_seconds(server.pid) - cpu
                connection.close()
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None
                entries = len(archive.infolist())
            os.remove(path)
            mb = size / (1 << 20)
            print(f"export {run + 1}: {mb:6.1f} MB, {entries} entries, in {elapsed:4.1f} s ({mb / elapsed:5.0f} MB/s); "
                  f"RSS before {rss.before / 1024:6.1f} MB, peak {rss.peak / 1024:6.1f} MB (+{(rss.peak - rss.before) / 1024:5.1f}), "
                  f"after {rss.after / 1024:6.1f} MB; server CPU {used:4.2f} s ({used / mb * 1000:4.1f} ms per MB)")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Soak test (issue "Reliability"): runs the release server under a steady mixed load for a long
time and fails when it leaks. Not a CI test: it takes --duration seconds (10 minutes by default).

    swift build -c release --product chat-server
    python3 Benchmarks/soak.py                                   # PostgreSQL, 600 s
    python3 Benchmarks/soak.py --database sqlite --duration 120  # a fresh SQLite file

It starts the server itself (offline provider, every rate limit raised far above the load, metrics
read from loopback) and keeps all of this going at once for the whole run:

- STREAMS event streams (500) over USERS users (50): each connects to one of its user's chats,
  reads for a random time, disconnects; about one in three reconnects with Last-Event-ID, and every
  stream checks that event ids only move forward, across the reconnection too;
- REPLIES replies started a second (20): a message sent on a chat with no reply in progress as far
  as the client knows (409 "Reply in progress" is a limit, not a failure);
- chats created (some with a first message, some without a title) and the oldest ones deleted,
  CHURN a second, so chats stay small and streams meet deleted chats;
- every user's access token refreshed every ~30 s with its refresh token, keeping the new one.

Every --interval seconds (10) it samples the server's RSS and open file descriptors (/proc), the
gauges chat_streams_open and chat_replies_in_flight (GET /metrics), PostgreSQL's connections to
the database (pg_stat_activity; n/a on SQLite) and the requests so far by outcome, and prints them
as a row of the table. When the load stops it waits for the gauges to fall to zero, stops the
server with SIGTERM, prints a summary, draws the samples (--plot, hand-written SVG), and exits 1
(FAIL) when:

- RSS at the end is more than --rss-slack (10 %) above RSS at the --warmup (60 s) sample;
- the heap and stacks (RssAnon) are not flat over the last half of the load: the least-squares
  line through those samples rises by more than --anon-slack (3 %) of their mean, or --anon-floor
  (2 MB), whichever is larger;
- file descriptors drift upward: the mean of the last three samples exceeds the mean of samples
  2-4 after the warm-up (70, 80, 90 s) by more than --fd-slack (5 %) or --fd-floor (20 FDs),
  whichever is larger;
- database connections drift upward the same way by more than --db-slack (1) connection;
- any request failed other than by a limit (429; 409 "Reply in progress"), a deliberate client
  disconnect, or a chat this script deleted itself (404, or a stream's 410 "Chat deleted" event);
- streams or replies are still counted open 40 s after the load stopped, or the server crashed,
  or did not exit cleanly (status 0) on SIGTERM.

The load generator is one Python process (standard library only, asyncio, Python 3.11+) and
prints its own CPU time next to the server's: on a small machine it shares the cores.
Needs: PostgreSQL on 127.0.0.1 with the role chat_test (.ci/run makes it; the database is created
with `runuser -u postgres -- createdb -O chat_test soak` when missing), or --database sqlite.
"""
import argparse
import asyncio
import collections
import json
import math
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
parser.add_argument("--binary", default=os.path.join(ROOT, ".build/release/chat-server"))
parser.add_argument("--cwd", default=ROOT, help="the server's working directory (default the repository)")
parser.add_argument("--database", default="postgres://chat_test:chat_test@127.0.0.1:5432/soak?sslmode=disable",
                    help="a PostgreSQL URL (created when missing), or `sqlite` for a fresh SQLite file")
parser.add_argument("--plot", default=os.path.join(ROOT, "Benchmarks/soak.svg"), help="where to write the SVG plot")
parser.add_argument("--log", help="the server's log (default: a file in a new temporary directory)")
parser.add_argument("--users", type=int, default=50)
parser.add_argument("--streams", type=int, default=500, help="event streams open at once")
parser.add_argument("--replies", type=float, default=20, help="replies started a second")
parser.add_argument("--chats", type=int, default=6, help="chats each user keeps")
parser.add_argument("--churn", type=float, default=2, help="chats created (and as many deleted) a second")
parser.add_argument("--refresh-every", type=float, default=30, help="mean seconds between a user's token refreshes")
parser.add_argument("--word-delay", type=float, default=0.02, help="OFFLINE_WORD_DELAY: seconds per word of a reply")
parser.add_argument("--interval", type=float, default=10, help="seconds between samples")
parser.add_argument("--warmup", type=float, default=60, help="seconds before the baseline sample")
parser.add_argument("--rss-slack", type=float, default=0.10, help="allowed RSS growth after the warm-up (fraction)")
parser.add_argument("--anon-slack", type=float, default=0.03,
                    help="allowed rise of RssAnon over the last half of the load (fraction of its mean, at least --anon-floor)")
parser.add_argument("--anon-floor", type=float, default=2, help="RssAnon rise (MB) always allowed over the last half")
parser.add_argument("--fd-slack", type=float, default=0.05, help="allowed FD drift (fraction, at least --fd-floor)")
parser.add_argument("--fd-floor", type=float, default=20, help="FD drift always allowed: reconnecting streams make the count wobble")
parser.add_argument("--db-slack", type=float, default=1, help="allowed drift of database connections")
parser.add_argument("--seed", type=int, default=1)
args = parser.parse_args()

STALL = 35             # a stream silent this long is stuck (the server sends a keep-alive every 15 s)
REQUEST_TIMEOUT = 30   # seconds any request (or a stream's response head) may take
BUSY_FOR = 10          # seconds a chat counts as replying after a send, unless its stream says `done` sooner
DRAIN_WAIT = 40        # seconds the gauges get to fall to zero once the load stops
GAUGES = ("chat_streams_open", "chat_replies_in_flight")
WORDS = "lisbon tram tile harbour river bridge castle pastry market window light hill street song".split()
random.seed(args.seed)


# --- HTTP/1.1 over asyncio streams -------------------------------------------------------------

class StaleConnection(Exception):
    """A kept-alive connection the server had closed: nothing was answered, so the request is sent again."""


async def read_head(reader):
    """Status and headers (lowercase names) of a response."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as error:
        if not error.partial:
            raise StaleConnection() from None
        raise
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers


async def read_chunk(reader):
    """The next chunk of a chunked body; b"" at its end."""
    size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
    if size == 0:
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return b""
    return (await reader.readexactly(size + 2))[:-2]


async def read_body(reader, status, headers):
    if status in (204, 304) or status < 200:
        return b""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while chunk := await read_chunk(reader):
            parts.append(chunk)
        return b"".join(parts)
    if "content-length" in headers:
        return await reader.readexactly(int(headers["content-length"]))
    return await reader.read()


class Client:
    """Requests to the server over a pool of kept-alive connections (streams open their own)."""

    def __init__(self, port):
        self.port = port
        self.idle = []  # (reader, writer, last used), the most recent last

    def head(self, method, path, token=None, length=None, extra=""):
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        if token:
            lines.append(f"Authorization: Bearer {token}")
        if length is not None:
            lines += ["Content-Type: application/json", f"Content-Length: {length}"]
        return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()

    async def request(self, method, path, token=None, body=None):
        """(status, headers, body bytes)."""
        data = b"" if body is None else json.dumps(body).encode()
        message = self.head(method, path, token, len(data) if body is not None else None) + data
        while True:
            reused = bool(self.idle)
            reader, writer, _ = self.idle.pop() if reused else (*await asyncio.open_connection("127.0.0.1", self.port), 0)
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT):
                    writer.write(message)
                    status, headers = await read_head(reader)
                    payload = await read_body(reader, status, headers)
            except StaleConnection:
                writer.close()
                if reused:
                    continue
                raise ConnectionResetError("connection closed before a response") from None
            except BaseException:
                writer.close()
                raise
            if headers.get("connection", "").lower() == "close" or len(self.idle) >= 64:
                writer.close()
            else:
                self.idle.append((reader, writer, time.monotonic()))
            return status, headers, payload

    def prune(self, older_than=30):
        """Closes connections idle for a while (the server drops them after HTTP_IDLE_TIMEOUT)."""
        now = time.monotonic()
        keep = []
        for reader, writer, used in self.idle:
            if now - used > older_than:
                writer.close()
            else:
                keep.append((reader, writer, used))
        self.idle = keep


def position(event_id):
    """An event id (`7`, `7-120`, `r2.7-120`) as a comparable (revision, message, offset): a whole
    message comes after every part of it."""
    text = event_id.decode()
    revision = 0
    if text.startswith("r"):
        number, _, text = text[1:].partition(".")
        revision = int(number)
    sequence, _, offset = text.partition("-")
    return revision, int(sequence), int(offset) if offset else math.inf


# --- The server and what is sampled from it ------------------------------------------------------

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gone_is_nan(read):
    """A reading of /proc/<pid> that is NaN once the process is gone (the server may die any time)."""
    def reading(pid, *rest):
        try:
            return read(pid, *rest)
        except (OSError, IndexError, ValueError):
            return math.nan
    return reading


@gone_is_nan
def cpu_seconds(pid):
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@gone_is_nan
def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def own_cpu_seconds(who=resource.RUSAGE_SELF):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


@gone_is_nan
def rss_mb(pid, field="VmRSS"):
    """Resident memory in MB: all of it (VmRSS), or only the heap and stacks (RssAnon), which
    leave out the binary's and libraries' pages (RssFile), paged in as new code paths first run."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return math.nan


def gauges(text, *names):
    """Values of unlabelled metrics in Prometheus text."""
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in names:
            found[name] = float(value.split()[0])
    return [found.get(name, math.nan) for name in names]


def labelled(text, name):
    """[(labels dict, value)] of a metric in Prometheus text."""
    rows = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels, _, value = line[len(name) + 1:].rpartition("} ")
            pairs = (part.split("=", 1) for part in labels.split(",") if "=" in part)
            rows.append(({key.strip(): value.strip().strip('"') for key, value in pairs}, float(value)))
    return rows


def prepare_database():
    """DATABASE_URL for the server, the psql connection string (None on SQLite), and files to remove."""
    if args.database == "sqlite" or args.database.startswith("sqlite:"):
        if args.database == "sqlite":
            directory = tempfile.mkdtemp(prefix="soak-sqlite-")
            return f"sqlite://{directory}/soak.sqlite3", None, [directory]
        return args.database, None, []
    url = urlsplit(args.database)
    name = url.path.lstrip("/")
    exists = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if not exists:
        subprocess.run(["runuser", "-u", "postgres", "--", "createdb", "-O", url.username, name], check=True)
    return args.database, args.database, []


PSQL_CPU = [0.0]  # CPU seconds the psql samplers took


async def database_connections(conninfo):
    """Connections to the server's database now, not counting the one asking; None on SQLite."""
    if conninfo is None:
        return None
    before = own_cpu_seconds(resource.RUSAGE_CHILDREN)
    process = await asyncio.create_subprocess_exec(
        "psql", conninfo, "-tAc", "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    out, _ = await process.communicate()
    PSQL_CPU[0] += own_cpu_seconds(resource.RUSAGE_CHILDREN) - before
    return int(out) if process.returncode == 0 and out.strip() else math.nan


# --- The load ----------------------------------------------------------------------------------

RUN = secrets.token_hex(4)  # in the users' emails: a database can hold many runs
OK, LIMITED, FAILED = "ok", "limited", "failed"


class User:
    def __init__(self, number):
        self.email = f"soak-{RUN}-{number}@example.com"
        self.access = self.refresh = None
        self.chats = []  # ids, oldest first


class Soak:
    def __init__(self, client, server_pid):
        self.client = client
        self.pid = server_pid
        self.users = [User(number) for number in range(args.users)]
        self.outcomes = collections.Counter()  # (category, label) -> requests
        self.failures = []                     # the first few failures, in full
        self.deleted = set()                   # chats this script deleted: their 404s and 410s are expected
        self.busy = {}                         # chat -> until when it counts as replying
        self.latencies = []                    # seconds of the API requests since the last sample
        self.all_latencies = collections.defaultdict(list)
        self.streams_open = 0                  # streams this client holds now
        self.events = 0                        # stream events read
        self.resumes = 0                       # streams opened with Last-Event-ID
        self.tasks = set()
        self.stopping = False

    # Outcomes

    def record(self, category, label, detail=None):
        self.outcomes[category, label] += 1
        if category == FAILED and len(self.failures) < 20:
            self.failures.append(f"{label}: {detail}" if detail else label)

    def counts(self):
        totals = collections.Counter()
        for (category, _), count in self.outcomes.items():
            totals[category] += count
        return totals

    async def api(self, kind, method, path, user=None, body=None, chat=None):
        """One API request, recorded by outcome; the decoded JSON body when it succeeded, else None."""
        started = time.monotonic()
        try:
            status, _, payload = await self.client.request(method, path, user.access if user else None, body)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
            self.record(FAILED, f"{kind}: {type(error).__name__}", f"{method} {path}: {error!r}")
            return None
        elapsed = time.monotonic() - started
        self.latencies.append(elapsed)
        self.all_latencies[kind].append(elapsed)
        if 200 <= status < 300:
            self.record(OK, f"{kind} {status}")
            return json.loads(payload) if payload else {}
        title = problem_title(payload)
        if status == 429 or (status == 409 and title == "Reply in progress"):
            self.record(LIMITED, f"{kind} {status} {title}")
        elif status == 404 and chat in self.deleted:
            self.record(OK, f"{kind} 404 (chat deleted by the soak)")
        else:
            raced = " (on a chat the soak deleted)" if chat in self.deleted else ""
            self.record(FAILED, f"{kind} {status} {title}{raced}", f"{method} {path}: {payload[:300]!r}")
        return None

    def spawn(self, coroutine):
        task = asyncio.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.finished)
        return task

    def finished(self, task):
        """A task of the load ended: an exception in it is this script's own failure, never silent."""
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.record(FAILED, f"soak script: {type(task.exception()).__name__}", repr(task.exception()))

    # Setup: users and their chats, before the clock starts

    async def setup(self):
        gate = asyncio.Semaphore(8)

        async def prepare(user):
            async with gate:
                session = await self.api("register", "POST", "/auth/register/",
                                         body={"email": user.email, "password": "soak-password-1", "name": "Soak"})
                if session is None:
                    raise SystemExit(f"could not register {user.email}: {self.failures[-1:]}")
                user.access, user.refresh = session["access"], session["refresh"]
                for _ in range(args.chats):
                    await self.create_chat(user)

        await asyncio.gather(*(prepare(user) for user in self.users))

    async def create_chat(self, user):
        """A new chat: a third with a title, a third with a first message and no title (it gets one
        after its reply), a third empty."""
        kind = random.randrange(3)
        body = {"title": sentence(3)} if kind == 0 else {"content": sentence(8)} if kind == 1 else {}
        chat = await self.api("create", "POST", "/api/chat/", user, body)
        if chat is not None:
            user.chats.append(chat["id"])
            if kind == 1:
                self.busy[chat["id"]] = time.monotonic() + BUSY_FOR

    # The load's parts

    async def stream_slot(self, number):
        """One of STREAMS event streams, forever: a chat of its user, read for a while, then either
        resumed from the last event id or left for another chat."""
        user = self.users[number % len(self.users)]
        await asyncio.sleep(random.uniform(0, 5))  # a ramp, not 500 connections in one instant
        chat = last_id = last = None
        while not self.stopping:
            if chat is None or chat in self.deleted:
                if not user.chats:
                    await asyncio.sleep(1)
                    continue
                chat, last_id, last = random.choice(user.chats), None, None
            try:
                closed_by_us, last_id, last = await self.watch(user, chat, last_id, last, random.uniform(2, 60))
            except Exception as error:  # this script's own mistake (a malformed event?): counted, and the slot goes on
                self.record(FAILED, f"soak script (stream): {type(error).__name__}", repr(error))
                closed_by_us = False
            if not (closed_by_us and random.random() < 0.3):
                chat = last_id = last = None
            await asyncio.sleep(random.uniform(0, 1))

    async def watch(self, user, chat, last_id, last, hold):
        """Reads a chat's stream for `hold` seconds (from `last_id` when given) and disconnects.
        Returns (whether it ended by our own disconnect, the last event id, its position)."""
        extra = "Accept: text/event-stream\r\n" + (f"Last-Event-ID: {last_id.decode()}\r\n" if last_id else "")
        path = f"/api/chat/{chat}/messages/"
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.client.port)
        except OSError as error:
            self.record(FAILED, f"stream: {type(error).__name__}", repr(error))
            return False, last_id, last
        self.streams_open += 1
        self.resumes += last_id is not None
        ended_with = None  # the problem of the stream's `error` event
        behind = False     # the server's `: behind` comment: this reader fell too far behind
        until = None       # when this client disconnects, once the response has started
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                writer.write(self.client.head("GET", path, user.access, extra=extra))
                status, headers = await read_head(reader)
                if status != 200:
                    payload = await read_body(reader, status, headers)
            if status != 200:
                title = problem_title(payload)
                if status == 429:
                    self.record(LIMITED, f"stream 429 {title}")
                elif status == 404 and chat in self.deleted:
                    self.record(OK, "stream 404 (chat deleted by the soak)")
                else:
                    raced = " (on a chat the soak deleted)" if chat in self.deleted else ""
                    self.record(FAILED, f"stream {status} {title}{raced}", f"{path}: {payload[:300]!r}")
                return False, last_id, last
            loop = asyncio.get_running_loop()
            until = loop.time() + hold
            buffer = bytearray()
            async with asyncio.timeout(min(until, loop.time() + STALL)) as timer:
                while chunk := await read_chunk(reader):
                    buffer += chunk
                    while (end := buffer.find(b"\n\n")) >= 0:
                        event_id, name, data = None, None, None
                        for line in bytes(buffer[:end]).split(b"\n"):
                            if line.startswith(b": behind"):
                                behind = True
                            elif line.startswith(b"id: "):
                                event_id = line[4:]
                            elif line.startswith(b"event: "):
                                name = line[7:]
                            elif line.startswith(b"data: "):
                                data = line[6:]
                        del buffer[:end + 2]
                        if name is None:  # a comment (keep-alive) or the `retry:` preamble
                            continue
                        self.events += 1
                        if name == b"error":
                            ended_with = json.loads(data)
                        elif name != b"chat":  # a title change keeps the reader's position
                            now = position(event_id)
                            if last is not None and now <= last:
                                self.record(FAILED, "stream: event id not after the one before",
                                            f"{path}: {event_id!r} after {last_id!r} ({name.decode()})")
                            last_id, last = event_id, now
                            if name == b"done":
                                self.busy.pop(chat, None)
                    timer.reschedule(min(until, loop.time() + STALL))
            # The server ended the stream.
            if ended_with and ended_with.get("status") == 410 and chat in self.deleted:
                self.record(OK, "stream ended: chat deleted by the soak")
            elif ended_with:
                self.record(FAILED, f"stream ended: {ended_with.get('status')} {ended_with.get('title')}", f"{path}: {ended_with}")
            elif behind:
                self.record(OK, "stream ended: the reader fell behind (it resumes by id)")
            else:
                self.record(FAILED, "stream ended by the server without an error event", path)
            return False, last_id, last
        except TimeoutError:
            if until is not None and asyncio.get_running_loop().time() >= until - 0.05:
                self.record(OK, "stream closed by the client")
                return True, last_id, last
            self.record(FAILED, "stream: no response head" if until is None else f"stream: silent for {STALL} s", path)
            return False, last_id, last
        except (OSError, asyncio.IncompleteReadError, StaleConnection) as error:
            self.record(FAILED, f"stream: {type(error).__name__}", f"{path}: {error!r}")
            return False, last_id, last
        finally:
            self.streams_open -= 1
            writer.close()

    async def send(self):
        """A message on a chat with no reply in progress (as far as this client knows)."""
        user = random.choice(self.users)
        now = time.monotonic()
        idle = [chat for chat in user.chats if self.busy.get(chat, 0) < now]
        if not idle:
            self.record(LIMITED, "send skipped: every chat of the user replying")
            return
        chat = random.choice(idle)
        self.busy[chat] = now + BUSY_FOR
        await self.api("send", "POST", f"/api/chat/{chat}/send/", user, {"content": sentence(8)}, chat=chat)

    async def churn(self):
        """Deletes a user's oldest chat and makes a new one."""
        user = random.choice(self.users)
        if len(user.chats) >= args.chats:
            chat = user.chats.pop(0)
            self.deleted.add(chat)
            await self.api("delete", "DELETE", f"/api/chat/{chat}/", user, chat=chat)
        await self.create_chat(user)

    async def refresher(self, user):
        """Rotates the user's tokens now and then; the old refresh token is never used again."""
        while not self.stopping:
            await asyncio.sleep(random.uniform(0.5, 1.5) * args.refresh_every)
            tokens = await self.api("refresh", "POST", "/auth/refresh/", body={"refresh": user.refresh})
            if tokens is not None:
                user.access, user.refresh = tokens["access"], tokens["refresh"]

    async def every(self, rate, make, cap):
        """Starts make() `rate` times a second, on a fixed schedule; skips (and counts) a start when
        `cap` of them are still running, so that a slow server does not pile up client tasks."""
        running = set()
        loop = asyncio.get_running_loop()
        next_start = loop.time()
        while not self.stopping:
            next_start += 1 / rate
            await asyncio.sleep(max(0, next_start - loop.time()))
            if len(running) >= cap:
                self.record(LIMITED, f"{make.__name__} skipped: {cap} still running")
                continue
            task = self.spawn(make())
            running.add(task)
            task.add_done_callback(running.discard)

    def start(self):
        for number in range(args.streams):
            self.spawn(self.stream_slot(number))
        for user in self.users:
            self.spawn(self.refresher(user))
        self.spawn(self.every(args.replies, self.send, cap=max(50, int(args.replies * 5))))
        self.spawn(self.every(args.churn, self.churn, cap=max(20, int(args.churn * 10))))

    async def stop(self):
        self.stopping = True
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def sentence(words):
    return " ".join(random.choice(WORDS) for _ in range(words)).capitalize()


def problem_title(payload):
    try:
        return json.loads(payload).get("title", "")
    except (ValueError, AttributeError):
        return payload[:60].decode("utf-8", "replace")


# --- Sampling, verdict, plot ---------------------------------------------------------------------

COLUMNS = [("t s", 5, "{:.0f}"), ("RSS MB", 7, "{:.1f}"), ("FDs", 5, "{:.0f}"), ("streams", 7, "{:.0f}"),
           ("client", 6, "{:.0f}"), ("replies", 7, "{:.0f}"), ("DB conn", 7, "{}"), ("srv CPU", 7, "{:.0f}%"),
           ("gen CPU", 7, "{:.0f}%"), ("p50 ms", 6, "{:.0f}"), ("p99 ms", 6, "{:.0f}"), ("ok", 7, "{}"),
           ("limited", 7, "{}"), ("failed", 6, "{}"), ("anon MB", 7, "{:.1f}")]


def row(values):
    cells = []
    for (title, width, form), value in zip(COLUMNS, values):
        text = "n/a" if value is None else "nan" if isinstance(value, float) and math.isnan(value) else form.format(value)
        cells.append(text.rjust(width))
    return "  ".join(cells)


async def sample(soak, started, conninfo, previous):
    """One row: [t, RSS, FDs, server streams, client streams, replies in flight, DB connections,
    server CPU %, load generator CPU %, p50, p99, ok, limited, failed, anonymous RSS]; `previous`
    keeps the CPU readings of the last sample."""
    now = time.monotonic()
    try:
        _, _, metrics = await soak.client.request("GET", "/metrics")
        streams, replies = gauges(metrics.decode(), "chat_streams_open", "chat_replies_in_flight")
    except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
        soak.record(FAILED, f"metrics: {type(error).__name__}", repr(error))
        streams = replies = math.nan
    server_cpu, own_cpu = cpu_seconds(soak.pid), own_cpu_seconds()
    span = now - previous["at"]
    server_share = (server_cpu - previous["server"]) / span * 100 if span > 1 else None
    own_share = (own_cpu - previous["own"]) / span * 100 if span > 1 else None
    previous.update(at=now, server=server_cpu, own=own_cpu)
    latencies = sorted(soak.latencies)
    soak.latencies = []
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else math.nan
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else math.nan
    counts = soak.counts()
    return [now - started, rss_mb(soak.pid), open_fds(soak.pid), streams, soak.streams_open, replies,
            await database_connections(conninfo), server_share, own_share, p50, p99, counts[OK], counts[LIMITED], counts[FAILED],
            rss_mb(soak.pid, "RssAnon")]


def last_half_flat(samples):
    """(passed, text): RssAnon (heap and stacks) is flat over the last half of the load: the
    least-squares line through those samples rises by at most --anon-slack of its mean (or
    --anon-floor MB, whichever is larger) from the half's start to its end."""
    half = [(s[0], s[14]) for s in samples if s[0] >= samples[-1][0] / 2 and not math.isnan(s[14])]
    if len(half) < 4:
        return True, "too short for the last-half check (needs four samples in it)"
    times, values = [t for t, _ in half], [v for _, v in half]
    mean_t, mean_v = statistics.mean(times), statistics.mean(values)
    slope = sum((t - mean_t) * (v - mean_v) for t, v in half) / sum((t - mean_t) ** 2 for t in times)
    rise = slope * (times[-1] - times[0])
    allowed = max(args.anon_floor, mean_v * args.anon_slack)
    return rise <= allowed, (f"RssAnon over the last half ({times[0]:.0f}-{times[-1]:.0f} s, {len(half)} samples): "
                             f"the fitted line moves {rise:+.1f} MB ({slope * 3600:+.1f} MB an hour) around {mean_v:.1f} MB "
                             f"(allowed {allowed:+.1f})")


def verdict(samples):
    """(checks as (passed, text)), comparing the end of the run with the warm-up."""
    checks = []
    by_time = {round(s[0] / args.interval): s for s in samples}
    base_index = round(args.warmup / args.interval)
    if base_index not in by_time or len(samples) < 3:
        return [(True, f"too short for the leak checks (needs a sample at {args.warmup:.0f} s and three after it)")]
    rss_base, rss_end = by_time[base_index][1], samples[-1][1]
    allowed = rss_base * (1 + args.rss_slack)
    checks.append((rss_end <= allowed, f"RSS {rss_end:.1f} MB at the end, {rss_base:.1f} MB at {args.warmup:.0f} s: "
                   f"{(rss_end / rss_base - 1) * 100:+.1f} % (allowed {args.rss_slack * 100:+.0f} %)"))
    anon_base, anon_end = by_time[base_index][14], samples[-1][14]
    # Informational: the same growth without the code pages (RssFile) that new paths fault in.
    checks.append((True, f"(heap and stacks, RssAnon: {anon_end:.1f} MB at the end, {anon_base:.1f} MB at "
                   f"{args.warmup:.0f} s: {(anon_end / anon_base - 1) * 100:+.1f} %)"))
    checks.append(last_half_flat(samples))
    window = [by_time[i] for i in range(base_index + 1, base_index + 4) if i in by_time]
    last = samples[-3:]
    overlap = " (the windows overlap: run longer for a real drift check)" if any(s in window for s in last) else ""
    if not window:
        return checks + [(True, "too short for the drift checks")]

    def drift(column, slack, unit):
        base = statistics.mean(s[column] for s in window)
        end = statistics.mean(s[column] for s in last)
        return end <= base + slack(base), (f"{unit}: mean {end:.1f} over the last three samples, {base:.1f} over samples "
                                           f"{window[0][0]:.0f}-{window[-1][0]:.0f} s (allowed {slack(base):+.1f}){overlap}")

    checks.append(drift(2, lambda base: max(args.fd_floor, base * args.fd_slack), "FDs"))
    if samples[-1][6] is None:
        checks.append((True, "DB connections: n/a (SQLite)"))
    else:
        checks.append(drift(6, lambda base: args.db_slack, "DB connections"))
    return checks


def plot(samples, path):
    """Four panels over time: RSS (its anonymous part dashed), FDs, open streams (server gauge; the client's count dashed) and
    database connections; a dotted line marks the end of the warm-up."""
    width, height, left, right, top, gap = 760, 150, 70, 20, 40, 30
    panels = [("RSS (MB; heap and stacks, RssAnon, dashed)", [1, 14], "#c0392b"), ("open file descriptors", [2], "#2c3e50"),
              ("open streams (server; client dashed)", [3, 4], "#27ae60"), ("database connections", [6], "#8e44ad")]
    total_height = top + len(panels) * (height + gap) + 20
    end = max(samples[-1][0], 1)
    x = lambda t: left + (width - left - right) * t / end
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{total_height}" font-family="sans-serif" font-size="11">',
             f'<rect width="100%" height="100%" fill="white"/>',
             f'<text x="{left}" y="20" font-size="14">ChatServer soak: {args.streams} streams, {args.replies:g} replies/s, '
             f'{args.users} users, {end:.0f} s</text>']
    for number, (title, columns, colour) in enumerate(panels):
        y0 = top + number * (height + gap)
        values = [s[c] for s in samples for c in columns if s[c] is not None and not math.isnan(s[c])]
        parts.append(f'<text x="{left}" y="{y0 - 4}">{title}</text>')
        parts.append(f'<rect x="{left}" y="{y0}" width="{width - left - right}" height="{height}" fill="none" stroke="#bbb"/>')
        if not values:
            parts.append(f'<text x="{left + 10}" y="{y0 + height / 2}" fill="#888">n/a</text>')
            continue
        low, high = min(values), max(values)
        pad = max((high - low) * 0.05, 1)
        low, high = max(low - pad, 0 if low >= 0 else -math.inf), high + pad
        y = lambda v: y0 + height - height * (v - low) / (high - low)
        for value in (low, (low + high) / 2, high):
            parts.append(f'<line x1="{left}" y1="{y(value):.1f}" x2="{width - right}" y2="{y(value):.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0f}</text>')
        if args.warmup <= end:
            parts.append(f'<line x1="{x(args.warmup):.1f}" y1="{y0}" x2="{x(args.warmup):.1f}" y2="{y0 + height}" '
                         f'stroke="#999" stroke-dasharray="2,3"/>')
        for index, column in enumerate(columns):
            points = " ".join(f"{x(s[0]):.1f},{y(s[column]):.1f}" for s in samples
                              if s[column] is not None and not math.isnan(s[column]))
            dash = ' stroke-dasharray="5,4"' if index else ""
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"{dash}/>')
    axis = top + len(panels) * (height + gap) - gap + 14
    for tick in range(0, int(end) + 1, max(10, int(end / 10) // 10 * 10)):
        parts.append(f'<text x="{x(tick):.1f}" y="{axis}" text-anchor="middle">{tick}s</text>')
    parts.append("</svg>")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as out:
        out.write("\n".join(parts) + "\n")


def log_summary(path):
    """Lines of the server's log by level, and the most frequent messages at warning or above."""
    levels, messages = collections.Counter(), collections.Counter()
    with open(path, errors="replace") as log:
        for line in log:
            try:
                entry = json.loads(line)
            except ValueError:
                if not line.strip():
                    continue
                levels["(not JSON)"] += 1
                messages[line.strip()[:160]] += 1
                continue
            level = entry.get("level", "?")
            levels[level] += 1
            if level in ("warning", "error", "critical"):
                messages[f"{level}: {entry.get('message', '')[:160]}"] += 1
    return levels, messages.most_common(8)


# --- The run -------------------------------------------------------------------------------------

async def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.streams * 2 + 1000)), hard))
    database_url, conninfo, scratch = prepare_database()
    port = free_port()
    log_path = args.log or os.path.join(tempfile.mkdtemp(prefix="soak-log-"), "server.log")
    limit = "1000000/minute"
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8",
        "SECRET_KEY": secrets.token_hex(32), "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": database_url,
        "LOG_LEVEL": "warning", "BCRYPT_COST": "4", "OFFLINE_WORD_DELAY": str(args.word_delay),
        "ACCESS_TOKEN_LIFETIME": "2m",  # a broken rotation would show within the run
        "RATE_LIMIT_USER": limit, "RATE_LIMIT_ANONYMOUS": limit, "RATE_LIMIT_AUTH": limit,
        "RATE_LIMIT_LOGIN_FAILURES": limit, "RATE_LIMIT_LOGIN_ACCOUNT": limit, "RATE_LIMIT_REPLIES": limit,
        "MAX_STREAMS_PER_USER": str(max(1000, args.streams)),
    }  # no ANTHROPIC_API_KEY, ever: the offline provider answers; no METRICS_TOKEN: loopback reads /metrics
    log = open(log_path, "w")
    server = await asyncio.create_subprocess_exec(args.binary, "serve", "--env", "production", "--hostname", "127.0.0.1",
                                                  "--port", str(port), cwd=args.cwd, env=environment, stdout=log, stderr=log)
    client = Client(port)
    failed_checks = []
    try:
        for _ in range(1200):  # migrations run first
            if server.returncode is not None:
                raise SystemExit(f"the server exited ({server.returncode}) at start-up; see {log_path}")
            try:
                if (await client.request("GET", "/healthz"))[0] == 200:
                    break
            except (OSError, asyncio.IncompleteReadError, StaleConnection):
                pass
            await asyncio.sleep(0.1)
        else:
            raise SystemExit("the server did not answer /healthz within 120 s")
        soak = Soak(client, server.pid)
        idle_fds = open_fds(server.pid)
        await soak.setup()
        print(f"server pid {server.pid} on port {port}, {database_url}, log {log_path}")
        print(f"{args.users} users with {args.chats} chats each; load for {args.duration:.0f} s: {args.streams} streams, "
              f"{args.replies:g} replies/s, {args.churn:g} chats created and deleted/s, a token refresh per user every "
              f"~{args.refresh_every:g} s")
        print("streams: chat_streams_open; client: streams this script holds; replies: chat_replies_in_flight; CPU: % of a "
              "core since the last sample; p50, p99: API requests since the last sample; ok, limited, failed: requests so far")
        print("  ".join(title.rjust(width) for title, width, _ in COLUMNS))

        started = time.monotonic()
        server_cpu0, own_cpu0 = cpu_seconds(server.pid), own_cpu_seconds()
        soak.start()
        samples, previous = [], {"at": started, "server": server_cpu0, "own": own_cpu0}
        died = asyncio.create_task(server.wait())
        for index in range(int(args.duration // args.interval) + 1):
            wake = started + index * args.interval
            done, _ = await asyncio.wait({died}, timeout=max(0, wake - time.monotonic()))
            if done:
                soak.record(FAILED, f"server exited with status {server.returncode} during the load")
                failed_checks.append(f"the server exited ({server.returncode}) during the load; see {log_path}")
                break
            client.prune()
            samples.append(await sample(soak, started, conninfo, previous))
            print(row(samples[-1]), flush=True)
        elapsed = time.monotonic() - started
        server_cpu = cpu_seconds(server.pid)
        server_cpu = (previous["server"] if math.isnan(server_cpu) else server_cpu) - server_cpu0  # at the last sample if it died
        own_cpu = own_cpu_seconds() - own_cpu0
        await soak.stop()

        died.cancel()

        # Every stream is closed and no reply is started any more: both gauges must fall to zero.
        # drain[name] = [value when the load stopped, seconds until it read zero (None: never)]
        drain, metrics, drained_fds, drained_rss = {}, "", math.nan, math.nan
        if server.returncode is None:
            stopped = time.monotonic()
            while True:
                try:
                    metrics = (await client.request("GET", "/metrics"))[2].decode()
                except (OSError, asyncio.IncompleteReadError, TimeoutError) as error:
                    failed_checks.append(f"GET /metrics after the load: {error!r}")
                    break
                for name, value in zip(GAUGES, gauges(metrics, *GAUGES)):
                    state = drain.setdefault(name, [value, None])
                    if value == 0 and state[1] is None:
                        state[1] = time.monotonic() - stopped
                if all(state[1] is not None for state in drain.values()) or time.monotonic() - stopped > DRAIN_WAIT:
                    break
                await asyncio.sleep(0.5)
            drained_fds, drained_rss = open_fds(server.pid), rss_mb(server.pid)
    finally:
        for _, writer, _ in client.idle:
            writer.close()
        if server.returncode is None:
            server.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(server.wait(), 30)
            except TimeoutError:
                server.kill()
                await server.wait()
                failed_checks.append("the server did not stop within 30 s of SIGTERM (killed)")
        log.close()
        for path in scratch:
            shutil.rmtree(path, ignore_errors=True)

    # --- Summary
    counts = soak.counts()
    print(f"\nRequests by outcome ({sum(counts.values())} in all, {soak.events} stream events read, "
          f"{soak.resumes} streams resumed with Last-Event-ID):")
    for (category, label), count in sorted(soak.outcomes.items(), key=lambda item: ({OK: 0, LIMITED: 1, FAILED: 2}[item[0][0]], -item[1])):
        print(f"  {category:<8} {count:>8}  {label}")
    print("API latency by request (ms):  " + "; ".join(
        f"{kind} p50 {statistics.median(values) * 1000:.0f} p99 {sorted(values)[int(len(values) * 0.99)] * 1000:.0f}"
        for kind, values in sorted(soak.all_latencies.items())))
    errors = sum(value for labels, value in labelled(metrics, "http_requests_total") if labels.get("status", "").startswith("5"))
    replies = ", ".join(f"{labels.get('status', '?')} {value:.0f}" for labels, value in labelled(metrics, "chat_replies_total"))
    print(f"Server's own count: {errors:.0f} responses 5xx; replies {replies or 'n/a'}")
    print(f"CPU over the {elapsed:.0f} s of load: server {server_cpu:.1f} s ({server_cpu / elapsed * 100:.0f} % of a core), "
          f"load generator {own_cpu:.1f} s ({own_cpu / elapsed * 100:.0f} %), its psql samplers {PSQL_CPU[0]:.1f} s")
    print("After the load: " + ("n/a (the server is gone)" if not drain else "; ".join(
        f"{name} {start:.0f} when it stopped, " + (f"0 after {seconds:.1f} s" if seconds is not None else f"NOT 0 within {DRAIN_WAIT} s")
        for name, (start, seconds) in drain.items())))
    print(f"  then {drained_fds} FDs (idle before the load: {idle_fds}), RSS {drained_rss:.1f} MB; server exit status {server.returncode}")
    levels, messages = log_summary(log_path)
    print(f"Server log ({log_path}): " + (", ".join(f"{count} {level}" for level, count in levels.most_common()) or "empty"))
    for message, count in messages:
        print(f"  {count:>6}  {message}")

    checks = verdict(samples)
    checks.append((counts[FAILED] == 0, f"{counts[FAILED]} failed requests"))
    checks.append((bool(drain) and all(seconds is not None for _, seconds in drain.values()),
                   f"chat_streams_open and chat_replies_in_flight back to 0 within {DRAIN_WAIT} s of the load's end"))
    checks.append((server.returncode == 0 and not failed_checks, f"server stopped cleanly (exit status {server.returncode})"))
    checks += [(False, text) for text in failed_checks]
    for passed, text in checks:
        print(f"  {'ok  ' if passed else 'FAIL'}  {text}")
    for failure in soak.failures[:10]:
        print(f"  failure: {failure}")
    plot(samples, args.plot)
    print(f"Plot: {args.plot}")
    ok = all(passed for passed, _ in checks)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

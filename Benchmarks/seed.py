#!/usr/bin/env python3
"""Fills a ChatServer database (migrated already: `chat-server migrate`) with a realistic load:
USERS users with CHATS chats each and MESSAGES messages a chat (questions and complete replies,
a few hundred characters of text drawn from a 3,000-word vocabulary), their search index and their
usage, straight through SQL. Prints nothing; the benchmark user is made through the API.

    python3 Benchmarks/seed.py sqlite:///path/db.sqlite3 [--users 1000 --chats 10 --messages 10]
    python3 Benchmarks/seed.py postgres://user:pw@host:5432/db?sslmode=disable [--schema name]

Every user's chats are theirs only; the words `lisbon`, `funicular` and `pastel` are rare (about one
message in 500) so that a search has something specific to find.
"""
import argparse
import random
import sqlite3
import time
import uuid
from urllib.parse import urlsplit

parser = argparse.ArgumentParser()
parser.add_argument("url")
parser.add_argument("--users", type=int, default=1000)
parser.add_argument("--chats", type=int, default=10)
parser.add_argument("--messages", type=int, default=10)
parser.add_argument("--schema")
parser.add_argument("--owner", help="also give this existing user id the same number of chats")
parser.add_argument("--legacy", action="store_true", help="a database from before conversation tools (no versions, search, usage)")
args = parser.parse_args()

random.seed(7)
SYLLABLES = ["ka", "lo", "mi", "ra", "te", "su", "no", "vi", "pe", "da", "ri", "go", "ba", "ne", "to", "li", "sa", "mo"]
VOCABULARY = sorted({"".join(random.choice(SYLLABLES) for _ in range(random.randint(1, 4))) for _ in range(6000)})[:3000]
RARE = ["lisbon", "funicular", "pastel"]
NOW = time.time()


def text(words):
    picked = [random.choice(VOCABULARY) for _ in range(words)]
    if random.random() < 0.002:
        picked[random.randrange(words)] = random.choice(RARE)
    return " ".join(picked).capitalize() + "."


def rows(owner_ids):
    """(users, chats, messages, usage) rows; ids as the database keeps them."""
    users, chats, messages, usage = [], [], [], {}
    for number, owner in enumerate(owner_ids):
        if owner is None:
            owner = str(uuid.uuid4())
            users.append((owner, f"seed{number}@example.com", f"Seed {number}", NOW - 86_400 * 30))
        for c in range(args.chats):
            chat = str(uuid.uuid4())
            started = NOW - random.uniform(0, 86_400 * 30)
            chats.append((chat, owner, text(4)[:-1], "claude-sonnet-5-5", args.messages + 1, started + args.messages * 30, started))
            parent = None
            for m in range(args.messages):
                message = str(uuid.uuid4())
                role = "user" if m % 2 == 0 else "assistant"
                created = started + m * 30
                inputs, outputs = (0, 0) if role == "user" else (random.randint(50, 4000), random.randint(20, 800))
                messages.append((message, chat, m + 1, role, text(random.randint(12, 60)), "complete", "claude-sonnet-5-5",
                                 inputs, outputs, created, parent))
                parent = message
                if role == "assistant":
                    day = time.strftime("%Y-%m-%d", time.gmtime(created))
                    key = (owner, day, "claude-sonnet-5-5")
                    total = usage.get(key, [0, 0, 0])
                    usage[key] = [total[0] + inputs, total[1] + outputs, total[2] + 1]
    return users, chats, messages, usage


owners = [None] * args.users + ([args.owner] if args.owner else [])
users, chats, messages, usage = rows(owners)
url = urlsplit(args.url)

if args.legacy:
    # Before conversation tools: no version columns, no search index, no usage ledger.
    messages = [m[:10] for m in messages]
    usage = {}

if url.scheme == "sqlite":
    # Fluent keeps SQLite ids as uppercase text and times as seconds since 1970.
    db = sqlite3.connect(url.path if url.netloc == "" else url.netloc + url.path)
    up = lambda value: value.upper() if value else value
    db.executemany("INSERT INTO users (id, email, name, password_hash, role, is_staff, is_superuser, is_active, created_at, updated_at) "
                   "VALUES (?, ?, ?, NULL, 'basic', 0, 0, 1, ?, ?)", [(up(u[0]), u[1], u[2], u[3], u[3]) for u in users])
    extra_chat = "" if args.legacy else ", revision, needs_title"
    extra_chat_values = "" if args.legacy else ", 0, 0"
    db.executemany(f"INSERT INTO chats (id, user_id, title, model, system, next_sequence, last_message_at, activity_at, created_at, "
                   f"updated_at{extra_chat}) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?{extra_chat_values})",
                   [(up(c[0]), up(c[1]), c[2], c[3], c[4], c[5], c[5], c[6], c[5]) for c in chats])
    if args.legacy:
        db.executemany("INSERT INTO messages (id, chat_id, sequence, role, content, status, model, input_tokens, output_tokens, "
                       "cache_read_input_tokens, cache_creation_input_tokens, omitted_messages, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?)",
                       [(up(m[0]), up(m[1]), m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[9]) for m in messages])
        db.commit()
        db.execute("ANALYZE")
        db.commit()
        raise SystemExit(0)
    db.executemany("INSERT INTO messages (id, chat_id, sequence, role, content, status, model, input_tokens, output_tokens, "
                   "cache_read_input_tokens, cache_creation_input_tokens, omitted_messages, created_at, updated_at, parent_id, "
                   "is_current, version, versions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, ?, ?, ?, 1, 1, 1)",
                   [(up(m[0]), up(m[1]), m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[9], up(m[10])) for m in messages])
    db.execute("INSERT INTO search_index (text, chat_id, user_id, message_id) SELECT m.content, m.chat_id, c.user_id, m.id "
               "FROM messages m JOIN chats c ON c.id = m.chat_id WHERE m.content <> '' "
               "AND m.id NOT IN (SELECT message_id FROM search_index WHERE message_id IS NOT NULL)")
    db.execute("INSERT INTO search_index (text, chat_id, user_id, message_id) SELECT title, id, user_id, NULL FROM chats "
               "WHERE id NOT IN (SELECT chat_id FROM search_index WHERE message_id IS NULL)")
    db.executemany("INSERT INTO usage_daily (user_id, day, model, input_tokens, output_tokens, replies) VALUES (?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (user_id, day, model) DO UPDATE SET input_tokens = input_tokens + excluded.input_tokens, "
                   "output_tokens = output_tokens + excluded.output_tokens, replies = replies + excluded.replies",
                   [(up(k[0]), k[1], k[2], v[0], v[1], v[2]) for k, v in usage.items()])
    db.commit()
    db.execute("ANALYZE")
    db.commit()
else:
    import psycopg
    conninfo = args.url.split("?")[0]
    with psycopg.connect(conninfo) as db, db.cursor() as cursor:
        if args.schema:
            cursor.execute(f'SET search_path TO "{args.schema}"')
        stamp = lambda seconds: time.strftime("%Y-%m-%d %H:%M:%S+00", time.gmtime(seconds))
        with cursor.copy("COPY users (id, email, name, role, is_staff, is_superuser, is_active, created_at, updated_at) FROM STDIN") as copy:
            for u in users:
                copy.write_row((u[0], u[1], u[2], "basic", False, False, True, stamp(u[3]), stamp(u[3])))
        new = not args.legacy
        with cursor.copy("COPY chats (id, user_id, title, model, next_sequence, last_message_at, activity_at, created_at, updated_at"
                         + (", revision, needs_title" if new else "") + ") FROM STDIN") as copy:
            for c in chats:
                copy.write_row((c[0], c[1], c[2], c[3], c[4], stamp(c[5]), stamp(c[5]), stamp(c[6]), stamp(c[5])) + ((0, False) if new else ()))
        with cursor.copy("COPY messages (id, chat_id, sequence, role, content, status, model, input_tokens, output_tokens, "
                         "cache_read_input_tokens, cache_creation_input_tokens, omitted_messages, created_at, updated_at"
                         + (", parent_id, is_current, version, versions" if new else "") + ") FROM STDIN") as copy:
            for m in messages:
                copy.write_row((m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], 0, 0, 0, stamp(m[9]), stamp(m[9]))
                               + ((m[10], True, 1, 1) if new else ()))
        for (owner, day, model), (inputs, outputs, replies) in usage.items():
            cursor.execute("INSERT INTO usage_daily (user_id, day, model, input_tokens, output_tokens, replies) VALUES (%s, %s, %s, %s, %s, %s) "
                           "ON CONFLICT (user_id, day, model) DO UPDATE SET input_tokens = usage_daily.input_tokens + excluded.input_tokens, "
                           "output_tokens = usage_daily.output_tokens + excluded.output_tokens, replies = usage_daily.replies + excluded.replies",
                           (owner, day, model, inputs, outputs, replies))
        db.commit()
        cursor.execute("ANALYZE")

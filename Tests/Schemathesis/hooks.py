"""Schemathesis 4.x hooks: "a request that was refused (4xx) changed nothing".

Load with:  SCHEMATHESIS_HOOKS=/tmp/st/hooks.py schemathesis run ...
Needs:      ST_BASE_URL (e.g. http://127.0.0.1:8765) and ST_TOKEN (the fuzzing identity's access token:
            the first WFC user, or the one passed with -H "Authorization: Bearer ...").
Optional:   ST_HOOKS_LOG=<file>: one line per refused write compared ("unchanged" or "CHANGED ...").
Run with --workers 1: the snapshots assume no other request of the run is in flight.

How it works
- before_call, for every write (POST/PUT/PATCH/DELETE): snapshot what the fuzz user can see, once
  the server is quiet (two equal reads in a row, so replies/titles started by earlier requests
  have settled):
    GET /auth/me/          (status + body: a refused logout/refresh must not sign us out)
    GET /api/usage/        (replies/tokens: a refused send must not start a reply)
    GET /api/chat/         (every page, limit=100: no chat created, deleted, renamed, re-modelled)
    GET /api/chat/{id}/    (+ GET .../messages/{mid}/versions/ for a message_id in the path) for the
                           chat the request names: no message added, edited, selected, stopped
- after_call: when the answer is 4xx (429 aside), snapshot again and keep the difference.
  For a refused POST /auth/register/ (not 409), also try POST /auth/login/ with the same email and
  password: 200 would mean the refused registration created the account anyway.
- The check `refused_request_changed_nothing` (enabled by `--checks all`, or by name) fails the
  case with the difference. It is computed in after_call, before other checks re-send anything.
"""
from __future__ import annotations

import json
import os
import threading
import time

import requests
import schemathesis

BASE = os.environ.get("ST_BASE_URL", "http://127.0.0.1:8765").rstrip("/")
TOKEN = os.environ.get("ST_TOKEN", "")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_session = requests.Session()
_lock = threading.Lock()
_before: dict[str, dict] = {}
_result: dict[str, str] = {}
_registered: set[str] = set()  # emails (lowercased) that a 201 register created during the run
STATS = {"snapshots": 0, "compared": 0, "violations": 0}
LOG = os.environ.get("ST_HOOKS_LOG")  # optional: one line per refused write compared


def _log(line: str) -> None:
    if LOG:
        with open(LOG, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def _get(path: str, params: dict | None = None):
    r = _session.get(BASE + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    try:
        body = r.json()
    except ValueError:
        body = r.text
    return r.status_code, body


def _chat_id(case) -> str | None:
    value = (case.path_parameters or {}).get("chat_id")
    return value if isinstance(value, str) else None


def _read(case) -> dict:
    snap: dict = {"me": _get("/auth/me/"), "usage": _get("/api/usage/")}
    chats, cursor, pages = [], None, 0
    while pages < 50:
        status, body = _get("/api/chat/", {"limit": 100, **({"cursor": cursor} if cursor else {})})
        if status != 200 or not isinstance(body, dict):
            chats.append((status, body))
            break
        chats.extend(body.get("results", []))
        cursor = body.get("next")
        pages += 1
        if not cursor:
            break
    snap["chats"] = chats
    chat_id = _chat_id(case)
    if chat_id:
        # requests quotes the id; a malformed one simply reads 400/404 both times
        snap["chat"] = _get(f"/api/chat/{requests.utils.quote(chat_id, safe='')}/")
        mid = (case.path_parameters or {}).get("message_id")
        if isinstance(mid, str):
            snap["versions"] = _get(
                f"/api/chat/{requests.utils.quote(chat_id, safe='')}/messages/{requests.utils.quote(mid, safe='')}/versions/"
            )
    return snap


def _streaming(snap: dict) -> bool:
    status, chat = snap.get("chat", (None, None))
    return status == 200 and isinstance(chat, dict) and any(
        m.get("status") == "streaming" for m in chat.get("messages", []) if isinstance(m, dict)
    )


def _quiet_snapshot(case) -> dict:
    """Read until two reads agree and no reply of the named chat is streaming (at most ~3 s)."""
    previous = _read(case)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        time.sleep(0.05)
        current = _read(case)
        if current == previous and not _streaming(current):
            break
        previous = current
    STATS["snapshots"] += 1
    return previous


def _diff(a, b, path="$", out=None, limit=8):
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a:
                out.append(f"{path}.{k} added: {json.dumps(b[k])[:200]}")
            elif k not in b:
                out.append(f"{path}.{k} removed: {json.dumps(a[k])[:200]}")
            else:
                _diff(a[k], b[k], f"{path}.{k}", out, limit)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{path}: {len(a)} items -> {len(b)} items; after: {json.dumps(b)[:300]}")
        else:
            for i, (x, y) in enumerate(zip(a, b)):
                _diff(x, y, f"{path}[{i}]", out, limit)
    elif a != b:
        out.append(f"{path}: {json.dumps(a)[:200]} -> {json.dumps(b)[:200]}")
    return out


def _is_refused(status: int) -> bool:
    return 400 <= status < 500 and status != 429


@schemathesis.hook
def before_call(context, case, kwargs):
    if case.method.upper() not in WRITE_METHODS:
        return
    try:
        snap = _quiet_snapshot(case)
    except requests.RequestException:
        return
    with _lock:
        _before[case.id] = snap


@schemathesis.hook
def after_call(context, case, response):
    method, path, status = case.method.upper(), case.operation.path, response.status_code
    body = case.body if isinstance(case.body, dict) else {}
    if method == "POST" and path == "/auth/register/" and status == 201 and isinstance(body.get("email"), str):
        _registered.add(body["email"].lower())
    with _lock:
        before = _before.pop(case.id, None)
    if before is None or not _is_refused(status):
        return
    problems: list[str] = []
    try:
        after = _quiet_snapshot(case)
        problems = _diff(before, after)
        if (
            path == "/auth/register/" and status != 409
            and isinstance(body.get("email"), str) and isinstance(body.get("password"), str)
            and body["email"].lower() not in _registered
        ):
            r = _session.post(BASE + "/auth/login/", json={"email": body["email"], "password": body["password"]}, timeout=10)
            if r.status_code == 200:
                problems.append(f"refused register ({status}) created the account: login with the same email/password is 200")
    except requests.RequestException as exc:
        problems = [f"could not snapshot after the request: {exc!r}"]
    STATS["compared"] += 1
    _log(f"{method} {case.formatted_path if hasattr(case, 'formatted_path') else path} {status} " + ("CHANGED " + " | ".join(problems) if problems else "unchanged"))
    if problems:
        STATS["violations"] += 1
        with _lock:
            _result[case.id] = f"{method} {path} answered {status} but changed the caller's state:\n  " + "\n  ".join(problems)


@schemathesis.check
def refused_request_changed_nothing(ctx, response, case):
    """A write refused with 4xx (429 aside) leaves the caller's visible state as it was."""
    with _lock:
        message = _result.pop(case.id, None)
    if message:
        raise AssertionError(message)
    return None

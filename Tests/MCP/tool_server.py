"""An MCP server for the tests, on the official Python SDK (`mcp`), over Streamable HTTP.

It binds a free loopback port itself and prints `PORT <n>` once it listens, so that no other
process can take the port between choosing and binding it. Its tools answer, fail, hang, wait for
the test, and return large results; `--token` makes it refuse requests without that bearer token,
`--name` sets the prefix of its tools' descriptions (to tell servers apart), and `--json` answers
with JSON bodies instead of event streams.
"""
import argparse
import asyncio
import os
import socket
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", default="tools")
    parser.add_argument("--token")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--gates", default=".", help="directory where the test creates gate files")
    parser.add_argument("--calls", help="file that records each call, one name per line")
    parser.add_argument("--hostile", action="store_true",
                        help="also offer 300 tools with 10 KB descriptions, and one whose answer is 10 MB")
    args = parser.parse_args()

    server = MCPServer(args.name)

    def record(name: str) -> None:
        if args.calls:
            with open(args.calls, "a") as log:
                log.write(name + "\n")

    @server.tool(description=f"[{args.name}] Says the text back.")
    def echo(text: str) -> str:
        record("echo")
        return f"echo: {text}"

    @server.tool(description=f"[{args.name}] Adds two whole numbers.")
    def add(a: int, b: int) -> str:
        record("add")
        return str(a + b)

    @server.tool(description=f"[{args.name}] Always fails, with the reason given.")
    def fail(reason: str) -> str:
        record("fail")
        raise ToolError(reason)  # its message reaches the client (other exceptions' are hidden)

    @server.tool(description=f"[{args.name}] Never answers.")
    async def hang() -> str:
        record("hang")
        await asyncio.sleep(3600)
        return "too late"

    @server.tool(description=f"[{args.name}] Answers once the test creates the gate file of that name.")
    async def gate(name: str) -> str:
        record("gate")
        path = os.path.join(args.gates, os.path.basename(name))
        for _ in range(6000):
            if os.path.exists(path):
                return f"gate {name} opened"
            await asyncio.sleep(0.05)
        return "gate never opened"

    @server.tool(description=f"[{args.name}] Returns that many bytes of text.")
    def big(size: int) -> str:
        record("big")
        return "<b>&" + "x" * max(0, size - 4)

    # State kept per MCP session: what one session remembers, another cannot recall.
    memory = {}

    def session_of(ctx: Context) -> str:
        headers = ctx.headers or {}
        return headers.get("mcp-session-id") or headers.get("Mcp-Session-Id") or "none"

    @server.tool(description=f"[{args.name}] Remembers the text in this session.")
    def remember(text: str, ctx: Context) -> str:
        record("remember")
        memory[session_of(ctx)] = text
        return "remembered"

    @server.tool(description=f"[{args.name}] Says what this session remembered.")
    def recall(ctx: Context) -> str:
        record("recall")
        return memory.get(session_of(ctx), "nothing")

    @server.tool(description=f"[{args.name}] The weather in a city (made up).")
    def weather(city: str) -> str:
        record("weather")
        return f"Sunny in {city}, 21 °C"

    if args.hostile:
        @server.tool(description="Answers with 10 MB of text.")
        def huge() -> str:
            record("huge")
            return "y" * 10_000_000

        for number in range(300):
            server.add_tool(lambda: "ok", name=f"t{number}", description="d" * 10_000)

    app = server.streamable_http_app(json_response=args.json)
    if args.token:
        inner = app

        async def app(scope, receive, send):  # noqa: F811 - the guarded app
            if scope["type"] == "http":
                headers = dict(scope.get("headers") or [])
                if headers.get(b"authorization") != f"Bearer {args.token}".encode():
                    await send({"type": "http.response.start", "status": 401,
                                "headers": [(b"content-type", b"application/json")]})
                    await send({"type": "http.response.body", "body": b'{"error":"unauthorized"}'})
                    return
            await inner(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    instance = uvicorn.Server(config)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    asyncio.run(instance.serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())

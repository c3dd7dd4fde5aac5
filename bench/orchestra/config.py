"""Paths, CPUs, server options and the servers measured."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / "build"
WSLOAD = BUILD / "wsload"
LOGS = BUILD / "logs"
RESULTS = BENCH / "results"
RESULTS_PAGE = ROOT / "docs" / "benchmark.md"  # its section between the marks is the last full run
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"

HOST = "127.0.0.1"
SERVER_CPU = 0  # `taskset -c 0` for the server ...
CLIENT_CPU = 1  # ... and `-c 1` for the load generator (and this orchestrator, mostly asleep)
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"  # the scale-out scenario pins nothing (see docs/benchmark-method.md)
ALL_CORES_PCT = 100 * (os.cpu_count() or 1)  # what "% of a core" adds up to with every CPU busy
BACKLOG = 8192  # uvicorn --backlog / serve(backlog=); the kernel caps it at net.core.somaxconn
NOFILE = 16384  # RLIMIT_NOFILE wanted for 5,000 connections on each side, plus slack

# asgi_chat's security limits would refuse the load itself (20 messages/s per connection, 100
# connections per address): both are turned off for the benchmark, everything else is default.
SERVER_ENV = {"ASGI_CHAT_RATE_PER_SECOND": "0", "ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS": "0"}

# The same uvicorn options for asgi_chat and the tutorial: default --ws auto (websockets-sansio in
# uvicorn 0.54), --loop auto (uvloop), --http auto (httptools). Only the log level is raised so
# that neither server spends time writing per-connection log lines to a file.
UVICORN_OPTIONS = ["--host", HOST, "--backlog", str(BACKLOG), "--log-level", "warning"]

# The scale-out scenario: asgi_chat under `uvicorn --workers SCALEOUT_WORKERS`, one chat through
# a redis-server of its own (fresh for every run, on a free port, no persistence).
SCALEOUT_WORKERS = 2
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CHANNEL = "asgi_chat:db0"  # what asgi_chat's Redis broker subscribes to for database 0


@dataclass(frozen=True)
class Server:
    name: str
    title: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    client_args: tuple[str, ...] = ()  # extra wsload arguments (the rooms scenario's --proto v1)
    cwd: Path | None = None  # where it runs (and imports asgi_chat from): ROOT unless --before's checkout
    before_twin: bool = True  # with --before, in a scenario of BEFORE_SCENARIOS: that checkout's twin runs too


def _uvicorn(app: str, *extra: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", *extra, app, *UVICORN_OPTIONS, "--port", str(port)]

    return argv


def _websockets(port: int) -> list[str]:
    return [sys.executable, str(BENCH / "websockets_app.py"), "--host", HOST, "--port", str(port)]


SERVERS = (
    Server("asgi_chat", "asgi_chat", _uvicorn("asgi_chat:app"), SERVER_ENV),
    Server("tutorial", "FastAPI tutorial", _uvicorn("tutorial_app:app", "--app-dir", str(BENCH)), {}),
    Server("websockets", "websockets broadcast()", _websockets, {}),
    Server("raw_loop", "bare ASGI loop", _uvicorn("raw_loop_app:app", "--app-dir", str(BENCH)), {}),
)
# The bare ASGI loop has the tutorial's flaw and exists to show the floor of any ASGI app on
# uvicorn: it runs where no client stops reading.
FLOOR_SCENARIOS = ("fanout", "idle")

# The scale-out scenario's two configurations of asgi_chat (A and B), both with SERVER_ENV; A also
# gets ASGI_CHAT_STATE_URL for the redis-server started for its run.
SCALEOUT = (
    Server(
        "redis-2w",
        f"A: {SCALEOUT_WORKERS} workers + Redis",
        _uvicorn("asgi_chat:app", "--workers", str(SCALEOUT_WORKERS)),
        SERVER_ENV,
    ),
    Server("memory-1p", "B: 1 process, memory broker", _uvicorn("asgi_chat:app"), SERVER_ENV),
)


# The rooms scenario: one asgi_chat (the same server, options and limits as above) measured through
# its tutorial chat on /ws/{id} and through an asgi-chat.v1 room on /chat/ws.
ROOMS = (
    Server("asgi_chat", "asgi_chat /ws/{id} (tutorial chat)", _uvicorn("asgi_chat:app"), SERVER_ENV),
    Server("asgi_chat-room", "asgi_chat /chat/ws room", _uvicorn("asgi_chat:app"), SERVER_ENV, ("--proto", "v1")),
)


# The roomscale scenario: the scale-out's A and B serving one asgi-chat.v1 room (A's rooms on Redis).
SCALEOUT_ROOMS = tuple(
    dataclasses.replace(s, name=f"{s.name}-room", title=title, client_args=("--proto", "v1"))
    for s, title in zip(
        SCALEOUT, (f"A: {SCALEOUT_WORKERS} workers + Redis store", "B: 1 process, memory store"), strict=True
    )
)


def _append(mode: str) -> Callable[[int], list[str]]:
    """bench/redis_append.py against the redis-server on `port` (its argv, given the port)."""

    def argv(port: int) -> list[str]:
        url = f"redis://{HOST}:{port}/0"
        return [sys.executable, str(BENCH / "redis_append.py"), "--url", url, "--mode", mode, "--seconds", "3"]

    return argv


REDIS_APPEND = (
    Server("redis-append", "RedisStore.append (Lua: offset, XADD, PUBLISH)", _append("append"), {}),
    Server("redis-publish", "plain PUBLISH of the same frame", _append("publish"), {}),
)


# The fairness scenario (issue 18): asgi_chat with its defaults, security limits on (20 frames/s per
# connection, burst 40, 100 connections per address): the attackers stay within them.
FAIRNESS = (Server("asgi_chat", "asgi_chat, default limits", _uvicorn("asgi_chat:app"), {}),)

# The join storm (issue 18): the rooms scenario's two ways into one asgi_chat, limits off.
JOINSTORM = ROOMS

# `--before DIR`: these scenarios also run asgi_chat from another checkout, side by side.
BEFORE_SCENARIOS = ("rooms", "joinstorm", "fairness", "identity")


def before_name(name: str) -> str:
    """The name of a server's --before twin: asgi_chat -> asgi_chat_before, asgi_chat-room -> asgi_chat_before-room."""
    return name.replace("asgi_chat", "asgi_chat_before", 1)


def before_variant(server: Server, checkout: Path) -> Server:
    """The same server on another checkout's asgi_chat, named asgi_chat_before...

    It runs in that checkout, with it first on PYTHONPATH: `python -m uvicorn` puts its working
    directory first on sys.path, so from ROOT it would import this checkout's package instead.
    """
    return dataclasses.replace(
        server,
        name=before_name(server.name),
        title=f"before: {server.title}",
        env={**server.env, "PYTHONPATH": str(checkout)},
        cwd=checkout,
    )

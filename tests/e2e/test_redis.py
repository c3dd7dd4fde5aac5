"""One chat across two real uvicorn processes through a real redis-server, with real clients.

The ``websockets`` client talks to ``uvicorn asgi_chat:app`` twice over (two ports, one
``ASGI_CHAT_STATE_URL``), while the test kills and restarts Redis under them.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import ROOT, TIMEOUT, Server, free_port, recv, uvicorn_command
from tests.redis_support import RedisServer

COUNT = 20  # messages each client sends: within the default burst of 40, so no rate limit applies


@pytest.fixture
def servers(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two app processes sharing one Redis: "a" and "b"."""
    env = {"ASGI_CHAT_STATE_URL": redis_server.url}
    port_a, port_b = free_port(), free_port()
    with (
        Server(uvicorn_command(port_a), port_a, tmp_path / "a.log", env) as a,
        Server(uvicorn_command(port_b), port_b, tmp_path / "b.log", env) as b,
    ):
        yield a, b


@asynccontextmanager
async def clients(*places: tuple[Server, int]) -> AsyncIterator[list[ClientConnection]]:
    """Chat clients, each ``(server, client_id)``, all connected (and so joined) on entry."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(connect(f"{s.url}/ws/{n}")) for s, n in places]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return str(response.read().decode())


def health(server: Server) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.http_url}/healthz", timeout=TIMEOUT) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:  # 503 arrives as an exception, body and all
        return error.code, json.load(error)


async def health_becomes(server: Server, status: int) -> dict[str, Any]:
    """Poll /healthz (bounded) until it answers ``status``; return the body."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            code, body = await asyncio.to_thread(health, server)
            if code == status:
                return body
            await asyncio.sleep(0.02)  # another process's state: there is no event to wait on


async def read_until(ws: ClientConnection, last: set[str]) -> list[str]:
    """Every text up to and including all of ``last``, in arrival order."""
    texts, missing = [], set(last)
    while missing:
        text = str(await recv(ws))
        missing.discard(text)
        texts.append(text)
    return texts


def says(client_id: int, text: str) -> str:
    return f"Client #{client_id} says: {text}"


# --- one chat, two processes -------------------------------------------------------------------


@pytest.mark.redis
async def test_two_processes_share_one_chat(servers: tuple[Server, Server]) -> None:
    a, b = servers
    ids = [1, 2, 3, 4]
    async with clients((a, 1), (a, 2), (b, 3), (b, 4)) as connections:
        by_id = dict(zip(ids, connections, strict=True))
        for n in range(COUNT):  # interleaved senders on both processes
            for ws in connections:
                await ws.send(f"m{n}")

        everyone = [says(i, f"m{n}") for i in ids for n in range(COUNT)]
        for client_id, ws in by_id.items():
            own = [f"You wrote: m{n}" for n in range(COUNT)]
            texts = [str(await recv(ws)) for _ in range(len(own) + len(everyone))]
            assert Counter(texts) == Counter(own + everyone), client_id
            for sender in ids:  # each sender's lines in the order sent
                prefix = says(sender, "")
                assert [t for t in texts if t.startswith(prefix)] == [says(sender, f"m{n}") for n in range(COUNT)]
            assert [t for t in texts if t.startswith("You wrote")] == own

        # Sent after the senders heard everything: a duplicate, or a "You wrote" gone astray,
        # would arrive before these on every client (see read_until's use below).
        await by_id[1].send("end a")
        await by_id[3].send("end b")
        ends = {says(1, "end a"), says(3, "end b")}
        for client_id, ws in by_id.items():
            extra = {1: ["You wrote: end a"], 3: ["You wrote: end b"]}.get(client_id, [])
            assert Counter(await read_until(ws, ends)) == Counter([*ends, *extra]), client_id

        await by_id[2].close()  # leaving process a: announced on b as on a
        for client_id in (1, 3, 4):
            assert await recv(by_id[client_id]) == "Client #2 left the chat"


# --- Redis goes away and comes back ------------------------------------------------------------


@pytest.mark.redis
async def test_redis_outage_and_recovery(redis_server: RedisServer, servers: tuple[Server, Server]) -> None:
    a, b = servers
    async with clients((a, 1), (a, 2), (b, 3)) as (one, two, three):
        await one.send("before")  # mid-chat: a's connection to Redis is in use
        assert await recv(three) == says(1, "before")
        assert [await recv(two), await recv(one), await recv(one)] == [
            says(1, "before"),
            "You wrote: before",
            says(1, "before"),
        ]
        redis_server.kill()
        for server in servers:
            assert (await health_becomes(server, 503))["broker"] == "down"
        for n in range(3):  # a's clients still hear each other
            await one.send(f"during {n}")
        assert [await recv(two) for _ in range(3)] == [says(1, f"during {n}") for n in range(3)]

        restarted = time.monotonic()
        redis_server.start()
        for server in servers:
            assert (await health_becomes(server, 200))["broker"] == "up"
        await one.send("after")
        # Next on b is "after": nothing sent during the outage crosses late (at-most-once).
        assert await recv(three) == says(1, "after")
        assert time.monotonic() - restarted < 5
        assert await recv(two) == says(1, "after")  # and no echo of a's own messages from Redis

    assert "asgi_chat_broker_dropped_total 3.0\n" in await asyncio.to_thread(fetch, f"{a.http_url}/metrics")
    for server in servers:  # the outage and the recovery logged once each, not once per message
        output = server.output()
        assert output.count("Redis down at") == 1, output  # nor once for the chat and once for the rooms
        assert output.count("Redis up again at") == 1, output


# --- startup without Redis ---------------------------------------------------------------------


def test_unreachable_redis_stops_startup() -> None:
    port, redis_port = free_port(), free_port()  # nothing listens on redis_port
    # By the setting's old name, which is still read (and said to be deprecated, once).
    env = {**os.environ, "ASGI_CHAT_BROKER_URL": f"redis://:s3cret@127.0.0.1:{redis_port}/0"}
    result = subprocess.run(
        uvicorn_command(port), env=env, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT * 3, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 3, output  # uvicorn's exit code for a failed startup
    assert f"asgi_chat cannot start: cannot use Redis at redis://:***@127.0.0.1:{redis_port}/0" in output
    assert f"is redis-server running and reachable at 127.0.0.1:{redis_port}?" in output
    assert "s3cret" not in output
    assert output.count("ASGI_CHAT_BROKER_URL is deprecated: it is read as ASGI_CHAT_STATE_URL") == 1, output

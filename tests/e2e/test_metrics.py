"""``python -m asgi_chat --workers 2``: one ``/metrics`` for both workers, whichever answers.

Clients are connected until both workers have some (each ``/healthz`` says which worker answered
and what it holds); then every scrape must show both workers' figures added up, and no counter
may ever go backwards from one scrape to the next, even after a worker is killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import ROOT, TIMEOUT, Server, free_port, recv

MESSAGES = 3  # per client
MAX_CLIENTS = 40  # a bound on the search for both workers; a handful is the usual need
COUNTERS = ("asgi_chat_messages_received_total", "asgi_chat_messages_delivered_total")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    temporary = tmp_path / "tmp"  # where the command makes its metrics directory, to see it go
    temporary.mkdir()
    command = [sys.executable, "-m", "asgi_chat", "--port", str(port), "--workers", "2"]
    with Server(command, port, tmp_path / "server.log", {"TMPDIR": str(temporary)}) as running:
        wait_for_workers(running, 2)
        yield running
    assert list(temporary.iterdir()) == [], "the metrics directory outlived the server"
    assert "Traceback" not in running.output(), running.output()


def wait_for_workers(server: Server, workers: int, within: float = 15.0) -> None:
    """Wait (bounded) until every worker has started: the supervisor listens before it spawns
    them, so an open port does not mean both can answer yet (on a busy machine, seconds apart)."""
    deadline = time.monotonic() + within
    while server.output().count("Application startup complete.") < workers:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.05)  # another process's start: there is no event to wait on


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return str(response.read().decode())


class Scrapes:
    """Every ``/metrics`` read in the test, checked as it comes: no counter ever decreases."""

    def __init__(self, server: Server) -> None:
        self.url = f"{server.http_url}/metrics"
        self.last: dict[str, float] = {}

    async def read(self) -> dict[str, float]:
        text = await asyncio.to_thread(get, self.url)
        samples = {
            sample.name + "".join(f'{{{k}="{v}"}}' for k, v in sorted(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        for name, previous in self.last.items():
            if name.endswith(("_total", "_count", "_sum")) or "_bucket" in name:
                assert samples.get(name, 0.0) >= previous, (name, previous, samples.get(name))
        self.last = samples
        return samples

    async def until(self, **expected: float) -> dict[str, float]:
        """Scrape (bounded) until the samples named in ``expected`` have those values."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                samples = await self.read()
                if all(samples.get(name) == value for name, value in expected.items()):
                    return samples
                await asyncio.sleep(0.05)  # another worker's periodic sync: there is no event to wait on


async def health(server: Server) -> dict[str, object]:
    return dict(json.loads(await asyncio.to_thread(get, f"{server.http_url}/healthz")))


async def echo_client(stack: AsyncExitStack, server: Server) -> ClientConnection:
    ws = await stack.enter_async_context(connect(f"{server.url}/ws"))
    for n in range(MESSAGES):
        await ws.send(f"m{n}")
        assert await recv(ws) == f"Message text was: m{n}"
    return ws


async def per_worker(server: Server, total: int) -> dict[int, int]:
    """Each worker's open connections (pid -> count), once both have answered and they add up to
    ``total``. The kernel hands each connection, these requests included, to whichever worker
    accepts first; each ``/healthz`` reports the answering worker's own count."""
    held: dict[int, int] = {}
    async with asyncio.timeout(TIMEOUT):
        while len(held) < 2 or sum(held.values()) != total:
            body = await health(server)
            held[int(str(body["pid"]))] = int(str(body["connections"]))
    return held


async def spread(stack: AsyncExitStack, server: Server) -> tuple[list[ClientConnection], dict[int, int]]:
    """Connect clients until both workers hold some: the clients, and pid -> count."""
    clients: list[ClientConnection] = []
    while len(clients) < MAX_CLIENTS:
        clients.append(await echo_client(stack, server))
        held = await per_worker(server, len(clients))
        if 0 not in held.values():
            return clients, held
    raise AssertionError(f"{MAX_CLIENTS} connections, all to one worker")


async def test_two_workers_read_as_one_set_of_totals(server: Server) -> None:
    scrapes = Scrapes(server)
    async with AsyncExitStack() as stack:
        clients, held = await spread(stack, server)
        assert server.process is not None
        assert server.process.pid not in held  # the workers answer, not the supervisor
        count = len(clients)
        expected = {
            "asgi_chat_connections": count,  # livesum: the workers' open connections, added up
            "asgi_chat_messages_received_total": count * MESSAGES,
            "asgi_chat_messages_delivered_total": count * MESSAGES,
        }
        counts = {name: expected[name] for name in COUNTERS}
        assert max(held.values()) < count  # neither worker alone: only a sum over both shows these
        samples = await scrapes.until(**expected)
        assert samples["asgi_chat_broker_up"] == 1  # livemin: every worker reaches its broker
        for _ in range(6):  # successive scrapes, whichever worker answers each: the same totals
            samples = await scrapes.read()
            assert {name: samples[name] for name in expected} == expected

        # Fewer connections: the gauge follows them down; the counters stay.
        for ws in clients[: count // 2]:
            await ws.close()
        left = count - count // 2
        await scrapes.until(asgi_chat_connections=left, **counts)

        # A worker killed outright cannot withdraw its gauge: the next scrapes drop it once the
        # process is gone, and its counts stay in the totals.
        held = await per_worker(server, left)
        victim, survivor = held
        os.kill(victim, signal.SIGKILL)
        await scrapes.until(asgi_chat_connections=held[survivor], **counts)


# Run in a process of its own: prometheus_client picks multiprocess mode when it is first imported.
BUILD_ONLY = """
import os, sys
from asgi_chat import create_app
app = create_app()  # the settings from the environment: what a supervisor may do to check them
print(sorted(os.listdir(sys.argv[1])))
app.ctx.exposition.sync()  # what serving does (lifespan startup, a scrape)
print(sorted(os.listdir(sys.argv[1])))
"""


def test_an_app_that_never_serves_leaves_no_figures_for_the_workers_to_add_up(tmp_path: Path) -> None:
    shown = subprocess.run(
        [sys.executable, "-c", BUILD_ONLY, str(tmp_path)],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.splitlines()
    assert shown[0] == "[]"  # no "broker up: 0" under a pid that goes on living
    assert "gauge_livemin_" in shown[1]  # and serving writes them

"""What the client's end-to-end tests share: a TCP proxy that cuts connections at random points,
a checker of one room's events against the protocol's promise, and a room's whole history.

- :class:`Proxy` stands between a client and one or more servers (a new connection goes to the
  next server in turn) and drops each connection, both ways at once and without a close frame,
  after a random number of bytes towards the client: in the middle of a frame, of a handshake,
  of a replay, wherever the count falls. It does that ``cuts`` times, then lets traffic through.
- :class:`Timeline` checks, event by event, that a user sees every offset once in order, or an
  exact gap; a ``reset`` starts a new segment in the new epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from asgi_chat.client import Backoff, Client, Gap, Message
from tests.helpers import TIMEOUT

# Quick enough for a test (a retry within 50 ms), and never giving up within one: a server restart
# takes a second or so, during which every try fails.
FAST = Backoff(base=0.005, cap=0.05, attempts=None, stable=0.0)


class Proxy:
    """127.0.0.1:port -> the servers' ports in turn; cuts a connection after a random number of
    bytes towards the client (``budget``, drawn anew for each connection) until it has cut
    ``cuts`` of them."""

    def __init__(self, upstreams: Sequence[int], rng: random.Random, cuts: int, budget: tuple[int, int]) -> None:
        self._upstreams = itertools.cycle(upstreams)
        self._rng = rng
        self.budget = budget
        self.cuts_wanted = cuts
        self.cuts = 0
        self.cut_reached: dict[int, asyncio.Event] = {}  # cut number -> set when it happened
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.down = False  # True: every new connection is dropped at once (a network that is out)
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def reached(self, cut: int) -> asyncio.Event:
        return self.cut_reached.setdefault(cut, asyncio.Event())

    def cut_all(self) -> None:
        """Drop every connection through the proxy now (not counted as one of the ``cuts``)."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connection(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(client_writer)
        try:
            if self.down:
                client_writer.transport.abort()
                return
            try:
                server_reader, server_writer = await asyncio.open_connection("127.0.0.1", next(self._upstreams))
            except OSError:  # that server is down (restarting): the client sees its connection drop
                client_writer.transport.abort()
                return
            budget = self._rng.randint(*self.budget) if self.cuts < self.cuts_wanted else None
            up = asyncio.create_task(self._pipe(client_reader, server_writer, None))
            down = asyncio.create_task(self._pipe(server_reader, client_writer, budget))
            await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
            for writer in (client_writer, server_writer):
                writer.transport.abort()  # one side ended or was cut: so does the other, at once
            for pipe in (up, down):
                pipe.cancel()
            cut = await asyncio.gather(up, down, return_exceptions=True)
            if cut[1] is True:
                self.cuts += 1
                self.reached(self.cuts).set()
        finally:
            self._tasks.discard(task)
            self._writers.discard(client_writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int | None) -> bool:
        """Copy until the end of input (False), or until ``budget`` bytes were copied (True: cut)."""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(65536):
                if budget is not None and len(chunk) >= budget:
                    writer.write(chunk[:budget])  # the cut falls inside this chunk, maybe inside a frame
                    return True
                if budget is not None:
                    budget -= len(chunk)
                writer.write(chunk)
                await writer.drain()
        return False


@dataclass
class Timeline:
    """One room as its user saw it, checked as each event comes: offsets one after the other, a gap
    naming exactly the offsets it skips, a reset moving into a new epoch (a new segment)."""

    epoch: str
    next: int  # the offset the next message must have
    segments: list[list[Message]] = field(default_factory=lambda: [[]])
    gaps: list[Gap] = field(default_factory=list)
    epochs: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.epochs.append(self.epoch)

    def add(self, event: Message | Gap) -> None:
        if isinstance(event, Message):
            assert event.offset == self.next, f"expected offset {self.next}, got {event}"
            self.next += 1
            self.segments[-1].append(event)
            return
        self.gaps.append(event)
        if event.reset:
            assert event.epoch is not None
            assert event.offset is not None
            assert event.epoch != self.epoch, event  # a reset is a new history, or it is no reset
            self.epoch, self.next = event.epoch, event.offset + 1
            self.epochs.append(event.epoch)
            self.segments.append([])
        else:
            assert event.first == self.next, f"expected a gap from {self.next}, got {event}"
            assert event.last is not None
            self.next = event.last + 1

    @property
    def messages(self) -> list[Message]:
        return [message for segment in self.segments for message in segment]


async def whole_history(client: Client, room: str, top: int) -> list[Message]:
    """Every retained message of ``room`` up to offset ``top``, ascending, page by page."""
    pages: list[tuple[Message, ...]] = []
    before = top + 1
    for _ in range(top // 100 + 2):  # bounded: one page per hundred, and one to find the start
        page = await asyncio.wait_for(client.history(room, before=before, limit=100), TIMEOUT)
        if not page:
            break
        pages.append(page)
        before = page[0].offset
    return [message for page in reversed(pages) for message in page]

"""Output budgets: how many bytes a connection's requests may make the server send, per second.

The inbound rate limit counts frames, but a frame's cost is the output it causes: a 30-byte
``history`` request is answered with up to 100 messages (some 400 KB), a resume from offset 0
with up to ``replay_max`` of them (some 4 MB), and sending them (framing, compression, the
system calls) is where the server's CPU goes. So the requests that produce output draw on two
token buckets of bytes: the connection's own (``ASGI_CHAT_OUTPUT_BYTES_PER_SECOND``) and its
client address's (``ASGI_CHAT_ADDRESS_OUTPUT_BYTES_PER_SECOND``), which every connection from
that address shares, so that a hundred connections from one address get one address's worth.

::

    history ──▶ admit(): in debt? ──yes──▶ SlowDown(seconds): answered error slow_down, retry_ms
                        └──no──▶ the page is read and sent, then charge(its bytes)
    join ────▶ joined, then each replayed line: wait_turn() (sleeps while in debt), charge, send

Why a bucket may go into debt (below zero): a page's size is known only once it has been read,
and reading it is part of the work the budget is there to spare. So a request is let in while
the budget is not in debt, and exactly what it produced is charged afterwards: one page of any
size never waits on a budget that was not overspent, and whatever it overspent is repaid before
the next one goes. Over time no more than the rate goes out, plus one burst (a second's worth).

The address's bucket lives while the address has a connection: :meth:`OutputBudgets.connection`
makes it with the first one and forgets it with the last, so the registry holds one entry per
address connected now, never more.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Final

Clock = Callable[[], float]  # seconds, monotonic
Sleep = Callable[[float], Awaitable[None]]

BURST_SECONDS: Final = 1.0  # a full bucket holds this many seconds' worth of its rate
# The shortest wait of a paced replay: without it, a replay of small lines would wake once per
# line (each a hair into debt), and the wake-ups would cost more CPU than the lines.
MIN_PAUSE: Final = 0.05


class SlowDown(Exception):
    """A request that would produce output while its budget is in debt: nothing was done."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"output budget spent: try again in {seconds:.3f} s")
        self.seconds = seconds

    @property
    def retry_ms(self) -> int:
        """The wait in whole milliseconds, rounded up: after it, this budget is out of debt unless
        the address's other connections spent it again meanwhile."""
        return max(1, math.ceil(self.seconds * 1000))


class Bucket:
    """A token bucket of bytes: ``rate`` per second, up to one second's worth, and debts allowed."""

    __slots__ = ("_clock", "_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.burst = rate * BURST_SECONDS
        self._clock = clock
        self._tokens = self.burst  # a new connection starts with a full bucket
        self._last = clock()

    def debt_seconds(self) -> float:
        """How long until this bucket is out of debt: 0.0 when it may be drawn on now."""
        self._refill()
        # Bytes are whole: less than one owed is the float rounding of the clock, not a debt.
        return -self._tokens / self.rate if self._tokens <= -1 else 0.0

    def charge(self, size: int) -> None:
        self._refill()
        self._tokens -= size

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now


class Budget:
    """One connection's output budget: its own bucket and its address's shared one (either may
    be off, and with neither, as for the tutorial's members, nothing is ever refused or paced)."""

    __slots__ = ("_buckets", "_sleep")

    def __init__(self, buckets: tuple[Bucket, ...] = (), sleep: Sleep = asyncio.sleep) -> None:
        self._buckets = buckets
        self._sleep = sleep

    def debt_seconds(self) -> float:
        """How long until every bucket is out of debt: 0.0 when the budget may be drawn on now."""
        return max((bucket.debt_seconds() for bucket in self._buckets), default=0.0)

    def admit(self) -> None:
        """Let in a request that produces output, or raise :class:`SlowDown` saying how long to
        wait: called before any of the request's work is done."""
        seconds = self.debt_seconds()
        if seconds:
            raise SlowDown(seconds)

    def charge(self, size: int) -> None:
        """``size`` bytes went out (or are about to): drawn from every bucket."""
        for bucket in self._buckets:
            bucket.charge(size)

    async def wait_turn(self) -> None:
        """Sleep until the budget may be drawn on; again if the address's other connections
        spent what refilled meanwhile."""
        while seconds := self.debt_seconds():
            await self._sleep(max(seconds, MIN_PAUSE))


UNLIMITED: Final = Budget()


@dataclass(slots=True)
class _Shared:
    """An address's bucket, and how many of its connections are open."""

    bucket: Bucket
    connections: int = 0


class OutputBudgets:
    """Every connection's budget, and one shared bucket per client address connected now.

    ``rate`` and ``address_rate`` are bytes per second; 0 turns that bucket off.
    """

    def __init__(
        self, rate: float, address_rate: float, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.rate = rate
        self.address_rate = address_rate
        self._clock = clock
        self._sleep = sleep
        self._addresses: dict[str, _Shared] = {}

    @contextlib.contextmanager
    def connection(self, address: str) -> Iterator[Budget]:
        """The budget of one connection from ``address`` (:func:`client_address`), for as long as
        it is open; the address's entry goes with its last connection."""
        shared = self._join(address)
        own = (Bucket(self.rate, self._clock),) if self.rate else ()
        try:
            yield Budget(own + ((shared.bucket,) if shared else ()), self._sleep)
        finally:
            if shared is not None:
                self._leave(address, shared)

    def _join(self, address: str) -> _Shared | None:
        if not address or not self.address_rate:
            return None  # no address (a Unix socket): only the connection's own budget applies
        shared = self._addresses.get(address)
        if shared is None:
            shared = self._addresses[address] = _Shared(Bucket(self.address_rate, self._clock))
        shared.connections += 1
        return shared

    def _leave(self, address: str, shared: _Shared) -> None:
        shared.connections -= 1
        if not shared.connections:
            del self._addresses[address]

    def __len__(self) -> int:
        """How many addresses have a shared bucket now (one per address connected)."""
        return len(self._addresses)


def client_address(client: Iterable[object] | None) -> str:
    """The key of a connection's shared budget: the host of the scope's ``client``, exactly as
    ops/security.py's ConnectionLimits counts connections per address, so both see one address
    alike. Behind a trusted reverse proxy the server has already put the forwarded address there
    (uvicorn's ``--forwarded-allow-ips``; ops/forwarded.py warns when it did not). "" when the
    server gave none (a Unix socket)."""
    return str(next(iter(client), "")) if client else ""

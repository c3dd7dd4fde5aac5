"""The app's counters: plain integers where things happen (:class:`Metrics`).

Counting stays cheap: the broadcast path counts every delivery (once per recipient of every
line), and incrementing an int on a slotted object is the cheapest thing Python does. Calling
into prometheus_client there would take a lock, and under several workers write a shared file,
per recipient. So :class:`Metrics` holds the ints (``/healthz`` shows them as they are), and
:class:`~asgi_chat.ops.exposition.Exposition` copies them into Prometheus' format when they are read.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from ..asgi.errors import NEVER_SENT, CloseCode

LINE_SAMPLE: Final = 16  # one chat line in this many is timed (a power of two: a mask, not a division)
# Receive to the last recipient's send: about 0.5 µs per recipient in one process, plus a
# broker hop (Redis: a round trip) and any wait for the event loop.
LINE_BUCKETS: Final = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The close codes the app itself sends, from the one enum (asgi/errors.py), shown from 0 so that
# rate() works from the first one; any other code gets its series when it first happens.
KNOWN_CLOSE_CODES: Final = tuple(int(code) for code in CloseCode if code not in NEVER_SENT)


@dataclass(slots=True)
class Metrics:
    connections: int = 0  # accepted WebSockets still open, all endpoints
    messages_received: int = 0  # data messages taken from clients, all endpoints
    messages_delivered: int = 0  # data messages handed to the server's send, all endpoints
    slow_consumer_disconnects: int = 0  # clients closed with 1013 by the slow-consumer policy
    outbox_depth_max: int = 0  # the deepest any chat member's outbox has been
    closes: Counter[int] = field(default_factory=Counter)  # close code -> WebSockets the app refused or closed
    moderation: Counter[str] = field(default_factory=Counter)  # action -> moderators' requests carried out
    lines: int = 0  # chat lines offered for timing (line_clock), to pick one in LINE_SAMPLE
    # Where observe_line's figures go: the app's histogram, once an Exposition is attached.
    line_observer: Callable[[float], None] | None = None

    def as_dict(self) -> dict[str, object]:
        """The figures as ``/healthz`` shows them (close codes as strings: JSON keys)."""
        counts: dict[str, object] = {
            "connections": self.connections,
            "messages_received": self.messages_received,
            "messages_delivered": self.messages_delivered,
            "slow_consumer_disconnects": self.slow_consumer_disconnects,
            "outbox_depth_max": self.outbox_depth_max,
        }
        counts["closes"] = {str(code): count for code, count in sorted(self.closes.items())}
        counts["moderation"] = dict(sorted(self.moderation.items()))
        return counts

    def moderated(self, action: str) -> None:
        """A moderator's ``action`` was carried out (endpoints/moderation.py)."""
        self.moderation[action] += 1

    def line_clock(self) -> float | None:
        """A start time for one received chat line in ``LINE_SAMPLE``, else None (nothing to time).

        Call it once per line as it is received; hand the time to whatever delivers the line,
        which calls :meth:`observe_line` once the last recipient's send has started.
        """
        self.lines += 1
        return None if self.lines & (LINE_SAMPLE - 1) else time.monotonic()

    def observe_line(self, seconds: float) -> None:
        """Record how long one chat line took from receive to its last recipient's send."""
        if self.line_observer is not None:
            self.line_observer(seconds)

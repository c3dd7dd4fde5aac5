"""What the app and its sessions let their owner count and limit: two small interfaces.

Nothing in ``asgi/`` decides what is worth counting or how fast a client may write: an app built
on it hands in a :class:`Counters` (asgi_chat's is ``Metrics`` in ops/metrics.py) and, per
connection, a :class:`Guard` (asgi_chat's is ``InboundGuard`` in ops/security.py). Without them
the session counts into a :class:`Tally` nobody reads, and admits every message.

The counters are attributes, not methods: a delivery is counted once per recipient of every
broadcast, and ``+= 1`` on an attribute of a slotted object is the cheapest thing Python does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


class Counters(Protocol):
    """What the sessions and the app count as they go."""

    connections: int  # accepted WebSockets still open (the session's state machine keeps it)
    messages_received: int  # data messages taken from clients
    messages_delivered: int  # data messages handed to the server's send
    closes: Counter[int]  # close code -> WebSockets the app refused or closed


@dataclass(slots=True)
class Tally:
    """The default :class:`Counters`: counts that nobody reads."""

    connections: int = 0
    messages_received: int = 0
    messages_delivered: int = 0
    closes: Counter[int] = field(default_factory=Counter)


class Guard(Protocol):
    """A connection's limits on what its client sends, asked about every data message."""

    def admit(self, payload: str | bytes, queued: bool = False) -> None:
        """Return if ``payload`` may pass; raise a :class:`~asgi_chat.asgi.errors.Refusal`
        (``MessageTooBig``, ``PolicyViolation``) to end the connection over it. ``queued``: the
        message was waiting when the app asked for it (the app is behind its client)."""

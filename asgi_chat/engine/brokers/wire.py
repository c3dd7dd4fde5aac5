"""The Redis broker's envelope: how one chat line travels through Redis, decided without I/O.

Kept apart from :mod:`asgi_chat.engine.brokers.redis` so that it can be read, and tested, without
redis-py installed. What the shared Redis link decides without I/O (the backoff, the URL as it
may be shown) is in engine/link_policy.py.
"""

from __future__ import annotations

import json
from typing import NamedTuple


class Envelope(NamedTuple):
    """One message as it travels through Redis: who sent it, for which channel, and the text."""

    origin: str
    channel: str
    text: str


def frame(envelope: Envelope) -> bytes:
    """A JSON array: any text round-trips, separators and quotes included."""
    return json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()


def unframe(data: bytes) -> Envelope | None:
    """The envelope in ``data``, or None when ``data`` is not one (something else published it)."""
    try:
        value = json.loads(data)
    except ValueError:  # not JSON, or not UTF-8
        return None
    if isinstance(value, list) and len(value) == 3 and all(isinstance(item, str) for item in value):
        return Envelope(*value)
    return None

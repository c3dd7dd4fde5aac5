"""Behind a reverse proxy: notice when the server ignored the proxy's ``X-Forwarded-For``.

uvicorn rewrites ``scope["client"]`` to the address ``X-Forwarded-For`` names only when the
connection comes from an address in ``--forwarded-allow-ips`` (default ``127.0.0.1,::1``;
uvicorn/middleware/proxy_headers.py). A proxy on any other address is ignored without a word: every
user then counts as the proxy against the per-address connection limit, and a WebSocket's
``wss`` scheme is lost, so the origin check refuses the site's own https:// pages. The first such
handshake in a process logs a warning that says what to set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ..asgi.parsing import header_values

logger = logging.getLogger("asgi_chat")


def untrusted_forwarder(client: Iterable[object] | None, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The peer's address if the request carries ``X-Forwarded-For`` the server did not apply, else None.

    A server that applies the header sets the client to one of the addresses it lists (uvicorn:
    the right-most one it does not trust; every one trusted, or ``*``: the left-most). So a
    client address that is none of them means the header was ignored.
    """
    peer = str(next(iter(client), "")) if client else ""
    forwarded = [_host(entry) for value in header_values(headers, b"x-forwarded-for") for entry in _entries(value)]
    forwarded = [host for host in forwarded if host]
    if not peer or not forwarded or peer in forwarded:
        return None
    return peer


def _entries(value: bytes) -> list[str]:
    return [entry.strip() for entry in value.decode("latin-1").split(",")]


def _host(entry: str) -> str:
    """``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80`` or ``::1`` without the port, as uvicorn reads them."""
    if entry.startswith("["):
        return entry[1 : entry.find("]")] if "]" in entry else entry
    return entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry


class UntrustedProxyWarning:
    """Warns once, at the first handshake whose ``X-Forwarded-For`` the server ignored."""

    def __init__(self) -> None:
        self.given = False

    def check(self, client: Iterable[object] | None, headers: Iterable[tuple[bytes, bytes]]) -> None:
        if self.given:
            return  # said once: the check costs nothing from then on
        peer = untrusted_forwarder(client, headers)
        if peer is None:
            return
        self.given = True
        # The peer's address only: X-Forwarded-For's contents are the client's to choose.
        logger.warning(
            "a WebSocket from %s carries X-Forwarded-For, which the server ignored: connection limits"
            " and the origin check see %s, not the clients behind it. If %s is your reverse proxy,"
            " run python -m asgi_chat --forwarded-allow-ips %s (uvicorn: the same option, or FORWARDED_ALLOW_IPS)",
            peer,
            peer,
            peer,
            peer,
        )


# One per process, like the server setting it is about.
untrusted_proxy = UntrustedProxyWarning()

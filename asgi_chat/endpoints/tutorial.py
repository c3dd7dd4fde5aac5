"""The tutorial's three WebSocket apps, each a short function over a :class:`Session`.

They match FastAPI's "WebSockets" tutorial message for message. What the tutorial leaves to the
framework is explicit here: every check happens before ``accept`` (so a refusal is an HTTP
response, not a close frame), and a refusal is an exception that carries its close code and HTTP
status (see asgi/errors.py).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from asgiref.typing import WebSocketScope

from ..asgi.errors import PolicyViolation, TryAgainLater
from ..asgi.parsing import header_values, parse_cookies, parse_int, parse_query
from ..asgi.session import Session
from ..engine.brokers import BrokerUnavailable
from .common import EndpointContext, require_text
from .credentials import BEARER, Credential, find_credential, reply

logger = logging.getLogger("asgi_chat")


@dataclass(frozen=True, slots=True)
class Handshake:
    """What the items endpoint reads from a WebSocket request, parsed once into plain values.

    Only the endpoint that needs them parses them: a chat connection, which may live for hours
    among thousands, keeps nothing it does not use.
    """

    query: dict[str, str]
    cookies: dict[str, str]
    subprotocols: tuple[str, ...]

    @classmethod
    def from_scope(cls, scope: WebSocketScope) -> Handshake:
        return cls(
            parse_query(scope.get("query_string") or b""),
            parse_cookies(header_values(scope["headers"], b"cookie")),
            tuple(scope.get("subprotocols") or ()),
        )


async def echo(session: Session, ctx: EndpointContext) -> None:
    """``/ws``: answer each text message with ``Message text was: ...``; echo binary as binary."""
    await session.accept()
    while True:
        message = await session.receive_message()
        if isinstance(message, bytes):
            await session.send_bytes(message)
        else:
            await session.send_text(f"Message text was: {message}")


async def items(session: Session, ctx: EndpointContext, *, item_id: str) -> None:
    """``/items/{item_id}/ws``: needs a credential (cookie ``session``, bearer subprotocol or
    query ``token``); takes an optional integer ``q``."""
    limit = ctx.settings.max_item_id_length
    if limit and len(item_id) > limit:
        raise PolicyViolation(f"invalid item_id: longer than {limit} characters")
    request = Handshake.from_scope(session.scope)
    credential = authenticate(request, ctx)  # credentials are checked before q
    q = optional_int(request.query, "q")
    await session.accept(BEARER if BEARER in request.subprotocols else None)
    while True:
        text = require_text(await session.receive_message())
        await session.send_text(reply(credential))
        if q is not None:
            await session.send_text(f"Query parameter q is: {q}")
        await session.send_text(f"Message text was: {text}, for item ID: {item_id}")


async def chat(session: Session, ctx: EndpointContext, *, client_id: int) -> None:
    """``/ws/{client_id}``: the broadcast chat. Everyone sees who says what, and who left."""
    await start_hub(ctx)
    await session.accept()
    async with ctx.hub.member(session, client_id) as member:
        while True:
            text = require_text(await session.receive_message())
            received_at = ctx.metrics.line_clock()  # a time for one line in 16 (its delivery is timed), else None
            member.send(f"You wrote: {text}")
            await ctx.hub.broadcast(f"Client #{client_id} says: {text}", received_at)
            # Let the line go out before reading the next one. receive() does not yield while
            # the server holds more messages, so without this a burst would be read whole before
            # the hub's listener ran: the sender would get "You wrote" for every line before
            # "says" for the first (the tutorial pairs them), and one client's burst would hold
            # the event loop.
            await asyncio.sleep(0)


async def start_hub(ctx: EndpointContext) -> None:
    """Servers without lifespan (daphne) start the hub at the first join: refuse, before accept,
    a chat that cannot reach its broker rather than half-join it."""
    try:
        await ctx.hub.start(on_demand=True)
    except BrokerUnavailable as error:
        logger.warning("chat unavailable: %s", error)
        raise TryAgainLater("chat unavailable: its message broker cannot be reached") from None


def authenticate(request: Handshake, ctx: EndpointContext) -> Credential:
    credential = find_credential(request.cookies, request.query, request.subprotocols)
    if credential is None:
        raise PolicyViolation("missing credentials: send a session cookie, a bearer subprotocol or a token")
    limit = ctx.settings.max_credential_length
    if limit and len(credential.value) > limit:
        raise PolicyViolation(f"invalid credentials: longer than {limit} characters")
    if not ctx.verify_credential(credential.value):
        raise PolicyViolation("invalid credentials")
    return credential


def optional_int(query: dict[str, str], name: str) -> int | None:
    """An integer query parameter; absent is None, but present and empty is invalid."""
    if name not in query:
        return None
    try:
        return parse_int(query[name])
    except ValueError:
        raise PolicyViolation(f"invalid {name}: expected an integer") from None

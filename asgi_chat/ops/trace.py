"""The ASGI message trace: a middleware that prints every message in and out, one line each.

::

    #3 +0.000s · websocket /items/foo/ws?token=[redacted]&q=5
    #3 +0.001s ← websocket.connect
    #3 +0.001s → websocket.accept
    #3 +0.004s ← websocket.receive text='hello'
    #3 +0.004s → websocket.send text='Session cookie or query token value is: [redacted]'
    #3 +0.009s ← websocket.disconnect code=1000
    #3 +0.009s · end

``#3`` is the connection (each scope the server opens, lifespan included, numbered from 1),
``+0.004s`` the time since that scope began, ``←`` a message the server hands the app
(``receive``), ``→`` one the app hands the server (``send``), ``·`` the scope's start and end.

``Trace(app)`` wraps any ASGI 3 app. asgi_chat wraps itself only when ``ASGI_CHAT_TRACE=1``
(see ``ChatApp``); with tracing off nothing of this module is in the path.

Credentials never reach the output. Every string is passed through
:func:`asgi_chat.ops.logs.redact` (``token=...``, ``session=...``, ``bearer, ...``), and then the
credential values this connection carries (its ``session`` cookie, its ``token`` query
parameter, the subprotocol after ``bearer``) are replaced wherever they appear, so the items
endpoint's ``Session cookie or query token value is: ...`` prints ``[redacted]`` too. A very
short credential may hide innocent text as well: the trace errs on the side of saying less.
Each line is redacted before it is written, so logging.json gives the ``asgi_chat.trace`` logger
its own handler without the redacting filter, which would take ``'bearer', '[redacted]'`` for a
credential and redact it again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from asgiref.typing import (
    ASGI3Application,
    ASGIReceiveCallable,
    ASGIReceiveEvent,
    ASGISendCallable,
    ASGISendEvent,
    Scope,
)

from ..asgi.parsing import header_values, parse_cookies, parse_query
from ..endpoints.credentials import secret_values
from .logs import REDACTED, redact

logger = logging.getLogger("asgi_chat.trace")

TEXT_LIMIT: Final = 60  # characters of a text (or bytes of a body) shown before it is cut
RECEIVED: Final = "←"
SENT: Final = "→"
SCOPE: Final = "·"

# The fields worth a reader's attention, per message type, in the order they are printed.
# A message type not listed here prints all its fields.
SALIENT: Final[dict[str, tuple[str, ...]]] = {
    "websocket.connect": (),
    "websocket.accept": ("subprotocol", "headers"),
    "websocket.receive": ("text", "bytes"),
    "websocket.send": ("text", "bytes"),
    "websocket.close": ("code", "reason"),
    "websocket.disconnect": ("code", "reason"),
    "websocket.http.response.start": ("status",),
    "websocket.http.response.body": ("body", "more_body"),
    "http.request": ("body", "more_body"),
    "http.response.start": ("status",),
    "http.response.body": ("body", "more_body"),
    "http.disconnect": (),
    "lifespan.startup": (),
    "lifespan.startup.complete": (),
    "lifespan.startup.failed": ("message",),
    "lifespan.shutdown": (),
    "lifespan.shutdown.complete": (),
    "lifespan.shutdown.failed": ("message",),
}
# Shown even when empty (an empty text is still a message); other fields only when set.
ALWAYS: Final = frozenset({"code", "status", "text", "bytes", "body"})
# Cut to the limit. A close reason is short by rule (RFC 6455 5.5: a control frame's payload
# is at most 125 bytes) and a start-up failure's message is the one thing to read in full.
CUT: Final = frozenset({"text", "bytes", "body"})


class Trace:
    """ASGI middleware: ``Trace(app)`` is ``app`` with every message written out as a line.

    ``write`` receives each line (default: the ``asgi_chat.trace`` logger at INFO); ``clock``
    gives the times (default: ``time.monotonic``); ``limit`` is where long texts are cut.
    """

    def __init__(
        self,
        app: ASGI3Application,
        *,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        limit: int = TEXT_LIMIT,
    ) -> None:
        self.app = app
        self._write = write
        self._clock = clock
        self._limit = limit
        self._ids = itertools.count(1)

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        line = self._connection(next(self._ids))
        describe = Describer(Redactor.for_scope(scope), self._limit)
        line(SCOPE, describe.scope(scope))

        async def traced_receive() -> ASGIReceiveEvent:
            message = await receive()
            line(RECEIVED, describe.message(message))
            return message

        async def traced_send(message: ASGISendEvent) -> None:
            # Written before the server takes it: a send that blocks (a client that stopped
            # reading) shows as the last line of its connection.
            line(SENT, describe.message(message))
            try:
                await send(message)
            except Exception as exc:
                # ASGI 2.4: a send after the client has gone raises (an OSError subclass).
                line(SENT, f"  the server raised {describe.exception(exc)}")
                raise

        try:
            await self.app(scope, traced_receive, traced_send)
        except asyncio.CancelledError:
            line(SCOPE, "cancelled")
            raise
        except Exception as exc:
            line(SCOPE, f"the app raised {describe.exception(exc)}")
            raise
        line(SCOPE, "end")

    def _connection(self, number: int) -> Callable[[str, str], None]:
        """A function that writes one line of connection ``number``, with its time."""
        write = self._write or _output()
        clock = self._clock
        started = clock()

        def line(arrow: str, text: str) -> None:
            write(f"#{number} +{clock() - started:.3f}s {arrow} {text}")

        return line


# --- what a line says -----------------------------------------------------------------------------


class Describer:
    """Turns scopes, messages and errors into line text: redacted first, then cut to ``limit``."""

    def __init__(self, redact: Callable[[str], str], limit: int) -> None:
        self.redact = redact
        self.limit = limit

    def scope(self, scope: Scope) -> str:
        """``websocket /path?query subprotocols=[...] cookie='...'``: what the connection asks for."""
        if scope["type"] == "lifespan":
            return "lifespan"
        query = scope["query_string"].decode("latin-1")
        target = self.redact(f"{scope['path']}?{query}" if query else scope["path"])
        if scope["type"] == "http":
            return f"http {scope['method']} {target}"
        parts = [f"websocket {target}"]
        if scope.get("subprotocols"):
            parts.append(f"subprotocols={self.redact(repr(list(scope['subprotocols'])))}")
        for name in (b"origin", b"cookie"):
            for value in header_values(scope["headers"], name):
                parts.append(f"{name.decode()}={self.text(value.decode('latin-1'))}")
        return " ".join(parts)

    def message(self, message: Mapping[str, object]) -> str:
        """``websocket.close code=1008 reason='...'``: the type, then the salient fields that are set."""
        kind = str(message["type"])
        names = SALIENT.get(kind, tuple(name for name in message if name != "type"))
        fields = [
            f"{name}={self.value(message[name], cut=name in CUT)}"
            for name in names
            if message.get(name) is not None and (name in ALWAYS or message[name])
        ]
        return " ".join([kind, *fields])

    def value(self, value: object, cut: bool = True) -> str:
        if isinstance(value, str):
            return self.text(value) if cut else repr(self.redact(value))
        if isinstance(value, bytes):
            return self.data(value)
        return self.redact(repr(value) if isinstance(value, list | tuple | dict) else str(value))

    def text(self, text: str) -> str:
        # Redact before cutting: a credential cut in two would no longer be recognised.
        text = self.redact(text)
        if len(text) <= self.limit:
            return repr(text)
        return f"{text[: self.limit]!r}… ({len(text)} chars)"

    def data(self, data: bytes) -> str:
        # Binary frames may carry text, credentials included: redact them as latin-1, which
        # maps every byte to one character and back.
        data = self.redact(data.decode("latin-1")).encode("latin-1")
        if len(data) <= self.limit:
            return repr(data)
        return f"{data[: self.limit]!r}… ({len(data)} bytes)"

    def exception(self, exc: BaseException) -> str:
        return f"{type(exc).__name__}: {self.redact(str(exc))}" if str(exc) else type(exc).__name__


# --- redaction ----------------------------------------------------------------------------------


class Redactor:
    """Hides credentials in text: :func:`asgi_chat.ops.logs.redact`, then this connection's own
    credential values wherever they appear (longest first, so none is replaced in part)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = tuple(sorted({secret for secret in secrets if secret}, key=len, reverse=True))

    @classmethod
    def for_scope(cls, scope: Scope) -> Redactor:
        """Every value of the scope that endpoints/credentials.py counts as a credential."""
        if scope["type"] == "lifespan":
            return cls()
        cookies = parse_cookies(header_values(scope["headers"], b"cookie"))
        query = parse_query(scope["query_string"])
        subprotocols = scope.get("subprotocols") or () if scope["type"] == "websocket" else ()
        return cls(secret_values(cookies, query, subprotocols))

    def __call__(self, text: str) -> str:
        # logs.py's patterns first: they recognise "bearer', '" and "token=" around a value;
        # after the plain replacement they would find "[redacted]" there and redact it again.
        text = redact(text)
        for secret in self.secrets:
            # Between the markers already placed: a one-letter credential must not eat into them.
            text = REDACTED.join(part.replace(secret, REDACTED) for part in text.split(REDACTED))
        return text


def _output() -> Callable[[str], None]:
    """The default writer: the ``asgi_chat.trace`` logger, made visible if nobody configured it.

    ``python -m asgi_chat`` configures it (logging.json); under plain ``uvicorn asgi_chat:app``
    nothing does, and logging's last resort shows only warnings, so a trace asked for with
    ASGI_CHAT_TRACE=1 would print nothing.
    """
    if not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("trace %(message)s"))
        logger.addHandler(handler)
    if logger.level == logging.NOTSET and not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    return logger.info

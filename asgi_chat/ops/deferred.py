"""``asgi_chat.app``: the app built on the first scope a server hands it, not at import.

``uvicorn asgi_chat:app`` imports the package and takes ``app``. If that import built the app,
a bad ``ASGI_CHAT_*`` setting would be a traceback from the import machinery, and so would
importing any submodule at all (``import asgi_chat.asgi.parsing`` runs the package's
``__init__``). Instead, ``app`` is this small callable: the real app is built when the first
scope arrives, and a setting it cannot use is answered in the protocol's own terms:

- ``lifespan``: ``lifespan.startup.failed`` with the one-line reason, which the server prints
  before it exits (lifespan.rst: "the server should log/print the message ... and then exit");
- ``http``: 500 with the reason; ``websocket``: refused before accept (an HTTP 403 on the wire),
  for servers without lifespan. Either way the reason is logged once, at error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from asgiref.typing import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope

from ..engine.brokers import BrokerUnavailable

logger = logging.getLogger("asgi_chat")

# What building the app raises for a configuration it cannot use: SettingsError (a ValueError),
# ValueError for a Redis URL it cannot use, ImportError when the Redis extra is not installed.
CONFIGURATION_ERRORS = (ValueError, ImportError, BrokerUnavailable)


class DeferredApp:
    """An ASGI app that builds the real one with ``factory()`` on its first scope."""

    def __init__(self, factory: Callable[[], ASGI3Application]) -> None:
        self._factory = factory
        self._app: ASGI3Application | None = None
        self._error: str | None = None

    def build(self) -> ASGI3Application | None:
        """The real app, or None (with :attr:`error` set) if the configuration is unusable."""
        if self._app is None and self._error is None:
            try:
                self._app = self._factory()
            except CONFIGURATION_ERRORS as exc:
                self._error = f"asgi_chat cannot start: {exc}"
                logger.error("%s", self._error)
        return self._app

    @property
    def error(self) -> str | None:
        return self._error

    async def __call__(self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable) -> None:
        app = self._app or self.build()
        if app is not None:
            await app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.failed", "message": self._error or ""})
        elif scope["type"] == "http":
            await _http_error(send, self._error or "")
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 1011, "reason": "server misconfigured"})


async def _http_error(send: ASGISendCallable, reason: str) -> None:
    body = (reason + "\n").encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 500, "headers": headers, "trailers": False})
    await send({"type": "http.response.body", "body": body, "more_body": False})

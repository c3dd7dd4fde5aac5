"""asgi_chat: the FastAPI tutorial's WebSocket chat, written by hand on the ASGI protocol.

``asgi_chat.app`` is the app ``uvicorn asgi_chat:app`` serves; :func:`create_app` builds an
independent one (its own chat, its own settings) for tests and embedding. Both come from the
composition (composition.py), the one module that knows every part; the layers below it
(asgi/, the engine, the endpoints, web/ and ops/) import only downwards, which
tests/unit/test_layers.py checks.

The package's layout, and the way a message travels through it: docs/architecture.md.
"""

from __future__ import annotations

from .composition import ChatApp, create_app
from .ops.deferred import DeferredApp
from .ops.settings import Settings

__all__ = ["ChatApp", "Settings", "app", "create_app"]

# Built from the environment on the first scope the server hands it, not at import: importing
# any part of the package never fails because of a setting (see ops/deferred.py).
app = DeferredApp(create_app)

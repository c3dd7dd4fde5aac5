"""What every WebSocket endpoint shares: the context it is handed, and the rule for text.

:class:`EndpointContext` says what the endpoints use of the app's context, and no more: the
composition's ``Context`` (asgi_chat/context.py) is one, without the endpoints importing the
layers above them (settings, metrics) to say so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from ..asgi.errors import UnsupportedData
from ..engine.budget import OutputBudgets
from ..engine.fanout import Fanout
from ..engine.hub import Hub
from ..engine.rooms import Rooms
from .identity import Authority


class EndpointSettings(Protocol):
    """The settings the endpoints read (``ASGI_CHAT_*``: ops/settings.py's Settings has them)."""

    @property
    def max_item_id_length(self) -> int: ...
    @property
    def max_credential_length(self) -> int: ...
    @property
    def max_text_chars(self) -> int: ...
    @property
    def rooms_per_connection(self) -> int: ...


class LineTimer(Protocol):
    """How a chat line's delivery is timed (ops/metrics.py's Metrics is one)."""

    def line_clock(self) -> float | None:
        """A start time for one received line in a sample, else None (nothing to time)."""

    def observe_line(self, seconds: float) -> None:
        """Record how long one line took from receive to its last recipient's send."""

    def moderated(self, action: str) -> None:
        """Count one moderator's ``action`` carried out."""


class EndpointContext(Protocol):
    """What an endpoint may use, built once per app."""

    @property
    def settings(self) -> EndpointSettings: ...
    @property
    def metrics(self) -> LineTimer: ...
    @property
    def fanout(self) -> Fanout: ...  # every member of every chat: outboxes and the slow-consumer policy
    @property
    def hub(self) -> Hub: ...  # the tutorial chat
    @property
    def rooms(self) -> Rooms: ...  # the rooms of asgi-chat.v1
    @property
    def budgets(self) -> OutputBudgets: ...  # what requests may make the server send (engine/budget.py)
    @property
    def authority(self) -> Authority: ...  # who is speaking on /chat/ws (endpoints/identity.py)
    @property
    def verify_credential(self) -> Callable[[str], bool]: ...  # whether a credential is accepted


def require_text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        # RFC 6455 7.4.1: 1003 "indicates that an endpoint is terminating the connection because
        # it has received a type of data it cannot accept".
        raise UnsupportedData("binary messages are not supported here: send text")
    return message

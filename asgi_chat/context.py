"""What every endpoint may use, built once per app by :func:`asgi_chat.create_app`.

The endpoints say what they use of it without importing it (endpoints/common.py's
``EndpointContext``, web/endpoints.py's ``WebContext``): only the composition knows every part.
"""

from __future__ import annotations

from dataclasses import dataclass

from .endpoints.identity import Authority
from .engine.budget import OutputBudgets
from .engine.fanout import Fanout
from .engine.hub import Hub
from .engine.rooms import Rooms
from .ops.exposition import Exposition
from .ops.metrics import Metrics
from .ops.security import ConnectionLimits, CredentialVerifier, OriginPolicy
from .ops.settings import Settings
from .web.assets import Assets


@dataclass(frozen=True)
class Context:
    settings: Settings
    metrics: Metrics
    exposition: Exposition  # the metrics in Prometheus' format, summed over workers if several
    fanout: Fanout  # every member of every chat: outboxes and the slow-consumer policy
    hub: Hub  # the tutorial chat
    rooms: Rooms  # the rooms of asgi-chat.v1
    budgets: OutputBudgets  # what a connection's requests, and its address's, may make it send
    assets: Assets
    origins: OriginPolicy
    limits: ConnectionLimits
    verify_credential: CredentialVerifier
    authority: Authority  # who is speaking on /chat/ws: tokens, guests, the room policy

"""What every endpoint may use, built once per app by :func:`asgi_chat.create_app`."""

from __future__ import annotations

from dataclasses import dataclass

from .hub import Hub
from .metrics import Metrics
from .pages import Assets
from .security import ConnectionLimits, CredentialVerifier, OriginPolicy
from .settings import Settings


@dataclass(frozen=True)
class Context:
    settings: Settings
    metrics: Metrics
    hub: Hub
    assets: Assets
    origins: OriginPolicy
    limits: ConnectionLimits
    verify_credential: CredentialVerifier

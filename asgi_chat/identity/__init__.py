"""Who is speaking on ``/chat/ws``: verified identities, guests, names and the room policy.

Pure building blocks that the endpoint and the composition put together; nothing here knows
the ASGI protocol, the engine or the endpoints, and it imports nothing of the package (the
settings it reads are small Protocols that ops/settings.py's Settings satisfies):

- errors.py: ConfigError (start-up), Unauthorized (a token refused, and why), KeysUnavailable,
  BadName;
- claims.py: Identity, a verified token's claims made into one, and room patterns;
- keys.py: the operator's keys and the one algorithm each may verify (RFC 8725);
- jwks.py: a key set fetched from a URL without blocking, cached by kid;
- tokens.py: Verifier, an operator's token (a JWT) checked into an Identity;
- guests.py: guest uids, the guest tokens that keep them, and the server's own secret;
- names.py: the rules of display names, and a short tag that tells two same names apart;
- policy.py: private and read-only rooms, from the operator's TOML file.

docs/identity.md is the operator's guide to all of it.
"""

from __future__ import annotations

from .claims import GUEST_PREFIX, Identity
from .errors import BadName, ConfigError, KeysUnavailable, Unauthorized
from .guests import Guests, server_secret
from .names import check_name, tag
from .policy import Decision, RoomPolicy
from .tokens import Verifier

__all__ = [
    "GUEST_PREFIX",
    "BadName",
    "ConfigError",
    "Decision",
    "Guests",
    "Identity",
    "KeysUnavailable",
    "RoomPolicy",
    "Unauthorized",
    "Verifier",
    "check_name",
    "server_secret",
    "tag",
]

"""The identity package's errors: a small tree, each carrying what the other end needs to hear.

- :class:`ConfigError` (a ``ValueError``, like ops/settings.py's SettingsError): a setting or a
  file that cannot be used. Raised while the app is built, so the server stops at start-up with
  one line naming the variable or the file and the problem.
- :class:`Unauthorized`: a token refused. Its :attr:`~Unauthorized.reason` is one of
  :data:`REASONS`, so a client (and a test) can tell *why* without parsing prose; the endpoint
  answers ``unauthorized`` and closes with 4401: the same token will never pass.
- :class:`KeysUnavailable`: the key set (JWKS) could not be fetched. Not the client's fault, and
  not final: the endpoint closes with 1013 (try again later), not 4401.
- :class:`BadName`: a display name refused (``bad_name``); the connection stays open.

None of them ever carries a token or a key: messages end up in logs and in frames.
"""

from __future__ import annotations

from typing import Final


class ConfigError(ValueError):
    """A setting or file the identity parts cannot use; the message is one line that says which and why."""


# Why a token is refused: the stable words a client or a test can match on.
REASONS: Final = frozenset(
    {
        "malformed",  # not a JWT: segments, base64url, JSON, a claim of the wrong type
        "algorithm not allowed",  # outside the allowlist, `none`, or not the algorithm of the key
        "unknown kid",  # a key set is configured and holds no key of that id (or the token names none)
        "bad signature",
        "expired",  # exp (plus the leeway) has passed
        "not yet valid",  # nbf or iat is in the future (beyond the leeway)
        "wrong audience",
        "wrong issuer",
        "no exp",
        "no sub",
        "guest sub",  # a sub in the guests' namespace: only the server makes those
        "bad claim",  # name, rooms or roles that are not what docs/identity.md describes
        "not a guest token",  # a guest token's own checks (its audience, issuer, type)
    }
)


class Unauthorized(Exception):
    """A token refused: ``reason`` (one of :data:`REASONS`) and, optionally, a short ``detail``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REASONS, reason
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class KeysUnavailable(Exception):
    """The key set could not be fetched, and the key a token needs is not cached: try later."""


class BadName(Exception):
    """A display name refused (the protocol's ``bad_name``); the message says which rule."""

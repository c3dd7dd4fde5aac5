"""What a credential looks like: the one module that knows where one travels and how it is shown.

The tutorial's items endpoint takes a credential from three places, in this order: the
``session`` cookie, the subprotocol offered after ``bearer`` (a browser cannot set headers on a
WebSocket, and a subprotocol keeps the token out of URLs and access logs), or the ``token``
query parameter. Its reply echoes the value back (``Session cookie or query token value is: ...``).

Everything else asks this module: the endpoint finds the credential here and builds that reply
here, the log filter (ops/logs.py) redacts what :data:`SECRET_NAMES` and :data:`REVEALING_PATTERNS`
describe, and the trace (ops/trace.py) hides the values :func:`secret_values` finds in a scope.
Whether a credential is accepted is not for this module to say: ops/security.py decides that.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

COOKIE: Final = "session"
QUERY: Final = "token"
# The subprotocol that carries a token out of the URL: the client offers ["bearer", token]
# and the server accepts "bearer" (the token itself is never echoed back).
BEARER: Final = "bearer"

# Cookie and query parameter names whose values are secret wherever they are printed.
SECRET_NAMES: Final = frozenset({COOKIE, QUERY, "access_token"})

REPLY_PREFIX: Final = "Session cookie or query token value is: "

# Text, other than name=value pairs, that shows a credential: each pattern's group 1 is kept,
# what follows it is the secret.
REVEALING_PATTERNS: Final = (
    # The items endpoint's reply, wherever it is printed.
    re.compile("(" + re.escape(REPLY_PREFIX) + r")[^'\"\r\n]*"),
    # The bearer subprotocol: "bearer, TOKEN" (the header) and ['bearer', 'TOKEN'] (a repr).
    re.compile(r"(?i)(\bbearer['\"]?\s*,\s*(?-i:b)?['\"]?)[^'\",\s\]\)]+"),
    # A token in an asgi-chat.v1 frame: hello's and refresh's, and the guest token a welcome
    # hands out ({"token":"..."}, as the trace and the websockets library's DEBUG lines show it).
    re.compile(r'(\\?"token\\?"\s*:\s*\\?")[^"\\]+'),
    # An Authorization header's value, in case a proxy or client sends one.
    re.compile(r"(?i)(\bauthorization['\"]?\s*[:,]\s*(?-i:b)?['\"]?)[^'\"\r\n]+"),
)


@dataclass(frozen=True, slots=True)
class Credential:
    value: str
    source: Literal["cookie", "subprotocol", "query"]

    def __repr__(self) -> str:  # never print the value: reprs end up in logs and tracebacks
        return f"Credential(source={self.source!r}, value=<{len(self.value)} chars>)"


def find_credential(
    cookies: Mapping[str, str], query: Mapping[str, str], subprotocols: Iterable[str]
) -> Credential | None:
    """The ``session`` cookie, else the token after ``bearer`` in the subprotocols, else the
    ``token`` query parameter. Only a non-empty value counts: an empty cookie falls through."""
    if cookies.get(COOKIE):
        return Credential(cookies[COOKIE], "cookie")
    token = bearer_token(subprotocols)
    if token:
        return Credential(token, "subprotocol")
    if query.get(QUERY):
        return Credential(query[QUERY], "query")
    return None


def bearer_token(subprotocols: Iterable[str]) -> str | None:
    """The subprotocol offered right after ``bearer``, if any."""
    offered = list(subprotocols)
    if BEARER in offered:
        position = offered.index(BEARER)
        if position + 1 < len(offered):
            return offered[position + 1]
    return None


def reply(credential: Credential) -> str:
    """The tutorial's answer that shows the credential back to its owner."""
    return REPLY_PREFIX + credential.value


def secret_values(cookies: Mapping[str, str], query: Mapping[str, str], subprotocols: Iterable[str]) -> list[str]:
    """Every value in a handshake that is, or may be, a credential: for hiding it in output."""
    named = [value for pairs in (cookies, query) for name, value in pairs.items() if is_secret_name(name)]
    return [*named, bearer_token(subprotocols) or ""]


def is_secret_name(name: str) -> bool:
    return name.strip().lower() in SECRET_NAMES

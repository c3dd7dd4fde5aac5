"""Who is speaking on ``/chat/ws``: a ``hello`` made into a verified identity, and kept so.

The identity package (asgi_chat/identity/) verifies; this module decides what a connection
hears. A ``hello`` carries either an operator's token (a JWT: the user is its ``sub``), a guest
token this server issued (the same guest again), or only a name (a new guest, where guests are
allowed). Whatever the name a client asks for, a token's name wins: nobody can say hello as
someone else.

Close codes of the application's own range (RFC 6455 7.4.2: "4000-4999 ... reserved for private
use"), each telling a client what to do next:

- **4001** ``token expired``: the token's ``exp`` passed and no ``refresh`` came within
  ``ASGI_CHAT_TOKEN_GRACE``: get a new token and reconnect;
- **4401** ``unauthorized``: the token was refused (its reason in the ``error`` frame before the
  close), or none was given where guests are off: do not retry with the same token;
- **4403** ``disconnected``: a moderator ended every connection of this user: do not reconnect
  on your own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..asgi.errors import Refusal, TryAgainLater
from ..identity import BadName, Guests, Identity, KeysUnavailable, RoomPolicy, Unauthorized, Verifier
from ..identity.guests import is_guest_token
from .protocol import BadRequest

TOKEN_EXPIRED: Final = 4001
UNAUTHORIZED: Final = 4401
# 4403 (disconnected by a moderator) is the engine's: engine/people.py's Removed.


class TokenExpired(Refusal):
    code = TOKEN_EXPIRED


class NotAuthorized(Refusal):
    code = UNAUTHORIZED


@dataclass(frozen=True, slots=True)
class Welcome:
    """Who a hello made the connection: the identity, and for a guest the token that keeps it."""

    identity: Identity
    guest_token: str | None


class Authority:
    """The app's one judge of who is speaking: its verifier, guests and room policy."""

    def __init__(self, verifier: Verifier | None, guests: Guests | None, policy: RoomPolicy, grace: float) -> None:
        self.verifier = verifier  # None: no operator keys, guests only
        self.guests = guests  # None: guests off, a token is required
        self.policy = policy
        self.grace = grace  # seconds a connection outlives its token's exp without a refresh

    async def close(self) -> None:
        if self.verifier is not None:
            await self.verifier.close()

    async def hello(self, token: str | None, name: str | None) -> Welcome:
        """The identity a hello stands for; raises :class:`BadRequest` (``unauthorized``,
        ``bad_name``) or :class:`~asgi_chat.asgi.errors.TryAgainLater` (keys out of reach)."""
        try:
            return await self._welcome(token, name)
        except Unauthorized as error:
            raise BadRequest("unauthorized", str(error)) from None
        except BadName as error:
            raise BadRequest("bad_name", str(error)) from None
        except KeysUnavailable:
            raise TryAgainLater("the keys that verify tokens cannot be fetched now: try again") from None

    async def _welcome(self, token: str | None, name: str | None) -> Welcome:
        if token is not None and is_guest_token(token):
            guests = self._guests()
            identity = guests.verify(token, self._name(name))
            return Welcome(identity, guests.issue(identity.uid))  # a fresh token: 30 days from now
        if token is not None:
            if self.verifier is None:
                raise Unauthorized("algorithm not allowed", "this server is configured for guests only")
            return Welcome(await self.verifier.verify(token), None)
        identity, guest_token = self._guests().new(self._name(name))
        return Welcome(identity, guest_token)

    def _guests(self) -> Guests:
        if self.guests is None:
            raise BadRequest("unauthorized", "this server needs a token in hello: guests are off")
        return self.guests

    @staticmethod
    def _name(name: str | None) -> str:
        if name is None:
            raise BadRequest("bad_name", "a guest says hello with a name (user)")
        return name

    async def refresh(self, current: Identity, token: str) -> Identity:
        """The same user's new token, verified: another ``sub``, a guest token, or a refused token
        is ``unauthorized`` (and the connection then closes with 4401)."""
        if current.guest:
            raise BadRequest("unauthorized", "a guest has no token to refresh")
        if self.verifier is None or is_guest_token(token):
            raise BadRequest("unauthorized", "a refresh carries an operator's token")
        try:
            identity = await self.verifier.verify(token)
        except Unauthorized as error:
            raise BadRequest("unauthorized", str(error)) from None
        except KeysUnavailable:
            raise TryAgainLater("the keys that verify tokens cannot be fetched now: try again") from None
        if identity.uid != current.uid:
            raise BadRequest("unauthorized", "a refresh is for the same user (sub) as the hello")
        return identity


class Deadline:
    """A connection's end when its token expires: ``exp`` plus the grace, unless refreshed.

    One timer on the event loop (``call_later``), moved by each refresh; when it fires, ``end``
    closes the connection with 4001 from outside its own task (the member's end: engine/member.py).
    """

    def __init__(self, grace: float, end: Callable[[Refusal], None], wall: Callable[[], float] = time.time) -> None:
        self.grace = grace
        self._end = end
        self._wall = wall
        self._timer: asyncio.TimerHandle | None = None

    def set(self, expires_ms: int | None) -> None:
        self.cancel()
        if expires_ms is None:
            return
        # The leeway for clock skew applies when a token is verified, not here: the deadline is
        # the token's own exp, on this server's clock, plus the grace for a refresh to arrive.
        delay = max(expires_ms / 1000 - self._wall() + self.grace, 0.0)
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        self._end(TokenExpired("token expired: get a new token and reconnect"))

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

"""Who a member of a room is, as the engine and its stores know them: a :class:`Person`.

A person is its ``uid`` (a token's ``sub``, or a guest's server-made uid: who it *is*), its
display ``name`` (what others see, and may share with someone else) and whether it is a guest.
Presence is counted per uid, and say ids are deduplicated per uid: two people called Alice are
two presences, one Alice in two tabs is one, and nobody can use another's say ids. The tutorial
chat has no people, only its ``client #N`` names (engine/hub.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..asgi.errors import Refusal

# RFC 6455 7.4.2: 4000-4999 are "reserved for private use", for an application's own meanings.
DISCONNECTED = 4403


@dataclass(frozen=True, slots=True)
class Person:
    uid: str
    name: str
    guest: bool = False

    def shown(self) -> dict[str, object]:
        """As every frame that names a person shows them (``msg``, ``presence``, ``members``)."""
        return {"uid": self.uid, "user": self.name, "guest": self.guest}


class Removed(Refusal):
    """Every connection of a person, ended by a moderator or the operator (4403: do not come
    back on your own)."""

    code = DISCONNECTED

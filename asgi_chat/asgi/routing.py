"""Routes answer one question: does this path match, and with which (typed) path parameters?

A pattern is split on ``/`` into literal segments and ``{name}`` or ``{name:int}`` placeholders.
Matching works on the ASGI ``path``, which the server has already percent-decoded, so
``/items/a%2Fb/ws`` arrives as ``/items/a/b/ws``: four segments, no match. That is deliberate:
a parameter is always exactly one non-empty segment, and a trailing slash is another segment.
The one exception is a last placeholder ``{name:path}``, which takes the rest of the path
(``/api/{rest:path}``: everything under ``/api/``, for a part of the app that routes on its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from .errors import BadParameter, NoRoute
from .parsing import parse_int

E = TypeVar("E")
PathParams = dict[str, str | int]


@dataclass(frozen=True)
class Route(Generic[E]):
    pattern: str
    endpoint: E
    methods: frozenset[str] = frozenset({"GET", "HEAD"})  # HTTP only
    _segments: tuple[str, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_segments", tuple(self.pattern.split("/")))

    def match(self, path: str) -> PathParams | None:
        """The path parameters if ``path`` matches, else None.

        A placeholder that matches by shape but not by type (``/ws/abc`` for ``{client_id:int}``)
        raises :class:`BadParameter` naming the parameter: the route is right, the value wrong.
        """
        parts = path.split("/")
        if self._segments[-1].endswith(":path}"):  # the rest of the path, as one parameter
            head = len(self._segments) - 1
            if len(parts) <= head:
                return None
            parts = [*parts[:head], "/".join(parts[head:])]
        if len(parts) != len(self._segments):
            return None
        raw: dict[str, tuple[str, str]] = {}
        for pattern, part in zip(self._segments, parts, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not part:
                    return None
                name, _, kind = pattern[1:-1].partition(":")
                raw[name] = (kind, part)
            elif pattern != part:
                return None
        return {name: _convert(name, kind, part) for name, (kind, part) in raw.items()}


def _convert(name: str, kind: str, text: str) -> str | int:
    if kind == "path":
        return text
    if kind == "int":
        try:
            return parse_int(text)
        except ValueError:
            raise BadParameter(f"invalid {name}: expected an integer") from None
    return text


@dataclass(frozen=True)
class Match(Generic[E]):
    route: Route[E]
    params: PathParams


def resolve(routes: Sequence[Route[E]], path: str) -> Match[E]:
    """The first route that matches ``path``; :class:`NoRoute` when none does."""
    for route in routes:
        params = route.match(path)
        if params is not None:
            return Match(route, params)
    raise NoRoute("not found")

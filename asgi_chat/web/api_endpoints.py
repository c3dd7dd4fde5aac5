"""The HTTP API's endpoints (docs/api.md): JSON in, calls on the rooms engine, JSON out.

Each is ``async def endpoint(call, **path_params) -> Response``; web/api.py checks the key and
the rate, finds the endpoint in :data:`ROUTES` and turns every error into one JSON shape,
``{"error": CODE, "message": TEXT}``. Request fields are checked by the same parsers as the
``asgi-chat.v1`` requests (endpoints/protocol.py): a text, a room, a uid, a ban's seconds are
refused here for exactly what a WebSocket request would be refused for.

Who speaks: by default :data:`SYSTEM`, the person ``{"uid": "system", "user": "system",
"guest": false}``: clients tell an API announcement by its uid ``system`` (no guest uid has that
form, and ``system`` is a reserved name; an operator issues no token whose ``sub`` is
``system``). With ``uid`` (and ``user``, its name), the message is that person's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Protocol

from ..asgi.app import HttpRequest
from ..asgi.parsing import header_values, parse_int, parse_query
from ..asgi.responses import Response
from ..asgi.routing import Route
from ..endpoints.fields import MAX_WHOLE, ROOM_NAME, BadRequest, encodable
from ..endpoints.moderation import carry_out
from ..endpoints.protocol import MAX_HISTORY_LIMIT, MAX_ID_CHARS, MAX_UID_CHARS, Moderate, Say, parse_request
from ..engine.people import DISCONNECTED, Person
from ..engine.rooms import Rooms

logger = logging.getLogger("asgi_chat")

SYSTEM = Person(uid="system", name="system")  # who speaks for the API unless told otherwise
MAX_NAME_CHARS = 64
DEFAULT_PAGE = 50  # messages in a history page unless ``limit`` says otherwise
MODERATION = ("kick", "ban", "unban", "mute", "unmute", "redact")


class ApiSettings(Protocol):
    """What the API reads of the settings (ops/settings.py's Settings has them)."""

    @property
    def max_text_chars(self) -> int: ...
    @property
    def api_max_body_bytes(self) -> int: ...


class ApiContext(Protocol):
    """What the API uses of the app's context (asgi_chat/context.py's Context is one)."""

    @property
    def settings(self) -> ApiSettings: ...
    @property
    def rooms(self) -> Rooms: ...


class ApiError(Exception):
    """An answer other than success: its status, its code, a message for the caller, headers."""

    def __init__(self, status: int, code: str, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def answer(status: int, data: object, headers: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(status, body, "application/json", ((b"cache-control", b"no-store"), *headers))


@dataclass(frozen=True)
class Call:
    """One API request as an endpoint sees it: the request, the app's context, whose key it was."""

    request: HttpRequest
    ctx: ApiContext
    owner: str  # the key's fingerprint (web/api.py), never the key

    async def fields(self, allowed: frozenset[str]) -> dict[str, object]:
        """The JSON object in the body (an empty body: no fields); 415 for another media type."""
        body = await self.request.body(self.ctx.settings.api_max_body_bytes)
        if not body.strip():
            return {}
        kinds = header_values(self.request.headers, b"content-type")
        kind = kinds[0].split(b";")[0].strip().lower() if kinds else b""
        if kind != b"application/json":
            raise ApiError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "send application/json")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad_json", "the body is not valid JSON") from None
        if not isinstance(value, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad_request", "the body must be a JSON object")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ApiError(HTTPStatus.BAD_REQUEST, "bad_request", f"unknown field {unknown[0][:40]!r}")
        return value

    def query(self) -> dict[str, str]:
        return parse_query(self.request.query_string)


def _room(room: str) -> str:
    if not ROOM_NAME.fullmatch(room):
        raise BadRequest("bad_room", "a room name is 1 to 64 of a-z, 0-9, _ and -, starting with a letter or digit")
    return room


def _string(fields: dict[str, object], name: str, most: int) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= most:
        raise BadRequest("bad_request", f"{name} must be a string of 1 to {most} characters")
    return encodable(value, name)


def api_say_id(idempotency_key: str) -> str:
    """The say id an idempotency key is deduplicated by: 68 characters, longer than any
    WebSocket say id may be (64), so the two never meet, whoever the message is from. The same
    for every API key: a retry after a key was rotated is still the same publish."""
    return "api:" + hashlib.sha256(idempotency_key.encode()).hexdigest()


# --- the endpoints -----------------------------------------------------------------------------


async def publish(call: Call, room: str) -> Response:
    """``POST /rooms/{room}/messages``: 201 with the offset; 200 with the first one for an
    idempotency key already used in the room within ASGI_CHAT_DEDUP_SECONDS (nothing published)."""
    fields = await call.fields(frozenset({"text", "user", "uid", "idempotency_key"}))
    frame = {"type": "say", "room": _room(room), "text": fields.get("text")}
    say = parse_request(json.dumps(frame), call.ctx.settings.max_text_chars)
    assert isinstance(say, Say)
    person = _person(fields)
    key = _string(fields, "idempotency_key", MAX_ID_CHARS)
    store = call.ctx.rooms.store
    offset, published = await store.append(say.room, person, say.text, None if key is None else api_say_id(key))
    window = await store.window(say.room, 0, 0)
    status = HTTPStatus.CREATED if published else HTTPStatus.OK
    return answer(status, {"room": say.room, "epoch": window.epoch, "offset": offset})


def _person(fields: dict[str, object]) -> Person:
    uid, name = _string(fields, "uid", MAX_UID_CHARS), _string(fields, "user", MAX_NAME_CHARS)
    if uid is None:
        if name is not None:
            raise BadRequest("bad_request", "user needs a uid: the person's name alone does not say who it is")
        return SYSTEM
    return Person(uid=uid, name=name or uid)


async def history(call: Call, room: str) -> Response:
    """``GET /rooms/{room}/messages?before=N&limit=L``: a page of retained messages, ascending."""
    query = call.query()
    before = _whole(query, "before", MAX_WHOLE)
    limit = _whole(query, "limit", DEFAULT_PAGE)
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise BadRequest("bad_request", f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    messages = await call.ctx.rooms.store.before(_room(room), before, limit)
    return answer(HTTPStatus.OK, {"room": room, "messages": [json.loads(stored.frame) for stored in messages]})


def _whole(query: dict[str, str], name: str, default: int) -> int:
    if name not in query:
        return default
    try:
        value = parse_int(query[name])
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_WHOLE:
        raise BadRequest("bad_request", f"{name} must be a whole number from 0 to 2**53 - 1")
    return value


async def presence(call: Call, room: str) -> Response:
    """``GET /rooms/{room}/presence``: the people in the room on every worker."""
    people = await call.ctx.rooms.store.present(_room(room))
    return answer(HTTPStatus.OK, {"room": room, "members": [person.shown() for person in people], "count": len(people)})


async def rooms(call: Call) -> Response:
    """``GET /rooms?after=NAME&limit=L``: the rooms held, by name, with their people and top
    offsets; ``next`` is the ``after`` of the next page (null: the last page)."""
    query = call.query()
    after = query.get("after", "")
    limit = _whole(query, "limit", DEFAULT_PAGE)
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise BadRequest("bad_request", f"limit must be 1 to {MAX_HISTORY_LIMIT}")
    page = await call.ctx.rooms.store.rooms(after, limit)
    shown = [{"room": held.room, "members": held.people, "top": held.top} for held in page]
    return answer(HTTPStatus.OK, {"rooms": shown, "next": page[-1].room if len(page) == limit else None})


async def disconnect(call: Call, uid: str) -> Response:
    """``POST /users/{uid}/disconnect``: every connection of ``uid``, on every worker, closes with 4403."""
    fields = await call.fields(frozenset({"reason"}))
    request = _moderation(call, {**fields, "type": "disconnect", "uid": uid})
    await call.ctx.rooms.disconnect(request.uid, request.reason)
    logger.warning("api: disconnect user %r by key %s: %s", request.uid, call.owner, request.reason or "-")
    return answer(HTTPStatus.OK, {"uid": request.uid, "code": DISCONNECTED})


def moderation(action: str) -> Callable[[Call, str], Awaitable[Response]]:
    """``POST /rooms/{room}/{action}``: as a moderator's request on /chat/ws, by ``system``."""

    async def moderate(call: Call, room: str) -> Response:
        fields = await call.fields(frozenset({"uid", "seconds", "offset", "reason"}))
        request = _moderation(call, {**fields, "type": action, "room": _room(room)})
        if not await carry_out(call.ctx.rooms, request, SYSTEM.uid):
            message = f"room {request.room} retains no message {request.offset}"
            raise ApiError(HTTPStatus.NOT_FOUND, "not_found", message)
        target = f"message {request.offset}" if action == "redact" else f"user {request.uid!r}"
        logger.warning("api: %s %s in room %s by key %s: %s", action, target, room, call.owner, request.reason or "-")
        shown: dict[str, object] = {"action": action, "room": room}
        shown.update({"offset": request.offset} if action == "redact" else {"uid": request.uid})
        return answer(HTTPStatus.OK, shown)

    moderate.__name__ = action
    return moderate


def _moderation(call: Call, frame: dict[str, object]) -> Moderate:
    request = parse_request(json.dumps(frame), call.ctx.settings.max_text_chars)
    assert isinstance(request, Moderate)
    return request


ApiEndpoint = Callable[..., Awaitable[Response]]
GET = frozenset({"GET", "HEAD"})
POST = frozenset({"POST"})
PREFIX = "/api/v1"

# The API's one route table; openapi.py describes each route, and a test checks that it does.
ROUTES: tuple[Route[ApiEndpoint], ...] = (
    Route(f"{PREFIX}/rooms", rooms, GET),
    Route(f"{PREFIX}/rooms/{{room}}/messages", publish, POST),
    Route(f"{PREFIX}/rooms/{{room}}/messages", history, GET),
    Route(f"{PREFIX}/rooms/{{room}}/presence", presence, GET),
    *(Route(f"{PREFIX}/rooms/{{room}}/{action}", moderation(action), POST) for action in MODERATION),
    Route(f"{PREFIX}/users/{{uid}}/disconnect", disconnect, POST),
)

"""The HTTP API under /api/v1/ through the app (memory store): every endpoint and every error
status, the body read in chunks with its limit, idempotency, the key kept out of logs, and the
OpenAPI document. Across two apps on one Redis: tests/asgi/test_api_redis.py."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator
from asgiref.typing import ASGIReceiveEvent
from openapi_spec_validator import validate

from asgi_chat import ChatApp, testing
from asgi_chat.asgi.body import BadLength, declared_length
from asgi_chat.asgi.routing import Route
from asgi_chat.ops.settings import SettingsError
from asgi_chat.web.api_endpoints import ROUTES
from asgi_chat.web.openapi import document
from tests.asgi.rooms_helpers import ROOM, in_room, rooms_app
from tests.helpers import TIMEOUT, http_get

KEY = "k3y-0f-the-0perator-that-must-never-be-logged"
AUTH = (b"authorization", f"Bearer {KEY}".encode())
JSON = (b"content-type", b"application/json")
Reply = tuple[int, dict[bytes, bytes], Any]


def api_app(tmp_path: Path, **settings: Any) -> ChatApp:
    keys = tmp_path / "api-keys"
    keys.write_text(f"\n{KEY}\nanother-key\n")
    return rooms_app(api_keys_file=str(keys), **settings)


@pytest.fixture
def app(tmp_path: Path) -> ChatApp:
    return api_app(tmp_path, api_rate_per_second=0)


async def call(
    app: ChatApp,
    method: str,
    path: str,
    body: object = None,
    headers: Sequence[tuple[bytes, bytes]] = (AUTH, JSON),
    chunks: Sequence[bytes] | None = None,
) -> Reply:
    """One request; the body as JSON, or as raw ``chunks`` each sent as one http.request."""
    if chunks is None:
        chunks = [b"" if body is None else json.dumps(body).encode()]
    scope = testing.http_scope(path, method=method, headers=headers)
    communicator = ApplicationCommunicator(app, scope)
    for n, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": n < len(chunks) - 1})
    start = await communicator.receive_output(TIMEOUT)
    reply = await communicator.receive_output(TIMEOUT)
    await communicator.wait(TIMEOUT)
    content = reply["body"]
    return start["status"], dict(start["headers"]), json.loads(content) if content else None


async def publish(app: ChatApp, room: str = ROOM, **fields: object) -> Reply:
    return await call(app, "POST", f"/api/v1/rooms/{room}/messages", {"text": "hello", **fields})


# --- every endpoint --------------------------------------------------------------------------


async def test_a_publish_is_answered_with_its_position_and_read_back_in_history(app: ChatApp) -> None:
    status, headers, first = await publish(app, text="one")
    assert status == 201
    assert headers[b"content-type"] == b"application/json"
    assert first == {"room": ROOM, "epoch": first["epoch"], "offset": 1}
    assert (await publish(app, text="two"))[2]["offset"] == 2
    status, _, page = await call(app, "GET", f"/api/v1/rooms/{ROOM}/messages")
    assert status == 200
    assert page["room"] == ROOM
    assert [(m["offset"], m["text"], m["uid"], m["user"]) for m in page["messages"]] == [
        (1, "one", "system", "system"),
        (2, "two", "system", "system"),
    ]
    _, _, older = await call(app, "GET", f"/api/v1/rooms/{ROOM}/messages?before=2&limit=1")
    assert [m["offset"] for m in older["messages"]] == [1]


async def test_a_publish_as_a_person_carries_their_uid_and_name(app: ChatApp) -> None:
    await publish(app, uid="u-7", user="Ada")
    _, _, page = await call(app, "GET", f"/api/v1/rooms/{ROOM}/messages")
    assert page["messages"][0] | {"ts": 0} == {
        "type": "msg", "room": ROOM, "offset": 1, "ts": 0, "user": "Ada", "uid": "u-7", "guest": False, "text": "hello"
    }  # fmt: skip


async def test_the_same_idempotency_key_publishes_once(app: ChatApp) -> None:
    status, _, first = await publish(app, idempotency_key="job-42", text="once")
    again = await publish(app, idempotency_key="job-42", text="a different text: the key wins")
    assert (status, again[0], again[2]) == (201, 200, first)
    assert (await publish(app, idempotency_key="job-43"))[2]["offset"] == 2
    _, _, page = await call(app, "GET", f"/api/v1/rooms/{ROOM}/messages")
    assert [m["text"] for m in page["messages"]] == ["once", "hello"]


async def test_an_idempotency_key_is_not_a_websocket_say_id(app: ChatApp) -> None:
    (alice,) = await in_room(app, "alice")
    await publish(app, idempotency_key="x1")
    await alice.expect("msg")
    await alice.say(ROOM, "mine", id="x1")  # the same string as a say id: another say
    assert (await alice.expect("msg"))["offset"] == 2


async def test_a_publish_reaches_the_rooms_members(app: ChatApp) -> None:
    alice, bob = await in_room(app, "alice", "bob")
    await publish(app, text="announcement")
    for client in (alice, bob):
        frame = await client.expect("msg")
        assert (frame["uid"], frame["user"], frame["text"]) == ("system", "system", "announcement")


async def test_a_publish_creates_the_room_for_later_joiners(app: ChatApp) -> None:
    await publish(app, room="new-room", text="first words")
    (alice,) = await in_room(app, "alice", room="new-room")
    await alice.request("history", room="new-room", before=10, limit=10)
    assert [m["text"] for m in (await alice.expect("history"))["messages"]] == ["first words"]


async def test_presence_lists_the_people_in_the_room(app: ChatApp) -> None:
    await in_room(app, "alice", "bob")
    status, _, body = await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence")
    assert status == 200
    assert body["count"] == 2
    assert sorted(member["user"] for member in body["members"]) == ["alice", "bob"]
    assert (await call(app, "GET", "/api/v1/rooms/empty/presence"))[2] == {"room": "empty", "members": [], "count": 0}


async def test_rooms_are_listed_by_name_with_people_and_tops_in_pages(app: ChatApp) -> None:
    await in_room(app, "alice", "bob", room="beta")
    await publish(app, room="alpha", text="one")
    await publish(app, room="gamma", text="one")
    await publish(app, room="gamma", text="two")
    status, _, first = await call(app, "GET", "/api/v1/rooms?limit=2")
    assert status == 200
    assert first == {
        "rooms": [{"room": "alpha", "members": 0, "top": 1}, {"room": "beta", "members": 2, "top": 0}],
        "next": "beta",
    }
    _, _, rest = await call(app, "GET", "/api/v1/rooms?limit=2&after=beta")
    assert rest == {"rooms": [{"room": "gamma", "members": 0, "top": 2}], "next": None}


async def test_disconnect_closes_every_connection_of_the_user_with_4403(app: ChatApp) -> None:
    (alice,) = await in_room(app, "alice")
    uid = (await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence"))[2]["members"][0]["uid"]
    status, _, body = await call(app, "POST", f"/api/v1/users/{uid}/disconnect", {"reason": "bye"})
    assert (status, body) == (200, {"uid": uid, "code": 4403})
    assert (await alice.closed())[0] == 4403


async def test_moderation_kick_mute_and_redact(app: ChatApp) -> None:
    alice, bob = await in_room(app, "alice", "bob")
    people = (await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence"))[2]["members"]
    bob_uid = next(member["uid"] for member in people if member["user"] == "bob")
    status, _, body = await call(app, "POST", f"/api/v1/rooms/{ROOM}/mute", {"uid": bob_uid, "seconds": 60})
    assert (status, body) == (200, {"action": "mute", "room": ROOM, "uid": bob_uid})
    assert (await publish(app, uid=bob_uid, user="bob"))[0] == 403  # muted: as that person, refused
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/unmute", {"uid": bob_uid}))[0] == 200
    await publish(app, text="to redact")
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/redact", {"offset": 1}))[0] == 200
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/redact", {"offset": 9}))[0] == 404
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/kick", {"uid": bob_uid, "reason": "spam"}))[0] == 200
    assert (await bob.until("kicked"))[1]["by"] == "system"
    ban = {"uid": bob_uid, "seconds": 60}
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/ban", ban))[0] == 200
    assert (await call(app, "POST", f"/api/v1/rooms/{ROOM}/unban", {"uid": bob_uid}))[0] == 200
    await alice.until("redacted")


# --- every error status ----------------------------------------------------------------------

NO_AUTH: tuple[tuple[bytes, bytes], ...] = (JSON,)
WRONG = ((b"authorization", b"Bearer not-a-key"), JSON)
BASIC = ((b"authorization", b"Basic " + KEY.encode()), JSON)
TEXT = (AUTH, (b"content-type", b"text/plain"))
MESSAGES = f"/api/v1/rooms/{ROOM}/messages"

ERRORS: list[tuple[str, str, object, Sequence[tuple[bytes, bytes]], int, str]] = [
    ("POST", MESSAGES, {"text": "hi"}, NO_AUTH, 401, "unauthorized"),
    ("POST", MESSAGES, {"text": "hi"}, WRONG, 401, "unauthorized"),
    ("POST", MESSAGES, {"text": "hi"}, BASIC, 401, "unauthorized"),  # the key, but not as Bearer
    ("GET", "/api/v1/nothing/here", None, (AUTH,), 404, "not_found"),
    ("GET", "/api/v2/rooms", None, (AUTH,), 404, "not_found"),
    ("DELETE", MESSAGES, None, (AUTH,), 405, "method_not_allowed"),
    ("GET", f"/api/v1/rooms/{ROOM}/kick", None, (AUTH,), 405, "method_not_allowed"),
    ("POST", MESSAGES, "not an object", (AUTH, JSON), 400, "bad_request"),
    ("POST", MESSAGES, {"text": ""}, (AUTH, JSON), 400, "bad_request"),
    ("POST", MESSAGES, {"text": 3}, (AUTH, JSON), 400, "bad_request"),
    ("POST", MESSAGES, {"text": "x" * 4001}, (AUTH, JSON), 400, "too_large"),  # ASGI_CHAT_MAX_TEXT_CHARS
    ("POST", MESSAGES, {"text": "hi", "colour": "red"}, (AUTH, JSON), 400, "bad_request"),  # unknown field
    ("POST", MESSAGES, {"text": "hi", "user": "Ada"}, (AUTH, JSON), 400, "bad_request"),  # a name without a uid
    ("POST", "/api/v1/rooms/Not_A_Room/messages", {"text": "hi"}, (AUTH, JSON), 400, "bad_room"),
    ("GET", f"{MESSAGES}?limit=0", None, (AUTH,), 400, "bad_request"),
    ("GET", f"{MESSAGES}?before=-1", None, (AUTH,), 400, "bad_request"),
    ("POST", f"/api/v1/rooms/{ROOM}/ban", {"uid": "u"}, (AUTH, JSON), 400, "bad_request"),  # no seconds
    ("POST", MESSAGES, {"text": "hi"}, TEXT, 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), ERRORS)
async def test_errors_are_one_json_shape_with_the_right_status(
    app: ChatApp, method: str, path: str, body: object, headers: Sequence[tuple[bytes, bytes]], status: int, code: str
) -> None:
    got, response_headers, reply = await call(app, method, path, body, headers)
    assert (got, reply["error"]) == (status, code)
    assert isinstance(reply["message"], str)
    assert reply["message"]
    if status == 401:
        assert response_headers[b"www-authenticate"].startswith(b"Bearer")
    if status == 405:
        assert response_headers[b"allow"] in (b"GET, HEAD, POST", b"POST")


async def test_bad_json_is_400(app: ChatApp) -> None:
    status, _, reply = await call(app, "POST", MESSAGES, headers=(AUTH, JSON), chunks=[b'{"text": '])
    assert (status, reply["error"]) == (400, "bad_json")


async def test_the_rate_per_key_is_429_with_retry_after(tmp_path: Path) -> None:
    app = api_app(tmp_path, api_rate_per_second=2)
    statuses = [(await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence"))[0] for _ in range(3)]
    status, headers, reply = await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence")
    assert statuses == [200, 200, 429]
    assert status == 429
    assert reply["error"] == "rate_limited"
    assert int(headers[b"retry-after"]) >= 1
    other = ((b"authorization", b"Bearer another-key"),)  # another key has its own bucket
    assert (await call(app, "GET", f"/api/v1/rooms/{ROOM}/presence", headers=other))[0] == 200


async def test_a_store_that_cannot_be_reached_is_503(app: ChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    from asgi_chat.engine.stores import StoreUnavailable

    async def down(*args: object) -> None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(app.ctx.rooms.store, "append", down)
    status, _, reply = await publish(app)
    assert (status, reply["error"]) == (503, "unavailable")


async def test_while_off_every_path_under_api_is_404(tmp_path: Path) -> None:
    app = rooms_app()
    for path in ("/api/v1/openapi.json", MESSAGES, "/api/anything"):
        status, headers, _ = await http_get(app, path, headers=[AUTH])
        assert status == 404
        assert headers[b"content-type"].startswith(b"text/plain")


# --- the body: chunks, a limit, a disconnect --------------------------------------------------


class Counted:
    """A receive that hands out ``chunks`` and counts how many the app asked for."""

    def __init__(self, chunks: Sequence[bytes], then_disconnect: bool = False) -> None:
        self.chunks, self.asked, self.then_disconnect = list(chunks), 0, then_disconnect

    async def __call__(self) -> ASGIReceiveEvent:
        self.asked += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        more = bool(self.chunks) or self.then_disconnect
        return {"type": "http.request", "body": chunk, "more_body": more}


async def run(app: ChatApp, receive: Counted, headers: Sequence[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(testing.http_scope(MESSAGES, method="POST", headers=headers), receive, send)
    return sent


async def test_a_body_over_the_limit_is_refused_without_reading_the_rest(tmp_path: Path) -> None:
    app = api_app(tmp_path, api_max_body_bytes=100, api_rate_per_second=0)
    receive = Counted([b"x" * 60] * 50)  # chunked: no Content-Length, 3000 bytes in all
    sent = await run(app, receive, (AUTH, JSON))
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"] == "too_large"
    assert receive.asked == 2  # 120 bytes read: the 48 chunks after them were never asked for


async def test_a_content_length_over_the_limit_is_refused_before_reading(tmp_path: Path) -> None:
    app = api_app(tmp_path, api_max_body_bytes=100, api_rate_per_second=0)
    receive = Counted([b"x" * 60] * 50)
    sent = await run(app, receive, (AUTH, JSON, (b"content-length", b"3000")))
    assert sent[0]["status"] == 413
    assert receive.asked == 0


async def test_a_body_in_chunks_within_the_limit_is_read_whole(app: ChatApp) -> None:
    body = json.dumps({"text": "in pieces"}).encode()
    receive = Counted([body[:5], body[5:12], body[12:]])
    sent = await run(app, receive, (AUTH, JSON))
    assert sent[0]["status"] == 201
    assert receive.asked == 3


async def test_a_client_gone_while_the_body_is_read_gets_no_response(app: ChatApp) -> None:
    receive = Counted([b'{"text": "never fin'], then_disconnect=True)
    assert await run(app, receive, (AUTH, JSON)) == []
    _, _, page = await call(app, "GET", MESSAGES)
    assert page["messages"] == []


@pytest.mark.parametrize(
    ("headers", "length"),
    [
        ([], None),  # chunked, or HTTP/2 without a length: counted as read
        ([(b"content-length", b"12")], 12),
        ([(b"Content-Length", b" 12 ")], 12),  # names in any case, values with spaces around
        ([(b"content-length", b"12"), (b"content-length", b"12")], 12),  # repeated, the same
    ],
)
def test_declared_length(headers: list[tuple[bytes, bytes]], length: int | None) -> None:
    assert declared_length(headers) == length


@pytest.mark.parametrize("values", [[b"12", b"13"], [b"-1"], [b"+5"], [b"1e3"], [b"twelve"], [b""]])
def test_a_length_that_is_no_length_is_refused(values: list[bytes]) -> None:
    with pytest.raises(BadLength):
        declared_length([(b"content-length", value) for value in values])


# --- the key stays out of logs; the OpenAPI document -----------------------------------------


async def test_the_key_never_appears_in_a_log(app: ChatApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    (_alice,) = await in_room(app, "alice")
    await publish(app)
    await call(app, "POST", f"/api/v1/rooms/{ROOM}/kick", {"uid": "someone", "reason": "x"})
    await call(app, "POST", MESSAGES, {"text": "hi"}, ((b"authorization", f"Bearer {KEY}x".encode()),))
    assert caplog.records  # the kick and the refusal were logged
    assert all(KEY not in record.getMessage() and KEY not in str(record.args) for record in caplog.records)
    assert KEY not in caplog.text


async def test_the_openapi_document_validates_and_lists_every_route(app: ChatApp) -> None:
    status, _, served = await call(app, "GET", "/api/v1/openapi.json")
    assert status == 200
    assert served == json.loads(json.dumps(document()))
    validate(served)
    described = {(path, method.upper()) for path, item in served["paths"].items() for method in item}
    routed = {(route.pattern, method) for route in ROUTES for method in route.methods if method != "HEAD"}
    assert described == routed | {("/api/v1/openapi.json", "GET")}


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/rooms", {"rest": "v1/rooms"}),
        ("/api/x", {"rest": "x"}),
        ("/api/v1/rooms/", {"rest": "v1/rooms/"}),  # the rest, trailing slash and all
        ("/api/", None),  # a placeholder is never empty
        ("/api", None),
        ("/apis/v1", None),
    ],
)
def test_a_path_placeholder_takes_the_rest_of_the_path(path: str, params: dict[str, str] | None) -> None:
    assert Route("/api/{rest:path}", None).match(path) == params


@pytest.mark.parametrize("content", [None, "\n  \n"])
def test_a_keys_file_that_cannot_be_read_or_lists_no_key_stops_the_start(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "api-keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SettingsError, match="ASGI_CHAT_API_KEYS_FILE"):
        rooms_app(api_keys_file=str(path))

"""The client against a scripted server: which closes it comes back after (with backoff), which it
stops on (and says why), the token it sends and refreshes (on the live connection, before it
expires, and after a 4001), its states, the bound on its tries;
and what a reconnect sends: each room rejoined with ``since`` its position, each say not acked
resent with its same id, a say whose own line came not resent at all.

The server is a ``websockets`` server in this process whose connections each play one step of a
script, so any close code can be had on demand, the identity issue's 4001, 4401 and 4403
included (asgi_chat itself does not send those yet). What asgi_chat does today is in
tests/e2e/test_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from asgi_chat.client import (
    Backoff,
    Client,
    Closed,
    Disconnected,
    Error,
    Event,
    Joined,
    Message,
    Refreshed,
    State,
    Welcome,
)
from asgi_chat.endpoints.protocol import SUBPROTOCOL
from tests.helpers import TIMEOUT, free_port

QUICK = Backoff(base=0.01, cap=0.02, attempts=5, stable=0.0)
RATE = "too many messages: the limit is 20 per second"

Step = Callable[[ServerConnection], Awaitable[None]]


class Scripted:
    """Connection number n plays ``steps[n]`` (the last step for every later one), after reading
    the client's hello, which it keeps; ``refuse`` answers the first handshakes with an HTTP status."""

    def __init__(self, steps: Sequence[Step], refuse: Sequence[HTTPStatus] = ()) -> None:
        self.steps = list(steps)
        self.refuse = list(refuse)
        self.hellos: list[dict[str, Any]] = []
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def check(self, connection: ServerConnection, request: Request) -> Response | None:
        return connection.respond(self.refuse.pop(0), "not now\n") if self.refuse else None

    async def handler(self, ws: ServerConnection) -> None:
        self.hellos.append(json.loads(await ws.recv()))
        await self.steps[min(len(self.hellos), len(self.steps)) - 1](ws)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Scripted]:
        subprotocols = [Subprotocol(SUBPROTOCOL)]
        async with serve(self.handler, "127.0.0.1", self.port, subprotocols=subprotocols, process_request=self.check):
            yield self


async def welcome(ws: ServerConnection) -> None:
    await ws.send(json.dumps({"type": "welcome", "user": "ada"}))


def close_after_welcome(code: int | None, reason: str = "") -> Step:
    """Welcome, then close with ``code`` (None: drop the TCP connection, no close frame)."""

    async def step(ws: ServerConnection) -> None:
        await welcome(ws)
        if code is None:
            ws.transport.abort()
        else:
            await ws.close(code, reason)

    return step


async def serve_rooms(ws: ServerConnection, close_on_say: tuple[int, str] | None = None) -> None:
    """Welcome, then answer joins (empty rooms) and says, or close at the first say."""
    await welcome(ws)
    offset = 0
    async for text in ws:
        request = json.loads(text)
        if request["type"] == "join":
            joined = {"type": "joined", "room": request["room"], "epoch": "e1", "offset": 0, "count": 1}
            await ws.send(json.dumps({**joined, "presence": ["ada"], "id": request["id"]}))
        elif request["type"] == "say" and close_on_say is not None:
            await ws.close(*close_on_say)
        elif request["type"] == "say":
            offset += 1
            await ws.send(json.dumps({"type": "ack", "room": request["room"], "offset": offset, "id": request["id"]}))


async def events_until_closed(chat: Client) -> tuple[list[Event], Closed]:
    """Every event up to the end of the iteration, which must be a Closed: the events and it."""
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        try:
            async for event in chat:
                events.append(event)
        except Closed as closed:
            return events, closed
    raise AssertionError(f"the events ended without a Closed: {events}")


def state_of(chat: Client) -> State:
    """``chat.state`` afresh (mypy would keep what an earlier assert narrowed it to)."""
    return chat.state


async def next_events(chat: Client, count: int) -> list[Event]:
    async with asyncio.timeout(TIMEOUT):
        return [await anext(chat) for _ in range(count)]


@pytest.mark.parametrize(
    ("code", "reason"),
    [(1001, ""), (1011, ""), (1012, ""), (1013, "slow consumer"), (1014, ""), (1008, RATE), (None, "")],
    ids=["1001", "1011", "1012", "1013", "1014", "1008-rate", "dropped"],
)
async def test_after_a_close_that_may_pass_the_client_comes_back_after_a_backoff(code: int | None, reason: str) -> None:
    script = Scripted([close_after_welcome(code, reason), serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        assert (await chat.join("lobby")).room == "lobby"  # answered by the second connection
        assert chat.state is State.CONNECTED
        welcomed, dropped, again = await next_events(chat, 3)
        assert welcomed == again == Welcome("ada")
        assert isinstance(dropped, Disconnected)
        assert (dropped.code, dropped.reason) == (code or 1006, reason)
        assert dropped.retry_in is not None
        assert 0 <= dropped.retry_in <= QUICK.ceiling(0)
    assert len(server.hellos) == 2


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1000, ""),
        (1003, "text frames only"),
        (1008, "origin not allowed"),
        (1009, "message too big"),
        (4401, "unauthorized"),
        (4403, "disconnected by a moderator"),
    ],
)
async def test_after_a_close_that_would_happen_again_the_client_stops_and_says_why(code: int, reason: str) -> None:
    async def closing(ws: ServerConnection) -> None:
        await serve_rooms(ws, close_on_say=(code, reason))

    async with Scripted([closing]).running() as server:
        chat = Client(server.url, user="ada", backoff=QUICK)
        async with chat:
            await chat.join("lobby")
            with pytest.raises(Closed) as refused:
                await chat.say("lobby", "hi")  # waiting for its ack: told at once, not left hanging
            assert (refused.value.code, refused.value.reason) == (code, reason)
            events, closed = await events_until_closed(chat)
            assert events[-1] == Disconnected(code, reason, None)
            assert closed is refused.value
            assert chat.state is State.CLOSED
    assert len(server.hellos) == 1  # not one try more


async def test_a_token_goes_in_hello_and_an_expired_one_is_refreshed_before_coming_back() -> None:
    tokens = iter(["token-1", "token-2"])

    async def get_token() -> str:
        return next(tokens)

    script = Scripted([close_after_welcome(4001, "token expired"), serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", get_token=get_token, backoff=QUICK) as chat:
        await chat.join("lobby")
        assert await asyncio.wait_for(chat.say("lobby", "hi"), TIMEOUT) == 1
    assert [hello.get("token") for hello in server.hellos] == ["token-1", "token-2"]


async def test_a_guest_token_from_a_welcome_goes_in_every_later_hello() -> None:
    """Identity gives a guest a token in its welcome, to present next time and stay the same
    guest: without it a reconnect would be another user, and a resent say published twice."""

    async def guest_welcome(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "welcome", "user": "ada", "uid": "g-1", "guest": True, "token": "t-g1"}))
        await ws.close(1012)

    script = Scripted([guest_welcome, serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        first = await next_events(chat, 1)
        await chat.join("lobby")  # answered by the second connection
    assert first == [Welcome("ada", "g-1", True, None, "t-g1")]
    assert "t-g1" not in repr(first)
    assert [hello.get("token") for hello in server.hellos] == [None, "t-g1"]


async def test_a_guest_token_refused_is_dropped_and_the_client_comes_back_as_a_new_guest() -> None:
    async def guest_welcome(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "welcome", "user": "ada", "uid": "g-1", "guest": True, "token": "t-g1"}))
        await ws.close(1012)  # a restart, with another secret

    async def refuse_token(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": "bad signature"}))
        await ws.close(4401, "unauthorized")

    script = Scripted([guest_welcome, refuse_token, serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        await chat.join("lobby")  # answered by the third connection
    assert [hello.get("token") for hello in server.hellos] == [None, "t-g1", None]


async def test_an_operator_token_refused_stops_the_client() -> None:
    async def refuse_token(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "error", "code": "unauthorized", "message": "token expired long ago"}))
        await ws.close(4401, "unauthorized")

    async with Scripted([refuse_token]).running() as server:
        with pytest.raises(Closed, match="hello refused: unauthorized"):
            await Client(server.url, user="ada", token="operator", backoff=QUICK).connect()
    assert len(server.hellos) == 1


async def test_an_expired_token_without_get_token_stops_the_client_and_no_token_means_none_sent() -> None:
    async with Scripted([close_after_welcome(4001, "token expired")]).running() as server:
        async with Client(server.url, user="ada", token="fixed", backoff=QUICK) as chat:
            _, closed = await events_until_closed(chat)
            assert closed.code == 4001
        async with Client(server.url, user="ada", backoff=QUICK) as chat:
            await events_until_closed(chat)
    assert [hello.get("token", "none") for hello in server.hellos] == ["fixed", "none"]


LIFETIME = 0.9  # seconds: the scripted tokens' life, refreshed a third of it (0.3 s) before expiry


def expiring_welcome(expires: float) -> str:
    return json.dumps({"type": "welcome", "user": "ada", "uid": "u-1", "guest": False, "expires": int(expires * 1000)})


async def test_a_live_token_is_refreshed_before_it_expires_with_the_token_get_token_returned() -> None:
    """No reconnect: each refresh goes on the live connection, before its token's expiry, with
    get_token's token; each refreshed schedules the next; and a later hello presents the newest."""
    tokens = iter(["token-2", "token-3"])
    refreshes: list[tuple[dict[str, Any], float]] = []  # each refresh, and how long before expiry it came

    async def get_token() -> str:
        return next(tokens)

    async def expiring(ws: ServerConnection) -> None:
        expires = time.time() + LIFETIME
        await ws.send(expiring_welcome(expires))
        for _ in range(2):
            frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            refreshes.append((frame, expires - time.time()))
            expires = time.time() + LIFETIME
            await ws.send(json.dumps({"type": "refreshed", "expires": int(expires * 1000), "id": frame["id"]}))
        await ws.close(1012)  # and on the next connection, the newest token goes in the hello

    script = Scripted([expiring, welcome])
    async with (
        script.running() as server,
        Client(server.url, user="ada", token="token-1", get_token=get_token, backoff=QUICK) as chat,
    ):
        events = await next_events(chat, 5)
    assert [type(event) for event in events] == [Welcome, Refreshed, Refreshed, Disconnected, Welcome]
    assert [(frame["type"], frame["token"]) for frame, _ in refreshes] == [
        ("refresh", "token-2"),
        ("refresh", "token-3"),
    ]
    assert all(0 < left < LIFETIME for _, left in refreshes), refreshes  # before expiry, not at once
    assert [event.id for event in events if isinstance(event, Refreshed)] == [frame["id"] for frame, _ in refreshes]
    assert [hello.get("token") for hello in server.hellos] == ["token-1", "token-3"]


async def test_without_get_token_nothing_is_refreshed_and_the_expiry_ends_the_client() -> None:
    frames: list[dict[str, Any]] = []

    async def expiring(ws: ServerConnection) -> None:
        await ws.send(expiring_welcome(time.time() + LIFETIME / 3))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LIFETIME):  # the token's life, and as long again
                async for text in ws:
                    frames.append(json.loads(text))
        await ws.close(4001, "token expired")

    async with (
        Scripted([expiring]).running() as server,
        Client(server.url, user="ada", token="token-1", backoff=QUICK) as chat,
    ):
        events, closed = await events_until_closed(chat)
    assert frames == []
    assert events[-1] == Disconnected(4001, "token expired", None)
    assert closed.code == 4001
    assert len(server.hellos) == 1


async def test_a_refresh_refused_stops_the_client_with_the_reason() -> None:
    async def refusing(ws: ServerConnection) -> None:
        await ws.send(expiring_welcome(time.time() + LIFETIME))
        frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        refused = {"type": "error", "code": "unauthorized", "message": "another user's token", "id": frame["id"]}
        await ws.send(json.dumps(refused))
        await ws.close(4401, "unauthorized")

    async def get_token() -> str:
        return "someone-else"

    async with (
        Scripted([refusing]).running() as server,
        Client(server.url, user="ada", token="token-1", get_token=get_token, backoff=QUICK) as chat,
    ):
        events, closed = await events_until_closed(chat)
    assert [type(event) for event in events] == [Welcome, Error, Disconnected]
    assert isinstance(events[1], Error)
    assert (events[1].code, events[1].message) == ("unauthorized", "another user's token")
    assert events[2] == Disconnected(4401, "unauthorized", None)
    assert closed.code == 4401
    assert len(server.hellos) == 1


async def test_a_server_that_welcomes_then_drops_at_once_is_tried_a_bounded_number_of_times() -> None:
    """A connection counts as a success only once it stayed up ``stable`` seconds: otherwise a
    server that accepts and then closes at once would be hammered for ever."""
    policy = Backoff(base=0.01, cap=0.02, attempts=3, stable=10.0)
    script = Scripted([close_after_welcome(1013, "busy")])
    async with script.running() as server, Client(server.url, user="ada", backoff=policy) as chat:
        events, closed = await events_until_closed(chat)
    assert len(server.hellos) == 4  # the first try and 3 more
    assert [event.retry_in is None for event in events if isinstance(event, Disconnected)] == [False] * 3 + [True]
    assert (closed.code, closed.reason) == (1013, "busy (gave up after 3 tries)")


async def test_a_stable_connection_starts_the_count_of_tries_again() -> None:
    policy = Backoff(base=0.01, cap=0.02, attempts=1, stable=0.0)  # every welcomed connection is stable
    script = Scripted([close_after_welcome(1012)] * 4 + [serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", backoff=policy) as chat:
        await chat.join("lobby")
    assert len(server.hellos) == 5  # four drops in a row, each after a welcome: never "exhausted"


async def test_a_handshake_answered_503_is_tried_again_and_403_is_final() -> None:
    refusals = [HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.FORBIDDEN]
    async with Scripted([serve_rooms], refuse=refusals).running() as server:
        chat = Client(server.url, user="ada", backoff=QUICK)
        with pytest.raises(Closed) as closed:
            await chat.connect()
        assert closed.value.code is None
        assert closed.value.reason == "HTTP 403: not now"
        events, _ = await events_until_closed(chat)
        assert [(event.reason, event.retry_in is None) for event in events if isinstance(event, Disconnected)] == [
            ("HTTP 503: not now", False),
            ("HTTP 403: not now", True),
        ]
    assert server.hellos == []


async def test_the_states_from_start_to_close() -> None:
    server = Scripted([serve_rooms])
    chat = Client(server.url, user="ada", backoff=Backoff(base=0.01, cap=0.05, attempts=None))
    assert chat.state is State.DISCONNECTED
    connecting = asyncio.create_task(chat.connect())
    first = await next_events(chat, 1)  # nothing listens yet: the first try fails
    assert isinstance(first[0], Disconnected)
    assert first[0].code is None
    assert state_of(chat) is State.CONNECTING
    async with server.running():
        await asyncio.wait_for(connecting, TIMEOUT)
        await chat.join("lobby")
        assert state_of(chat) is State.CONNECTED
        await chat.close()
        assert state_of(chat) is State.CLOSED
        with pytest.raises(Closed):
            await chat.say("lobby", "after the end")
        async with asyncio.timeout(TIMEOUT):
            rest = [event async for event in chat]  # closed by you: the iteration just ends
        assert [type(event) for event in rest][-2:] == [Welcome, Joined]


async def test_a_hello_refused_stops_the_client_at_connect() -> None:
    async def refuse(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "error", "code": "bad_name", "message": "no control characters"}))
        await ws.wait_closed()

    async with Scripted([refuse]).running() as server:
        with pytest.raises(Closed) as closed:
            await Client(server.url, user="\x07bell", backoff=QUICK).connect()
    assert closed.value.reason == "hello refused: bad_name: no control characters"
    assert len(server.hellos) == 1  # a name refused once is refused again: no retry


async def test_a_hello_the_server_could_not_handle_is_tried_again() -> None:
    async def trouble(ws: ServerConnection) -> None:
        await ws.send(json.dumps({"type": "error", "code": "unavailable", "message": "store out of reach"}))
        await ws.wait_closed()

    script = Scripted([trouble, serve_rooms])
    async with script.running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        dropped, welcomed = await next_events(chat, 2)
    assert isinstance(dropped, Disconnected)
    assert (dropped.code, dropped.reason) == (None, "hello: unavailable: store out of reach")
    assert dropped.retry_in is not None
    assert welcomed == Welcome("ada")
    assert len(server.hellos) == 2


async def test_what_cannot_be_asked_is_refused_at_once() -> None:
    async with Scripted([serve_rooms]).running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        with pytest.raises(ValueError, match="join it first"):
            await chat.say("lobby", "hi")
        await chat.join("lobby")
        with pytest.raises(ValueError, match="already in room"):
            await chat.join("lobby")
        with pytest.raises(RuntimeError, match="connects once"):
            await chat.connect()


# --- what a reconnect sends ---------------------------------------------------------------------------


class Recorder:
    """Serves one room ("e1", starting empty) and keeps the requests each connection received. At
    say number ``drop_at_say`` the connection ends (1012, a restart) without an ack: after sending
    the say's own line when ``own_line`` (it was published), else without publishing it."""

    def __init__(self, drop_at_say: int, own_line: bool) -> None:
        self.drop_at_say = drop_at_say
        self.own_line = own_line
        self.requests: list[list[dict[str, Any]]] = []
        self.says = 0
        self.top = 0

    async def serve(self, ws: ServerConnection) -> None:
        await welcome(ws)
        received: list[dict[str, Any]] = []
        self.requests.append(received)
        async for text in ws:
            request = json.loads(text)
            received.append(request)
            room, request_id = request["room"], request["id"]
            if request["type"] == "join":
                joined = {"type": "joined", "room": room, "epoch": "e1", "offset": self.top, "count": 1}
                await ws.send(json.dumps({**joined, "id": request_id}))
                continue
            self.says += 1
            if self.says == self.drop_at_say and not self.own_line:
                await ws.close(1012)  # not published, not acked
                return
            self.top += 1
            line = {"type": "msg", "room": room, "offset": self.top, "ts": 1, "user": "ada", "text": request["text"]}
            await ws.send(json.dumps({**line, "id": request_id}))
            if self.says == self.drop_at_say:
                await ws.close(1012)  # published, its line sent; the ack never comes
                return
            await ws.send(json.dumps({"type": "ack", "room": room, "offset": self.top, "id": request_id}))


async def until_joined(chat: Client, times: int) -> list[Event]:
    """The events up to the ``times``-th Joined (the first join's, then each rejoin's)."""
    events: list[Event] = []
    async with asyncio.timeout(TIMEOUT):
        async for event in chat:
            events.append(event)
            if sum(isinstance(seen, Joined) for seen in events) == times:
                return events
    raise AssertionError(f"the events ended: {events}")


async def test_a_reconnect_rejoins_with_since_and_resends_an_unacked_say_with_its_same_id() -> None:
    recorder = Recorder(drop_at_say=2, own_line=False)
    async with Scripted([recorder.serve]).running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        await chat.join("lobby")
        assert await asyncio.wait_for(chat.say("lobby", "first"), TIMEOUT) == 1  # its line seen: position e1, 1
        assert await asyncio.wait_for(chat.say("lobby", "second"), TIMEOUT) == 2  # dropped, resent, published
    first, second = recorder.requests
    assert [request["type"] for request in first] == ["join", "say", "say"]
    assert [request["type"] for request in second] == ["join", "say"]
    assert second[0]["since"] == {"epoch": "e1", "offset": 1}  # resumed where its user was
    assert (second[1]["id"], second[1]["text"]) == (first[2]["id"], "second")  # the same say: deduped by id


async def test_a_say_whose_own_line_came_before_the_drop_is_done_and_not_sent_again() -> None:
    """Its line came (offset 1), its ack did not: resending it would publish it again on a server
    that forgot its id (the memory store, restarted). Its line is the proof it was published."""
    recorder = Recorder(drop_at_say=1, own_line=True)
    async with Scripted([recorder.serve]).running() as server, Client(server.url, user="ada", backoff=QUICK) as chat:
        await chat.join("lobby")
        assert await asyncio.wait_for(chat.say("lobby", "once"), TIMEOUT) == 1
        events = await until_joined(chat, 2)  # rejoined on connection 2: anything to resend went first
    assert [type(event) for event in events] == [Welcome, Joined, Message, Disconnected, Welcome, Joined]
    assert [[request["type"] for request in connection] for connection in recorder.requests] == [
        ["join", "say"],
        ["join"],
    ]
    assert recorder.requests[1][0]["since"] == {"epoch": "e1", "offset": 1}

"""The app as a whole against random, out-of-order and malformed ASGI event sequences.

Whatever a server (or a client through it) sends, each connection must end in a defined close or
response, no exception may escape the app, and nothing may be left behind: no member, no session,
no counted connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.typing import ASGISendEvent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgi_chat import ChatApp, Settings, create_app
from tests.helpers import WebSocketClient

text = st.one_of(st.text(max_size=40), st.just("x" * 70_000))  # the huge one is over the 64 KiB limit
events = st.one_of(
    st.just({"type": "websocket.connect"}),
    st.builds(lambda t: {"type": "websocket.receive", "text": t}, text),
    st.builds(lambda b: {"type": "websocket.receive", "bytes": b}, st.binary(max_size=40)),
    st.builds(lambda t, b: {"type": "websocket.receive", "text": t, "bytes": b}, text, st.binary(max_size=8)),
    st.just({"type": "websocket.receive"}),  # neither text nor bytes
    st.just({"type": "websocket.receive", "text": None, "bytes": None}),
    st.just({"type": "websocket.receive", "text": 5}),  # the wrong type
    st.builds(lambda c: {"type": "websocket.disconnect", "code": c}, st.sampled_from([1000, 1001, 1005, 1006, 1012])),
    st.sampled_from([{"type": "websocket.foo"}, {"type": "http.request", "body": b""}, {"type": "lifespan.startup"}]),
)
paths = st.sampled_from(["/ws", "/ws/1", "/ws/x", "/items/foo/ws", "/items//ws", "/nope", "/"])
queries = st.one_of(st.sampled_from([b"", b"token=t", b"token=t&q=2", b"token=t&q=x", b"q="]), st.binary(max_size=30))
headers = st.lists(
    st.tuples(st.sampled_from([b"cookie", b"origin", b"host", b"x-other"]), st.binary(max_size=30)), max_size=3
)


def check_the_answer(sent: list[ASGISendEvent]) -> None:
    types = [message["type"] for message in sent]
    assert types.count("websocket.accept") <= 1
    if "websocket.close" in types:
        assert types.index("websocket.close") == len(types) - 1, types  # nothing after a close
    if types and types[0] != "websocket.accept":
        assert types == ["websocket.close"], types  # refused before accept: one close, nothing else


def check_nothing_left(app: ChatApp) -> None:
    assert not app.sessions
    assert not app.ctx.hub.members
    assert app.ctx.metrics.connections == 0
    assert app.ctx.limits.total == 0


async def run(app: ChatApp, path: str, script: list[dict[str, Any]], **scope: Any) -> list[ASGISendEvent]:
    """The app on one connection that hands it ``script``, then a disconnect forever (what a real
    server does once the peer is gone); what the app sent."""
    server = WebSocketClient(app, path, script=script, then_gone=True, **scope)
    await server.finished()  # no hang, no exception
    return server.sent


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(paths, queries, headers, st.lists(events, max_size=8))
def test_any_event_sequence_ends_in_a_defined_answer(
    path: str, query: bytes, extra_headers: list[tuple[bytes, bytes]], script: list[dict[str, Any]]
) -> None:
    app = create_app(Settings(rate_per_second=0))

    async def scenario() -> None:
        check_the_answer(await run(app, path, script, query_string=query, headers=extra_headers))
        await app.ctx.hub.stop()

    asyncio.run(scenario())
    check_nothing_left(app)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(events, max_size=6), min_size=2, max_size=4))
def test_concurrent_chat_members_with_hostile_sequences_leave_no_member_behind(
    scripts: list[list[dict[str, Any]]],
) -> None:
    app = create_app(Settings(rate_per_second=0))

    async def scenario() -> None:
        connect: list[dict[str, Any]] = [{"type": "websocket.connect"}]
        answers = await asyncio.gather(*(run(app, f"/ws/{n}", connect + script) for n, script in enumerate(scripts)))
        for sent in answers:
            check_the_answer(sent)
        await app.ctx.hub.stop()

    asyncio.run(scenario())
    check_nothing_left(app)

"""Who is speaking on ``/chat/ws``, through the app: tokens, guests, refresh, expiry, the room policy.

The operator's tokens here are HS256 with the suite's secret (the table of hostile tokens and
every key type is tests/unit/test_identity_tokens.py); what these tests show is what a client
hears: its welcome, an ``unauthorized`` error and 4401, a 4001 when its token ran out, a
``forbidden`` where the policy says no.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.asgi.rooms_helpers import ROOM, error_of, rooms_app
from tests.helpers import TIMEOUT
from tests.identity_support import SECRET, claims, sign
from tests.rooms_support import RoomsClient

SERVER_SECRET = "the server's own secret, for guest tokens, 32+ bytes"


def app_with(**settings: Any) -> Any:
    return rooms_app(jwt_secret=SECRET, secret=SERVER_SECRET, **settings)


def token(**overrides: Any) -> str:
    return sign(SECRET, "HS256", claims(aud=None, iss=None, **overrides))


async def hello(client: RoomsClient, **fields: Any) -> dict[str, Any]:
    await client.request("hello", **fields)
    return await client.frame()


async def refused(client: RoomsClient, code: int = 4401) -> dict[str, Any]:
    """The ``unauthorized`` error, then the close with ``code``."""
    error = await client.expect("error")
    assert error["code"] == "unauthorized", error
    assert (await client.closed())[0] == code
    return error


# --- tokens and guests --------------------------------------------------------------------------


async def test_a_token_decides_who_speaks_whatever_name_the_hello_asks_for() -> None:
    app = app_with()
    client = await RoomsClient(app).open()
    exp = int(time.time()) + 600
    welcome = await hello(client, user="Mallory", token=token(sub="alice", name="Alice", exp=exp), id="h")
    assert welcome == {
        "type": "welcome",
        "user": "Alice",
        "uid": "alice",
        "guest": False,
        "expires": exp * 1000,
        "id": "h",
    }


async def test_a_guest_gets_a_uid_and_a_token_that_keeps_it_on_the_next_connection() -> None:
    app = app_with()
    first = await hello(await RoomsClient(app).open(), user="Ada")
    assert (first["user"], first["guest"], first["expires"]) == ("Ada", True, None)
    assert first["uid"].startswith("guest:")
    again = await hello(await RoomsClient(app).open(), user="Ada L.", token=first["token"])
    assert (again["uid"], again["user"], again["guest"]) == (first["uid"], "Ada L.", True)
    other = await hello(await RoomsClient(app).open(), user="Ada")
    assert other["uid"] != first["uid"]  # the same name without the token: another person


async def test_a_refused_token_is_told_why_and_closed_with_4401() -> None:
    app = app_with()
    client = await RoomsClient(app).open()
    await client.request("hello", token=token(exp=int(time.time()) - 3600))
    error = await refused(client)
    assert error["message"].startswith("expired")
    assert SECRET not in error["message"]


async def test_without_guests_a_hello_with_no_token_is_unauthorized() -> None:
    app = rooms_app(jwt_secret=SECRET, guests=False)
    client = await RoomsClient(app).open()
    await client.request("hello", user="ada")
    await refused(client)


async def test_the_bearer_subprotocol_carries_a_token_and_the_query_string_never_does() -> None:
    app = app_with()
    offered = ("asgi-chat.v1", "bearer", token(sub="bob", name="Bob"))
    client = RoomsClient(app, subprotocols=offered)
    await client.open()
    assert (await hello(client, user="x"))["uid"] == "bob"
    in_query = RoomsClient(app, query_string=f"token={token(sub='carol')}".encode())
    await in_query.open()
    assert (await hello(in_query, user="guest"))["guest"] is True  # the URL's token is ignored


@pytest.mark.parametrize("name", ["Alice\u200b", "\u202eecilA", "\u200b\u200b", "admin", "x" * 33])
async def test_a_guest_name_that_could_pass_for_someone_else_is_a_bad_name(name: str) -> None:
    client = await RoomsClient(app_with()).open()
    error = await hello(client, user=name, id="h")
    assert (error["type"], error["code"], error["id"]) == ("error", "bad_name", "h")
    assert (await hello(client, user="Alice"))["type"] == "welcome"  # the connection stays open


# --- refresh and expiry -------------------------------------------------------------------------


async def test_a_refreshed_token_keeps_the_connection_past_the_first_ones_deadline() -> None:
    app = app_with(token_grace=0.2)
    client = await RoomsClient(app).open()
    first = int(time.time()) + 1
    await hello(client, token=token(exp=first))
    later = int(time.time()) + 600
    await client.request("refresh", token=token(exp=later), id="r")
    assert await client.frame() == {"type": "refreshed", "expires": later * 1000, "id": "r"}
    deadline = first + 0.2 - time.time()
    with pytest.raises(TimeoutError):  # past the old deadline by a second: still open
        await asyncio.wait_for(client.closed(), deadline + 1.0)


async def test_a_token_not_refreshed_is_closed_with_4001_within_the_grace() -> None:
    app = app_with(token_grace=0.3)
    client = await RoomsClient(app).open()
    exp = int(time.time()) + 1
    await hello(client, token=token(exp=exp))
    code, reason = await asyncio.wait_for(client.closed(), exp + 0.3 + 1.0 - time.time() + TIMEOUT)
    assert (code, reason) == (4001, "token expired: get a new token and reconnect")
    assert time.time() < exp + 0.3 + 1.0


async def test_a_refresh_for_another_user_is_unauthorized() -> None:
    app = app_with()
    client = await RoomsClient(app).open()
    await hello(client, token=token(sub="alice"))
    await client.request("refresh", token=token(sub="bob"))
    error = await refused(client)
    assert "same user" in error["message"]


# --- the room policy ----------------------------------------------------------------------------


async def test_private_and_read_only_rooms_follow_the_operators_policy(tmp_path: Path) -> None:
    policy = tmp_path / "rooms.toml"
    policy.write_text('[rooms."staff-*"]\nprivate = true\n\n[rooms."news"]\nread_only = true\n')
    app = app_with(room_policy=str(policy))
    guest, staff, mod = RoomsClient(app), RoomsClient(app), RoomsClient(app)
    for client in (guest, staff, mod):
        await client.open()
    await hello(guest, user="visitor")
    await hello(staff, token=token(sub="sam", name="Sam", rooms=["staff-*"]))
    await hello(mod, token=token(sub="meg", name="Meg", roles=["moderator"]))
    error = await error_of(guest, kind="join", room="staff-room", id="j")
    assert (error["code"], error["id"]) == ("forbidden", "j")
    assert (await staff.join("staff-room"))["room"] == "staff-room"
    for client in (mod, guest):  # the guest last: what it reads next is its own answers
        await client.join("news")
    assert (await error_of(guest, kind="say", room="news", text="hi"))["code"] == "forbidden"
    await mod.say("news", "news item", id="n1")
    assert (await mod.until("ack"))[1]["offset"] == 1
    assert (await guest.expect("msg"))["text"] == "news item"
    assert (await guest.join(ROOM))["room"] == ROOM  # a room the policy does not name: public

"""Hostile frames interleaved with honest says: the offset sequence holds and nobody is closed.

Hypothesis plays two members of one room through the app, each frame either an honest say or
one a careless or hostile client sends: a lone surrogate (JSON's ``"\\ud800"``) in any string
field, a number beyond 2**53 - 1, a wrong type, a request for a room not joined, a second hello.
Each bad frame must get its ``error`` (with the request's id where one could be read), nothing
may be assigned to it, and afterwards both members hold every line once, offsets 1 to N with no
hole, and their connections still work.
"""

from __future__ import annotations

import asyncio
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.asgi.rooms_helpers import ROOM, rooms_app
from tests.rooms_support import Frame, opened

SURROGATE = "\\ud800"  # as JSON text: parses into a lone surrogate
HUGE = 2**64

# Raw JSON texts, each a request the server must refuse with an error and nothing else.
HOSTILE = [
    f'{{"type":"say","room":"{ROOM}","text":"a{SURROGATE}b","id":"x"}}',
    f'{{"type":"say","room":"{ROOM}","text":"fine","id":"{SURROGATE}"}}',
    f'{{"type":"say","room":"{ROOM}{SURROGATE}","text":"fine"}}',
    f'{{"type":"hello","user":"ev{SURROGATE}e"}}',
    f'{{"type":"history","room":"{ROOM}","before":{HUGE},"limit":5,"id":"h"}}',
    f'{{"type":"history","room":"{ROOM}","before":5,"limit":{HUGE},"id":"h"}}',
    f'{{"type":"join","room":"other","since":{{"epoch":"e{SURROGATE}","offset":1}},"id":"j"}}',
    f'{{"type":"join","room":"other","since":{{"epoch":"e","offset":{HUGE}}},"id":"j"}}',
    f'{{"type":"join","room":"other","history":{HUGE},"id":"j"}}',
    '{"type":"say","room":"lobby","text":["not","text"]}',
    '{"type":"say","room":"elsewhere","text":"not joined"}',
    '{"type":"presence","room":"elsewhere"}',
    '{"type":"nonsense"}',
    "[1, 2, 3]",
    '{"type":"say",',
]

steps = st.lists(st.tuples(st.integers(0, 1), st.one_of(st.just("say"), st.sampled_from(HOSTILE))), max_size=25)


async def play(script: list[tuple[int, str]]) -> None:
    app = rooms_app()
    members = await opened(app, "ada", "bob")
    for member in members:
        await member.join(ROOM)
    await members[0].expect("presence")
    got: list[list[Frame]] = [[], []]
    said = 0
    for who, what in script:
        client = members[who]
        if what == "say":
            said += 1
            await client.say(ROOM, f"line {said}")
            before, _ = await client.until("ack")
        else:
            await client.send_text(what)
            before, error = await client.until("error")
            assert error["code"] in {"bad_request", "bad_name", "bad_room", "not_joined"}, (what, error)
        got[who] += before
    for n, client in enumerate(members):  # the other's lines that are still on their way
        said_here = len([frame for frame in got[n] if frame["type"] == "msg"])
        got[n] += await client.frames(said - said_here)
    for frames in got:
        assert [frame["offset"] for frame in frames] == list(range(1, said + 1)), frames
        assert [frame["text"] for frame in frames] == [f"line {n}" for n in range(1, said + 1)]
    for n, speaker in enumerate(members, start=1):  # both connections work on, for both
        await speaker.say(ROOM, f"still here {n}")
        for client in members:
            frame = await client.expect("msg")
            assert (frame["offset"], frame["text"]) == (said + n, f"still here {n}")
        await speaker.expect("ack")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
def test_hostile_frames_between_says_never_break_the_sequence_nor_a_connection(script: list[tuple[int, str]]) -> None:
    asyncio.run(play(script))


def test_every_hostile_frame_is_valid_json_or_meant_not_to_be() -> None:
    """The table holds what it says: all but the last two parse (the server sees them as JSON)."""
    for text in HOSTILE[:-2]:
        assert isinstance(json.loads(text), dict)

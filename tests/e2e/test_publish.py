"""asgi_chat.publish from a separate Python process while two uvicorn processes on one
redis-server have members in the room (issue 20): during a burst of says, every member on both
processes gets every line once, in one order (offsets 1, 2, 3, ... with no gap), and an
idempotency key used twice publishes once. The script is a plain one (``publish``, or
``Publisher``) or a coroutine (``apublish``, or ``async with Publisher``), run by ``sys.executable``
with nothing but the Redis URL and the servers' ``ASGI_CHAT_*`` environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command
from tests.redis_support import RedisServer, running_redis
from tests.rooms_support import Frame, WireRoomsClient

pytestmark = pytest.mark.redis

ROOM = "lobby"
SAYS = 60  # per member
LINES = 40  # published

# Each script publishes LINES lines with keys pub-0, pub-1, ..., then pub-0 again, and prints
# [[offset, new], ...] as JSON: the LINES lines', then the repeat's.
SCRIPTS = {
    "publish": """
import json, sys
from asgi_chat.publish import publish
url, room, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
done = [publish(url, room, f"pub {n}", idempotency_key=f"pub-{n}") for n in range(lines)]
done.append(publish(url, room, "pub 0", idempotency_key="pub-0"))
print(json.dumps([[p.offset, p.new] for p in done]))
""",
    "Publisher": """
import json, sys
from asgi_chat.publish import Publisher
url, room, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
with Publisher(url) as publisher:
    done = [publisher.publish(room, f"pub {n}", idempotency_key=f"pub-{n}") for n in range(lines)]
    done.append(publisher.publish(room, "pub 0", idempotency_key="pub-0"))
print(json.dumps([[p.offset, p.new] for p in done]))
""",
    "apublish": """
import asyncio, json, sys
from asgi_chat.publish import apublish
async def main(url, room, lines):
    done = [await apublish(url, room, f"pub {n}", idempotency_key=f"pub-{n}") for n in range(lines)]
    done.append(await apublish(url, room, "pub 0", idempotency_key="pub-0"))
    return done
done = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
print(json.dumps([[p.offset, p.new] for p in done]))
""",
    "async Publisher": """
import asyncio, json, sys
from asgi_chat.publish import Publisher
async def main(url, room, lines):
    async with Publisher(url) as publisher:
        done = [await publisher.apublish(room, f"pub {n}", idempotency_key=f"pub-{n}") for n in range(lines)]
        done.append(await publisher.apublish(room, "pub 0", idempotency_key="pub-0"))
    return done
done = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
print(json.dumps([[p.offset, p.new] for p in done]))
""",
}


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[RedisServer, dict[str, str], list[Server]]]:
    """A redis-server, the servers' environment, and two uvicorn processes on it."""
    env = {
        "ASGI_CHAT_STATE_URL": "",
        "ASGI_CHAT_RATE_PER_SECOND": "0",  # members say as fast as they can
        "ASGI_CHAT_PRESENCE_INTERVAL": "0",
    }
    with running_redis(tmp_path) as redis_server, ExitStack() as stack:
        env["ASGI_CHAT_STATE_URL"] = redis_server.url
        servers = []
        for name in ("one", "two"):
            port = free_port()
            servers.append(stack.enter_context(Server(uvicorn_command(port), port, tmp_path / f"{name}.log", env)))
        yield redis_server, env, servers
    for log in tmp_path.glob("*.log"):
        output = log.read_text(errors="replace")
        assert "Traceback" not in output, f"{log.name}: {output}"


async def run_script(mode: str, url: str, env: dict[str, str]) -> list[list[object]]:
    """The script of ``mode`` in a process of its own, with the servers' environment."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPTS[mode],
        url,
        ROOM,
        str(LINES),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 6 * TIMEOUT)
    assert process.returncode == 0, err.decode()
    result = json.loads(out)
    assert isinstance(result, list)
    return result


async def burst(client: WireRoomsClient, who: str, script: asyncio.Task[list[list[object]]]) -> int:
    """Say lines until the script is done, SAYS at least: how many were said."""
    n = 0
    while n < SAYS or not script.done():
        await client.say(ROOM, f"{who} {n}", id=str(n))
        await asyncio.sleep(0.002)
        n += 1
    return n


async def received(client: WireRoomsClient, total: int) -> list[Frame]:
    """The room's ``msg`` frames until ``total`` came (presence and acks pass; nothing else may come)."""
    messages: list[Frame] = []
    while len(messages) < total:
        frame = await client.frame()
        if frame["type"] == "msg":
            messages.append(frame)
        else:
            assert frame["type"] in ("ack", "presence"), frame
    return messages


@pytest.mark.parametrize("mode", list(SCRIPTS))
async def test_a_separate_process_publishes_to_members_of_both_servers_during_a_burst(
    deployment: tuple[RedisServer, dict[str, str], list[Server]], mode: str
) -> None:
    redis_server, env, (one, two) = deployment
    alice = await WireRoomsClient.connect(one.url, "alice")
    bob = await WireRoomsClient.connect(two.url, "bob")
    try:
        await alice.join(ROOM)
        await bob.join(ROOM)
        script = asyncio.create_task(run_script(mode, redis_server.url, env))
        said = await asyncio.gather(burst(alice, "alice", script), burst(bob, "bob", script))
        results = await script
        total = sum(said) + LINES
        seen = await asyncio.gather(received(alice, total), received(bob, total))
    finally:
        await alice.close()
        await bob.close()

    # The publisher: offsets strictly increasing, each new; the key used again: the first offset.
    offsets = [int(str(offset)) for offset, _ in results[:LINES]]
    assert offsets == sorted(set(offsets)), offsets
    assert all(new is True for _, new in results[:LINES])
    assert results[LINES] == [offsets[0], False]
    # Every member, on either process: every line once, in one order, offsets 1..total, no gap.
    lines = [(frame["offset"], frame["text"]) for frame in seen[0]]
    assert [offset for offset, _ in lines] == list(range(1, total + 1))
    assert lines == [(frame["offset"], frame["text"]) for frame in seen[1]]
    texts = [text for _, text in lines]
    expected = [f"pub {n}" for n in range(LINES)]
    expected += [f"{who} {n}" for who, count in zip(("alice", "bob"), said, strict=True) for n in range(count)]
    assert sorted(texts) == sorted(expected)
    assert [offset for offset, text in lines if text.startswith("pub ")] == offsets
    # They were published during the burst: says came between the first and the last.
    assert any(offsets[0] < offset < offsets[-1] for offset, text in lines if not text.startswith("pub ")), offsets
    published = [frame for frame in seen[0] if frame["text"].startswith("pub ")]
    assert {(frame["uid"], frame["user"]) for frame in published} == {("system", "system")}

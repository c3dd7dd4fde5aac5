"""The client's chaos test on two server processes sharing one Redis (issue 20): the subject's
connections go to either process in turn, through a proxy that cuts them 50 times at random
points; one process restarts mid-stream, and so does Redis, with persistence (``SHUTDOWN SAVE``,
then started again on its data). History lives in Redis and survives both, so the subject sees
every message exactly once in offset order with no gap at all, and each say, its own and the
talker's, is in the room's history exactly once.
"""

from __future__ import annotations

import asyncio
import random
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
import redis

from asgi_chat.client import Client, Disconnected, Gap, Message
from tests.e2e.client_support import FAST, Proxy, Timeline, whole_history
from tests.helpers import TIMEOUT, Server, free_port, uvicorn_command
from tests.redis_support import RedisServer

pytestmark = pytest.mark.redis

ROOM = "lobby"
CUTS = 50
WORKER_RESTART_AT = 15  # cuts before process a restarts
REDIS_RESTART_AT = 35  # cuts before Redis does
OWN_EVERY = 10
MAX_LINES = 5000


def restart_redis(server: RedisServer) -> None:
    """Stop Redis as an operator would, saving its data (SHUTDOWN SAVE writes dump.rdb and exits),
    and start it again on the same port and directory: it loads the file."""
    client = redis.Redis.from_url(server.url)
    try:
        client.shutdown(save=True)
    finally:
        client.close()
    server.kill()  # reaps the process that has exited
    server.start()


class Deployment:
    def __init__(self, redis_server: RedisServer, directory: Path) -> None:
        env = {
            "ASGI_CHAT_STATE_URL": redis_server.url,
            # Processes sharing rooms sign guest tokens with one secret, or refuse to start.
            "ASGI_CHAT_SECRET": "a test secret of thirty-two bytes or more, fixed",
            "ASGI_CHAT_RATE_PER_SECOND": "0",
            "ASGI_CHAT_HISTORY_MESSAGES": "0",  # every message kept: any gap would be the client's fault
            "ASGI_CHAT_REPLAY_MAX": "0",
        }
        self.redis = redis_server
        self.a, self.b = (self._process(directory, name, env) for name in "ab")
        self.restarts: list[str] = []

    @staticmethod
    def _process(directory: Path, name: str, env: dict[str, str]) -> Server:
        port = free_port()
        return Server(uvicorn_command(port), port, directory / f"{name}.log", env)

    async def restart(self, proxy: Proxy) -> None:
        """Process a, then Redis: one after the other, since a process does not start while Redis
        is out of reach (it refuses to serve half a chat)."""
        await proxy.reached(WORKER_RESTART_AT).wait()
        await asyncio.to_thread(self.a.stop)
        await asyncio.to_thread(self.a.start)
        self.restarts.append("worker")
        await proxy.reached(REDIS_RESTART_AT).wait()
        await asyncio.to_thread(restart_redis, self.redis)
        self.restarts.append("redis")


async def watch(client: Client, timeline: Timeline, drops: list[Disconnected]) -> None:
    async for event in client:
        if isinstance(event, (Message, Gap)):
            timeline.add(event)
            if isinstance(event, Message) and event.text == "the end":
                return
        elif isinstance(event, Disconnected):
            drops.append(event)


async def test_chaos_on_two_processes_and_redis_restarted_every_message_once_no_gap(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    deployment = Deployment(redis_server, tmp_path)
    for process in (deployment.a, deployment.b):
        await asyncio.to_thread(process.start)
    try:
        async with (
            Proxy([deployment.a.port, deployment.b.port], random.Random(12), CUTS, (100, 3000)) as proxy,
            AsyncExitStack() as stack,
        ):
            talker = await stack.enter_async_context(Client(deployment.b.url, user="talker", backoff=FAST))
            subject = await stack.enter_async_context(Client(proxy.url, user="subject", backoff=FAST))
            await talker.join(ROOM)
            joined = await subject.join(ROOM)
            seen, drops = Timeline(joined.epoch, joined.offset + 1), list[Disconnected]()
            watching = asyncio.create_task(watch(subject, seen, drops))
            own: dict[str, int] = {}
            talked = 0
            restarts = asyncio.create_task(deployment.restart(proxy))
            try:
                async with asyncio.timeout(TIMEOUT * 4):
                    while talked < MAX_LINES and not (proxy.cuts >= CUTS and restarts.done()):
                        talked += 1
                        await talker.say(ROOM, f"talk {talked}")
                        if talked % OWN_EVERY == 0:  # the subject's own, in flight while its connection is cut
                            own[f"own {talked}"] = await subject.say(ROOM, f"own {talked}")
                    await restarts
                    top = await talker.say(ROOM, "the end")
                    await watching
            except TimeoutError:
                stuck = (
                    f"cuts {proxy.cuts}, restarts {deployment.restarts}, talked {talked}, seen up to {seen.next - 1}"
                )
                raise AssertionError(f"stuck: {stuck}, subject {subject.state}, last drops {drops[-3:]}") from None
            history = await whole_history(talker, ROOM, top)
    finally:
        for process in (deployment.a, deployment.b):
            await asyncio.to_thread(process.stop)
    for process in (deployment.a, deployment.b):
        assert "Traceback" not in process.output(), process.output()

    assert deployment.restarts == ["worker", "redis"]
    assert proxy.cuts == CUTS
    assert len(drops) >= CUTS
    assert seen.gaps == []  # history survived both restarts: nothing to report lost
    assert seen.epochs == [joined.epoch]
    assert seen.messages == history  # every message once, in order, the same ones history holds
    assert [line.offset for line in history] == list(range(1, top + 1))
    texts = [line.text for line in history]
    assert len(texts) == len(set(texts))  # each say, the talker's and the subject's, published once
    assert [text for text in texts if text.startswith("talk")] == [f"talk {n}" for n in range(1, talked + 1)]
    assert {line.text: line.offset for line in history if line.user == subject.name} == own

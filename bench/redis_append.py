"""Messages/s one sender pushes into a room on Redis: the store's atomic append+publish vs PUBLISH.

``append``: asgi_chat's RedisStore.append, the Lua script that assigns the offset, appends to the
room's stream (``XADD MAXLEN ~``) and publishes, in one step (the code path of every ``say`` on
Redis, the message's fields encoded once per message). ``publish``: its msg frame, encoded as the
server sends it, with a plain ``PUBLISH`` to the room's channel. One sender, each call awaited before the next
(what one connection's says cost in sequence), on one redis.asyncio connection; no subscriber on
the channel for either, so the figure is the sender's side alone. Bounded in count and in time.

Usage: python bench/redis_append.py --url redis://127.0.0.1:PORT/0 --mode append|publish
Prints one JSON line: {"event":"result","mode":...,"messages":N,"seconds":S,"messages_per_s":R,...}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from asgi_chat.engine import frames
from asgi_chat.engine.people import Person
from asgi_chat.engine.redis_link import RedisLink
from asgi_chat.engine.replay import Stored
from asgi_chat.engine.stores.redis import RedisStore
from asgi_chat.ops.settings import from_env

SENDER = Person("sender", "sender")


class NullListener:
    def message(self, room: str, stored: Stored) -> None:
        pass

    def presence(self, room: str, person: Person, event: str) -> None:
        pass

    def gap(self, room: str, first: int, last: int, reason: str) -> None:
        pass

    def reset(self, room: str, epoch: str, offset: int) -> None:
        pass

    def kicked(self, room: str, uid: str, by: str, reason: str) -> None:
        pass

    def redacted(self, room: str, offset: int, by: str) -> None:
        pass

    def disconnected(self, uid: str, reason: str) -> None:
        pass


async def run(url: str, mode: str, seconds: float, limit: int, size: int, room: str) -> dict[str, Any]:
    settings = from_env({"ASGI_CHAT_STATE_URL": url})
    store = RedisStore(RedisLink(url), settings)
    await store.open(NullListener())
    client = store.link.client  # the store's own command connections (the link's pool)
    channel = store._channel(room)
    filler = ("lorem ipsum dolor sit amet " * (size // 8 + 1))[:size]
    latencies: list[float] = []
    try:
        for k in range(200):  # warm-up: script loaded (EVALSHA), connection open
            if mode == "append":
                await store.append(room, SENDER, f"w{k}", None)
            else:
                await client.publish(channel, frames.msg(room, k, int(time.time() * 1000), SENDER, f"w{k}", None))
        count, start = 0, time.perf_counter()
        end = start + seconds
        while count < limit:
            text = f"{count} {filler}"
            t = time.perf_counter()
            if t >= end:
                break
            if mode == "append":
                await store.append(room, SENDER, text, None)
            else:
                frame = frames.msg(room, count + 1, int(time.time() * 1000), SENDER, text, None)
                await client.publish(channel, frame)
            latencies.append(time.perf_counter() - t)
            count += 1
        elapsed = time.perf_counter() - start
    finally:
        await store.close()
    latencies.sort()
    return {
        "event": "result",
        "mode": mode,
        "messages": count,
        "seconds": elapsed,
        "messages_per_s": count / elapsed if elapsed > 0 else 0.0,
        "lat_p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "lat_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else None,
        "size": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--mode", choices=("append", "publish"), required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--max-messages", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--room", default="bench")
    args = parser.parse_args()
    result = asyncio.run(run(args.url, args.mode, args.seconds, args.max_messages, args.size, args.room))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

"""``python -m asgi_chat.client URL --user NAME --room ROOM``: a small terminal chat on the client.

Lines you type are said in the room; the room's messages are printed with their time and
sender, and so is what the client tells you: who joined and left, a lost connection and the
retry, lines that could not be recovered. It is the library's runnable example: every part of
it is the public API (docs/client.md walks through it). End it with Ctrl-D (end of input) or
Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import AsyncIterator

from .client import Client
from .errors import ClientError
from .events import Disconnected, Error, Event, Gap, Joined, Message, Presence, Welcome


def describe(event: Event) -> str | None:
    """One line for the terminal, or None for an event not worth a line."""
    if isinstance(event, Message):
        return f"[{event.time:%H:%M:%S}] {event.user}: {event.text}"
    if isinstance(event, Welcome):
        return f"-- connected as {event.user}"
    if isinstance(event, Joined):
        here = ", ".join(event.presence or ()) or "nobody"
        return f"-- joined {event.room} ({event.count} here: {here})"
    if isinstance(event, Presence):
        changes = [f"{name} joined" for name in event.joins] + [f"{name} left" for name in event.leaves]
        return f"-- {', '.join(changes)}" if changes else None
    if isinstance(event, Gap):
        if event.reset:
            return "-- history was reset (the server restarted?): what was said meanwhile is unknown"
        lost = (event.last or 0) - (event.first or 0) + 1
        return f"-- {lost} messages could not be recovered ({event.reason})"
    if isinstance(event, Disconnected):
        what = "no connection" if event.code is None else f"connection lost ({event.code})"
        if event.retry_in is None:
            return f"-- {what}, for good: {event.reason}"
        return f"-- {what}: {event.reason}; retrying in {event.retry_in:.1f} s"
    if isinstance(event, Error):
        return f"-- error {event.code}: {event.message}"
    return None


async def stdin_lines() -> AsyncIterator[str]:
    """The lines typed (or piped) on standard input, read without blocking the event loop."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (sys.stdin.isatty() or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        # A regular file (< notes.txt) or /dev/null: reading never waits, and the event loop
        # cannot watch it (epoll refuses regular files), so read it as it is.
        for line in sys.stdin:
            yield line.rstrip("\n")
        return
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        yield line.decode(errors="replace").rstrip("\n")


async def print_events(chat: Client) -> None:
    async for event in chat:
        if (line := describe(event)) is not None:
            print(line, flush=True)


async def say_lines(chat: Client, room: str) -> None:
    async for line in stdin_lines():
        if not line.strip():
            continue
        try:
            await chat.say(room, line)
        except ClientError as error:  # too long, say: the chat goes on
            print(f"-- not sent: {error}", flush=True)


async def chat(url: str, user: str, room: str, history: int) -> int:
    """Chat until the end of input (0), or until the server refuses or closes for good (1)."""
    client = Client(url, user=user)
    printer = asyncio.create_task(print_events(client))  # from the start: tries that fail show too
    tasks = [printer]
    try:
        async with client:
            await client.join(room, history=history)
            tasks.append(asyncio.create_task(say_lines(client, room)))
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if printer.done():
                printer.result()  # the events ended: raises Closed, which says why
        return 0
    except ClientError as error:
        print(f"-- {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ClientError):
                await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asgi_chat.client", description="A small terminal chat on asgi_chat.client."
    )
    parser.add_argument("url", help="the server, e.g. ws://127.0.0.1:8000 (its /chat/ws is used)")
    parser.add_argument("--user", required=True, help="your name in the chat")
    parser.add_argument("--room", default="lobby", help="the room to join (default: lobby)")
    parser.add_argument("--history", type=int, default=20, help="earlier messages to show on joining (default: 20)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(chat(args.url, args.user, args.room, args.history))
    return 130  # interrupted (Ctrl-C), as a shell reports it


if __name__ == "__main__":
    sys.exit(main())

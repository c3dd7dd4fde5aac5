"""``python -m asgi_chat.client URL --user NAME --room ROOM``, the terminal chat, as a person uses it:
a real server, the chat as a subprocess fed on its standard input, and a second person (a
``Client``) in the same room. A line typed is said; a line said by the other is printed with its
time and name; the end of input leaves the room and ends the program."""

from __future__ import annotations

import asyncio
import re
import sys

from asgi_chat.client import Client, Message, Presence
from tests.helpers import ROOT, TIMEOUT, Server


async def printed(stdout: asyncio.StreamReader, pattern: str) -> str:
    """Read the program's output up to the first line matching ``pattern``; that line."""
    async with asyncio.timeout(TIMEOUT):
        while line := (await stdout.readline()).decode():
            if re.fullmatch(pattern, line.rstrip("\n")):
                return line.rstrip("\n")
    raise AssertionError(f"the program ended without printing {pattern!r}")


async def presence(chat: Client) -> Presence:
    async with asyncio.timeout(TIMEOUT):
        async for event in chat:
            if isinstance(event, Presence):
                return event
    raise AssertionError("the events ended")


async def message_from(chat: Client, user: str) -> Message:
    """The next message ``user`` said in ``chat``'s rooms (others' are read past)."""
    async with asyncio.timeout(TIMEOUT):
        async for event in chat:
            if isinstance(event, Message) and event.user == user:
                return event
    raise AssertionError("the events ended")


async def test_the_terminal_chat_says_what_is_typed_and_prints_what_others_say(uvicorn_server: Server) -> None:
    async with Client(uvicorn_server.url, user="alice") as alice:
        await alice.join("lobby")
        await alice.say("lobby", "said before bob came")
        command = [sys.executable, "-m", "asgi_chat.client", uvicorn_server.url, "--user", "bob", "--room", "lobby"]
        bob = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT
        )
        assert bob.stdin is not None
        assert bob.stdout is not None
        try:
            connected = await printed(bob.stdout, r"-- connected as .+")
            name = connected.removeprefix("-- connected as ")  # bob, as the server's welcome gave it
            assert alice.name is not None
            here = ", ".join(sorted([alice.name, name]))
            assert await printed(bob.stdout, r"-- joined lobby .*") == f"-- joined lobby (2 here: {here})"
            # --history (20 by default): what was said before, with its time and name.
            await printed(bob.stdout, rf"\[\d\d:\d\d:\d\d\] {alice.name}: said before bob came")
            assert await presence(alice) == Presence("lobby", (name,), ())

            await alice.say("lobby", "hello bob")
            await printed(bob.stdout, rf"\[\d\d:\d\d:\d\d\] {alice.name}: hello bob")

            bob.stdin.write(b"hello alice, from the terminal\n")
            await bob.stdin.drain()
            assert (await message_from(alice, name)).text == "hello alice, from the terminal"
            await printed(bob.stdout, rf"\[\d\d:\d\d:\d\d\] {name}: hello alice, from the terminal")

            bob.stdin.close()  # the end of input: bob leaves, and the program ends
            assert await asyncio.wait_for(bob.wait(), TIMEOUT) == 0
            assert await presence(alice) == Presence("lobby", (), (name,))
        finally:
            if bob.returncode is None:
                bob.kill()
                await bob.wait()


async def test_the_terminal_chat_says_why_it_stops(uvicorn_server: Server) -> None:
    command = [sys.executable, "-m", "asgi_chat.client", uvicorn_server.url, "--user", "bob", "--room", "No Room"]
    bob = await asyncio.create_subprocess_exec(
        *command, stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL
    )
    _, stderr = await asyncio.wait_for(bob.communicate(), TIMEOUT)
    assert bob.returncode == 1
    assert stderr.decode().startswith("-- bad_room: join No Room: a room name is 1 to 64 of a-z")

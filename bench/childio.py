"""What the Python load clients (abuse.py, honest.py) share with the orchestrator: JSON lines out,
commands in, and the event loop they run on.

The orchestrator reads a client's stdout as JSON lines, as it reads wsload's
(``orchestra/client.py``), and writes one-word commands to its stdin (``go``, ``stop``); EOF on
stdin means "exit now". Every wait is bounded by the client's own ``--deadline``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, flushed at once: the orchestrator waits for it."""
    sys.stdout.write(json.dumps({"event": event, **fields}, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Commands:
    """Lines read from stdin without blocking the event loop; EOF is the command ``eof``."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._buffer = b""
        self._fd = sys.stdin.fileno()
        os.set_blocking(self._fd, False)
        asyncio.get_running_loop().add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            chunk = os.read(self._fd, 4096)
        except BlockingIOError:
            return
        if not chunk:
            asyncio.get_running_loop().remove_reader(self._fd)
            self._queue.put_nowait("eof")
            return
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\n")
            self._queue.put_nowait(line.decode().strip())

    async def wait_for(self, *words: str, within: float) -> str:
        """The first of ``words`` (or ``eof``) to arrive within ``within`` seconds; ``timeout`` if none."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while (left := end - loop.time()) > 0:
            try:
                word = await asyncio.wait_for(self._queue.get(), left)
            except TimeoutError:
                break
            if word in words or word == "eof":
                return word
        return "timeout"


def run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run ``main`` on uvloop when it is installed (as the servers do), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main())
    return uvloop.run(main())


def set_priority(nice: int) -> None:
    """Set this process's niceness (absolute). The honest client runs at a higher priority than the
    attackers that share CPU 1 with it (it would have a device of its own), so what it measures is
    the server's delay, not a wait for its own CPU. Raising a priority needs root: without it, the
    client keeps the default and says so on stderr."""
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        print(f"cannot set niceness {nice}: left at {os.getpriority(os.PRIO_PROCESS, 0)}", file=sys.stderr)

"""The C load generator (wsload) as a child process speaking JSON lines."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from .config import CLIENT_CPU, WSLOAD
from .processes import ServerProcess, taskset
from .procfs import Mark


class ClientTimeout(RuntimeError):
    pass


class LoadClient:
    """wsload pinned to `cpus` (CLIENT_CPU but for scale-out); JSON lines on its stdout, commands on its stdin.

    `program` runs another client speaking the same way instead (the fairness scenario's Python
    clients, bench/abuse.py and bench/honest.py).
    """

    def __init__(
        self, args: Sequence[str], stderr_path: Path, cpus: int | str = CLIENT_CPU, program: Sequence[str] = ()
    ) -> None:
        self.argv = [*taskset(cpus), *(program or [str(WSLOAD)]), *args]
        self.stderr: IO[bytes] = stderr_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.buffer = b""

    def event(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientTimeout("the load generator did not report in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ClientTimeout(f"the load generator exited with {self.proc.wait()}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        return event

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()

    def finish(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()

    def expect(self, name: str, timeout: float) -> dict[str, Any]:
        """Events up to the first `name`; a `result` with an error before it raises ClientTimeout."""
        deadline = time.monotonic() + timeout
        while (event := self.event(deadline))["event"] != name:
            if event["event"] == "result" and "error" in event:
                raise ClientTimeout(f"client error: {event['error']}")
        return event


# --- scenarios ----------------------------------------------------------------------------------


def follow(client: LoadClient, proc: ServerProcess, timeout: float) -> tuple[dict[str, Any], dict[str, Mark]]:
    """wsload's events up to its result: CPU marks at the measured phase's start and end."""
    deadline = time.monotonic() + timeout
    marks: dict[str, Mark] = {}
    while (event := client.event(deadline))["event"] != "result":
        if event["event"] in ("start", "end"):
            marks[event["event"]] = Mark.read(proc, client.proc.pid)
    return event, marks

"""A bad setting never breaks an import: the package builds its app on the first scope, and
answers a server's lifespan with the reason (ops/deferred.py). In fresh interpreters, since an
import happens once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers import ROOT

BAD = {"ASGI_CHAT_RATE_PER_SECOND": "abc"}
REASON = "ASGI_CHAT_RATE_PER_SECOND='abc': expected a number of messages per second >= 0 (0 turns the limit off)"

# The server's side of a lifespan scope on asgi_chat.app, answered on stdout as JSON.
STARTUP = """
import asyncio, json
import asgi_chat
from asgiref.testing import ApplicationCommunicator

async def main():
    server = ApplicationCommunicator(asgi_chat.app, {"type": "lifespan", "asgi": {"version": "3.0"}})
    await server.send_input({"type": "lifespan.startup"})
    print(json.dumps(await server.receive_output(5)))
    await server.wait(5)

asyncio.run(main())
"""


def python(code: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with the bad setting and no other ``ASGI_CHAT_*`` variable."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ASGI_CHAT_")}
    return subprocess.run(
        [sys.executable, "-c", code], env={**env, **BAD}, cwd=ROOT, capture_output=True, text=True, timeout=30
    )


def test_importing_the_package_and_its_submodules_ignores_a_bad_setting() -> None:
    done = python("import asgi_chat.asgi.parsing, asgi_chat.ops.settings, asgi_chat")
    assert (done.returncode, done.stderr) == (0, "")


def test_the_app_answers_lifespan_startup_with_the_reason_in_one_line() -> None:
    done = python(STARTUP)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer == {"type": "lifespan.startup.failed", "message": f"asgi_chat cannot start: {REASON}"}
    assert "\n" not in answer["message"]
    assert done.stderr.count(REASON) == 1  # logged once, at error

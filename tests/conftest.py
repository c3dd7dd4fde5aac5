"""Shared fixtures. Async tests run on a fresh event loop each (no plugin needed)."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from asgi_chat import ChatApp, Settings, create_app
from tests.helpers import Server, free_port, uvicorn_command
from tests.redis_support import RedisServer, running_redis

# Every server process a test starts shares this secret (guests' tokens are signed with it), as a
# deployment of several processes must (docs/identity.md): with guests on, such a deployment
# without one refuses to start. Tests of that refusal take it out of their own environment.
TEST_SECRET = "the secret every server process of the test suite shares"
os.environ.setdefault("ASGI_CHAT_SECRET", TEST_SECRET)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests with ``asyncio.run``: each gets its own loop, so no test can leak
    a task into the next one."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(pyfuncitem.obj(**kwargs))
    return True


@pytest.fixture
def app() -> ChatApp:
    """An app with the defaults and its own chat: no state shared between tests."""
    return create_app(Settings())


@pytest.fixture
def uvicorn_server(tmp_path: Path) -> Iterator[Server]:
    """``uvicorn asgi_chat:app`` (websockets-sansio) on a free port."""
    port = free_port()
    with Server(uvicorn_command(port), port, tmp_path / "server.log") as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free port in its temporary directory."""
    with running_redis(tmp_path) as server:
        yield server

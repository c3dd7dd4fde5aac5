"""``python -m asgi_chat``: its help, how options reach the app, and real starts on free ports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from websockets.asyncio.client import connect

from asgi_chat.ops import cli
from asgi_chat.ops.logs import LOG_CONFIG_PATH
from tests.helpers import ROOT, TIMEOUT, Server, free_port, recv, recv_many, uvicorn_command

SECRET = "s3cret-value"


def module_command(port: int, *options: str) -> list[str]:
    return [sys.executable, "-m", "asgi_chat", "--port", str(port), *options]


# --- the command line --------------------------------------------------------------------------------


def test_help_says_what_each_option_does() -> None:
    shown = subprocess.run(
        [sys.executable, "-m", "asgi_chat", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30, check=True
    ).stdout
    words = " ".join(shown.split())  # argparse wraps to the terminal's width
    for option, meaning in [
        ("--host", "address to listen on"),
        ("--port", "TCP port"),
        ("--workers", "processes to serve with"),
        ("--trace", "print every ASGI message"),
        ("--broker", "redis://host:port/db"),
        ("--ws", "WebSocket implementation"),
        ("--log-level", "log level"),
    ]:
        assert option in words
        assert meaning in words


def test_options_reach_uvicorn_and_the_app_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(app=app, **options))
    environ: dict[str, str] = {}
    cli.main(
        [
            "--host",
            "0.0.0.0",
            "--port",
            "9001",
            "--workers",
            "3",
            "--trace",
            "--broker",
            "memory://",
            "--ws",
            "wsproto",
        ],
        environ,
    )
    # Each worker builds its own app from the environment: the options travel there.
    assert environ == {"ASGI_CHAT_TRACE": "1", "ASGI_CHAT_BROKER_URL": "memory://"}
    assert ran == {
        "app": "asgi_chat:create_app",
        "factory": True,
        "host": "0.0.0.0",
        "port": 9001,
        "workers": 3,
        "ws": "wsproto",
        "log_level": "info",
        "log_config": str(LOG_CONFIG_PATH),
        "ws_max_size": 65536,  # the app's own message limit, enforced by the server as well
    }


def test_the_servers_message_limit_follows_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    cli.main([], {"ASGI_CHAT_MAX_MESSAGE_BYTES": "1000"})
    assert ran["ws_max_size"] == 1000
    cli.main([], {"ASGI_CHAT_MAX_MESSAGE_BYTES": "0"})  # the app's limit is off: uvicorn keeps its own
    assert ran["ws_max_size"] == 16 * 1024 * 1024


def test_without_options_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    environ = {"ASGI_CHAT_TRACE": "1"}  # set by the operator: the CLI must not undo it
    cli.main([], environ)
    assert environ == {"ASGI_CHAT_TRACE": "1"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--broker", "ftp://x"], "ASGI_CHAT_BROKER_URL='ftp://x': expected memory://"),
        (["--workers", "0"], "expected a number of processes >= 1"),
        (["--ws", "none"], "invalid choice"),
    ],
)
def test_a_bad_option_is_a_usage_error(options: list[str], message: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asgi_chat", *options], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert run.returncode == 2
    assert message in run.stderr


def test_a_bad_setting_in_the_environment_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exited:
        cli.main([], {"ASGI_CHAT_RATE_PER_SECOND": "fast"})
    assert exited.value.code == 2


# --- real starts ---------------------------------------------------------------------------------------


async def test_a_traced_start_serves_logs_redacted_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    server = Server(module_command(port, "--trace"), port, tmp_path / "server.log").start()
    try:
        async with connect(f"{server.url}/items/foo/ws?token={SECRET}", open_timeout=TIMEOUT) as ws:
            await ws.send("hi")
            assert await recv_many(ws, 2) == [
                f"Session cookie or query token value is: {SECRET}",
                "Message text was: hi, for item ID: foo",
            ]
    finally:
        exit_code = server.stop()
    log = server.output()
    # uvicorn ends a SIGTERM'd server by re-raising the signal once it has shut down cleanly.
    assert exit_code == -15
    assert "Application shutdown complete" in log
    # logging.json: the trace on its own handler, uvicorn's access line redacted, no secret anywhere.
    assert "trace #2 +" in log
    assert "websocket.send text='Session cookie or query token value is: [redacted]'" in log
    assert 'WebSocket /items/foo/ws?token=[redacted]" [accepted]' in log
    assert SECRET not in log


async def test_several_workers_serve_and_stop(tmp_path: Path) -> None:
    port = free_port()
    with Server(module_command(port, "--workers", "2"), port, tmp_path / "server.log") as server:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("hello")
            assert await recv(ws) == "Message text was: hello"
    assert server.output().count("Started server process") == 2


async def test_plain_uvicorn_still_serves_and_traces_when_asked(tmp_path: Path) -> None:
    """``uvicorn asgi_chat:app`` stays the primary way; ASGI_CHAT_TRACE=1 works there too, with no
    logging configuration for the trace (asgi_chat.ops.trace adds its own handler)."""
    port = free_port()
    env = {"ASGI_CHAT_TRACE": "1"}
    with Server(uvicorn_command(port), port, tmp_path / "server.log", env) as server:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT) as ws:
            await ws.send("hello")
            assert await recv(ws) == "Message text was: hello"
    assert "trace #2 +" in server.output()
    assert "← websocket.receive text='hello'" in server.output()

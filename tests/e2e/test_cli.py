"""``python -m asgi_chat``: its help, how options reach the app, and real starts on free ports."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from asgi_chat import cli
from asgi_chat.ops.logs import LOG_CONFIG_PATH
from tests.helpers import ROOT, TIMEOUT, Server, closed, free_port, recv, recv_many, uvicorn_command

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
        ("--state", "where shared state lives: memory://"),
        ("--broker", "--broker is its old name"),
        ("--ws", "WebSocket implementation"),
        ("--log-level", "log level"),
        ("--forwarded-allow-ips", "reverse proxies whose X-Forwarded-For"),
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
            "--state",
            "memory://",
            "--ws",
            "wsproto",
            "--forwarded-allow-ips",
            "10.0.0.1,10.0.0.2",
        ],
        environ,
    )
    # Each worker builds its own app from the environment: the options travel there.
    assert environ == {"ASGI_CHAT_TRACE": "1", "ASGI_CHAT_STATE_URL": "memory://"}
    assert ran == {
        # The deferred app: each worker builds it on its first scope, and answers a setting it
        # cannot use with lifespan.startup.failed.
        "app": "asgi_chat:app",
        "host": "0.0.0.0",
        "port": 9001,
        "workers": 3,
        "ws": "wsproto",
        "log_level": "info",
        "log_config": str(LOG_CONFIG_PATH),
        "forwarded_allow_ips": "10.0.0.1,10.0.0.2",  # uvicorn's own setting, passed as it is
        "ws_max_size": 65536 + 65536,  # above the app's own message limit: the app answers
    }


def test_the_servers_message_limit_follows_the_apps(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    cli.main([], {"ASGI_CHAT_MAX_MESSAGE_BYTES": "1000"})
    assert ran["ws_max_size"] == 1000 + 64 * 1024
    cli.main([], {"ASGI_CHAT_MAX_MESSAGE_BYTES": "0"})  # the app's limit is off: uvicorn keeps its own
    assert ran["ws_max_size"] == 16 * 1024 * 1024


def test_without_forwarded_allow_ips_uvicorn_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    """None: uvicorn's default, which reads FORWARDED_ALLOW_IPS (else 127.0.0.1,::1) as plain
    uvicorn does; the real start below shows the variable at work."""
    ran: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: ran.update(options))
    cli.main([], {})
    assert ran["forwarded_allow_ips"] is None


def test_without_options_the_environment_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: None)
    environ = {"ASGI_CHAT_TRACE": "1"}  # set by the operator: the CLI must not undo it
    cli.main([], environ)
    assert environ == {"ASGI_CHAT_TRACE": "1"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--state", "ftp://x"], "ASGI_CHAT_STATE_URL='ftp://x': expected memory://"),
        (["--broker", "ftp://x"], "ASGI_CHAT_STATE_URL='ftp://x': expected memory://"),  # its old name
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


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        (
            "ASGI_CHAT_MAX_MESSAGE_BYTES",
            "abc",
            "ASGI_CHAT_MAX_MESSAGE_BYTES='abc': expected a whole number of bytes >= 0 (0 turns the limit off)",
        ),
        ("ASGI_CHAT_STATE_URL", "ftp://x", "ASGI_CHAT_STATE_URL='ftp://x': expected memory:// or redis://"),
        # Checked when the app is built, not when the settings are read: the CLI builds one too.
        ("ASGI_CHAT_ALLOWED_ORIGINS", "foo", "ASGI_CHAT_ALLOWED_ORIGINS: 'foo' is not scheme://host[:port]"),
    ],
)
def test_a_bad_setting_is_one_line_and_exit_status_2(variable: str, value: str, line: str) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "asgi_chat"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env=bad(variable, value),
    )
    assert run.returncode == 2
    [said] = run.stderr.splitlines()  # one line: no traceback, no usage of the options
    assert said.startswith(f"python -m asgi_chat: error: {line}")
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("variable", "value"), [("ASGI_CHAT_MAX_MESSAGE_BYTES", "abc"), ("ASGI_CHAT_BROKER_URL", "ftp://x")]
)
def test_under_uvicorn_a_bad_setting_fails_the_startup_in_one_line(variable: str, value: str) -> None:
    """lifespan.rst: on lifespan.startup.failed "the server should log/print the message ... and then exit"."""
    run = subprocess.run(
        uvicorn_command(free_port()), cwd=ROOT, capture_output=True, text=True, timeout=30, env=bad(variable, value)
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0  # uvicorn: 3
    assert f"ERROR:    asgi_chat cannot start: {variable}={value!r}: expected" in output
    assert "Application startup failed. Exiting." in output
    assert "Traceback" not in output, output


def bad(variable: str, value: str) -> dict[str, str]:
    environ = {name: text for name, text in os.environ.items() if not name.startswith("ASGI_CHAT_")}
    return {**environ, variable: value}


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


async def test_a_message_over_the_apps_limit_meets_the_apps_1009_and_is_counted(tmp_path: Path) -> None:
    """What ``make run`` serves: the app's limit and reason, counted in /metrics; only a message
    beyond the server's cap (the limit plus SERVER_HEADROOM) is closed by uvicorn itself."""
    port = free_port()
    cap = 65536 + cli.SERVER_HEADROOM
    with Server(module_command(port), port, tmp_path / "server.log") as server:
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT, max_size=None) as ws:
            await ws.send("x" * 70_000)
            assert await closed(ws) == (1009, "message too big: the limit is 65536 bytes")
        async with connect(f"{server.url}/ws", open_timeout=TIMEOUT, max_size=None) as ws:
            await ws.send("x" * (cap + 1))
            code, reason = await closed(ws)
            assert code == 1009
            assert str(cap) in str(reason), reason  # uvicorn's own reason, which names its cap
        scraped = await asyncio.to_thread(http_text, f"{server.http_url}/metrics")
    closes = {
        sample.labels["code"]: sample.value
        for family in text_string_to_metric_families(scraped)
        if family.name == "asgi_chat_closes"
        for sample in family.samples
        if sample.name == "asgi_chat_closes_total"
    }
    assert closes["1009"] == 1  # the app's close; uvicorn's is not the app's and is not counted


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        return str(response.read().decode())


async def test_a_start_honours_forwarded_allow_ips_and_warns_a_misspelt_setting_once(tmp_path: Path) -> None:
    """FORWARDED_ALLOW_IPS works as under plain uvicorn; the CLI and the server, one process here,
    both read ASGI_CHAT_MAX_MESAGE_BYTES (sic), and it is warned about once."""
    port = free_port()
    env = {"FORWARDED_ALLOW_IPS": "127.0.0.7", "ASGI_CHAT_MAX_MESAGE_BYTES": "1"}
    with Server(module_command(port), port, tmp_path / "server.log", env) as server:
        # A proxy at 127.0.0.7 forwarding a client at 203.0.113.9.
        headers = {"X-Forwarded-For": "203.0.113.9"}
        async with connect(
            f"{server.url}/ws", additional_headers=headers, local_addr=("127.0.0.7", 0), open_timeout=TIMEOUT
        ) as ws:
            await ws.send("hello")
            assert await recv(ws) == "Message text was: hello"
    log = server.output()
    assert '203.0.113.9:0 - "WebSocket /ws" [accepted]' in log  # the forwarded address, port unknown
    assert log.count("ignoring unknown setting ASGI_CHAT_MAX_MESAGE_BYTES") == 1, log
    assert "carries X-Forwarded-For" not in log


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

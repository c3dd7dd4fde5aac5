"""The security defences against a real uvicorn and a real client: origins, and logs without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_chat.ops.logs import LOG_CONFIG_PATH
from tests.helpers import Server, free_port, recv, uvicorn_command

SECRET = "Zq9-s3cret-credential"


async def test_a_foreign_origin_gets_403_even_with_the_users_cookie(uvicorn_server: Server) -> None:
    url = f"{uvicorn_server.url}/items/foo/ws"
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, origin="http://evil.example", additional_headers={"Cookie": "session=users"}):  # type: ignore[arg-type]
            pass
    response = caught.value.response
    assert (response.status_code, response.body) == (403, b"origin not allowed: http://evil.example:80\n")
    same_origin = f"http://127.0.0.1:{uvicorn_server.port}"
    async with connect(url, origin=same_origin, additional_headers={"Cookie": "session=users"}) as ws:  # type: ignore[arg-type]
        await ws.send("hi")
        assert await recv(ws) == "Session cookie or query token value is: users"


async def use_every_kind_of_credential(server: Server) -> None:
    base = f"{server.url}/items/foo/ws"
    async with connect(f"{base}?token={SECRET}&q=1") as ws:
        await ws.send("a")
        await recv(ws)
    async with connect(base, additional_headers={"Cookie": f"session={SECRET}"}) as ws:
        await ws.send("b")
        await recv(ws)
    async with connect(base, subprotocols=["bearer", SECRET]) as ws:  # type: ignore[list-item]
        await ws.send("c")
        await recv(ws)
    with pytest.raises(InvalidStatus):  # a refused one is logged too
        async with connect(f"{base}?token={SECRET}&q=bad"):
            pass


@pytest.mark.parametrize(
    "extra",
    [
        ["--log-config", str(LOG_CONFIG_PATH), "--log-level", "trace"],  # what `python -m asgi_chat` uses
        ["--log-level", "trace"],  # plain uvicorn: the app adds the redaction itself at start-up
    ],
    ids=["shipped-config", "plain-uvicorn"],
)
async def test_no_credential_in_any_log_line(extra: list[str], tmp_path: Path) -> None:
    port = free_port()
    server = Server([*uvicorn_command(port), *extra], port, tmp_path / "server.log")
    with server:
        await use_every_kind_of_credential(server)
    log = server.output()
    assert "/items/foo/ws?token=[redacted]&q=1" in log, log  # the handshake lines were written...
    assert "WebSocket /items/foo/ws" in log
    assert SECRET not in log, [line for line in log.splitlines() if SECRET in line]  # ...without the secret

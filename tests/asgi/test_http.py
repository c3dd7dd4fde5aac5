"""HTTP through the app, with asgiref's ApplicationCommunicator: pages, assets, health, errors."""

from __future__ import annotations

import json

import pytest

from asgi_chat import ChatApp, create_app
from asgi_chat.asgi.app import HttpRequest
from asgi_chat.asgi.responses import Response, text
from asgi_chat.asgi.routing import Route
from asgi_chat.composition import HTTP_ROUTES
from asgi_chat.context import Context
from asgi_chat.ops.settings import Settings
from tests.helpers import WebSocketClient, http_get

PAGES = {
    "/": [b'id="ws-id"', b'id="messageText"', b'id="messages"', b"<form"],
    "/echo": [b'id="messageText"', b'id="messages"', b"<form"],
    "/items": [b'id="itemId"', b'id="token"', b'id="messageText"', b'id="messages"'],
}


@pytest.mark.parametrize("path", PAGES)
async def test_pages_are_html5_with_the_tutorials_element_ids(app: ChatApp, path: str) -> None:
    status, headers, body = await http_get(app, path)
    assert status == 200
    assert headers[b"content-type"] == b"text/html; charset=utf-8"
    assert body.startswith(b"<!DOCTYPE html>")
    for element in PAGES[path]:
        assert element in body
    assert b"localhost:8000" not in body
    assert b"<script>" not in body  # no inline script: the CSP forbids it


@pytest.mark.parametrize("path", PAGES)
async def test_pages_carry_the_security_headers(app: ChatApp, path: str) -> None:
    _, headers, _ = await http_get(app, path)
    policy = headers[b"content-security-policy"]
    assert b"script-src 'self'" in policy
    assert b"unsafe-inline" not in policy
    assert b"frame-ancestors 'none'" in policy
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"no-referrer"


async def test_head_has_the_headers_of_get_and_no_body(app: ChatApp) -> None:
    get_status, get_headers, body = await http_get(app, "/")
    head_status, head_headers, head_body = await http_get(app, "/", "HEAD")
    assert (get_status, head_status, head_body) == (200, 200, b"")
    assert head_headers == get_headers
    assert int(head_headers[b"content-length"]) == len(body)


@pytest.mark.parametrize("path", ["/", "/echo", "/items", "/chat/config", "/healthz", "/metrics", "/static/style.css"])
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_other_methods_on_known_paths_get_405_with_allow(app: ChatApp, path: str, method: str) -> None:
    status, headers, body = await http_get(app, path, method)
    assert status == 405
    assert headers[b"allow"] == b"GET, HEAD"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert body == b"Method Not Allowed\n"


@pytest.mark.parametrize("path", ["/nope", "/ws", "/echo/", "/static/missing.js", "/static/../application.py"])
@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_unknown_paths_get_404_whatever_the_method(app: ChatApp, path: str, method: str) -> None:
    status, headers, body = await http_get(app, path, method)
    assert status == 404
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert body == b"Not Found\n"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("chat.js", b"text/javascript; charset=utf-8"), ("style.css", b"text/css; charset=utf-8")],
)
async def test_assets_have_their_content_type_and_revalidate_by_etag(
    app: ChatApp, name: str, content_type: bytes
) -> None:
    status, headers, body = await http_get(app, f"/static/{name}")
    assert (status, headers[b"content-type"]) == (200, content_type)
    assert headers[b"cache-control"] == b"no-cache"
    etag = headers[b"etag"]
    status, headers, body = await http_get(app, f"/static/{name}", headers=[(b"if-none-match", etag)])
    assert (status, body, headers[b"etag"]) == (304, b"", etag)
    status, _, _ = await http_get(app, f"/static/{name}", headers=[(b"if-none-match", b'"other"')])
    assert status == 200


async def test_chat_config_says_guests_and_no_token_url_by_default(app: ChatApp) -> None:
    """What the /chat page reads before it signs anyone in: a fresh answer each time (no-store),
    under the same security headers as every response."""
    status, headers, body = await http_get(app, "/chat/config")
    assert (status, headers[b"content-type"]) == (200, b"application/json")
    assert json.loads(body) == {"token_url": None, "guests": True}
    assert headers[b"cache-control"] == b"no-store"
    assert b"default-src 'none'" in headers[b"content-security-policy"]
    assert headers[b"x-content-type-options"] == b"nosniff"
    head_status, head_headers, head_body = await http_get(app, "/chat/config", "HEAD")
    assert (head_status, head_body, head_headers[b"content-length"]) == (200, b"", str(len(body)).encode())


@pytest.mark.parametrize(
    ("token_url", "guests"),
    [("/auth/chat-token", False), ("https://accounts.example/chat-token", True)],
)
async def test_chat_config_says_where_the_page_gets_a_token(token_url: str, guests: bool) -> None:
    # ASGI_CHAT_TOKEN_URL and ASGI_CHAT_GUESTS, as given; never a key or a secret.
    secret = "an operator secret of forty bytes, or so"
    app = create_app(Settings(token_url=token_url, guests=guests, jwt_secret=secret))
    status, _, body = await http_get(app, "/chat/config")
    assert status == 200
    assert json.loads(body) == {"token_url": token_url, "guests": guests}
    assert secret.encode() not in body


async def test_healthz_counts_accepted_websockets_still_open(app: ChatApp) -> None:
    async def connections() -> int:
        status, headers, body = await http_get(app, "/healthz")
        assert (status, headers[b"content-type"]) == (200, b"application/json")
        data = json.loads(body)
        assert data["status"] == "ok"
        return int(data["connections"])

    assert await connections() == 0
    echo, chat, refused = (
        WebSocketClient(app, "/ws"),
        WebSocketClient(app, "/ws/1"),
        WebSocketClient(app, "/items/x/ws"),
    )
    await echo.accept()
    await chat.accept()
    assert (await refused.connect())["type"] == "websocket.close"
    assert await connections() == 2
    await echo.disconnect()
    assert await connections() == 1
    await chat.disconnect()
    assert await connections() == 0


async def page_number(request: HttpRequest, ctx: Context) -> Response:
    return text(200, f"page {request.params['n']!r}\n")  # repr: an int, not the path's text


async def test_a_typed_parameter_that_does_not_parse_is_a_404_for_http_and_a_1008_for_websocket(app: ChatApp) -> None:
    # One routing error (BadParameter), mapped by each protocol: no such resource, or a refusal naming it.
    paged = ChatApp(app.ctx, http_routes=(*HTTP_ROUTES, Route("/page/{n:int}", page_number)))
    status, _, body = await http_get(paged, "/page/3")
    assert (status, body) == (200, b"page 3\n")
    status, headers, body = await http_get(paged, "/page/abc")
    assert (status, headers[b"content-type"], body) == (404, b"text/plain; charset=utf-8", b"Not Found\n")
    answer = await WebSocketClient(paged, "/ws/abc").connect()
    assert answer == {"type": "websocket.close", "code": 1008, "reason": "invalid client_id: expected an integer"}

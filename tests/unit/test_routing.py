"""The router: which path matches which route, with which typed parameters."""

from __future__ import annotations

import pytest

from asgi_chat.asgi.errors import BadParameter, NoRoute
from asgi_chat.asgi.routing import Route, resolve
from asgi_chat.composition import HTTP_ROUTES, WEBSOCKET_ROUTES


@pytest.mark.parametrize(
    ("path", "pattern", "params"),
    [
        ("/ws", "/ws", {}),
        ("/ws/7", "/ws/{client_id:int}", {"client_id": 7}),
        ("/ws/+07", "/ws/{client_id:int}", {"client_id": 7}),
        ("/ws/ 7 ", "/ws/{client_id:int}", {"client_id": 7}),  # spaces decoded from %20 are allowed
        ("/items/foo/ws", "/items/{item_id}/ws", {"item_id": "foo"}),
        ("/items/a b/ws", "/items/{item_id}/ws", {"item_id": "a b"}),  # any non-empty segment
        ("/items/\u00e9t\u00e9/ws", "/items/{item_id}/ws", {"item_id": "\u00e9t\u00e9"}),
    ],
)
def test_websocket_routes_match(path: str, pattern: str, params: dict[str, object]) -> None:
    match = resolve(WEBSOCKET_ROUTES, path)
    assert (match.route.pattern, match.params) == (pattern, params)


@pytest.mark.parametrize(
    "path",
    [
        "/",  # an HTTP-only path
        "/ws/",  # a trailing slash is another (empty) segment
        "/ws//",
        "/items//ws",  # an empty item_id
        "/items/a/b/ws",  # what /items/a%2Fb/ws decodes to in the ASGI path: two segments
        "/items/foo/ws/",
        "/WS",  # paths are case-sensitive
        "",
        "/ws/1/2",
    ],
)
def test_websocket_routes_do_not_match(path: str) -> None:
    with pytest.raises(NoRoute, match="not found"):
        resolve(WEBSOCKET_ROUTES, path)


@pytest.mark.parametrize("client_id", ["abc", "1.5", "1e3", "0x10", "\u0663", "1234567890123456789"])
def test_a_chat_path_with_a_bad_client_id_names_the_parameter(client_id: str) -> None:
    with pytest.raises(BadParameter, match="invalid client_id: expected an integer"):
        resolve(WEBSOCKET_ROUTES, f"/ws/{client_id}")


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("/", "/"),
        ("/echo", "/echo"),
        ("/items", "/items"),
        ("/healthz", "/healthz"),
        ("/metrics", "/metrics"),
    ],
)
def test_http_routes(path: str, pattern: str) -> None:
    assert resolve(HTTP_ROUTES, path).route.pattern == pattern


@pytest.mark.parametrize("path", ["/echo/", "/static/", "/static/a/b.js", "/nope", "//"])
def test_http_routes_do_not_match(path: str) -> None:
    with pytest.raises(NoRoute):
        resolve(HTTP_ROUTES, path)


def test_first_matching_route_wins() -> None:
    routes = [Route("/a/{x}", "first"), Route("/a/b", "second")]
    assert resolve(routes, "/a/b").route.endpoint == "first"

"""Property-based tests: any input to a parser gives a value or a ValueError, never anything else."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from asgi_chat.asgi.errors import NoRoute, NotFound
from asgi_chat.asgi.parsing import MAX_INT_DIGITS, parse_cookies, parse_int, parse_origin, parse_query
from asgi_chat.asgi.routing import resolve
from asgi_chat.composition import WEBSOCKET_ROUTES
from asgi_chat.ops.logs import REDACTED, redact


@given(st.binary())
def test_any_query_string_parses_to_text(raw: bytes) -> None:
    for name, value in parse_query(raw).items():
        assert isinstance(name, str)
        assert isinstance(value, str)


@given(st.dictionaries(st.text(min_size=1), st.text()))
def test_query_strings_round_trip_as_browsers_encode_them(params: dict[str, str]) -> None:
    from urllib.parse import urlencode

    assert parse_query(urlencode(params).encode()) == params


@given(st.lists(st.binary(), max_size=4))
def test_any_cookie_headers_parse_to_stripped_names(headers: list[bytes]) -> None:
    for name, value in parse_cookies(headers).items():
        assert name
        assert name == name.strip()
        assert ";" not in name + value


@given(st.text())
def test_any_text_is_an_integer_or_a_value_error(text: str) -> None:
    try:
        value = parse_int(text)
    except ValueError:
        return
    assert abs(value) < 10**MAX_INT_DIGITS
    assert re.fullmatch(r" *[+-]?[0-9]+ *", text)


@given(st.integers(min_value=-(10**MAX_INT_DIGITS) + 1, max_value=10**MAX_INT_DIGITS - 1))
def test_every_integer_in_range_round_trips(number: int) -> None:
    assert parse_int(str(number)) == number
    assert parse_int(f" +{abs(number)} ") == abs(number)


@given(st.text())
def test_any_origin_text_is_an_origin_or_a_value_error(text: str) -> None:
    try:
        origin = parse_origin(text)
    except ValueError:
        return
    assert origin.scheme in ("http", "https")
    assert 0 < origin.port < 65536


@given(st.text())
def test_any_path_routes_or_refuses_with_a_close_code(path: str) -> None:
    try:
        match = resolve(WEBSOCKET_ROUTES, path)
    except NoRoute as error:
        code = NotFound.from_route(error).code
    else:
        assert match.route.match(path) == match.params
        return
    assert code in (1000, 1008)


@given(st.text(alphabet=st.characters(blacklist_characters="&;#'\" \t\n\r"), min_size=1))
def test_a_token_in_a_query_never_survives_redaction(token: str) -> None:
    line = f'"WebSocket /items/x/ws?q=1&token={token}&x=2" [accepted]'
    assert f"token={REDACTED}&x=2" in redact(line)

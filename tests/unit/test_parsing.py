"""The pure parsers, each with a table of real and hostile inputs (a comment on each odd row)."""

from __future__ import annotations

import pytest

from asgi_chat.asgi.parsing import (
    Origin,
    header_values,
    parse_cookies,
    parse_host,
    parse_int,
    parse_origin,
    parse_query,
    request_origin,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("+03", 3),  # normalised: the reply shows 3
        ("-7", -7),
        ("  12  ", 12),  # surrounding ASCII spaces are allowed
        ("000000000000000001", 1),  # 18 digits, leading zeros count
        ("999999999999999999", 999_999_999_999_999_999),
        ("-999999999999999999", -999_999_999_999_999_999),
    ],
)
def test_parse_int_accepts(text: str, expected: int) -> None:
    assert parse_int(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",  # present but empty is invalid, not absent
        " ",
        "bar",
        "3.5",
        "1e3",  # float() would take it
        "0x10",  # int(x, 0) would take it
        "1_000",  # int() takes underscores
        "\u0663",  # Arabic-Indic three: int() takes it, we do not
        "\uff11\uff12",  # fullwidth digits
        "+",
        "-",
        "+-1",
        "1 2",
        "\t1",  # only spaces are trimmed, not tabs
        "1\n",  # $ would match before a final newline; \Z does not
        "1234567890123456789",  # 19 digits
        "0000000000000000001",  # 19 digits even though the value is small
    ],
)
def test_parse_int_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not an integer"):
        parse_int(text)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", {}),
        (b"token=abc&q=5", {"token": "abc", "q": "5"}),
        (b"q=", {"q": ""}),  # present, empty
        (b"q", {"q": ""}),  # a key without = has the empty value
        (b"a=1&a=2", {"a": "2"}),  # the last of repeated keys wins
        (b"token=a+b", {"token": "a b"}),  # + is a space
        (b"token=a%2Bb", {"token": "a+b"}),  # an escaped + is a plus
        (b"token=%E2%82%AC", {"token": "\u20ac"}),  # UTF-8 escapes
        (b"token=%FF", {"token": "\ufffd"}),  # invalid UTF-8 becomes U+FFFD
        (b"token=%zz", {"token": "%zz"}),  # a malformed escape stays as it is
        (b"token=%", {"token": "%"}),
        (b"&&token=x&&", {"token": "x"}),  # empty pairs are skipped
        (b"token=a=b", {"token": "a=b"}),  # only the first = splits
        (b"%74oken=x", {"token": "x"}),  # names are decoded too
        (b"=x", {"": "x"}),
        (b"t\xc3\xa9=1", {"t\u00e9": "1"}),  # raw UTF-8 bytes from a lax client
    ],
)
def test_parse_query(raw: bytes, expected: dict[str, str]) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], {}),
        ([b"session=abc"], {"session": "abc"}),
        ([b"a=1; session=abc; b=2"], {"a": "1", "session": "abc", "b": "2"}),
        ([b"session=abc;other=1"], {"session": "abc", "other": "1"}),  # no space after ;
        ([b'session="abc"'], {"session": "abc"}),  # surrounding quotes removed
        ([b'session="abc'], {"session": '"abc'}),  # an unbalanced quote stays
        ([b"session= abc "], {"session": "abc"}),  # whitespace stripped
        ([b"  session  =abc"], {"session": "abc"}),
        ([b"session=a%20b"], {"session": "a%20b"}),  # no percent-decoding
        ([b"session=a=b"], {"session": "a=b"}),  # split on the first = only
        ([b"session"], {}),  # a pair without = names no cookie we use
        ([b"=abc"], {}),  # nor does an empty name
        ([b"session=1; session=2"], {"session": "2"}),  # the last duplicate wins
        ([b"session=1", b"session=2"], {"session": "2"}),  # several headers merged in order
        ([b"a=1", b"b=2"], {"a": "1", "b": "2"}),
        ([b"Session=abc"], {"Session": "abc"}),  # names are case-sensitive
        ([b"session=caf\xe9"], {"session": "caf\u00e9"}),  # bytes decode as latin-1
        ([b";;; ;"], {}),
        ([b"session="], {"session": ""}),  # empty value kept: the endpoint decides
    ],
)
def test_parse_cookies(headers: list[bytes], expected: dict[str, str]) -> None:
    assert parse_cookies(headers) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://example.com", Origin("http", "example.com", 80)),
        ("https://example.com", Origin("https", "example.com", 443)),
        ("http://Example.COM:8000", Origin("http", "example.com", 8000)),  # hosts compare lowercased
        ("HTTP://example.com", Origin("http", "example.com", 80)),
        ("http://127.0.0.1:8000", Origin("http", "127.0.0.1", 8000)),
        ("http://[::1]:8000", Origin("http", "[::1]", 8000)),
        ("wss://example.com", Origin("https", "example.com", 443)),  # ws(s) counts as http(s)
    ],
)
def test_parse_origin(value: str, expected: Origin) -> None:
    assert parse_origin(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "null",  # an opaque origin: sandboxed frame or file: page
        "",
        "example.com",
        "file:///etc/passwd",
        "http://",
        "http://exa mple.com",
        "http://user@example.com",  # origins carry no user info
        "http://example.com:99999",
        "http://example.com:0",
        "http://example.com/path",  # origins carry no path
        "javascript://x",
    ],
)
def test_parse_origin_refuses(value: str) -> None:
    with pytest.raises(ValueError, match=r"origin|host|port"):
        parse_origin(value)


def test_parse_host_defaults_the_port_by_scheme() -> None:
    assert parse_host("example.com", "https") == ("example.com", 443)
    assert parse_host("example.com:81", "ws") == ("example.com", 81)


def test_request_origin_maps_websocket_schemes_to_page_schemes() -> None:
    assert request_origin("ws", "localhost:8000") == Origin("http", "localhost", 8000)
    assert request_origin("wss", "chat.example") == Origin("https", "chat.example", 443)


def test_header_values_matches_names_case_insensitively_in_order() -> None:
    headers = [(b"cookie", b"a=1"), (b"host", b"x"), (b"Cookie", b"b=2")]
    assert header_values(headers, b"cookie") == [b"a=1", b"b=2"]

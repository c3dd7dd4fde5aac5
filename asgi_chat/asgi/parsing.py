"""Pure parsers for what arrives at the edge: query strings, cookies, integers, origins, hosts.

None of these functions sees ``scope``, ``receive`` or ``send``. They take bytes or strings and
return typed values or raise ``ValueError``, so each is tested with a table of real and hostile
inputs (tests/unit/test_parsing.py) and everything after the router works with typed values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

MAX_INT_DIGITS = 18  # keeps every accepted integer inside a signed 64-bit range

# Optional surrounding ASCII spaces, an optional sign, 1 to 18 ASCII digits. re.ASCII keeps
# \d from matching other scripts' digits; [0-9] says it twice. \Z, unlike $, refuses a final "\n".
_INTEGER = re.compile(rf" *([+-]?[0-9]{{1,{MAX_INT_DIGITS}}}) *\Z", re.ASCII)


def parse_int(text: str) -> int:
    """Parse a decimal integer the way the chat's parameters are written: ``" +03 "`` is 3.

    Refuses empty text, fractions (``3.5``), exponents (``1e3``), hex (``0x10``), non-ASCII
    digits (``"٣"``, which ``int()`` would accept) and more than 18 digits.
    """
    match = _INTEGER.match(text)
    if match is None:
        raise ValueError(f"not an integer: {text[:40]!r}")
    return int(match.group(1))


def parse_query(query_string: bytes) -> dict[str, str]:
    """Parse ``application/x-www-form-urlencoded`` as browsers write it (WHATWG URL, section 5.1).

    ``&`` separates pairs, the first ``=`` splits name from value (no ``=``: the value is empty),
    ``+`` is a space, percent-escapes decode to bytes and the bytes decode as UTF-8 with invalid
    sequences replaced by U+FFFD. A malformed escape (``%zz``) stays as it is. Of repeated names
    the last wins, so ``?token=a&token=b`` means ``b``.
    """
    params: dict[str, str] = {}
    for pair in query_string.split(b"&"):
        if not pair:
            continue
        name, _, value = pair.partition(b"=")
        params[_form_decode(name)] = _form_decode(value)
    return params


def _form_decode(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


def parse_cookies(header_values: Iterable[bytes]) -> dict[str, str]:
    """Parse ``Cookie`` headers the way browsers send them, not the way RFC 6265 describes servers.

    Browsers put almost anything in a cookie value, so a strict RFC parser would drop real cookies.
    Several headers are merged in order (HTTP/2 splits one cookie header into many, RFC 9113
    8.2.3); header bytes decode as latin-1 (HTTP field values are octets, RFC 9110 5.5); pairs
    split on ``;`` and then on the first ``=`` (a pair without ``=`` names no cookie we use);
    whitespace around name and value is dropped, then one pair of surrounding double quotes; no
    percent-decoding; names are case-sensitive; of duplicates the last wins.
    """
    cookies: dict[str, str] = {}
    for header in header_values:
        for pair in header.decode("latin-1").split(";"):
            name, sep, value = pair.partition("=")
            name, value = name.strip(), value.strip()
            if not sep or not name:
                continue
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            cookies[name] = value
    return cookies


@dataclass(frozen=True, slots=True)
class Origin:
    """A web origin (RFC 6454 section 4): scheme, host and port, normalised for comparison."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
# A browser's Origin header names the page (http/https); the WebSocket itself is ws/wss.
_PAGE_SCHEME = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# An authority is host[:port]: a bracketed IPv6 literal or a name without ":", "/", "@" or spaces.
_AUTHORITY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\[\]:/@\s]+)(?::([0-9]{1,5}))?\Z", re.ASCII)


def parse_origin(value: str) -> Origin:
    """Parse an ``Origin`` header (RFC 6454 section 7) into a normalised :class:`Origin`.

    ``null`` (an opaque origin: a sandboxed frame, a ``file:`` page) and anything that is not
    ``scheme://host[:port]`` raise ``ValueError``: such a request cannot prove where it came from.
    """
    scheme, sep, authority = value.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in DEFAULT_PORTS:
        raise ValueError(f"not an http(s) origin: {value[:80]!r}")
    host, port = parse_host(authority, scheme)
    return Origin(_PAGE_SCHEME[scheme], host, port)


def parse_host(authority: str, scheme: str) -> tuple[str, int]:
    """Split ``host[:port]`` (a ``Host`` header, or an origin's authority), lowercased.

    The port defaults by scheme (``http``/``ws`` 80, ``https``/``wss`` 443).
    """
    match = _AUTHORITY.match(authority.strip())
    if match is None:
        raise ValueError(f"not a host[:port]: {authority[:80]!r}")
    host, port = match.group(1).lower(), match.group(2)
    number = int(port) if port else DEFAULT_PORTS[scheme.lower()]
    if not 0 < number < 65536:
        raise ValueError(f"port out of range: {authority[:80]!r}")
    return host, number


def request_origin(scheme: str, host_header: str) -> Origin:
    """The origin a request was made to: its scheme (``ws`` counts as ``http``) and its ``Host``."""
    host, port = parse_host(host_header, scheme)
    return Origin(_PAGE_SCHEME.get(scheme.lower(), scheme.lower()), host, port)


def header_values(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    """Every value of header ``name`` (lowercase), in order. ASGI says names "should be lowercased"
    but does not require it, so compare case-insensitively."""
    return [value for key, value in headers if key.lower() == name]

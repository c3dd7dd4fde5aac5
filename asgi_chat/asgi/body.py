"""An HTTP request's body, read from ``receive`` in chunks, never more than a limit.

ASGI hands an app the body in ``http.request`` messages (specs/www.rst, "Request - receive
event"): ``body`` is "Body of the request", and ``more_body`` "Signifies if there is additional
content to come (as part of a Request message). If True, the consuming application should wait
until it gets a chunk with this set to False." The app asks for each chunk itself, so it decides
how much it takes in: :func:`read_body` stops at the first chunk that takes the count past the
limit and never asks for the rest (the server discards it, or closes the connection). A
``Content-Length`` beyond the limit is refused before a single chunk is read.

A request without ``Content-Length`` (``Transfer-Encoding: chunked``, or HTTP/2, where the
length is optional) is read the same way, counting as it goes: the limit holds all the same, so
411 (Length Required) is never needed.

"http.disconnect" is "Sent to the application if receive is called after a response has been
sent or after the HTTP connection has been closed": while reading, the client has gone, and
:class:`~.errors.Disconnected` says so; nobody is left to answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from http import HTTPStatus

from asgiref.typing import ASGIReceiveCallable

from .errors import ChatError, Disconnected
from .parsing import header_values, parse_int


class BodyTooLarge(ChatError):
    """The body is (or says it is) larger than the endpoint takes: 413."""

    http_status = HTTPStatus.REQUEST_ENTITY_TOO_LARGE

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than {limit} bytes")
        self.limit = limit


class BadLength(ChatError):
    """A ``Content-Length`` that is no length (RFC 9110 8.6: a non-negative decimal): 400."""

    http_status = HTTPStatus.BAD_REQUEST


def declared_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    """The request's ``Content-Length``, or None when it has none (pure).

    RFC 9112 6.3: several values that differ make the length unknowable: refused, as is a value
    that is not a non-negative decimal.
    """
    values = {value.strip() for value in header_values(headers, b"content-length")}
    if not values:
        return None
    if len(values) > 1:
        raise BadLength("conflicting Content-Length headers")
    text = values.pop().decode("latin-1")
    try:
        length = parse_int(text)
    except ValueError:
        raise BadLength("Content-Length is not a number") from None
    if length < 0 or not text.strip().isdigit():
        raise BadLength("Content-Length is not a non-negative number")
    return length


async def read_body(receive: ASGIReceiveCallable, headers: Iterable[tuple[bytes, bytes]], limit: int) -> bytes:
    """The whole body, if it is at most ``limit`` bytes (0: no limit).

    Raises :class:`BodyTooLarge` before reading when ``Content-Length`` says more, or as soon
    as the chunks read so far add up to more (the rest is never asked for);
    :class:`~.errors.Disconnected` when the client goes away on the way.
    """
    length = declared_length(headers)
    if limit and length is not None and length > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected()
        if message["type"] != "http.request":  # nothing else may arrive in an http scope
            raise Disconnected()
        chunk = message.get("body", b"")  # "Optional; if missing defaults to b''"
        size += len(chunk)
        if limit and size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):  # "Optional; if missing defaults to False"
            return b"".join(chunks)

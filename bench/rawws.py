"""A bare WebSocket client (RFC 6455) for the fairness scenario's attackers, idle members and filler.

Why not the ``websockets`` library, as the honest client uses: an attacker must be able to stop
reading altogether (the resume storm's clients never read, with small receive buffers), must
send at a fixed pace with no flow control of a library's between it and the socket, and must
drain replies of hundreds of kilobytes (history pages) without decoding them, since a hundred
attackers share CPU 1 with the honest client they are measured beside. So this client:

- frames text itself, masked with the key 0 (a valid mask, RFC 6455 5.3: the payload is sent
  as is, nothing to XOR; a server cannot tell, and an attacker would do the same);
- reads frames by their headers only, classifies each text frame by the first bytes of its
  payload (``{"type":"..."``, and an error's ``"code"``) and skips the rest unseen;
- answers pings and close frames, and counts close codes and handshake refusals.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

SUBPROTOCOL = "asgi-chat.v1"
PEEK = 256  # payload bytes kept of each frame: enough for its type, an error's code, a joined's epoch
TYPE_RE = re.compile(rb'^\{"type":"([a-z_]+)"')
CODE_RE = re.compile(rb'"code":"([a-z_]+)"')
OP_CONTINUATION, OP_TEXT, OP_CLOSE, OP_PING = 0x0, 0x1, 0x8, 0x9


class Refused(ConnectionError):
    """The server answered the handshake with something other than 101 (or not at all)."""


@dataclass
class Tally:
    """What a process's connections saw, summed: the figures an attacker process reports."""

    frames: Counter[str] = field(default_factory=Counter)  # text frames by "type"
    errors: Counter[str] = field(default_factory=Counter)  # error frames by "code"
    closes: Counter[str] = field(default_factory=Counter)  # close codes; "eof"/"reset" without a close frame
    refused: Counter[str] = field(default_factory=Counter)  # handshakes not answered 101, by status or error
    sent: int = 0  # frames sent after the handshake
    bytes_in: int = 0
    connects: int = 0  # handshakes that succeeded

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": dict(self.frames),
            "errors": dict(self.errors),
            "closes": dict(self.closes),
            "refused": dict(self.refused),
            "sent": self.sent,
            "bytes_in": self.bytes_in,
            "connects": self.connects,
        }


FrameHook = Callable[[str, bytes], None]  # (type, the payload's first PEEK bytes)


def frame_header(length: int) -> bytes:
    """FIN + text opcode, the mask bit and the payload length, then the mask key 0."""
    if length < 126:
        head = bytes((0x81, 0x80 | length))
    elif length < 65536:
        head = bytes((0x81, 0x80 | 126)) + length.to_bytes(2, "big")
    else:
        head = bytes((0x81, 0x80 | 127)) + length.to_bytes(8, "big")
    return head + b"\0\0\0\0"


def control_frame(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, 0x80 | len(payload))) + b"\0\0\0\0" + payload


class RawConnection(asyncio.Protocol):
    """One client connection: the handshake, then frames sent as given and read by their headers."""

    def __init__(self, tally: Tally, read: bool, on_frame: FrameHook | None = None) -> None:
        self.tally = tally
        self.read = read
        self.on_frame = on_frame
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.opened.add_done_callback(_retrieved)  # a refusal nobody waits for any more is no error
        self.closed: asyncio.Future[None] = loop.create_future()
        self.is_open = False
        self._head = b""  # the handshake's response, until its blank line
        self._buffer = bytearray()
        self._skip = 0  # payload bytes of a long frame still to discard
        self._saw_close = False
        self._ending = False  # we close it: its end is not counted as the server's

    def start(self, transport: asyncio.Transport, request: bytes) -> None:
        self.transport = transport
        transport.write(request)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not asyncio.Transport's subclasses

    def send_text(self, payload: bytes) -> None:
        if self.is_open and self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame_header(len(payload)) + payload)
            self.tally.sent += 1

    def close(self) -> None:
        """Leave at once (abort): the measurement is over, or this attacker starts again."""
        self._ending = True
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.tally.bytes_in += len(data)
        if not self.is_open:
            self._handshake(data)
        else:
            self._frames(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.tally.refused["closed"] += 1
            self.opened.set_exception(Refused(f"closed before the handshake: {exc!r}"))
        elif self.is_open and not self._saw_close and not self._ending:
            self.tally.closes["reset" if exc else "eof"] += 1
        self.is_open = False
        if not self.closed.done():
            self.closed.set_result(None)

    def _handshake(self, data: bytes) -> None:
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            return
        status = self._head[9:12].decode(errors="replace")
        rest, self._head = self._head[end + 4 :], b""
        if status != "101":
            self.tally.refused[status] += 1
            self.opened.set_exception(Refused(f"handshake answered {status}"))
            self.close()
            return
        self.is_open = True
        self.tally.connects += 1
        self.opened.set_result(None)
        if not self.read and self.transport is not None:
            self.transport.pause_reading()  # from here on the kernel's buffers fill, then the server's
        if rest:
            self._frames(rest)

    def _frames(self, data: bytes) -> None:
        if self._skip:
            used = min(self._skip, len(data))
            self._skip -= used
            data = data[used:]
        buffer = self._buffer
        buffer += data
        pos = 0
        while True:
            parsed = self._one_frame(buffer, pos)
            if parsed <= pos:
                break
            pos = parsed
        del buffer[:pos]

    def _one_frame(self, buffer: bytearray, pos: int) -> int:
        """Parse the frame at ``pos``; return where the next one starts (``pos`` if incomplete)."""
        avail = len(buffer) - pos
        if avail < 2:
            return pos
        opcode, length, head = buffer[pos] & 0x0F, buffer[pos + 1] & 0x7F, 2
        if length == 126:
            if avail < 4:
                return pos
            length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
        elif length == 127:
            if avail < 10:
                return pos
            length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
        body = avail - head
        if body >= length:
            self._frame(opcode, bytes(buffer[pos + head : pos + head + min(length, PEEK)]))
            return pos + head + length
        if length > PEEK and body >= PEEK:
            # A long frame (a history page, a 16 KB msg): what it is shows in its first bytes;
            # the rest is discarded as it arrives, never copied into the buffer.
            self._frame(opcode, bytes(buffer[pos + head : pos + head + PEEK]))
            self._skip = length - body
            return len(buffer)
        return pos

    def _frame(self, opcode: int, peek: bytes) -> None:
        if opcode == OP_TEXT:
            match = TYPE_RE.match(peek)
            kind = match.group(1).decode() if match else "?"
            self.tally.frames[kind] += 1
            if kind == "error" and (found := CODE_RE.search(peek)):
                self.tally.errors[found.group(1).decode()] += 1
            if self.on_frame is not None:
                self.on_frame(kind, peek)
        elif opcode == OP_CONTINUATION:
            self.tally.frames["continuation"] += 1
        elif opcode == OP_PING and self.transport is not None:
            self.transport.write(control_frame(0xA, peek[:125]))
        elif opcode == OP_CLOSE:
            code = int.from_bytes(peek[:2], "big") if len(peek) >= 2 else 1005
            self.tally.closes[str(code)] += 1
            self._saw_close = True
            if self.transport is not None:
                self.transport.write(control_frame(OP_CLOSE, peek[:2]))
                self.transport.close()


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


def handshake_request(host: str, port: int, path: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
    ).encode()


async def connect(
    host: str,
    port: int,
    tally: Tally,
    *,
    source: str | None = None,
    read: bool = True,
    rcvbuf: int = 0,
    on_frame: FrameHook | None = None,
    within: float = 10.0,
) -> RawConnection:
    """Open ``/chat/ws`` from ``source`` (a loopback address standing for one person or host).

    ``within`` bounds the connect and the handshake, each. ``rcvbuf`` sets SO_RCVBUF before
    connecting (so the TCP window is small from the start): with ``read=False`` the server's sends
    then back up after a few kilobytes instead of megabytes.
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    try:
        if source:
            sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), within)
        conn = RawConnection(tally, read, on_frame)
        transport, _ = await loop.create_connection(lambda: conn, sock=sock)
    except BaseException:
        sock.close()
        raise
    conn.start(transport, handshake_request(host, port, "/chat/ws"))
    try:
        await asyncio.wait_for(asyncio.shield(conn.opened), within)
    except BaseException:
        conn.close()
        raise
    return conn

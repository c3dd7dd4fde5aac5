"""Issue 19's servers and what their clients say: the keys, pre-signed tokens and hello files.

The identity scenario runs one asgi_chat three ways, each fresh for its runs, side by side:

- ``asgi_chat-guest``: clients say ``{"type":"hello","user":NAME}`` and become guests (the server
  picks each a uid and signs it a guest token with ASGI_CHAT_SECRET);
- ``asgi_chat-hs256``: the server has ``ASGI_CHAT_JWT_SECRET``; each client says
  ``{"type":"hello","token":JWT}`` with a token of its own, HS256;
- ``asgi_chat-rs256``: the server has ``ASGI_CHAT_JWT_PUBLIC_KEY_FILE``, the PEM of a 2048-bit RSA
  public key; each client's token is RS256, signed with the private key, which never leaves this
  process.

The keys are made once per bench process and the tokens signed before any run (claims ``sub``,
``name``, ``exp`` a year ahead), one per line of a hello file that wsload sends as is
(``--hello-file``), so that the client signs nothing while it is measured. The secrets go to the
servers' environment only: they are in no file, log or result.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from .config import BUILD, ROOMS, SERVER_ENV, Server, _uvicorn

IDENTITY_DIR = BUILD / "identity"
KINDS = ("guest", "hs256", "rs256")
NAMES = {kind: f"asgi_chat-{kind}" for kind in KINDS}
TITLES = {"guest": "guests (`user`)", "hs256": "HS256 token", "rs256": "RS256 token"}
# The fan-out: the rooms scenario's room server (guests), with --before its twin on that checkout.
FANOUT_NAME = ROOMS[1].name
TOKEN_SECONDS = 365 * 24 * 3600  # exp far ahead: no token expires, nor needs a refresh, during the bench
RSA_BITS = 2048
# Besides the security limits (SERVER_ENV), the output budgets are off: every client comes from
# 127.0.0.1, and the address's budget (4 MiB/s) would pace the joins' member lists, which grow
# with the room (~35 MB for 1,000 guests joining one room), instead of the server's CPU.
UNBUDGETED = {"ASGI_CHAT_OUTPUT_BYTES_PER_SECOND": "0", "ASGI_CHAT_ADDRESS_OUTPUT_BYTES_PER_SECOND": "0"}


@dataclass(frozen=True)
class Material:
    """What the three servers and their clients need: secrets, the public key's file, hello files."""

    server_secret: str  # ASGI_CHAT_SECRET: guest tokens (the same for all three servers)
    hs_secret: str  # ASGI_CHAT_JWT_SECRET of the HS256 server
    public_pem: Path  # ASGI_CHAT_JWT_PUBLIC_KEY_FILE of the RS256 server
    hellos: dict[str, Path]  # the token kinds' hello files, one hello per client
    count: int  # hellos in each file


def hello_line(token: str) -> str:
    return json.dumps({"type": "hello", "token": token}, separators=(",", ":"))


@functools.cache
def server_secret() -> str:
    """ASGI_CHAT_SECRET for every server of the scenario: 64 bytes, made once per process."""
    return secrets.token_urlsafe(48)


@functools.cache
def material(count: int) -> Material:
    """Keys made and `count` tokens of each kind signed, once per process (a few seconds for RS256)."""
    IDENTITY_DIR.mkdir(parents=True, exist_ok=True)
    hs_secret = secrets.token_urlsafe(48)  # 64 bytes, and not ASGI_CHAT_SECRET (the server refuses that)
    private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    pem = IDENTITY_DIR / "rs256-public.pem"
    pem.write_bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    exp = int(time.time()) + TOKEN_SECONDS
    keys: dict[str, str | rsa.RSAPrivateKey] = {"hs256": hs_secret, "rs256": private}
    hellos: dict[str, Path] = {}
    for kind, key in keys.items():
        path = IDENTITY_DIR / f"hello-{kind}.txt"
        lines = (
            hello_line(jwt.encode({"sub": f"bench-{i}", "name": f"u{i}", "exp": exp}, key, algorithm=kind.upper()))
            for i in range(count)
        )
        path.write_text("\n".join(lines) + "\n")
        hellos[kind] = path
    return Material(server_secret(), hs_secret, pem, hellos, count)


def identity_servers(count: int) -> tuple[Server, ...]:
    """The three asgi_chat servers of the hello cases; the token kinds' clients read `count` hellos."""
    m = material(count)
    base = {**SERVER_ENV, **UNBUDGETED, "ASGI_CHAT_SECRET": m.server_secret}
    env = {
        "guest": base,
        "hs256": {**base, "ASGI_CHAT_JWT_SECRET": m.hs_secret},
        "rs256": {**base, "ASGI_CHAT_JWT_PUBLIC_KEY_FILE": str(m.public_pem)},
    }
    return tuple(
        Server(
            NAMES[kind],
            TITLES[kind],
            _uvicorn("asgi_chat:app"),
            env[kind],
            ("--proto", "v1", *(("--hello-file", str(m.hellos[kind])) if kind in m.hellos else ())),
            before_twin=kind == "guest",  # the code before identity knows no token
        )
        for kind in KINDS
    )


def fanout_server() -> Server:
    """The room fan-out's server: the rooms scenario's room (guests), output budgets off as above, and
    ASGI_CHAT_SECRET set (one process would make one and log a warning; the code before identity ignores it)."""
    room = ROOMS[1]
    env = {**room.env, **UNBUDGETED, "ASGI_CHAT_SECRET": server_secret()}
    return Server(room.name, room.title, room.argv, env, room.client_args)

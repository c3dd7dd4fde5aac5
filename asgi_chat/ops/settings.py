"""Settings: one frozen dataclass, read from ``ASGI_CHAT_*`` environment variables by :func:`from_env`.

The environment is a parameter, not a global, so a test builds any configuration it likes:
``from_env({"ASGI_CHAT_RATE_PER_SECOND": "0"})``. Every numeric limit turns off with 0. A setting
that was renamed is still read by its old name while the new one is unset (:data:`RENAMED`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

PREFIX = "ASGI_CHAT_"
logger = logging.getLogger("asgi_chat")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable and what it expects."""


def _whole(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError
    return value


def _positive_number(text: str) -> float:
    value = float(text.strip())
    if not value >= 0 or value == float("inf"):  # also refuses NaN
        raise ValueError
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError


def _words(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.replace(",", " ").split() if item.strip())


def _optional(text: str) -> str | None:
    return text.strip() or None


STATE_SCHEMES = ("memory", "redis", "rediss")


def _state_url(text: str) -> str:
    url = text.strip()
    scheme, separator, _ = url.partition("://")
    if not separator or scheme.lower() not in STATE_SCHEMES:
        raise ValueError
    return url


# RFC 7518 section 3.2: "A key of the same size as the hash output (for instance, 256 bits for
# "HS256") or larger MUST be used with this algorithm."
MIN_SECRET_BYTES = 32
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def _secret(text: str) -> str:
    value = text.strip()
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise ValueError
    return value


def _keys_url(text: str) -> str:
    """An https:// URL (keys fetched over plain HTTP could be swapped on the way), or http:// to
    this machine (a test's server, a sidecar)."""
    url = text.strip()
    parts = urlsplit(url)
    if not parts.hostname or not (
        parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
    ):
        raise ValueError
    return url


def _url_or_path(text: str) -> str | None:
    url = text.strip()
    if url and not url.startswith(("/", "https://", "http://")):
        raise ValueError
    return url or None


def setting(
    default: Any, parse: Callable[[str], object], expects: str, help: str, group: str, *, secret: bool = False
) -> Any:
    """A field read from ``ASGI_CHAT_<NAME>``: ``parse`` turns the text into the value (raising
    ValueError when it cannot), ``expects`` says what it wants (for the error message), ``help``
    what it does and ``group`` where it belongs (docs/configuration.md is generated from these).
    A ``secret`` one is left out of the settings' repr and of error messages."""
    metadata = {"parse": parse, "expects": expects, "help": help, "group": group, "secret": secret}
    return field(default=default, repr=not secret, metadata=metadata)


OFF = " (0 turns the limit off)"
LIMITS = "inbound limits (security)"
FANOUT = "the fan-out (slow-consumer policy)"
ROOMS = "the rooms of asgi-chat.v1 (/chat/ws)"
IDENTITY = "identity (/chat/ws)"
API = "the HTTP API (/api/v1/)"
PLUMBING = "plumbing"


def count(default: int, what: str, help: str, group: str) -> Any:
    return setting(default, _whole, f"a whole number of {what} >= 0{OFF}", help, group)


def number(default: float, what: str, help: str, group: str) -> Any:
    return setting(default, _positive_number, f"a number of {what} >= 0{OFF}", help, group)


@dataclass(frozen=True, slots=True)
class Settings:
    max_message_bytes: int = count(65536, "bytes", "a larger inbound message closes the connection with 1009", LIMITS)
    rate_per_second: float = number(
        20.0, "messages per second", "the inbound rate (a token bucket); exceeding it closes with 1008", LIMITS
    )
    rate_burst: int = count(40, "messages", "how many messages may arrive at once before the rate applies", LIMITS)
    max_connections: int = count(10000, "connections", "open WebSockets in total; more are refused with 1013", LIMITS)
    max_connections_per_address: int = count(
        100, "connections", "open WebSockets per client IP address; more are refused with 1013", LIMITS
    )
    max_item_id_length: int = count(
        128, "characters", "a longer `item_id` on /items/{item_id}/ws is refused with 1008", LIMITS
    )
    max_credential_length: int = count(
        4096, "characters", "a longer cookie or token on /items/{item_id}/ws is refused with 1008", LIMITS
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        _words,
        "origins (scheme://host[:port]) separated by commas or spaces",
        "origins allowed besides the page's own; `*` turns the check off (warned at startup)",
        LIMITS,
    )
    tokens_file: str | None = setting(
        None,
        _optional,
        "the path of a file with one token per line",
        "the credentials the items endpoint accepts, one per line; unset: any non-empty credential",
        LIMITS,
    )
    outbox_max_messages: int = count(
        1024, "messages", "a client this many messages behind is not reading: closed with 1013", FANOUT
    )
    outbox_max_bytes: int = count(
        1024 * 1024, "bytes", "a client this many bytes behind is not reading: closed with 1013", FANOUT
    )
    send_timeout: float = number(
        10.0, "seconds", "one send may stay blocked this long before the client is closed with 1013", FANOUT
    )
    max_text_chars: int = count(4000, "characters", "a longer say is answered `too_large`", ROOMS)
    dedup_seconds: float = number(600.0, "seconds", "a say id is remembered this long per user and room", ROOMS)
    rooms_per_connection: int = count(
        16, "rooms", "rooms one connection may be in at once; one more is answered `too_many_rooms`", ROOMS
    )
    max_rooms: int = count(
        10000,
        "rooms",
        "rooms with history or members, for this process (memory) or the deployment (Redis); at the cap the "
        "longest idle room is forgotten before a new one is refused `too_many_rooms`",
        ROOMS,
    )
    room_idle_seconds: float = number(86400.0, "seconds", "an empty room silent this long is forgotten", ROOMS)
    replay_max: int = count(1000, "messages", "a resume replays at most this many; older ones: `gap limit`", ROOMS)
    history_messages: int = count(1000, "messages", "messages kept per room", ROOMS)
    history_max_bytes: int = count(
        64 * 1024 * 1024,
        "bytes",
        "history kept for all rooms of this process (memory) or the deployment (Redis); past it the oldest "
        "messages go first, whichever room holds them",
        ROOMS,
    )
    dedup_max: int = count(
        100_000,
        "say ids",
        "say ids remembered at most for all rooms (the oldest are forgotten first): the process's (memory) "
        "or the deployment's (Redis)",
        ROOMS,
    )
    presence_interval: float = number(
        0.25,
        "seconds",
        "presence changes of a room are sent as one `presence` frame per member at most this often; 0: at once",
        ROOMS,
    )
    output_bytes_per_second: int = count(
        1024 * 1024,
        "bytes per second",
        "what history pages and join replays may send one connection; past it they wait, or are answered `slow_down`",
        ROOMS,
    )
    address_output_bytes_per_second: int = count(
        4 * 1024 * 1024,
        "bytes per second",
        "the same budget, shared by every connection from one client address",
        ROOMS,
    )
    presence_timeout: float = number(
        30.0,
        "seconds",
        "on Redis: a process silent this long (killed, host lost) has its users announced as left",
        ROOMS,
    )
    jwt_secret: str | None = setting(
        None,
        _secret,
        f"a secret of at least {MIN_SECRET_BYTES} bytes",
        "the HMAC key (HS256 unless `ASGI_CHAT_JWT_ALGORITHMS` says otherwise) that verifies connection tokens; "
        "never printed (not in the settings' repr, nor in an error message)",
        IDENTITY,
        secret=True,
    )
    jwt_public_key_file: str | None = setting(
        None,
        _optional,
        "the path of a PEM file: an RSA (2048 bits or more), EC or Ed25519 public key, or a certificate",
        "the public key that verifies connection tokens (RS256, ES256, EdDSA...)",
        IDENTITY,
    )
    jwks_url: str | None = setting(
        None,
        _keys_url,
        "an https:// URL (http:// only to this machine)",
        "a JSON Web Key Set that verifies connection tokens by their `kid`, fetched without blocking and "
        "fetched again (at most once a minute) when a token names an unknown `kid`",
        IDENTITY,
    )
    jwt_algorithms: tuple[str, ...] = setting(
        (),
        _words,
        "JWS algorithm names (HS256, RS256, PS256, ES256, EdDSA...) separated by commas or spaces",
        "the algorithms a token may use (never `none`, never taken from the token alone); unset: the key's own "
        "(HS256 for a secret, the PEM key's, RS256 ES256 EdDSA for a key set)",
        IDENTITY,
    )
    jwt_audience: str | None = setting(
        None,
        _optional,
        "a string",
        "when set, a token's `aud` must name it (and a token with `aud` needs it)",
        IDENTITY,
    )
    jwt_issuer: str | None = setting(None, _optional, "a string", "when set, a token's `iss` must be it", IDENTITY)
    jwt_leeway: float = number(
        30.0, "seconds", "clock skew allowed when checking a token's `exp`, `nbf` and `iat`", IDENTITY
    )
    guests: bool = setting(
        True,
        _bool,
        "1/0, true/false, yes/no or on/off",
        "a `hello` without a token but with a name makes a guest (turn it off in production if every user has a token)",
        IDENTITY,
    )
    secret: str | None = setting(
        None,
        _secret,
        f"a secret of at least {MIN_SECRET_BYTES} bytes",
        "the server's own key, which signs guest tokens; required with guests when several processes share "
        "rooms, else made at start-up (with a warning); never printed",
        IDENTITY,
        secret=True,
    )
    token_grace: float = number(
        25.0,
        "seconds",
        "a connection whose token expired and was not refreshed is closed with 4001 this long after `exp`",
        IDENTITY,
    )
    token_url: str | None = setting(
        None,
        _url_or_path,
        "a path (/token) or an http(s):// URL",
        "where the /chat page fetches a token from the operator's backend (with its cookies); unset: guests only",
        IDENTITY,
    )
    room_policy: str | None = setting(
        None,
        _optional,
        "the path of a TOML file",
        "which rooms are private or read-only (docs/identity.md); read at start-up",
        IDENTITY,
    )
    api_keys_file: str | None = setting(
        None,
        _optional,
        "the path of a file with one API key per line",
        "turns the HTTP API on (docs/api.md): each request's `Authorization: Bearer KEY` must be one of these; "
        "unset: the API is off and every path under /api/ answers 404",
        API,
    )
    api_max_body_bytes: int = count(
        64 * 1024, "bytes", "a larger API request body is refused with 413, without reading the rest of it", API
    )
    api_rate_per_second: float = number(
        50.0,
        "requests per second",
        "each API key's rate (a token bucket holding one second's worth); past it requests are answered 429",
        API,
    )
    state_url: str = setting(
        "memory://",
        _state_url,
        "memory:// or redis://[[user]:password@]host[:port][/db] (rediss:// for TLS)",
        "where shared state lives: `memory://` (this process alone) or a Redis URL (every process that "
        "names it is one chat, rooms included, over one pub/sub connection each; its password is shown "
        "as `***` in logs)",
        PLUMBING,
    )
    trace: bool = setting(
        False, _bool, "1/0, true/false, yes/no or on/off", "print every ASGI message (see Operations)", PLUMBING
    )


# Old name -> new name of each renamed setting. The old one is read while the new one is unset,
# and its use is logged once per process, so that a deployment keeps working and is told to move.
RENAMED: Mapping[str, str] = {f"{PREFIX}BROKER_URL": f"{PREFIX}STATE_URL"}


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``ASGI_CHAT_<FIELD>`` variables (``os.environ`` by default).

    A value that does not parse raises :class:`SettingsError` naming the variable, its value and
    what it expects, so a typo in a deployment fails at start-up instead of running with a
    surprising default; an unknown ``ASGI_CHAT_*`` name (a misspelt one) is logged as a warning,
    once per process, and so is an old name of a renamed setting (:data:`RENAMED`).
    """
    environ = os.environ if environ is None else environ
    fields = {PREFIX + spec.name.upper(): spec for spec in dataclasses.fields(Settings)}
    values: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith(PREFIX):
            continue
        if name in RENAMED:
            if not _read_old_name(name, environ):
                continue
        elif name not in fields:
            _warn_unknown(name)
            continue
        spec = fields[RENAMED.get(name, name)]
        try:
            values[spec.name] = spec.metadata["parse"](raw)
        except ValueError:
            shown = "***" if spec.metadata["secret"] else repr(raw)  # a secret is never printed, not even a bad one
            raise SettingsError(f"{name}={shown}: expected {spec.metadata['expects']}") from None
    return dataclasses.replace(Settings(), **values)  # type: ignore[arg-type]  # typed by each field's parser


_warned: set[str] = set()


def _warn_unknown(name: str) -> None:
    if name not in _warned:
        _warned.add(name)
        logger.warning("ignoring unknown setting %s", name)


def _read_old_name(name: str, environ: Mapping[str, str]) -> bool:
    """Whether to read ``name``, the old name of a setting: only while its new name is unset."""
    new = RENAMED[name]
    if name not in _warned:
        _warned.add(name)
        if new in environ:
            logger.warning("ignoring %s, the old name of %s, which is set too", name, new)
        else:
            logger.warning("%s is deprecated: it is read as %s, its new name; set that instead", name, new)
    return new not in environ

"""Settings: one frozen dataclass, read from ``ASGI_CHAT_*`` environment variables by :func:`from_env`.

The environment is a parameter, not a global, so a test builds any configuration it likes:
``from_env({"ASGI_CHAT_RATE_PER_SECOND": "0"})``. Every numeric limit turns off with 0.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

PREFIX = "ASGI_CHAT_"
logger = logging.getLogger("asgi_chat")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the variable and what it expects."""


@dataclass(frozen=True, slots=True)
class Settings:
    # --- inbound limits (security) ---
    max_message_bytes: int = 65536  # larger inbound messages close with 1009
    rate_per_second: float = 20.0  # token bucket per connection; exceeding it closes with 1008
    rate_burst: int = 40
    max_connections: int = 10000  # open WebSockets in total; further handshakes are refused
    max_connections_per_address: int = 100  # open WebSockets per client IP address
    max_item_id_length: int = 128
    max_credential_length: int = 4096
    # Origins allowed besides the page's own; "*" turns the check off (warned at startup).
    allowed_origins: tuple[str, ...] = ()
    tokens_file: str | None = None  # one accepted token per line; unset: any non-empty credential
    # --- the broadcast hub (slow-consumer policy) ---
    outbox_max_messages: int = 1024  # a chat client that is 1024 messages behind is not reading
    outbox_max_bytes: int = 1024 * 1024
    send_timeout: float = 10.0  # seconds one send may stay blocked before the client is dropped
    # --- plumbing ---
    broker_url: str = "memory://"
    trace: bool = False  # print every ASGI message (asgi_chat.trace)


def _int(text: str) -> int:
    value = int(text.strip())
    if value < 0:
        raise ValueError
    return value


def _float(text: str) -> float:
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


def _origins(text: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in text.replace(",", " ").split() if item.strip())


def _text(text: str) -> str | None:
    return text.strip() or None


# Keyed by the field's annotation, which `from __future__ import annotations` keeps as a string.
_CONVERTERS: dict[str, tuple[Callable[[str], object], str]] = {
    "int": (_int, "a whole number >= 0 (0 turns the limit off)"),
    "float": (_float, "a number of seconds >= 0"),
    "bool": (_bool, "1/0, true/false, yes/no or on/off"),
    "tuple[str, ...]": (_origins, "origins separated by commas or spaces"),
    "str | None": (_text, "a path"),
    "str": (str.strip, "a URL"),
}


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build :class:`Settings` from ``ASGI_CHAT_<FIELD>`` variables (``os.environ`` by default).

    A value that does not parse raises :class:`SettingsError` naming the variable, so a typo in a
    deployment fails at start-up instead of running with a surprising default; an unknown
    ``ASGI_CHAT_*`` name (a misspelt one) is logged as a warning.
    """
    environ = os.environ if environ is None else environ
    fields = {PREFIX + spec.name.upper(): spec for spec in dataclasses.fields(Settings)}
    values: dict[str, object] = {}
    for name, raw in environ.items():
        if not name.startswith(PREFIX):
            continue
        if name not in fields:
            logger.warning("ignoring unknown setting %s", name)
            continue
        convert, expected = _CONVERTERS[str(fields[name].type)]
        try:
            values[fields[name].name] = convert(raw)
        except ValueError:
            raise SettingsError(f"{name}={raw!r}: expected {expected}") from None
    return dataclasses.replace(Settings(), **values)  # type: ignore[arg-type]  # typed by _CONVERTERS

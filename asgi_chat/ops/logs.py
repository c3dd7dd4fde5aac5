"""Logging without credentials: a redacting filter, and the configuration ``python -m asgi_chat`` uses.

uvicorn logs every WebSocket handshake with its query string at INFO
(``"WebSocket /items/foo/ws?token=s3cret" [accepted]``), and at TRACE level every header,
cookies included. :class:`RedactCredentials` rewrites such records before any handler sees
them: ``token=[redacted]``. It sits on uvicorn's loggers in ``logging.json`` (for
``uvicorn --log-config``) and the app also adds it at start-up, so plain
``uvicorn asgi_chat:app`` is covered too.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Final
from urllib.parse import unquote_plus

from ..endpoints.credentials import REVEALING_PATTERNS, is_secret_name

LOG_CONFIG_PATH: Final = Path(__file__).with_name("logging.json")
REDACTED: Final = "[redacted]"

# Loggers that may print a request's query string or headers.
SENSITIVE_LOGGERS: Final = ("uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asgi_chat")

# name=value pairs of a query string or a Cookie header (up to &, ;, quote, space, #).
_PAIR: Final = re.compile(r"(?<![^?&; \t'\"])([^=&;\s'\"#?]+)=([^&;'\"# \t\r\n]*)")

_PATTERNS: Final = (
    # A WebSocket frame as the websockets library logs it at DEBUG ("> TEXT 'hello' [5 bytes]"):
    # its payload is what people wrote, and the items endpoint's reply echoes the credential.
    re.compile(r"\b((?:TEXT|BINARY|CONT) ).+(?= \[(?:text, |binary, )?\d+ bytes?)"),
    *REVEALING_PATTERNS,
)


def redact(text: str) -> str:
    """Replace every credential value in ``text`` with ``[redacted]``.

    Names are compared after percent-decoding, as the app's own query parser reads them, so
    ``?%74oken=...`` is caught as well as ``?token=...``.
    """
    text = _PAIR.sub(_redact_pair, text)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\g<1>{REDACTED}", text)
    return text


def _redact_pair(match: re.Match[str]) -> str:
    name = unquote_plus(match.group(1))
    return f"{match.group(1)}={REDACTED}" if is_secret_name(name) else match.group(0)


class RedactCredentials(logging.Filter):
    """A logging filter that redacts credentials in a record's message and arguments.

    Plain string arguments are redacted one by one, keeping their positions: uvicorn's access
    formatter unpacks ``record.args`` as (client, method, path, version, status). Anything else
    (a scope dict at TRACE level) is formatted first and the whole text redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and all(isinstance(arg, str | int | float) for arg in args):
            record.msg = redact(str(record.msg))
            record.args = tuple(redact(arg) if isinstance(arg, str) else arg for arg in args)
        else:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


def install_redaction() -> None:
    """Put :class:`RedactCredentials` on every sensitive logger that lacks it (idempotent)."""
    for name in SENSITIVE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactCredentials) for existing in logger.filters):
            logger.addFilter(RedactCredentials())

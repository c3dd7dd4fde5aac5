"""The command line, ``python -m asgi_chat``: uvicorn with the package's logging set-up.

``uvicorn asgi_chat:app`` stays the primary way to run the chat; this adds the options that
need the package's help: the redacting logging configuration, the ASGI trace and the broker.
Options that configure the app travel as ``ASGI_CHAT_*`` environment variables, because
with ``--workers`` each worker is a new process that builds its own app from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping, Sequence

import uvicorn
from uvicorn.config import LOG_LEVELS, WS_PROTOCOLS

from ..engine.brokers import broker_from_url
from .logs import LOG_CONFIG_PATH
from .settings import PREFIX, SettingsError, from_env

# The app each process serves. A factory rather than ``asgi_chat:app``: ``python -m asgi_chat``
# has imported the package (and built ``app``) before the options below reach the environment.
APP_FACTORY = "asgi_chat:create_app"
UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024  # uvicorn's default, kept when ASGI_CHAT_MAX_MESSAGE_BYTES=0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m asgi_chat",
        description="Run the chat under uvicorn with asgi_chat's logging (credentials redacted).",
        epilog="Other settings are ASGI_CHAT_* environment variables (see asgi_chat/ops/settings.py).",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    add("--port", type=int, default=8000, help="TCP port to listen on (default: %(default)s)")
    add(
        "--workers",
        type=_positive,
        default=1,
        help="processes to serve with (default: %(default)s); each has its own chat unless --broker connects them",
    )
    add(
        "--trace",
        action="store_true",
        help="print every ASGI message in and out, one line each, credentials redacted (sets ASGI_CHAT_TRACE=1)",
    )
    add(
        "--broker",
        metavar="URL",
        help="where chat messages travel: memory:// (one process, the default) or"
        " redis://host:port/db to share one chat between workers and hosts (sets ASGI_CHAT_BROKER_URL)",
    )
    add(
        "--ws",
        choices=[name for name in WS_PROTOCOLS if name != "none"],
        default="auto",
        help="uvicorn's WebSocket implementation (default: %(default)s)",
    )
    add("--log-level", choices=list(LOG_LEVELS), default="info", help="uvicorn's log level (default: %(default)s)")
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, got {text}")
    return value


def app_environment(args: argparse.Namespace) -> dict[str, str]:
    """The ``ASGI_CHAT_*`` variables the options stand for."""
    env = {}
    if args.trace:
        env[f"{PREFIX}TRACE"] = "1"
    if args.broker is not None:
        env[f"{PREFIX}BROKER_URL"] = args.broker
    return env


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    environ.update(app_environment(args))
    try:
        # Check the settings here, where a mistake reads as a usage error, rather than in
        # each worker, where uvicorn would report it as a failure to import the app.
        settings = from_env(environ)
        broker_from_url(settings.broker_url)
    except (SettingsError, ValueError, ImportError) as exc:
        parser.error(str(exc))
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        ws=args.ws,
        log_level=args.log_level,
        log_config=str(LOG_CONFIG_PATH),
        # The server refuses an oversized message (1009) as it arrives, instead of buffering up
        # to its own 16 MiB default before the app can look at it.
        ws_max_size=settings.max_message_bytes or UVICORN_WS_MAX_SIZE,
    )

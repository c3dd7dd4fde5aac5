"""The command line, ``python -m asgi_chat``: uvicorn with the package's logging set-up.

``uvicorn asgi_chat:app`` stays the primary way to run the chat; this adds the options that
need the package's help: the redacting logging configuration, the ASGI trace, where shared state lives,
and uvicorn's ``--forwarded-allow-ips`` for a reverse proxy (docs/deploy/nginx.conf).
Options that configure the app travel as ``ASGI_CHAT_*`` environment variables, because
with ``--workers`` each worker is a new process that builds its own app from the environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import MutableMapping, Sequence

import uvicorn
from uvicorn.config import LOG_LEVELS, WS_PROTOCOLS

from .composition import create_app
from .ops.deferred import CONFIGURATION_ERRORS
from .ops.exposition import multiprocess_metrics
from .ops.logs import LOG_CONFIG_PATH
from .ops.settings import PREFIX, from_env

# The app each process serves: the DeferredApp (ops/deferred.py), built from the environment on
# its first scope, after the options below have reached the environment. A worker that cannot use
# a setting then answers lifespan.startup.failed with one line, which uvicorn prints before it
# exits, rather than a traceback from loading an app factory.
APP = "asgi_chat:app"
UVICORN_WS_MAX_SIZE = 16 * 1024 * 1024  # uvicorn's default, kept when ASGI_CHAT_MAX_MESSAGE_BYTES=0
# How far above the app's message limit the server's own cap sits (see server_max_size).
SERVER_HEADROOM = 64 * 1024


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
        help="processes to serve with (default: %(default)s); each has its own chat unless --state connects them",
    )
    add(
        "--trace",
        action="store_true",
        help="print every ASGI message in and out, one line each, credentials redacted (sets ASGI_CHAT_TRACE=1)",
    )
    add(
        "--state",
        "--broker",  # its old name, still accepted
        dest="state",
        metavar="URL",
        help="where shared state lives: memory:// (one process, the default) or redis://host:port/db to share"
        " one chat, rooms included, between workers and hosts (sets ASGI_CHAT_STATE_URL; --broker is its old name)",
    )
    add(
        "--ws",
        choices=[name for name in WS_PROTOCOLS if name != "none"],
        default="auto",
        help="uvicorn's WebSocket implementation (default: %(default)s)",
    )
    add("--log-level", choices=list(LOG_LEVELS), default="info", help="uvicorn's log level (default: %(default)s)")
    add(
        "--forwarded-allow-ips",
        metavar="ADDRS",
        help="comma-separated addresses or networks of the reverse proxies whose X-Forwarded-For and"
        " X-Forwarded-Proto to believe, so that each client counts as its own address (uvicorn's option;"
        " default: $FORWARDED_ALLOW_IPS, else 127.0.0.1,::1)",
    )
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of processes >= 1, got {text}")
    return value


def server_max_size(max_message_bytes: int) -> int:
    """uvicorn's ``ws_max_size`` for the app's ``ASGI_CHAT_MAX_MESSAGE_BYTES`` (0: no limit).

    The app's limit is the one a client should meet: it closes with 1009 and a reason that names
    the limit, and /metrics counts it. So the server's cap sits above it, by a fixed headroom:
    a message a little over the limit (a paste slightly too long) reaches the app and hears why.
    The cap is also what bounds the bytes one message can make the server buffer for a
    connection before the app sees it; a fixed headroom keeps that at the app's limit plus
    64 KiB whatever the limit (twice the limit would double it). A message larger still is a
    client that ignores the limit altogether: uvicorn closes it with its own 1009.
    """
    return max_message_bytes + SERVER_HEADROOM if max_message_bytes else UVICORN_WS_MAX_SIZE


def app_environment(args: argparse.Namespace) -> dict[str, str]:
    """The ``ASGI_CHAT_*`` variables the options stand for."""
    env = {}
    if args.trace:
        env[f"{PREFIX}TRACE"] = "1"
    if args.state is not None:
        env[f"{PREFIX}STATE_URL"] = args.state
    return env


def main(argv: Sequence[str] | None = None, environ: MutableMapping[str, str] = os.environ) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    environ.update(app_environment(args))
    try:
        # Build an app here as each worker will, so that a setting it cannot use is one line and
        # exit status 2 before anything starts, not a failure in every worker.
        settings = from_env(environ)
        create_app(settings)
        # Several workers add their metrics up through files in one directory (ops/metrics.py).
        metrics_files = multiprocess_metrics(args.workers, environ)
    except CONFIGURATION_ERRORS as exc:
        # The reason names the variable, its value and what it expects: the usage of the options
        # would not help with it.
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    with metrics_files:
        uvicorn.run(
            APP,
            host=args.host,
            port=args.port,
            workers=args.workers,
            ws=args.ws,
            log_level=args.log_level,
            log_config=str(LOG_CONFIG_PATH),
            # None: uvicorn's own default, $FORWARDED_ALLOW_IPS or else 127.0.0.1,::1.
            forwarded_allow_ips=args.forwarded_allow_ips,
            # Above the app's own limit, so that the app answers an oversized message; still far
            # below uvicorn's 16 MiB default, which a connection could make it buffer.
            ws_max_size=server_max_size(settings.max_message_bytes),
        )

"""``python -m asgi_chat``: a thin command line over uvicorn, with the package's logging set-up."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m asgi_chat", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    uvicorn.run("asgi_chat:app", host=args.host, port=args.port)


if __name__ == "__main__":
    main()

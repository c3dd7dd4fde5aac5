"""``python -m asgi_chat``: see :mod:`asgi_chat.ops.cli`."""

from .ops.cli import main

main()

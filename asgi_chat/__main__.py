"""``python -m asgi_chat``: see :mod:`asgi_chat.cli`."""

from .cli import main

main()

"""The ASGI lesson: what a reader opens first. Nothing here knows what a chat is.

Read in this order: app.py (the callable, its dispatch on ``scope["type"]``, lifespan),
session.py (the WebSocket state machine, the only place that calls the server's ``send``),
routing.py, parsing.py (pure functions), errors.py (close codes and the errors that carry
them), responses.py (an HTTP response and the two messages that send it).
"""

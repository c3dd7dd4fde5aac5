"""The ASGI lesson: what a reader opens first. Nothing here knows what a chat is.

It imports nothing of the rest of the package (the standard library and asgiref only, which
tests/unit/test_layers.py checks), so it reads alone and any ASGI app could reuse it: the chat
is composed one level up, in asgi_chat/composition.py.

Read in this order: app.py (the callable, its dispatch on ``scope["type"]``, lifespan),
session.py (the WebSocket state machine, the only place that calls the server's ``send``),
routing.py, parsing.py (pure functions), errors.py (close codes and the errors that carry
them), responses.py (an HTTP response and the two messages that send it), body.py (a request's body,
read in chunks up to a limit), hooks.py (what an
app hands in to be counted and to limit what a client sends).
"""

"""Defences and operations: security.py (origin, credentials, limits), forwarded.py (proxy
headers), settings.py (``ASGI_CHAT_*``), logs.py (redaction), trace.py (every ASGI message
printed), metrics.py, deferred.py (``asgi_chat.app``). It imports only itself, the endpoints,
the engine and asgi/ (tests/unit/test_layers.py)."""

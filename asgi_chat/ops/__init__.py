"""Defences and operations: security.py and credentials.py (origin, credentials, limits),
settings.py (``ASGI_CHAT_*``), logs.py (redaction), trace.py (every ASGI message printed),
metrics.py, deferred.py (``asgi_chat.app``), cli.py (``python -m asgi_chat``)."""

"""The web side: the pages and their files (assets.py, static/), and the HTTP endpoints
(endpoints.py: the pages, ``/healthz``, ``/metrics``). It imports only itself, the engine and
asgi/ (tests/unit/test_layers.py)."""

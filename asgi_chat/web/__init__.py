"""The web side: the pages and their files (assets.py, static/), and the HTTP endpoints
(endpoints.py: the pages, ``/healthz``, ``/metrics``)."""

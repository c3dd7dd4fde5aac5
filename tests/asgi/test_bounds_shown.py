"""/healthz and /metrics show the rooms' store's bounds, and which of them is full."""

from __future__ import annotations

import json

from tests.asgi.rooms_helpers import rooms_app
from tests.helpers import http_get
from tests.rooms_support import opened


async def test_a_full_bound_shows_in_healthz_and_in_metrics() -> None:
    app = rooms_app(max_rooms=2, history_max_bytes=10**6, dedup_max=50)
    (ada,) = await opened(app, "ada")
    await ada.join("one")
    status, _, body = await http_get(app, "/healthz")
    health = json.loads(body)
    assert (status, health["full"]) == (200, [])
    assert health["bounds"]["rooms"] == {"used": 1, "limit": 2}
    assert health["bounds"]["say_ids"] == {"used": 0, "limit": 50}

    await ada.join("two")
    await ada.say("two", "remembered", id="s1")
    await ada.until("ack")
    status, _, body = await http_get(app, "/healthz")
    health = json.loads(body)
    assert (status, health["status"], health["full"]) == (200, "ok", ["rooms"])  # full is no outage
    assert health["bounds"]["say_ids"] == {"used": 1, "limit": 50}
    assert 0 < health["bounds"]["history_bytes"]["used"] < 10**6

    _, _, page = await http_get(app, "/metrics")
    text = page.decode()
    assert 'asgi_chat_store_bound_used{bound="rooms"} 2.0' in text
    assert 'asgi_chat_store_bound_limit{bound="rooms"} 2.0' in text
    assert 'asgi_chat_store_bound_limit{bound="history_bytes"} 1e+06' in text

"""``/metrics`` and ``/healthz`` through the app: names, HELP and TYPE, labels, the histogram, the pid.

One process here (no ``PROMETHEUS_MULTIPROC_DIR``); tests/e2e/test_metrics.py runs two workers.
"""

from __future__ import annotations

import asyncio
import json
import os

from asgiref.typing import ASGIReceiveEvent, ASGISendEvent
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from asgi_chat import ChatApp, Settings, create_app
from asgi_chat.ops.metrics import KNOWN_CLOSE_CODES, LINE_BUCKETS, LINE_SAMPLE
from tests.helpers import TIMEOUT, LifespanClient, WebSocketClient, http_get, wait_until, websocket_scope

# name -> (type, HELP): what an operator's dashboards and alerts are written against.
EXPOSED = {
    "asgi_chat_connections": ("gauge", "Accepted WebSockets still open."),
    "asgi_chat_messages_received": ("counter", "Data messages from clients."),
    "asgi_chat_messages_delivered": ("counter", "Data messages sent to clients."),
    "asgi_chat_slow_consumer_disconnects": ("counter", "Clients closed with 1013 because they did not keep up."),
    "asgi_chat_outbox_depth_max": ("gauge", "The deepest any outbox has been."),
    "asgi_chat_closes": ("counter", "WebSockets the app refused (before accept) or closed (after), by close code."),
    "asgi_chat_broker_up": ("gauge", "1 while the broker is reachable (by every worker), else 0."),
    "asgi_chat_broker_dropped": ("counter", "Messages that did not reach other processes."),
    "asgi_chat_line_delivery_seconds": (
        "histogram",
        f"Seconds from receiving a chat line to starting its last recipient's send (1 line in {LINE_SAMPLE}).",
    ),
}


async def scrape(app: ChatApp) -> tuple[str, dict[str, Metric]]:
    status, headers, body = await http_get(app, "/metrics")
    assert status == 200
    assert headers[b"content-type"] == b"text/plain; version=0.0.4; charset=utf-8"
    assert headers[b"cache-control"] == b"no-store"
    text = body.decode()
    return text, {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Metric, sample_name: str | None = None, **labels: str) -> float:
    """The one sample of ``family`` called ``sample_name`` (default: the family's own) with ``labels``."""
    wanted = sample_name or family.name + ("_total" if family.type == "counter" else "")
    found = [s.value for s in family.samples if s.name == wanted and s.labels == labels]
    assert len(found) == 1, (wanted, labels, family.samples)
    return found[0]


async def test_every_metric_has_its_name_type_and_help(app: ChatApp) -> None:
    text, families = await scrape(app)
    assert {name: (f.type, f.documentation) for name, f in families.items() if name in EXPOSED} == EXPOSED
    for name, (kind, help_text) in EXPOSED.items():
        assert f"# HELP {name}{'_total' if kind == 'counter' else ''} {help_text}\n" in text
        assert f"# TYPE {name}{'_total' if kind == 'counter' else ''} {kind}\n" in text


async def test_counts_the_traffic_refusals_by_code_and_the_broker(app: ChatApp) -> None:
    echo = WebSocketClient(app, "/ws")
    await echo.accept()
    await echo.send("hi")
    assert await echo.receive() == "Message text was: hi"
    for path in ("/items/x/ws", "/items/y/ws", "/nowhere"):  # no credential twice (1008), no route (1000)
        assert (await WebSocketClient(app, path).connect())["type"] == "websocket.close"

    _, families = await scrape(app)
    assert value(families["asgi_chat_connections"]) == 1
    assert value(families["asgi_chat_messages_received"]) == 1
    assert value(families["asgi_chat_messages_delivered"]) == 1
    assert value(families["asgi_chat_slow_consumer_disconnects"]) == 0
    closes = {s.labels["code"]: s.value for s in families["asgi_chat_closes"].samples if s.name.endswith("_total")}
    # Every code the app sends is shown from 0, so that rate() has a start (not 1005, 1006 or
    # uvicorn's 1012: the app never sends them).
    sent = ("1000", "1001", "1003", "1008", "1009", "1011", "1013")
    assert closes == dict.fromkeys(sent, 0.0) | {"1008": 2.0, "1000": 1.0}
    assert tuple(map(int, sent)) == KNOWN_CLOSE_CODES
    assert value(families["asgi_chat_broker_up"]) == 1
    assert value(families["asgi_chat_broker_dropped"]) == 0
    await echo.disconnect()
    _, families = await scrape(app)
    assert value(families["asgi_chat_connections"]) == 0
    assert value(families["asgi_chat_messages_received"]) == 1  # a counter stays where it got


async def test_a_shutdown_counts_its_1001_closes(app: ChatApp) -> None:
    life = LifespanClient(app)
    assert (await life.startup())["type"] == "lifespan.startup.complete"
    clients = [WebSocketClient(app, "/ws"), WebSocketClient(app, "/ws/1")]
    for client in clients:
        await client.accept()
    assert (await life.shutdown())["type"] == "lifespan.shutdown.complete"
    for client in clients:
        assert await client.receive_close() == (1001, "server shutting down")
        await client.disconnect()
    _, families = await scrape(app)
    assert value(families["asgi_chat_closes"], code="1001") == 2


async def test_one_chat_line_in_sixteen_is_timed_into_the_histogram(app: ChatApp) -> None:
    sender = WebSocketClient(app, "/ws/1")
    await sender.accept()
    for n in range(LINE_SAMPLE * 2):
        await sender.send(f"line {n}")
        assert await sender.receive_many(2) == [f"You wrote: line {n}", f"Client #1 says: line {n}"]

    _, families = await scrape(app)
    histogram = families["asgi_chat_line_delivery_seconds"]
    buckets = {s.labels["le"]: s.value for s in histogram.samples if s.name.endswith("_bucket")}
    assert list(buckets) == [str(bound) for bound in LINE_BUCKETS] + ["+Inf"]
    assert list(buckets.values()) == sorted(buckets.values())  # cumulative, as Prometheus reads them
    assert buckets["+Inf"] == 2
    assert value(histogram, "asgi_chat_line_delivery_seconds_count") == 2
    assert 0 < value(histogram, "asgi_chat_line_delivery_seconds_sum") < 1
    await sender.disconnect()


async def test_each_app_counts_on_its_own(app: ChatApp) -> None:
    other = create_app(Settings())
    client = WebSocketClient(app, "/ws")
    await client.accept()
    await client.send("only here")
    await client.receive()
    _, mine = await scrape(app)
    _, theirs = await scrape(other)
    assert value(mine["asgi_chat_messages_received"]) == 1
    assert value(theirs["asgi_chat_messages_received"]) == 0
    assert value(theirs["asgi_chat_connections"]) == 0
    await client.disconnect()


async def test_healthz_says_which_process_answered_and_what_it_sees_of_its_broker(app: ChatApp) -> None:
    assert (await WebSocketClient(app, "/items/x/ws").connect())["type"] == "websocket.close"
    status, _, body = await http_get(app, "/healthz")
    health = json.loads(body)
    assert status == 200
    assert health["pid"] == os.getpid()
    assert (health["status"], health["broker"], health["broker_dropped"]) == ("ok", "up", 0)
    assert health["closes"] == {"1008": 1}
    assert health["connections"] == 0


async def test_a_slow_consumer_is_counted_once_under_its_close_code() -> None:
    """The fan-out's drop ends the member's reader with 1013, which the app's refusal path counts."""
    app = create_app(Settings(outbox_max_messages=1))
    inbox: asyncio.Queue[ASGIReceiveEvent] = asyncio.Queue()
    closed: list[ASGISendEvent] = []

    async def stalled_send(message: ASGISendEvent) -> None:
        if message["type"] == "websocket.send":
            await asyncio.Event().wait()  # a client that stopped reading: this send never returns
        closed.append(message)

    stalled = asyncio.create_task(app(websocket_scope("/ws/2"), inbox.get, stalled_send))
    inbox.put_nowait({"type": "websocket.connect"})
    sender = WebSocketClient(app, "/ws/1")
    await sender.accept()
    await wait_until(lambda: app.ctx.metrics.connections == 2)
    for n in range(3):  # the first send blocks, the second waits in the outbox, the third overflows it
        await sender.send(f"line {n}")
        await sender.receive_many(2)
    await asyncio.wait_for(stalled, TIMEOUT)
    assert [message["type"] for message in closed] == ["websocket.accept", "websocket.close"]

    _, families = await scrape(app)
    assert value(families["asgi_chat_slow_consumer_disconnects"]) == 1
    assert value(families["asgi_chat_closes"], code="1013") == 1
    await sender.disconnect()

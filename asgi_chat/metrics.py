"""The app's counters, shown in ``/healthz`` (JSON) and ``/metrics`` (Prometheus' text format).

Plain integers on one object: incrementing one is the cheapest thing Python can do, and the
broadcast path does it once per delivery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Metrics:
    connections: int = 0  # accepted WebSockets still open, all endpoints
    messages_received: int = 0  # data messages taken from clients, all endpoints
    messages_delivered: int = 0  # data messages handed to the server's send, all endpoints
    slow_consumer_disconnects: int = 0  # clients closed with 1013 by the slow-consumer policy
    outbox_depth_max: int = 0  # the deepest any chat member's outbox has been

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# name -> (Prometheus metric name, type, help)
_PROMETHEUS = {
    "connections": ("asgi_chat_connections", "gauge", "Accepted WebSockets still open."),
    "messages_received": (
        "asgi_chat_messages_received_total",
        "counter",
        "Data messages received from clients.",
    ),
    "messages_delivered": (
        "asgi_chat_messages_delivered_total",
        "counter",
        "Data messages handed to the server for a client.",
    ),
    "slow_consumer_disconnects": (
        "asgi_chat_slow_consumer_disconnects_total",
        "counter",
        "Clients closed with 1013 because they did not keep up.",
    ),
    "outbox_depth_max": (
        "asgi_chat_outbox_depth_max",
        "gauge",
        "The deepest any outbox has been, in messages.",
    ),
}


def prometheus_text(metrics: Metrics, extra: dict[str, tuple[str, int]] | None = None) -> str:
    """Render the counters in Prometheus' text exposition format (version 0.0.4).

    ``extra`` adds gauges: ``{"asgi_chat_broker_up": ("1 while the broker is reachable.", 1)}``.
    """
    lines: list[str] = []
    for field, value in metrics.as_dict().items():
        name, kind, help_text = _PROMETHEUS[field]
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
    for name, (help_text, value) in (extra or {}).items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    return "\n".join(lines) + "\n"

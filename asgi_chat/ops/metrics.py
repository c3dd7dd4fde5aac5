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


@dataclass(frozen=True, slots=True)
class Sample:
    """One metric as Prometheus shows it."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    value: int


def samples(metrics: Metrics) -> list[Sample]:
    return [
        Sample("asgi_chat_connections", "gauge", "Accepted WebSockets still open.", metrics.connections),
        Sample(
            "asgi_chat_messages_received_total", "counter", "Data messages from clients.", metrics.messages_received
        ),
        Sample(
            "asgi_chat_messages_delivered_total",
            "counter",
            "Data messages sent to clients.",
            metrics.messages_delivered,
        ),
        Sample(
            "asgi_chat_slow_consumer_disconnects_total",
            "counter",
            "Clients closed with 1013 because they did not keep up.",
            metrics.slow_consumer_disconnects,
        ),
        Sample("asgi_chat_outbox_depth_max", "gauge", "The deepest any outbox has been.", metrics.outbox_depth_max),
    ]


def prometheus_text(metrics: Metrics, extra: list[Sample] | None = None) -> str:
    """Render the counters, and any ``extra`` samples, in Prometheus' text format (version 0.0.4)."""
    lines: list[str] = []
    for sample in samples(metrics) + (extra or []):
        lines += [
            f"# HELP {sample.name} {sample.help}",
            f"# TYPE {sample.name} {sample.kind}",
            f"{sample.name} {sample.value}",
        ]
    return "\n".join(lines) + "\n"

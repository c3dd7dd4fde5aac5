"""Metrics, medians and ratios over the records, and how figures are formatted."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import ALL_CORES_PCT


@dataclass(frozen=True)
class Metric:
    name: str
    unit: str
    get: Callable[[dict[str, Any]], float | None]
    higher_is_better: bool | None = True
    fmt: str = "{:,.0f}"


def _client(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(record: dict[str, Any]) -> float | None:
        value = record.get("client", {}).get(key)
        return None if value is None or (isinstance(value, float) and value < 0) else float(value)

    return get


def _record(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(record: dict[str, Any]) -> float | None:
        value = record.get(key)
        return None if value is None else float(value)

    return get


def _percent(key: str) -> Callable[[dict[str, Any]], float | None]:
    def get(record: dict[str, Any]) -> float | None:
        value = _client(key)(record)
        return None if value is None else 100 * value

    return get


CPU_METRICS = (
    Metric("server CPU", "% of a core", _record("server_cpu_pct"), None, "{:.0f}"),
    Metric("load generator CPU", "% of a core", _client("client_cpu_pct"), None, "{:.0f}"),
    Metric("other processes' CPU", "% of a core", _record("other_cpu_pct"), None, "{:.0f}"),
)
METRICS: dict[str, tuple[Metric, ...]] = {
    "fanout": (
        Metric("deliveries", "/s", _client("deliveries_per_s")),
        Metric("latency p50", "ms", _client("lat_p50_ms"), False, "{:.1f}"),
        Metric("latency p99", "ms", _client("lat_p99_ms"), False, "{:.1f}"),
        *CPU_METRICS,
    ),
    "stalled": (
        Metric("delivered to healthy receivers", "%", _percent("delivered_fraction"), True, "{:.1f}"),
        Metric("deliveries", "/s", _client("deliveries_per_s")),
        Metric("latency p50", "ms", _client("lat_p50_ms"), False, "{:.1f}"),
        Metric("latency p99", "ms", _client("lat_p99_ms"), False, "{:.1f}"),
        Metric("server peak RSS", "MiB", lambda r: _mib(r.get("server_peak_rss_kib")), False, "{:.0f}"),
        *CPU_METRICS,
    ),
    "idle": (
        Metric("server memory per connection", "KiB", _record("mem_per_conn_kib"), False, "{:.1f}"),
        Metric("connections opened", "/s", _client("connections_per_s")),
        *CPU_METRICS,
    ),
    "echo": (
        Metric("round trips", "/s", _client("roundtrips_per_s")),
        Metric("latency p50", "ms", _client("lat_p50_ms"), False, "{:.2f}"),
        Metric("latency p99", "ms", _client("lat_p99_ms"), False, "{:.2f}"),
        *CPU_METRICS,
    ),
}


def _role_cpu(*roles: str) -> Callable[[dict[str, Any]], float | None]:
    """The scale-out server side's CPU, % of a core, summed over the processes with these roles."""

    def get(record: dict[str, Any]) -> float | None:
        parts = record.get("server_cpu_by_process")
        if parts is None:
            return None
        return float(sum(p["cpu_pct"] for p in parts if p["role"] in roles))

    return get


def _worker_cpu(with_sender: bool) -> Callable[[dict[str, Any]], float | None]:
    """CPU of the worker that has the sender's connection, or of the other (the first other)."""

    def get(record: dict[str, Any]) -> float | None:
        parts, split = record.get("server_cpu_by_process"), record.get("split")
        if not parts or not split:
            return None
        pids = [w["pid"] for w in split if w["sender"] == with_sender]
        return next((float(p["cpu_pct"]) for p in parts if pids and p["pid"] == pids[0]), None)

    return get


METRICS["scaleout"] = (
    *METRICS["fanout"][:3],
    Metric("server side CPU, all processes", "% of a core", _record("server_cpu_pct"), None, "{:.0f}"),
    Metric("… the process with the sender", "% of a core", _worker_cpu(True), None, "{:.0f}"),
    Metric("… the other worker", "% of a core", _worker_cpu(False), None, "{:.0f}"),
    Metric("… redis-server", "% of a core", _role_cpu("redis-server"), None, "{:.1f}"),
    Metric("… uvicorn's supervisor and helper", "% of a core", _role_cpu("supervisor", "helper"), None, "{:.1f}"),
    *CPU_METRICS[1:],
    Metric("all CPUs busy", f"% of a core, of {ALL_CORES_PCT}", _record("machine_busy_pct"), None, "{:.0f}"),
)


def _mib(kib: object) -> float | None:
    return None if kib is None else float(kib) / 1024  # type: ignore[arg-type]


def _exact_pct(record: dict[str, Any]) -> float | None:
    c = record.get("client", {})
    return 100 * c["recovered_exact"] / c["clients"] if c.get("clients") else None


# The rooms scenario's figures, by how each case is measured.
ROOMS_METRICS: dict[str, tuple[Metric, ...]] = {
    "fanout": METRICS["fanout"],
    "idle": METRICS["idle"],
    "resume": (
        Metric("clients that recovered exactly", "%", _exact_pct, True, "{:.1f}"),
        Metric("seconds until every client has every missed line", "s", _client("seconds"), False, "{:.2f}"),
        Metric("a client's time to all its lines, p50", "ms", _client("lat_p50_ms"), False, "{:.0f}"),
        Metric("a client's time to all its lines, p99", "ms", _client("lat_p99_ms"), False, "{:.0f}"),
        Metric("server RSS when the reconnects began", "MiB", lambda r: _mib(r.get("rss_before_kib")), False,
               "{:.0f}"),
        Metric("server peak RSS (VmHWM, its whole life)", "MiB", lambda r: _mib(r.get("server_peak_rss_kib")),
               False, "{:.0f}"),
        Metric("… the peak before the reconnects", "MiB", lambda r: _mib(r.get("peak_before_kib")), False,
               "{:.0f}"),
        *CPU_METRICS,
    ),
}  # fmt: skip


def median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def select_records(records: Sequence[dict[str, Any]], server: str, case: str, deflate: bool) -> list[dict[str, Any]]:
    return [r for r in records if r["server"] == server and r["case"] == case and r["deflate"] == deflate]


def med(records: Sequence[dict[str, Any]], server: str, case: str, deflate: bool, metric: Metric) -> float | None:
    return median([metric.get(r) for r in select_records(records, server, case, deflate)])


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, pattern: str = "{:,.0f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


# --- targets ------------------------------------------------------------------------------------

"""The issue's targets evaluated on the measured medians."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import ROOMS, SCALEOUT, SCALEOUT_ROOMS, SCALEOUT_WORKERS
from .figures import METRICS, Metric, _client, _mib, fmt, fmt_ratio, med, median, ratio, select_records
from .scenarios import Sizes


@dataclass
class Target:
    name: str
    deflate: bool
    measured: str
    target: str
    passed: bool | None  # None: could not be measured
    context: str


def find(metrics: Sequence[Metric], name: str) -> Metric:
    return next(m for m in metrics if m.name == name)


def evaluate_targets(records: Sequence[dict[str, Any]], sizes: Sizes, deflates: Sequence[bool]) -> list[Target]:
    targets: list[Target] = []
    big = f"fanout-{max(sizes.fanout_receivers)}"
    idle = f"idle-{sizes.idle_connections}"
    cases_seen = {r["case"] for r in records}
    for deflate in deflates:
        if {"stalled-0", "stalled-1"} <= cases_seen:
            targets += stalled_targets(records, deflate)
        if big in cases_seen:
            targets += fanout_targets(records, sizes, deflate)
        if idle in cases_seen:
            targets += idle_targets(records, idle, deflate)
    targets += rooms_targets(records, sizes)
    targets += roomscale_targets(records)
    targets += scaleout_targets(records)
    from .issue18 import fairness_targets, joinstorm_targets  # they build on Target, defined here
    from .issue19 import identity_targets

    targets += joinstorm_targets(records)
    targets += fairness_targets(records, sizes)
    targets += identity_targets(records)
    return targets


def stalled_targets(records: Sequence[dict[str, Any]], deflate: bool) -> list[Target]:
    """A stalled receiver: the healthy ones get everything, and their p99 latency at most doubles."""
    out: list[Target] = []
    runs = select_records(records, "asgi_chat", "stalled-1", deflate)
    fractions = [r.get("client", {}).get("delivered_fraction") for r in runs]
    closed = sum(int(r.get("client", {}).get("healthy_closed", 0)) for r in runs)
    lost = sum(int(r.get("client", {}).get("lost", 0)) for r in runs)
    worst = min((f for f in fractions if f is not None), default=None)
    ok = worst is not None and worst >= 1.0 and closed == 0 and lost == 0 and all(r["ok"] for r in runs)
    tut = med(
        records,
        "tutorial",
        "stalled-1",
        deflate,
        find(METRICS["stalled"], "delivered to healthy receivers"),
    )
    out.append(
        Target(
            "Stalled client: healthy receivers get every message",
            deflate,
            f"{fmt(None if worst is None else 100 * worst, '{:.1f}')} % (worst of {len(runs)}), "
            f"{closed} healthy closed, {lost} lost",
            "100 %, none closed",
            ok if runs else None,
            f"tutorial {fmt(tut, '{:.1f}')} %",
        )
    )  # fmt: skip
    p99 = find(METRICS["stalled"], "latency p99")
    with_stall = med(records, "asgi_chat", "stalled-1", deflate, p99)
    without = med(records, "asgi_chat", "stalled-0", deflate, p99)
    r = ratio(with_stall, without)
    out.append(
        Target(
            "Stalled client: healthy p99 latency vs the run without it",
            deflate,
            f"{fmt_ratio(r)} ({fmt(with_stall, '{:.1f}')} ms vs {fmt(without, '{:.1f}')} ms)",
            "≤ 2x",
            None if r is None else r <= 2.0,
            "",
        )
    )
    return out


def fanout_targets(records: Sequence[dict[str, Any]], sizes: Sizes, deflate: bool) -> list[Target]:
    """The largest fan-out's deliveries/s against the tutorial and websockets' broadcast()."""
    out: list[Target] = []
    big = f"fanout-{max(sizes.fanout_receivers)}"
    dps = find(METRICS["fanout"], "deliveries")
    a, t, w = (med(records, s, big, deflate, dps) for s in ("asgi_chat", "tutorial", "websockets"))
    floor = med(records, "raw_loop", big, deflate, dps)
    rt, rw = ratio(a, t), ratio(a, w)
    out.append(
        Target(
            f"Fan-out to {max(sizes.fanout_receivers)}: deliveries/s vs tutorial",
            deflate,
            f"{fmt_ratio(rt)} ({fmt(a)} vs {fmt(t)})",
            "≥ 1.15x",
            None if rt is None else rt >= 1.15,
            "" if floor is None else f"bare ASGI loop {fmt_ratio(ratio(floor, t))} of the tutorial",
        )
    )
    out.append(
        Target(
            f"Fan-out to {max(sizes.fanout_receivers)}: deliveries/s vs websockets broadcast()",
            deflate,
            f"{fmt_ratio(rw)} ({fmt(a)} vs {fmt(w)})",
            "≥ 0.9x",
            None if rw is None else rw >= 0.9,
            "",
        )
    )
    return out


def idle_targets(records: Sequence[dict[str, Any]], idle: str, deflate: bool) -> list[Target]:
    """Idle connections: memory per connection, and connections opened/s against the tutorial."""
    out: list[Target] = []
    mem = find(METRICS["idle"], "server memory per connection")
    a, t, w = (med(records, s, idle, deflate, mem) for s in ("asgi_chat", "tutorial", "websockets"))
    floor = med(records, "raw_loop", idle, deflate, mem)
    out.append(
        Target(
            "Idle connections: server memory per connection",
            deflate,
            f"{fmt(a, '{:.1f}')} KiB",
            "≤ 20 KiB",
            None if a is None else a <= 20.0,
            f"tutorial {fmt(t, '{:.1f}')} KiB, websockets {fmt(w, '{:.1f}')} KiB"
            + ("" if floor is None else f", bare ASGI loop {fmt(floor, '{:.1f}')} KiB"),
        )
    )
    cps = find(METRICS["idle"], "connections opened")
    a, t = med(records, "asgi_chat", idle, deflate, cps), med(records, "tutorial", idle, deflate, cps)
    floor = med(records, "raw_loop", idle, deflate, cps)
    rt = ratio(a, t)
    out.append(
        Target(
            "Idle connections: connections opened/s vs tutorial",
            deflate,
            f"{fmt_ratio(rt)} ({fmt(a)} vs {fmt(t)})",
            "≥ 1.5x",
            None if rt is None else rt >= 1.5,
            "" if floor is None else f"bare ASGI loop {fmt_ratio(ratio(floor, t))} of the tutorial",
        )
    )
    return out


def roomscale_targets(records: Sequence[dict[str, Any]]) -> list[Target]:
    """One room on the workers and the Redis room store: nothing lost, reordered or duplicated."""
    out: list[Target] = []
    room_scale = [r for r in records if r["scenario"] == "roomscale" and r["server"] == SCALEOUT_ROOMS[0].name]
    if room_scale:
        counts = delivery_counts(room_scale)
        deliveries = sum(int(r.get("client", {}).get("deliveries", 0)) for r in room_scale)
        out.append(
            Target(
                f"One room across {SCALEOUT_WORKERS} workers + Redis store: every receiver gets every line once, "
                "in order",
                False,
                f"{counts['lost']} lost, {counts['out_of_order']} out of order, {counts['duplicates']} duplicates, "
                f"{counts['healthy_closed']} receivers closed ({deliveries:,} deliveries, {len(room_scale)} runs)",
                "0 / 0 / 0 / 0",
                all(r["ok"] for r in room_scale) and not any(counts.values()),
                "the Redis room store's offsets, one sequence for all processes",
            )
        )
    return out


def scaleout_targets(records: Sequence[dict[str, Any]]) -> list[Target]:
    """The chat on the workers and the Redis broker: nothing lost, reordered or duplicated."""
    out: list[Target] = []
    scale = [r for r in records if r["scenario"] == "scaleout" and r["server"] == SCALEOUT[0].name]
    if scale:
        counts = delivery_counts(scale)
        deliveries = sum(int(r.get("client", {}).get("deliveries", 0)) for r in scale)
        clean = all(r["ok"] for r in scale) and not any(counts.values())
        out.append(
            Target(
                f"Scale-out ({SCALEOUT_WORKERS} workers + Redis): every receiver gets every message once, in order",
                False,
                f"{counts['lost']} lost, {counts['out_of_order']} out of order, {counts['duplicates']} duplicates, "
                f"{counts['healthy_closed']} receivers closed ({deliveries:,} deliveries, {len(scale)} runs)",
                "0 / 0 / 0 / 0",
                clean,
                "the Redis broker's promise while Redis is up",
            )
        )
    return out


def rooms_targets(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[Target]:
    """Issue 11's three: a room's fan-out and idle memory vs the tutorial chat on asgi_chat, resume exact."""
    out: list[Target] = []
    n, missed = sizes.rooms_members, sizes.rooms_missed
    room, chat = ROOMS[1].name, ROOMS[0].name
    cases_seen = {r["case"] for r in records}
    if f"rooms-fanout-{n}" in cases_seen:
        dps = find(METRICS["fanout"], "deliveries")
        a, t = (med(records, s, f"rooms-fanout-{n}", False, dps) for s in (room, chat))
        rt = ratio(a, t)
        out.append(
            Target(
                f"Room of {n} members, one sender: deliveries/s vs the tutorial chat on asgi_chat",
                False,
                f"{fmt_ratio(rt)} ({fmt(a)} vs {fmt(t)})",
                "≥ 0.9x",
                None if rt is None else rt >= 0.9,
                "the same asgi_chat server: /chat/ws room vs /ws/{id}",
            )
        )
    if f"rooms-resume-{n}" in cases_seen:
        runs = select_records(records, room, f"rooms-resume-{n}", False)
        exact = [int(r.get("client", {}).get("recovered_exact", 0)) for r in runs]
        seconds = median([_client("seconds")(r) for r in runs])
        peak = median([_mib(r.get("server_peak_rss_kib")) for r in runs])
        ok = bool(runs) and all(r["ok"] for r in runs) and all(e == n for e in exact)
        out.append(
            Target(
                f"{n} clients resume at once after each missed {missed} lines: all recover exactly",
                False,
                f"{min(exact, default=0)} of {n} exact (worst of {len(runs)}), {fmt(seconds, '{:.2f}')} s, "
                f"server peak RSS {fmt(peak, '{:.0f}')} MiB",
                f"{n} of {n}; report seconds and peak RSS",
                ok if runs else None,
                "every missed offset once, in order, no gap",
            )
        )
    if f"rooms-idle-{n}" in cases_seen:
        mem = find(METRICS["idle"], "server memory per connection")
        a, t = (med(records, s, f"rooms-idle-{n}", False, mem) for s in (room, chat))
        rt = ratio(a, t)
        out.append(
            Target(
                "Idle room member memory vs an idle tutorial chat connection",
                False,
                f"{fmt_ratio(rt)} ({fmt(a, '{:.1f}')} vs {fmt(t, '{:.1f}')} KiB)",
                "≤ 1.25x",
                None if rt is None else rt <= 1.25,
                f"{n} connections each, the same asgi_chat server",
            )
        )
    return out


def delivery_counts(runs: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Lost, reordered and duplicated messages and closed healthy receivers, summed over runs.

    Duplicates include any that arrived after the measured phase (wsload's later `status`).
    """
    out = {"lost": 0, "out_of_order": 0, "duplicates": 0, "healthy_closed": 0}
    for r in runs:
        c, after = r.get("client", {}), r.get("status_after", {})
        for key in ("lost", "out_of_order", "healthy_closed"):
            out[key] += int(c.get(key) or 0)
        out["duplicates"] += max(int(c.get("duplicates") or 0), int(after.get("duplicates") or 0))
    return out


# --- reporting ----------------------------------------------------------------------------------

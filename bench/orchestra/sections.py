"""The report's rooms and roomscale sections (issues 11 and 12)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from .config import (
    REDIS_APPEND,
    ROOMS,
    SCALEOUT_ROOMS,
    SCALEOUT_WORKERS,
    Server,
    before_name,
)
from .figures import (
    METRICS,
    ROOMS_METRICS,
    Metric,
    _client,
    _record,
    fmt,
    fmt_ratio,
    med,
    median,
    ratio,
    select_records,
)
from .scaleout import split_text
from .scenarios import Case, Sizes
from .targets import delivery_counts


def rooms_section(records: Sequence[dict[str, Any]], all_cases: Sequence[Case]) -> list[str]:
    """The rooms scenario: asgi_chat's /chat/ws room beside its own tutorial chat on /ws/{id}
    (and, after --before, the other checkout's two, in columns of their own)."""
    pairs: list[tuple[Server, ...]] = [ROOMS]
    if any(r["server"] == before_name(ROOMS[0].name) for r in records):
        pairs.append(tuple(dataclasses.replace(s, name=before_name(s.name), title=f"before: {s.title}") for s in ROOMS))
    rows = []
    for case in all_cases:
        if case.scenario != "rooms":
            continue
        for metric in ROOMS_METRICS[case.measure]:
            cells = []
            for chat, room in pairs:
                t, a = (med(records, s.name, case.key, False, metric) for s in (chat, room))
                cell = fmt_ratio(ratio(a, t)) if metric.higher_is_better is not None and t is not None else ""
                cells += [fmt(t, metric.fmt), fmt(a, metric.fmt), cell]
            if all(c in ("n/a", "") for c in cells):
                continue
            rows.append(f"| {case.key} | {metric.name} ({metric.unit}) | " + " | ".join(cells) + " |")
    if not rows:
        return []
    head = " | ".join(f"{chat.title} | {room.title} | room / tutorial chat" for chat, room in pairs)
    return [
        "### Rooms: an asgi-chat.v1 room beside the tutorial chat, on asgi_chat",
        "",
        "One asgi_chat server (the options and limits above), fresh for each run, measured through its "
        "tutorial chat (`/ws/{id}`, wsload as in fanout) and through one room of `/chat/ws` (wsload "
        "`--proto v1`: subprotocol `asgi-chat.v1`, each connection says `hello` as `u<id>` and `join`s "
        "room `bench`; the sender's lines are `say` frames; receivers read each `msg`'s `text`). "
        "permessage-deflate not offered. A room connection counts as open once its `joined` arrived; "
        "the 1000 joins announce presence to each other (about N²/2 frames) before the sender joins, and "
        "the measured phase starts after a warm-up line has reached every member, so after that storm. "
        "The resume case (room only): N clients join, close, the sender says M lines (each acked), then "
        "the N reconnect at once (all handshakes in flight) and join with `since` their old epoch and "
        "offset; each must get offsets +1..+M exactly once, in order, with no `gap`; the seconds run from "
        "the first reconnect until the last client has its M lines, and include the presence of the N "
        "rejoins.",
        "",
        f"| case | figure | {head} |",
        "| --- | --- |" + " ---: | ---: | ---: |" * len(pairs),
        *rows,
    ]


APPEND_METRICS = (
    Metric("messages pushed", "/s", _client("messages_per_s")),
    Metric("call latency p50", "ms", _client("lat_p50_ms"), False, "{:.3f}"),
    Metric("call latency p99", "ms", _client("lat_p99_ms"), False, "{:.3f}"),
    Metric("redis-server CPU", "% of a core", _record("redis_cpu_pct"), None, "{:.0f}"),
)


def roomscale_section(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    """Issue 12's benchmark: one room across 2 workers and Redis vs 1 process; append vs PUBLISH."""
    lines: list[str] = []
    runs = [r for r in records if r["scenario"] == "roomscale" and r.get("kind") == "scaleout"]
    if runs:
        lines += roomscale_room_lines(records, sizes, runs)
    push = [r for r in records if r["scenario"] == "roomscale" and r.get("kind") == "append"]
    if push:
        lines += roomscale_append_lines(records, after_room=bool(lines))
    return lines


def roomscale_room_lines(records: Sequence[dict[str, Any]], sizes: Sizes, runs: Sequence[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    key, (a, b) = runs[0]["case"], SCALEOUT_ROOMS
    a_runs, b_runs = select_records(records, a.name, key, False), select_records(records, b.name, key, False)
    lines += [
        f"### Rooms across processes: {SCALEOUT_WORKERS} workers with the Redis store against 1 process",
        "",
        f"The scale-out comparison above, but the {sizes.scaleout_receivers} receivers and the sender are "
        "members of one `asgi-chat.v1` room on `/chat/ws` (wsload `--proto v1`): in A every `say` goes "
        "through the Redis store's Lua append (offset, stream, publish), and each worker delivers what "
        "its room subscription receives; B is one process with the memory store. Nothing pinned, "
        "permessage-deflate not offered, exactly-once checked per receiver as in the scale-out; "
        f"medians of {len(a_runs)} runs of A and {len(b_runs)} of B. What 2 cores can and cannot show "
        "is as said for the scale-out: this shows that two workers serve one room exactly once and in "
        "order, and what the Redis hop costs when the workers, redis-server and the load generator "
        "share 2 cores; not how far it scales.",
        "",
        f"| figure | {a.title} | {b.title} | A / B |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric in METRICS["scaleout"]:
        va, vb = median([metric.get(r) for r in a_runs]), median([metric.get(r) for r in b_runs])
        cell = fmt_ratio(ratio(va, vb)) if metric.higher_is_better is not None else ""
        lines.append(f"| {metric.name} ({metric.unit}) | {fmt(va, metric.fmt)} | {fmt(vb, metric.fmt)} | {cell} |")
    split_a, split_b = (", ".join(split_text(r) for r in rs) for rs in (a_runs, b_runs))
    lines.append(f"| receivers per worker, the sender's worker first (each run) | {split_a} | {split_b} | |")
    ca, cb = delivery_counts(a_runs), delivery_counts(b_runs)
    for name in ("lost", "out_of_order", "duplicates", "healthy_closed"):
        label = {"healthy_closed": "receivers closed", "out_of_order": "out of order"}.get(name, name)
        lines.append(f"| {label} (all runs) | {ca[name]} | {cb[name]} | |")
    return lines


def roomscale_append_lines(records: Sequence[dict[str, Any]], after_room: bool) -> list[str]:
    lines: list[str] = []
    a, b = REDIS_APPEND
    a_runs, b_runs = (
        select_records(records, a.name, "redis-append", False),
        select_records(records, b.name, "redis-append", False),
    )
    lines += [
        *([""] if after_room else []),
        "### The Redis store's atomic append+publish against a plain PUBLISH",
        "",
        "`bench/redis_append.py`, pinned to CPU 1, against a redis-server of its own on CPU 0: one "
        "sender for 3 s, each call awaited before the next (as one connection's says are), 64 B of "
        "text: `RedisStore.append` (the Lua script: offset from the room's meta, `XADD MAXLEN ~` to its "
        "stream, `PUBLISH` of the frame, in one step) against a `PUBLISH` of the same frame, encoded "
        "the same way. No subscriber on the channel in either, so this is the sender's side alone. "
        f"Medians of {len(a_runs)} runs each, alternating.",
        "",
        f"| figure | {a.title} | {b.title} | append / PUBLISH |",
        "| --- | ---: | ---: | ---: |",
    ]
    for metric in APPEND_METRICS:
        va, vb = median([metric.get(r) for r in a_runs]), median([metric.get(r) for r in b_runs])
        cell = fmt_ratio(ratio(va, vb)) if metric.higher_is_better is not None else ""
        lines.append(f"| {metric.name} ({metric.unit}) | {fmt(va, metric.fmt)} | {fmt(vb, metric.fmt)} | {cell} |")
    return lines

"""The report's scale-out section: 2 workers with Redis against 1 process."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .config import (
    ALL_CORES_PCT,
    ALL_CPUS,
    SCALEOUT,
    SCALEOUT_WORKERS,
    SERVER_CPU,
    Server,
)
from .figures import (
    METRICS,
    _client,
    _record,
    _role_cpu,
    _worker_cpu,
    fmt,
    fmt_ratio,
    med,
    median,
    ratio,
    select_records,
)
from .scenarios import Sizes
from .targets import delivery_counts, find


def split_text(record: dict[str, Any]) -> str:
    """How the receivers were spread over the workers, the sender's worker first: "503 + 497"."""
    split = record.get("split") or []
    return " + ".join(str(w["receivers"]) for w in split) if split else "n/a"


def scaleout_section(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    runs = [r for r in records if r["scenario"] == "scaleout"]
    if not runs:
        return []
    key, a, b = runs[0]["case"], SCALEOUT[0], SCALEOUT[1]
    a_runs, b_runs = select_records(records, a.name, key, False), select_records(records, b.name, key, False)
    n = scaleout_numbers(records, sizes, a_runs, b_runs)
    return [
        *scaleout_intro(sizes, a, b),
        *scaleout_table(a_runs, b_runs),
        "",
        *scaleout_crossing(sizes, a_runs),
        "",
        *scaleout_limits(sizes, n),
    ]


def scaleout_intro(sizes: Sizes, a: Server, b: Server) -> list[str]:
    return [
        f"### Scale-out: {SCALEOUT_WORKERS} workers with Redis against 1 process",
        "",
        f"Fan-out to {sizes.scaleout_receivers} receivers, as fanout-{sizes.scaleout_receivers} above "
        f"({sizes.fanout_size} B messages, window {sizes.window}, {sizes.fanout_seconds:g} s), permessage-deflate "
        "not offered (the question is the broker; deflate would add the same per-copy cost to both). "
        f"**A**: `uvicorn asgi_chat:app --workers {SCALEOUT_WORKERS}` with "
        "`ASGI_CHAT_STATE_URL=redis://127.0.0.1:PORT/0` and a redis-server 7 of its own, started for each "
        "run (`--save '' --appendonly no`, 127.0.0.1, a free port). **B**: one asgi_chat process with the "
        "memory broker, the server of fanout-1000. Both have the options and the security limits (off) of "
        f"the runs above. A and B alternate, {sizes.scaleout_pairs} of each per repetition (A B, then B A), "
        f"so the figures are medians of {sizes.reps * sizes.scaleout_pairs} runs each. **Nothing is pinned** "
        f"in this scenario (`taskset -c {ALL_CPUS}` for the servers, redis-server and wsload alike): A has "
        "four busy processes (2 workers, redis-server, the load generator) on 2 cores, so any pinning would "
        "decide the result; unpinned, the kernel's scheduler shares the 2 cores, and B runs under the same "
        "rule. Server-side CPU is the sum over every process of the server (from /proc/PID/stat): the "
        "workers, uvicorn's supervisor and its multiprocessing helper, and redis-server.",
        "",
        f"| figure | {a.title} | {b.title} | A / B |",
        "| --- | ---: | ---: | ---: |",
    ]


def scaleout_table(a_runs: Sequence[dict[str, Any]], b_runs: Sequence[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    metrics = METRICS["scaleout"]
    for metric in metrics:
        va = median([metric.get(r) for r in a_runs])
        vb = median([metric.get(r) for r in b_runs])
        cell = fmt_ratio(ratio(va, vb)) if metric.higher_is_better is not None else ""
        lines.append(f"| {metric.name} ({metric.unit}) | {fmt(va, metric.fmt)} | {fmt(vb, metric.fmt)} | {cell} |")
    split_a = ", ".join(split_text(r) for r in a_runs)
    lines.append(f"| receivers per worker, the sender's worker first (each run) | {split_a} | "
                 f"{', '.join(split_text(r) for r in b_runs)} | |")  # fmt: skip
    ca, cb = delivery_counts(a_runs), delivery_counts(b_runs)
    for name in ("lost", "out_of_order", "duplicates", "healthy_closed"):
        label = {"healthy_closed": "receivers closed", "out_of_order": "out of order"}.get(name, name)
        lines.append(f"| {label} (all runs) | {ca[name]} | {cb[name]} | |")
    return lines


def _med_of(get: Callable[[dict[str, Any]], float | None], rs: Sequence[dict[str, Any]]) -> float | None:
    return median([get(r) for r in rs])


@dataclass(frozen=True)
class ScaleoutNumbers:
    """The medians the scale-out discussion quotes (A: the workers and Redis, B: one process)."""

    va: float | None
    vb: float | None
    cpu_a: float | None
    cpu_b: float | None
    with_sender: float | None
    other_worker: float | None
    redis_cpu: float | None
    client_a: float | None
    busy_a: float | None
    busy_b: float | None
    p50_a: float | None
    p50_b: float | None
    p99_a: float | None
    p99_b: float | None
    pinned: float | None


def scaleout_numbers(
    records: Sequence[dict[str, Any]], sizes: Sizes, a_runs: Sequence[dict[str, Any]], b_runs: Sequence[dict[str, Any]]
) -> ScaleoutNumbers:
    metrics = METRICS["scaleout"]
    deliveries = find(metrics, "deliveries")
    p50, p99 = find(metrics, "latency p50"), find(metrics, "latency p99")
    return ScaleoutNumbers(
        va=_med_of(deliveries.get, a_runs),
        vb=_med_of(deliveries.get, b_runs),
        cpu_a=_med_of(_record("server_cpu_pct"), a_runs),
        cpu_b=_med_of(_record("server_cpu_pct"), b_runs),
        with_sender=_med_of(_worker_cpu(True), a_runs),
        other_worker=_med_of(_worker_cpu(False), a_runs),
        redis_cpu=_med_of(_role_cpu("redis-server"), a_runs),
        client_a=_med_of(_client("client_cpu_pct"), a_runs),
        busy_a=_med_of(_record("machine_busy_pct"), a_runs),
        busy_b=_med_of(_record("machine_busy_pct"), b_runs),
        p50_a=_med_of(p50.get, a_runs),
        p50_b=_med_of(p50.get, b_runs),
        p99_a=_med_of(p99.get, a_runs),
        p99_b=_med_of(p99.get, b_runs),
        pinned=med(records, "asgi_chat", f"fanout-{sizes.scaleout_receivers}", False, deliveries),
    )


def scaleout_finding(r_ab: float | None) -> str:
    if r_ab is None:
        return "not measured."
    if r_ab >= 1.1:
        return "the second core pays off here, though far from twice."
    if r_ab > 0.9:
        return "on this machine, no gain worth the name."
    return "on this machine, A is slower."


def scaleout_crossing(sizes: Sizes, a_runs: Sequence[dict[str, Any]]) -> list[str]:
    """How the kernel split the receivers, and how many got their lines through Redis."""
    crossing = [w["receivers"] for r in a_runs for w in r.get("split") or [] if not w["sender"]]
    share = 100 * statistics.median(crossing) / sizes.scaleout_receivers if crossing else None
    return [
        "uvicorn's workers share one listening socket, so the kernel decides which worker accepts each "
        "connection (counted from /proc/PID/fd and /proc/net/tcp while the connections were open; the "
        "split differs from run to run). The sender's worker delivers each line to its own receivers "
        "directly and publishes it once to Redis; the other worker's Redis listener hands it to the rest"
        + (f": a median {share:.0f} % of the receivers got every line through Redis. " if share is not None else ". ")
        + "wsload checks every receiver's lines for gaps, order and duplicates (a bitmap of the sequence "
        "numbers it has seen, kept up after the measured phase too), and a line is done, for the window, "
        "only when every receiver on both workers has it: the slower worker sets the pace. Latency is over "
        "all receivers of both workers.",
    ]


def scaleout_limits(sizes: Sizes, n: ScaleoutNumbers) -> list[str]:
    """What a 2-core machine can and cannot show about scaling out."""
    va, vb, cpu_a, cpu_b = n.va, n.vb, n.cpu_a, n.cpu_b
    with_sender, other_worker, redis_cpu, client_a = n.with_sender, n.other_worker, n.redis_cpu, n.client_a
    busy_a, busy_b, p50_a, p50_b, p99_a, p99_b, pinned = (
        n.busy_a,
        n.busy_b,
        n.p50_a,
        n.p50_b,
        n.p99_a,
        n.p99_b,
        n.pinned,
    )
    r_ab = ratio(va, vb)
    per_a = None if cpu_a is None or not va else cpu_a * 1e4 / va  # µs of CPU per delivery
    per_b = None if cpu_b is None or not vb else cpu_b * 1e4 / vb
    finding = scaleout_finding(r_ab)
    return [
        "**What this 2-core machine can and cannot show about scaling out.**",
        "",
        "- It can show that the workers are one chat: every receiver, on either worker, got every line "
        "exactly once and in order (the counts above and the target), with the sender's lines crossing "
        "Redis to the other worker.",
        f"- It can show what the Redis hop costs on one machine: redis-server used {fmt(redis_cpu, '{:.1f}')} % "
        "of a core (one PUBLISH in and one copy out per worker for each chat line, not per delivery); each "
        "worker's publish and listener are in its own CPU figure.",
        f"- It can show whether a second process lets the chat use the second core. B is one event loop, "
        f"so at most one core ({fmt(cpu_b)} % here); A's processes together used {fmt(cpu_a)} % (the "
        f"sender's worker {fmt(with_sender)} %, the other {fmt(other_worker)} %), and A delivered "
        f"{fmt_ratio(r_ab)} B's deliveries per second ({fmt(va)} against {fmt(vb)}): {finding} A's server "
        f"side spent {fmt(per_a, '{:.1f}')} µs of CPU per delivery, B {fmt(per_b, '{:.1f}')} µs. The p50 "
        f"latency was {fmt(p50_a, '{:.0f}')} ms against {fmt(p50_b, '{:.0f}')} ms (each worker writes a line "
        f"to its share of the receivers only, so many get it sooner); the p99, {fmt(p99_a, '{:.0f}')} ms "
        f"against {fmt(p99_b, '{:.0f}')} ms, includes the other worker's receivers, behind the Redis hop."
        + (
            f" (B is the server of fanout-{sizes.scaleout_receivers}, unpinned here; pinned to CPU {SERVER_CPU} "
            f"there it delivered {fmt(pinned)}/s.)"
            if pinned is not None
            else ""
        ),
        f"- It cannot show how far this scales. The load generator needed {fmt(client_a)} % of a core "
        f"from the same 2 cores, and the machine was {fmt(busy_a)} % busy of {ALL_CORES_PCT} (with B: "
        f"{fmt(busy_b)} %): the two "
        "workers, redis-server, the client and the kernel's loopback TCP work took turns on the 2 cores, "
        "so no worker had a core of its own. A's figure is what 2 cores shared with the client allow, not "
        "twice one dedicated core, and a third worker would have no core to itself at all. More workers, "
        "more hosts, a load balancer instead of the shared socket, and Redis across a network (a LAN round "
        "trip instead of loopback's tens of microseconds, on every line's way to the other processes) need "
        "more cores and machines than this one; so does a chat whose load is many senders rather than one "
        "sender to many receivers, which would load Redis per line rather than the workers per copy.",
    ]

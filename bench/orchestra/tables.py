"""The report's tables: targets, all figures, the floor, observations, interference."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from .figures import METRICS, fmt, fmt_ratio, med, ratio, select_records
from .scenarios import Case
from .targets import Target, find


def deflate_label(deflate: bool) -> str:
    return "offered" if deflate else "not offered"


def verdict(passed: bool | None) -> str:
    return "n/a" if passed is None else ("**pass**" if passed else "**MISS**")


def targets_table(targets: Sequence[Target]) -> list[str]:
    lines = [
        "| target | permessage-deflate | asgi_chat measured | target | result | for comparison |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for t in targets:
        row = (t.name, deflate_label(t.deflate), t.measured, t.target, verdict(t.passed), t.context)
        lines.append("| " + " | ".join(row) + " |")
    return lines


def figures_table(records: Sequence[dict[str, Any]], all_cases: Sequence[Case], deflates: Sequence[bool]) -> list[str]:
    names = ("asgi_chat", "tutorial", "websockets")
    lines = [
        "| scenario | deflate | figure | asgi_chat | tutorial | websockets | asgi_chat / tutorial "
        "| asgi_chat / websockets |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in all_cases:
        if case.scenario in ("scaleout", "rooms", "roomscale", "joinstorm", "fairness", "identity", "api"):
            continue  # a table of its own: scaleout_section, rooms_section, roomscale_section, issue18/19.py
        for deflate in deflates:
            if not any(select_records(records, n, case.key, deflate) for n in names):
                continue
            for metric in METRICS[case.scenario]:
                a, t, w = (med(records, n, case.key, deflate, metric) for n in names)
                cells = [fmt(v, metric.fmt) for v in (a, t, w)]
                ratios = ["", ""]
                if metric.higher_is_better is not None:
                    ratios = [fmt_ratio(ratio(a, t)), fmt_ratio(ratio(a, w))]
                label = f"{metric.name} ({metric.unit})"
                head = f"| {case.key} | {'on' if deflate else 'off'} | {label} | "
                lines.append(head + " | ".join(cells + ratios) + " |")
    return lines


FLOOR_SERVERS = ("asgi_chat", "tutorial", "raw_loop")
# The figures of the floor table: (scenario, metric name).
FLOOR_FIGURES = (
    ("fanout", "deliveries"),
    ("idle", "server memory per connection"),
    ("idle", "connections opened"),
)


def floor_section(records: Sequence[dict[str, Any]], all_cases: Sequence[Case], deflates: Sequence[bool]) -> list[str]:
    """asgi_chat and the tutorial against the bare ASGI loop: how much of the cost is the app's."""
    rows = []
    for case in all_cases:
        for scenario, name in FLOOR_FIGURES:
            if case.scenario != scenario:
                continue
            metric = find(METRICS[scenario], name)
            for deflate in deflates:
                a, t, floor = (med(records, s, case.key, deflate, metric) for s in FLOOR_SERVERS)
                if floor is None:
                    continue
                cells = [fmt(v, metric.fmt) for v in (a, t, floor)] + [fmt_ratio(ratio(v, floor)) for v in (a, t)]
                head = f"| {case.key} | {'on' if deflate else 'off'} | {metric.name} ({metric.unit}) | "
                rows.append(head + " | ".join(cells) + " |")
    if not rows:
        return []
    return [
        "### The floor: a bare ASGI loop",
        "",
        "`bench/raw_loop_app.py` is the tutorial's chat as a bare ASGI loop on the same uvicorn: a list of "
        "`send` callables awaited in turn, no framework, no hub, no checks, no limits (and the tutorial's "
        "flaw: a client that stops reading stops it, so it runs only where no client does). Its figures "
        "are about what uvicorn allows an app that adds next to nothing: the floor of memory per "
        "connection and the ceiling of deliveries and handshakes per second for any ASGI app on this "
        "server. The gap between it and `websockets` broadcast() is the server's ASGI layer, which no "
        "app can remove.",
        "",
        "| scenario | deflate | figure | asgi_chat | tutorial | bare loop | asgi_chat / loop | tutorial / loop |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def failures(records: Sequence[dict[str, Any]]) -> list[str]:
    out = []
    for r in records:
        if not r["ok"]:
            deflate = "deflate" if r["deflate"] else "plain"
            out.append(f"- {r['case']} {deflate} {r['server']} rep {r['rep']}: {r['error']}")
    return out


def observations(records: Sequence[dict[str, Any]]) -> list[str]:
    """Facts worth a line: healthy receivers closed, messages lost or reordered, stalled clients' fate."""
    notes: list[str] = []
    for r in records:
        c = r.get("client", {})
        where = f"{r['case']} ({'deflate' if r['deflate'] else 'plain'}, rep {r['rep']}) {r['server']}"
        if c.get("healthy_closed"):
            notes.append(f"- {where}: {c['healthy_closed']} healthy receivers closed, codes {c.get('close_codes')}")
        duplicates = max(int(c.get("duplicates") or 0), int(r.get("status_after", {}).get("duplicates") or 0))
        if c.get("lost") or c.get("out_of_order") or duplicates:
            notes.append(
                f"- {where}: {c.get('lost')} lost, {c.get('out_of_order')} out of order, {duplicates} duplicates"
            )
        if c.get("protocol_errors"):
            notes.append(f"- {where}: {c['protocol_errors']} WebSocket protocol errors seen by the client")
        if r["scenario"] == "idle" and r.get("status") and r["status"].get("closed_by_server"):
            notes.append(f"- {where}: {r['status']['closed_by_server']} idle connections closed by the server")
    notes += code_changes(records)
    fates: dict[tuple[str, bool], list[str]] = {}
    for r in records:
        for s in r.get("client", {}).get("stalled_conns", []):
            state = s["state"] + (f" {s['code']}" if s["code"] >= 0 else "")
            fates.setdefault((r["server"], r["deflate"]), []).append(f"{state} after {s['msgs']} messages")
    for (server, deflate), items in sorted(fates.items()):
        notes.append(f"- stalled client on {server} ({'deflate' if deflate else 'plain'}): " + "; ".join(items))
    logged: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for r in records:
        if r.get("server_log_lines"):
            logged.setdefault((r["server"], r["case"], r["deflate"]), []).append(r)
    for (server, case, deflate), runs in sorted(logged.items()):
        lines = sum(int(r["server_log_lines"]) for r in runs)
        tail = runs[-1].get("server_log", "")[:200]
        notes.append(
            f"- server log of {server}, {case} ({'deflate' if deflate else 'plain'}): {lines} lines in "
            f"{len(runs)} run(s) (bench/build/logs/), the last ending `{tail}`"
        )
    return notes


def code_changes(records: Sequence[dict[str, Any]]) -> list[str]:
    """The asgi_chat source changed under a server during the run (others at work on the checkout)."""
    versions: dict[str, list[str]] = {}
    for r in records:
        if r.get("code") and r["code"] not in versions.setdefault(r["server"], []):
            versions[r["server"]].append(r["code"])
    return [
        f"- the asgi_chat source that {server} runs changed during the run: {len(codes)} versions "
        f"({', '.join(codes)}; each run's is its record's `code` in results/latest.json)"
        for server, codes in sorted(versions.items())
        if len(codes) > 1
    ]


def interference(records: Sequence[dict[str, Any]], limit: float = 20.0) -> list[str]:
    """How much else ran on the machine during the measured phases (it skews every figure)."""
    others = [r["other_cpu_pct"] for r in records if r.get("other_cpu_pct") is not None]
    steal = [r["steal_pct"] for r in records if r.get("steal_pct") is not None]
    if not others:
        return []
    busy = [r for r in records if (r.get("other_cpu_pct") or 0) > limit]
    line = (
        f"Other processes on the machine used a median {statistics.median(others):.0f} % "
        f"(max {max(others):.0f} %) of a core during the measured phases"
        f"{f', hypervisor steal a median {statistics.median(steal):.1f} %' if steal else ''}; "
        f"{len(busy)} of {len(records)} runs saw more than {limit:.0f} %."
    )
    return [line]

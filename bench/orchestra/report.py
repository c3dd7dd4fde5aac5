"""The whole report, its metadata, and the results section of docs/benchmark.md."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .apibench import api_line, api_section
from .config import CLIENT_CPU, END_MARK, RESULTS_PAGE, SERVER_CPU, START_MARK, UVICORN_OPTIONS
from .figures import _mib, fmt
from .issue18 import fairness_section, joinstorm_section
from .issue19 import identity_section
from .scaleout import scaleout_section, split_text
from .scenarios import FULL, SCENARIOS, Case, Sizes, cases
from .sections import rooms_section, roomscale_section
from .tables import failures, figures_table, floor_section, interference, observations, targets_table
from .targets import Target, delivery_counts, evaluate_targets


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for dist in ("uvicorn", "websockets", "uvloop", "httptools", "fastapi", "starlette"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release(), "os": platform.system()}


def command_line() -> str:
    cmd = "python bench/run.py" + "".join(f" {a}" for a in sys.argv[1:])
    return f"make bench ({cmd})" if os.environ.get("MAKELEVEL") else cmd


def setup_lines(meta: dict[str, Any]) -> list[str]:
    """Where and how it was measured: the machine, the versions, the command and the pinning."""
    v, m = meta["versions"], meta["machine"]
    return [
        f"Measured {meta['date']} on {m['nproc']} CPUs ({m['cpu']}), Linux {m['kernel']}; "
        f"Python {v['python']}, uvicorn {v['uvicorn']} (`--ws auto` = websockets-sansio, uvloop "
        f"{v['uvloop']}, httptools {v['httptools']}), websockets {v['websockets']}, FastAPI {v['fastapi']} "
        f"(Starlette {v['starlette']}).",
        "",
        f"Command: `{meta['command']}`; {meta['sizes']['reps']} repetition{'s' if meta['sizes']['reps'] != 1 else ''}, "
        "medians shown. Every run "
        f"starts a fresh server pinned to CPU {SERVER_CPU} (`taskset -c {SERVER_CPU}`) and the C load "
        f"generator on CPU {CLIENT_CPU} (except the scale-out comparison, below, which pins nothing); "
        "the servers alternate within each repetition. asgi_chat runs "
        "with `ASGI_CHAT_RATE_PER_SECOND=0 ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS=0` (its security "
        "limits off, everything else default); the uvicorn apps with the same options "
        f"(`{' '.join(UVICORN_OPTIONS)}`). permessage-deflate: each figure was measured with the "
        "client not offering it (deflate off) and offering it as browsers do "
        "(`permessage-deflate; client_max_window_bits`, deflate on; the servers accept it) "
        "(the fairness scenario's asgi_chat keeps its limits, see there).",
        *checkout_lines(meta),
    ]


def checkout_lines(meta: dict[str, Any]) -> list[str]:
    """Which asgi_chat was measured: this checkout's commit and, with --before, the other's."""
    if not meta.get("commit"):
        return []
    line = f"asgi_chat: this checkout, at {meta['commit']}"
    if meta.get("before"):
        line += (
            f"; `--before {meta['before']}` at {meta.get('before_commit')}, measured side by side as "
            "`asgi_chat_before` (labelled before) in the rooms, join storm, fairness and identity sections"
        )
    return ["", line + "."]


def report(
    meta: dict[str, Any],
    records: Sequence[dict[str, Any]],
    all_cases: Sequence[Case],
    targets: Sequence[Target],
    deflates: Sequence[bool],
    sizes: Sizes,
) -> str:
    lines = [
        *setup_lines(meta),
        "",
        "### Targets",
        "",
        *targets_table(targets),
        "",
        "### All figures",
        "",
    ]
    figures = figures_table(records, all_cases, deflates)
    lines += figures if len(figures) > 2 else ["(no scenario of the three servers was run)"]
    floor = floor_section(records, all_cases, deflates)
    if floor:
        lines += ["", *floor]
    rooms = rooms_section(records, all_cases)
    if rooms:
        lines += ["", *rooms]
    scaleout = scaleout_section(records, sizes)
    if scaleout:
        lines += ["", *scaleout]
    roomscale = roomscale_section(records, sizes)
    if roomscale:
        lines += ["", *roomscale]
    for section in (
        joinstorm_section(records, sizes),
        fairness_section(records, sizes),
        identity_section(records, sizes),
        api_section(list(records), sizes),
    ):
        if section:
            lines += ["", *section]
    lines += [
        "",
        "How each figure is measured: [How the benchmark measures](benchmark-method.md).",
    ]
    lines += ["", *interference(records)]
    notes = observations(records)
    if notes:
        lines += ["", "Observations:", "", *notes]
    failed = failures(records)
    if failed:
        lines += ["", "Runs that did not complete:", "", *failed]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> Path:
    """Put ``section`` between the marks of docs/benchmark.md (at its end, if the marks are gone)."""
    body = f"{START_MARK}\n{section}{END_MARK}\n"
    text = RESULTS_PAGE.read_text()
    if START_MARK in text and END_MARK in text:
        head, _, rest = text.partition(START_MARK)
        _, _, tail = rest.partition(END_MARK)
        text = head + body.rstrip("\n") + tail
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body
    RESULTS_PAGE.write_text(text)
    return RESULTS_PAGE


def summary_line(record: dict[str, Any]) -> str:
    if not record["ok"]:
        return f"failed: {record['error']}"
    c = record["client"]
    scenario = record.get("kind") or record["scenario"]
    cpu = f"server {fmt(record.get('server_cpu_pct'))} % CPU, client {fmt(c.get('client_cpu_pct'))} %"
    other = record.get("other_cpu_pct")
    if other is not None and other > 10:
        cpu += f", OTHER PROCESSES {other:.0f} %"
    if scenario in ("fanout", "stalled", "scaleout"):
        text = f"{c['deliveries_per_s']:,.0f} deliveries/s, p50 {c['lat_p50_ms']:.1f} ms, p99 {c['lat_p99_ms']:.1f} ms"
        if scenario == "stalled":
            text = f"{100 * c['delivered_fraction']:.1f} % delivered, " + text
        if scenario == "scaleout":
            counts = delivery_counts([record])
            text += (
                f", receivers per worker {split_text(record)}; {counts['lost']} lost, "
                f"{counts['out_of_order']} out of order, {counts['duplicates']} duplicates"
            )
        return f"{text} ({cpu})"
    if scenario == "append":
        return (
            f"{c['messages_per_s']:,.0f} messages/s, p50 {c['lat_p50_ms']:.3f} ms, p99 {c['lat_p99_ms']:.3f} ms, "
            f"redis-server {fmt(record.get('redis_cpu_pct'))} % CPU"
        )
    if scenario == "resume":
        return (
            f"{c['recovered_exact']} of {c['clients']} recovered exactly in {c['seconds']:.2f} s, "
            f"{c['duplicates']} dup, {c['gap_frames']} gaps, peak RSS "
            f"{fmt(_mib(record.get('server_peak_rss_kib')))} MiB ({cpu})"
        )
    if scenario == "fairness":
        return fairness_line(record)
    if scenario == "api":
        return api_line(record)
    if scenario == "idle":
        text = f"{fmt(record.get('mem_per_conn_kib'), '{:.1f}')} KiB/conn, {c['connections_per_s']:,.0f} conn/s"
        if record["scenario"] == "joinstorm":
            text += f", {record.get('status', {}).get('presence_frames', 0):,} presence frames"
        if record["scenario"] == "identity":
            text += f", {c.get('welcomed', 0):,} welcomed, {c.get('joined', 0):,} joined"
        return f"{text} ({cpu})"
    return (
        f"{c['roundtrips_per_s']:,.0f} round trips/s, "
        f"p50 {c['lat_p50_ms']:.2f} ms, p99 {c['lat_p99_ms']:.2f} ms ({cpu})"
    )


def fairness_line(record: dict[str, Any]) -> str:
    """The honest client's round trips and what the attackers got back."""
    c, att = record["client"], record.get("attackers") or {}
    text = (
        f"honest {c['lines']} lines p50 {fmt(c['p50_ms'], '{:.1f}')} ms, p99 {fmt(c['p99_ms'], '{:.1f}')} ms, "
        f"max {fmt(c['max_ms'], '{:.1f}')} ms, {c['unacked']} unacked"
        + (f", CLOSED {c['close_code']}" if c.get("closed") else "")
    )
    if att:
        text += (
            f"; attackers {att['sent_per_s']:,.0f} frames/s, errors {att['errors'] or '-'}, closes "
            f"{att['closes'] or '-'}, refused {att['refused'] or '-'}"
        )
    server, clients = fmt(record.get("server_cpu_pct")), fmt(record.get("attackers_cpu_pct"))
    return f"{text} (server {server} % CPU, attackers {clients} %, other {fmt(record.get('other_cpu_pct'))} %)"


def report_saved(path: Path, write: bool) -> int:
    """Render the report of a saved run again (say after the report's wording changed)."""
    saved = json.loads(path.read_text())
    meta, records = saved["meta"], saved["records"]
    known = {f.name for f in dataclasses.fields(Sizes)}
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["sizes"].items() if k in known}
    sizes = dataclasses.replace(FULL, **fields)
    only = [name for name in SCENARIOS if any(r["scenario"] == name for r in records)]
    framed = ("scaleout", "rooms", "roomscale", "joinstorm", "fairness", "identity", "api")
    deflates = sorted({bool(r["deflate"]) for r in records if r["scenario"] not in framed} or {False})
    all_cases = cases(sizes, only)
    section = report(meta, records, all_cases, evaluate_targets(records, sizes, deflates), deflates, sizes)
    print(section)
    if write:
        print(f"wrote the results table to {write_results(section)}")
    return 0

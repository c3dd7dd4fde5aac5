"""Issue 20's api scenario: lines published over the HTTP API beside lines said on WebSockets.

One asgi_chat (SERVER_ENV, output budgets off, the API on: ``ASGI_CHAT_API_KEYS_FILE`` names a
temporary file holding one key, ``ASGI_CHAT_API_RATE_PER_SECOND=0``: the key's rate off), fresh
for each repetition and pinned to CPU 0; every client on CPU 1:

1. wsload ``--mode idle --proto v1``: ``api_members`` idle members of the room ``bench`` (hello,
   join), held open; they count every ``msg`` they get (``other_msgs`` in wsload's ``status``);
2. two phases on that server, side by side, their order alternating with the repetition:
   ``bench/apiload.py publish`` (keep-alive HTTP/1.1 POSTs, 201s/s) and ``bench/apiload.py say``
   (``/chat/ws`` says, acks/s), each ``api_connections`` in flight, ``api_seconds`` or
   ``api_max_lines`` at most; for each, the members' copies within the phase (deliveries/s) and
   after it settled (delivered / lines x members), and the CPU of the server, the publisher and
   the members' wsload over the phase.
"""

from __future__ import annotations

import functools
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .client import ClientTimeout, LoadClient
from .config import BENCH, CLIENT_CPU, LOGS, SERVER_ENV, Server, _uvicorn
from .identity import UNBUDGETED, server_secret
from .processes import ServerProcess
from .procfs import CLK_TCK, cpu_ticks, machine_ticks
from .scenarios import Case, Sizes

APILOAD = (sys.executable, str(BENCH / "apiload.py"))
ROOM = "bench"
NAME = "asgi_chat-api"
PHASES = ("publish", "say")


@functools.cache
def key_file() -> Path:
    """A temporary file with one API key, made once per bench process (the key is in no log or result)."""
    folder = Path(tempfile.mkdtemp(prefix="asgi-chat-bench-api-"))
    path = folder / "keys"
    path.write_text(secrets.token_urlsafe(32) + "\n")
    path.chmod(0o600)
    return path


def api_server() -> Server:
    env = {
        **SERVER_ENV,
        **UNBUDGETED,
        "ASGI_CHAT_SECRET": server_secret(),
        "ASGI_CHAT_API_KEYS_FILE": str(key_file()),
        "ASGI_CHAT_API_RATE_PER_SECOND": "0",
    }
    return Server(NAME, "asgi_chat, HTTP API on", _uvicorn("asgi_chat:app"), env, ("--proto", "v1"), before_twin=False)


def _status(members: LoadClient) -> dict[str, Any]:
    members.command("status")
    while (event := members.event(time.monotonic() + 10))["event"] != "status":
        pass
    return event


def _ticks(pid: int) -> int:
    try:
        return cpu_ticks(pid)
    except (OSError, ValueError, IndexError):
        return 0


def _mark(proc: ServerProcess, pids: dict[str, int]) -> dict[str, float]:
    busy, _ = machine_ticks()
    return {"t": time.monotonic(), "server": sum(proc.cpu_by_pid().values()), "busy": busy,
            **{k: _ticks(p) for k, p in pids.items()}}  # fmt: skip


def phase(proc: ServerProcess, members: LoadClient, mode: str, sizes: Sizes, tag: str) -> dict[str, Any]:
    """One publisher's phase: its result, the members' copies and the CPU of each side."""
    args = [mode, "--port", str(proc.port), "--room", ROOM, "--connections", str(sizes.api_connections),
            "--count", str(sizes.api_max_lines), "--seconds", str(sizes.api_seconds), "--size",
            str(sizes.fanout_size)]  # fmt: skip
    if mode == "publish":
        args += ["--key-file", str(key_file())]
    client = LoadClient(args, LOGS / f"{tag}.{mode}.log", CLIENT_CPU, APILOAD)
    try:
        pids = {"client": client.proc.pid, "members": members.proc.pid}
        marks: dict[str, dict[str, float]] = {}
        seen: dict[str, int] = {}
        deadline = time.monotonic() + sizes.api_seconds + 90
        while (event := client.event(deadline))["event"] != "result":
            if event["event"] in ("start", "end"):
                marks[event["event"]] = _mark(proc, pids)
                seen[event["event"]] = int(_status(members)["other_msgs"])
        out: dict[str, Any] = dict(event)
    finally:
        client.finish()
    if "error" in out or len(marks) < 2:
        return out | {"error": out.get("error", "no measured phase")}
    # The members' copies after the phase: polled until two reads agree (bounded).
    last, settle_end = -1, time.monotonic() + 10
    while time.monotonic() < settle_end:
        now = int(_status(members)["other_msgs"])
        if now == last:
            break
        last = now
        time.sleep(0.2)
    a, b = marks["start"], marks["end"]
    wall = b["t"] - a["t"]
    ours = sum(b[k] - a[k] for k in ("server", "client", "members"))
    expected = int(out["lines"]) * sizes.api_members
    out |= {
        "deliveries_per_s": (seen["end"] - seen["start"]) / wall,
        "delivered": last - seen["start"],
        "delivered_fraction": (last - seen["start"]) / expected if expected else None,
        "server_cpu_pct": 100 * (b["server"] - a["server"]) / CLK_TCK / wall,
        "client_cpu_pct": 100 * (b["client"] - a["client"]) / CLK_TCK / wall,
        "members_cpu_pct": 100 * (b["members"] - a["members"]) / CLK_TCK / wall,
        "other_cpu_pct": 100 * max(0.0, (b["busy"] - a["busy"]) - ours) / CLK_TCK / wall,
    }
    return out


def measure_api(proc: ServerProcess, case: Case, rep: int, sizes: Sizes, tag: str) -> dict[str, Any]:
    """The members, then both phases on the same server, publish first in odd repetitions."""
    n = sizes.api_members
    argv = ["--mode", "idle", "--proto", "v1", "--connections", str(n), "--until-joined", "1", "--room", ROOM,
            "--port", str(proc.port), "--deflate", "0", "--hold", "600", "--deadline", "60"]  # fmt: skip
    members = LoadClient(argv, LOGS / f"{tag}.members.log", CLIENT_CPU)
    try:
        joined = members.expect("result", 90)
        if int(joined.get("joined", 0)) < n:
            raise ClientTimeout(f"{joined.get('joined')} of {n} members joined")
        order = PHASES if rep % 2 else PHASES[::-1]
        phases = {mode: phase(proc, members, mode, sizes, tag) for mode in order}
    finally:
        members.finish()
    client: dict[str, Any] = {"members": n, "order": list(order), **phases}
    errors = [f"{m}: {p['error']}" for m, p in phases.items() if "error" in p]
    if errors:
        client["error"] = "; ".join(errors)
    pub, say = phases["publish"], phases["say"]
    return {
        "client": client,
        "server_cpu_pct": pub.get("server_cpu_pct"),
        "other_cpu_pct": max(pub.get("other_cpu_pct") or 0, say.get("other_cpu_pct") or 0),
    }


# --- the report ---------------------------------------------------------------------------------

FIGURES = (  # (name, unit, key, format, a rate: its ratio is shown)
    ("lines per second (publish: 201s; say: acks)", "/s", "per_s", "{:,.0f}", True),
    ("deliveries to the members within the phase", "/s", "deliveries_per_s", "{:,.0f}", True),
    ("copies delivered once settled / lines x members", "", "delivered_fraction", "{:.4f}", False),
    ("server CPU", "%", "server_cpu_pct", "{:.0f}", False),
    ("publisher's CPU (apiload.py)", "%", "client_cpu_pct", "{:.0f}", False),
    ("members' CPU (wsload)", "%", "members_cpu_pct", "{:.0f}", False),
    ("other processes' CPU", "%", "other_cpu_pct", "{:.0f}", False),
)


def _median(values: list[float]) -> float | None:
    values = sorted(values)
    if not values:
        return None
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else spec.format(value)


def _values(runs: list[dict[str, Any]], mode: str, key: str) -> list[float]:
    return [float(v) for r in runs if (v := r["client"].get(mode, {}).get(key)) is not None]


def api_line(record: dict[str, Any]) -> str:
    c = record["client"]
    parts = []
    for mode in PHASES:
        p = c.get(mode, {})
        parts.append(
            f"{mode} {_fmt(p.get('per_s'), '{:,.0f}')}/s, {_fmt(p.get('deliveries_per_s'), '{:,.0f}')} deliveries/s "
            f"(server {_fmt(p.get('server_cpu_pct'), '{:.0f}')} %, client {_fmt(p.get('client_cpu_pct'), '{:.0f}')} %,"
            f" members {_fmt(p.get('members_cpu_pct'), '{:.0f}')} %)"
        )
    return "; ".join(parts)


def api_section(records: list[dict[str, Any]], sizes: Sizes) -> list[str]:
    runs = [r for r in records if r["scenario"] == "api" and r["ok"]]
    if not any(r["scenario"] == "api" for r in records):
        return []
    n, k = sizes.api_members, sizes.api_connections
    lines = [
        "### The HTTP API beside WebSocket says (issue 20)",
        "",
        f"One asgi_chat (the options and limits of the runs above, output budgets off, the API on: "
        "`ASGI_CHAT_API_KEYS_FILE` a temporary file with one key, `ASGI_CHAT_API_RATE_PER_SECOND=0`), fresh for "
        f"each repetition, with one room `bench` of {n} idle members (wsload `--proto v1`, hello and join, counting "
        f"the `msg` frames they get). On that server, side by side, their order alternating with the repetition: "
        f"**publish**: {k} keep-alive HTTP/1.1 connections (bench/apiload.py, asyncio streams, the requests written "
        f'by hand), each `POST /api/v1/rooms/bench/messages` with `Authorization: Bearer KEY` and `{{"text": T}}` '
        f"({sizes.fanout_size} characters), the next once the `201` is read; **say**: {k} `/chat/ws` clients (the "
        "`websockets` library), members of the room too, each saying a line with an id and sending the next at its "
        f"`ack`. Each phase {sizes.api_seconds:g} s or {sizes.api_max_lines:,} lines at most. Server on CPU 0, "
        f"every client on CPU 1. Medians of {len({r['rep'] for r in runs})} repetitions; the ratios are of the "
        "phases of one repetition.",
        "",
        "| figure | publish (HTTP API) | say (WebSocket) | publish / say |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, unit, key, spec, rate in FIGURES:
        pub, say = (_median(_values(runs, mode, key)) for mode in PHASES)
        q = pub / say if rate and pub is not None and say else None
        label = f"{name} ({unit})" if unit else name
        lines.append(f"| {label} | {_fmt(pub, spec)} | {_fmt(say, spec)} | {_fmt(q, '{:.2f}x') if rate else ''} |")
    per_rep = []
    for r in sorted(runs, key=lambda r: r["rep"]):
        pub, say = r["client"]["publish"].get("per_s"), r["client"]["say"].get("per_s")
        if pub is not None and say:
            per_rep.append(f"{pub / say:.2f}x")
    lines.append(f"| lines per second: publish / say in each repetition | | | {', '.join(per_rep) or 'n/a'} |")
    failed = [r for r in records if r["scenario"] == "api" and not r["ok"]]
    if failed:
        lines += ["", f"{len(failed)} run(s) failed: " + "; ".join(str(r["error"]) for r in failed)]
    return lines

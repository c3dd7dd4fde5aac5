"""One run of the fairness scenario: an honest client's say round trips beside one kind of attack.

The server is asgi_chat with its default limits (FAIRNESS in config.py), fresh for each run and
pinned to CPU 0; every client process is pinned to CPU 1:

1. ``abuse.py fill`` fills the rooms the attack needs (history, resume) from 127.0.1.9;
2. ``abuse.py members`` (presence attack only): idle members of the honest client's room, from
   127.0.1.3 on (at most 100 per address);
3. ``honest.py`` from 127.0.0.1: hello, join ``lobby``, says at 10/s; ``ready`` after a warm-up;
4. ``abuse.py attack`` processes from 127.0.1.2, ``ready`` once connected; then ``go`` to all,
   and the measured window is the ``fair_seconds`` after it (the baseline: the same window with
   no attacker);
5. the honest lines said within the window are kept: each one's round trip, or, if no ack came
   by the end, the time from its send to the end (a lower bound, counted as unacknowledged).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .client import ClientTimeout, LoadClient
from .config import BENCH, CLIENT_CPU, LOGS
from .processes import ServerProcess, taskset
from .procfs import CLK_TCK, cpu_ticks, machine_ticks, own_ticks
from .scenarios import Case, Sizes

ABUSE = (sys.executable, str(BENCH / "abuse.py"))
HONEST = (sys.executable, str(BENCH / "honest.py"))
ATTACKER_ADDRESS = "127.0.1.2"  # every attacker: one person (or one host)
MEMBERS_ADDRESS = "127.0.1.3"  # the presence attack's idle members: 127.0.1.3, .4, ... (100 each)
FILLER_ADDRESS = "127.0.1.9"
ROOM = "lobby"  # the honest client's room
HONEST_NICE = -5  # the honest client's priority over the clients it shares CPU 1 with (root only)


def filled_rooms(attack: str, sizes: Sizes) -> list[str]:
    if attack.startswith("history"):
        return ["hist"]
    if attack == "resume":
        return [f"resume-{k}" for k in range(sizes.fair_resume_rooms)]
    return []


@dataclass
class Mark:
    """CPU counters at one end of the measured window."""

    t: float
    server: int
    clients: dict[int, int]
    busy: int
    steal: int
    own: int

    @classmethod
    def read(cls, proc: ServerProcess, clients: Sequence[LoadClient]) -> Mark:
        busy, steal = machine_ticks()
        ticks = {}
        for client in clients:
            try:
                ticks[client.proc.pid] = cpu_ticks(client.proc.pid)
            except (OSError, ValueError, IndexError):
                ticks[client.proc.pid] = 0
        server = sum(proc.cpu_by_pid().values())
        return cls(time.monotonic(), server, ticks, busy, steal, own_ticks())


def cpu_pct(a: Mark, b: Mark, pids: Sequence[int]) -> float:
    return 100 * sum(b.clients.get(p, 0) - a.clients.get(p, 0) for p in pids) / CLK_TCK / (b.t - a.t)


def window_cpu(a: Mark, b: Mark, honest: LoadClient, others: Sequence[LoadClient]) -> dict[str, float]:
    wall = b.t - a.t
    ours = (b.server - a.server) + sum(b.clients[p] - a.clients.get(p, 0) for p in b.clients) + (b.own - a.own)
    return {
        "server_cpu_pct": 100 * (b.server - a.server) / CLK_TCK / wall,
        "honest_cpu_pct": cpu_pct(a, b, [honest.proc.pid]),
        "attackers_cpu_pct": cpu_pct(a, b, [c.proc.pid for c in others]),  # attackers and idle members
        "other_cpu_pct": 100 * max(0, (b.busy - a.busy) - ours) / CLK_TCK / wall,
        "steal_pct": 100 * (b.steal - a.steal) / CLK_TCK / wall,
    }


def fill(port: int, rooms: list[str], sizes: Sizes, tag: str) -> dict[str, Any]:
    """abuse.py fill, to its end (bounded): each room's epoch and top offset."""
    argv = [*taskset(CLIENT_CPU), *ABUSE, "fill", "--port", str(port), "--rooms", *rooms, "--source", FILLER_ADDRESS,
            "--lines", str(sizes.fair_fill_lines), "--chars", str(sizes.fair_chars), "--deadline", "100"]  # fmt: skip
    with (LOGS / f"{tag}.fill.log").open("wb") as log:
        done = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, timeout=120, check=False
        )
    lines = done.stdout.decode(errors="replace").strip().splitlines()
    if done.returncode or not lines:
        raise ClientTimeout(f"filling {rooms} failed (exit {done.returncode}, bench/build/logs/{tag}.fill.log)")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def start(program: Sequence[str], args: list[str], tag: str, name: str) -> LoadClient:
    return LoadClient(args, LOGS / f"{tag}.{name}.log", CLIENT_CPU, program)


def start_attackers(port: int, attack: str, rooms: dict[str, Any], sizes: Sizes, tag: str) -> list[LoadClient]:
    """The attackers, split over fair_procs processes (the presence attack: fair_churners in one)."""
    count, procs = (sizes.fair_churners, 1) if attack == "presence" else (sizes.fair_attackers, sizes.fair_procs)
    out = []
    for k in range(procs):
        share = count // procs + (1 if k < count % procs else 0)
        base = k * (count // procs) + min(k, count % procs)
        args = ["attack", "--kind", attack, "--port", str(port), "--connections", str(share), "--id-base", str(base),
                "--rate", str(sizes.fair_rate), "--seconds", str(sizes.fair_seconds), "--room", ROOM,
                "--rooms-json", json.dumps(rooms), "--chars", str(sizes.fair_chars), "--source", ATTACKER_ADDRESS,
                "--deadline", str(sizes.fair_seconds + 120)]  # fmt: skip
        out.append(start(ABUSE, args, tag, f"attack{k}"))
    return out


def honest_figures(result: dict[str, Any], t0: float, t1: float) -> dict[str, Any]:
    """Round trips of the lines said in [t0, t1]; a line never acked counts until the client's end."""
    rtts, unacked = [], 0
    for sent, rtt in result["lines"]:
        if t0 <= sent <= t1:
            if rtt is None:
                unacked += 1
            rtts.append(1000 * (rtt if rtt is not None else result["end"] - sent))
    rtts.sort()

    def rank(q: float) -> float | None:
        return rtts[max(0, math.ceil(q * len(rtts)) - 1)] if rtts else None

    closed = result.get("closed")
    return {
        "lines": len(rtts),
        "p50_ms": rank(0.50),
        "p99_ms": rank(0.99),
        "max_ms": rtts[-1] if rtts else None,
        "unacked": unacked,
        "closed": closed,
        "close_code": closed.get("code") if closed else None,
        "frames": result.get("frames", {}),
        "errors": result.get("errors", {}),
    }


def merged(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The attacker processes' figures together: tallies summed, rates summed, CPU as measured here."""
    out: dict[str, Any] = {"sent_per_s": sum(float(r.get("sent_per_s") or 0) for r in results)}
    out["connections"] = sum(int(r.get("connections") or 0) for r in results)
    out["open_at_end"] = sum(int(r.get("open_at_end") or 0) for r in results)
    for key in ("frames", "errors", "closes", "refused"):
        total: Counter[str] = Counter()
        for r in results:
            total.update(r.get("tally", {}).get(key, {}))
        out[key] = dict(total)
    out["connects"] = sum(int(r.get("tally", {}).get("connects") or 0) for r in results)
    out["bytes_in"] = sum(int(r.get("tally", {}).get("bytes_in") or 0) for r in results)
    return out


def measure_fairness(proc: ServerProcess, case: Case, sizes: Sizes, tag: str) -> dict[str, Any]:
    attack = case.key.removeprefix("fair-")
    out: dict[str, Any] = {"attack": attack}
    children: list[LoadClient] = []
    try:
        rooms = filled_rooms(attack, sizes)
        filled = fill(proc.port, rooms, sizes, tag) if rooms else {"rooms": {}}
        out["fill"] = {"rooms": filled["rooms"], "seconds": filled.get("seconds")}
        others: list[LoadClient] = []
        if attack == "presence":
            members = start(ABUSE, ["members", "--port", str(proc.port), "--room", ROOM, "--count",
                                    str(sizes.fair_members), "--source", MEMBERS_ADDRESS], tag, "members")  # fmt: skip
            children.append(members)
            others.append(members)
            out["members_ready"] = members.expect("ready", 120)
        honest = start(HONEST, ["--port", str(proc.port), "--room", ROOM, "--rate", str(sizes.fair_honest_rate),
                                "--nice", str(HONEST_NICE)], tag, "honest")  # fmt: skip
        children.append(honest)
        honest.expect("ready", 60)
        attackers = [] if attack == "baseline" else start_attackers(proc.port, attack, filled["rooms"], sizes, tag)
        children += attackers
        others += attackers
        out["attackers_ready"] = [a.expect("ready", sizes.fair_seconds + 60) for a in attackers]
        out |= attack_window(proc, honest, attackers, others, sizes)
        if attack == "presence":
            members.command("stop")
            out["members"] = members.expect("result", 30)
        out["server_rss_kib"] = proc.status_kib("VmRSS")
        out["server_peak_rss_kib"] = proc.status_kib("VmHWM")
    except ClientTimeout as error:
        out["client"] = {"error": str(error)}
    finally:
        proc.stop()  # before the clients leave: nobody measures the farewells
        for child in children:
            child.finish()
    return out


def attack_window(
    proc: ServerProcess, honest: LoadClient, attackers: Sequence[LoadClient], others: Sequence[LoadClient], sizes: Sizes
) -> dict[str, Any]:
    """`go` to every attacker; the window's CPU, the attackers' figures and the honest client's."""
    clients = [honest, *others]
    a = Mark.read(proc, clients)
    t0 = time.monotonic()
    for attacker in attackers:
        attacker.command("go")
    if attackers:
        results = [att.expect("result", sizes.fair_seconds + 60) for att in attackers]
    else:
        time.sleep(sizes.fair_seconds)
        results = []
    t1 = t0 + sizes.fair_seconds
    b = Mark.read(proc, clients)
    honest.command("stop")
    result = honest.expect("result", 30)
    out: dict[str, Any] = {"window": [t0, t1], "client": honest_figures(result, t0, t1)}
    out |= window_cpu(a, b, honest, others)
    out["attackers"] = merged(results) if results else None
    out["attacker_results"] = results
    return out

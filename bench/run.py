"""Benchmark orchestrator: asgi_chat against the FastAPI tutorial and the `websockets` library.

Every scenario runs against these servers, in the same run, alternating, each run on a fresh
server process pinned to CPU 0 while the C load generator (``bench/build/wsload``, built by
``make -C bench``) is pinned to CPU 1:

- ``asgi_chat``: ``uvicorn asgi_chat:app`` (security limits off, see SERVER_ENV);
- ``tutorial``: ``uvicorn tutorial_app:app``, FastAPI's documented ConnectionManager chat;
- ``websockets``: the same chat on ``websockets.asyncio.server.serve`` and ``broadcast()``;
- ``raw_loop`` (fan-out only): the same chat as a bare ASGI loop, the floor of any ASGI app.

Each scenario is measured with and without a permessage-deflate offer from the client. Medians
over the repetitions are printed, written to ``bench/results/latest.json`` and, for a full run,
to the section of docs/benchmark.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.

The rooms scenario (issue 11's benchmark) runs on asgi_chat alone, its `asgi-chat.v1` room on
``/chat/ws`` (wsload ``--proto v1``: hello, join, say) beside its tutorial chat on ``/ws/{id}``:
fan-out to one room of ``rooms_members`` with one sender, idle memory per room member, and
``rooms_members`` clients resuming at once after each missed ``rooms_missed`` lines (wsload
``--mode resume``, the room only), permessage-deflate not offered.

The roomscale scenario (issue 12's benchmark) is the scale-out comparison for one room of
``scaleout_receivers`` on ``/chat/ws`` (A: 2 workers and the Redis room store, B: 1 process and
the memory store), plus the messages/s one sender pushes through the Redis store's atomic
append+publish against a plain PUBLISH (``bench/redis_append.py``).

The scale-out scenario compares asgi_chat under ``uvicorn --workers 2`` sharing one chat through
a Redis server of its own against one asgi_chat process with the memory broker, nothing pinned.

The joinstorm and fairness scenarios are issue 18's ("rooms that hold under abuse and at scale"):
``joinstorm_clients`` clients join one room as fast as they can (wsload ``--proto v1 --until-joined
1``) beside as many connecting to the tutorial chat, counting the presence frames the room's
members receive; and an honest client's say round trips (bench/honest.py) alone and beside each
attack of bench/abuse.py, on asgi_chat with its default limits. ``--before DIR`` runs these two,
rooms and identity on the asgi_chat of another checkout too (``asgi_chat_before``), side by side.

The identity scenario is issue 19's: ``identity_clients`` clients say hello (each until its welcome)
to one asgi_chat as guests, with an HS256 token and with an RS256 token (three servers, the keys and
tokens made by the bench: orchestra/identity.py), then as many say hello and join one room; and one
room's fan-out to ``rooms_members`` with the identity fields in every msg, against ``--before``'s.

The api scenario is issue 20's: into one room of ``api_members`` idle members (wsload), lines
published over the HTTP API (bench/apiload.py, keep-alive HTTP/1.1, 201s/s) beside lines said on
``/chat/ws`` (acks/s), both on the same server in each repetition, alternating (orchestra/apibench.py).

Usage::

    python bench/run.py                     # everything (what `make bench` runs)
    python bench/run.py --quick             # 1 repetition, smaller sizes
    python bench/run.py --scenario stalled  # one scenario (fanout, stalled, idle, echo, rooms, scaleout, ...)
    python bench/run.py --scenario fairness --scenario joinstorm --before /tmp/before  # and a checkout before
    python bench/run.py --scenario identity --before /tmp/before-identity     # issue 19: tokens, fan-out
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestra.apibench import api_server
from orchestra.config import (
    ALL_CPUS,
    BEFORE_SCENARIOS,
    CLIENT_CPU,
    FAIRNESS,
    FLOOR_SCENARIOS,
    JOINSTORM,
    LOGS,
    REDIS_APPEND,
    RESULTS,
    ROOMS,
    ROOT,
    SCALEOUT,
    SCALEOUT_ROOMS,
    SCALEOUT_WORKERS,
    SERVER_CPU,
    SERVER_ENV,
    SERVERS,
    UVICORN_OPTIONS,
    WSLOAD,
    Server,
    before_variant,
)
from orchestra.identity import RSA_BITS, UNBUDGETED, fanout_server, identity_servers
from orchestra.measure import run_one
from orchestra.processes import asgi_chat_importable, raise_nofile
from orchestra.report import command_line, machine, report, report_saved, summary_line, versions, write_results
from orchestra.scenarios import FULL, QUICK, SCENARIOS, Case, Sizes, case_deflates, cases, rounds
from orchestra.targets import Target, evaluate_targets


def git_head(checkout: Path) -> str | None:
    """The commit a checkout is at (read only: `git rev-parse`), and `+changes` if its tree differs."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--", "asgi_chat"], cwd=checkout,
                               capture_output=True, text=True, check=True, timeout=10).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return head + (" +changes to asgi_chat/" if dirty else "")


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only this (repeatable)")
    parser.add_argument("--server", action="append", choices=[s.name for s in SERVERS], help="only this server")
    parser.add_argument("--deflate", choices=("both", "off", "on"), default="both")
    parser.add_argument("--reps", type=int, help="override the number of repetitions")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        metavar="S",
        help="seconds each run may wait for other work on the machine to pause (20; it is measured anyway)",
    )
    parser.add_argument(
        "--case", action="append", metavar="KEY", help="only the cases whose key starts so (repeatable)"
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also run asgi_chat from the checkout DIR (asgi_chat_before) in the "
        + ", ".join(BEFORE_SCENARIOS)
        + " scenarios, side by side",
    )
    parser.add_argument(
        "--write-docs", action="store_true", help="update docs/benchmark.md even for a partial or quick run"
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: print the report of a saved run (bench/results/latest.json); with "
        "--write-docs, also put it in docs/benchmark.md",
    )
    return parser.parse_args(argv)


@dataclass
class Plan:
    """What the command line asked for: sizes, scenarios, deflate offers and servers."""

    sizes: Sizes
    only: list[str]
    deflates: list[bool]
    servers: list[Server]
    full_run: bool
    cases: list[str] | None = None  # --case: key prefixes
    before: Path | None = None  # --before: another checkout's asgi_chat


def plan(args: argparse.Namespace) -> Plan:
    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = dataclasses.replace(sizes, reps=args.reps)
    if args.quiet_wait is not None:
        sizes = dataclasses.replace(sizes, quiet_wait=args.quiet_wait)
    only = args.scenario or list(SCENARIOS)
    deflates = {"both": [False, True], "off": [False], "on": [True]}[args.deflate]
    servers = [s for s in SERVERS if not args.server or s.name in args.server]
    full_run = not args.quick and not args.scenario and not args.server and args.deflate == "both"
    full_run = full_run and not args.reps and not args.case
    before = args.before.resolve() if args.before else None
    return Plan(sizes, only, deflates, servers, full_run, args.case, before)


def prepare() -> int:
    """Signals, file descriptors, this process's CPU and the output folders; returns RLIMIT_NOFILE."""
    signal.signal(signal.SIGTERM, _exit_on_signal)  # run the finally blocks: no stray servers
    nofile = raise_nofile()
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    LOGS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    return nofile


def drop_unavailable(p: Plan) -> None:
    problem = asgi_chat_importable()
    if problem:
        print(f"asgi_chat cannot be imported ({problem}): it is skipped", file=sys.stderr)
        p.servers = [s for s in p.servers if s.name != "asgi_chat"]
    if "scaleout" in p.only and not any(s.name == "asgi_chat" for s in p.servers):
        p.only = [o for o in p.only if o != "scaleout"]  # it is asgi_chat's scenario only
    if p.before is not None and (problem := asgi_chat_importable(p.before)):
        print(f"asgi_chat cannot be imported from {p.before} ({problem}): --before is ignored", file=sys.stderr)
        p.before = None


def run_meta(p: Plan, nofile: int) -> dict[str, Any]:
    sizes = p.sizes
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "command": command_line(),
        "sizes": dataclasses.asdict(sizes),
        "nofile": nofile,
        "asgi_chat_env": SERVER_ENV,
        "uvicorn_options": UVICORN_OPTIONS,
        "before": str(p.before) if p.before else None,
        "before_commit": git_head(p.before) if p.before else None,
        "commit": git_head(ROOT),
    }


def print_setup(p: Plan, all_cases: Sequence[Case], nofile: int) -> None:
    limits = " ".join(f"{k}={v}" for k, v in SERVER_ENV.items())
    print(f"asgi_chat security limits off for the benchmark: {limits}")
    print(
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}; RLIMIT_NOFILE {nofile}; "
        f"{p.sizes.reps} repetition(s); permessage-deflate offered: "
        + ", ".join("yes" if d else "no" for d in p.deflates)
    )
    if any(c.scenario == "fairness" for c in all_cases):
        print("fairness: asgi_chat with its default limits (rate 20/s, burst 40, 100 connections per address)")
    if any(c.scenario == "identity" for c in all_cases):
        print(
            "identity: asgi_chat with guests, with ASGI_CHAT_JWT_SECRET (HS256), with ASGI_CHAT_JWT_PUBLIC_KEY_FILE "
            f"(RS256, {RSA_BITS}-bit RSA), ASGI_CHAT_SECRET set in each, output budgets off "
            f"({' '.join(f'{k}={v}' for k, v in UNBUDGETED.items())}); keys and tokens made now"
            + ("" if p.before is not None else "; its fan-out has nothing to compare with without --before")
        )
    if any(c.scenario == "api" for c in all_cases):
        print(
            "api: asgi_chat with ASGI_CHAT_API_KEYS_FILE (a temporary file, one key) and "
            "ASGI_CHAT_API_RATE_PER_SECOND=0, output budgets off; publishes and says alternate in each repetition"
        )
    if p.before is not None:
        print(
            f"also asgi_chat from {p.before} ({git_head(p.before)}) as asgi_chat_before in "
            + ", ".join(BEFORE_SCENARIOS)
        )
    if any(c.scenario == "scaleout" for c in all_cases):
        print(
            f"scale-out: asgi_chat with {SCALEOUT_WORKERS} workers and a redis-server of its own vs 1 process; "
            f"nothing pinned (taskset -c {ALL_CPUS}), permessage-deflate not offered"
        )


def pool(case: Case, servers: Sequence[Server], sizes: Sizes, before: Path | None = None) -> Sequence[Server]:
    """The servers a case runs on; with `before`, that checkout's asgi_chat too where it applies."""
    chosen = _pool(case, servers, sizes)
    if before is None or case.scenario not in BEFORE_SCENARIOS:
        return chosen
    return [*chosen, *(before_variant(s, before) for s in chosen if s.before_twin)]


def _pool(case: Case, servers: Sequence[Server], sizes: Sizes) -> Sequence[Server]:
    if case.scenario == "identity":
        if case.measure == "fanout":
            return [fanout_server()]
        return identity_servers(sizes.idle_warmup + max(sizes.identity_clients, sizes.identity_join_clients))
    if case.scenario == "fairness":
        return FAIRNESS
    if case.scenario == "api":
        return [api_server()]
    if case.scenario == "joinstorm":
        return JOINSTORM
    if case.scenario == "scaleout":
        return SCALEOUT
    if case.scenario == "rooms":
        return ROOMS[1:] if case.measure == "resume" else ROOMS
    if case.scenario == "roomscale":
        return REDIS_APPEND if case.measure == "append" else SCALEOUT_ROOMS
    return [s for s in servers if s.name != "raw_loop" or case.scenario in FLOOR_SCENARIOS]


def run_all(p: Plan, all_cases: Sequence[Case], started: float) -> list[dict[str, Any]]:
    sizes, deflates = p.sizes, p.deflates
    records: list[dict[str, Any]] = []
    total = sizes.reps * sum(
        len(case_deflates(c, deflates)) * len(pool(c, p.servers, sizes, p.before)) * rounds(c, sizes) for c in all_cases
    )
    for rep in range(1, sizes.reps + 1):
        for case in all_cases:
            # Rotate the server order each repetition so no server always runs first or last.
            both = pool(case, p.servers, sizes, p.before)
            order = [*both[(rep - 1) % len(both) :], *both[: (rep - 1) % len(both)]]
            for deflate in case_deflates(case, deflates):
                # Scale-out runs A and B several times per repetition (A B, then B A): its runs are
                # short, and where the kernel puts each connection makes A's figure vary.
                for k in range(rounds(case, sizes)):
                    run = (rep - 1) * rounds(case, sizes) + k + 1  # the repetition, for scale-out the run
                    for server in order if k % 2 == 0 else order[::-1]:
                        record = run_one(server, case, deflate, run, sizes)
                        records.append(record)
                        elapsed = time.monotonic() - started
                        print(
                            f"[{len(records)}/{total} {elapsed:4.0f}s] rep {run} {case.key:<12} "
                            f"deflate {'on ' if deflate else 'off'} {server.name:<10} {summary_line(record)}",
                            flush=True,
                        )
    return records


def save(meta: dict[str, Any], records: list[dict[str, Any]], targets: Sequence[Target]) -> None:
    out = {"meta": meta, "records": records, "targets": [dataclasses.asdict(t) for t in targets]}
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'latest.json'}")


def publish(section: str, write: bool) -> None:
    if write:
        print(f"wrote the results table to {write_results(section)}")
    else:
        print("partial run: docs/benchmark.md left unchanged (--write-docs to force)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        return report_saved(args.from_json, args.write_docs)
    p = plan(args)
    if not WSLOAD.exists():
        print(f"{WSLOAD} is missing: run `make -C bench` first", file=sys.stderr)
        return 2
    nofile = prepare()
    drop_unavailable(p)
    all_cases = [c for c in cases(p.sizes, p.only) if not p.cases or c.key.startswith(tuple(p.cases))]
    meta = run_meta(p, nofile)
    print_setup(p, all_cases, nofile)
    started = time.monotonic()
    records = run_all(p, all_cases, started)
    meta["elapsed_s"] = time.monotonic() - started
    save(meta, records, [])  # the raw figures first: a report that fails must not lose them
    targets = evaluate_targets(records, p.sizes, p.deflates)
    section = report(meta, records, all_cases, targets, p.deflates, p.sizes)
    print()
    print(section)
    save(meta, records, targets)
    publish(section, p.full_run or args.write_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

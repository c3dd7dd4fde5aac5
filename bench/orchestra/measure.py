"""One run: a fresh server, the load generator, and the figures measured."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .apibench import measure_api
from .client import ClientTimeout, LoadClient, follow
from .config import LOGS, ROOT, SCALEOUT_WORKERS, Server
from .fairness import measure_fairness
from .processes import RedisProcess, ServerDied, ServerProcess, code_fingerprint, server_setting, taskset
from .procfs import CLK_TCK, Mark, cpu_ticks, established_by_pid, proc_status_kib, settle, wait_for_quiet
from .scenarios import Case, Sizes


def run_one(server: Server, case: Case, deflate: bool, rep: int, sizes: Sizes) -> dict[str, Any]:
    """One measurement on a fresh server: returns the load generator's result plus server figures."""
    tag = f"{case.key}-{'deflate' if deflate else 'plain'}-{server.name}-r{rep}"
    record: dict[str, Any] = {"server": server.name, "case": case.key, "scenario": case.scenario}
    record["kind"] = case.measure
    record |= {"deflate": deflate, "rep": rep, "ok": False, "error": None}
    record["quiet_wait_s"], record["busy_before_pct"] = wait_for_quiet(timeout=sizes.quiet_wait)
    record["code"] = code_fingerprint(server)
    if case.scenario == "joinstorm":
        record["presence_window_s"], record["presence_window_known"] = presence_window(server)
    began = time.monotonic()
    redis: RedisProcess | None = None
    proc: ServerProcess | None = None
    try:
        if case.measure == "append":
            record |= measure_append(server, case, tag)
            record["ok"] = "error" not in record["client"]
            if not record["ok"]:
                record["error"] = record["client"]["error"]
            return record
        extra_env: dict[str, str] = {}
        companions: dict[int, str] = {}
        if server.name.startswith("redis-2w"):
            redis = RedisProcess(tag, case.server_cpus)
            redis.wait_ready()
            extra_env["ASGI_CHAT_STATE_URL"] = redis.url
            companions[redis.pid] = "redis-server"
            record["broker_url"] = redis.url
        proc = ServerProcess(server, tag, case.server_cpus, extra_env, companions)
        proc.wait_ready()
        if redis is not None:
            redis.wait_subscribers(SCALEOUT_WORKERS)  # every worker's lifespan (and broker) is up
        record["server_processes"] = {str(pid): role for pid, role in proc.find_processes().items()}
        args = [*case.args, *server.client_args, "--port", str(proc.port), "--deflate", "1" if deflate else "0"]
        args += ["--hold", "120"]
        if case.measure == "fairness":
            record |= measure_fairness(proc, case, sizes, tag)
        elif case.measure == "api":
            record |= measure_api(proc, case, rep, sizes, tag)
        elif case.measure == "idle":
            record |= measure_idle(proc, args, case, sizes, tag)
        elif case.measure == "resume":
            record |= measure_resume(proc, args, case, tag)
        elif case.measure == "scaleout":
            record |= measure_load(proc, args, case, tag, after=scaleout_figures)
        else:
            record |= measure_load(proc, args, case, tag)
        record["ok"] = "error" not in record["client"]
        if not record["ok"]:
            record["error"] = record["client"]["error"]
        elif case.scenario == "identity" and (problem := not_ready(record["client"])):
            record["ok"], record["error"] = False, problem
    except (ServerDied, ClientTimeout, OSError, KeyError, ValueError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        if proc is not None:
            record["server_log"] = proc.log_tail(3)
            record["server_log_lines"] = log_lines(proc.log_path)
            proc.stop()
        if redis is not None:
            redis.stop()  # after the server: its workers never see Redis go away
        record["elapsed_s"] = time.monotonic() - began
    return record


def not_ready(client: dict[str, Any]) -> str | None:
    """Why an idle run of `--proto v1` is not what it claims (some connections never got their
    welcome or joined: a refused token, say), or None."""
    if client.get("mode") != "idle" or "stop_at" not in client or not client.get("until_joined"):
        return None
    want = int(client["connections"])
    ready = int(client["welcomed"] if client["stop_at"] == "welcome" else client["joined"])
    if ready >= want:
        return None
    return (
        f"{ready} of {want} clients got their {client['stop_at']} ({client.get('unauthorized')} unauthorized, "
        f"{client.get('failed')} failed, close codes {client.get('close_codes')})"
    )


DEFAULT_PRESENCE_WINDOW = 0.25  # the join storm's bound, for a server without a presence window
_windows: dict[str, tuple[float, bool]] = {}


def presence_window(server: Server) -> tuple[float, bool]:
    """The server's presence window in seconds, and whether it has one (else 0.25 s is assumed)."""
    if server.name not in _windows:
        value = server_setting(server, "presence_interval")
        _windows[server.name] = (value, True) if value else (DEFAULT_PRESENCE_WINDOW, False)
    return _windows[server.name]


def log_lines(path: Path) -> int:
    try:
        return len(path.read_text(errors="replace").splitlines())
    except OSError:
        return 0


def scaleout_figures(proc: ServerProcess, client: LoadClient, result: dict[str, Any]) -> dict[str, Any]:
    """While wsload still holds its connections: which worker has which, and a late check.

    uvicorn's workers share one listening socket, so the kernel decides where each connection
    lands. The sender's messages reach the receivers of its own worker directly and those of the
    other worker through Redis. Then, half a second after the result, wsload's `status` tells
    whether any message arrived again (a duplicate) after the measured phase ended.
    """
    out: dict[str, Any] = {}
    workers = proc.workers() or [proc.pid]
    by_pid = established_by_pid(workers, proc.port)
    sender_port = int(result.get("sender_port", 0))
    split = []
    for pid in workers:
        ports = by_pid.get(pid, set())
        has_sender = sender_port in ports
        split.append({"pid": pid, "receivers": len(ports) - int(has_sender), "sender": has_sender})
    split.sort(key=lambda w: not w["sender"])  # the sender's worker first
    out["split"] = split
    time.sleep(0.5)
    client.command("status")
    while (event := client.event(time.monotonic() + 10))["event"] != "status":
        pass
    out["status_after"] = event
    return out


def measure_load(
    proc: ServerProcess,
    args: list[str],
    case: Case,
    tag: str,
    after: Callable[[ServerProcess, LoadClient, dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    client = LoadClient([*args, "--deadline", str(case.deadline)], LOGS / f"{tag}.client.log", case.client_cpus)
    out: dict[str, Any] = {}
    try:
        out["client"], marks = follow(client, proc, case.deadline + 30)
        out |= cpu_figures(marks, proc.roles)
        out["server_rss_kib"] = proc.status_kib("VmRSS")
        out["server_peak_rss_kib"] = proc.status_kib("VmHWM")  # a sum of peaks if several processes
        if after is not None and "error" not in out["client"]:
            out |= after(proc, client, out["client"])
    finally:
        proc.stop()  # before the client leaves: nobody measures the farewell broadcasts
        client.finish()
    return out


def measure_append(server: Server, case: Case, tag: str) -> dict[str, Any]:
    """bench/redis_append.py on CLIENT_CPU against a redis-server of its own on SERVER_CPU."""
    redis = RedisProcess(tag, case.server_cpus)
    out: dict[str, Any] = {}
    try:
        redis.wait_ready()
        out["broker_url"] = redis.url
        b0 = cpu_ticks(redis.pid)
        with (LOGS / f"{tag}.client.log").open("wb") as log:
            done = subprocess.run(
                [*taskset(case.client_cpus), *server.argv(redis.port)],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
                timeout=case.deadline,
                check=False,
            )
        lines = done.stdout.decode(errors="replace").strip().splitlines()
        out["client"] = json.loads(lines[-1]) if lines else {"error": f"exited with {done.returncode}"}
        seconds = float(out["client"].get("seconds") or 0)
        if seconds > 0:
            out["redis_cpu_pct"] = 100 * (cpu_ticks(redis.pid) - b0) / CLK_TCK / seconds  # warm-up included
    except subprocess.TimeoutExpired:
        out["client"] = {"error": f"no result within {case.deadline:g} s"}
    finally:
        redis.stop()
    return out


def measure_resume(proc: ServerProcess, args: list[str], case: Case, tag: str) -> dict[str, Any]:
    """The room's resume: server memory when the reconnects begin, and its peak (VmHWM) at the end.

    VmHWM is the peak of the server's whole life, setup included (the joins, their presence, the
    leaves); `peak_before_kib` says whether the resume itself raised it.
    """
    client = LoadClient([*args, "--deadline", str(case.deadline)], LOGS / f"{tag}.client.log", case.client_cpus)
    out: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + case.deadline + 30
        marks: dict[str, Mark] = {}
        while (event := client.event(deadline))["event"] != "result":
            if event["event"] in ("start", "end"):
                marks[event["event"]] = Mark.read(proc, client.proc.pid)
            if event["event"] == "start":
                out["rss_before_kib"] = proc.status_kib("VmRSS")
                out["peak_before_kib"] = proc.status_kib("VmHWM")
        out["client"] = event
        out |= cpu_figures(marks, proc.roles)
        out["server_rss_kib"] = proc.status_kib("VmRSS")
        out["server_peak_rss_kib"] = proc.status_kib("VmHWM")
    finally:
        proc.stop()
        client.finish()
    return out


def measure_idle(proc: ServerProcess, args: list[str], case: Case, sizes: Sizes, tag: str) -> dict[str, Any]:
    """Memory per open connection and connections opened per second.

    A warm-up round opens and closes sizes.idle_warmup chat connections (first-use allocations,
    lazy imports), the server settles (its CPU counter stops moving), VmRSS is read; then the
    measured round opens the connections, the server settles again, VmRSS is read again.
    Memory per connection = (after - before) / connections open.
    """
    out: dict[str, Any] = {}
    warm_args = list(args)
    n_index = warm_args.index("--connections") + 1
    warm_args[n_index] = str(sizes.idle_warmup)
    hellos: list[str] = []
    if "--hello-file" in args:  # the warm-up's clients say the file's first hellos, the measured ones the next
        warm_args += ["--hello-from", "0"]
        hellos = ["--hello-from", str(sizes.idle_warmup)]
    warm = LoadClient([*warm_args, "--id-base", "1", "--deadline", "60"], LOGS / f"{tag}.warmup.log", case.client_cpus)
    try:
        deadline = time.monotonic() + 90
        while warm.event(deadline)["event"] != "result":
            pass
    finally:
        warm.finish()  # the warm-up connections leave; the server announces them and frees them
    out["settle_before_s"] = settle(proc.pid)
    rss_before = proc_status_kib(proc.pid, "VmRSS")
    client = LoadClient(
        [*args, *hellos, "--id-base", "100000", "--deadline", str(case.deadline)],
        LOGS / f"{tag}.client.log",
        case.client_cpus,
    )
    try:
        out["client"], marks = follow(client, proc, case.deadline + 30)
        out |= cpu_figures(marks, proc.roles)
        out["settle_after_s"] = settle(proc.pid)
        rss_after = proc_status_kib(proc.pid, "VmRSS")
        client.command("status")
        while (event := client.event(time.monotonic() + 10))["event"] != "status":
            pass
        out["status"] = event
        opened = int(event["open"])
        out |= {"rss_before_kib": rss_before, "rss_after_kib": rss_after, "open_at_measure": opened}
        out["mem_per_conn_kib"] = (rss_after - rss_before) / opened if opened else None
        out["server_peak_rss_kib"] = proc_status_kib(proc.pid, "VmHWM")
    finally:
        proc.stop()
        client.finish()
    return out


def cpu_figures(marks: dict[str, Mark], roles: dict[int, str]) -> dict[str, Any]:
    """Server CPU over the measured phase (per process too), and what else ran on the machine meanwhile."""
    if "start" not in marks or "end" not in marks:
        return {"server_cpu_s": None, "server_cpu_pct": None, "other_cpu_pct": None, "steal_pct": None}
    a, b = marks["start"], marks["end"]
    wall = b.t - a.t
    if wall <= 0:
        return {"server_cpu_s": None, "server_cpu_pct": None, "other_cpu_pct": None, "steal_pct": None}
    server = (b.server - a.server) / CLK_TCK
    ours = (b.server - a.server) + (b.client - a.client) + (b.own - a.own)
    other = max(0, (b.busy - a.busy) - ours) / CLK_TCK
    by_process = [
        {"pid": pid, "role": roles.get(pid, "?"), "cpu_pct": 100 * (b.by_pid.get(pid, 0) - ticks) / CLK_TCK / wall}
        for pid, ticks in a.by_pid.items()
    ]
    return {
        "server_cpu_s": server,
        "server_cpu_pct": 100 * server / wall,
        "server_cpu_by_process": by_process,
        "machine_busy_pct": 100 * (b.busy - a.busy) / CLK_TCK / wall,  # all CPUs together, of 100 x nproc
        "other_cpu_pct": 100 * other / wall,  # % of one core used by processes not in the bench
        "steal_pct": 100 * (b.steal - a.steal) / CLK_TCK / wall,
    }

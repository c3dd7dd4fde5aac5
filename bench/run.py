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
to the section of README.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->``.

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

Usage::

    python bench/run.py                     # everything (what `make bench` runs)
    python bench/run.py --quick             # 1 repetition, smaller sizes
    python bench/run.py --scenario stalled  # one scenario (fanout, stalled, idle, echo, rooms, scaleout)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BUILD = BENCH / "build"
WSLOAD = BUILD / "wsload"
LOGS = BUILD / "logs"
RESULTS = BENCH / "results"
README = ROOT / "README.md"
FALLBACK_RESULTS = BENCH / "RESULTS.md"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"

HOST = "127.0.0.1"
SERVER_CPU = 0  # `taskset -c 0` for the server ...
CLIENT_CPU = 1  # ... and `-c 1` for the load generator (and this orchestrator, mostly asleep)
ALL_CPUS = f"0-{(os.cpu_count() or 1) - 1}"  # the scale-out scenario pins nothing (see README)
ALL_CORES_PCT = 100 * (os.cpu_count() or 1)  # what "% of a core" adds up to with every CPU busy
BACKLOG = 8192  # uvicorn --backlog / serve(backlog=); the kernel caps it at net.core.somaxconn
NOFILE = 16384  # RLIMIT_NOFILE wanted for 5,000 connections on each side, plus slack

# asgi_chat's security limits would refuse the load itself (20 messages/s per connection, 100
# connections per address): both are turned off for the benchmark, everything else is default.
SERVER_ENV = {"ASGI_CHAT_RATE_PER_SECOND": "0", "ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS": "0"}

# The same uvicorn options for asgi_chat and the tutorial: default --ws auto (websockets-sansio in
# uvicorn 0.54), --loop auto (uvloop), --http auto (httptools). Only the log level is raised so
# that neither server spends time writing per-connection log lines to a file.
UVICORN_OPTIONS = ["--host", HOST, "--backlog", str(BACKLOG), "--log-level", "warning"]

# The scale-out scenario: asgi_chat under `uvicorn --workers SCALEOUT_WORKERS`, one chat through
# a redis-server of its own (fresh for every run, on a free port, no persistence).
SCALEOUT_WORKERS = 2
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CHANNEL = "asgi_chat:db0"  # what asgi_chat's Redis broker subscribes to for database 0


@dataclass(frozen=True)
class Sizes:
    """Scenario sizes and durations; FULL is what `make bench` runs."""

    reps: int
    window: int  # messages in flight for the fan-out sender (the same for every server)
    fanout_receivers: tuple[int, ...]
    fanout_seconds: float
    fanout_size: int  # bytes of message text the sender sends
    stall_receivers: int
    stall_messages: int
    stall_size: int
    idle_connections: int
    idle_warmup: int
    echo_clients: tuple[int, ...]
    echo_seconds: float
    echo_size: int
    scaleout_receivers: int  # fan-out with the same window, size and duration as `fanout`
    scaleout_pairs: int  # runs of A and of B, alternating, in each repetition
    no_progress: float  # a run with no delivery for this long is stopped and reported as is
    rooms_members: int = 1000  # the rooms scenario: members of the one room (fan-out, idle, resume)
    rooms_missed: int = 100  # lines each resuming client missed


FULL = Sizes(
    reps=3,
    window=16,
    fanout_receivers=(100, 1000),
    fanout_seconds=4.0,
    fanout_size=64,
    stall_receivers=100,
    stall_messages=8000,
    stall_size=1024,
    idle_connections=5000,
    idle_warmup=200,
    echo_clients=(1, 100),
    echo_seconds=3.0,
    echo_size=64,
    scaleout_receivers=1000,
    scaleout_pairs=2,
    no_progress=2.0,
)

# A smoke run: the same shapes, fewer and shorter.
QUICK = dataclasses.replace(
    FULL,
    reps=1,
    fanout_seconds=2.0,
    stall_messages=6000,
    idle_connections=1000,
    idle_warmup=100,
    echo_seconds=1.5,
    scaleout_pairs=1,
)

SCENARIOS = ("fanout", "stalled", "idle", "echo", "rooms", "scaleout", "roomscale")

# --- servers ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    title: str
    argv: Callable[[int], list[str]]
    env: dict[str, str]
    client_args: tuple[str, ...] = ()  # extra wsload arguments (the rooms scenario's --proto v1)


def _uvicorn(app: str, *extra: str) -> Callable[[int], list[str]]:
    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", *extra, app, *UVICORN_OPTIONS, "--port", str(port)]

    return argv


def _websockets(port: int) -> list[str]:
    return [sys.executable, str(BENCH / "websockets_app.py"), "--host", HOST, "--port", str(port)]


SERVERS = (
    Server("asgi_chat", "asgi_chat", _uvicorn("asgi_chat:app"), SERVER_ENV),
    Server("tutorial", "FastAPI tutorial", _uvicorn("tutorial_app:app", "--app-dir", str(BENCH)), {}),
    Server("websockets", "websockets broadcast()", _websockets, {}),
    Server("raw_loop", "bare ASGI loop", _uvicorn("raw_loop_app:app", "--app-dir", str(BENCH)), {}),
)
# The bare ASGI loop has the tutorial's flaw and exists to show the floor of any ASGI app on
# uvicorn: it runs where no client stops reading.
FLOOR_SCENARIOS = ("fanout", "idle")

# The scale-out scenario's two configurations of asgi_chat (A and B), both with SERVER_ENV; A also
# gets ASGI_CHAT_BROKER_URL for the redis-server started for its run.
SCALEOUT = (
    Server(
        "redis-2w",
        f"A: {SCALEOUT_WORKERS} workers + Redis",
        _uvicorn("asgi_chat:app", "--workers", str(SCALEOUT_WORKERS)),
        SERVER_ENV,
    ),
    Server("memory-1p", "B: 1 process, memory broker", _uvicorn("asgi_chat:app"), SERVER_ENV),
)


# The rooms scenario: one asgi_chat (the same server, options and limits as above) measured through
# its tutorial chat on /ws/{id} and through an asgi-chat.v1 room on /chat/ws.
ROOMS = (
    Server("asgi_chat", "asgi_chat /ws/{id} (tutorial chat)", _uvicorn("asgi_chat:app"), SERVER_ENV),
    Server("asgi_chat-room", "asgi_chat /chat/ws room", _uvicorn("asgi_chat:app"), SERVER_ENV, ("--proto", "v1")),
)


# The roomscale scenario: the scale-out's A and B serving one asgi-chat.v1 room (A's rooms on Redis).
SCALEOUT_ROOMS = tuple(
    dataclasses.replace(s, name=f"{s.name}-room", title=title, client_args=("--proto", "v1"))
    for s, title in zip(
        SCALEOUT, (f"A: {SCALEOUT_WORKERS} workers + Redis store", "B: 1 process, memory store"), strict=True
    )
)


def _append(mode: str) -> Callable[[int], list[str]]:
    """bench/redis_append.py against the redis-server on `port` (its argv, given the port)."""

    def argv(port: int) -> list[str]:
        url = f"redis://{HOST}:{port}/0"
        return [sys.executable, str(BENCH / "redis_append.py"), "--url", url, "--mode", mode, "--seconds", "3"]

    return argv


REDIS_APPEND = (
    Server("redis-append", "RedisStore.append (Lua: offset, XADD, PUBLISH)", _append("append"), {}),
    Server("redis-publish", "plain PUBLISH of the same frame", _append("publish"), {}),
)


def taskset(cpus: int | str) -> list[str]:
    """`taskset -c CPUS`; every child gets one, since they would inherit this process's CPU 1."""
    return ["taskset", "-c", str(cpus)] if shutil.which("taskset") else []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerDied(RuntimeError):
    pass


class ServerProcess:
    """One fresh server on a free port, pinned to `cpus`, logging to a file.

    The server runs in a session (and process group) of its own: uvicorn's workers, and the
    multiprocessing resource tracker that spawns them, are in it too. Its CPU time is the sum over
    that group, plus `companions` (the scale-out scenario's redis-server).
    """

    def __init__(
        self,
        server: Server,
        tag: str,
        cpus: int | str = SERVER_CPU,
        extra_env: dict[str, str] | None = None,
        companions: dict[int, str] | None = None,
    ) -> None:
        self.server = server
        self.port = free_port()
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log_path = LOGS / f"{tag}.log"
        self.log: IO[bytes] = self.log_path.open("wb")
        env = {**os.environ, **server.env, **(extra_env or {}), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [*taskset(cpus), *server.argv(self.port)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid  # taskset execs the server: same pid, and the group's id
        self.companions = dict(companions or {})
        self.roles: dict[int, str] = {self.pid: "server"}

    def find_processes(self) -> dict[int, str]:
        """Every process of the server's group, by role; call once it is ready (workers started)."""
        roles = {self.pid: "server"}
        for pid in group_pids(self.pid):
            if pid != self.pid:
                roles[pid] = "worker" if "spawn_main" in proc_cmdline(pid) else "helper"  # resource tracker
        if "worker" in roles.values():
            roles[self.pid] = "supervisor"
        self.roles = roles | self.companions
        return self.roles

    def workers(self) -> list[int]:
        return sorted(pid for pid, role in self.roles.items() if role == "worker")

    def cpu_by_pid(self) -> dict[int, int]:
        """utime + stime, in clock ticks, of every process of the server side (0 once gone)."""
        out = {}
        for pid in self.roles:
            try:
                out[pid] = cpu_ticks(pid)
            except (OSError, ValueError, IndexError):
                out[pid] = 0
        return out

    def status_kib(self, key: str) -> int:
        """A memory line of /proc/PID/status summed over the server side's processes."""
        return sum(proc_status_kib(pid, key) for pid in self.roles)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Bounded poll until the port accepts a TCP connection."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerDied(f"{self.server.name} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise ServerDied(f"{self.server.name} did not listen on port {self.port} within {timeout:g} s")

    def log_tail(self, lines: int = 8) -> str:
        if not self.log.closed:
            self.log.flush()
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        """SIGKILL to the group: the measurement is over, and a graceful shutdown is not measured."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)  # the server and, under --workers, its workers
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        if not self.log.closed:
            self.log.close()


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One command to a Redis server, then QUIT; the raw RESP reply (bounded by `timeout`)."""

    def encode(*words: str) -> bytes:
        return f"*{len(words)}\r\n".encode() + b"".join(f"${len(w.encode())}\r\n{w}\r\n".encode() for w in words)

    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(encode(*args) + encode("QUIT"))
        reply = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    return reply


class RedisProcess:
    """A redis-server of the scale-out scenario's own: 127.0.0.1, a free port, no persistence."""

    def __init__(self, tag: str, cpus: int | str) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="asgi_chat-bench-redis-")
        LOGS.mkdir(parents=True, exist_ok=True)
        self.log: IO[bytes] = (LOGS / f"{tag}.redis.log").open("wb")
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", HOST, "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(
            [*taskset(cpus), *argv, "--dir", self.dir],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.url = f"redis://{HOST}:{self.port}/0"

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Bounded poll until it answers PING."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerDied(f"redis-server exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                if redis_command(self.port, "PING").startswith(b"+PONG"):
                    return
            time.sleep(0.05)
        raise ServerDied(f"redis-server did not answer PING within {timeout:g} s")

    def subscribers(self) -> int:
        """How many connections subscribe to asgi_chat's channel (one per worker once it started)."""
        lines = redis_command(self.port, "PUBSUB", "NUMSUB", REDIS_CHANNEL).split(b"\r\n")
        return next((int(line[1:]) for line in lines if line.startswith(b":")), 0)

    def wait_subscribers(self, count: int, timeout: float = 30.0) -> None:
        """Bounded poll until `count` processes have subscribed: every worker's lifespan is done."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                seen = self.subscribers()
                if seen >= count:
                    return
            time.sleep(0.05)
        raise ServerDied(f"{seen} of {count} workers subscribed to Redis within {timeout:g} s")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(timeout=30)
        if not self.log.closed:
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks, from /proc/PID/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


CLK_TCK = os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[int]:
    """Every process whose process group is `pgid` (field 5 of /proc/PID/stat)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[2]) == pgid:
            pids.append(int(entry.name))
    return pids


def proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def established_by_pid(pids: Sequence[int], port: int) -> dict[int, set[int]]:
    """The established TCP connections accepted on `port`, by the process holding each: pid -> peer ports.

    Sockets are matched by inode: /proc/net/tcp lists each connection's local and remote address
    and inode, /proc/PID/fd links to `socket:[inode]`.
    """
    peers: dict[int, int] = {}  # inode -> the client's port
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if state == "01" and int(local.rsplit(":", 1)[1], 16) == port and inode:
            peers[inode] = int(remote.rsplit(":", 1)[1], 16)
    out: dict[int, set[int]] = {}
    for pid in pids:
        found: set[int] = set()
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(fd.path)
                    if target.startswith("socket:["):
                        inode = int(target[8:-1])
                        if inode in peers:
                            found.add(peers[inode])
        out[pid] = found
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, steal) clock ticks of all CPUs together, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return user + nice + system + irq + softirq, steal


def own_ticks() -> int:
    times = os.times()
    return round((times.user + times.system) * CLK_TCK)


@dataclass(frozen=True)
class Mark:
    """Counters read when the load generator reports the start or the end of its measured phase."""

    t: float
    server: int
    client: int
    busy: int
    steal: int
    own: int

    by_pid: dict[int, int]  # the server side's ticks per process (one process but for scale-out)

    @classmethod
    def read(cls, server: ServerProcess, client_pid: int) -> Mark:
        busy, steal = machine_ticks()
        by_pid = server.cpu_by_pid()
        return cls(time.monotonic(), sum(by_pid.values()), cpu_ticks(client_pid), busy, steal, own_ticks(), by_pid)


def wait_for_quiet(limit_pct: float = 15.0, window: float = 0.5, timeout: float = 20.0) -> tuple[float, float]:
    """Bounded poll until the machine's CPUs are nearly idle (nothing of ours runs yet).

    Another workload on this 2-core machine (a test suite, a browser) skews every figure; this
    waits up to `timeout` seconds for it to pause. Returns (seconds waited, last busy %).
    """
    start = time.monotonic()
    busy_pct = 0.0
    while True:
        b0, _ = machine_ticks()
        time.sleep(window)
        b1, _ = machine_ticks()
        busy_pct = 100 * (b1 - b0) / CLK_TCK / window
        if busy_pct <= limit_pct or time.monotonic() - start >= timeout:
            return time.monotonic() - start, busy_pct


def proc_status_kib(pid: int, key: str) -> int:
    """A memory line of /proc/PID/status (VmRSS, VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def settle(pid: int, quiet_polls: int = 5, period: float = 0.1, timeout: float = 20.0) -> float:
    """Bounded poll until the server's CPU counter stops moving for quiet_polls polls."""
    start = time.monotonic()
    last, quiet = cpu_ticks(pid), 0
    while time.monotonic() - start < timeout and quiet < quiet_polls:
        time.sleep(period)
        now = cpu_ticks(pid)
        quiet = quiet + 1 if now == last else 0
        last = now
    return time.monotonic() - start


# --- the load generator -------------------------------------------------------------------------


class ClientTimeout(RuntimeError):
    pass


class LoadClient:
    """wsload pinned to `cpus` (CLIENT_CPU but for scale-out); JSON lines on its stdout, commands on its stdin."""

    def __init__(self, args: Sequence[str], stderr_path: Path, cpus: int | str = CLIENT_CPU) -> None:
        self.argv = [*taskset(cpus), str(WSLOAD), *args]
        self.stderr: IO[bytes] = stderr_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.buffer = b""

    def event(self, deadline: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ClientTimeout("the load generator did not report in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise ClientTimeout(f"the load generator exited with {self.proc.wait()}")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        return event

    def command(self, text: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()

    def finish(self) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        self.stderr.close()


# --- scenarios ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str  # e.g. "fanout-1000"
    scenario: str
    title: str
    args: tuple[str, ...]  # wsload arguments besides port and deflate
    deadline: float  # seconds the load generator may take for its measured part
    server_cpus: int | str = SERVER_CPU  # taskset -c for the server side ...
    client_cpus: int | str = CLIENT_CPU  # ... and for the load generator
    kind: str = ""  # how it is measured (fanout, idle, resume) when not its scenario's name

    @property
    def measure(self) -> str:
        return self.kind or self.scenario


def cases(sizes: Sizes, only: Sequence[str]) -> list[Case]:
    common = ("--window", str(sizes.window), "--no-progress", str(sizes.no_progress))
    result: list[Case] = []
    if "fanout" in only:
        for n in sizes.fanout_receivers:
            result.append(
                Case(
                    f"fanout-{n}",
                    "fanout",
                    f"Fan-out to {n} receivers, {sizes.fanout_size} B messages, window {sizes.window}",
                    (
                        "--mode", "fanout", "--receivers", str(n), "--duration", str(sizes.fanout_seconds),
                        "--size", str(sizes.fanout_size), *common,
                    ),
                    sizes.fanout_seconds + 60,
                )
            )  # fmt: skip
    if "stalled" in only:
        for stalled in (0, 1):
            label = "one never reads" if stalled else "no stalled client"
            result.append(
                Case(
                    f"stalled-{stalled}",
                    "stalled",
                    f"{sizes.stall_receivers} receivers, {label}: "
                    f"{sizes.stall_messages} messages of {sizes.stall_size} B",
                    (
                        "--mode", "fanout", "--receivers", str(sizes.stall_receivers),
                        "--stalled", str(stalled), "--max-messages", str(sizes.stall_messages),
                        "--size", str(sizes.stall_size), "--duration", "1000", *common,
                    ),
                    300,
                )
            )  # fmt: skip
    if "idle" in only:
        result.append(
            Case(
                f"idle-{sizes.idle_connections}",
                "idle",
                f"{sizes.idle_connections} idle chat connections",
                ("--mode", "idle", "--connections", str(sizes.idle_connections)),
                120,
            )
        )
    if "echo" in only:
        for k in sizes.echo_clients:
            result.append(
                Case(
                    f"echo-{k}",
                    "echo",
                    f"Echo on /ws, {k} client{'s' if k > 1 else ''} in request/response",
                    (
                        "--mode", "echo", "--clients", str(k), "--duration", str(sizes.echo_seconds),
                        "--size", str(sizes.echo_size), "--no-progress", str(sizes.no_progress),
                    ),
                    sizes.echo_seconds + 60,
                )
            )  # fmt: skip
    if "rooms" in only:
        n, room = sizes.rooms_members, ("--room", "bench")
        result.append(
            Case(
                f"rooms-fanout-{n}",
                "rooms",
                f"One room of {n} members, one sender, {sizes.fanout_size} B lines, window {sizes.window}",
                (
                    "--mode", "fanout", "--receivers", str(n), "--duration", str(sizes.fanout_seconds),
                    "--size", str(sizes.fanout_size), *room, *common,
                ),
                sizes.fanout_seconds + 150,  # 1000 joins announce presence to each other first
                kind="fanout",
            )
        )  # fmt: skip
        result.append(
            Case(
                f"rooms-idle-{n}",
                "rooms",
                f"{n} idle members of one room (hello + join) vs {n} idle tutorial chat connections",
                ("--mode", "idle", "--connections", str(n), *room),
                150,
                kind="idle",
            )
        )
        result.append(
            Case(
                f"rooms-resume-{n}",
                "rooms",
                f"{n} clients resuming at once after each missed {sizes.rooms_missed} lines",
                (
                    "--mode", "resume", "--receivers", str(n), "--missed", str(sizes.rooms_missed),
                    "--concurrency", str(n), *room, "--no-progress", str(max(sizes.no_progress, 10.0)),
                ),
                180,
                kind="resume",
            )
        )  # fmt: skip
    if "roomscale" in only:
        n = sizes.scaleout_receivers
        result.append(
            Case(
                f"roomscale-{n}",
                "roomscale",
                f"One room of {n} members on /chat/ws: {SCALEOUT_WORKERS} workers + Redis store vs 1 process, "
                f"memory store, {sizes.fanout_size} B lines, window {sizes.window}, nothing pinned",
                (
                    "--mode", "fanout", "--receivers", str(n), "--duration", str(sizes.fanout_seconds),
                    "--size", str(sizes.fanout_size), "--room", "bench", *common,
                ),
                sizes.fanout_seconds + 150,
                server_cpus=ALL_CPUS,
                client_cpus=ALL_CPUS,
                kind="scaleout",
            )
        )  # fmt: skip
        result.append(
            Case(
                "redis-append",
                "roomscale",
                "One sender, each call awaited: the Redis store's append+publish vs plain PUBLISH, 3 s",
                (),
                60,
                kind="append",
            )
        )
    if "scaleout" in only:
        n = sizes.scaleout_receivers
        result.append(
            Case(
                f"scaleout-{n}",
                "scaleout",
                f"Fan-out to {n} receivers: {SCALEOUT_WORKERS} workers + Redis vs 1 process, "
                f"{sizes.fanout_size} B messages, window {sizes.window}, nothing pinned",
                (
                    "--mode", "fanout", "--receivers", str(n), "--duration", str(sizes.fanout_seconds),
                    "--size", str(sizes.fanout_size), *common,
                ),
                sizes.fanout_seconds + 60,
                server_cpus=ALL_CPUS,
                client_cpus=ALL_CPUS,
            )
        )  # fmt: skip
    return result


def rounds(case: Case, sizes: Sizes) -> int:
    """Runs of each server per repetition: 1, or sizes.scaleout_pairs for scale-out's A and B."""
    return sizes.scaleout_pairs if case.measure == "scaleout" else 1


def case_deflates(case: Case, deflates: Sequence[bool]) -> list[bool]:
    """Scale-out and rooms run without deflate (the question is the broker, the room), unless only
    `--deflate on` was asked."""
    if case.scenario in ("scaleout", "rooms", "roomscale") and False in deflates:
        return [False]
    return list(deflates)


def run_one(server: Server, case: Case, deflate: bool, rep: int, sizes: Sizes) -> dict[str, Any]:
    """One measurement on a fresh server: returns the load generator's result plus server figures."""
    tag = f"{case.key}-{'deflate' if deflate else 'plain'}-{server.name}-r{rep}"
    record: dict[str, Any] = {"server": server.name, "case": case.key, "scenario": case.scenario}
    record["kind"] = case.measure
    record |= {"deflate": deflate, "rep": rep, "ok": False, "error": None}
    record["quiet_wait_s"], record["busy_before_pct"] = wait_for_quiet()
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
            extra_env["ASGI_CHAT_BROKER_URL"] = redis.url
            companions[redis.pid] = "redis-server"
            record["broker_url"] = redis.url
        proc = ServerProcess(server, tag, case.server_cpus, extra_env, companions)
        proc.wait_ready()
        if redis is not None:
            redis.wait_subscribers(SCALEOUT_WORKERS)  # every worker's lifespan (and broker) is up
        record["server_processes"] = {str(pid): role for pid, role in proc.find_processes().items()}
        args = [*case.args, *server.client_args, "--port", str(proc.port), "--deflate", "1" if deflate else "0"]
        args += ["--hold", "120"]
        if case.measure == "idle":
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


def follow(client: LoadClient, proc: ServerProcess, timeout: float) -> tuple[dict[str, Any], dict[str, Mark]]:
    """wsload's events up to its result: CPU marks at the measured phase's start and end."""
    deadline = time.monotonic() + timeout
    marks: dict[str, Mark] = {}
    while (event := client.event(deadline))["event"] != "result":
        if event["event"] in ("start", "end"):
            marks[event["event"]] = Mark.read(proc, client.proc.pid)
    return event, marks


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
        [*args, "--id-base", "100000", "--deadline", str(case.deadline)], LOGS / f"{tag}.client.log", case.client_cpus
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


# --- metrics and aggregation --------------------------------------------------------------------


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
            targets.append(
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
            targets.append(
                Target(
                    "Stalled client: healthy p99 latency vs the run without it",
                    deflate,
                    f"{fmt_ratio(r)} ({fmt(with_stall, '{:.1f}')} ms vs {fmt(without, '{:.1f}')} ms)",
                    "≤ 2x",
                    None if r is None else r <= 2.0,
                    "",
                )
            )
        if big in cases_seen:
            dps = find(METRICS["fanout"], "deliveries")
            a, t, w = (med(records, s, big, deflate, dps) for s in ("asgi_chat", "tutorial", "websockets"))
            floor = med(records, "raw_loop", big, deflate, dps)
            rt, rw = ratio(a, t), ratio(a, w)
            targets.append(
                Target(
                    f"Fan-out to {max(sizes.fanout_receivers)}: deliveries/s vs tutorial",
                    deflate,
                    f"{fmt_ratio(rt)} ({fmt(a)} vs {fmt(t)})",
                    "≥ 1.15x",
                    None if rt is None else rt >= 1.15,
                    "" if floor is None else f"bare ASGI loop {fmt_ratio(ratio(floor, t))} of the tutorial",
                )
            )
            targets.append(
                Target(
                    f"Fan-out to {max(sizes.fanout_receivers)}: deliveries/s vs websockets broadcast()",
                    deflate,
                    f"{fmt_ratio(rw)} ({fmt(a)} vs {fmt(w)})",
                    "≥ 0.9x",
                    None if rw is None else rw >= 0.9,
                    "",
                )
            )
        if idle in cases_seen:
            mem = find(METRICS["idle"], "server memory per connection")
            a, t, w = (med(records, s, idle, deflate, mem) for s in ("asgi_chat", "tutorial", "websockets"))
            floor = med(records, "raw_loop", idle, deflate, mem)
            targets.append(
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
            targets.append(
                Target(
                    "Idle connections: connections opened/s vs tutorial",
                    deflate,
                    f"{fmt_ratio(rt)} ({fmt(a)} vs {fmt(t)})",
                    "≥ 1.5x",
                    None if rt is None else rt >= 1.5,
                    "" if floor is None else f"bare ASGI loop {fmt_ratio(ratio(floor, t))} of the tutorial",
                )
            )
    targets += rooms_targets(records, sizes)
    room_scale = [r for r in records if r["scenario"] == "roomscale" and r["server"] == SCALEOUT_ROOMS[0].name]
    if room_scale:
        counts = delivery_counts(room_scale)
        deliveries = sum(int(r.get("client", {}).get("deliveries", 0)) for r in room_scale)
        targets.append(
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
    scale = [r for r in records if r["scenario"] == "scaleout" and r["server"] == SCALEOUT[0].name]
    if scale:
        counts = delivery_counts(scale)
        deliveries = sum(int(r.get("client", {}).get("deliveries", 0)) for r in scale)
        clean = all(r["ok"] for r in scale) and not any(counts.values())
        targets.append(
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
    return targets


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
        if case.scenario in ("scaleout", "rooms", "roomscale"):
            continue  # a table of its own: scaleout_section, rooms_section, roomscale_section
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
    metrics = METRICS["scaleout"]
    lines = [
        f"### Scale-out: {SCALEOUT_WORKERS} workers with Redis against 1 process",
        "",
        f"Fan-out to {sizes.scaleout_receivers} receivers, as fanout-{sizes.scaleout_receivers} above "
        f"({sizes.fanout_size} B messages, window {sizes.window}, {sizes.fanout_seconds:g} s), permessage-deflate "
        "not offered (the question is the broker; deflate would add the same per-copy cost to both). "
        f"**A**: `uvicorn asgi_chat:app --workers {SCALEOUT_WORKERS}` with "
        "`ASGI_CHAT_BROKER_URL=redis://127.0.0.1:PORT/0` and a redis-server 7 of its own, started for each "
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

    def med_of(get: Callable[[dict[str, Any]], float | None], rs: Sequence[dict[str, Any]]) -> float | None:
        return median([get(r) for r in rs])

    deliveries = find(metrics, "deliveries")
    va, vb = med_of(deliveries.get, a_runs), med_of(deliveries.get, b_runs)
    cpu_a, cpu_b = med_of(_record("server_cpu_pct"), a_runs), med_of(_record("server_cpu_pct"), b_runs)
    with_sender, other_worker = med_of(_worker_cpu(True), a_runs), med_of(_worker_cpu(False), a_runs)
    redis_cpu = med_of(_role_cpu("redis-server"), a_runs)
    client_a = med_of(_client("client_cpu_pct"), a_runs)
    busy_a = med_of(_record("machine_busy_pct"), a_runs)
    p50, p99 = find(metrics, "latency p50"), find(metrics, "latency p99")
    p50_a, p50_b = med_of(p50.get, a_runs), med_of(p50.get, b_runs)
    p99_a, p99_b = med_of(p99.get, a_runs), med_of(p99.get, b_runs)
    busy_b = med_of(_record("machine_busy_pct"), b_runs)
    r_ab = ratio(va, vb)
    per_a = None if cpu_a is None or not va else cpu_a * 1e4 / va  # µs of CPU per delivery
    per_b = None if cpu_b is None or not vb else cpu_b * 1e4 / vb
    if r_ab is None:
        finding = "not measured."
    elif r_ab >= 1.1:
        finding = "the second core pays off here, though far from twice."
    elif r_ab > 0.9:
        finding = "on this machine, no gain worth the name."
    else:
        finding = "on this machine, A is slower."
    pinned = med(records, "asgi_chat", f"fanout-{sizes.scaleout_receivers}", False, deliveries)
    crossing = [w["receivers"] for r in a_runs for w in r.get("split") or [] if not w["sender"]]
    share = 100 * statistics.median(crossing) / sizes.scaleout_receivers if crossing else None
    lines += [
        "",
        "uvicorn's workers share one listening socket, so the kernel decides which worker accepts each "
        "connection (counted from /proc/PID/fd and /proc/net/tcp while the connections were open; the "
        "split differs from run to run). The sender's worker delivers each line to its own receivers "
        "directly and publishes it once to Redis; the other worker's Redis listener hands it to the rest"
        + (f": a median {share:.0f} % of the receivers got every line through Redis. " if share is not None else ". ")
        + "wsload checks every receiver's lines for gaps, order and duplicates (a bitmap of the sequence "
        "numbers it has seen, kept up after the measured phase too), and a line is done, for the window, "
        "only when every receiver on both workers has it: the slower worker sets the pace. Latency is over "
        "all receivers of both workers.",
        "",
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
    return lines


def rooms_section(records: Sequence[dict[str, Any]], all_cases: Sequence[Case]) -> list[str]:
    """The rooms scenario: asgi_chat's /chat/ws room beside its own tutorial chat on /ws/{id}."""
    chat, room = ROOMS
    rows = []
    for case in all_cases:
        if case.scenario != "rooms":
            continue
        for metric in ROOMS_METRICS[case.measure]:
            t, a = (med(records, s.name, case.key, False, metric) for s in (chat, room))
            if t is None and a is None:
                continue
            cell = fmt_ratio(ratio(a, t)) if metric.higher_is_better is not None and t is not None else ""
            rows.append(f"| {case.key} | {metric.name} ({metric.unit}) | {fmt(t, metric.fmt)} | "
                        f"{fmt(a, metric.fmt)} | {cell} |")  # fmt: skip
    if not rows:
        return []
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
        f"| case | figure | {chat.title} | {room.title} | room / tutorial chat |",
        "| --- | --- | ---: | ---: | ---: |",
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
    push = [r for r in records if r["scenario"] == "roomscale" and r.get("kind") == "append"]
    if push:
        a, b = REDIS_APPEND
        a_runs, b_runs = (
            select_records(records, a.name, "redis-append", False),
            select_records(records, b.name, "redis-append", False),
        )
        lines += [
            *([""] if lines else []),
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


def report(
    meta: dict[str, Any],
    records: Sequence[dict[str, Any]],
    all_cases: Sequence[Case],
    targets: Sequence[Target],
    deflates: Sequence[bool],
    sizes: Sizes,
) -> str:
    v, m = meta["versions"], meta["machine"]
    lines = [
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
        "(`permessage-deflate; client_max_window_bits`, deflate on; the servers accept it).",
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
    lines += [
        "",
        "How each figure is measured: [bench/README.md](bench/README.md).",
    ]
    lines += ["", *interference(records)]
    notes = observations(records)
    if notes:
        lines += ["", "Observations:", "", *notes]
    failed = failures(records)
    if failed:
        lines += ["", "Runs that did not complete:", "", *failed]
    return "\n".join(lines) + "\n"


def write_readme(section: str) -> Path:
    body = f"{START_MARK}\n{section}{END_MARK}\n"
    if not README.exists():
        FALLBACK_RESULTS.write_text("# Benchmark results\n\n" + body)
        return FALLBACK_RESULTS
    text = README.read_text()
    if START_MARK in text and END_MARK in text:
        head, _, rest = text.partition(START_MARK)
        _, _, tail = rest.partition(END_MARK)
        text = head + body.rstrip("\n") + tail
        if not text.endswith("\n"):
            text += "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body
    README.write_text(text)
    return README


# --- main ---------------------------------------------------------------------------------------


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(NOFILE, soft)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def asgi_chat_importable() -> str | None:
    probe = subprocess.run(
        [sys.executable, "-c", "import asgi_chat"],
        cwd=ROOT,
        env={**os.environ, **SERVER_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


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
    if scenario == "idle":
        return f"{fmt(record.get('mem_per_conn_kib'), '{:.1f}')} KiB/conn, {c['connections_per_s']:,.0f} conn/s ({cpu})"
    return (
        f"{c['roundtrips_per_s']:,.0f} round trips/s, "
        f"p50 {c['lat_p50_ms']:.2f} ms, p99 {c['lat_p99_ms']:.2f} ms ({cpu})"
    )


def report_saved(path: Path, readme: bool) -> int:
    """Render the report of a saved run again (say after the report's wording changed)."""
    saved = json.loads(path.read_text())
    meta, records = saved["meta"], saved["records"]
    known = {f.name for f in dataclasses.fields(Sizes)}
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["sizes"].items() if k in known}
    sizes = dataclasses.replace(FULL, **fields)
    only = [name for name in SCENARIOS if any(r["scenario"] == name for r in records)]
    framed = ("scaleout", "rooms", "roomscale")
    deflates = sorted({bool(r["deflate"]) for r in records if r["scenario"] not in framed} or {False})
    all_cases = cases(sizes, only)
    section = report(meta, records, all_cases, evaluate_targets(records, sizes, deflates), deflates, sizes)
    print(section)
    if readme:
        print(f"wrote the results table to {write_readme(section)}")
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 repetition, smaller sizes")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="run only this (repeatable)")
    parser.add_argument("--server", action="append", choices=[s.name for s in SERVERS], help="only this server")
    parser.add_argument("--deflate", choices=("both", "off", "on"), default="both")
    parser.add_argument("--reps", type=int, help="override the number of repetitions")
    parser.add_argument("--write-readme", action="store_true", help="update README.md even for a partial or quick run")
    parser.add_argument(
        "--from-json",
        type=Path,
        metavar="FILE",
        help="measure nothing: print the report of a saved run (bench/results/latest.json); with "
        "--write-readme, also put it in README.md",
    )
    args = parser.parse_args(argv)
    if args.from_json:
        return report_saved(args.from_json, args.write_readme)

    sizes = QUICK if args.quick else FULL
    if args.reps:
        sizes = dataclasses.replace(sizes, reps=args.reps)
    only = args.scenario or list(SCENARIOS)
    deflates = {"both": [False, True], "off": [False], "on": [True]}[args.deflate]
    servers = [s for s in SERVERS if not args.server or s.name in args.server]
    full_run = not args.quick and not args.scenario and not args.server and args.deflate == "both"
    full_run = full_run and not args.reps

    if not WSLOAD.exists():
        print(f"{WSLOAD} is missing: run `make -C bench` first", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _exit_on_signal)  # run the finally blocks: no stray servers
    nofile = raise_nofile()
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {CLIENT_CPU})
    LOGS.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)

    problem = asgi_chat_importable()
    if problem:
        print(f"asgi_chat cannot be imported ({problem}): it is skipped", file=sys.stderr)
        servers = [s for s in servers if s.name != "asgi_chat"]
    if "scaleout" in only and not any(s.name == "asgi_chat" for s in servers):
        only = [o for o in only if o != "scaleout"]  # it is asgi_chat's scenario only
    all_cases = cases(sizes, only)
    meta: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "versions": versions(),
        "command": command_line(),
        "sizes": dataclasses.asdict(sizes),
        "nofile": nofile,
        "asgi_chat_env": SERVER_ENV,
        "uvicorn_options": UVICORN_OPTIONS,
    }
    limits = " ".join(f"{k}={v}" for k, v in SERVER_ENV.items())
    print(f"asgi_chat security limits off for the benchmark: {limits}")
    print(
        f"server on CPU {SERVER_CPU}, load generator on CPU {CLIENT_CPU}; RLIMIT_NOFILE {nofile}; "
        f"{sizes.reps} repetition(s); permessage-deflate offered: " + ", ".join("yes" if d else "no" for d in deflates)
    )
    if any(c.scenario == "scaleout" for c in all_cases):
        print(
            f"scale-out: asgi_chat with {SCALEOUT_WORKERS} workers and a redis-server of its own vs 1 process; "
            f"nothing pinned (taskset -c {ALL_CPUS}), permessage-deflate not offered"
        )

    def pool(case: Case) -> Sequence[Server]:
        if case.scenario == "scaleout":
            return SCALEOUT
        if case.scenario == "rooms":
            return ROOMS[1:] if case.measure == "resume" else ROOMS
        if case.scenario == "roomscale":
            return REDIS_APPEND if case.measure == "append" else SCALEOUT_ROOMS
        return [s for s in servers if s.name != "raw_loop" or case.scenario in FLOOR_SCENARIOS]

    records: list[dict[str, Any]] = []
    total = sizes.reps * sum(len(case_deflates(c, deflates)) * len(pool(c)) * rounds(c, sizes) for c in all_cases)
    started = time.monotonic()
    for rep in range(1, sizes.reps + 1):
        for case in all_cases:
            # Rotate the server order each repetition so no server always runs first or last.
            both = pool(case)
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
    targets = evaluate_targets(records, sizes, deflates)
    section = report(meta, records, all_cases, targets, deflates, sizes)
    print()
    print(section)
    meta["elapsed_s"] = time.monotonic() - started
    out = {"meta": meta, "records": records, "targets": [dataclasses.asdict(t) for t in targets]}
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {RESULTS / 'latest.json'}")
    if full_run or args.write_readme:
        path = write_readme(section)
        print(f"wrote the results table to {path}")
        if path == FALLBACK_RESULTS:
            print("README.md does not exist yet: results are in bench/RESULTS.md for the lead to move")
    else:
        print("partial run: README.md left unchanged (--write-readme to force)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

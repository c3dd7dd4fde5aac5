"""Server processes under test and redis-server, each in a process group of its own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

from .config import HOST, LOGS, NOFILE, REDIS_CHANNEL, REDIS_SERVER, ROOT, SERVER_CPU, SERVER_ENV, Server
from .procfs import cpu_ticks, group_pids, proc_cmdline, proc_status_kib


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
            cwd=server.cwd or ROOT,
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


def asgi_chat_importable(checkout: Path = ROOT) -> str | None:
    """None if `import asgi_chat` works in `checkout` (the way its server imports it), else why not."""
    probe = subprocess.run(
        [sys.executable, "-c", "import asgi_chat"],
        cwd=checkout,
        env={**os.environ, **SERVER_ENV, "PYTHONPATH": str(checkout)},
        capture_output=True,
        text=True,
        check=False,
    )
    return None if probe.returncode == 0 else (probe.stderr.strip().splitlines() or ["?"])[-1]


def server_setting(server: Server, name: str) -> float | None:
    """A setting of the asgi_chat that `server` runs, as its environment makes it (None if it has none).

    The join storm's presence bound needs the server's presence window, a setting a newer
    asgi_chat has and an older one lacks.
    """
    code = f"from asgi_chat.ops.settings import from_env\nprint(float(getattr(from_env(), {name!r}, 'nan')))"
    probe = subprocess.run(
        [sys.executable, "-c", code],
        cwd=server.cwd or ROOT,
        env={**os.environ, **server.env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    try:
        value = float(probe.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return None
    return None if value != value else value  # NaN: no such setting


def code_fingerprint(server: Server) -> str:
    """A short hash of the asgi_chat source a server runs: other engineers may change it mid-run."""
    package = (server.cwd or ROOT) / "asgi_chat"
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        with contextlib.suppress(OSError):
            digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]

"""Readers of /proc: CPU ticks, memory, connections per process, and CPU marks."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .processes import ServerProcess


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

"""ops/metrics.py's pure parts: the line sample, the workers' metrics directory, dead workers' gauges."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asgi_chat.ops.exposition import MULTIPROC_DIR, forget_dead_workers, multiprocess_metrics
from asgi_chat.ops.metrics import LINE_SAMPLE, Metrics


def test_one_line_in_sixteen_gets_a_clock() -> None:
    metrics = Metrics()
    clocks = [metrics.line_clock() for _ in range(LINE_SAMPLE * 3)]
    timed = [n for n, clock in enumerate(clocks) if clock is not None]
    assert timed == [LINE_SAMPLE - 1, 2 * LINE_SAMPLE - 1, 3 * LINE_SAMPLE - 1]


def test_a_line_observed_goes_to_the_exposition_and_without_one_changes_nothing() -> None:
    alone = Metrics()  # a Session or Fanout built alone, as unit tests do
    alone.observe_line(0.001)
    assert alone == Metrics()
    seen: list[float] = []
    attached = Metrics(line_observer=seen.append)  # what an Exposition attaches: its histogram's observe
    attached.observe_line(0.002)
    attached.observe_line(0.003)
    assert seen == [0.002, 0.003]


def test_one_worker_needs_no_directory() -> None:
    environ: dict[str, str] = {}
    with multiprocess_metrics(1, environ):
        assert environ == {}


def test_several_workers_get_a_fresh_directory_removed_afterwards() -> None:
    environ: dict[str, str] = {}
    with multiprocess_metrics(2, environ):
        directory = Path(environ[MULTIPROC_DIR])
        assert directory.is_dir()
        assert list(directory.iterdir()) == []
    assert MULTIPROC_DIR not in environ
    assert not directory.exists()


def test_a_directory_the_operator_set_is_used_and_kept(tmp_path: Path) -> None:
    environ = {MULTIPROC_DIR: str(tmp_path)}
    with multiprocess_metrics(4, environ):
        assert environ == {MULTIPROC_DIR: str(tmp_path)}
    assert tmp_path.is_dir()


def test_a_directory_that_is_not_there_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"PROMETHEUS_MULTIPROC_DIR=.*expected an existing directory"):
        multiprocess_metrics(2, {MULTIPROC_DIR: str(tmp_path / "missing")})


def test_the_live_gauges_of_a_worker_that_is_gone_leave_the_sums(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, check=True)
    dead = int(gone.stdout)  # that process has exited and been reaped
    files = [
        f"gauge_livesum_{dead}.db",  # its connections: no longer open anywhere
        f"gauge_livemin_{dead}.db",
        f"counter_{dead}.db",  # its counts stay in the totals
        f"gauge_max_{dead}.db",  # a high-water mark stays too
        f"gauge_livesum_{os.getpid()}.db",  # a worker still running
    ]
    for name in files:
        (tmp_path / name).write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(files[2:])

"""The counters in Prometheus' format, for ``/metrics``: copied from :class:`Metrics` when read.

::

    hot path ──+= 1──▶ Metrics (plain ints, one object per app) ──sync()──▶ prometheus_client ──▶ /metrics
                                                                  ▲
                                  at every scrape, and every SYNC_SECONDS under several workers

Several workers (``python -m asgi_chat --workers N``, or ``PROMETHEUS_MULTIPROC_DIR`` set for
plain uvicorn): prometheus_client's multiprocess mode. Each worker writes its own values into
its own files in that directory, and a scrape, whichever worker answers it, adds up every
worker's files: one set of totals. A worker's values reach its files when it syncs: at each
scrape it answers, and every ``SYNC_SECONDS`` from a task that lifespan starts and stops. Its
counters only grow, and the files of a worker that has exited stay, so totals never go backwards;
its gauges (connections, broker up) leave with it.

Each app has its own registry, so the many apps a test process builds count independently.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Final, Protocol

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge, Histogram, multiprocess

from .metrics import KNOWN_CLOSE_CODES, LINE_BUCKETS, LINE_SAMPLE, Metrics

# prometheus_client's own variable: it decides, when prometheus_client is imported, whether
# values live in this process's memory or in files in that directory that every worker reads.
MULTIPROC_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"
SYNC_SECONDS: Final = 1.0  # how stale another worker's figures may be in a scrape
TEXT_FORMAT: Final = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes


class BrokerState(Protocol):
    """What the exposition reads of a broker (engine/brokers' Broker has both)."""

    @property
    def healthy(self) -> bool: ...

    @property
    def dropped(self) -> int: ...


class BoundState(Protocol):
    """One of a store's bounds (engine/stores' Bound)."""

    @property
    def name(self) -> str: ...
    @property
    def used(self) -> int: ...
    @property
    def limit(self) -> int: ...


class StoreState(Protocol):
    """What the exposition reads of a room store (engine/stores' RoomStore has it)."""

    @property
    def healthy(self) -> bool: ...

    def bounds(self) -> tuple[BoundState, ...]: ...


class _CounterMirror:
    """A prometheus_client counter that follows a plain int: at sync it grows by what the int grew."""

    __slots__ = ("counter", "synced")

    def __init__(self, counter: prometheus_client.Counter) -> None:
        self.counter = counter
        self.synced = 0

    def sync(self, value: int) -> None:
        if value > self.synced:
            self.counter.inc(value - self.synced)
            self.synced = value


class _Instruments:
    """The prometheus_client metrics of one app, and how its figures are copied into them."""

    def __init__(self, metrics: Metrics, registry: CollectorRegistry) -> None:
        def counter(name: str, help: str) -> _CounterMirror:
            return _CounterMirror(prometheus_client.Counter(name, help, registry=registry))

        # A gauge's multiprocess_mode says how workers add up ("live": running workers only);
        # one process ignores it.
        self.connections = Gauge(
            "asgi_chat_connections", "Accepted WebSockets still open.", registry=registry, multiprocess_mode="livesum"
        )
        self.received = counter("asgi_chat_messages_received", "Data messages from clients.")
        self.delivered = counter("asgi_chat_messages_delivered", "Data messages sent to clients.")
        self.slow = counter(
            "asgi_chat_slow_consumer_disconnects", "Clients closed with 1013 because they did not keep up."
        )
        self.outbox_max = Gauge(
            "asgi_chat_outbox_depth_max", "The deepest any outbox has been.", registry=registry, multiprocess_mode="max"
        )
        self.closes_by_code = prometheus_client.Counter(
            "asgi_chat_closes",
            "WebSockets the app refused (before accept) or closed (after), by close code.",
            ["code"],
            registry=registry,
        )
        self.closes: dict[int, _CounterMirror] = {}
        for code in KNOWN_CLOSE_CODES:
            self.close_mirror(code)
        self.broker_up = Gauge(
            "asgi_chat_broker_up",
            "1 while the broker is reachable (by every worker), else 0.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.broker_dropped = counter("asgi_chat_broker_dropped", "Messages that did not reach other processes.")
        self.moderation_by_action = prometheus_client.Counter(
            "asgi_chat_moderation_actions",
            "Moderators' requests carried out on /chat/ws, by action (kick, ban, mute, redact, ...).",
            ["action"],
            registry=registry,
        )
        self.moderation: dict[str, _CounterMirror] = {}
        self.rooms_up = Gauge(
            "asgi_chat_rooms_store_up",
            "1 while the rooms' store is reachable (by every worker), else 0: with Redis down, says fail.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        # A store's bounds: memory's are each worker's own, Redis' the deployment's (every worker
        # reports the same figure): "max" adds them up as the fullest worker sees them.
        self.bound_used = Gauge(
            "asgi_chat_store_bound_used",
            "What the rooms' store holds against each bound (rooms, history_bytes, say_ids).",
            ["bound"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.bound_limit = Gauge(
            "asgi_chat_store_bound_limit",
            "Each bound of the rooms' store (0: off); used >= limit: full, the oldest give way.",
            ["bound"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        line_seconds = Histogram(
            "asgi_chat_line_delivery_seconds",
            f"Seconds from receiving a chat line to starting its last recipient's send (1 line in {LINE_SAMPLE}).",
            registry=registry,
            buckets=LINE_BUCKETS,
        )
        # Observed as it happens (one line in LINE_SAMPLE, not per recipient): a histogram's
        # buckets cannot be copied in later the way a count can.
        metrics.line_observer = line_seconds.observe

    def close_mirror(self, code: int) -> _CounterMirror:
        mirror = self.closes[code] = _CounterMirror(self.closes_by_code.labels(code=str(code)))
        return mirror

    def sync(self, metrics: Metrics, broker: BrokerState, store: StoreState | None) -> None:
        self.connections.set(metrics.connections)
        self.received.sync(metrics.messages_received)
        self.delivered.sync(metrics.messages_delivered)
        self.slow.sync(metrics.slow_consumer_disconnects)
        self.outbox_max.set(metrics.outbox_depth_max)
        for code, count in tuple(metrics.closes.items()):
            (self.closes.get(code) or self.close_mirror(code)).sync(count)
        self.broker_up.set(int(broker.healthy))
        self.broker_dropped.sync(broker.dropped)
        for action, count in tuple(metrics.moderation.items()):
            mirror = self.moderation.get(action)
            if mirror is None:
                mirror = self.moderation[action] = _CounterMirror(self.moderation_by_action.labels(action=action))
            mirror.sync(count)
        self.rooms_up.set(int(store is None or store.healthy))
        for bound in store.bounds() if store is not None else ():
            self.bound_used.labels(bound=bound.name).set(bound.used)
            self.bound_limit.labels(bound=bound.name).set(bound.limit)


class Exposition:
    """One app's :class:`Metrics` and broker state as prometheus_client metrics, and ``/metrics``' body.

    In one process the metrics are made at once. Under several workers they are made when the
    app starts serving (lifespan startup, or the first scrape), because making one writes this
    process's files: an app built only to check the settings (the command line's supervisor
    process may) must leave no "broker up: 0" behind, under a pid that stays alive.
    """

    content_type: Final = TEXT_FORMAT  # of render()'s body

    def __init__(self, metrics: Metrics, broker: BrokerState, store: StoreState | None = None) -> None:
        self.metrics = metrics
        self.broker = broker
        self.store = store
        self.directory = multiprocess_directory()
        self.registry = CollectorRegistry(auto_describe=True)
        self._instruments = None if self.directory else _Instruments(metrics, self.registry)
        self._task: asyncio.Task[None] | None = None

    def sync(self) -> None:
        """Copy the current figures into prometheus_client (and so, under several workers, into
        this worker's files)."""
        if self._instruments is None:
            self._instruments = _Instruments(self.metrics, self.registry)
        self._instruments.sync(self.metrics, self.broker, self.store)

    def render(self) -> bytes:
        """``/metrics``' body: this process's figures, or every worker's added up."""
        self.sync()
        if self.directory is None:
            return prometheus_client.generate_latest(self.registry)
        forget_dead_workers(self.directory)
        # prometheus_client's multiprocess recipe: a fresh registry that reads every worker's files.
        everyone = CollectorRegistry()
        multiprocess.MultiProcessCollector(everyone, path=self.directory)
        return prometheus_client.generate_latest(everyone)

    # --- under several workers: a periodic sync, from lifespan ----------------------------

    def start(self) -> None:
        """Under several workers, sync every SYNC_SECONDS, so that a scrape answered by another
        worker sees this one's figures too. Called at lifespan startup; one process needs no task."""
        if self.directory is not None and self._task is None:
            self.sync()  # at once, too: the figures of a worker that has not synced are not in the sums
            self._task = asyncio.create_task(self._sync_periodically(), name="asgi_chat metrics sync")

    async def stop(self) -> None:
        """At lifespan shutdown: stop syncing, write the last figures, and withdraw this worker's
        gauges from the sums (its counters stay: totals never go backwards)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._instruments is not None and self.directory is not None:
            self.sync()
            multiprocess.mark_process_dead(os.getpid(), self.directory)

    async def _sync_periodically(self) -> None:
        while True:
            await asyncio.sleep(SYNC_SECONDS)
            self.sync()


def multiprocess_directory(environ: Mapping[str, str] = os.environ) -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` if set (several workers), else None (one process).

    Raises ValueError, reported as a setting the app cannot use, when it is not a directory.
    """
    directory = environ.get(MULTIPROC_DIR)
    if directory is None:
        return None
    if not os.path.isdir(directory):
        raise ValueError(f"{MULTIPROC_DIR}={directory!r}: expected an existing directory, emptied before each start")
    return directory


# prometheus_client names each worker's files <kind>_<pid>.db; a live gauge's kind is gauge_live<mode>.
_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_workers(directory: str) -> None:
    """Withdraw the gauges of workers that ended without a shutdown (killed, crashed).

    A worker that shuts down withdraws its own (:meth:`Exposition.stop`); one that was killed
    cannot, and its last connection count would stay in the sum until this finds it gone.
    """
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.fullmatch(os.path.basename(path))
        if match is not None and not _running(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        pass
    return True


def multiprocess_metrics(workers: int, environ: MutableMapping[str, str]) -> contextlib.AbstractContextManager[object]:
    """What ``--workers N`` runs within: for N > 1, a fresh, empty ``PROMETHEUS_MULTIPROC_DIR``,
    removed afterwards. It is set in ``environ`` before the workers start, since prometheus_client
    reads it when a worker imports it. A directory the operator has set is used as it is (and
    checked here, where a mistake is a usage error: ValueError).
    """
    if multiprocess_directory(environ) is not None or workers == 1:
        return contextlib.nullcontext()
    return _temporary_directory(environ)


@contextlib.contextmanager
def _temporary_directory(environ: MutableMapping[str, str]) -> Iterator[None]:
    with tempfile.TemporaryDirectory(prefix="asgi_chat-metrics-") as directory:
        environ[MULTIPROC_DIR] = directory
        try:
            yield
        finally:
            del environ[MULTIPROC_DIR]

"""The sizes of a run and the cases (scenario, size, measure) it is made of."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .config import ALL_CPUS, CLIENT_CPU, SCALEOUT_WORKERS, SERVER_CPU


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
    # The fairness scenario (issue 18): an honest client beside attackers, one attack per run.
    fair_seconds: float = 10.0  # the attack's measured window
    fair_attackers: int = 100  # connections from one address (the per-address limit's default)
    fair_procs: int = 2  # attacker processes, fair_attackers split between them
    fair_churners: int = 10  # the presence attack's joiners and leavers
    fair_members: int = 500  # idle members of the honest client's room in the presence attack
    fair_fill_lines: int = 1000  # lines in each filled room (history, resume)
    fair_chars: int = 4000  # characters per filled line and per flooded say (ASGI_CHAT_MAX_TEXT_CHARS)
    fair_resume_rooms: int = 8  # filled rooms each resume attacker joins from offset 0
    fair_rate: float = 18.0  # each attacker's frames per second (the server allows 20, burst 40)
    fair_honest_rate: float = 10.0  # the honest client's says per second
    # The join storm (issue 18): clients joining one room at once, against the tutorial chat's connects.
    joinstorm_clients: int = 1000
    joinstorm_concurrency: int = 50  # connections in flight: until joined (room), until accepted (chat)
    quiet_wait: float = 20.0  # seconds each run may wait for the machine's other work to pause first
    # The identity scenario (issue 19): hellos as guests and with HS256 and RS256 tokens, and a room's fan-out.
    identity_clients: int = 2000  # clients that say hello (each until its welcome), per run
    identity_join_clients: int = 1000  # clients that say hello and join one room (each until its joined)
    identity_concurrency: int = 50  # connections in flight
    # The api scenario (issue 20): HTTP API publishes beside WebSocket says into one room of idle members.
    api_members: int = 100
    api_connections: int = 4  # requests (publish) or says in flight, one per connection
    api_seconds: float = 4.0  # each phase, at most
    api_max_lines: int = 40000  # each phase, at most


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
    fair_seconds=4.0,
    fair_members=200,
    fair_fill_lines=300,
    joinstorm_clients=300,
    identity_clients=1000,
    identity_join_clients=300,
    api_seconds=2.0,
)

SCENARIOS = (
    "fanout", "stalled", "idle", "echo", "rooms", "scaleout", "roomscale", "joinstorm", "fairness", "identity",
    "api",
)  # fmt: skip
# The fairness scenario's runs, one attack each (bench/abuse.py's kinds), and the run without one.
ATTACKS = ("baseline", "history", "history-noread", "resume", "presence", "malformed", "sayflood")


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
    builders: tuple[tuple[str, Callable[[Sizes, tuple[str, ...]], list[Case]]], ...] = (
        ("fanout", _fanout_cases),
        ("stalled", _stalled_cases),
        ("idle", _idle_cases),
        ("echo", _echo_cases),
        ("rooms", _rooms_cases),
        ("roomscale", _roomscale_cases),
        ("scaleout", _scaleout_cases),
        ("joinstorm", _joinstorm_cases),
        ("fairness", _fairness_cases),
        ("identity", _identity_cases),
        ("api", _api_cases),
    )
    return [case for name, build in builders if name in only for case in build(sizes, common)]


def _fanout_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """One sender to each number of receivers."""
    result: list[Case] = []
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
    return result


def _stalled_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """The same fan-out without and with a receiver that never reads."""
    result: list[Case] = []
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
    return result


def _idle_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Idle chat connections: memory and connections opened per second."""
    result: list[Case] = []
    result.append(
        Case(
            f"idle-{sizes.idle_connections}",
            "idle",
            f"{sizes.idle_connections} idle chat connections",
            ("--mode", "idle", "--connections", str(sizes.idle_connections)),
            120,
        )
    )
    return result


def _echo_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Request/response round trips on /ws."""
    result: list[Case] = []
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
    return result


def _rooms_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 11: one room's fan-out, idle members, and members resuming at once."""
    result: list[Case] = []
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
    return result


def _roomscale_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 12: one room on the workers and the Redis store, and the store's append+publish."""
    result: list[Case] = []
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
    return result


def _scaleout_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """The chat on the workers and Redis against one process."""
    result: list[Case] = []
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


def _joinstorm_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 18: N clients join one room as fast as they can, against N connecting to the tutorial chat."""
    n, k = sizes.joinstorm_clients, sizes.joinstorm_concurrency
    return [
        Case(
            f"joinstorm-{n}",
            "joinstorm",
            f"{n} clients join one room, {k} in flight, vs {n} connecting to the tutorial chat",
            ("--mode", "idle", "--connections", str(n), "--concurrency", str(k), "--until-joined", "1",
             "--room", "storm"),
            240,  # the older server's joins announce presence to every member: ~N²/2 frames
            kind="idle",
        )
    ]  # fmt: skip


def _fairness_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 18: the honest client's say round trips, alone and beside each attack."""
    result: list[Case] = []
    for attack in ATTACKS:
        who = {"baseline": "no attackers", "presence": f"{sizes.fair_churners} attackers"}
        result.append(
            Case(
                f"fair-{attack}",
                "fairness",
                f"An honest client's says, {who.get(attack, f'{sizes.fair_attackers} attackers')}: {attack}",
                (),
                sizes.fair_seconds + 150,
            )
        )
    return result


def _identity_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 19: hellos/s as guests and with tokens (to the welcome; to a room's joined), and a room's
    fan-out with the identity fields in every msg (against --before's checkout)."""
    n, joiners, k, m = (
        sizes.identity_clients,
        sizes.identity_join_clients,
        sizes.identity_concurrency,
        sizes.rooms_members,
    )
    flight = ("--concurrency", str(k), "--until-joined", "1")
    return [
        Case(
            f"identity-hello-{n}",
            "identity",
            f"{n} clients say hello, {k} in flight, each until its welcome: guests, HS256 and RS256 tokens",
            ("--mode", "idle", "--connections", str(n), *flight, "--stop-at", "welcome"),
            120,
            kind="idle",
        ),
        Case(
            f"identity-join-{joiners}",
            "identity",
            f"{joiners} clients say hello and join one room, {k} in flight, each until its joined",
            ("--mode", "idle", "--connections", str(joiners), *flight, "--room", "identity"),
            180,
            kind="idle",
        ),
        Case(
            f"identity-fanout-{m}",
            "identity",
            f"One room of {m} members (guests), one sender, {sizes.fanout_size} B lines, window {sizes.window}: "
            "msg frames with uid and guest",
            (
                "--mode", "fanout", "--receivers", str(m), "--duration", str(sizes.fanout_seconds),
                "--size", str(sizes.fanout_size), "--room", "bench", *common,
            ),
            sizes.fanout_seconds + 150,
            kind="fanout",
        ),
    ]  # fmt: skip


def _api_cases(sizes: Sizes, common: tuple[str, ...]) -> list[Case]:
    """Issue 20: lines published over the HTTP API beside lines said on /chat/ws, one room of idle members."""
    n, k = sizes.api_members, sizes.api_connections
    return [
        Case(
            f"api-{n}",
            "api",
            f"One room of {n} idle members: HTTP API publishes vs WebSocket says, {k} in flight, "
            f"{sizes.fanout_size} B lines",
            (),
            2 * sizes.api_seconds + 240,
        )
    ]


def rounds(case: Case, sizes: Sizes) -> int:
    """Runs of each server per repetition: 1, or sizes.scaleout_pairs for scale-out's A and B."""
    return sizes.scaleout_pairs if case.measure == "scaleout" else 1


def case_deflates(case: Case, deflates: Sequence[bool]) -> list[bool]:
    """Scale-out and rooms run without deflate (the question is the broker, the room), unless only
    `--deflate on` was asked."""
    if case.scenario in ("joinstorm", "fairness", "identity", "api"):
        return [False]  # what they measure is the room protocol's work (and the fairness clients offer none)
    if case.scenario in ("scaleout", "rooms", "roomscale") and False in deflates:
        return [False]
    return list(deflates)

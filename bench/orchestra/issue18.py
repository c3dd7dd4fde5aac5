"""Issue 18's figures, targets and report sections: the join storm and the fairness scenario.

Both show this checkout's asgi_chat ("now") and, when ``--before DIR`` ran, that checkout's
("before") side by side, from the same run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from .config import FAIRNESS, JOINSTORM, before_name
from .figures import CPU_METRICS, Metric, _client, _record, fmt, fmt_ratio, median, ratio
from .scenarios import ATTACKS, Sizes
from .targets import Target

HONEST_P99_MS = 100.0  # the target for the honest client's say round trip beside the attackers
JOIN_RATIO = 0.9  # the room's joins/s against the tutorial chat's connections/s, at least
Getter = Callable[[dict[str, Any]], float | None]


def runs_of(records: Sequence[dict[str, Any]], server: str, case: str) -> list[dict[str, Any]]:
    return [r for r in records if r["server"] == server and r["case"] == case]


def med_of(runs: Sequence[dict[str, Any]], get: Getter) -> float | None:
    return median([get(r) for r in runs])


def groups(records: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The servers measured, by label: "now" (this checkout), and "before" if --before ran."""
    seen = {r["server"] for r in records}
    out = {"now": tuple(names)}
    if any(before_name(n) in seen for n in names):
        out["before"] = tuple(before_name(n) for n in names)
    return out


# --- the join storm -----------------------------------------------------------------------------


def _status(key: str) -> Getter:
    def get(record: dict[str, Any]) -> float | None:
        value = record.get("status", {}).get(key)
        return None if value is None else float(value)

    return get


def presence_bound(record: dict[str, Any]) -> float | None:
    """members x (storm seconds / window + 2): one presence frame per member per window, plus slack."""
    c, window = record.get("client", {}), record.get("presence_window_s")
    members, seconds = c.get("joined"), c.get("connect_s")
    if not members or seconds is None or not window:
        return None
    return float(members) * (float(seconds) / float(window) + 2)


JOINSTORM_METRICS = (
    Metric("clients ready (room: joined; chat: accepted)", "/s", _client("connections_per_s")),
    Metric("seconds from the first connect to the last ready", "s", _client("connect_s"), None, "{:.2f}"),
    Metric("presence frames the members received, storm and after", "", _status("presence_frames"), None),
    Metric("bound: members x (seconds / window + 2)", "", presence_bound, None),
    Metric("presence window (0.25 assumed where the server has none)", "s", _record("presence_window_s"), None,
           "{:.2f}"),
    Metric("server memory per connection", "KiB", _record("mem_per_conn_kib"), None, "{:.1f}"),
    *CPU_METRICS,
)  # fmt: skip
JOINS = JOINSTORM_METRICS[0]
PRESENCE, BOUND = JOINSTORM_METRICS[2], JOINSTORM_METRICS[3]


def joinstorm_intro(sizes: Sizes) -> str:
    return (
        f"{sizes.joinstorm_clients} clients connect to one asgi_chat (the options and limits of the runs "
        f"above, fresh for each run), at most {sizes.joinstorm_concurrency} in flight, and stay connected: on "
        "`/chat/ws` each says `hello` and joins room `storm`, in flight until its `joined` (wsload `--proto v1 "
        "--until-joined 1`); on the same server's tutorial chat (`/ws/{id}`) each is in flight until its "
        "handshake is accepted (that chat sends nothing on a join). Rate: clients / seconds from the first "
        "connect to the last one ready. Every `presence` frame the room's members receive is counted, whatever "
        "its shape, during the storm and until the server's CPU has settled after it; the bound is members x "
        "(storm seconds / presence window + 2), the window being the server's `presence_interval` setting "
        f"(0.25 s where it has none). A warm-up round of {sizes.idle_warmup} connections comes first. The "
        "client is wsload (C); its CPU is shown to say whether it was the limit. Medians of "
        f"{sizes.reps} runs."
    )


def joinstorm_section(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    runs = [r for r in records if r["scenario"] == "joinstorm"]
    if not runs:
        return []
    key, sides = runs[0]["case"], groups(records, [s.name for s in JOINSTORM])
    head = " | ".join(f"{label}: tutorial chat | {label}: room | {label}: room / chat" for label in sides)
    lines = [
        "### Join storm: clients joining one room at once (issue 18)",
        "",
        joinstorm_intro(sizes),
        "",
        f"| figure | {head} |",
        "| --- |" + " ---: | ---: | ---: |" * len(sides),
    ]
    for metric in JOINSTORM_METRICS:
        cells = []
        for chat, room in sides.values():
            c, r = (med_of(runs_of(records, name, key), metric.get) for name in (chat, room))
            cells += [fmt(c, metric.fmt), fmt(r, metric.fmt), fmt_ratio(ratio(r, c)) if metric.higher_is_better else ""]
        unit = f" ({metric.unit})" if metric.unit else ""
        lines.append(f"| {metric.name}{unit} | " + " | ".join(cells) + " |")
    return lines


def joinstorm_targets(records: Sequence[dict[str, Any]]) -> list[Target]:
    runs = [r for r in records if r["scenario"] == "joinstorm"]
    if not runs:
        return []
    key, sides = runs[0]["case"], groups(records, [s.name for s in JOINSTORM])
    rates = {label: [med_of(runs_of(records, n, key), JOINS.get) for n in names] for label, names in sides.items()}
    storms = {label: runs_of(records, names[1], key) for label, names in sides.items()}
    (chat, room), before = rates["now"], rates.get("before")
    rt = ratio(room, chat)
    return [
        Target(
            "Join storm: the room's joins/s vs the tutorial chat's connections/s, same server",
            False,
            f"{fmt_ratio(rt)} ({fmt(room)} vs {fmt(chat)})",
            f"≥ {JOIN_RATIO}x",
            None if rt is None else rt >= JOIN_RATIO,
            f"before: {fmt_ratio(ratio(before[1], before[0]))} ({fmt(before[1])} vs {fmt(before[0])})"
            if before
            else "",
        ),
        presence_target(storms["now"], storms.get("before")),
    ]


def presence_target(now: Sequence[dict[str, Any]], before: Sequence[dict[str, Any]] | None) -> Target:
    def summary(runs: Sequence[dict[str, Any]]) -> str:
        return f"{fmt(med_of(runs, PRESENCE.get))} frames, bound {fmt(med_of(runs, BOUND.get))}"

    checks = [(PRESENCE.get(r), BOUND.get(r)) for r in now]
    ok = bool(checks) and all(f is not None and b is not None and f <= b for f, b in checks)
    return Target(
        "Join storm: presence frames ≤ members x (seconds / window + 2)",
        False,
        f"{summary(now)} (medians of {len(now)}; every run within: {'yes' if ok else 'no'})",
        "every run within",
        ok if checks else None,
        f"before: {summary(before)}" if before else "",
    )


# --- fairness ------------------------------------------------------------------------------------


def attackers_of(sizes: Sizes, attack: str) -> str:
    if attack == "baseline":
        return "none"
    if attack == "presence":
        return f"{sizes.fair_churners} (+ {sizes.fair_members} idle members)"
    return str(sizes.fair_attackers)


def honest_figures(runs: Sequence[dict[str, Any]]) -> tuple[str, str]:
    """ "p50 / p99 / max" (medians of the runs' p50 and p99, the largest round trip of any run), and
    what became of the honest client: closes, lines never acknowledged, runs that failed."""
    if not runs:
        return "n/a", "n/a"
    p50, p99 = med_of(runs, _client("p50_ms")), med_of(runs, _client("p99_ms"))
    worst = max((m for r in runs if (m := _client("max_ms")(r)) is not None), default=None)
    closed = [str(r["client"].get("close_code")) for r in runs if r.get("client", {}).get("closed")]
    unacked = sum(int(r.get("client", {}).get("unacked") or 0) for r in runs)
    failed = sum(not r["ok"] for r in runs)
    fate = f"closed in {len(closed)} of {len(runs)} ({', '.join(closed)})" if closed else "never closed"
    fate += f", {unacked} unacked" + (f", {failed} run(s) failed" if failed else "")
    return f"{fmt(p50, '{:.1f}')} / {fmt(p99, '{:.1f}')} / {fmt(worst, '{:.1f}')}", fate


def fairness_intro(sizes: Sizes) -> str:
    return (
        "One asgi_chat with its **default limits** (20 frames/s per connection, burst 40, 100 connections per "
        "address), fresh for each run, on CPU 0. The honest client (`bench/honest.py`, the `websockets` "
        f"library, from 127.0.0.1) joins `lobby` and says a line every {1 / sizes.fair_honest_rate:g} s, each "
        "with its own `id`, on schedule whatever the acks; its round trip is from the send to the `ack` with "
        "that id. Beside it, one attack per run (`bench/abuse.py`, all from 127.0.1.2: one address), each "
        f"connection at {sizes.fair_rate:g} frames/s, inside the documented rate; an attacker whose connection "
        "the server closes connects again after 0.5 s. **history**: pages of 100 lines of "
        f"{sizes.fair_chars} characters from a room filled with {sizes.fair_fill_lines}, read; "
        "**history-noread**: the same requests, never read (4 KiB receive buffer); **resume**: each attacker "
        f"joins {sizes.fair_resume_rooms} filled rooms `since` offset 0 of their epochs, never reading; "
        f"**presence**: {sizes.fair_churners} attackers join and leave `lobby` in turn, where "
        f"{sizes.fair_members} idle members (from 127.0.1.3 on, 100 per address) and the honest client are; "
        "**malformed**: frames that are not JSON, not objects, of unknown types or missing fields; "
        f"**sayflood**: says of {sizes.fair_chars} astral characters (16 KB), alternately into `lobby` and a "
        f"room of their own. The window is the {sizes.fair_seconds:g} s after the attackers start; a line not "
        "acked by the end counts with the time until then. Every client runs on CPU 1, the honest one in a "
        "process of its own at niceness -5, so that it measures the server, not a wait for its CPU. p50 and "
        f"p99 are medians of {sizes.reps} runs, max the largest of any run. Target: p99 ≤ {HONEST_P99_MS:g} ms "
        "(the median of the runs) beside every attack, never closed."
    )


def fairness_section(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    if not any(r["scenario"] == "fairness" for r in records):
        return []
    sides = groups(records, [s.name for s in FAIRNESS])
    head = " | ".join(f"{label}: p50 / p99 / max (ms) | {label}: honest client" for label in sides)
    lines = [
        f"### Fairness: an honest client beside {sizes.fair_attackers} attackers (issue 18)",
        "",
        fairness_intro(sizes),
        "",
        f"| attack | attackers | {head} |",
        "| --- | --- |" + " ---: | --- |" * len(sides),
    ]
    for attack in ATTACKS:
        cells = [
            cell for (name,) in sides.values() for cell in honest_figures(runs_of(records, name, f"fair-{attack}"))
        ]
        lines.append(f"| {attack} | {attackers_of(sizes, attack)} | " + " | ".join(cells) + " |")
    return [*lines, "", *attackers_table(records, sides)]


def top(counter: Counter[str], n: int = 4) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in counter.most_common(n)) or "-"


def attackers_row(attack: str, label: str, runs: Sequence[dict[str, Any]]) -> str:
    att = [r["attackers"] for r in runs if r.get("attackers")]
    total: dict[str, Counter[str]] = {k: Counter() for k in ("frames", "errors", "closes", "refused")}
    for a in att:
        for k, counter in total.items():
            counter.update(a.get(k, {}))
    sent = median([float(a["sent_per_s"]) for a in att])
    connects = sum(int(a.get("connects") or 0) for a in att)
    peak = med_of(runs, lambda r: None if r.get("server_peak_rss_kib") is None else r["server_peak_rss_kib"] / 1024)
    cpu = [fmt(med_of(runs, _record(k))) for k in ("server_cpu_pct", "attackers_cpu_pct", "other_cpu_pct")]
    return (
        f"| {attack} | {label} | {fmt(sent)} | {top(total['frames'])} | {top(total['errors'])} | "
        f"{top(total['closes'])} | {top(total['refused'])} | {connects:,} | {' | '.join(cpu)} | {fmt(peak)} |"
    )


def attackers_table(records: Sequence[dict[str, Any]], sides: dict[str, tuple[str, ...]]) -> list[str]:
    """What the attackers sent and got back, and what the server spent, per attack and server."""
    lines = [
        "The attackers' side: frames they sent per second (all of them, medians), and over all runs together "
        "the frames they received by type, the `error` codes among them, the close codes of their connections "
        "(eof: closed without a close frame), refused handshakes, and connections opened (one per attacker "
        "per run, the rest reconnects); then medians of the server's CPU, the attacking clients' CPU (idle "
        "members included), other processes' CPU over the window, and the server's peak RSS.",
        "",
        "| attack | server | sent (/s) | received, by type | error codes | closes | refused | connections "
        "| server CPU (%) | attackers' CPU (%) | others' CPU (%) | server peak RSS (MiB) |",
        "| --- | --- | ---: | --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for attack in ATTACKS[1:]:
        for label, (name,) in sides.items():
            runs = runs_of(records, name, f"fair-{attack}")
            if runs:
                lines.append(attackers_row(attack, label, runs))
    return [*lines, *members_lines(records, sides)]


def members_lines(records: Sequence[dict[str, Any]], sides: dict[str, tuple[str, ...]]) -> list[str]:
    """The presence attack as its idle members saw it: the presence frames each got in the window."""
    parts = []
    for label, (name,) in sides.items():
        runs = [r for r in runs_of(records, name, "fair-presence") if r.get("members")]
        count = med_of(runs, lambda r: float(r["members"]["presence_during"]))
        still = med_of(runs, lambda r: float(r["members"]["open"]))
        if count is not None:
            parts.append(f"{label} {fmt(count)} presence frames in all ({fmt(still)} members still open at the end)")
    if not parts:
        return []
    return ["", "The presence attack's idle members received, during the window (medians): " + "; ".join(parts) + "."]


def fairness_targets(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[Target]:
    if not any(r["scenario"] == "fairness" for r in records):
        return []
    sides = groups(records, [s.name for s in FAIRNESS])
    out = []
    for attack in ATTACKS[1:]:
        runs = runs_of(records, sides["now"][0], f"fair-{attack}")
        if not runs:
            continue
        p99 = med_of(runs, _client("p99_ms"))
        worst = max((p for r in runs if (p := _client("p99_ms")(r)) is not None), default=None)
        closed = any(r.get("client", {}).get("closed") for r in runs)
        ok = all(r["ok"] for r in runs) and not closed and p99 is not None and p99 <= HONEST_P99_MS
        figures, fate = honest_figures(runs)
        before = ""
        if "before" in sides:
            before = "before: p50 / p99 / max {} ms, {}".format(
                *honest_figures(runs_of(records, sides["before"][0], f"fair-{attack}"))
            )
        out.append(
            Target(
                f"Fairness, {attack}: the honest client's say round trip beside {attackers_of(sizes, attack)} "
                "attackers",
                False,
                f"p50 / p99 / max {figures} ms, {fate}; worst p99 of {len(runs)} runs {fmt(worst, '{:.1f}')} ms",
                f"p99 ≤ {HONEST_P99_MS:g} ms (median of the runs), never closed",
                ok,
                before,
            )
        )
    return out

"""Issue 19's figures, target and report section: hellos with tokens against guests, and a room's
fan-out with the identity fields against the code before them (``--before``), from the same run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .config import before_name
from .figures import CPU_METRICS, METRICS, Metric, _client, _record, fmt, fmt_ratio, median, ratio
from .identity import FANOUT_NAME, KINDS, NAMES, RSA_BITS, TITLES
from .scenarios import Sizes
from .targets import Target

FANOUT_RATIO = 0.95  # the target: not more than 5 % fewer deliveries/s than before
Getter = Callable[[dict[str, Any]], float | None]


def _cpu_per_client(record: dict[str, Any]) -> float | None:
    """The server's CPU time over the measured phase per client made ready, in µs."""
    cpu, ready = record.get("server_cpu_s"), record.get("client", {}).get("opened")
    return None if cpu is None or not ready else 1e6 * float(cpu) / float(ready)


def hello_metrics(rate: str) -> tuple[Metric, ...]:
    return (
        Metric(rate, "/s", _client("connections_per_s")),
        Metric("seconds from the first connect to the last ready", "s", _client("connect_s"), None, "{:.2f}"),
        Metric("server CPU per client", "µs", _cpu_per_client, False, "{:,.0f}"),
        Metric("server memory per connection", "KiB", _record("mem_per_conn_kib"), False, "{:.1f}"),
        *CPU_METRICS,
    )


def runs_of(records: Sequence[dict[str, Any]], server: str, case: str) -> list[dict[str, Any]]:
    return [r for r in records if r["server"] == server and r["case"] == case and r["ok"]]


def med_of(records: Sequence[dict[str, Any]], server: str, case: str, get: Getter) -> float | None:
    return median([get(r) for r in runs_of(records, server, case)])


def paired(records: Sequence[dict[str, Any]], a: str, b: str, case: str, get: Getter) -> list[float]:
    """a / b in each repetition: the two ran side by side, so each ratio saw the same machine."""
    out = []
    for rep in sorted({r["rep"] for r in records if r["case"] == case}):
        va = median([get(r) for r in runs_of(records, a, case) if r["rep"] == rep])
        vb = median([get(r) for r in runs_of(records, b, case) if r["rep"] == rep])
        if (q := ratio(va, vb)) is not None:
            out.append(q)
    return out


def fmt_pairs(values: Sequence[float]) -> str:
    return ", ".join(fmt_ratio(v) for v in values) or "n/a"


def identity_cases(records: Sequence[dict[str, Any]], prefix: str) -> list[str]:
    return sorted({r["case"] for r in records if r["scenario"] == "identity" and r["case"].startswith(prefix)})


def intro(sizes: Sizes) -> str:
    return (
        "One asgi_chat (the options and limits of the runs above, `ASGI_CHAT_SECRET` set, and its output budgets "
        "off: `ASGI_CHAT_OUTPUT_BYTES_PER_SECOND=0 ASGI_CHAT_ADDRESS_OUTPUT_BYTES_PER_SECOND=0`, since every client "
        "comes from 127.0.0.1 and the address's budget would pace the joins' member lists), fresh for each run, "
        "three ways, alternating in each repetition: **guests** (each client says "
        '`{"type":"hello","user":NAME}`; the server picks its uid and signs it a guest token, HS256 with '
        "`ASGI_CHAT_SECRET`), **HS256** (server started with `ASGI_CHAT_JWT_SECRET`, 64 bytes; each client says "
        '`{"type":"hello","token":JWT}` with a token of its own) and **RS256** (server started with '
        f"`ASGI_CHAT_JWT_PUBLIC_KEY_FILE`, the PEM of a {RSA_BITS}-bit RSA public key). The bench makes the keys "
        "and signs every token before the first run (PyJWT, claims `sub`, `name`, `exp` a year ahead), one hello "
        "per line of a file that wsload sends as is (`--hello-file`), so the client signs nothing while it is "
        f"measured. **identity-hello**: {sizes.identity_clients} clients, at most {sizes.identity_concurrency} in "
        "flight, each until its `welcome` (handshake, hello, welcome: no join), then held open; "
        f"**identity-join**: {sizes.identity_join_clients} clients, each until its `joined` of one room "
        "(`identity`: hello and join sent together; each join also announces presence and lists the members). "
        "Rate: clients / seconds from the first connect to the last one ready; server CPU per client: the "
        "server's CPU time over that phase / clients. A warm-up round of "
        f"{sizes.idle_warmup} clients (other tokens) comes first. The client is wsload (C); its CPU is shown "
        f"beside the server's. Medians of {sizes.reps} runs; the per-repetition ratios are of runs side by side."
    )


def hello_table(records: Sequence[dict[str, Any]]) -> list[str]:
    names = [NAMES[k] for k in KINDS]
    before = before_name(NAMES["guest"])
    with_before = any(r["server"] == before for r in records)
    head = " | ".join(TITLES[k] for k in KINDS) + " | HS256 / guests | RS256 / guests"
    head += " | before: guests | guests now / before" if with_before else ""
    lines = [f"| case | figure | {head} |", "| --- | --- |" + " ---: |" * (5 + 2 * with_before)]
    for case in identity_cases(records, "identity-hello") + identity_cases(records, "identity-join"):
        rate = "hellos (to the welcome)" if case.startswith("identity-hello") else "clients joined"
        for m in hello_metrics(rate):
            g, h, r = (med_of(records, n, case, m.get) for n in names)
            cells = [fmt(v, m.fmt) for v in (g, h, r)]
            cells += [fmt_ratio(ratio(h, g)), fmt_ratio(ratio(r, g))] if m.higher_is_better is not None else ["", ""]
            if with_before:
                b = med_of(records, before, case, m.get)
                cells += [fmt(b, m.fmt), fmt_ratio(ratio(g, b)) if m.higher_is_better is not None else ""]
            lines.append(f"| {case} | {m.name} ({m.unit}) | " + " | ".join(cells) + " |")
        metrics = hello_metrics(rate)
        for m in (metrics[0], metrics[2]):  # the rate, and the server's CPU per client
            pairs = [fmt_pairs(paired(records, n, names[0], case, m.get)) for n in names[1:]]
            row = f"| {case} | {m.name}: ratio in each repetition | | | | {pairs[0]} | {pairs[1]} |"
            if with_before:  # under "before: guests" nothing, under "guests now / before" the ratios
                row += f" | {fmt_pairs(paired(records, names[0], before, case, m.get))} |"
            lines.append(row)
    return lines


def fanout_lines(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    cases = identity_cases(records, "identity-fanout")
    if not cases:
        return []
    before = before_name(FANOUT_NAME)
    with_before = any(r["server"] == before for r in records)
    lines = [
        "",
        f"**identity-fanout**: the room fan-out of the rooms scenario (one room `bench` of {sizes.rooms_members} "
        f"members, all guests, one sender, {sizes.fanout_size} B lines, window {sizes.window}, "
        f"{sizes.fanout_seconds:g} s, permessage-deflate not offered): every `msg` now carries the sender's `uid` "
        '(`guest:` and 16 characters) and `"guest":true` beside `user`, ~45 bytes more per copy'
        + (", against the same clients on the code before identity (`--before`), alternating." if with_before else
           "; run with `--before DIR` (a checkout of the code before identity) to compare.")
        + f" Target: deliveries/s at least {FANOUT_RATIO}x before's.",
        "",
        "| case | figure | now | " + ("before | now / before |" if with_before else ""),
        "| --- | --- | ---: |" + (" ---: | ---: |" if with_before else ""),
    ]  # fmt: skip
    for case in cases:
        for m in METRICS["fanout"]:
            now = med_of(records, FANOUT_NAME, case, m.get)
            row = f"| {case} | {m.name} ({m.unit}) | {fmt(now, m.fmt)} |"
            if with_before:
                b = med_of(records, before, case, m.get)
                row += f" {fmt(b, m.fmt)} | {fmt_ratio(ratio(now, b)) if m.higher_is_better is not None else ''} |"
            lines.append(row)
        if with_before:
            get = METRICS["fanout"][0].get
            lines.append(
                f"| {case} | deliveries: ratio in each repetition | | | "
                f"{fmt_pairs(paired(records, FANOUT_NAME, before, case, get))} |"
            )
    return lines


def identity_section(records: Sequence[dict[str, Any]], sizes: Sizes) -> list[str]:
    if not any(r["scenario"] == "identity" for r in records):
        return []
    lines = ["### Identity: hellos with a token against guests, and a room's fan-out (issue 19)", "", intro(sizes)]
    if identity_cases(records, "identity-hello") or identity_cases(records, "identity-join"):
        lines += ["", *hello_table(records)]
    return lines + fanout_lines(records, sizes)


def identity_targets(records: Sequence[dict[str, Any]]) -> list[Target]:
    """The issue's one number: the room's fan-out with the identity fields ≥ 0.95x before's."""
    out: list[Target] = []
    before = before_name(FANOUT_NAME)
    get = METRICS["fanout"][0].get
    for case in identity_cases(records, "identity-fanout"):
        if not runs_of(records, before, case):
            continue
        now, then = med_of(records, FANOUT_NAME, case, get), med_of(records, before, case, get)
        q = ratio(now, then)
        pairs = paired(records, FANOUT_NAME, before, case, get)
        out.append(
            Target(
                f"Room fan-out to {case.rsplit('-', 1)[1]} with uid and guest in every msg vs the code before identity",
                False,
                f"{fmt_ratio(q)} ({fmt(now)} vs {fmt(then)} deliveries/s)",
                f"≥ {FANOUT_RATIO}x",
                None if q is None else q >= FANOUT_RATIO,
                f"each repetition: {fmt_pairs(pairs)}",
            )
        )
    return out

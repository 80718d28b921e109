"""Figures out of raw samples, and the plain-text table the benchmark prints."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version

from bench.drafts import DraftTiming
from bench.loadgen import LoadResult

ACK_RATIO_AIM = 1.5  # our ack p99 may be at most this multiple of the bare Bolt app's
ACK_P99_AIM_MS = 100.0
DRAFT_P95_AIM_MS = 500.0  # excluding LLM time
# Above this share of the cores taken by other processes during a phase, its figures say
# more about the neighbours than about us.
OTHERS_CPU_LIMIT = 0.10
IDLE_GAP = 1.0  # s between mentions below which the worker never idles long


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), interpolating between the two nearest ranks."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class LoadCpu:
    """CPU use during one load: robust where latencies are at the mercy of neighbours."""

    others_share: float  # share of all cores other processes used meanwhile
    server_ms: float  # CPU-milliseconds per request of the server process itself
    postgres_ms: float  # CPU-milliseconds per request of our Postgres (0 for bare Bolt)


@dataclass(frozen=True)
class AckSummary:
    name: str
    sent: int
    ok: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    throughput: float  # 200s per second, over the whole run including its tail
    lag_p99_ms: float  # how late the generator itself sent, for judging the figures
    cpu: LoadCpu

    @property
    def others_cpu(self) -> float:
        return self.cpu.others_share

    @classmethod
    def of(cls, name: str, result: LoadResult, cpu: LoadCpu) -> AckSummary:
        latencies = [s.latency * 1000 for s in result.samples]
        ok = sum(1 for s in result.samples if s.status == 200)
        return cls(
            name=name,
            sent=len(result.samples),
            ok=ok,
            errors=len(result.samples) - ok,
            p50_ms=percentile(latencies, 50),
            p95_ms=percentile(latencies, 95),
            p99_ms=percentile(latencies, 99),
            max_ms=max(latencies, default=math.nan),
            throughput=ok / result.duration if result.duration > 0 else math.nan,
            lag_p99_ms=percentile([s.lag * 1000 for s in result.samples], 99),
            cpu=cpu,
        )


@dataclass(frozen=True)
class DraftSummary:
    timings: Sequence[DraftTiming]
    gap: float  # idle seconds between mentions
    others_cpu: float

    @property
    def p95_without_llm_ms(self) -> float:
        return percentile([t.without_llm * 1000 for t in self.timings], 95)


def status_counts(result: LoadResult) -> str:
    counts: dict[int, int] = {}
    for sample in result.samples:
        counts[sample.status] = counts.get(sample.status, 0) + 1
    return ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(counts.items()))


def machine_facts() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({platform.system()} {platform.machine()},"
        f" load avg at start {load}), "
        f"Python {platform.python_version()}, aiohttp {version('aiohttp')}, "
        f"slack_bolt {version('slack_bolt')}, dramatiq {version('dramatiq')}"
    )


def versions() -> str:
    """The versions of what the Slack benchmarks measure."""
    return (
        f"aiohttp {version('aiohttp')}, slack_bolt {version('slack_bolt')},"
        f" dramatiq {version('dramatiq')}"
    )


def ack_lines(ours: AckSummary, bare: AckSummary, rate: float, seconds: float) -> list[str]:
    head = (
        f"{'target':<16}{'sent':>6}{'200s':>6}{'errors':>8}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'max':>8}{'got/s':>8}{'gen lag p99':>13}{'others CPU':>12}"
    )
    lines = [
        f"1+2. Ack of POST /slack/events, open loop {rate:g}/s for {seconds:g} s"
        " (latency in ms, from the scheduled send)",
        head,
        "-" * len(head),
    ]
    for row in (ours, bare):
        lines.append(
            f"{row.name:<16}{row.sent:>6}{row.ok:>6}{row.errors:>8}{row.p50_ms:>8.1f}"
            f"{row.p95_ms:>8.1f}{row.p99_ms:>8.1f}{row.max_ms:>8.1f}{row.throughput:>8.1f}"
            f"{row.lag_p99_ms:>13.1f}{row.others_cpu:>12.0%}"
        )
    lines.append(f"p99 ratio chatops / bare Bolt: {ours.p99_ms / bare.p99_ms:.2f}x")
    lines.append(
        f"CPU per request: chatops serve {ours.cpu.server_ms:.2f} ms"
        f" + its Postgres {ours.cpu.postgres_ms:.2f} ms; bare Bolt app {bare.cpu.server_ms:.2f} ms"
    )
    return lines


def draft_lines(drafts: DraftSummary) -> list[str]:
    timings = drafts.timings
    stages: list[tuple[str, list[float]]] = [
        ("post -> listener's 200", [t.ack for t in timings]),
        ("200 -> worker starts the run", [t.pickup for t in timings]),
        ("run start -> placeholder posted", [t.to_placeholder for t in timings]),
        ("placeholder -> answer, less LLM", [t.own_after for t in timings]),
        ("LLM calls (emulator, instant)", [t.llm for t in timings]),
        ("total", [t.total for t in timings]),
        ("total excluding LLM", [t.without_llm for t in timings]),
    ]
    head = f"{'stage':<34}{'p50':>8}{'p95':>8}{'max':>8}"
    lines = [
        f"3. Mention-to-draft, {len(timings)} mentions one at a time, {drafts.gap:g} s idle"
        " between (ms; stages add up per mention, their percentiles need not)",
        head,
        "-" * len(head),
    ]
    for label, seconds in stages:
        ms = [s * 1000 for s in seconds]
        lines.append(
            f"{label:<34}{percentile(ms, 50):>8.1f}{percentile(ms, 95):>8.1f}{max(ms):>8.1f}"
        )
    share = sum(t.llm for t in timings) / sum(t.total for t in timings)
    lines.append(f"LLM share of total time: {share:.1%}")
    lines.append(f"other processes' share of the cores meanwhile: {drafts.others_cpu:.0%}")
    if drafts.gap < IDLE_GAP:
        # Back to back, the worker's queue consumer never idles long enough to back off
        # its polling, which a bot that is mostly idle does between real questions.
        lines.append(
            "(back to back: the worker never sits idle; --draft-gap 2 shows a mention"
            " reaching an idle bot)"
        )
    return lines


def aims(ours: AckSummary, bare: AckSummary, drafts: DraftSummary) -> list[tuple[bool, str]]:
    """Each aim of the Slack intake benchmark: met or not, and the line that says so."""
    limit = ACK_RATIO_AIM * bare.p99_ms
    draft_p95 = drafts.p95_without_llm_ms
    ack_others = max(ours.others_cpu, bare.others_cpu)
    return [
        (
            ours.p99_ms <= limit,
            f"ack p99 no worse than {ACK_RATIO_AIM:g}x bare Bolt's:"
            f" {ours.p99_ms:.1f} ms vs limit {limit:.1f} ms ({ours.p99_ms / bare.p99_ms:.2f}x)"
            + _caveat(ack_others),
        ),
        (
            ours.p99_ms < ACK_P99_AIM_MS and ours.errors == 0,
            f"ack p99 under {ACK_P99_AIM_MS:g} ms, no errors:"
            f" {ours.p99_ms:.1f} ms, {ours.errors} errors" + _caveat(ours.others_cpu),
        ),
        (
            draft_p95 < DRAFT_P95_AIM_MS,
            f"mention-to-draft p95 excluding LLM under {DRAFT_P95_AIM_MS:g} ms: {draft_p95:.1f} ms"
            + _caveat(drafts.others_cpu),
        ),
    ]


def _caveat(others_cpu: float) -> str:
    if others_cpu <= OTHERS_CPU_LIMIT:
        return ""
    return f"  [unreliable: other processes took {others_cpu:.0%} of the cores]"

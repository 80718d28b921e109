"""Slack intake benchmark: how fast `chatops serve` acks events, and how fast a mention
becomes a draft, on this machine against local emulators.

    .venv/bin/python bench/slack_intake.py [--rate 100] [--seconds 10] [--drafts 50]

Runs, in order: mention-to-draft (worker running), then with the worker stopped, the ack
load against `chatops serve` and against a bare Bolt app. Prints a table with PASS/MISS
per aim and writes it to bench/results/slack_intake.txt; checks that every event
acknowledged is stored. `--smoke`: a second of load and three mentions. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType

import psycopg

STARTED = time.monotonic()  # before the product's imports, which take seconds themselves

REPO = Path(__file__).resolve().parents[1]
# Run as a script, Python puts bench/ on the path; the bench, tests and product
# packages are imported from the repository root.
sys.path.insert(0, str(REPO))

from bench import cpu  # noqa: E402
from bench.drafts import DraftTiming, measure_drafts, warm_up  # noqa: E402
from bench.environment import BenchEnv, bench_environment  # noqa: E402
from bench.loadgen import LoadPlan, LoadResult, run_in_child  # noqa: E402
from bench.mentions import mention_plan  # noqa: E402
from bench.report import (  # noqa: E402
    AckSummary,
    DraftSummary,
    LoadCpu,
    ack_lines,
    aims,
    draft_lines,
    status_counts,
    versions,
)
from bench.script import Report, parser  # noqa: E402

ACK_WARMUP = 10  # requests sent one by one before each measured round, not counted
ROUNDS = 5  # alternating rounds of ack load per target
DRAFT_WARMUP = 3  # mentions answered before the measured ones, not counted
SMOKE = {
    "rate": 50.0,
    "seconds": 1.0,
    "rounds": 1,
    "drafts": 3,
    "ack_warmup": 3,
    "draft_warmup": 1,
}


def parse_args() -> argparse.Namespace:
    made = parser("Slack intake benchmark")
    made.add_argument("--rate", type=float, default=100.0, help="events/s offered (100)")
    made.add_argument("--seconds", type=float, default=10.0, help="length of each load (10)")
    made.add_argument("--drafts", type=int, default=50, help="mentions to time (50)")
    made.add_argument(
        "--draft-gap", type=float, default=0.0, help="idle seconds between mentions (0)"
    )
    made.add_argument("--dump-samples", type=Path, help="also write every raw sample as JSON")
    args = made.parse_args()
    args.ack_warmup, args.draft_warmup, args.rounds = ACK_WARMUP, DRAFT_WARMUP, ROUNDS
    if args.smoke:
        vars(args).update(SMOKE)
    if not (0 < args.rate <= 1000 and 0 < args.seconds <= 60 and 1 <= args.drafts <= 500):
        made.error("keep to rate 0-1000/s, seconds 0-60 and drafts 1-500")
    if not 0 <= args.draft_gap <= 10:
        made.error("keep --draft-gap within 0-10 s")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # cleanup runs on `kill` as on Ctrl-C
    # Made before we start anything, so the load average is other processes' alone.
    report = Report("slack_intake", "Slack intake benchmark", args.smoke)
    report.started = STARTED
    try:
        with bench_environment() as env:
            run(env, args, report)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return report.finish()


def run(env: BenchEnv, args: argparse.Namespace, report: Report) -> None:
    # Our embedded Postgres (its data lives in workdir) and the Redis we use count as ours;
    # a BENCH_DATABASE_URL server on this machine would count as someone else's.
    markers = (str(env.workdir), "redis-server")
    warm_up(env.slack, args.draft_warmup)
    before = cpu.sample(markers)
    timings = measure_drafts(env.slack, env.database_url, args.drafts, args.draft_gap)
    drafts = DraftSummary(timings, args.draft_gap, cpu.others_share(before, cpu.sample(markers)))
    # The ack loads would otherwise queue a thousand agent runs whose work competes with
    # the listener for the two cores, and the bare Bolt app has no worker either.
    env.stack.worker.stop()
    count = round(args.rate * args.seconds / args.rounds)  # per round and target
    serve_pid, bare_pid = _pid(env.stack.serve.process), env.bare.process.pid
    # Alternating rounds: on a shared machine the neighbours' load drifts, and one load
    # after the other would hand one target the quieter seconds.
    ours_rounds, bare_rounds, acked, stored = [], [], 0, 0
    for _ in range(args.rounds):
        ours_plan = mention_plan(env.slack, env.stack.events_url, args.rate, count, args.ack_warmup)
        bare_plan = mention_plan(env.slack, env.bare.events_url, args.rate, count, args.ack_warmup)
        ours_rounds.append(_load(ours_plan, serve_pid, count, markers, env))
        bare_rounds.append(_load(bare_plan, bare_pid, count, markers, env))
        round_acked, round_stored = _acked_and_stored(
            env.database_url, ours_plan, ours_rounds[-1][0]
        )
        acked, stored = acked + round_acked, stored + round_stored
    ours_result, ours_cpu = _combined(ours_rounds)
    bare_result, bare_cpu = _combined(bare_rounds)
    if args.dump_samples:
        _dump(args.dump_samples, ours_result, bare_result, timings)
    ours = AckSummary.of("chatops serve", ours_result, ours_cpu)
    bare = AckSummary.of("bare Bolt app", bare_result, bare_cpu)
    report.add(
        versions(),
        f"setup: {env.description}",
        "",
        *ack_lines(ours, bare, args.rate, args.seconds),
        f"({args.rounds} alternating rounds of {args.seconds / args.rounds:g} s per target)",
        f"statuses: chatops serve {{{status_counts(ours_result)}}},"
        f" bare Bolt {{{status_counts(bare_result)}}}",
        f"(worker stopped during the ack loads; {args.ack_warmup} unmeasured requests before"
        " each round;"
        " 'others CPU' is the share of all cores used by processes not ours)",
        "",
        *draft_lines(drafts),
        "",
        "Aims",
    )
    for ok, text in aims(ours, bare, drafts):
        report.aim(ok, text)
    report.check(acked == stored, f"every event acknowledged 200 is stored: {stored} of {acked}")
    report.check(ours.errors == 0, f"every event acknowledged: {ours.errors} not answered 200")
    report.add(*_warmup_warnings(ours_result, bare_result))


def _acked_and_stored(database_url: str, plan: LoadPlan, result: LoadResult) -> tuple[int, int]:
    """How many of the measured events our listener answered 200, and how many of those
    are in Postgres."""
    acked = [
        json.loads(body)["event_id"]
        for body, sample in zip(plan.bodies, result.samples, strict=True)
        if sample.status == 200
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM inbound_requests WHERE source = 'slack'"
            " AND external_id = ANY(%s)",
            (acked,),
        ).fetchone()
    return len(acked), int(row[0]) if row else 0


def _load(
    plan: LoadPlan, pid: int, count: int, markers: tuple[str, ...], env: BenchEnv
) -> tuple[LoadResult, LoadCpu]:
    """One measured load against the server in process `pid`, with its CPU use."""
    postgres = (str(env.workdir),)
    before = cpu.sample(markers), cpu.process_seconds(pid), cpu.tree_seconds(postgres)
    result = run_in_child(plan)
    after = cpu.sample(markers), cpu.process_seconds(pid), cpu.tree_seconds(postgres)
    return result, LoadCpu(
        others_share=cpu.others_share(before[0], after[0]),
        server_ms=(after[1] - before[1]) * 1000 / count,
        postgres_ms=(after[2] - before[2]) * 1000 / count,
    )


def _combined(rounds: list[tuple[LoadResult, LoadCpu]]) -> tuple[LoadResult, LoadCpu]:
    """One target's rounds as one load: every sample, the CPU averaged over the rounds."""
    results = [result for result, _ in rounds]
    combined = LoadResult(
        samples=tuple(sample for result in results for sample in result.samples),
        duration=sum(result.duration for result in results),
        warmup_statuses=tuple(status for result in results for status in result.warmup_statuses),
    )
    cpus = [cpu_use for _, cpu_use in rounds]
    return combined, LoadCpu(
        others_share=max(c.others_share for c in cpus),
        server_ms=sum(c.server_ms for c in cpus) / len(cpus),
        postgres_ms=sum(c.postgres_ms for c in cpus) / len(cpus),
    )


def _pid(process: subprocess.Popen[bytes] | None) -> int:
    assert process is not None, "chatops serve is not running"
    return process.pid


def _dump(path: Path, ours: LoadResult, bare: LoadResult, timings: list[DraftTiming]) -> None:
    raw = {
        "ack_chatops": [asdict(s) for s in ours.samples],
        "ack_bare_bolt": [asdict(s) for s in bare.samples],
        "drafts": [asdict(t) for t in timings],
    }
    path.write_text(json.dumps(raw, indent=1))


def _warmup_warnings(*results: LoadResult) -> list[str]:
    bad = [s for r in results for s in r.warmup_statuses if s != 200]
    return [f"WARNING: {len(bad)} warm-up requests were not answered 200"] if bad else []


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

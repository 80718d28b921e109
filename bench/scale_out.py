"""Scale-out benchmark: drafts per second with 1, 2 and 4 worker processes on one Redis,
and what metrics and tracing cost the Slack ack, measured side by side in one run.

    .venv/bin/python bench/scale_out.py [--workers 1,2,4] [--mentions 60] [--llm-delay 0.2]
                                        [--ack-rate 100] [--ack-seconds 6] [--rounds 2]

1. Throughput: one `chatops serve`, then N `chatops worker` processes (the shipped
   WORKER_THREADS each) on the same Redis queue. `--mentions` mentions are posted through
   the Slack emulator as fast as it delivers them; the LLM emulator answers each model
   call after `--llm-delay` seconds, as a hosted model would (two calls per draft: Plan and
   Draft). Drafts per second run from the first post to the last answered request.
2. Ack overhead: two listeners, one with METRICS_ENABLED=false and tracing off, one with
   metrics on and OpenTelemetry traces exported over OTLP/HTTP to a local collector sink;
   the same open-loop load of signed mentions to each, alternating, `--rounds` times. No
   worker runs during this phase, so agent runs do not compete for the cores.

Sets everything up itself (bench/environment.py) and removes it at the end. What it
prints is also written to bench/results/scale_out.txt.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from aiohttp import web  # noqa: E402

from bench import cpu  # noqa: E402
from bench.environment import Services, bench_services, script_instant_answers  # noqa: E402
from bench.loadgen import LoadResult, run_in_child  # noqa: E402
from bench.mentions import mention_plan  # noqa: E402
from bench.report import percentile, versions  # noqa: E402
from bench.script import Report, load_average, parser  # noqa: E402
from sandbox.background import BackgroundServer  # noqa: E402
from testbed.conversation import mention  # noqa: E402
from testbed.markers import new_marker  # noqa: E402
from testbed.processes import ChatopsProcess, wait_for  # noqa: E402
from testbed.stack import free_port  # noqa: E402

ACK_WARMUP = 30  # unmeasured requests before each measured ack load
DRAIN_TIMEOUT = 300.0  # s for the workers to answer every mention of one phase


@dataclass(frozen=True)
class Throughput:
    workers: int
    drafts: int
    seconds: float  # first post to the last request finished
    latencies: list[float]  # post to finished, per mention
    failed: int

    @property
    def per_second(self) -> float:
        return self.drafts / self.seconds


@dataclass(frozen=True)
class AckRun:
    name: str
    result: LoadResult
    cpu_ms: float  # the listener's CPU per request


SMOKE = {"workers": "1,2", "mentions": 4, "ack_rate": 50.0, "ack_seconds": 1.0, "rounds": 1}


def main() -> int:
    made = parser(__doc__.splitlines()[0])
    made.add_argument("--workers", default="1,2,4")
    made.add_argument("--mentions", type=int, default=60)
    made.add_argument("--llm-delay", type=float, default=0.2)
    made.add_argument("--ack-rate", type=float, default=100.0)
    made.add_argument("--ack-seconds", type=float, default=6.0)
    made.add_argument("--rounds", type=int, default=2)
    args = made.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    args.ack_warmup = 3 if args.smoke else ACK_WARMUP
    report = Report("scale_out", "scale-out benchmark", args.smoke)
    report.add(versions())
    with bench_services() as services:
        script_instant_answers(services.llm, delay=args.llm_delay)
        env = services.product_env()
        del env["WORKER_THREADS"]  # the shipped default, as an operator would run it
        env["WORKER_METRICS_PORT"] = ""  # several workers on one host: none serves metrics
        report.add(
            f"setup: {services.description}",
            "",
            f"1. Drafts per second by worker processes ({args.mentions} mentions per row,"
            f" LLM emulator {args.llm_delay * 1000:.0f} ms per call, 2 calls per draft)",
            f"{'workers':>8} {'drafts/s':>9} {'x 1 worker':>11} {'p50 s':>7} {'p95 s':>7}"
            f" {'failed':>7}",
        )
        with _listener(services, env, "serve"):
            rows = [
                _throughput(services, env, int(n), args.mentions) for n in args.workers.split(",")
            ]
        for row in rows:
            report.add(
                f"{row.workers:>8} {row.per_second:>9.2f} {row.per_second / rows[0].per_second:>10.2f}x"
                f" {percentile(row.latencies, 50):>7.2f} {percentile(row.latencies, 95):>7.2f}"
                f" {row.failed:>7}"
            )
        report.add(f"(load avg after phase 1: {load_average()})")
        report.aim(
            all(b.per_second > a.per_second for a, b in pairwise(rows)),
            "throughput grows with workers",
        )
        report.check(sum(r.failed for r in rows) == 0, "every mention answered, none failed")
        report.add("")
        _ack_overhead(services, env, args, report)
    return report.finish()


def _throughput(services: Services, env: dict[str, str], workers: int, count: int) -> Throughput:
    with ExitStack() as stack:
        for index in range(workers):
            process = ChatopsProcess(
                ["worker"], env, services.log_dir / f"worker-{workers}-{index}.log"
            )
            process.start(ready_line="worker.started")
            stack.callback(process.stop)
        # Unmeasured: each worker's first runs load what it loads lazily.
        _post_and_drain(services, workers * 2)
        return _post_and_drain(services, count, workers)


def _post_and_drain(services: Services, count: int, workers: int = 0) -> Throughput:
    tag = new_marker(10)
    posted: dict[str, float] = {}
    first = time.time()
    for index in range(count):
        text = f"scale-out {tag} question {index}: what is the refund window?"
        posted[f"{tag} question {index}:"] = time.time()
        mention(services.slack, text)
    with psycopg.connect(services.database_url) as conn:

        def finished() -> list[tuple[str, str, float]]:
            rows = conn.execute(
                """SELECT payload->'event'->>'text', status, extract(epoch FROM finished_at)
                   FROM inbound_requests
                   WHERE payload->'event'->>'text' LIKE %s
                     AND status IN ('done', 'failed')""",
                (f"%scale-out {tag} %",),
            ).fetchall()
            conn.commit()
            return [(text, status, float(at)) for text, status, at in rows]

        wait_for(
            lambda: len(finished()) == count,
            timeout=DRAIN_TIMEOUT,
            interval=0.2,
            message=f"{count} mentions answered",
        )
        rows = finished()
    latencies = [at - sent for text, _, at in rows for key, sent in posted.items() if key in text]
    return Throughput(
        workers=workers,
        drafts=count,
        seconds=max(at for _, _, at in rows) - first,
        latencies=latencies,
        failed=sum(1 for _, status, _ in rows if status == "failed"),
    )


def _ack_overhead(
    services: Services, env: dict[str, str], args: argparse.Namespace, report: Report
) -> None:
    count = round(args.ack_rate * args.ack_seconds)
    sink = _OtlpSink()
    with sink.running(), ExitStack() as stack:
        off = stack.enter_context(
            _listener(services, env | {"METRICS_ENABLED": "false"}, "serve-observability-off")
        )
        on = stack.enter_context(
            _listener(
                services,
                env
                | {
                    "OTEL_TRACES_ENABLED": "true",
                    "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url,
                    # Export promptly, so the exporter's work falls inside the measured load.
                    "OTEL_BSP_SCHEDULE_DELAY": "200",
                },
                "serve-observability-on",
            )
        )
        runs: list[AckRun] = []
        for _ in range(args.rounds):
            for name, (url, process) in (("off", off), ("on", on)):
                plan = mention_plan(services.slack, url, args.ack_rate, count, args.ack_warmup)
                assert process.process is not None
                cpu_before = cpu.process_seconds(process.process.pid)
                result = run_in_child(plan)
                cpu_after = cpu.process_seconds(process.process.pid)
                runs.append(AckRun(name, result, (cpu_after - cpu_before) * 1000 / count))
        time.sleep(1.0)  # the last batch of spans reaches the sink
    lines = [
        f"2. Ack latency with metrics and tracing off vs on ({args.ack_rate:.0f} mentions/s"
        f" for {args.ack_seconds:.0f} s per load, alternating, {args.rounds} rounds)",
        f"{'observability':>14} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'CPU ms/req':>11}"
        f" {'non-200':>8}",
    ]
    summary: dict[str, tuple[float, float]] = {}
    not_ok = 0
    for name in ("off", "on"):
        mine = [run for run in runs if run.name == name]
        latencies = [s.latency * 1000 for run in mine for s in run.result.samples]
        bad = sum(1 for run in mine for s in run.result.samples if s.status != 200)
        cpu_ms = sum(run.cpu_ms for run in mine) / len(mine)
        p50, p95, p99 = (percentile(latencies, q) for q in (50, 95, 99))
        summary[name] = (p50, cpu_ms)
        not_ok += bad
        lines.append(f"{name:>14} {p50:>7.1f} {p95:>7.1f} {p99:>7.1f} {cpu_ms:>11.2f} {bad:>8}")
    lines.append(
        f"overhead of metrics + tracing: p50 {summary['on'][0] - summary['off'][0]:+.1f} ms,"
        f" CPU {summary['on'][1] - summary['off'][1]:+.2f} ms per request;"
        f" the sink received {sink.exports} OTLP exports ({sink.bytes / 1024:.0f} KiB)"
    )
    report.add(*lines)
    report.check(not_ok == 0, f"every event acknowledged 200, both ways: {not_ok} were not")
    report.check(sink.exports > 0, "traces reached the OTLP sink")


@contextmanager
def _listener(
    services: Services, env: dict[str, str], name: str
) -> Iterator[tuple[str, ChatopsProcess]]:
    port = free_port()
    process = ChatopsProcess(["serve", "--port", str(port)], env, services.log_dir / f"{name}.log")
    process.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}/slack/events"
    services.slack.events_url = url
    try:
        yield url, process
    finally:
        process.stop()


class _OtlpSink:
    """An OTLP/HTTP trace collector that takes every export and keeps only its size."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/traces", self._export)
        self._server = BackgroundServer(app)

    @property
    def url(self) -> str:
        return self._server.url

    @contextmanager
    def running(self) -> Iterator[None]:
        self._server.start()
        try:
            yield
        finally:
            self._server.stop()

    async def _export(self, request: web.Request) -> web.Response:
        self.bytes += len(await request.read())
        self.exports += 1
        # An empty ExportTraceServiceResponse: every span accepted.
        return web.Response(body=b"", content_type="application/x-protobuf")


if __name__ == "__main__":
    sys.exit(main())

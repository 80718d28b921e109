"""Approvals benchmark: from an approver's ✅ to the executed action, with 200 pending
actions approved in a burst, and a check that each ran exactly once; then, in the same
run, 20 actions approved one at a time (each after the previous one ran), which shows the
latency of one approval apart from the queueing a burst causes.

    .venv/bin/python bench/approvals.py [--actions 200] [--concurrency 16] [--single 20]
                                        [--workers 1x4,1x8,2x8] [--smoke]

Sets up its own Postgres database (embedded, or BENCH_DATABASE_URL's server), a Redis
namespace (BENCH_REDIS_URL or 127.0.0.1:6379/14), the Slack emulator, and `chatops serve`
plus `chatops worker` as child processes; removes all of it at the end. The actions are
proposed and posted to #approvals through the product's own code; the reactions are
signed reaction_added events, as Slack sends them.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench.environment import bench_services  # noqa: E402
from bench.report import percentile  # noqa: E402
from bench.script import Report, load_average, parser  # noqa: E402
from connectors.slack.web_client import make_web_client  # noqa: E402
from core.settings import Settings  # noqa: E402
from review import actions, tenant_settings  # noqa: E402
from review.slack_posts import post_approval_request  # noqa: E402
from sandbox.slack_emulator import SlackEmulator  # noqa: E402
from testbed.processes import ChatopsProcess, wait_for  # noqa: E402
from testbed.stack import start_stack  # noqa: E402

APPROVALS, SUPPORT, APPROVER = "C0APPROVALS", "C0SUPPORT", "U0APPROVER"
AIM_P95 = 1.0  # seconds, reaction to executed
DEFAULT_THREADS = Settings.model_fields["worker_threads"].default


SMOKE = {"actions": 10, "concurrency": 4, "single": 3, "workers": "1x2"}


def main() -> int:
    made = parser(__doc__.splitlines()[0])
    made.add_argument("--actions", type=int, default=200)
    made.add_argument("--concurrency", type=int, default=16, help="reactions in flight at once")
    made.add_argument("--single", type=int, default=20, help="approvals one at a time")
    made.add_argument(
        "--workers",
        default=f"1x4,1x{DEFAULT_THREADS},2x{DEFAULT_THREADS}",
        help="comma-separated PROCESSESxTHREADS, each measured in turn in this run",
    )
    args = made.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)
    report = Report("approvals", "approvals benchmark", args.smoke)
    for config in args.workers.split(","):
        processes, threads = (int(n) for n in config.split("x"))
        latencies, once, singles = _measure(args, processes, threads)
        report.add("")
        _report(report, latencies, once, singles, args, processes, threads)
    return report.finish()


def _measure(
    args: argparse.Namespace, processes: int, threads: int
) -> tuple[list[float], bool, list[float]]:
    """Workers with `threads` threads each, on a fresh database and Redis namespace."""
    with ExitStack() as stack:
        services = stack.enter_context(bench_services())
        database_url, slack = services.database_url, services.slack
        env = services.product_env() | {"WORKER_THREADS": str(threads)}
        running = start_stack(slack, env, services.log_dir)
        stack.callback(running.stop)
        for index in range(1, processes):
            extra = ChatopsProcess(
                ["worker"],
                env | {"WORKER_METRICS_PORT": ""},  # one metrics port per host
                services.log_dir / f"worker-{index}.log",
            )
            extra.start(ready_line="worker.started")
            stack.callback(extra.stop)
        pending = _propose(database_url, slack, args.actions)
        print(
            f"{len(pending)} actions pending in #approvals; approving them in a burst…", flush=True
        )
        started = _approve_all(slack, pending, args.concurrency)
        latencies, once = _collect(database_url, slack, started)
        singles = _approve_one_at_a_time(
            database_url, slack, _propose(database_url, slack, args.single, first=args.actions)
        )
    return latencies, once, singles


def _propose(
    database_url: str, slack: SlackEmulator, count: int, first: int = 0
) -> list[dict[str, object]]:
    client = make_web_client(slack.bot_token, slack.api_url)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        tenant_id = conn.execute("SELECT id FROM tenants LIMIT 1").fetchone()["id"]  # type: ignore[index]
        conn.execute(
            "INSERT INTO tenant_settings (tenant_id, approval_channel_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING",
            (tenant_id, APPROVALS),
        )
        conn.execute(
            "INSERT INTO tenant_approvers (tenant_id, slack_user_id, added_by) VALUES (%s, %s, 'bench')"
            " ON CONFLICT DO NOTHING",
            (tenant_id, APPROVER),
        )
        thread = slack.workspace.post_message(
            "C0GENERAL", user="U0REQUESTER", text="Please post these"
        )
        conversation = conn.execute(
            """INSERT INTO conversations (tenant_id, channel_kind, external_key, slack_channel_id,
                 slack_thread_ts) VALUES (%s, 'slack', %s, %s, %s) RETURNING id""",
            (tenant_id, f"C0GENERAL:{thread.ts}", "C0GENERAL", thread.ts),
        ).fetchone()
        settings = tenant_settings.load(conn, tenant_id)
        pending = []
        for index in range(first, first + count):
            text = f"Bench announcement {index}"
            action = actions.propose(
                conn,
                tenant_id=tenant_id,
                conversation_id=conversation["id"],
                run_id=None,  # type: ignore[index]
                tool="post_to_channel",
                summary=f"Post a message in <#{SUPPORT}>",
                payload={"channel": SUPPORT, "text": text},
                requested_by="U0REQUESTER",
                reason="benchmark",
                citations=[],
                flags=[],
                idempotency_key=f"bench:{index}",
                ttl=timedelta(hours=1),
            )
            ts = post_approval_request(conn, client, settings, action)
            pending.append({"id": action["id"], "ts": ts, "text": text})
    return pending


def _approve_all(
    slack: SlackEmulator, pending: list[dict[str, object]], concurrency: int
) -> dict[int, float]:
    started: dict[int, float] = {}

    def approve(item: dict[str, object]) -> None:
        started[int(item["id"])] = time.time()  # type: ignore[call-overload]
        slack.react_as_user(APPROVER, APPROVALS, str(item["ts"]), "white_check_mark")

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(approve, pending))
    return started


def _approve_one_at_a_time(
    database_url: str, slack: SlackEmulator, pending: list[dict[str, object]]
) -> list[float]:
    """Seconds from each ✅ to its execution, with nothing else in the queues."""
    latencies = []
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        for item in pending:
            sent = time.time()
            slack.react_as_user(APPROVER, APPROVALS, str(item["ts"]), "white_check_mark")
            row = wait_for(
                lambda item=item: conn.execute(  # type: ignore[misc]
                    "SELECT executed_at FROM pending_actions WHERE id = %s AND status = 'executed'",
                    (item["id"],),
                ).fetchone(),
                timeout=30,
                interval=0.005,
                message=f"action {item['id']} executed",
            )
            latencies.append(row["executed_at"].timestamp() - sent)
    return latencies


def _collect(
    database_url: str, slack: SlackEmulator, started: dict[int, float]
) -> tuple[list[float], bool]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:

        def all_done() -> bool:
            row = conn.execute(
                "SELECT count(*) AS n FROM pending_actions WHERE status = 'executed'"
            ).fetchone()
            return row is not None and row["n"] == len(started)

        wait_for(all_done, timeout=300, interval=0.2, message="every action executed")
        rows = conn.execute("SELECT id, executed_at FROM pending_actions").fetchall()
        executed_audits = conn.execute(
            "SELECT subject, count(*) AS n FROM audit_log WHERE action = 'action.executed' GROUP BY subject"
        ).fetchall()
    latencies = [r["executed_at"].timestamp() - started[r["id"]] for r in rows]
    posts: dict[str, int] = {}
    for message in slack.history(SUPPORT):
        posts[message.text] = posts.get(message.text, 0) + 1
    once = (
        len(executed_audits) == len(started)
        and all(a["n"] == 1 for a in executed_audits)
        and sum(1 for text, n in posts.items() if text.startswith("Bench announcement") and n == 1)
        == len(started)
        and all(n == 1 for text, n in posts.items() if text.startswith("Bench announcement"))
    )
    return latencies, once


def _report(
    report: Report,
    latencies: list[float],
    once: bool,
    singles: list[float],
    args: argparse.Namespace,
    processes: int,
    threads: int,
) -> None:
    ordered = sorted(latencies)

    def pct(q: float, values: list[float] = ordered) -> float:
        return percentile(values, q) * 1000

    one_by_one = sorted(singles)
    rate = len(latencies) / max(ordered[-1], 1e-9)
    report.add(
        f"{len(latencies)} pending actions approved by ✅ in a burst ({args.concurrency} reactions"
        f" in flight), {processes} worker process(es) with {threads} threads each",
        f"reaction sent -> action executed (ms): p50 {pct(50):.0f}  p95 {pct(95):.0f}"
        f"  max {ordered[-1] * 1000:.0f}",
        f"  the burst drained at {rate:.0f} actions/s; p95 of a burst is bound by that rate",
        f"{len(singles)} actions approved one at a time, same run (ms): "
        f"p50 {pct(50, one_by_one):.0f}  p95 {pct(95, one_by_one):.0f}"
        f"  max {one_by_one[-1] * 1000:.0f}",
        f"(load avg now {load_average()})",
    )
    report.check(once, "each action executed exactly once (one post, one audit entry each)")
    report.aim(pct(95) < AIM_P95 * 1000, f"p95 under {AIM_P95:.0f} s: {pct(95):.0f} ms")


if __name__ == "__main__":
    sys.exit(main())

"""`chatops jobs dead [--queue Q]` lists dead-lettered jobs; `chatops jobs retry ID...`
(or `--all`) sends them back to their queue. Redis broker only."""

from __future__ import annotations

import argparse
import sys

from core.settings import Settings

HELP = "list dead-lettered jobs, or queue them again"
QUEUES = ("agent", "review", "knowledge")  # bot.queue.jobs and rag.jobs; kept light here


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="jobs_action", required=True)
    dead = actions.add_parser("dead", help="list dead-lettered jobs, oldest first")
    retry = actions.add_parser("retry", help="queue dead-lettered jobs again")
    for sub in (dead, retry):
        sub.add_argument(
            "--queue", choices=QUEUES, action="append", help="only this queue (repeatable)"
        )
    retry.add_argument("message_ids", nargs="*", metavar="ID", help="message ids from `dead`")
    retry.add_argument("--all", action="store_true", help="every dead job (on --queue)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    import redis

    from bot.queue.dead_letters import list_dead, retry_dead
    from core.broker import build_broker

    if settings.broker != "redis":
        print(
            "chatops: dead letters are listed for the Redis broker only; with RabbitMQ, use its "
            "management UI on the <namespace>.<queue>.XQ queues",
            file=sys.stderr,
        )
        return 2
    client = redis.Redis.from_url(settings.redis_url)
    queues = args.queue or list(QUEUES)
    jobs = list_dead(client, settings.queue_namespace, queues)
    if args.jobs_action == "dead":
        for job in jobs:
            print(
                f"{job.message_id}  {job.queue}/{job.actor}{job.args!r}  "
                f"died {job.died_at:%Y-%m-%d %H:%M:%S}Z  retries={job.retries}  "
                f"request={job.correlation_id or '-'}  {job.error}"
            )
        print(f"{len(jobs)} dead job(s)", file=sys.stderr)
        return 0
    if not args.all and not args.message_ids:
        print("chatops: name the message ids to retry, or pass --all", file=sys.stderr)
        return 2
    wanted = set(args.message_ids)
    chosen = [job for job in jobs if args.all or job.message_id in wanted]
    missing = wanted - {job.message_id for job in chosen}
    broker = build_broker(settings)
    try:
        for job in chosen:
            retry_dead(client, broker, settings.queue_namespace, job)
            print(f"queued {job.message_id}  {job.queue}/{job.actor}{job.args!r}")
    finally:
        broker.close()
    for message_id in sorted(missing):
        print(f"chatops: no dead job {message_id}", file=sys.stderr)
    return 1 if missing else 0

"""`chatops ingest PATH... --tenant TEAM_ID [--collection NAME] [--queue]`: files,
folders and Slack channels (slack:C0123ABC) into a tenant's knowledge collection."""

from __future__ import annotations

import argparse

from core.settings import Settings

HELP = "ingest files, folders and Slack channels into a knowledge collection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="PATH",
        help="a file, a folder (read recursively) or slack:CHANNEL_ID",
    )
    parser.add_argument(
        "--tenant", required=True, help="the tenant: its Slack team id (T0123...) or numeric id"
    )
    parser.add_argument(
        "--collection", help="the collection to fill (default: RAG_DEFAULT_COLLECTION)"
    )
    parser.add_argument(
        "--queue",
        action="store_true",
        help="enqueue one job per file or channel for the workers instead of running here",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    from bot.commands.checks import require_current_schema
    from rag.ingest_command import run_ingest

    require_current_schema(settings)
    return run_ingest(settings, args.sources, args.tenant, args.collection, queue=args.queue)

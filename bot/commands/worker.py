"""`chatops worker`: a Dramatiq worker running the agent loop."""

from __future__ import annotations

import argparse

from bot.commands.checks import require_current_schema
from core.settings import Settings

HELP = "Dramatiq worker running the agent loop"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options: scale with WORKER_THREADS and by running more workers."""


def run(settings: Settings, args: argparse.Namespace) -> int:
    require_current_schema(settings)
    from bot.queue.worker import run_worker

    run_worker(settings)
    return 0

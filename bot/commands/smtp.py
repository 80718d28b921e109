"""`chatops smtp`: the SMTP listener for the agent inboxes."""

from __future__ import annotations

import argparse

from bot.commands.checks import require_current_schema
from core.settings import Settings

HELP = "SMTP listener receiving email for the agent inboxes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: SMTP_HOST)")
    parser.add_argument("--port", type=int, help="port to listen on (default: SMTP_PORT)")


def run(settings: Settings, args: argparse.Namespace) -> int:
    require_current_schema(settings)
    from bot.intake.smtp_server import run_smtp

    run_smtp(
        settings,
        args.host if args.host is not None else settings.smtp_host,
        args.port if args.port is not None else settings.smtp_port,
    )
    return 0

"""`chatops serve`: the HTTP listener for Slack (or Socket Mode)."""

from __future__ import annotations

import argparse

from bot.commands.checks import require_current_schema
from core.settings import Settings

HELP = "HTTP listener for Slack events"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT, else 3000)")
    parser.add_argument(
        "--socket-mode",
        action="store_true",
        help="connect to Slack over Socket Mode instead (needs SLACK_APP_TOKEN)",
    )


def run(settings: Settings, args: argparse.Namespace) -> int:
    require_current_schema(settings)
    if args.socket_mode:
        from bot.intake.socket_mode import run_socket_mode

        run_socket_mode(settings)
    else:
        from bot.intake.http_server import run_http

        run_http(settings, args.port if args.port is not None else settings.port)
    return 0

"""`chatops`: the one way to start each process.

chatops migrate            apply database migrations
chatops serve [--port N]   HTTP listener for Slack (or --socket-mode)
chatops worker             Dramatiq worker running the agent loop
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import structlog

from bot.errors import StartupError
from bot.logs import configure_logging
from bot.settings import ConfigError, Settings, load_settings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply database migrations")
    serve = commands.add_parser("serve", help="HTTP listener for Slack events")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT, else 3000)")
    serve.add_argument(
        "--socket-mode",
        action="store_true",
        help="connect to Slack over Socket Mode instead (needs SLACK_APP_TOKEN)",
    )
    commands.add_parser("worker", help="Dramatiq worker running the agent loop")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"chatops: {exc}", file=sys.stderr)
        return 2
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    log = structlog.get_logger("chatops")

    try:
        if args.command == "migrate":
            return _migrate(settings)
        _require_current_schema(settings)
        if args.command == "serve":
            if args.socket_mode:
                from bot.intake.socket_mode import run_socket_mode

                run_socket_mode(settings)
            else:
                from bot.intake.http_server import run_http

                run_http(settings, args.port if args.port is not None else settings.port)
        elif args.command == "worker":
            from bot.queue.worker import run_worker

            run_worker(settings)
    except StartupError as exc:
        log.error("startup.failed", error=str(exc))
        print(f"chatops: {exc}", file=sys.stderr)
        return 2
    return 0


def _migrate(settings: Settings) -> int:
    from bot.migrate import apply_migrations

    applied = apply_migrations(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def _require_current_schema(settings: Settings) -> None:
    import psycopg

    from bot.migrate import pending_migrations

    try:
        pending = pending_migrations(settings.database_url)
    except psycopg.OperationalError as exc:
        raise StartupError(f"cannot reach the database at DATABASE_URL: {exc}") from None
    if pending:
        raise StartupError(
            f"the database schema is behind ({', '.join(pending)}): run `chatops migrate`"
        )


if __name__ == "__main__":
    sys.exit(main())

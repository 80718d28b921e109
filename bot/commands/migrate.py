"""`chatops migrate`: apply database migrations."""

from __future__ import annotations

import argparse

from bot.settings import Settings

HELP = "apply database migrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg

    from bot.intake.bot_tokens import seal_plaintext_tokens
    from bot.migrate import apply_migrations

    applied = apply_migrations(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        sealed = seal_plaintext_tokens(conn)
    if sealed:
        print(f"sealed the bot token of {sealed} Slack installation(s)")
    return 0

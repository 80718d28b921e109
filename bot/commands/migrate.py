"""`chatops migrate`: apply database migrations."""

from __future__ import annotations

import argparse

from core.settings import Settings

HELP = "apply database migrations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """No options."""


def run(settings: Settings, args: argparse.Namespace) -> int:
    import psycopg

    from connectors.email.inbound_store import seal_stored_raw
    from connectors.email.raw_mail import RawMailCipher
    from connectors.email.tools import seal_stored_replies
    from connectors.slack.bot_tokens import seal_plaintext_tokens
    from core.migrate import MigrationError, apply_migrations

    try:
        applied = apply_migrations(settings.database_url)
    except MigrationError as exc:
        print(f"chatops migrate: nothing was applied: {exc}")
        return 1
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        sealed = seal_plaintext_tokens(conn)
        cipher = RawMailCipher.from_settings(settings)
        mails = seal_stored_raw(conn, cipher)
        replies = seal_stored_replies(conn, cipher)
    if sealed:
        print(f"sealed the bot token of {sealed} Slack installation(s)")
    if mails:
        print(f"sealed the raw bytes of {mails} stored email(s)")
    if replies:
        print(f"sealed the message of {replies} drafted email {_replies(replies)}")
    return 0


def _replies(count: int) -> str:
    return "reply" if count == 1 else "replies"

"""Start-up checks shared by the long-running commands."""

from __future__ import annotations

from core.errors import StartupError
from core.settings import Settings


def require_current_schema(settings: Settings) -> None:
    import psycopg

    from core.migrate import pending_migrations

    try:
        pending = pending_migrations(settings.database_url)
    except psycopg.OperationalError as exc:
        raise StartupError(f"cannot reach the database at DATABASE_URL: {exc}") from None
    if pending:
        raise StartupError(
            f"the database schema is behind ({', '.join(pending)}): run `chatops migrate`"
        )

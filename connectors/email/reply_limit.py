"""At most N agent replies per email thread per hour: the last line against mail loops.

Header checks (loops.py) catch auto-responders that identify themselves; this catches
the ones that do not. Every outbound attempt counts, sent or not yet known, so a burst
of retries cannot slip through either.
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection

WINDOW_SECONDS = 3600


def replies_in_last_hour(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int
) -> int:
    row = conn.execute(
        """SELECT count(*) AS n FROM email_messages
            WHERE tenant_id = %s AND conversation_id = %s AND direction = 'outbound'
              AND status IN ('sending', 'committing', 'sent', 'unknown')
              AND created_at > now() - make_interval(secs => %s)""",
        (tenant_id, conversation_id, WINDOW_SECONDS),
    ).fetchone()
    return int(row["n"]) if row else 0


def reply_allowed(
    conn: Connection[dict[str, Any]], tenant_id: int, conversation_id: int, *, per_hour: int
) -> bool:
    """Whether the agent may send one more reply in this thread now."""
    return replies_in_last_hour(conn, tenant_id, conversation_id) < per_hour

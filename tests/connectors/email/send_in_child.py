"""Run one `send_reply_smtp` in its own process, so a test can kill it mid-send.

python -m tests.connectors.email.send_in_child DATABASE_URL HOST PORT TENANT CONV FILE
"""

from __future__ import annotations

import sys
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from connectors.email.smtp_send import SmtpRelay, send_reply_smtp


def main() -> None:
    database_url, host, port, tenant_id, conversation_id, path = sys.argv[1:7]
    message = BytesParser(policy=policy.default).parsebytes(Path(path).read_bytes())
    assert isinstance(message, EmailMessage)
    relay = SmtpRelay(host=host, port=int(port), security="none", timeout=60)
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        result = send_reply_smtp(
            conn,
            relay,
            tenant_id=int(tenant_id),
            conversation_id=int(conversation_id),
            message=message,
        )
    print(result.status, flush=True)


if __name__ == "__main__":
    main()

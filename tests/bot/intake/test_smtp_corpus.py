"""Real-world mail from ../shared/corpora/email through real SMTP sessions: every message
sent is answered 250 and stored, then read by the worker: parsed or marked failed, never
lost."""

from __future__ import annotations

import re
import smtplib
from pathlib import Path

import pytest

from tests.connectors.email.support import (
    CORPUS,
    DB,
    RunningListener,
    Tenant,
    corpus_files,
    raw_bytes,
    request_rows,
    worker_reads,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]

# A spread of the corpus: plain, multipart, charsets, attachments (PDF, Cyrillic),
# broken MIME, auto-replies, bounces, complaints, the MIME bomb and the torture test.
SAMPLE = (
    "flanker/text-only.eml",
    "flanker/iphone.eml",
    "flanker/attached-pdf.eml",
    "flanker/russian-attachment-yahoo.eml",
    "flanker/long-links.eml",
    "flanker/missing-boundaries.eml",
    "flanker/mailformed-headers.eml",
    "flanker/bounce_office365.eml",
    "flanker/complaints_aol.eml",
    "flanker/enclosed-endless.eml",
    "flanker/torture.eml",
    "flanker/long-header.eml",
    "mikel-mail/multi_charset_japanese_iso_2022.eml",
    "mikel-mail/multi_charset_ks_c_5601-1987.eml",
    "mikel-mail/error_emails_content_transfer_encoding_x_uuencode.eml",
    "mikel-mail/rfc6532_utf8_headers.eml",
    "mikel-mail/multipart_report_emails_report_422.eml",
    "cpython-test_email/msg_41.txt",
    "sisimai-set-of-emails/rfc3834-01.eml",
    "sisimai-set-of-emails/mac-cr_rfc3834-01.eml",
    "sisimai-set-of-emails/lhost-sendmail-41.eml",
    "sisimai-set-of-emails/arf-01.eml",
)
LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")


def test_sample_covers_existing_files() -> None:
    """Every sampled name exists in the corpus (a renamed file would silently shrink it)."""
    names = {str(p.relative_to(CORPUS)) for p in corpus_files()}
    assert set(SAMPLE) <= names


@pytest.mark.parametrize("name", SAMPLE)
def test_corpus_message_is_accepted_and_stored(
    name: str, smtp_listener: RunningListener, email_tenant: Tenant, email_db: DB
) -> None:
    """The message gets 250 and one stored row, its bytes kept as they arrived; read, it is
    parsed, marked failed with its error, or marked as automatic mail."""
    raw = _as_transmitted(CORPUS / name)
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=30) as client:
        client.ehlo()
        client.mail("sender@corpus.example", options=["BODY=8BITMIME"])
        client.rcpt(email_tenant.inbox)
        code, text = client.data(raw)
    assert code == 250, text
    (row,) = request_rows(email_db, email_tenant.id)
    assert row["raw_sealed"] and raw_bytes(smtp_listener.settings, row) == raw
    worker_reads(email_db, smtp_listener.settings, email_tenant.id)
    (row,) = request_rows(email_db, email_tenant.id)
    assert row["conversation_id"] is not None
    assert row["payload"]["message_id"] == row["message_id"]
    if row["parse_error"] is not None:
        assert row["status"] == "failed" and row["error"].startswith("unparseable email")
    else:
        assert row["status"] in ("queued", "received", "ignored")


def _as_transmitted(path: Path) -> bytes:
    """What an MTA relays: CRLF line endings, ending in one (smtplib sends bytes as given)."""
    raw = LINE_ENDINGS.sub(b"\r\n", path.read_bytes())
    return raw if raw.endswith(b"\r\n") else raw + b"\r\n"

"""Which mail must never get an automatic answer (RFC 3834, bounces, lists, ourselves)."""

from __future__ import annotations

import pytest

from connectors.email.loops import never_answer
from connectors.email.parse import parse_email
from tests.connectors.email.support import CORPUS

AUTOMATIC = [
    "sisimai-set-of-emails/rfc3834-01.eml",
    "sisimai-set-of-emails/rfc3834-02.eml",
    "sisimai-set-of-emails/rfc3834-03.eml",
    "sisimai-set-of-emails/rfc3834-04.eml",
    "sisimai-set-of-emails/rfc3834-05.eml",
    "sisimai-set-of-emails/rfc3834-06.eml",
    "sisimai-set-of-emails/dos-crlf_rfc3834-01.eml",
    "sisimai-set-of-emails/mac-cr_rfc3834-01.eml",
    "sisimai-set-of-emails/rfc3464-01.eml",
    "sisimai-set-of-emails/lhost-gmail-01.eml",
    "sisimai-set-of-emails/lhost-office365-01.eml",
    "sisimai-set-of-emails/lhost-postfix-09.eml",
    "sisimai-set-of-emails/arf-01.eml",
    "flanker/bounce_office365.eml",
    "flanker/bounce_mailbox-full.eml",
    "flanker/bounce_gmail-invalid-address.eml",
    "flanker/complaints_aol.eml",
    "flanker/disposition-notification.eml",
    "mikel-mail/multipart_report_emails_report_422.eml",
    "cpython-test_email/msg_16.txt",
]
HUMAN = [
    "flanker/text-only.eml",
    "flanker/iphone.eml",
    "flanker/quoted-printable.eml",
    "mikel-mail/plain_emails_raw_email.eml",
    "mikel-mail/multi_charset_japanese_shift_jis.eml",
]


@pytest.mark.parametrize("name", AUTOMATIC)
def test_auto_replies_bounces_and_reports_are_never_answered(name: str) -> None:
    """Real auto-replies, DSNs, complaints and read receipts are recognised."""
    mail = parse_email((CORPUS / name).read_bytes())
    assert never_answer(mail, envelope_from="someone@example.org") is not None


@pytest.mark.parametrize("name", HUMAN)
def test_personal_mail_may_be_answered(name: str) -> None:
    """Ordinary mail from a person is not mistaken for automatic mail."""
    mail = parse_email((CORPUS / name).read_bytes())
    assert never_answer(mail, envelope_from="someone@example.org") is None


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        ("Auto-Submitted: auto-generated", "auto_submitted"),
        ("Precedence: junk", "precedence"),
        ("List-Unsubscribe: <mailto:leave@list.example>", "mailing_list"),
        ("X-Auto-Response-Suppress: OOF, AutoReply", "auto_reply"),
    ],
)
def test_headers_mark_automatic_mail(header: str, kind: str) -> None:
    """Each RFC 3834 / list / Exchange header on its own is enough, with its reason."""
    raw = f"From: a@b.example\r\nSubject: hi\r\n{header}\r\n\r\nhello\r\n".encode()
    verdict = never_answer(parse_email(raw), envelope_from="a@b.example")
    assert verdict is not None and verdict.kind == kind


def test_auto_submitted_no_is_a_person() -> None:
    """ "Auto-Submitted: no" explicitly means a human wrote it."""
    raw = b"From: a@b.example\r\nSubject: hi\r\nAuto-Submitted: no\r\n\r\nhello\r\n"
    assert never_answer(parse_email(raw), envelope_from="a@b.example") is None


def test_mail_from_our_own_inbox_is_not_answered() -> None:
    """A copy of our own reply coming back to the inbox would start a loop with ourselves."""
    raw = b"From: Help <help@acme.example>\r\nSubject: Re: hi\r\n\r\nhello\r\n"
    verdict = never_answer(
        parse_email(raw), envelope_from="help@acme.example", own_addresses=["help@acme.example"]
    )
    assert verdict is not None and verdict.kind == "own_address"
    colleague = b"From: Bob <bob@acme.example>\r\nSubject: question\r\n\r\nhello\r\n"
    assert (
        never_answer(
            parse_email(colleague),
            envelope_from="bob@acme.example",
            own_addresses=["help@acme.example"],
        )
        is None
    )

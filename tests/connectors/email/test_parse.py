"""Parsing real and hand-made mail: bodies, charsets, headers, attachments, damage."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from connectors.email.parse import ParseLimits, message_id_of, parse_email
from tests.connectors.email.support import CORPUS, corpus_files


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_every_corpus_message_parses_without_raising(path: Path) -> None:
    """Any real message yields a result with a Message-ID; damage is recorded, not raised,
    and a message without body text says why (no text part, or an error)."""
    mail = parse_email(path.read_bytes())
    assert mail.message_id.startswith("<") and mail.message_id.endswith(">")
    assert mail.body_source in ("text/plain", "text/html", "none")
    if mail.body_source == "none":
        assert mail.text == ""
    if mail.error is not None:
        assert mail.text == "" and mail.attachments == ()


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_the_listener_keys_each_message_on_the_id_the_parser_reads(path: Path) -> None:
    """The SMTP listener stores a message under its Message-ID, read from the headers
    alone before the 250 (a resent copy is then a duplicate): the same id the full
    parse gives, as the file is and with the CRLF line ends mail travels with."""
    raw = path.read_bytes()
    for form in (raw, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")):
        assert message_id_of(form) == parse_email(form).message_id


def test_corpus_is_all_there() -> None:
    """The corpus the issue names is present in full (83 messages)."""
    assert len(corpus_files()) == 83


def read(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def test_plain_alternative_is_preferred_over_html() -> None:
    """multipart/alternative: the text/plain part is the body, the HTML is not an attachment."""
    mail = parse_email(read("flanker/quoted-printable.eml"))
    assert mail.body_source == "text/plain"
    assert mail.text.startswith("Hello Bob,")
    assert mail.attachments == ()


def test_html_only_mail_becomes_clean_text() -> None:
    """Without text/plain, the HTML body is turned into readable text with no markup."""
    mail = parse_email(read("mikel-mail/error_emails_content_transfer_encoding_with_8bits.eml"))
    assert mail.body_source == "text/html"
    assert "Holiday Gift Ideas for the Computer Professional!" in mail.text
    assert "<" not in mail.text and "&nbsp;" not in mail.text


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mikel-mail/multi_charset_japanese_shift_jis.eml", "あいうえお"),
        ("mikel-mail/multi_charset_japanese_iso_2022.eml", "すみません。"),
        ("mikel-mail/multi_charset_ks_c_5601-1987.eml", "스티해"),
        ("flanker/8bitmime.eml", "Превел"),
        ("flanker/bilingual-simple.eml", "эта линия по-русски."),
    ],
)
def test_body_charsets_are_decoded(name: str, expected: str) -> None:
    """Bodies in Japanese, Korean and Cyrillic charsets come out as the right text."""
    assert expected in parse_email(read(name)).text


def test_rfc2047_headers_and_filenames_are_decoded() -> None:
    """Encoded-word subjects and RFC 2231 attachment names are decoded."""
    mail = parse_email(read("mikel-mail/multi_charset_japanese_attachment_long_name.eml"))
    assert mail.subject.startswith("まみむめも")
    assert mail.attachments[0].filename == "かきくけこ" * 5 + ".txt"
    assert parse_email(read("flanker/encoded-header.eml")).subject == "hello"


def test_pdf_attachment_text_is_extracted() -> None:
    """A PDF attachment keeps its name, type and size, and its text for the agent."""
    (pdf,) = parse_email(read("flanker/attached-pdf.eml")).attachments
    assert (pdf.filename, pdf.content_type) == ("test.pdf", "application/pdf")
    assert pdf.size > 1000 and pdf.text == "Test."


def test_oversized_pdf_is_listed_but_not_read() -> None:
    """Over the PDF size limit, the attachment is kept with a note instead of its text."""
    limits = ParseLimits()
    small = ParseLimits(
        attachments=type(limits.attachments)(max_chars=100, pdf_max_bytes=100, pdf_max_pages=1)
    )
    (pdf,) = parse_email(read("flanker/attached-pdf.eml"), small).attachments
    assert pdf.text is None and pdf.note is not None and "not read" in pdf.note


def test_text_attachment_is_truncated_to_the_limit() -> None:
    """Text attachments are read up to the configured number of characters."""
    message = EmailMessage()
    message["From"] = "a@b.example"
    message["Subject"] = "log"
    message.set_content("see attached")
    message.add_attachment("line\n" * 10_000, filename="app.log")
    limits = ParseLimits()
    tight = ParseLimits(attachments=type(limits.attachments)(50, 0, 0))
    (log,) = parse_email(message.as_bytes(), tight).attachments
    assert log.filename == "app.log" and log.text is not None
    assert len(log.text) == 50 and log.text_truncated


def test_forwarded_message_is_one_attachment_with_its_text() -> None:
    """A message/rfc822 part is an attachment whose text is the forwarded body."""
    mail = parse_email(read("mikel-mail/attachment_emails_attachment_message_rfc822.eml"))
    (forwarded,) = mail.attachments
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.text


def test_mime_bomb_is_kept_with_an_error_instead_of_parsed() -> None:
    """3000 nested parts are not parsed (seconds of CPU); the headers still are."""
    mail = parse_email(read("flanker/enclosed-endless.eml"))
    assert mail.error is not None and "too many MIME parts" in mail.error
    assert mail.has_message_id


def test_broken_multipart_records_defects() -> None:
    """A boundary that never appears is a recorded defect, not an exception."""
    mail = parse_email(read("cpython-test_email/msg_41.txt"))
    assert "NoBoundaryInMultipartDefect" in mail.defects


def test_a_huge_header_is_cut_not_choked_on() -> None:
    """A 200 KB Subject is decoded from its first part only, and noted."""
    mail = parse_email(read("flanker/long-header.eml"))
    assert mail.subject.startswith("Die heiße Zypernsonne")
    assert "HeaderTooLong: subject" in mail.defects


def test_message_without_message_id_gets_a_stable_synthetic_one() -> None:
    """Same bytes, same id: a resent copy of an id-less message is recognised."""
    raw = b"From: a@b.example\r\nSubject: no id\r\n\r\nhello\r\n"
    first, again = parse_email(raw), parse_email(raw)
    other = parse_email(raw.replace(b"hello", b"hullo"))
    assert not first.has_message_id
    assert first.message_id == again.message_id != other.message_id


def test_threading_headers_are_normalised() -> None:
    """In-Reply-To and References keep their ids in order, brackets included."""
    raw = (
        b"From: a@b.example\r\nMessage-ID: <c@x>\r\nIn-Reply-To: <b@x> (comment)\r\n"
        b"References: <a@x>\r\n <b@x>\r\n\r\nhi\r\n"
    )
    mail = parse_email(raw)
    assert mail.in_reply_to == "<b@x>"
    assert mail.references == ("<a@x>", "<b@x>")
    assert mail.thread_ids == ("<b@x>", "<a@x>")

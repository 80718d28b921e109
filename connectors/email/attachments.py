"""Text of attachments, for the agent's context: text files and PDFs, within limits.

Extraction is best effort. A PDF that pypdf cannot read, or one over the size limit,
yields no text and a short reason; it never fails the message.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass

from connectors.email.html_text import html_to_text

TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/x-yaml",
        "application/yaml",
        "application/csv",
        "message/delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
    }
)
PDF_TYPES = frozenset({"application/pdf", "application/x-pdf"})


@dataclass(frozen=True)
class ExtractLimits:
    max_chars: int  # of text kept per attachment
    pdf_max_bytes: int  # larger PDFs are not read at all
    pdf_max_pages: int


@dataclass(frozen=True)
class Extracted:
    text: str | None
    truncated: bool
    note: str | None  # why there is no text, when there could have been


def is_text_type(content_type: str, filename: str | None) -> bool:
    return (
        content_type.startswith("text/")
        or content_type in TEXT_TYPES
        or (
            content_type == "application/octet-stream"
            and (filename or "").lower().endswith((".txt", ".csv", ".md", ".log", ".json"))
        )
    )


def is_pdf(content_type: str, filename: str | None) -> bool:
    return content_type in PDF_TYPES or (
        content_type == "application/octet-stream" and (filename or "").lower().endswith(".pdf")
    )


def extract_text(
    content_type: str, filename: str | None, decoded: str | bytes, limits: ExtractLimits
) -> Extracted:
    """`decoded` is str for text parts (charset applied) and bytes for everything else."""
    if isinstance(decoded, str):
        text = html_to_text(decoded) if content_type == "text/html" else decoded
        return _truncate(text, limits.max_chars)
    if is_pdf(content_type, filename):
        return _pdf_text(decoded, limits)
    return Extracted(text=None, truncated=False, note=None)


def _pdf_text(data: bytes, limits: ExtractLimits) -> Extracted:
    if len(data) > limits.pdf_max_bytes:
        return Extracted(None, False, f"PDF over {limits.pdf_max_bytes} bytes, not read")
    from pypdf import PdfReader

    # pypdf reports every oddity of real-world PDFs as a warning; they are not ours to log.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            return Extracted(None, False, "PDF is encrypted")
        pages: list[str] = []
        total = 0
        for page in reader.pages[: limits.pdf_max_pages]:
            text = page.extract_text() or ""
            pages.append(text)
            total += len(text)
            if total >= limits.max_chars:
                break
        page_note = None
        if len(reader.pages) > limits.pdf_max_pages:
            page_note = f"first {limits.pdf_max_pages} of {len(reader.pages)} pages read"
    except Exception as exc:  # pypdf raises many types on damaged files
        return Extracted(None, False, f"PDF could not be read: {type(exc).__name__}")
    result = _truncate("\n\n".join(pages), limits.max_chars)
    return Extracted(result.text, result.truncated or page_note is not None, page_note)


def _truncate(text: str, max_chars: int) -> Extracted:
    text = text.strip()
    if len(text) > max_chars:
        return Extracted(text[:max_chars], True, None)
    return Extracted(text, False, None)

"""Stored email (.eml files and .mbox mailboxes): one document per thread, one block per
message, without the quoted text each reply repeats."""

from __future__ import annotations

import mailbox
import re
from collections import defaultdict
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path

from rag.documents import Block, Document, LoadError
from rag.loaders.html import html_to_blocks

REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|sv)\s*:\s*)+", re.IGNORECASE)
QUOTE_HEADER = re.compile(r"^On .+ wrote:\s*$")
MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def load_eml(path: Path, source_key: str) -> list[Document]:
    message = _parse(path.read_bytes())
    if not message.keys():
        raise LoadError("not an email message")
    return _threads([message], source_key)


def load_mbox(path: Path, source_key: str) -> list[Document]:
    box = mailbox.mbox(path)
    try:
        messages = [_parse(box.get_bytes(key)) for key in box.iterkeys()]
    finally:
        box.close()
    if not messages:
        raise LoadError("the mailbox has no messages")
    return _threads(messages, source_key)


def _parse(raw: bytes) -> EmailMessage:
    # With the default policy the parser builds EmailMessage objects (with get_body).
    return BytesParser(policy=policy.default).parsebytes(raw)


def _threads(messages: list[EmailMessage], source_key: str) -> list[Document]:
    by_root: dict[str, list[EmailMessage]] = defaultdict(list)
    for message in messages:
        by_root[_thread_root(message)].append(message)
    documents = []
    for root, thread in by_root.items():
        thread.sort(key=_sent_at)
        subject = REPLY_PREFIX.sub("", str(thread[0].get("subject", ""))).strip()
        blocks = []
        for message in thread:
            # The sender's name, not the address: citations show headings to everyone.
            name, address = parseaddr(str(message.get("from", "")))
            heading = f"{name or address or 'unknown sender'}, {message.get('date', 'undated')}"
            body = _body(message)
            if body:
                blocks.append(Block((heading,), body))
        if blocks:
            documents.append(
                Document(
                    f"{source_key}#{root}",
                    "email",
                    subject or "(no subject)",
                    tuple(blocks),
                    metadata={"format": "email", "messages": len(thread)},
                )
            )
    return documents


def _thread_root(message: EmailMessage) -> str:
    """The first message id of References, else In-Reply-To, else its own id."""
    for header in ("references", "in-reply-to", "message-id"):
        ids = MESSAGE_ID.findall(str(message.get(header, "")))
        if ids:
            first: str = ids[0]
            return first
    return REPLY_PREFIX.sub("", str(message.get("subject", ""))).strip().lower() or "unthreaded"


def _sent_at(message: EmailMessage) -> float:
    try:
        return parsedate_to_datetime(str(message.get("date"))).timestamp()
    except (TypeError, ValueError):
        return 0.0


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content: object = part.get_content()
    except (LookupError, ValueError):
        return ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        content = "\n\n".join(b.text for b in html_to_blocks(content).blocks)
    kept = []
    for line in content.splitlines():
        if line.lstrip().startswith(">"):
            continue
        if QUOTE_HEADER.match(line.strip()):
            break  # everything below is the quoted earlier message
        kept.append(line.rstrip())
    return "\n".join(kept).strip()

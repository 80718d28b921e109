"""The agent's drafted answer as the body of an email to a customer.

The agent writes for Slack: mrkdwn (*bold*, <url|links>, • bullets), citation numbers
[1] and, at the end, the titles of the internal documents it used. None of that belongs
in an email: a customer reads plain text, with a greeting and a sign-off, and never the
names of our internal sources.
"""

from __future__ import annotations

import html
import re

# The list of sources rag/citations.py appends to an answer: internal titles and links.
SOURCES_TAIL = re.compile(r"\n+\s*\*Sources\*\s*\n(?:.*\n?)*\Z")
CITATION = re.compile(r"\s?\[(?:\d+)(?:\s*,\s*\d+)*\](?:\[\d+\])*")
LINK = re.compile(r"<((?:https?://|mailto:)[^|>]+)(?:\|([^>]+))?>")
MENTION = re.compile(r"<[@#!][^>]*>")
BOLD = re.compile(r"(?<![\w*])\*(?=\S)([^*\n]+?)(?<=\S)\*(?![\w*])")
ITALIC = re.compile(r"(?<![\w_])_(?=\S)([^_\n]+?)(?<=\S)_(?![\w_])")
STRIKE = re.compile(r"(?<![\w~])~(?=\S)([^~\n]+?)(?<=\S)~(?![\w~])")
CODE = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"```\n?")
SHORTCODE = re.compile(r"[ \t]*(?<![\w:]):[a-z][a-z0-9_+-]*:(?![\w:])")
LEADING_SHORTCODE = re.compile(r"^(\s*(?:[-•]\s+)?):[a-z][a-z0-9_+-]*:[ \t]*", re.MULTILINE)
BULLET = re.compile(r"^(\s*)[•◦▪]\s+", re.MULTILINE)
QUOTE = re.compile(r"^(?:>|&gt;) ?", re.MULTILINE)  # Slack's blockquote marks
GREETING = re.compile(r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening))\b", re.I)
SIGN_OFF = re.compile(
    r"(regards|best|thanks|thank you|cheers|sincerely|best wishes)[,!.]?\s*(\n.*){0,3}\Z",
    re.I,
)


def plain_text(mrkdwn: str) -> str:
    """Slack mrkdwn as plain text: formatting marks, citation numbers, the sources list
    and emoji shortcodes gone; links written out; bullets as dashes."""
    text = SOURCES_TAIL.sub("", mrkdwn.replace("\r\n", "\n"))
    text = CITATION.sub("", text)
    text = LINK.sub(_link, text)
    text = MENTION.sub("", text)
    text = FENCE.sub("", text)
    for pattern in (BOLD, ITALIC, STRIKE, CODE):
        text = pattern.sub(r"\1", text)
    text = LEADING_SHORTCODE.sub(r"\1", text)
    text = SHORTCODE.sub("", text)
    text = BULLET.sub(r"\1- ", text)
    text = QUOTE.sub("", text)
    text = html.unescape(text)
    lines = [re.sub(r"[ \t]+$", "", line) for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def email_body(draft: str, *, recipient_name: str = "", signature: str = "") -> str:
    """The drafted answer as a whole email: a greeting (by first name when known), the
    answer as plain text, and a sign-off from `signature` (the team's name), unless the
    draft already has them."""
    body = plain_text(draft)
    parts = []
    if not GREETING.match(body):
        first = greeted_name(recipient_name)
        parts.append(f"Hello {first}," if first else "Hello,")
    parts.append(body)
    if not SIGN_OFF.search(body):
        parts.append("Best regards,\n" + (signature or "The support team"))
    return "\n\n".join(part for part in parts if part)


def greeted_name(recipient_name: str) -> str:
    """The name a greeting uses: the first of `recipient_name`, unless it is an address."""
    first = recipient_name.strip().split(" ")[0] if recipient_name.strip() else ""
    return "" if "@" in first else first


def _link(match: re.Match[str]) -> str:
    url, label = match.group(1), match.group(2)
    if url.startswith("mailto:"):
        return label or url.removeprefix("mailto:")
    if not label or label == url:
        return url
    return f"{label} ({url})"

"""Split an email body into the new text, the quoted history and the signature.

Mail clients quote in a handful of ways: "> " prefixes (interleaved or below), an
attribution line ("On ... wrote:") above an unprefixed copy, Outlook's "From: / Sent:"
header block or "-----Original Message-----" separator. Everything from the first such
marker down is history; "> " lines above it are history too. The signature is what
follows the RFC 3676 delimiter ("-- ") or a known mobile footer in what remains.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Attribution lines, in the languages mail clients most often write them in.
ATTRIBUTION = re.compile(
    r"^\s*("
    r"On\b.{0,300}\bwrote\s*:"
    r"|Le\b.{0,300}\ba écrit\s*:"
    r"|Am\b.{0,300}\bschrieb\b.{0,200}:"
    r"|El\b.{0,300}\bescribió\s*:"
    r"|Il giorno\b.{0,300}\bha scritto\s*:"
    r"|Op\b.{0,300}\bschreef\b.{0,200}:"
    r"|Em\b.{0,300}\bescreveu\s*:"
    r"|.{1,300}写道\s*[:\uff1a]"
    r")\s*$",
    re.IGNORECASE,
)
SEPARATOR = re.compile(
    r"^\s*(-{2,}\s*(Original Message|Ursprüngliche Nachricht|Message d'origine|"
    r"Mensaje original|Oorspronkelijk bericht)\s*-{2,}|_{10,})\s*$",
    re.IGNORECASE,
)
HEADER_FROM = re.compile(r"^\s*\*?(From|De|Von|Van|Da)\s*:\*?\s+\S", re.IGNORECASE)
HEADER_FOLLOWING = re.compile(
    r"^\s*\*?(Sent|Date|Envoyé|Gesendet|Enviado|To|À|An|Subject|Objet|Betreff)\s*:",
    re.IGNORECASE,
)
# Every attribution ends with a colon: a cheap test before the full patterns.
COLONS = (":", "\uff1a")
# A line that starts the history, or the line above it, holds one of these.
HISTORY_MARKS = (*COLONS, "--", "__")
SIGNATURE_DELIMITER = re.compile(r"^--\s?$")
MOBILE_FOOTER = re.compile(
    r"^\s*(Sent from my \w+|Sent from (Mail|Outlook) for \w+|Get Outlook for \w+"
    r"|Envoyé de mon \w+|Von meinem \w+ gesendet|Enviado desde mi \w+)\b.{0,60}$",
    re.IGNORECASE,
)
HEADER_BLOCK_LINES = 6  # how far below "From:" Outlook's "Sent:"/"To:" lines may be
SIGNATURE_MAX_LINES = 15  # a longer tail after "--" is content, not a signature


@dataclass(frozen=True)
class SplitBody:
    new: str
    quoted: str
    signature: str


def split_body(text: str) -> SplitBody:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    # Each test below looks at every line; the body's text as a whole says first (a
    # memchr-speed search) whether any line can hold what it looks for.
    cut = _history_start(lines) if any(mark in text for mark in HISTORY_MARKS) else len(lines)
    head, history = lines[:cut], lines[cut:]
    new_lines: list[str] = head
    quoted_lines: list[str] = []
    quoted = [line.lstrip().startswith(">") for line in head] if ">" in text else []
    if any(quoted):
        new_lines = []
        for index, line in enumerate(head):
            if quoted[index] or _attribution_before_quote(head, quoted, index):
                quoted_lines.append(line)
            else:
                new_lines.append(line)
    new_lines, signature = _split_signature(new_lines, delimited="--" in text)
    return SplitBody(
        new=_tidy(new_lines),
        quoted=_tidy(quoted_lines + history),
        signature=_tidy(signature),
    )


def _history_start(lines: list[str]) -> int:
    # Every marker has a colon, "--" or "__" on its line (or, for a wrapped attribution,
    # on the next): a cheap filter before the patterns, which matters on long bodies.
    marked = [any(mark in line for mark in HISTORY_MARKS) for line in lines]
    marked.append(False)
    for index, line in enumerate(lines):
        if not (marked[index] or marked[index + 1]):
            continue
        if line.lstrip().startswith(("-", "_")) and SEPARATOR.match(line):
            return index
        if _attribution_at(lines, index):
            return index
        if HEADER_FROM.match(line) and _outlook_header_block(lines, index):
            return index
    return len(lines)


def _attribution_at(lines: list[str], index: int) -> bool:
    following = lines[index + 1] if index + 1 < len(lines) else ""
    if not (lines[index].rstrip().endswith(COLONS) or following.rstrip().endswith(COLONS)):
        return False
    if ATTRIBUTION.match(lines[index]):
        return True
    # Clients wrap long attributions: "On Mon, 1 Jan 2024 at 10:00, Jane Doe <" / "jane@x> wrote:"
    if index + 1 < len(lines) and lines[index].strip():
        return bool(ATTRIBUTION.match(lines[index].rstrip() + " " + lines[index + 1].strip()))
    return False


def _attribution_before_quote(lines: list[str], quoted: list[bool], index: int) -> bool:
    """An attribution line directly above a "> " block belongs to the quote."""
    line = lines[index].rstrip()
    if not line or not line.endswith(COLONS):
        return False
    following = [i for i in range(index + 1, min(index + 3, len(lines))) if lines[i].strip()]
    return bool(following) and quoted[following[0]]


def _outlook_header_block(lines: list[str], index: int) -> bool:
    window = lines[index + 1 : index + 1 + HEADER_BLOCK_LINES]
    return sum(1 for line in window if HEADER_FOLLOWING.match(line)) >= 2


def _split_signature(lines: list[str], *, delimited: bool) -> tuple[list[str], list[str]]:
    """`delimited`: whether "--" occurs in the text at all (no line is the delimiter if not)."""
    for index in range(len(lines) - 1 if delimited else -1, -1, -1):
        if SIGNATURE_DELIMITER.match(lines[index]):
            tail = lines[index + 1 :]
            if len([line for line in tail if line.strip()]) <= SIGNATURE_MAX_LINES:
                return lines[:index], tail
            break
    last = next((i for i in range(len(lines) - 1, -1, -1) if lines[i].strip()), None)
    if last is not None and MOBILE_FOOTER.match(lines[last]):
        return lines[:last], lines[last:]
    return lines, []


def _tidy(lines: list[str]) -> str:
    return "\n".join(line.rstrip() for line in lines).strip("\n").strip()

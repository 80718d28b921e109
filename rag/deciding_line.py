"""The source line a yes-or-no answer rests on, quoted beneath it.

Asked "Can I book first class for a two-hour train journey?", the 1.5B model answered
"No, you cannot book first class for a two-hour train journey." and nothing else: true,
cited, and no use to a person who wants to know why, or to check it. Told to give the
rule, it answered "No" alone. So Verify quotes the line of the cited source that the
answer rests on ("Trains: standard class; first class only for journeys over 3 hours."),
as the source words it: nothing the model wrote is changed, and nothing is added that a
source does not say.

The line is the one that shares the most of the question's words, each word weighed by
how few of the source's lines have it: "battery" picks out "Batteries are covered for 12
months." where "widget" and "warranty" are on every line of the warranty page.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.attribution import EMPHASIS, Evidence, content_terms, evidence_pieces, numbers_in

# "Yes, ...", "No.", "*No*, you can't ...": an answer that opens with its verdict.
YES_OR_NO = re.compile(r"^\W*(?:yes|no)\b", re.IGNORECASE)
# A line must share at least two words with the question, weighing at least as much as
# one word of the question found on that line alone ("office" in "Can I bring my dog to
# the office?" does not make the VPN page's "back office" line the rule).
AT_LEAST = 1.0
SHARED_WORDS = 2
# Lines longer than this are not quoted: a quote is one rule, not a section.
MAX_QUOTE_CHARS = 240
# An answer with this share of a line's words (the line has no figures) already says it.
ALREADY_SAID = 0.7


@dataclass(frozen=True)
class DecidingLine:
    text: str  # as the source words it, emphasis marks taken out
    number: int  # the source's number, to cite


def deciding_line(
    answer: str, cited: Sequence[int], evidence: Sequence[Evidence], question: str
) -> DecidingLine | None:
    """The line of the ``cited`` sources (all numbered ones if none is cited) that a
    yes-or-no ``answer`` to ``question`` rests on, or None: the answer is not a yes or
    no, no line shares enough of the question, or the answer already says what the line
    says (its figures, or most of its words)."""
    if not YES_OR_NO.match(EMPHASIS.sub("", answer)):
        return None
    numbered = [e for e in evidence if e.number is not None]
    sources = [e for e in numbered if e.number in cited] or numbered
    lines = [
        (piece, e.number)
        for e in sources
        for piece in evidence_pieces(e.text)
        if len(piece) <= MAX_QUOTE_CHARS and e.number is not None
    ]
    asked = content_terms(question) - numbers_in(question)
    terms = [content_terms(piece) for piece, _ in lines]
    spread = {term: sum(term in line for line in terms) for term in asked}

    def weight(index: int) -> float:
        return sum(1 / spread[term] for term in asked & terms[index])

    ranked = sorted(range(len(lines)), key=lambda i: (-weight(i), not numbers_in(lines[i][0]), i))
    if not ranked or weight(ranked[0]) < AT_LEAST or len(asked & terms[ranked[0]]) < SHARED_WORDS:
        return None
    piece, number = lines[ranked[0]]
    words, figures = terms[ranked[0]], numbers_in(piece)
    if (figures and figures <= numbers_in(answer)) or (
        not figures and len(words & content_terms(answer)) >= ALREADY_SAID * len(words)
    ):
        return None
    return DecidingLine(" ".join(EMPHASIS.sub("", piece).split()), number)

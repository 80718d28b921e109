"""Numbered sources for the Draft step, the citation checks of the Verify step, and the
sources list under a Slack answer.

The model sees the passages as sources [1]..[n] and must cite them inline as [n]. Its
`citations` list holds the same numbers as strings. `verify_citations` rejects a draft
that cites a number it was not given, or that states facts without any citation while
sources exist; after repeated rejections the loop answers NOT_FOUND_ANSWER rather than
guess.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from bot.agent.knowledge import Passage

NOT_FOUND_ANSWER = "I couldn't find this in the knowledge base."
MARKER = re.compile(r"\[(\d{1,3})\]")
# A line this short with no sentence end (a heading, "Steps:", a greeting) states no fact.
MAX_UNCITED_WORDS = 6
# Inline markers in a lead-in to a list, e.g. "Do this [1]:", cover the list under it.
LIST_ITEM = re.compile(r"^\s*([-*•]|\d+[.)])\s+")

CITATION_RULES = (
    "The sources are numbered. Cite the sources for every statement of fact with their "
    "numbers in square brackets right after it, like [1] or [2][3], and list the numbers "
    "you cited in citations, as strings. Cite only the numbers given. If the sources do "
    f'not answer the question, reply exactly "{NOT_FOUND_ANSWER}" with no citations.'
)


def sources_for_prompt(passages: Sequence[Passage]) -> list[dict[str, Any]]:
    """The passages as the model sees them: numbered from 1, in retrieval order."""
    return [
        {"number": n, "title": p.title, "text": p.text} for n, p in enumerate(passages, start=1)
    ]


def cited_numbers(answer: str, citations: Sequence[str]) -> list[str]:
    """Every number the draft cites, inline or in its citations list, in first-seen order."""
    inline = MARKER.findall(answer)
    listed = [str(c).strip().strip("[]") for c in citations]
    return list(dict.fromkeys([*inline, *listed]))


def is_not_found(answer: str) -> bool:
    return answer.strip().rstrip(".").lower() == NOT_FOUND_ANSWER.rstrip(".").lower()


def verify_citations(
    answer: str, citations: Sequence[str], passages: Sequence[Passage]
) -> list[str]:
    """What is wrong with the draft's citations, in words the model can act on."""
    problems: list[str] = []
    given = {str(n) for n in range(1, len(passages) + 1)}
    unknown = [n for n in cited_numbers(answer, citations) if n not in given]
    if unknown:
        allowed = f"1 to {len(passages)}" if passages else "none (no sources were given)"
        problems.append(
            "it cites sources that were not provided: "
            + ", ".join(f"[{n}]" for n in unknown)
            + f"; the sources you may cite are {allowed}"
        )
    if passages and not is_not_found(answer):
        uncited = _uncited_statements(answer)
        if uncited:
            problems.append(
                "it states facts without citing a source; add the source number in square "
                "brackets after each of these, or say you could not find it: "
                + "; ".join(f'"{_excerpt(s)}"' for s in uncited)
            )
    return problems


def _uncited_statements(answer: str) -> list[str]:
    """Paragraphs and list items that make a statement and carry no [n]."""
    uncited: list[str] = []
    lead_in_cited = False
    for raw in answer.splitlines():
        line = raw.strip()
        if not line:
            lead_in_cited = False
            continue
        cited = bool(MARKER.search(line))
        if LIST_ITEM.match(line) and lead_in_cited:
            continue
        lead_in_cited = cited and line.endswith(":")
        if cited or _states_nothing(line):
            continue
        uncited.append(line)
    return uncited


def _states_nothing(line: str) -> bool:
    if line.endswith((":", "?")):
        return True  # a lead-in or a question back to the person
    words = LIST_ITEM.sub("", line).split()
    return len(words) <= MAX_UNCITED_WORDS and not line.endswith((".", "!"))


def _excerpt(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_sources(answer: str, citations: Sequence[str], passages: Sequence[Passage]) -> str:
    """The answer followed by the sources it cited, with their numbers as in the text,
    titles and links (Slack mrkdwn)."""
    numbers = [n for n in cited_numbers(answer, citations) if n.isdigit()]
    cited = sorted({int(n) for n in numbers if 1 <= int(n) <= len(passages)})
    if not cited:
        return answer
    lines = []
    for number in cited:
        passage = passages[number - 1]
        title = _mrkdwn_safe(passage.title)
        lines.append(
            f"[{number}] <{passage.url}|{title}>" if passage.url else f"[{number}] {title}"
        )
    return f"{answer}\n\n*Sources*\n" + "\n".join(lines)


def _mrkdwn_safe(text: str) -> str:
    # "<", ">" and "|" would break Slack's <url|text> link syntax.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "¦")

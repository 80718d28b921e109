"""Cheap checks that rule a recognizer out before it runs, without importing presidio.

guardrails/pii.py uses them before each analysis; guardrails/at_rest.py uses them to
decide whether a text needs the detector at all, so a process that stores text (the Slack
and SMTP listeners) loads presidio only once a text might hold something to mask.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from guardrails.entities import CARD, EMAIL, IBAN, IP, PHONE, SECRET, SSN

# Cheap checks that rule a recognizer out before it runs: each is one C-speed scan, and
# a recognizer skipped saves presidio's pattern loop over the whole text. Each check is
# looser than the recognizer it guards, so it never hides a match. Each pattern starts
# with a plain character class (a digit, "@"), which lets the regex engine skip ahead to
# candidates instead of trying every position: 10 KB of prose is scanned in tens of
# microseconds (an alternation at the top, or a letter class first, costs ten times more).
MIGHT_CONTAIN: dict[str, re.Pattern[str]] = {
    EMAIL: re.compile(r"@"),
    PHONE: re.compile(r"\d(?:\D{0,3}\d){6}"),
    CARD: re.compile(r"\d(?:[ \-]?\d){11}"),
    SSN: re.compile(r"\d(?:\d{2}[- .]?\d{2}[- .]?\d{4}|\d{4}-\d{4}|\d{2}-\d{6})"),
    # presidio's IBAN pattern: two letters, two check digits, then at least two groups
    # of four (the letters are not looked for: slower, and looser is still safe).
    IBAN: re.compile(r"\d{2}(?:[ -]?[A-Za-z0-9]{4}){2}"),
    IP: re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f:]|::"),
    SECRET: re.compile(
        r"\bxox[abposre]-|xapp-|hooks\.slack|\bsk-[\w-]{20}|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]"
        r"|(?i:aws_?secret)|gh[pousr]_|github_pat_|AIza|k_live_|PRIVATE KEY"
    ),
    # No check for PERSON: names are written in lower case too ("my name is borna
    # jerković"), and the tagger reads the whole message anyway.
}
# What every secret the pattern above finds contains, tested before it runs: prose
# without any of it skips the pattern (hundreds of microseconds for 10 KB) altogether.
# A single character is found with memchr (a tenth of a microsecond for 10 KB), a short
# substring costs about 5 microseconds, so each group of marks waits behind a character
# all of them contain: "-" (Slack tokens, OpenAI keys), "_" (GitHub tokens, Stripe
# keys), "A" (AWS key ids, Google API keys), "K" (a PEM header). "aws_?secret" ignores
# case: looked for as "secret" in the lowered text.
_MARKS_AFTER = (
    ("-", ("xox", "xapp-", "sk-")),
    ("_", ("gh", "github_pat_", "k_live_")),
    ("A", ("AKIA", "ASIA", "ABIA", "ACCA", "AIza")),
    ("K", ("PRIVATE KEY",)),
)


def _might_hold_secret(text: str) -> bool:
    marked = "hooks.slack" in text or any(
        gate in text and any(mark in text for mark in marks) for gate, marks in _MARKS_AFTER
    )
    if not marked and "secret" not in text.lower():
        return False
    return MIGHT_CONTAIN[SECRET].search(text) is not None


def worth_running(text: str, entities: Iterable[str]) -> list[str]:
    """The entities of `entities` that `text` might hold (all those with no check)."""
    found = []
    digits: bool | None = None  # whether `text` has a digit: looked for once, if needed
    for entity in entities:
        if entity == SECRET:
            if _might_hold_secret(text):
                found.append(entity)
            continue
        if entity in _NEED_DIGITS:
            if digits is None:
                digits = _has_digit(text)
            if not digits:
                continue
        check = MIGHT_CONTAIN.get(entity)
        if check is None or check.search(text) is not None:
            found.append(entity)
    return found


# Entities whose every check above needs a digit: a text without any skips them all.
_NEED_DIGITS = frozenset({PHONE, CARD, SSN, IBAN})


def _has_digit(text: str) -> bool:
    """Whether `text` has a digit: a few substring searches; a text with characters
    beyond ASCII (which may hold other scripts' digits) always counts as having one."""
    return not text.isascii() or any(digit in text for digit in "0123456789")

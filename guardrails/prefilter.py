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
# looser than the recognizer it guards, so it never hides a match.
MIGHT_CONTAIN: dict[str, re.Pattern[str]] = {
    EMAIL: re.compile(r"@"),
    PHONE: re.compile(r"\d(?:\D{0,3}\d){6}"),
    CARD: re.compile(r"\d(?:[ \-]?\d){11}"),
    SSN: re.compile(r"\d{3}[- .]?\d{2}[- .]?\d{4}|\d{5}-\d{4}|\d{3}-\d{6}"),
    # presidio's IBAN pattern needs at least two groups of four after the check digits.
    IBAN: re.compile(r"[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]{4}){2}"),
    IP: re.compile(r"\d\.\d|[0-9A-Fa-f]:[0-9A-Fa-f:]|::"),
    SECRET: re.compile(
        r"\bxox[abposre]-|xapp-|hooks\.slack|\bsk-[\w-]{20}|(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]"
        r"|(?i:aws_?secret)|gh[pousr]_|github_pat_|AIza|k_live_|PRIVATE KEY"
    ),
    # No check for PERSON: names are written in lower case too ("my name is borna
    # jerković"), and the tagger reads the whole message anyway.
}


def worth_running(text: str, entities: Iterable[str]) -> list[str]:
    """The entities of `entities` that `text` might hold (all those with no check)."""
    return [e for e in entities if e not in MIGHT_CONTAIN or MIGHT_CONTAIN[e].search(text)]

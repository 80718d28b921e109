"""What stays of a personal value masked partially: the same in stored text
(guardrails/at_rest.py) and on an approver's card (guardrails/redaction.py), so a person
recognises the one value in both."""

from __future__ import annotations

import re

from guardrails.entities import EMAIL, IP, PERSON

KEEP_LAST = 4  # characters of a number that survive: **** **** **** 1111


def partial_form(entity: str, value: str) -> str:
    """`value` with enough left to tell which one it was: an email's first letter and
    domain, a name's initials, an IP address but its last part, a number's last
    characters. Secrets are the caller's: they keep nothing."""
    if entity == EMAIL and "@" in value:
        local, domain = value.rsplit("@", 1)
        return f"{local[:1]}***@{domain}"
    if entity == PERSON:
        return " ".join(f"{word[:1]}." for word in value.split())
    if entity == IP:
        return re.sub(r"[^.:]+$", "*", value)
    shown, out = 0, []
    for char in reversed(value):  # numbers: cards, SSNs, IBANs, phones
        if char.isalnum():
            shown += 1
            out.append(char if shown <= KEEP_LAST else "*")
        else:
            out.append(char)
    return "".join(reversed(out))

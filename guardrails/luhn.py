"""The Luhn checksum every payment card number passes: what tells a card from any other
long number, for the PII recognizers and the log masks alike."""

from __future__ import annotations


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0

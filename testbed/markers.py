"""Random tags that keep one test's texts apart from another's.

A tag starts with a letter. An all-digit one (00256331) reads as a phone number: the
guardrails mask it before the model sees the text, so a scripted reply keyed on it never
matches and the test fails about once in every 1,500 tags. Letters alone are no better:
the name tagger takes some of them (geglenga) for a person's name.
"""

from __future__ import annotations

import secrets

FIRST = "abcdef"


def new_marker(length: int = 8) -> str:
    """`length` characters: a letter, then hexadecimal digits."""
    return secrets.choice(FIRST) + secrets.token_hex(length)[: length - 1]

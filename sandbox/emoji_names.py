"""Slack's emoji shortcodes (`:raising_hand:`, `:double_vertical_bar:`), for the sandbox page.

Slack names most emoji as GitHub does; the `emoji` package keeps those names as aliases
beside the Unicode CLDR names, so the page can show every shortcode the product (or a
person) writes, not just a hand-picked few.
"""

from __future__ import annotations

import functools
import re

# Slack's shortcodes: lower case, digits, "_", "+" and "-" (":+1:", ":e-mail:").
SLACK_NAME = re.compile(r"[a-z0-9_+-]+")
# Slack names a few emoji unlike GitHub and CLDR do (CLDR: ":stop_sign:").
SLACK_ONLY = {"octagonal_sign": "\U0001f6d1"}


@functools.cache
def shortcodes() -> dict[str, str]:
    """Shortcode (without colons) -> emoji; empty when the `emoji` package is missing."""
    try:
        import emoji
    except ImportError:  # installed with the `embedded` extra; the page has a short fallback
        return {}
    names: dict[str, str] = dict(SLACK_ONLY)
    for character, data in emoji.EMOJI_DATA.items():
        # GitHub's (Slack's) aliases first, then the CLDR name for the rest.
        for name in (*data.get("alias", ()), data["en"]):
            key = name.strip(":")
            if SLACK_NAME.fullmatch(key):
                names.setdefault(key, character)
    return names

"""The sandbox page can show every emoji shortcode the product writes."""

from __future__ import annotations

import re
from pathlib import Path

from sandbox.emoji_names import shortcodes

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("core", "bot", "review", "connectors", "guardrails", "rag", "templates")
# `:name:` in a string; not "::" (slices, IPv6) nor ids such as f"run:{id}:call:{n}".
SHORTCODE = re.compile(r"(?<![\w:}]):([a-z][a-z0-9_+-]*[a-z0-9+]):(?![\w:{])")
NOT_EMOJI = {"emoji"}  # a comment's placeholder (":emoji:") in bot/intake/channel_questions.py


def test_every_shortcode_in_the_product_has_an_emoji() -> None:
    """:double_vertical_bar:, :raising_hand: and the rest render as emoji, not raw text."""
    used = {
        name
        for folder in PRODUCT
        for path in (REPO / folder).rglob("*")
        if path.suffix in {".py", ".yaml"}
        for name in SHORTCODE.findall(path.read_text())
    } - NOT_EMOJI
    assert {"double_vertical_bar", "raising_hand", "white_check_mark"} <= used
    assert sorted(name for name in used if name not in shortcodes()) == []

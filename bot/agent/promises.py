"""Whether a reply promises that the agent will do something: "I will ask the customer
for a photo of the fault." An agent acts by calling its tools before it replies, so a
promise in the reply is an action the run did not take (bot/agent/loop.py asks the model
once more to take it)."""

from __future__ import annotations

import re

# "I will" / "I'll" / "I am going to" and a verb, except those that promise nothing to
# do ("I will need ...", "I'll be glad ...", "I will let you know").
PROMISE = re.compile(
    r"\bI(?:\s+will|'ll|\u2019ll|\s+am\s+going\s+to|\s+shall)(?:\s+(?:now|also|then|first))?"
    r"\s+(?!(?:not|need|be|have|let|try|keep|wait)\b)[a-z]+",
    re.IGNORECASE,
)
SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
# Where the reply's own words end and a text it drafts or quotes for someone begins: "A
# draft follow-up:", "Hi Hank, ... I'll prepare the renewal" is the sender's promise.
QUOTED_FROM = re.compile(r"(?:^|\n)[ \t]*(?:>|```|(?:hi|hello|dear)\b)|:[ \t]*(?:\n|$)", re.I)


def promised_action(reply: str) -> str | None:
    """The first sentence of the reply's own words (not of a text it drafts or quotes)
    that promises an action, as written, or None."""
    own = QUOTED_FROM.split(reply, maxsplit=1)[0]
    for sentence in SENTENCE.findall(own):
        if PROMISE.search(sentence):
            return " ".join(sentence.split())
    return None

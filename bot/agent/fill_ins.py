"""Blanks left for someone to fill in, in the words an action would send.

Asked to email a customer, a 1.5B model ended the body with "Best regards,\\n[Your Name]";
an approver in a hurry would have sent that to the customer. An action whose text holds
such a blank is sent back to the model like one with invalid arguments
(`bot.agent.loop`), told to write it without.

Only square brackets that name something to fill in ("[Your Name]", "[Company name]",
"[Insert date]"): citations ("[1]"), Markdown links ("[text](url)") and the guardrails'
placeholders for hidden personal data ("<EMAIL_1>", restored before anything is sent)
are not blanks.
"""

from __future__ import annotations

import re
from typing import Any

from core.schemas import ToolCall

BLANK = re.compile(
    r"\[(?=[^\]]*\b(?:name|your|insert|recipient|signature|position|title|phone)\b)"
    r"[A-Za-z][A-Za-z' ]{0,38}\](?!\()",
    re.IGNORECASE,
)


# A last line that only stands for the sender's name.
SIGNATURE_BLANK = re.compile(
    r"^\s*\[?\s*(?:your|sender'?s?|my)\s+(?:full\s+)?name\s*\]?\s*$", re.IGNORECASE
)


def without_signature_blank(call: ToolCall) -> ToolCall:
    """``call`` with a blank signature line ("[Your Name]", "Your Name") taken off the end
    of each text argument."""
    arguments = {
        key: _unsigned(value) if isinstance(value, str) else value
        for key, value in call.arguments.items()
    }
    if arguments == call.arguments:
        return call
    return call.model_copy(update={"arguments": arguments})


def _unsigned(text: str) -> str:
    lines = text.rstrip().split("\n")
    last = lines[-1]
    if len(lines) > 1 and (SIGNATURE_BLANK.match(last) or BLANK.fullmatch(last.strip())):
        return "\n".join(lines[:-1]).rstrip()
    return text


def blanks(call: ToolCall) -> list[tuple[str, str]]:
    """The (argument, blank) pairs in ``call``'s text arguments, first blank of each."""
    found = []
    for key, value in call.arguments.items():
        for text in _texts(value):
            match = BLANK.search(text)
            if match:
                found.append((key, match.group(0)))
                break
    return found


def problem(found: list[tuple[str, str]]) -> str:
    """What the model is told of an action's blanks."""
    listed = ", ".join(f"{key} holds {blank}" for key, blank in found)
    return (
        f"{listed}: a blank someone would have to fill in. Write the text as it should be "
        "sent, without blanks (end an email with a closing such as 'Best regards' and no "
        "name)"
    )


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []

"""Which replies promise an action: the agent acts before it replies, so "I will ..." in
a reply is something the run did not do."""

from __future__ import annotations

import pytest

from bot.agent.promises import promised_action


@pytest.mark.parametrize(
    "reply",
    [
        "I found ticket 921. I will ask the customer for a photo of the fault.",
        "I'll email Hank the quote.",
        "I am going to mark ticket 859 as solved.",
        "Ticket 512 is open. I will now add a public reply.",
    ],
)
def test_a_reply_saying_what_the_agent_will_do_promises_an_action(reply: str) -> None:
    promise = promised_action(reply)

    assert promise is not None and promise in reply and promise.startswith("I")


@pytest.mark.parametrize(
    "reply",
    [
        "I couldn't find this in the knowledge base.",
        "I will need the order number to look it up.",
        "I'll let you know when the approver has decided.",
        "The reply on ticket 512 is waiting for approval.",
        "Willow said she will call back on Monday.",
        "Hank asked about SSO. A draft follow-up:\n\nHi Hank, I'll prepare the renewal.",
        "Here is a reply you could send.\n\nHello Jo, I will send a new widget today.",
        "> I will call you on Monday.",
    ],
)
def test_other_replies_promise_nothing(reply: str) -> None:
    assert promised_action(reply) is None

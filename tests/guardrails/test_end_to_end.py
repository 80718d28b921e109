"""The issue's main path, against real services: a message with an e-mail address and a
card number reaches the LLM emulator redacted, the approved e-mail goes to the real
address over real SMTP, and the logs of the run carry neither value."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from email.message import EmailMessage
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from pydantic import BaseModel, ConfigDict
from structlog.testing import LogCapture, capture_logs

from core.llm.providers import build_chain
from core.llm.structured import StructuredLLM
from guardrails.facade import PLACEHOLDER_RULE, Guardrails
from guardrails.log_redaction import redact_pii
from sandbox.openai_emulator import OpenAIEmulator
from sandbox.openai_script import Reply

ADDRESS = "ana.lopez@example.com"
CARD = "4111 1111 1111 1111"
MESSAGE = f"Please send the refund confirmation to {ADDRESS}; my card was {CARD}."
RAW_VALUES = (ADDRESS, CARD, CARD.replace(" ", ""), "ana.lopez")


class EmailProposal(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str
    subject: str
    body: str


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append(envelope)
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@contextmanager
def logs_through_redactor() -> Iterator[list[MutableMapping[str, Any]]]:
    """structlog configured as production adds redact_pii: the processor, then a capture
    in place of the renderer."""
    capture = LogCapture()
    previous = structlog.get_config()
    structlog.configure(
        processors=[redact_pii, capture],
        cache_logger_on_first_use=False,
    )
    try:
        yield capture.entries
    finally:
        structlog.configure(**previous)


def test_redacted_to_the_model_real_address_after_approval_no_pii_in_logs(
    guardrails: Guardrails, tenant: int, llm: OpenAIEmulator
) -> None:
    """The model sees <EMAIL_1> and <CARD>; its proposal, once checked and restored, is
    delivered to the real address; no log line holds the address or the card."""
    log = structlog.get_logger("test.request")
    with logs_through_redactor() as entries:
        log.info("request.received", text=MESSAGE, meta={"from": [ADDRESS]})
        screened = guardrails.screen_inbound(tenant, "C9:1.1", MESSAGE)

        llm.script(
            Reply(
                content={
                    "to": "<EMAIL_1>",
                    "subject": "Your refund",
                    "body": "Hello, your refund is on its way.",
                }
            )
        )
        chain = build_chain(
            [("primary", llm.base_url, "key", "model-a")],
            timeout=5.0,
            max_retries=0,
            circuit_failures=5,
            circuit_reset=60.0,
        )
        proposal = StructuredLLM(chain, malformed_retries=0).ask(
            EmailProposal,
            [
                {"role": "system", "content": PLACEHOLDER_RULE},
                {"role": "user", "content": screened.text_for_llm},
            ],
            on_call=lambda _record: None,
        )
        check = guardrails.check_tool(
            tenant, "C9:1.1", "send_email", proposal.model_dump(), channel="C9"
        )
        log.info("action.approved", arguments=check.arguments)

    sent_to_model = str(llm.requests()[0]["messages"])
    assert "<EMAIL_1>" in sent_to_model and "<CARD>" in sent_to_model
    assert not any(value in sent_to_model for value in RAW_VALUES)

    assert check.decision.allowed
    with smtp_sink() as (inbox, port):
        message = EmailMessage()
        message["From"] = "bot@acme.test"
        message["To"] = check.arguments["to"]
        message["Subject"] = check.arguments["subject"]
        message.set_content(check.arguments["body"])
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            client.send_message(message)
    assert [e.rcpt_tos for e in inbox.envelopes] == [[ADDRESS]]

    logged = repr(entries)
    assert "request.received" in logged and "<EMAIL>" in logged
    assert not any(value in logged for value in RAW_VALUES)


def test_guardrails_own_log_lines_carry_counts_not_values(
    guardrails: Guardrails, tenant: int
) -> None:
    """Even without the log processor, screening logs how many values it hid, never which."""
    with capture_logs() as entries:
        guardrails.screen_inbound(tenant, "C9:2.1", MESSAGE)
    hidden = [e for e in entries if e["event"] == "guardrails.pii_hidden"]
    assert hidden and hidden[0]["counts"] == {"EMAIL_ADDRESS": 1, "CREDIT_CARD": 1}
    assert not any(value in repr(entries) for value in RAW_VALUES)

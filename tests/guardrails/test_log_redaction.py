"""The structlog processor for bot/logs.py: personal data never reaches a log line."""

from __future__ import annotations

from typing import Any

from guardrails.log_redaction import PiiLogRedactor, redact_pii
from guardrails.pii import build_detector
from guardrails.redaction import Redactor


def test_values_nested_anywhere_in_an_event_are_masked() -> None:
    """Strings in the message, in nested dicts and lists and in a rendered exception are
    masked; ids and numbers the machinery writes stay as they are."""
    processor = PiiLogRedactor(Redactor(build_detector()))
    event: dict[str, Any] = {
        "event": "reply for ana.lopez@example.com",
        "tenant_id": 7,
        "payload": {"to": ["+1 415 555 0132"], "card": "4111-1111-1111-1111", "n": 3},
        "exception": "ValueError: bad token xoxb-1111-2222-abcdefghijkl",
    }
    assert processor(None, "info", event) == {
        "event": "reply for <EMAIL>",
        "tenant_id": 7,
        "payload": {"to": ["<PHONE>"], "card": "<CARD>", "n": 3},
        "exception": "ValueError: bad token <SECRET>",
    }


def test_the_ready_made_processor_works_without_setup() -> None:
    """`redact_pii`, the plain callable bot/logs.py adds, masks on first use."""
    assert redact_pii(None, "info", {"event": "mail bo@example.org"}) == {"event": "mail <EMAIL>"}


def test_a_local_url_stays_readable_while_a_real_address_is_masked() -> None:
    """Loopback addresses name every machine and no person, so a URL on 127.0.0.1 (the
    sandbox's "ready" line) is logged as it is; a public or private address is still masked."""
    processor = PiiLogRedactor(Redactor(build_detector()))
    event = {
        "event": "sandbox.ready",
        "url": "http://127.0.0.1:8000",
        "ipv6": "[::1]:8000",
        "client": "203.0.113.7 via 10.20.30.40",
    }
    assert processor(None, "info", event) == {
        "event": "sandbox.ready",
        "url": "http://127.0.0.1:8000",
        "ipv6": "[::1]:8000",
        "client": "<IP> via <IP>",
    }

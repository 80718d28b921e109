"""The structlog processor for bot/logs.py: personal data never reaches a log line, and
logging costs no process the seconds presidio takes to import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from guardrails.corpora import load_pii_corpus
from guardrails.entities import CARD, EMAIL, IBAN, IP, PERSON, PHONE, SSN
from guardrails.evaluation import score_pii
from guardrails.log_masks import find, mask
from guardrails.log_redaction import redact_pii
from guardrails.pii import build_detector

REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"
STRUCTURED = (EMAIL, PHONE, CARD, SSN, IBAN, IP)  # every kind the masks look for


def test_values_nested_anywhere_in_an_event_are_masked() -> None:
    """Strings in the message, in nested dicts and lists and in a rendered exception are
    masked; ids and numbers the machinery writes stay as they are."""
    event: dict[str, Any] = {
        "event": "reply for ana.lopez@example.com",
        "tenant_id": 7,
        "payload": {"to": ["+1 415 555 0132"], "card": "4111-1111-1111-1111", "n": 3},
        "exception": "ValueError: bad token xoxb-1111-2222-abcdefghijkl",
    }
    assert redact_pii(None, "info", event) == {
        "event": "reply for <EMAIL>",
        "tenant_id": 7,
        "payload": {"to": ["<PHONE>"], "card": "<CARD>", "n": 3},
        "exception": "ValueError: bad token <SECRET>",
    }


def test_what_logs_are_made_of_is_left_alone() -> None:
    """Event names, Slack ids and timestamps, durations, dates and versions stay readable."""
    ordinary = [
        "request.recorded",
        "Ev0YGV19A6G0",
        "1796526816.656559",
        "2026-12-06T03:10:58.123456Z",
        "took 12.5 ms",
        "0041_smtp_batches.sql",
        "aiosmtpd 1.4.6",
        "queue chatops-test-1a2b3c4d5e",
    ]
    assert [mask(text) for text in ordinary] == ordinary


def test_masks_find_what_the_screen_finds_on_the_labelled_corpus() -> None:
    """On the presidio-research texts, the log masks find each kind of value they look for
    at least as often as the screen that guards the model does (names are the screen's
    alone)."""
    corpus = load_pii_corpus(CORPORA / "pii")
    masks = score_pii(find, corpus)
    screen = score_pii(build_detector().detect, corpus)
    for entity in STRUCTURED:
        assert masks[entity].recall >= min(screen[entity].recall, 0.99), entity
    assert masks[PERSON].found == 0


@pytest.mark.parametrize("command", ["migrate", "serve", "smtp"])
def test_logging_imports_no_presidio(command: str) -> None:
    """A process that logs (as every `chatops` command does at start) masks the line
    without importing presidio or what it pulls in (spaCy, transformers, torch)."""
    script = (
        "import sys, importlib, structlog\n"
        "from bot.logs import configure_logging\n"
        f"importlib.import_module('bot.commands.{command}')\n"
        "configure_logging()\n"
        "structlog.get_logger('t').info('mail.from', sender='ana.lopez@example.com')\n"
        "heavy = ('presidio_analyzer', 'presidio_anonymizer', 'spacy', 'transformers', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout)["sender"] == "<EMAIL>"
    assert done.stderr.strip().splitlines()[-1] == "[]"


def test_a_local_url_stays_readable_while_a_real_address_is_masked() -> None:
    """Loopback addresses name every machine and no person, so a URL on 127.0.0.1 (the
    sandbox's "ready" line) is logged as it is; a public or private address is still masked."""
    event = {
        "event": "sandbox.ready",
        "url": "http://127.0.0.1:8000",
        "ipv6": "[::1]:8000",
        "client": "203.0.113.7 via 10.20.30.40",
    }
    assert redact_pii(None, "info", event) == {
        "event": "sandbox.ready",
        "url": "http://127.0.0.1:8000",
        "ipv6": "[::1]:8000",
        "client": "<IP> via <IP>",
    }


def test_a_correlation_id_is_logged_as_it_is() -> None:
    """The request id every line of a request carries is ours, never personal data, and
    is written whole even where its hex looks like an IBAN to the masks."""
    looks_like_iban = "ab543dfdebfa461b85c113b296a3eaaf"
    assert mask(looks_like_iban) == "<IBAN>"
    event = {"event": "email.received", "correlation_id": looks_like_iban}
    assert redact_pii(None, "info", dict(event)) == event

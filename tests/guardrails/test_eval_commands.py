"""`chatops eval pii` and `chatops eval injection` on the shared corpora."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from guardrails.evaluation import run_injection, run_pii

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"


def test_eval_pii_prints_precision_recall_and_f1_per_entity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The table has a row per scored entity, and the kinds the issue sets an aim for
    reach F1 0.9 on the corpus."""
    assert run_pii(None, argparse.Namespace(data=CORPORA / "pii", baseline=False)) == 0
    out = capsys.readouterr().out
    assert "PII detection on 3709 labelled texts" in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if " | " in line}
    del rows["entity"]  # the header
    assert set(rows) == {
        "CREDIT_CARD",
        "EMAIL_ADDRESS",
        "IBAN_CODE",
        "IP_ADDRESS",
        "PERSON",
        "PHONE_NUMBER",
        "US_SSN",
    }
    for entity in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN"):
        assert float(rows[entity][-1]) >= 0.9, rows[entity]


def test_eval_injection_prints_detection_and_false_alarm_rates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Attack groups and benign groups (including the email corpus) each get a rate."""
    assert run_injection(None, argparse.Namespace(data=CORPORA)) == 0
    out = capsys.readouterr().out
    assert "attacks (detection rate)" in out and "benign (false alarm rate)" in out
    assert "in-the-wild jailbreaks" in out
    email_row = next(line for line in out.splitlines() if line.startswith("email corpus"))
    assert int(email_row.split()[2]) == 82  # every message of the corpus was read

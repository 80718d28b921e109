"""`chatops eval agent --against baseline.json`: the shipped templates still pass every
case their baseline passed, and a broken template is caught with the cases it breaks named."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.openai_emulator import OpenAIEmulator
from tests.support.processes import REPO
from tests.templates.not_found_model import eval_knowledge_against_a_not_found_model

TEMPLATES = REPO / "templates"
BASELINE = TEMPLATES / "golden" / "baseline.json"


def _eval(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LLM_"))},
        "DATABASE_URL": database_url,
        "SLACK_SIGNING_SECRET": "s",
    }
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "eval", "agent", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_shipped_templates_pass_against_their_baseline(database_url: str) -> None:
    """The baseline shipped beside the golden sets covers every case, and replaying the
    shipped templates against it finds no regression."""
    baseline = json.loads(BASELINE.read_text())
    assert baseline["cases_run"] == baseline["cases_in_sets"] == len(baseline["cases"])
    assert all(case["passed"] for case in baseline["cases"])

    done = _eval(database_url, "--against", str(BASELINE))

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "No regressions: every case that passed in the baseline passes now." in done.stdout
    assert "New since the baseline" not in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_broken_template_fails_against_the_baseline_naming_the_cases(
    database_url: str, tmp_path: Path
) -> None:
    """A support template that lost a tool (an edit that slips through review) fails the
    comparison: the cases that used the tool are named with the checks that now fail,
    while a case added since the baseline is reported without failing the run."""
    folder = tmp_path / "templates"
    shutil.copytree(TEMPLATES, folder)
    spec = folder / "support.yaml"
    spec.write_text(spec.read_text().replace("  - zendesk_set_status\n", ""))
    golden = folder / "golden" / "support.jsonl"
    first = json.loads(golden.read_text().splitlines()[0])
    first["id"] = "support-refund-policy-asked-again"
    with golden.open("a") as cases:
        cases.write(json.dumps(first) + "\n")

    done = _eval(
        database_url, "--data", str(folder), "--template", "support", "--against", str(BASELINE)
    )

    printed = done.stdout
    assert done.returncode == 1, printed + done.stderr[-3000:]
    assert "3 cases passed in the baseline and fail now:" in printed
    regressions = printed.split("fail now:")[1].split("New since the baseline")[0]
    for case in (
        "support-reply-and-solve",
        "support-set-pending",
        "support-chain-solve-if-confirmed",
    ):
        assert f"support / {case} (" in regressions
    assert "now fails: called zendesk_set_status; actions proposed" in regressions
    assert (
        "it proposed zendesk_add_comment; in the baseline, "
        "zendesk_add_comment, then zendesk_set_status"
    ) in regressions
    assert "support-refund-policy-cited" not in regressions
    assert "New since the baseline (1, not counted as regressions):" in printed
    assert "support / support-refund-policy-asked-again: passes" in printed
    # Only support ran: the other templates' cases are not reported as gone.
    assert "no longer in the golden sets" not in printed
    assert "Traceback" not in printed and "CaseResult(" not in printed


def test_an_unreadable_baseline_is_a_usage_error(database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.json"
    not_a_baseline = tmp_path / "other.json"
    not_a_baseline.write_text('{"results": []}')

    gone = _eval(database_url, "--template", "knowledge", "--against", str(missing))
    wrong = _eval(database_url, "--template", "knowledge", "--against", str(not_a_baseline))

    assert gone.returncode == 2 and f"There is no baseline file at {missing}." in gone.stdout
    assert wrong.returncode == 2
    assert "is not a baseline written by `chatops eval agent --json`" in wrong.stdout


def test_a_served_model_is_compared_with_the_baseline_too(
    llm: OpenAIEmulator, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --base-url (how the benchmark runs a real model), a model that always says
    "not found" fails the knowledge answers the baseline passed, each named; the
    not-found cases it still gets right are no regression, and the report says the
    baseline was made against another model."""
    code, knowledge = eval_knowledge_against_a_not_found_model(llm, database_url, against=BASELINE)

    printed = capsys.readouterr().out
    assert code == 1
    assert (
        "Note: the baseline was made against scripted emulator (each case's own script); "
        f"this run is against emulator-chat at {llm.base_url}."
    ) in printed
    regressions = printed.split("fail now:")[1]
    answers = [c.id for c in knowledge if c.kind == "answer"]
    for case_id in answers:
        assert f"knowledge / {case_id} (answer" in regressions
    assert "knowledge / knowledge-vpn-reset-cited (answer)\n    now fails: " in regressions
    assert 'states "Reset token"' in regressions
    right = [c.id for c in knowledge if c.kind == "not_found"]
    assert right and all(f"knowledge / {case_id} (" not in regressions for case_id in right)

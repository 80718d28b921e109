"""Toxicity with a real (tiny) transformers model loaded from disk, and honest "off".

The model is a one-layer BERT trained here on a dozen sentences (see tiny_model.py), so
loading, tokenising and inference are the code production runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.db import Pool
from core.errors import StartupError
from guardrails.classifier import ClassifierUnavailable, load_classifier
from guardrails.facade import TOXIC_DRAFT_NOTICE, TOXIC_INBOUND_NOTICE, Guardrails, build_guardrails
from guardrails.policy import TenantPolicy, ToxicityPolicy
from guardrails.toxicity import ToxicityCheck
from tests.guardrails.conftest import set_policy, settings_for

TOXIC = "you are a stupid idiot"
POLITE = "thanks for the help with my refund"


@pytest.fixture(scope="module")
def toxic_guardrails(database_url: str, pool: Pool, tiny_model_dirs: dict[str, Path]) -> Guardrails:
    settings = settings_for(
        database_url,
        guardrails_toxicity_model=str(tiny_model_dirs["toxicity"]),
        guardrails_toxicity_threshold=0.8,
    )
    return build_guardrails(settings, pool)


def test_without_a_model_the_check_says_it_is_off(guardrails: Guardrails, tenant: int) -> None:
    """No model configured: status says toxicity is off, and nothing is flagged."""
    assert guardrails.status().lines()[0] == (
        "toxicity: off (no model configured: set GUARDRAILS_TOXICITY_MODEL)"
    )
    assert guardrails.screen_inbound(tenant, "C2:1.1", TOXIC).action == "allow"


def test_the_model_loads_and_scores_with_the_network_blocked(
    tiny_model_dirs: dict[str, Path], no_network: list[str]
) -> None:
    """The local model loads and classifies with sockets blocked: nothing is fetched."""
    classifier = load_classifier(str(tiny_model_dirs["toxicity"]))
    assert classifier.scores(TOXIC)["toxic"] > 0.8
    assert classifier.scores(POLITE)["toxic"] < 0.2
    long_rant = " ".join([POLITE] * 40 + [TOXIC])  # past the tiny model's 64 positions
    assert classifier.scores(long_rant)["toxic"] > 0.8
    assert no_network == []


def test_status_names_the_model_and_threshold(
    toxic_guardrails: Guardrails, tiny_model_dirs: dict[str, Path]
) -> None:
    """With a model, status says toxicity is on, with which model, labels and threshold."""
    assert toxic_guardrails.status().lines()[0] == (
        f"toxicity: on (model {tiny_model_dirs['toxicity']}, labels toxic, threshold 0.8)"
    )


def test_a_toxic_message_is_blocked_or_reviewed_per_tenant_policy(
    toxic_guardrails: Guardrails, tenant: int
) -> None:
    """Policy "block" refuses the message with a notice and nothing for the model;
    "review" lets it through but requires approval; polite text passes."""
    set_policy(toxic_guardrails, tenant, TenantPolicy(toxicity=ToxicityPolicy(action="block")))
    blocked = toxic_guardrails.screen_inbound(tenant, "C2:2.1", TOXIC)
    assert blocked.blocked and blocked.text_for_llm == ""
    assert blocked.notice_for_people == TOXIC_INBOUND_NOTICE
    assert toxic_guardrails.screen_inbound(tenant, "C2:2.2", POLITE).action == "allow"

    set_policy(toxic_guardrails, tenant, TenantPolicy(toxicity=ToxicityPolicy(action="review")))
    reviewed = toxic_guardrails.screen_inbound(tenant, "C2:2.3", TOXIC)
    assert reviewed.action == "review" and reviewed.requires_approval
    assert reviewed.text_for_llm == TOXIC
    assert reviewed.flags[0].kind == "toxicity"


def test_a_toxic_draft_is_not_posted(toxic_guardrails: Guardrails, tenant: int) -> None:
    """A draft over the threshold is replaced by a notice when the policy blocks."""
    set_policy(toxic_guardrails, tenant, TenantPolicy(toxicity=ToxicityPolicy(action="block")))
    draft = toxic_guardrails.screen_draft(tenant, "C2:3.1", "I hate you, you worthless moron")
    assert draft.action == "block"
    assert draft.text_for_people == "" and draft.notice_for_people == TOXIC_DRAFT_NOTICE


def test_a_missing_model_directory_stops_the_process_at_start(
    database_url: str, pool: Pool, tmp_path: Path
) -> None:
    """A configured path without a model is a start-up error naming it, not a silent off."""
    missing = tmp_path / "no-model-here"
    with pytest.raises(StartupError, match="no-model-here is not a local model directory"):
        build_guardrails(settings_for(database_url, guardrails_toxicity_model=str(missing)), pool)
    with pytest.raises(ClassifierUnavailable):
        load_classifier(str(missing))


def test_a_model_without_toxic_labels_reports_off(tiny_model_dirs: dict[str, Path]) -> None:
    """A model whose labels are none of the configured toxic ones is reported off, with
    its labels, instead of silently scoring everything clean."""
    check = ToxicityCheck(load_classifier(str(tiny_model_dirs["injection"])), threshold=0.8)
    status = check.status()
    assert (status.state, status.detail.split(": ")[-1]) == (
        "off",
        "set GUARDRAILS_TOXICITY_LABELS",
    )
    assert "its labels: SAFE, INJECTION" in status.detail
    assert not check.check(TOXIC).checked

"""What `/agent status` says about the language model."""

from __future__ import annotations

import json

from core.settings import load_settings
from review.model_status import model_line

SECRET = "sandbox-signing-secret"
DATABASE = "postgresql://unused/chatops"  # settings need one; nothing connects


def test_offline_mode_says_so_and_how_to_turn_a_model_on() -> None:
    """No base URL and no key: offline mode, what it means, and the setting that ends it."""
    settings = load_settings(
        database_url=DATABASE,
        slack_signing_secret=SECRET,
        openai_base_url="",
        openai_api_key="",
        llm_fallback_providers="",
    )
    line = model_line(settings)
    assert line.startswith("Model: none, offline mode")
    assert "OPENAI_BASE_URL" in line


def test_the_model_is_named_with_its_note_and_fallbacks_but_not_its_endpoint() -> None:
    """The demo model says it is not AI; a fallback is named; URLs and keys stay private."""
    fallback = {
        "name": "groq",
        "base_url": "https://groq.example/v1",
        "api_key": "k",
        "model": "llama",
    }
    settings = load_settings(
        database_url=DATABASE,
        slack_signing_secret=SECRET,
        openai_base_url="http://127.0.0.1:9999/v1",
        openai_api_key="secret-key",
        llm_model="sandbox-demo-model",
        llm_model_note="the sandbox's demo model: fixed rules, not AI",
        llm_fallback_providers=json.dumps([fallback]),
    )
    line = model_line(settings)
    assert line == (
        "Model: `sandbox-demo-model` (the sandbox's demo model: fixed rules, not AI); "
        "if it fails: `llama` (groq)"
    )

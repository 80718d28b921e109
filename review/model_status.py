"""What `/agent status` says about the language model: which one answers, or offline mode.

People who get thin answers need to know why; the line names the primary model (with the
operator's note, e.g. the sandbox's "fixed rules, not AI"), its fallbacks, or says that no
model is configured and how to configure one. Names only: endpoints and keys stay private.
"""

from __future__ import annotations

from core.settings import Settings

OFFLINE_LINE = (
    "Model: none, offline mode: answers only show what the knowledge search found, and "
    "nothing is drafted or proposed. To turn a model on, whoever runs this app sets "
    "OPENAI_BASE_URL (and OPENAI_API_KEY) to an OpenAI-compatible service."
)


def model_line(settings: Settings) -> str:
    """One line for `/agent status`."""
    providers = settings.llm_providers
    if not providers:
        return OFFLINE_LINE
    primary, fallbacks = providers[0], providers[1:]
    note = f" ({settings.llm_model_note})" if settings.llm_model_note else ""
    line = f"Model: `{primary.model}`{note}"
    if fallbacks:
        line += "; if it fails: " + ", ".join(f"`{p.model}` ({p.name})" for p in fallbacks)
    return line

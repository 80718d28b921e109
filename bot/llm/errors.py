"""What can go wrong when asking a language model, in words the loop can act on."""

from __future__ import annotations


class LLMError(Exception):
    """Root of the LLM errors; each one's message is fit to show a person."""


class LLMUnavailable(LLMError):
    """Every configured provider failed or has its circuit open."""


class MalformedOutput(LLMError):
    """The model kept answering with output that does not fit the schema."""

"""What can go wrong when asking a language model, in words the loop can act on."""

from __future__ import annotations


class LLMError(Exception):
    """Root of the LLM errors; each one's message is fit to show a person."""


class LLMUnavailable(LLMError):
    """Every configured provider failed or has its circuit open."""


class LLMRequestRejected(LLMUnavailable):
    """No provider answered, and at least one refused the request itself (HTTP 400, 422,
    401, 404...): retrying the same request cannot help, and the service is not down.

    A subclass of LLMUnavailable so that code which only knows that one still ends the
    run with an apology; code that knows this one can tell the person the truth.
    """


class MalformedOutput(LLMError):
    """The model kept answering with output that does not fit the schema."""

"""Guardrails: personal data kept from the model and the logs, toxicity and prompt-injection
screening, tool policy and budgets.

The request paths use one object, `guardrails.facade.Guardrails` (built once per process
by `build_guardrails(settings, pool)`); `guardrails.log_redaction.redact_pii` is the
structlog processor, and `guardrails.status` serves /agent status in the async listener.
Nothing here runs at import.
"""

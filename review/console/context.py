"""What every `/agent` handler is given and what it answers with."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from connectors.credentials import CredentialCipher
from core.agent_template import AgentTemplate
from core.db import AsyncPool
from review.authority import Verdict


@dataclass(frozen=True)
class Reply:
    text: str
    response_type: str = "ephemeral"
    blocks: list[dict[str, Any]] | None = None  # when given, `text` is the fallback


@dataclass(frozen=True)
class GuardrailStatus:
    """What `status` shows about the guardrails: configured checks and the budget ratio."""

    check_lines: list[str]
    budget_warn_ratio: float


@dataclass(frozen=True)
class Invocation:
    """One `/agent` command: who typed it, where, and what the handlers may need."""

    pool: AsyncPool
    client: AsyncWebClient
    tenant_id: int
    user: str
    channel: str  # where it was typed; `/agent channel` without a #channel means this one
    guardrails: GuardrailStatus
    credentials: CredentialCipher
    templates: Mapping[str, AgentTemplate]
    model: str | None  # what `status` says about the language model (review/model_status.py)
    # The dispatcher's admin check, for a handler whose authorisation depends on what
    # it is asked to do (a digest to a channel needs an admin, one to yourself does not).
    check_admin: Callable[[], Awaitable[Verdict]]


Handler = Callable[[Invocation, list[str]], Awaitable[Reply]]

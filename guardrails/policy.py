"""Each tenant's guardrail policy: one JSON document in `guardrail_policies`, validated
here when read. A tenant without a row gets the defaults below, which protect by
default: personal data is hidden from the model, and drafts the toxicity model flags
go to review."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import structlog
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.db import Pool
from guardrails.entities import ALL_ENTITIES, EMAIL, IP, PERSON, PHONE

log = structlog.get_logger(__name__)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PiiPolicy(_Strict):
    # placeholders: the model sees <EMAIL_1>, approved actions get the real value back;
    # mask: the model sees <EMAIL>, and nothing can bring the value back; off: no hiding.
    mode: Literal["placeholders", "mask", "off"] = "placeholders"
    # What is hidden from the model at all.
    redact: list[str] = Field(default_factory=lambda: list(ALL_ENTITIES))
    # Of those, what may come back for an approved action. The rest is masked for good:
    # never stored in clear (guardrails/at_rest.py masks it before every INSERT). Cards,
    # SSNs, IBANs and API keys are masked for good whatever this says: the agent has no
    # business acting on them, and they are never stored in clear.
    reversible: list[str] = Field(default_factory=lambda: [EMAIL, PHONE, PERSON, IP])
    # What approvers see in a proposed action: the real values, partly masked values
    # (j***@example.com, **** 1111), or the placeholders as the model wrote them.
    approver_view: Literal["real", "partial", "placeholders"] = "partial"
    # Replies posted back into the same conversation get its own values back.
    restore_in_replies: bool = True


class ToxicityPolicy(_Strict):
    action: Literal["block", "review"] = "review"
    threshold: float | None = Field(default=None, gt=0, le=1)  # None: the deployment's


class InjectionPolicy(_Strict):
    # Whether the person's own message is screened too, not only documents, emails,
    # tool results and other people's messages (which always are).
    screen_requester: bool = True


class ToolRules(_Strict):
    """Allow and deny lists of tool names; `fnmatch` patterns such as "gmail.*" work.
    `allow` None means every tool not denied."""

    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)


class EmailRules(_Strict):
    # Domains that are the company itself; mail to them is internal.
    company_domains: list[str] = Field(default_factory=list)
    # External domains mail may go to; None: any, []: no external mail at all.
    allowed_external_domains: list[str] | None = None
    max_recipients: int | None = Field(default=None, ge=1)
    attachments_outside_company: bool = True
    # Which tool arguments hold recipients and attachments.
    recipient_fields: list[str] = Field(default_factory=lambda: ["to", "cc", "bcc", "recipients"])
    attachment_fields: list[str] = Field(default_factory=lambda: ["attachments"])


class ToolPolicy(_Strict):
    allow: list[str] | None = None
    deny: list[str] = Field(default_factory=list)
    # Tools (fnmatch patterns) whose every call a person approves: no "always allow"
    # rule is offered for them or honoured (review/rules.py).
    always_review: list[str] = Field(default_factory=list)
    # Likewise for email to these recipient domains ("customer.example", "*.gov").
    always_review_domains: list[str] = Field(default_factory=list)
    # Further limits per Slack channel id (or email mailbox), on top of the tenant's.
    channels: dict[str, ToolRules] = Field(default_factory=dict)
    email: EmailRules = Field(default_factory=EmailRules)


class BudgetPolicy(_Strict):
    """Limits per UTC day and calendar month; None means no limit."""

    daily_tokens: int | None = Field(default=None, ge=0)
    monthly_tokens: int | None = Field(default=None, ge=0)
    daily_usd: Decimal | None = Field(default=None, ge=0)
    monthly_usd: Decimal | None = Field(default=None, ge=0)


class TenantPolicy(_Strict):
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    toxicity: ToxicityPolicy = Field(default_factory=ToxicityPolicy)
    injection: InjectionPolicy = Field(default_factory=InjectionPolicy)
    tools: ToolPolicy = Field(default_factory=ToolPolicy)
    budgets: BudgetPolicy = Field(default_factory=BudgetPolicy)


@dataclass
class PolicyStore:
    """Reads and writes tenant policies, keeping each for `cache_seconds` so a busy
    tenant's messages do not each cost a query; a change reaches every process within
    that time."""

    pool: Pool
    cache_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _cache: dict[int, tuple[float, TenantPolicy]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def load(self, tenant_id: int) -> TenantPolicy:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(tenant_id)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        policy = self._read(tenant_id)
        with self._lock:
            self._cache[tenant_id] = (now, policy)
        return policy

    def save(self, tenant_id: int, policy: TenantPolicy, *, updated_by: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(STORE_SQL, (tenant_id, Jsonb(policy.model_dump(mode="json")), updated_by))
        with self._lock:
            self._cache.pop(tenant_id, None)

    def _read(self, tenant_id: int) -> TenantPolicy:
        with self.pool.connection() as conn:
            row = conn.execute(POLICY_SQL, (tenant_id,)).fetchone()
        return parse_policy(tenant_id, row["policy"] if row else None)


POLICY_SQL = "SELECT policy FROM guardrail_policies WHERE tenant_id = %s"
STORE_SQL = """
    INSERT INTO guardrail_policies (tenant_id, policy, updated_by) VALUES (%s, %s, %s)
    ON CONFLICT (tenant_id) DO UPDATE SET policy = EXCLUDED.policy,
      updated_by = EXCLUDED.updated_by, updated_at = now()
"""


async def document_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, *, for_update: bool = False
) -> object | None:
    """The tenant's stored policy document, unvalidated; None when it has none.
    `for_update` locks it until the transaction ends, for a read-change-write."""
    query = POLICY_SQL + (" FOR UPDATE" if for_update else "")
    row = await (await conn.execute(query, (tenant_id,))).fetchone()
    return row["policy"] if row else None


async def store_async(
    conn: AsyncConnection[dict[str, Any]], tenant_id: int, policy: TenantPolicy, updated_by: str
) -> None:
    await conn.execute(STORE_SQL, (tenant_id, Jsonb(policy.model_dump(mode="json")), updated_by))


def parse_policy(tenant_id: int, document: object) -> TenantPolicy:
    """The stored document as a policy; the defaults when there is none."""
    if document is None:
        return TenantPolicy()
    try:
        return TenantPolicy.model_validate(document)
    except ValidationError as exc:
        # A hand-edited document that no longer validates must not stop the tenant's
        # requests; the defaults protect, and the error says what to fix.
        log.error("guardrails.policy_invalid", tenant_id=tenant_id, error=str(exc))
        return TenantPolicy()

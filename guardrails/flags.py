"""What the screens flagged in a conversation, kept so that an approval handled later,
in another process, still shows it. Reasons only: the flagged text is never stored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from psycopg.types.json import Jsonb

from core.db import Pool

FlagKind = Literal["injection", "toxicity", "tool_denied", "budget"]

_TITLES = {
    "injection": "Possible prompt injection",
    "toxicity": "Flagged as toxic",
    "tool_denied": "Tool call refused by policy",
    "budget": "Budget",
}


@dataclass(frozen=True)
class Flag:
    kind: FlagKind
    source: str  # what was screened: "requester", "email", "document", "draft"...
    reasons: tuple[str, ...]

    def for_people(self) -> str:
        """One line for an approver, e.g. "Possible prompt injection (email): tells the
        model to ignore its instructions"."""
        return f"{_TITLES[self.kind]} ({self.source}): {'; '.join(self.reasons)}"


@dataclass(frozen=True)
class FlagLog:
    pool: Pool

    def record(self, tenant_id: int, conversation_key: str, flag: Flag) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                """INSERT INTO guardrail_flags (tenant_id, conversation_key, kind, source, reasons)
                   VALUES (%s, %s, %s, %s, %s)""",
                (tenant_id, conversation_key, flag.kind, flag.source, Jsonb(list(flag.reasons))),
            )

    def for_conversation(self, tenant_id: int, conversation_key: str) -> list[Flag]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                """SELECT kind, source, reasons FROM guardrail_flags
                   WHERE tenant_id = %s AND conversation_key = %s
                   ORDER BY created_at, id""",
                (tenant_id, conversation_key),
            ).fetchall()
        return [Flag(r["kind"], r["source"], tuple(r["reasons"])) for r in rows]

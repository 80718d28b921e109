"""Earlier turns of a conversation, screened for prompt injection like the latest one.

An instruction planted in turn 1 ("when anyone asks later, email the file to ...") is
aimed at the run of turn 2, when only the newest message used to be screened. Each
earlier turn people wrote (a Slack message, an email) is screened once: the verdict is
kept in `screened_turns` under a digest of the turn's text within its conversation, so
later runs read it instead of screening the history again. A flag found in any turn is
recorded on the conversation (the approval card shows it) and returned, so the run
makes all its actions wait for approval. The text itself is never stored here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from psycopg.types.json import Jsonb

from core.db import Pool
from guardrails.flags import Flag, FlagLog
from guardrails.injection import InjectionScreen

log = structlog.get_logger(__name__)

# Turns people wrote; the assistant's own replies and system notes are not screened.
SCREENED_ROLES = frozenset({"user"})

KNOWN_SQL = """
SELECT digest, reasons FROM screened_turns
 WHERE tenant_id = %s AND conversation_key = %s AND digest = ANY(%s)
"""
REMEMBER_SQL = """
INSERT INTO screened_turns (tenant_id, conversation_key, digest, reasons)
VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING
RETURNING digest
"""


@dataclass(frozen=True)
class ScreenedHistory:
    flags: tuple[Flag, ...]  # one per flagged turn
    flagged_turns: frozenset[int]  # positions in the turns given

    @property
    def requires_approval(self) -> bool:
        return bool(self.flags)


@dataclass(frozen=True)
class HistoryScreen:
    pool: Pool
    injection: InjectionScreen
    flag_log: FlagLog

    def screen(
        self,
        tenant_id: int,
        conversation_key: str,
        turns: Sequence[Mapping[str, Any]],
        *,
        source: str,
    ) -> ScreenedHistory:
        """Screen the turns not screened before; the flags of all of them."""
        positions: dict[bytes, list[int]] = {}
        for index, turn in enumerate(turns):
            text = str(turn.get("content") or "")
            if turn.get("role") in SCREENED_ROLES and text.strip():
                positions.setdefault(_digest(text), []).append(index)
        if not positions:
            return ScreenedHistory((), frozenset())
        kind = f"earlier {source}" if source != "requester" else "earlier message"
        newly_flagged: list[tuple[str, ...]] = []
        with self.pool.connection() as conn:
            rows = conn.execute(
                KNOWN_SQL, (tenant_id, conversation_key, list(positions))
            ).fetchall()
            verdicts: dict[bytes, tuple[str, ...]] = {
                bytes(r["digest"]): tuple(r["reasons"]) for r in rows
            }
            for digest, at in positions.items():
                if digest in verdicts:
                    continue
                verdict = self.injection.screen(str(turns[at[0]]["content"]))
                reasons = verdict.reasons if verdict.flagged else ()
                verdicts[digest] = reasons
                first = conn.execute(
                    REMEMBER_SQL, (tenant_id, conversation_key, digest, Jsonb(list(reasons)))
                ).fetchone()
                if reasons and first is not None:
                    newly_flagged.append(reasons)
        for reasons in newly_flagged:
            # On the conversation once per turn, the first time it is screened; after the
            # connection above is given back (the flag log takes one of its own).
            log.warning("guardrails.injection_flagged", source=kind, reasons=list(reasons))
            self.flag_log.record(tenant_id, conversation_key, Flag("injection", kind, reasons))
        flags: list[Flag] = []
        flagged: set[int] = set()
        for digest, at in positions.items():
            if verdicts[digest]:
                flags.append(Flag("injection", kind, verdicts[digest]))
                flagged.update(at)
        return ScreenedHistory(tuple(flags), frozenset(flagged))


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()

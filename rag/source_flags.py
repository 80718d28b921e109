"""Documents people marked as wrong or outdated, and how much that lowers them in search.

A flag is per tenant, document and person (migrations/0010_answer_feedback.sql). It
holds the document's content hash when it was flagged, so re-ingesting the document with
new content lifts the demotion: the source was fixed.

The penalty multiplies a hit's final score (rerank scores lie in [0, 1], RRF scores are
positive, so a factor below 1 always lowers). Each person who flagged takes 20% off,
never more than half in all: enough to sink a flagged document below an equally relevant
unflagged one, not enough to hide a document that is still the only good match (it may
be outdated in one detail and right in the rest; a person still has to fix the source).
A flagged document also loses ties (rag/retriever.py): the reranker scales scores over
the candidates, so equal candidates all score 0, which no factor can move.
"""

from __future__ import annotations

from core.db import AsyncPool, Conn
from core.store import audit

PENALTY_PER_PERSON = 0.8
MIN_FACTOR = 0.5

_PENALTIES = """
    SELECT f.document_id, count(*) AS people
    FROM knowledge_source_flags f
    JOIN knowledge_documents d ON d.id = f.document_id AND d.content_hash = f.content_hash
    GROUP BY f.document_id
"""


def penalty(people: int) -> float:
    """The factor a document's scores are multiplied by when `people` flagged it."""
    return max(MIN_FACTOR, PENALTY_PER_PERSON**people) if people > 0 else 1.0


def flag_penalties(conn: Conn) -> dict[int, float]:
    """Document id -> score factor, for the tenant `conn` is scoped to (rag/tenancy.py):
    row-level security limits both tables to that tenant."""
    return {row["document_id"]: penalty(row["people"]) for row in conn.execute(_PENALTIES)}


async def flag_document(
    pool: AsyncPool, *, tenant_id: int, document_id: int, user: str, run_id: int | None
) -> str | None:
    """Record `user`'s flag on the tenant's document; its title, or None when the tenant
    has no such document (deleted since the answer, or not the tenant's). Flagging twice
    is one flag."""
    async with pool.connection() as conn, conn.transaction():
        row = await (
            await conn.execute(
                """SELECT id, title, content_hash FROM knowledge_documents
                   WHERE id = %s AND tenant_id = %s""",
                (document_id, tenant_id),
            )
        ).fetchone()
        if row is None:
            return None
        await conn.execute(
            """INSERT INTO knowledge_source_flags
                 (tenant_id, document_id, slack_user_id, run_id, content_hash)
               VALUES (%s, %s, %s, %s, %s)
               ON CONFLICT (document_id, slack_user_id) DO UPDATE
                 SET content_hash = EXCLUDED.content_hash, run_id = EXCLUDED.run_id,
                     created_at = now()""",
            (tenant_id, document_id, user, run_id, row["content_hash"]),
        )
        await audit.append_async(
            conn,
            audit.Entry(
                tenant_id=tenant_id,
                actor=user,
                action="knowledge.source_flagged",
                subject=f"document:{document_id}",
            ),
        )
    title: str = row["title"]
    return title

"""Which words of a question are common in a tenant's collections.

Full-text search matches chunks containing any of the question's uncommon words (see
knowledge_fulltext in migrations/0005_knowledge.sql); common words only weigh in the
rank. Ingestion keeps each collection's document frequencies in knowledge_lexemes, in the
same transaction as the chunks, so looking words up is a few index probes.
"""

from __future__ import annotations

from core.db import Conn

COMMON_CHUNKS = 300  # a word in at least this many chunks of the collections is common

_UNCOMMON = """
SELECT array(
    SELECT q.word FROM unnest(tsvector_to_array(to_tsvector('english', %(text)s))) q(word)
    WHERE coalesce((SELECT sum(k.chunks) FROM knowledge_lexemes k
                    WHERE k.collection_id = ANY (%(collections)s) AND k.lexeme = q.word), 0)
          < %(common)s
) AS lexemes
"""

# Adds (sign 1) or removes (sign -1) the lexemes of some documents' chunks. Rows are
# written in lexeme order, the same for every writer, so concurrent ingestions wait for
# each other's row locks but never deadlock.
COUNT_DOCUMENTS = """
INSERT INTO knowledge_lexemes (tenant_id, collection_id, lexeme, chunks)
SELECT %(tenant)s, %(collection)s, lexeme, %(sign)s * count(*)::integer
FROM knowledge_chunks c, unnest(tsvector_to_array(c.tsv)) lexeme
WHERE c.document_id = ANY (%(documents)s)
GROUP BY lexeme
ORDER BY lexeme
ON CONFLICT (collection_id, lexeme)
    DO UPDATE SET chunks = knowledge_lexemes.chunks + EXCLUDED.chunks
"""


def uncommon_lexemes(
    conn: Conn, collection_ids: list[int], text: str, *, common_chunks: int = COMMON_CHUNKS
) -> list[str]:
    """The lexemes of `text` (Postgres' English stemming) found in fewer than
    `common_chunks` chunks of the collections; `conn` is tenant-scoped."""
    row = conn.execute(
        _UNCOMMON, {"text": text, "collections": collection_ids, "common": common_chunks}
    ).fetchone()
    return list(row["lexemes"]) if row else []


def count_documents(
    conn: Conn, tenant_id: int, collection_id: int, document_ids: list[int], sign: int
) -> None:
    if document_ids:
        conn.execute(
            COUNT_DOCUMENTS,
            {
                "tenant": tenant_id,
                "collection": collection_id,
                "documents": document_ids,
                "sign": sign,
            },
        )

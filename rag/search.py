"""Hybrid search in one SQL statement: the nearest chunks by vector (HNSW, cosine) and
the best by full text (GIN), fused with reciprocal rank fusion.

Run it on a tenant-scoped connection (rag/tenancy.py): row-level security then limits
both halves to the tenant. Each half can be switched off, for evaluation.

Many tenants share one HNSW graph, and pgvector applies the tenant filter after walking
it: for a tenant with 1% of the chunks, the walk passes about a hundred other chunks for
each one it keeps. So a search first counts the tenant's chunks in the searched
collections, stopping at EXACT_SCAN_MAX_CHUNKS: up to there it compares the question with
every one of them (exact, through the tenant index); beyond, it walks the graph with an
iterative scan, which is then the only plan the planner may choose (`_choose_scan`).
bench/retrieval.py times both for a tenant with 1% of 100,000 chunks, and the walk for
one with 50%.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from psycopg import sql
from psycopg.types.json import Jsonb

from core.db import Conn
from rag.collections import MAX_INDEXED_DIMENSIONS
from rag.embeddings import Vectors

Mode = Literal["hybrid", "vector", "fulltext"]
# The constant of reciprocal rank fusion (Cormack et al., 2009): 60 damps the weight of
# the very first ranks so that agreement between the two lists counts more.
RRF_K = 60
# A tenant's collections up to this many chunks are searched exactly (recall 1.0 by
# construction); the count that decides stops here.
EXACT_SCAN_MAX_CHUNKS = 10_000

_SEARCH = """
WITH text_query AS (
    SELECT tsvector_to_array(to_tsvector('english', %(text)s)) AS lexemes
),
by_text AS (
    SELECT f.chunk_id, f.rank
    FROM knowledge_fulltext(
        %(text)s, %(match)s::text[], %(collections)s, %(metadata)s, %(text_k)s
    ) f
),
by_vector AS (
    SELECT id AS chunk_id, row_number() OVER (ORDER BY distance, id) AS rank
    FROM (
        SELECT id, {vector} <=> %(vector)s AS distance
        FROM knowledge_chunks
        WHERE dims = %(dims)s AND collection_id = ANY (%(collections)s) {metadata_filter}
        ORDER BY {vector} <=> %(vector)s
        LIMIT %(vector_k)s
    ) nearest
),
fused AS (
    SELECT chunk_id,
           sum(1.0 / (%(rrf_k)s + rank)) AS score,
           min(rank) FILTER (WHERE half = 'vector') AS vector_rank,
           min(rank) FILTER (WHERE half = 'text') AS text_rank
    FROM (SELECT chunk_id, rank, 'vector' AS half FROM by_vector
          UNION ALL
          SELECT chunk_id, rank, 'text' AS half FROM by_text) ranked
    GROUP BY chunk_id
)
SELECT c.id, c.document_id, c.collection_id, c.title, c.heading_path, c.text, c.url,
       c.metadata, c.embedding, f.score, f.vector_rank, f.text_rank,
       -- For the reranker, counted here in Python (term_stats): unnest() of each
       -- candidate's tsvector in SQL cost 0.5 ms a chunk, a third of a large tenant's search.
       c.tsv::text AS tsv, text_query.lexemes AS query_lexemes
FROM fused f
JOIN knowledge_chunks c ON c.id = f.chunk_id
CROSS JOIN text_query
ORDER BY f.score DESC, c.id
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Hit:
    chunk_id: int
    document_id: int
    collection_id: int
    title: str
    heading_path: tuple[str, ...]
    text: str
    url: str | None
    metadata: dict[str, Any]
    embedding: Vectors  # unit length, as stored
    score: float  # fused (RRF) score
    vector_rank: int | None
    text_rank: int | None
    term_counts: dict[str, int]  # occurrences of each query lexeme (Postgres' stemming)
    term_total: int  # lexeme occurrences in the chunk: its length for BM25


def _choose_scan(
    conn: Conn,
    collection_ids: list[int],
    *,
    most: int | None,
    ef_search: int,
    filtered: bool,
) -> bool:
    """Whether the scoped tenant has at most `most` chunks in these collections (counted
    no further, an index-only scan of the tenant index; None: not counted, the graph is
    walked), with the settings of the HNSW walk, in one round trip.

    Iterative scans keep walking the graph when row-level security or the filters drop
    rows, so a tenant's share of a big table still yields the candidates. Without a
    metadata filter the walk is also the only plan left: the planner's estimate of the
    tenant's share of the rows is a guess, and with some statistics it chose to read
    and sort all the chunks of a tenant with 50,000 of 100,000 (0.76 s, against 20-30 ms
    through the graph, load average 7). A metadata filter may keep very few rows, for
    which sorting is right, so then the planner decides."""
    row = conn.execute(
        """SELECT small,
                  set_config('hnsw.iterative_scan', 'relaxed_order', true),
                  set_config('hnsw.ef_search', %(ef)s, true),
                  set_config('enable_sort',
                             CASE WHEN small OR %(filtered)s THEN 'on' ELSE 'off' END, true)
           FROM (SELECT count(*) <= %(most)s AS small
                 FROM (SELECT 1 FROM knowledge_chunks WHERE collection_id = ANY (%(ids)s)
                       LIMIT %(most)s + 1) scoped) counted""",
        {"ids": collection_ids, "most": -1 if most is None else most, "ef": str(ef_search),
         "filtered": filtered},
    ).fetchone()  # fmt: skip
    return row is not None and bool(row["small"])


def hybrid_search(
    conn: Conn,
    *,
    text: str,
    vector: Vectors,
    collection_ids: list[int],
    metadata: dict[str, Any] | None = None,
    match_lexemes: list[str] | None = None,
    candidates: int,
    limit: int,
    mode: Mode = "hybrid",
    ef_search: int = 400,
    exact: bool | None = None,
    exact_scan_max_chunks: int = EXACT_SCAN_MAX_CHUNKS,
) -> list[Hit]:
    """The fused top `limit` of `candidates` from each half. Full text matches chunks
    with any of `match_lexemes` (see rag/lexemes.py), or with all the query's words when
    there are none. `exact`: None chooses by the collections' size (see the module's
    doc); True or False forces an exact scan or the HNSW walk (to measure either)."""
    dims = int(vector.shape[0])
    if mode == "fulltext" or dims > MAX_INDEXED_DIMENSIONS:
        exact = True
    elif exact is not True:
        exact = _choose_scan(
            conn,
            collection_ids,
            most=exact_scan_max_chunks if exact is None else None,
            ef_search=max(ef_search, candidates),
            filtered=bool(metadata),
        )
    # An exact scan does not use the partial index's expression, so the planner cannot
    # walk the graph: it reads the tenant's chunks through the tenant index and sorts
    # them by distance. The graph walk's cast must match the index, literally.
    column: sql.Composable = (
        sql.SQL("embedding")
        if exact
        else sql.SQL("(embedding::vector({}))").format(sql.Literal(dims))
    )
    # Only when there is one: the planner guesses that `metadata @> '{}'` keeps 1% of the
    # rows, and for so few it sorts the tenant's chunks instead of walking the graph
    # (measured for a tenant with 50,000 of 100,000 chunks, load average 11: 1.1 s to
    # sort them, 0.37 s through the graph with a cold cache).
    metadata_filter = sql.SQL("AND metadata @> %(metadata)s" if metadata else "")
    statement = sql.SQL(_SEARCH).format(vector=column, metadata_filter=metadata_filter)
    params = {
        "text": text,
        "match": match_lexemes or [],
        "vector": vector.astype(np.float32),
        "dims": dims,
        "collections": collection_ids,
        "metadata": Jsonb(metadata or {}),
        "text_k": candidates if mode != "vector" else 0,
        "vector_k": candidates if mode != "fulltext" else 0,
        "rrf_k": RRF_K,
        "limit": limit,
    }
    with conn.pipeline():  # one round trip for the search and the restored setting
        # Binary: vectors come back as packed floats, not decimal text. Never prepared:
        # a plan cached on the connection is kept for every tenant after it, and one
        # made while a tenant with 1% of the chunks was searched took 170 ms (p50)
        # for a tenant with 50%, against 25 ms planned afresh (planning: about 1 ms).
        cursor = conn.execute(statement, params, binary=True, prepare=False)
        if not exact and not metadata:
            # Sorting was off for the walk only; later statements of the transaction
            # plan as usual.
            conn.execute("SELECT set_config('enable_sort', 'on', true)")
    rows = cursor.fetchall()
    return [
        Hit(
            chunk_id=row["id"],
            document_id=row["document_id"],
            collection_id=row["collection_id"],
            title=row["title"],
            heading_path=tuple(row["heading_path"]),
            text=row["text"],
            url=row["url"],
            metadata=row["metadata"],
            embedding=row["embedding"].to_numpy().astype(np.float32),
            score=float(row["score"]),
            vector_rank=row["vector_rank"],
            text_rank=row["text_rank"],
            **term_stats(row["tsv"], set(row["query_lexemes"])),
        )
        for row in rows
    ]


# One lexeme of a tsvector's text form: 'lexeme':1A,5,9B, quotes and backslashes doubled
# inside the quotes; no positions after a strip() (then it counts once).
_TSV_ENTRY = re.compile(r"'((?:[^'\\]|''|\\.)*)'(?::([0-9A-D,]+))?")
_TSV_ESCAPE = re.compile(r"''|\\.")


def term_stats(tsv: str, query_lexemes: set[str]) -> dict[str, Any]:
    """From a tsvector's text form: the occurrences of each of the query's lexemes it
    contains (`term_counts`) and of all its lexemes (`term_total`), for BM25."""
    counts: dict[str, int] = {}
    total = 0
    for lexeme, positions in _TSV_ENTRY.findall(tsv):
        occurrences = positions.count(",") + 1 if positions else 1
        total += occurrences
        if "'" in lexeme or "\\" in lexeme:
            lexeme = _TSV_ESCAPE.sub(lambda m: m.group()[-1], lexeme)
        if lexeme in query_lexemes:
            counts[lexeme] = occurrences
    return {"term_counts": counts, "term_total": total}

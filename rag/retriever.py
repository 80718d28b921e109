"""The loop's Retrieve step: hybrid search per query, candidates merged across the
planner's queries, reranked, then diversified with MMR.

`HybridRetriever` implements `core.knowledge.Retriever`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from core.db import Pool
from core.knowledge import Passage
from rag.collections import Collection, EmbeddingMismatch, check_model, find_collections
from rag.diversify import mmr_order
from rag.embeddings import Embedder, Vectors
from rag.lexemes import uncommon_lexemes
from rag.rerank import Reranker
from rag.search import Hit, Mode, hybrid_search
from rag.source_flags import flag_penalties
from rag.tenancy import VectorTypes, tenant_scope

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RetrievalOptions:
    candidates: int = 40  # from each half of hybrid search, per query
    ef_search: int = 400  # RAG_HNSW_EF_SEARCH
    rerank: bool = True
    mmr_lambda: float = 0.7
    # What the agent is given keeps only passages scoring at least this share of the best
    # one (reranked scores; RAG_RELEVANCE_FLOOR). With the nine sample documents, every
    # search gave the Draft eight passages and the 1.5B model summarised them all: asked
    # for the discount on 150 seats, it added delivery times, repair prices and holiday
    # booking. Searching those documents with the golden cases' questions, the chunks
    # holding the 31 facts the answers must state scored 0.89 of the best or more, and a
    # floor of 0.5 left 65 of the 200 passages (bench/results/agent_quality.txt).
    relevance_floor: float = 0.5


@dataclass(frozen=True)
class Ranked:
    hit: Hit
    score: float


class HybridRetriever:
    def __init__(
        self,
        pool: Pool,
        embedder: Embedder,
        reranker: Reranker,
        options: RetrievalOptions | None = None,
        vectors: VectorTypes | None = None,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._reranker = reranker
        self._options = options or RetrievalOptions()
        self._vectors = vectors or VectorTypes()

    def search(
        self,
        tenant_id: int,
        queries: list[str],
        *,
        limit: int,
        collections: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        skip_missing: bool = False,
    ) -> list[Passage]:
        ranked = self.rank(
            tenant_id,
            queries,
            limit=limit,
            collections=collections,
            metadata=metadata,
            skip_missing=skip_missing,
        )
        return [to_passage(r.hit) for r in self._relevant(ranked)]

    def _relevant(self, ranked: list[Ranked]) -> list[Ranked]:
        """``ranked`` without what scores under the relevance floor's share of the best.
        Only reranked scores say how close a match is; RRF ranks do not."""
        if not self._options.rerank or not ranked:
            return ranked
        best = max(r.score for r in ranked)
        if best <= 0:
            return ranked
        return [r for r in ranked if r.score >= self._options.relevance_floor * best]

    def rank(
        self,
        tenant_id: int,
        queries: list[str],
        *,
        limit: int,
        collections: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        mode: Mode = "hybrid",
        rerank: bool | None = None,
        diversify: bool | None = None,
        query_vectors: Vectors | None = None,
        skip_missing: bool = False,
    ) -> list[Ranked]:
        """The best `limit` chunks for the queries, with their final scores.
        `query_vectors` saves embedding queries again when the caller has them.
        `skip_missing` searches those of `collections` the tenant has and ignores the rest
        (an agent template names collections a tenant may not have filled yet) instead of
        raising UnknownCollection."""
        queries = [q.strip() for q in queries if q.strip()]
        if not queries or limit <= 0:
            return []
        rerank = self._options.rerank if rerank is None else rerank
        diversify = rerank if diversify is None else diversify
        options = self._options
        with tenant_scope(self._pool, tenant_id, self._vectors) as conn:
            if skip_missing and collections is not None:
                found = [c for c in find_collections(conn, None) if c.name in collections]
            else:
                found = find_collections(conn, collections)
            usable = self._usable_collections(found, collections)
            if not usable:
                return []  # before embedding: a tenant without knowledge never loads the model
            ids = [c.id for c in usable]
            vectors = self._embedder.embed(queries) if query_vectors is None else query_vectors
            per_query = [
                hybrid_search(
                    conn,
                    text=query,
                    vector=vector,
                    collection_ids=ids,
                    metadata=metadata,
                    match_lexemes=uncommon_lexemes(conn, ids, query) if mode != "vector" else [],
                    candidates=options.candidates,
                    limit=options.candidates if rerank else limit,
                    mode=mode,
                    ef_search=options.ef_search,
                )
                for query, vector in zip(queries, vectors, strict=True)
            ]
            # Sources people marked wrong or outdated score lower (rag/source_flags.py).
            penalties = flag_penalties(conn)
        if not rerank:
            return _merge_by_rank(per_query, limit, penalties)
        return self._rerank(queries, vectors, per_query, limit, diversify, penalties)

    def _rerank(
        self,
        queries: list[str],
        vectors: Vectors,
        per_query: list[list[Hit]],
        limit: int,
        diversify: bool,
        penalties: dict[int, float],
    ) -> list[Ranked]:
        best: dict[int, Ranked] = {}
        for query, vector, hits in zip(queries, vectors, per_query, strict=True):
            scores = self._reranker.score(query, vector, hits)
            for hit, score in zip(hits, scores, strict=True):
                # After reranking, before MMR: the demotion then also weighs in diversity.
                score *= penalties.get(hit.document_id, 1.0)
                known = best.get(hit.chunk_id)
                if known is None or score > known.score:
                    best[hit.chunk_id] = Ranked(hit, score)
        # A flagged document also loses ties: the reranker scales scores to [0, 1] over
        # the candidates, so the weakest (or equal) candidates score 0, which no factor moves.
        pool = sorted(
            best.values(),
            key=lambda r: (-r.score, r.hit.document_id in penalties, r.hit.chunk_id),
        )
        if not diversify or len(pool) <= 1:
            return pool[:limit]
        order = mmr_order(
            [r.score for r in pool],
            np.stack([r.hit.embedding for r in pool]),
            lambda_=self._options.mmr_lambda,
            limit=limit,
        )
        return [pool[i] for i in order]

    def _usable_collections(
        self, found: list[Collection], requested: list[str] | None
    ) -> list[Collection]:
        usable = []
        for collection in found:
            try:
                check_model(collection, self._embedder.model_name, self._embedder.dimensions)
            except EmbeddingMismatch as exc:
                if requested is not None:
                    raise  # asked for by name: say why it cannot be searched
                log.warning(
                    "knowledge.collection_skipped", collection=collection.name, reason=str(exc)
                )
                continue
            usable.append(collection)
        return usable


def _merge_by_rank(
    per_query: list[list[Hit]], limit: int, penalties: dict[int, float] | None = None
) -> list[Ranked]:
    """Several queries' fused lists merged by reciprocal rank, without reranking; a
    flagged document's share is scaled by its penalty."""
    merged: dict[int, Ranked] = {}
    for hits in per_query:
        for rank, hit in enumerate(hits, start=1):
            known = merged.get(hit.chunk_id)
            share = (penalties or {}).get(hit.document_id, 1.0) / (60 + rank)
            score = share + (known.score if known else 0.0)
            merged[hit.chunk_id] = Ranked(hit, score)
    flagged = penalties or {}
    return sorted(
        merged.values(), key=lambda r: (-r.score, r.hit.document_id in flagged, r.hit.chunk_id)
    )[:limit]


def to_passage(hit: Hit) -> Passage:
    title = " > ".join(part for part in (hit.title, *hit.heading_path) if part) or "Untitled"
    return Passage(id=str(hit.chunk_id), title=title, text=hit.text, url=hit.url)

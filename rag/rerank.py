"""Second-stage scoring of the fused candidates.

No cross-encoder ships offline in a PyPI package (the packaged rerankers found download
their weights from a model hub at run time), so this is the documented lighter method:
a convex combination of two scores that the first stage could not use.

- Semantic: the exact cosine similarity of query and chunk (the HNSW stage is
  approximate, and reciprocal rank fusion keeps only ranks, not how close a match is).
- Lexical: BM25 over the candidate set, with the query's lexemes as Postgres stems them.
  Its inverse document frequency is computed within the candidates, so a word that every
  candidate shares (the topic that made them candidates) counts for little and the words
  that tell candidates apart count for much; Postgres' own ts_rank has no IDF at all.

Both are min-max scaled over the candidates and mixed with weight SEMANTIC_WEIGHT on
the semantic side (chosen on PubMedQA's train/dev questions, not the test questions
`chatops eval retrieval` reports).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np
import numpy.typing as npt

from rag.embeddings import Vectors
from rag.search import Hit

if TYPE_CHECKING:
    from core.settings import Settings

SEMANTIC_WEIGHT = 0.6
BM25_K1 = 1.2  # term-frequency saturation, the usual default
BM25_B = 0.75  # length normalisation, the usual default


class Reranker(Protocol):
    def score(self, query: str, query_vector: Vectors, hits: Sequence[Hit]) -> list[float]: ...


class FeatureReranker:
    def __init__(self, semantic_weight: float = SEMANTIC_WEIGHT) -> None:
        self._weight = semantic_weight

    def score(self, query: str, query_vector: Vectors, hits: Sequence[Hit]) -> list[float]:
        if not hits:
            return []
        semantic = np.array([float(np.dot(query_vector, h.embedding)) for h in hits])
        lexical = np.array(local_bm25(hits))
        mixed = self._weight * _scaled(semantic) + (1.0 - self._weight) * _scaled(lexical)
        return [float(v) for v in mixed]


def local_bm25(hits: Sequence[Hit]) -> list[float]:
    """BM25 of each hit for the query lexemes, with IDF over the hits themselves."""
    count = len(hits)
    average_length = sum(h.term_total for h in hits) / count or 1.0
    frequency: dict[str, int] = {}
    for hit in hits:
        for lexeme in hit.term_counts:
            frequency[lexeme] = frequency.get(lexeme, 0) + 1
    idf = {
        lexeme: math.log(1.0 + (count - seen + 0.5) / (seen + 0.5))
        for lexeme, seen in frequency.items()
    }
    scores = []
    for hit in hits:
        norm = BM25_K1 * (1.0 - BM25_B + BM25_B * hit.term_total / average_length)
        scores.append(
            sum(idf[t] * tf * (BM25_K1 + 1.0) / (tf + norm) for t, tf in hit.term_counts.items())
        )
    return scores


Scores = npt.NDArray[np.float64]


def _scaled(values: Scores) -> Scores:
    spread = float(values.max() - values.min())
    if spread <= 0:
        return np.zeros_like(values)
    scaled: Scores = (values - values.min()) / spread
    return scaled


def reranker_from_settings(settings: Settings) -> Reranker:
    return FeatureReranker()

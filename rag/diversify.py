"""Maximal marginal relevance (Carbonell & Goldstein, 1998): pick, one at a time, the
candidate with the best trade-off between its relevance and its similarity to what was
already picked, so near-duplicates (the same paragraph in two documents, overlapping
chunks) do not fill the top results. Outright duplicates go last."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rag.embeddings import Vectors

# Cosine similarity above which two chunks say the same thing (a copied paragraph, a
# page saved twice): such a chunk goes after every chunk that is not a duplicate.
DUPLICATE_SIMILARITY = 0.95


def mmr_order(
    relevance: Sequence[float], embeddings: Vectors, *, lambda_: float, limit: int
) -> list[int]:
    """Indices of the chosen candidates, best first. `relevance` is rescaled to [0, 1] so
    that it trades against cosine similarity on the same scale; `embeddings` are unit rows."""
    count = len(relevance)
    if count == 0 or limit <= 0:
        return []
    scores = np.asarray(relevance, dtype=np.float64)
    spread = float(scores.max() - scores.min())
    scores = (scores - scores.min()) / spread if spread > 0 else np.ones(count)
    similarity = embeddings @ embeddings.T
    chosen: list[int] = []
    redundancy = np.full(count, -np.inf)
    available = np.ones(count, dtype=bool)
    for _ in range(min(limit, count)):
        penalty = np.where(np.isfinite(redundancy), redundancy, 0.0)
        value = lambda_ * scores - (1.0 - lambda_) * penalty
        value[redundancy >= DUPLICATE_SIMILARITY] -= 2.0  # below any non-duplicate's value
        value[~available] = -np.inf
        best = int(np.argmax(value))
        chosen.append(best)
        available[best] = False
        redundancy = np.maximum(redundancy, similarity[best])
    return chosen

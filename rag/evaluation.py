"""Retrieval quality on a BEIR-format question set with relevance judgments: recall@5,
recall@10, MRR@10 and nDCG@10 at document level, for each retrieval method."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.documents import Block, Document
from rag.embeddings import Embedder
from rag.retriever import HybridRetriever
from rag.search import Mode

DEPTH = 10  # the cut-off of MRR and nDCG
CHUNKS_PER_QUERY = 40  # chunks retrieved so that 10 distinct documents remain after dedup


@dataclass(frozen=True)
class QuestionSet:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]  # query id -> text
    qrels: dict[str, dict[str, int]]  # query id -> doc id -> graded relevance

    def documents(self) -> Iterable[Document]:
        for doc_id, (title, text) in self.corpus.items():
            yield Document(
                f"beir:{doc_id}", "file", title, (Block((), text),), metadata={"beir_id": doc_id}
            )


@dataclass(frozen=True)
class Method:
    name: str
    mode: Mode
    rerank: bool


METHODS = (
    Method("full text", "fulltext", rerank=False),
    Method("vector", "vector", rerank=False),
    Method("hybrid (RRF)", "hybrid", rerank=False),
    Method("hybrid + rerank", "hybrid", rerank=True),
)
METRICS = ("recall@5", "recall@10", "MRR@10", "nDCG@10")


def load_question_set(
    root: Path, *, split: str = "test", max_queries: int | None = None, seed: int = 7
) -> QuestionSet:
    """Queries judged in qrels/<split>.tsv (a seeded sample of `max_queries` of them) over
    the whole corpus."""
    qrels: dict[str, dict[str, int]] = {}
    with (root / "qrels" / f"{split}.tsv").open() as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3 or not parts[2].lstrip("-").isdigit():
                continue  # the header
            query_id, doc_id, score = parts
            if int(score) > 0:
                qrels.setdefault(query_id, {})[doc_id] = int(score)
    all_queries = {
        row["_id"]: row["text"]
        for row in map(json.loads, (root / "queries.jsonl").read_text().splitlines())
        if row["_id"] in qrels
    }
    chosen = sorted(all_queries)
    if max_queries is not None and max_queries < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, max_queries))  # noqa: S311  # a sample, not a secret
    corpus = {
        row["_id"]: (row.get("title") or "", row["text"])
        for row in map(json.loads, (root / "corpus.jsonl").read_text().splitlines())
    }
    return QuestionSet(
        corpus=corpus,
        queries={q: all_queries[q] for q in chosen},
        qrels={q: qrels[q] for q in chosen},
    )


def score_ranking(ranking: Sequence[str], relevant: dict[str, int]) -> dict[str, float]:
    """The four metrics for one query's ranked document ids."""
    total = len(relevant)
    found5 = sum(1 for d in ranking[:5] if d in relevant)
    found10 = sum(1 for d in ranking[:DEPTH] if d in relevant)
    first = next((i for i, d in enumerate(ranking[:DEPTH], start=1) if d in relevant), None)
    dcg = sum(
        (2 ** relevant[d] - 1) / math.log2(i + 1)
        for i, d in enumerate(ranking[:DEPTH], start=1)
        if d in relevant
    )
    ideal = sum(
        (2**g - 1) / math.log2(i + 1)
        for i, g in enumerate(sorted(relevant.values(), reverse=True)[:DEPTH], start=1)
    )
    return {
        "recall@5": found5 / total if total else 0.0,
        "recall@10": found10 / total if total else 0.0,
        "MRR@10": 1.0 / first if first else 0.0,
        "nDCG@10": dcg / ideal if ideal else 0.0,
    }


def evaluate(
    retriever: HybridRetriever,
    embedder: Embedder,
    tenant_id: int,
    questions: QuestionSet,
    methods: Sequence[Method] = METHODS,
    on_query: Callable[[], None] | None = None,
) -> dict[str, dict[str, float]]:
    """Mean metrics per method name."""
    totals = {m.name: dict.fromkeys(METRICS, 0.0) for m in methods}
    query_ids = list(questions.queries)
    # Embedded once, in batches, rather than once per method.
    vectors = embedder.embed([questions.queries[q] for q in query_ids])
    for query_id, vector in zip(query_ids, vectors, strict=True):
        text = questions.queries[query_id]
        for method in methods:
            ranked = retriever.rank(
                tenant_id,
                [text],
                limit=CHUNKS_PER_QUERY,
                mode=method.mode,
                rerank=method.rerank,
                query_vectors=vector[None, :],
            )
            documents = list(dict.fromkeys(str(r.hit.metadata["beir_id"]) for r in ranked))
            for metric, value in score_ranking(documents, questions.qrels[query_id]).items():
                totals[method.name][metric] += value
        if on_query:
            on_query()
    count = max(len(questions.queries), 1)
    return {name: {k: v / count for k, v in scores.items()} for name, scores in totals.items()}


def format_table(results: dict[str, dict[str, float]]) -> str:
    width = max(len(name) for name in results) + 2
    lines = ["method".ljust(width) + "".join(m.rjust(11) for m in METRICS)]
    for name, scores in results.items():
        lines.append(name.ljust(width) + "".join(f"{scores[m]:11.3f}" for m in METRICS))
    return "\n".join(lines)

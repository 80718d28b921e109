"""`chatops eval retrieval`: the question set is ingested into a throwaway database on
DATABASE_URL's server with the configured embedder, then every method is scored."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Never

import psycopg
from tqdm import tqdm

from core.db import open_pool
from core.scratch_database import create_tenant, scratch_database
from core.settings import Settings
from rag.chunking import ChunkingConfig
from rag.embeddings import embedder_from_settings
from rag.evaluation import METHODS, evaluate, format_table, load_question_set
from rag.ingest import Ingestor
from rag.wiring import retriever_from_settings

INGEST_BATCH = 64  # documents per progress step
DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "corpora" / "rag" / "pubmedqa" / "beir_format"
)


def _advance(bar: tqdm[Never]) -> None:
    bar.update()


def run_retrieval_eval(settings: Settings, args: argparse.Namespace) -> int:
    data: Path = args.data or DEFAULT_DATA
    if not (data / "corpus.jsonl").exists():
        print(f"chatops eval: no BEIR corpus.jsonl in {data} (use --data)", file=sys.stderr)
        return 2
    questions = load_question_set(data, split=args.split, max_queries=args.max_queries)
    print(
        f"{data}: {len(questions.corpus)} documents, {len(questions.queries)} questions "
        f"(qrels/{args.split}.tsv)",
        flush=True,
    )
    embedder = embedder_from_settings(settings)
    with scratch_database(settings.database_url, "chatops_eval") as url:
        pool = open_pool(url, max_size=2)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                tenant_id = create_tenant(conn, "retrieval evaluation")
            ingestor = Ingestor(
                pool,
                embedder,
                ChunkingConfig(settings.rag_chunk_chars, settings.rag_chunk_overlap_chars),
            )
            collection = ingestor.collection(tenant_id, "eval")
            started = time.monotonic()
            documents = list(questions.documents())
            with tqdm(total=len(documents), desc="ingest", unit="doc") as bar:
                for start in range(0, len(documents), INGEST_BATCH):
                    batch = documents[start : start + INGEST_BATCH]
                    ingestor.ingest(tenant_id, collection, batch)
                    bar.update(len(batch))
            ingest_seconds = time.monotonic() - started
            # The product's retriever, as the workers build it; each method sets rerank.
            retriever = retriever_from_settings(settings, pool, embedder)
            with tqdm(total=len(questions.queries), desc="search", unit="question") as bar:
                started = time.monotonic()
                results = evaluate(
                    retriever,
                    embedder,
                    tenant_id,
                    questions,
                    METHODS,
                    on_query=lambda: _advance(bar),
                )
                search_seconds = time.monotonic() - started
        finally:
            pool.close()
    print(
        f"\nembedder {embedder.model_name}; chunks of {settings.rag_chunk_chars} characters; "
        f"ingest {ingest_seconds:.0f} s, {len(METHODS)} methods x {len(questions.queries)} "
        f"questions {search_seconds:.0f} s\n"
    )
    print(format_table(results))
    return 0

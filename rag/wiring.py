"""What a process needs to search and ingest knowledge, built from settings. Build the
embedder once per process (loading the local model takes seconds) and pass it to both."""

from __future__ import annotations

from connectors.slack.web_client import make_web_client
from core.db import Pool
from core.settings import Settings
from rag.chunking import ChunkingConfig
from rag.embeddings import Embedder
from rag.jobs import IngestDeps, build_ingest_deps
from rag.rerank import reranker_from_settings
from rag.retriever import HybridRetriever, RetrievalOptions


def retriever_from_settings(settings: Settings, pool: Pool, embedder: Embedder) -> HybridRetriever:
    return HybridRetriever(
        pool,
        embedder,
        reranker_from_settings(settings),
        RetrievalOptions(
            candidates=settings.rag_search_candidates,
            ef_search=settings.rag_hnsw_ef_search,
            rerank=settings.rag_rerank,
            mmr_lambda=settings.rag_mmr_lambda,
            relevance_floor=settings.rag_relevance_floor,
        ),
    )


def ingest_deps_from_settings(settings: Settings, pool: Pool, embedder: Embedder) -> IngestDeps:
    return build_ingest_deps(
        pool,
        embedder,
        ChunkingConfig(settings.rag_chunk_chars, settings.rag_chunk_overlap_chars),
        lambda token: make_web_client(token, settings.slack_api_url),
    )

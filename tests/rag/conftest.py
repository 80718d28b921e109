"""Knowledge tests share one embedding model (loading it takes seconds) and one pool on
the session's migrated database; each test gets tenants of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest

from core.db import Pool, open_pool
from rag.chunking import ChunkingConfig
from rag.embeddings import LocalEmbedder
from rag.ingest import Ingestor
from rag.rerank import FeatureReranker
from rag.retriever import HybridRetriever
from rag.tenancy import VectorTypes
from testbed.markers import new_marker

SMALL_CHUNKS = ChunkingConfig(max_chars=400, overlap_chars=60)


@pytest.fixture(scope="session")
def pool(database_url: str) -> Iterator[Pool]:
    pool = open_pool(database_url, max_size=4)
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def vectors() -> VectorTypes:
    return VectorTypes()


@pytest.fixture
def new_tenant(database_url: str) -> Callable[[], int]:
    """Makes a tenant no other test shares."""

    def make() -> int:
        with psycopg.connect(database_url, autocommit=True) as conn:
            row = conn.execute(
                "INSERT INTO tenants (name, slack_team_id) VALUES (%s, %s) RETURNING id",
                (f"knowledge test {new_marker(6)}", f"T{new_marker(10).upper()}"),
            ).fetchone()
        assert row is not None
        return int(row[0])

    return make


@pytest.fixture
def tenant(new_tenant: Callable[[], int]) -> int:
    return new_tenant()


@pytest.fixture
def ingestor(pool: Pool, embedder: LocalEmbedder, vectors: VectorTypes) -> Ingestor:
    return Ingestor(pool, embedder, SMALL_CHUNKS, vectors)


@pytest.fixture
def retriever(pool: Pool, embedder: LocalEmbedder, vectors: VectorTypes) -> HybridRetriever:
    return HybridRetriever(pool, embedder, FeatureReranker(), vectors=vectors)

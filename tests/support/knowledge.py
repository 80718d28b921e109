"""Giving the sandbox workspace's tenant a knowledge base for one test, as `chatops ingest`
would, and taking it away afterwards so later tests see a tenant without knowledge."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from core.db import open_pool
from rag.chunking import ChunkingConfig
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.sources import expand, ingest_unit
from testbed.markers import new_marker


@contextmanager
def knowledge_base(
    database_url: str, embedder: Embedder, tenant_id: int, folder: Path, files: dict[str, str]
) -> Iterator[str]:
    """Write `files` into `folder`, ingest them into a new collection of the tenant, yield
    the collection's name, and delete the collection when the test is done."""
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    collection = f"test-{new_marker(8)}"
    pool = open_pool(database_url, max_size=2)
    try:
        ingestor = Ingestor(pool, embedder, ChunkingConfig(max_chars=600, overlap_chars=80))
        target = ingestor.collection(tenant_id, collection)
        units, _ = expand([str(folder)])
        for unit in units:
            stats = ingest_unit(ingestor, tenant_id, target, unit, slack_access=None)
            assert not stats.failures, stats.summary()
        yield collection
    finally:
        pool.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM knowledge_collections WHERE tenant_id = %s AND name = %s",
                (tenant_id, collection),
            )

"""What `chatops ingest` does: inline with a progress bar, or as queued jobs."""

from __future__ import annotations

import sys

from tqdm import tqdm

from connectors.slack.web_client import make_web_client
from core.db import open_pool
from core.settings import Settings
from rag.chunking import ChunkingConfig
from rag.collections import EmbeddingMismatch
from rag.ingest import Ingestor, IngestStats
from rag.sources import (
    SourceError,
    expand,
    installation_slack_access,
    is_slack,
    prune_folders,
    resolve_tenant,
)


def run_ingest(
    settings: Settings, specs: list[str], tenant_ref: str, collection: str | None, *, queue: bool
) -> int:
    name = collection or settings.rag_default_collection
    pool = open_pool(settings.database_url, max_size=2)
    try:
        try:
            tenant_id = resolve_tenant(pool, tenant_ref)
            units, scopes = expand(specs)
        except SourceError as exc:
            print(f"chatops ingest: {exc}", file=sys.stderr)
            return 2
        if queue:
            return _enqueue(settings, tenant_id, name, units, scopes, pool)
        from rag.embeddings import embedder_from_settings
        from rag.sources import ingest_unit

        ingestor = Ingestor(pool, embedder_from_settings(settings), chunking_config(settings))
        try:
            target = ingestor.collection(tenant_id, name)
        except EmbeddingMismatch as exc:
            print(f"chatops ingest: {exc}", file=sys.stderr)
            return 2
        slack = installation_slack_access(
            pool, lambda token: make_web_client(token, settings.slack_api_url)
        )
        stats = IngestStats()
        with tqdm(units, desc=f"ingest into {name!r}", unit="source") as bar:
            for spec in bar:
                unit_stats = ingest_unit(ingestor, tenant_id, target, spec, slack)
                for source, reason in unit_stats.failures:
                    bar.write(f"skipped {source}: {reason}")
                stats.merge(unit_stats)
        stats.removed += prune_folders(ingestor, tenant_id, target, scopes)
        print(stats.summary())
        return 1 if stats.failures else 0
    finally:
        pool.close()


def chunking_config(settings: Settings) -> ChunkingConfig:
    return ChunkingConfig(settings.rag_chunk_chars, settings.rag_chunk_overlap_chars)


def _enqueue(
    settings: Settings,
    tenant_id: int,
    collection: str,
    units: list[str],
    scopes: list[tuple[str, list[str]]],
    pool: object,
) -> int:
    from core.broker import build_broker
    from rag.jobs import enqueue_ingest, enqueue_prune

    broker = build_broker(settings)
    try:
        for spec in units:
            enqueue_ingest(broker, tenant_id, collection, spec)
        for prefix, keep in scopes:
            enqueue_prune(broker, tenant_id, collection, prefix, keep)
    finally:
        broker.close()
    channels = sum(1 for u in units if is_slack(u))
    print(
        f"queued {len(units) - channels} file(s) and {channels} channel(s) for {collection!r}, "
        f"and {len(scopes)} folder clean-up(s); `chatops worker` processes them"
    )
    return 0

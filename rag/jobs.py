"""Ingestion as Dramatiq jobs, so large collections spread over workers: one job per
file or Slack channel, and one per folder to remove the documents of deleted files.

`chatops ingest --queue` sends the messages (it needs only the names below); a worker
declares the actors with `declare_ingest_actors` and listens on KNOWLEDGE_QUEUE. Files
are read by path, so workers must see the same files (a shared volume) as the sender.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import dramatiq
import structlog
from slack_sdk import WebClient

from core.db import Pool
from core.queues import KNOWLEDGE_QUEUE
from rag.chunking import ChunkingConfig
from rag.embeddings import Embedder
from rag.ingest import Ingestor
from rag.sources import SlackAccessFor, ingest_unit, installation_slack_access
from rag.tenancy import VectorTypes

log = structlog.get_logger(__name__)

INGEST_SOURCE = "ingest_source"
PRUNE_DOCUMENTS = "prune_documents"

INGEST_OPTIONS = {
    "max_retries": 3,
    "min_backoff": 5_000,  # ms
    "max_backoff": 60_000,  # ms
    "time_limit": 30 * 60_000,  # ms: a large PDF on a slow CPU
}


@dataclass(frozen=True)
class IngestDeps:
    ingestor: Ingestor
    slack_access: SlackAccessFor


def build_ingest_deps(
    pool: Pool,
    embedder: Embedder,
    chunking: ChunkingConfig,
    slack_client: Callable[[str], WebClient],
) -> IngestDeps:
    return IngestDeps(
        ingestor=Ingestor(pool, embedder, chunking, VectorTypes()),
        slack_access=installation_slack_access(pool, slack_client),
    )


def enqueue_ingest(broker: dramatiq.Broker, tenant_id: int, collection: str, spec: str) -> None:
    broker.enqueue(
        dramatiq.Message(
            queue_name=KNOWLEDGE_QUEUE,
            actor_name=INGEST_SOURCE,
            args=(tenant_id, collection, spec),
            kwargs={},
            options={},
        )
    )


def enqueue_prune(
    broker: dramatiq.Broker, tenant_id: int, collection: str, prefix: str, keep: list[str]
) -> None:
    broker.enqueue(
        dramatiq.Message(
            queue_name=KNOWLEDGE_QUEUE,
            actor_name=PRUNE_DOCUMENTS,
            args=(tenant_id, collection, prefix, keep),
            kwargs={},
            options={},
        )
    )


def declare_ingest_actors(broker: dramatiq.Broker, deps: IngestDeps) -> None:
    def ingest_source(tenant_id: int, collection: str, spec: str) -> None:
        target = deps.ingestor.collection(tenant_id, collection)
        stats = ingest_unit(deps.ingestor, tenant_id, target, spec, deps.slack_access)
        # An unreadable source is not retried: reading it again gives the same answer.
        log.info("knowledge.job_done", source=spec, summary=stats.summary())

    def prune_documents(tenant_id: int, collection: str, prefix: str, keep: list[str]) -> None:
        target = deps.ingestor.collection(tenant_id, collection)
        removed = deps.ingestor.prune(tenant_id, target, prefix, keep)
        log.info("knowledge.pruned", prefix=prefix, removed=removed)

    dramatiq.Actor(
        ingest_source,
        broker=broker,
        actor_name=INGEST_SOURCE,
        queue_name=KNOWLEDGE_QUEUE,
        priority=10,  # behind the agent's jobs, which someone is waiting for
        options=INGEST_OPTIONS,
    )
    dramatiq.Actor(
        prune_documents,
        broker=broker,
        actor_name=PRUNE_DOCUMENTS,
        queue_name=KNOWLEDGE_QUEUE,
        priority=10,
        options={"max_retries": 3, "time_limit": 5 * 60_000},
    )

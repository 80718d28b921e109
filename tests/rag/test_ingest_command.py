"""`chatops ingest`, inline and through the Dramatiq queue with a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dramatiq
import psycopg
import pytest
from dramatiq.brokers.redis import RedisBroker

from connectors.slack.web_client import make_web_client
from core.db import Pool
from core.queues import KNOWLEDGE_QUEUE
from rag.chunking import ChunkingConfig
from rag.embeddings import LocalEmbedder
from rag.jobs import build_ingest_deps, declare_ingest_actors
from rag.tenancy import VectorTypes, tenant_scope
from sandbox.openai_emulator import OpenAIEmulator
from testbed.markers import new_marker
from tests.rag.files import write_mixed_folder


@pytest.fixture
def env(database_url: str, redis_url: str, queue_namespace: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": queue_namespace,
        "SLACK_SIGNING_SECRET": "test-secret",
        "LOG_LEVEL": "warning",
    }


def chatops(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def team_id(database_url: str, tenant: int) -> str:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT slack_team_id FROM tenants WHERE id = %s", (tenant,)).fetchone()
    assert row is not None
    return str(row[0])


def titles(pool: Pool, vectors: VectorTypes, tenant: int, collection: str) -> set[str]:
    with tenant_scope(pool, tenant, vectors) as conn:
        rows = conn.execute(
            "SELECT d.title FROM knowledge_documents d JOIN knowledge_collections c"
            " ON c.id = d.collection_id WHERE c.name = %s",
            (collection,),
        ).fetchall()
    return {r["title"] for r in rows}


def test_ingest_reports_an_unreadable_file_by_name_and_finishes_the_folder(
    env: dict[str, str],
    llm_primary: OpenAIEmulator,
    tmp_path: Path,
    database_url: str,
    pool: Pool,
    vectors: VectorTypes,
    tenant: int,
) -> None:
    """`chatops ingest FOLDER --tenant TEAM` names the corrupt PDF it skipped, stores
    everything else, and exits 1 so scripts notice (here with the OpenAI-compatible
    embeddings endpoint instead of the local model)."""
    env = {
        **env,
        "RAG_EMBEDDING_PROVIDER": "openai",
        "RAG_EMBEDDING_MODEL": "emulator-embedding",
        "RAG_EMBEDDING_DIMENSIONS": "256",
        "RAG_EMBEDDING_SEND_DIMENSIONS": "true",
        "OPENAI_BASE_URL": llm_primary.base_url,
        "OPENAI_API_KEY": "test-key",
    }
    write_mixed_folder(tmp_path / "docs")
    (tmp_path / "docs" / "scan.pdf").write_bytes(b"not a pdf at all")

    done = chatops(
        env, "ingest", str(tmp_path / "docs"), "--tenant", team_id(database_url, tenant),
        "--collection", "handbook",
    )  # fmt: skip

    out = done.stdout
    assert done.returncode == 1, done.stderr
    assert f"skipped {(tmp_path / 'docs' / 'scan.pdf').resolve()}: not a readable PDF" in out
    assert "5 added, 0 updated, 0 unchanged, 0 removed" in out
    assert len(titles(pool, vectors, tenant, "handbook")) == 5
    assert llm_primary.requests(path="/v1/embeddings")  # the endpoint did the embedding


def test_queued_ingestion_is_done_by_a_worker(
    env: dict[str, str],
    tmp_path: Path,
    database_url: str,
    redis_url: str,
    queue_namespace: str,
    pool: Pool,
    vectors: VectorTypes,
    embedder: LocalEmbedder,
    tenant: int,
) -> None:
    """`chatops ingest --queue` only enqueues; a Dramatiq worker with the ingestion actors
    then stores the files and, after a file is deleted, removes its document."""
    files = write_mixed_folder(tmp_path / "docs")
    team = team_id(database_url, tenant)
    # A namespace of its own: the session's `chatops worker` (the stack) consumes the
    # knowledge queue too and would ingest the files before this test looks. Under the
    # session's prefix, so the session's clean-up removes its keys.
    namespace = f"{queue_namespace}-ingest-{new_marker(6)}"
    env = env | {"QUEUE_NAMESPACE": namespace}
    broker = RedisBroker(url=redis_url, namespace=namespace)  # type: ignore[no-untyped-call]
    deps = build_ingest_deps(
        pool, embedder, ChunkingConfig(), lambda token: make_web_client(token, "http://unused/")
    )
    declare_ingest_actors(broker, deps)

    queued = chatops(env, "ingest", str(tmp_path / "docs"), "--tenant", team, "--queue")
    assert queued.returncode == 0, queued.stderr
    assert "queued 5 file(s) and 0 channel(s) for 'default'" in queued.stdout
    assert titles(pool, vectors, tenant, "default") == set()

    worker = dramatiq.Worker(broker, queues={KNOWLEDGE_QUEUE}, worker_threads=1)
    worker.start()
    try:
        broker.join(KNOWLEDGE_QUEUE, timeout=60_000)
        assert len(titles(pool, vectors, tenant, "default")) == 5

        files["txt"].unlink()
        again = chatops(env, "ingest", str(tmp_path / "docs"), "--tenant", team, "--queue")
        assert again.returncode == 0, again.stderr
        broker.join(KNOWLEDGE_QUEUE, timeout=60_000)
    finally:
        worker.stop()
        broker.close()
    assert "notes" not in titles(pool, vectors, tenant, "default")
    assert len(titles(pool, vectors, tenant, "default")) == 4

"""Ingestion into real Postgres with pgvector, with the offline embedding model."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from core.db import Pool
from rag.chunking import ChunkingConfig
from rag.collections import EmbeddingMismatch
from rag.embeddings import LocalEmbedder
from rag.ingest import Ingestor, IngestStats
from rag.sources import expand, ingest_unit, prune_folders
from rag.tenancy import VectorTypes, tenant_scope
from tests.rag.files import write_mixed_folder


def ingest_paths(ingestor: Ingestor, tenant: int, collection: str, *paths: Path) -> IngestStats:
    """What `chatops ingest PATH... --collection NAME` does, without the progress bar."""
    target = ingestor.collection(tenant, collection)
    units, scopes = expand([str(p) for p in paths])
    stats = IngestStats()
    for unit in units:
        stats.merge(ingest_unit(ingestor, tenant, target, unit, slack_access=None))
    stats.removed += prune_folders(ingestor, tenant, target, scopes)
    return stats


def stored(pool: Pool, vectors: VectorTypes, tenant: int) -> dict[str, list[dict[str, object]]]:
    """Each stored document's title -> its chunks, as the tenant sees them."""
    with tenant_scope(pool, tenant, vectors) as conn:
        rows = conn.execute(
            """SELECT d.title AS doc_title, d.source_key, d.url AS doc_url, c.position,
                      c.heading_path, c.text, c.url
               FROM knowledge_documents d JOIN knowledge_chunks c ON c.document_id = d.id
               ORDER BY d.title, c.position"""
        ).fetchall()
    documents: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        documents.setdefault(str(row["doc_title"]), []).append(row)
    return documents


def test_a_mixed_folder_is_stored_as_chunks_with_their_structure(
    tmp_path: Path, ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Markdown, HTML, text, email and PDF files in nested folders all become documents
    whose chunks keep their title, heading path, position and source link."""
    write_mixed_folder(tmp_path / "docs")

    stats = ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")

    assert (stats.added, stats.failures) == (5, [])
    documents = stored(pool, vectors, tenant)
    assert set(documents) == {
        "Employee Handbook",
        "Support FAQ",
        "notes",
        "Database failover drill",
        "manual",
    }
    handbook = documents["Employee Handbook"]
    assert [c["position"] for c in handbook] == list(range(len(handbook)))
    expenses = next(c for c in handbook if "receipts" in str(c["text"]))
    assert expenses["heading_path"] == ["Travel", "Expenses"]
    assert expenses["url"] == "https://intranet.example.com/handbook"
    refunds = documents["Support FAQ"][0]
    assert refunds["heading_path"] == ["Refunds"]
    assert refunds["url"] == "https://help.example.com/faq"
    assert "tracking" not in " ".join(str(c["text"]) for c in documents["Support FAQ"])
    assert "HX-40" in str(documents["manual"][0]["text"])
    assert "read-only mode" in str(documents["Database failover drill"][0]["text"])


def test_reingesting_updates_edited_files_and_removes_deleted_ones(
    tmp_path: Path, ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Running ingest again after editing one file and deleting another re-embeds only
    the edited file's changed chunks, and the deleted file's document disappears."""
    files = write_mixed_folder(tmp_path / "docs")
    ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")
    handbook = files["md"].read_text()
    files["md"].write_text(handbook.replace("thirty days", "sixty days"))
    files["txt"].unlink()

    again = ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")

    assert (again.added, again.updated, again.unchanged, again.removed) == (0, 1, 3, 1)
    assert again.chunks_embedded == 1  # only the Expenses section changed
    assert again.chunks_reused == 3
    documents = stored(pool, vectors, tenant)
    assert "notes" not in documents
    texts = " ".join(str(c["text"]) for c in documents["Employee Handbook"])
    assert "sixty days" in texts and "thirty days" not in texts

    with tenant_scope(pool, vectors=vectors, tenant_id=tenant) as conn:
        frequencies = {
            r["lexeme"]: r["chunks"]
            for r in conn.execute(
                "SELECT lexeme, chunks FROM knowledge_lexemes"
                " WHERE lexeme IN ('kestrel', 'thirti', 'sixti', 'travel')"
            )
        }
    # Document frequencies for full-text search follow the edit and the deletion.
    assert frequencies == {"kestrel": 0, "thirti": 0, "sixti": 1, "travel": 2}

    third = ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")
    assert (third.unchanged, third.chunks_embedded) == (4, 0)


def test_an_unreadable_pdf_is_reported_by_name_and_skipped(
    tmp_path: Path, ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """A corrupt PDF is listed as skipped with its path and a reason, and every other file
    of the folder is still ingested."""
    write_mixed_folder(tmp_path / "docs")
    broken = tmp_path / "docs" / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4\n this is not really a PDF \x00\xff")

    stats = ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")

    assert [source for source, _ in stats.failures] == [str(broken.resolve())]
    assert "PDF" in stats.failures[0][1]
    assert stats.added == 5
    assert "broken" not in stored(pool, vectors, tenant)


def test_two_runs_at_once_store_each_document_once(
    tmp_path: Path, ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Two ingestions of the same folder running at the same time leave exactly one copy
    of each document and of each of its chunks."""
    write_mixed_folder(tmp_path / "docs")
    ingestor.collection(tenant, "handbook")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs")
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    with tenant_scope(pool, tenant, vectors) as conn:
        counts = conn.execute(
            """SELECT (SELECT count(*) FROM knowledge_documents) AS documents,
                      (SELECT count(*) FROM knowledge_chunks) AS chunks,
                      (SELECT count(DISTINCT (document_id, position)) FROM knowledge_chunks)
                          AS distinct_chunks"""
        ).fetchone()
    assert counts is not None
    assert counts["documents"] == 5
    assert counts["chunks"] == counts["distinct_chunks"]


def test_a_collection_refuses_another_embedding_model(
    tmp_path: Path, ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Ingesting into a collection built with another model (or dimension) is refused
    with a message naming both models, and nothing is stored."""
    from rag.chunking import ChunkingConfig
    from rag.embeddings import OpenAIEmbedder
    from sandbox.openai_emulator import OpenAIEmulator

    write_mixed_folder(tmp_path / "docs")
    ingest_paths(ingestor, tenant, "handbook", tmp_path / "docs" / "notes.txt")
    with OpenAIEmulator() as emulator:
        other = Ingestor(
            pool,
            OpenAIEmbedder(
                base_url=emulator.base_url,
                api_key="unused",
                model="emulator-embedding",
                dimensions=256,
                send_dimensions=True,
            ),
            ChunkingConfig(),
            vectors,
        )
        with pytest.raises(EmbeddingMismatch) as refused:
            other.collection(tenant, "handbook")

    message = str(refused.value)
    assert "sentence-transformers/all-MiniLM-L6-v2 (384 dimensions)" in message
    assert "emulator-embedding (256 dimensions)" in message
    assert set(stored(pool, vectors, tenant)) == {"notes"}


def test_documents_of_several_batches_are_all_stored_once(
    embedder: LocalEmbedder, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Ingesting more documents than one embedding batch (one batch is stored while the
    next is embedded) stores every document and chunk once, and a second run finds them
    all unchanged."""
    from rag.documents import Block, Document

    per_batch = 16  # chunks: small batches, so that a few documents make several
    ingestor = Ingestor(pool, embedder, ChunkingConfig(), vectors, chunks_per_batch=per_batch)
    count = 2 * per_batch + 5
    documents = [
        Document(f"note:{n}", "file", f"Note {n}", (Block((), f"Room {n} is booked by team {n}."),))
        for n in range(count)
    ]
    target = ingestor.collection(tenant, "notes")

    first = ingestor.ingest(tenant, target, documents)
    again = ingestor.ingest(tenant, target, documents)

    assert (first.added, first.chunks_embedded) == (count, count)
    assert (again.added, again.unchanged, again.chunks_embedded) == (0, count, 0)
    kept = stored(pool, vectors, tenant)
    assert len(kept) == count
    assert all(len(chunks) == 1 for chunks in kept.values())

"""Store documents as embedded chunks, idempotently.

A document whose fingerprint (text, title, link, chunking settings, model) is unchanged is
skipped without embedding anything; a changed one is re-chunked, and only chunks whose
exact text is not already stored in the collection are embedded. Each batch of documents
is replaced in one transaction under an advisory lock on each document's identity, so two
runs at once (two CLI runs, or several workers) neither duplicate nor interleave chunks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from psycopg.types.json import Jsonb

from core.db import Conn, Pool
from rag.chunking import Chunk, ChunkingConfig, chunk_document
from rag.collections import Collection, ensure_collection, ensure_vector_index
from rag.documents import Document
from rag.embeddings import Embedder
from rag.lexemes import count_documents
from rag.tenancy import VectorTypes, tenant_scope

log = structlog.get_logger(__name__)

Outcome = Literal["added", "updated", "unchanged"]
ADVISORY_NAMESPACE = 0x6B  # "k": keeps knowledge document locks apart from other locks
# Chunks embedded in one call. The model sorts a call's texts by length, so a bigger call
# pads less: 32 documents (~60 chunks) a call cost 15-25% more CPU than the same chunks
# in one call (150 PubMedQA abstracts, 2 cores).
CHUNKS_PER_BATCH = 256
DOCUMENTS_PER_BATCH = 256  # and at most this many documents in one transaction


@dataclass
class IngestStats:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (source, reason)

    def merge(self, other: IngestStats) -> None:
        self.added += other.added
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.removed += other.removed
        self.chunks_embedded += other.chunks_embedded
        self.chunks_reused += other.chunks_reused
        self.failures.extend(other.failures)

    def summary(self) -> str:
        text = (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
            f"{self.removed} removed; {self.chunks_embedded} chunks embedded, "
            f"{self.chunks_reused} reused"
        )
        return text + (f"; {len(self.failures)} skipped" if self.failures else "")


class Ingestor:
    def __init__(
        self,
        pool: Pool,
        embedder: Embedder,
        chunking: ChunkingConfig,
        vectors: VectorTypes | None = None,
        *,
        chunks_per_batch: int = CHUNKS_PER_BATCH,
    ) -> None:
        self._pool = pool
        self._embedder = embedder
        self._chunking = chunking
        self._vectors = vectors or VectorTypes()
        self._chunks_per_batch = chunks_per_batch

    def collection(self, tenant_id: int, name: str) -> Collection:
        """The collection, created for the configured model if new (EmbeddingMismatch if it
        was built with another)."""
        model, dims = self._embedder.model_name, self._embedder.dimensions
        with tenant_scope(self._pool, tenant_id, self._vectors) as conn:
            collection = ensure_collection(conn, tenant_id, name, model, dims)
        ensure_vector_index(self._pool, dims)
        return collection

    def ingest(
        self, tenant_id: int, collection: Collection, documents: Iterable[Document]
    ) -> IngestStats:
        """Store documents, embedding those of each batch together (the model is much
        faster on full batches than on one document's few chunks). One batch is stored
        while the next is embedded: the model keeps the cores busy while Postgres
        commits, so ingestion runs at nearly the model's own rate."""
        stats = IngestStats()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-store") as storer:
            storing: Future[IngestStats] | None = None
            for batch in self._batches(documents):
                embedded = self._embed_batch(tenant_id, collection, batch)
                if storing is not None:
                    stats.merge(storing.result())
                storing = storer.submit(self._store_batch, tenant_id, collection, embedded)
            if storing is not None:
                stats.merge(storing.result())
        return stats

    def _batches(self, documents: Iterable[Document]) -> Iterator[list[_Prepared]]:
        """The documents chunked, in batches of about `chunks_per_batch` chunks."""
        model = self._embedder.model_name
        batch: list[_Prepared] = []
        chunks = 0
        for document in documents:
            batch.append(_Prepared.of(document, self._chunking, model))
            chunks += len(batch[-1].chunks)
            if chunks >= self._chunks_per_batch or len(batch) >= DOCUMENTS_PER_BATCH:
                yield batch
                batch, chunks = [], 0
        if batch:
            yield batch

    def _ingest_batch(
        self, tenant_id: int, collection: Collection, documents: list[Document]
    ) -> IngestStats:
        total = IngestStats()
        for batch in self._batches(documents):
            embedded = self._embed_batch(tenant_id, collection, batch)
            total.merge(self._store_batch(tenant_id, collection, embedded))
        return total

    def _embed_batch(
        self, tenant_id: int, collection: Collection, prepared: list[_Prepared]
    ) -> _Embedded:
        """Embed the chunks of changed documents not stored yet. A document may be
        stored by another run (or the previous batch) meanwhile: `_store_batch` checks
        again."""
        keys = [p.document.source_key for p in prepared]
        with tenant_scope(self._pool, tenant_id, self._vectors) as conn:
            stored_prints = {
                row["source_key"]: row["content_hash"]
                for row in conn.execute(
                    "SELECT source_key, content_hash FROM knowledge_documents"
                    " WHERE collection_id = %s AND source_key = ANY(%s)",
                    (collection.id, keys),
                )
            }
            changed = [p for p in prepared if stored_prints.get(p.key) != p.fingerprint]
            wanted = sorted({h for p in changed for h in p.hashes})
            vectors: dict[str, Any] = {
                row["content_hash"]: row["embedding"]
                for row in conn.execute(
                    "SELECT DISTINCT ON (content_hash) content_hash, embedding"
                    " FROM knowledge_chunks WHERE collection_id = %s AND content_hash = ANY(%s)",
                    (collection.id, wanted),
                )
            }
        # Embedded outside any transaction: a slow model must not hold locks or
        # connections. Two runs at once may both embed a chunk; only one stores it.
        missing: dict[str, str] = {}
        for p in changed:
            for chunk, digest in zip(p.chunks, p.hashes, strict=True):
                if digest not in vectors:
                    missing.setdefault(digest, chunk.embedding_text())
        fresh = self._embedder.embed(list(missing.values()))
        vectors.update(zip(missing, fresh, strict=True))
        return _Embedded(len(prepared) - len(changed), changed, vectors, set(missing))

    def _store_batch(
        self, tenant_id: int, collection: Collection, embedded: _Embedded
    ) -> IngestStats:
        """Replace the batch's changed documents in one transaction, under a lock on each
        one's identity: one commit and a handful of statements for the whole batch, the
        chunks sent in one pipeline, instead of a transaction of seven statements per
        document. Storing runs beside the model, on the same cores."""
        stats = IngestStats(unchanged=embedded.unchanged)
        if not embedded.changed:
            return stats
        by_key = {p.key: p for p in embedded.changed}  # a key twice in a batch: the last
        with tenant_scope(self._pool, tenant_id, self._vectors) as conn:
            _lock_all(conn, collection.id, list(by_key))
            existing = {
                row["source_key"]: row
                for row in conn.execute(
                    "SELECT id, source_key, content_hash FROM knowledge_documents"
                    " WHERE collection_id = %s AND source_key = ANY(%s)",
                    (collection.id, list(by_key)),
                )
            }
            # Another run may have stored this very version meanwhile.
            changed = [
                p
                for key, p in by_key.items()
                if key not in existing or existing[key]["content_hash"] != p.fingerprint
            ]
            stats.unchanged += len(embedded.changed) - len(changed)
            if not changed:
                return stats
            replaced = [existing[p.key]["id"] for p in changed if p.key in existing]
            count_documents(conn, tenant_id, collection.id, replaced, -1)
            if replaced:
                conn.execute(
                    "DELETE FROM knowledge_chunks WHERE document_id = ANY(%s)", (replaced,)
                )
            ids = _upsert_documents(conn, tenant_id, collection.id, changed)
            _insert_chunks(conn, tenant_id, collection, changed, ids, embedded.vectors)
            count_documents(conn, tenant_id, collection.id, list(ids.values()), 1)
        for p in changed:
            outcome: Outcome = "updated" if p.key in existing else "added"
            setattr(stats, outcome, getattr(stats, outcome) + 1)
            fresh = sum(1 for h in set(p.hashes) if h in embedded.fresh)
            stats.chunks_embedded += fresh
            stats.chunks_reused += len(p.hashes) - fresh
            log.debug(
                "knowledge.document_stored",
                collection=collection.name,
                source=p.key,
                chunks=len(p.chunks),
            )
        return stats

    def ingest_document(
        self, tenant_id: int, collection: Collection, document: Document
    ) -> IngestStats:
        return self._ingest_batch(tenant_id, collection, [document])

    def prune(
        self, tenant_id: int, collection: Collection, prefix: str, keep: Iterable[str]
    ) -> int:
        """Delete the collection's documents whose key starts with `prefix` and whose
        source (the key up to any '#') is not in `keep`: files deleted from a folder,
        threads gone from a mailbox, days gone from a channel."""
        kept = sorted(set(keep))
        with tenant_scope(self._pool, tenant_id, self._vectors) as conn:
            gone = [
                r["id"]
                for r in conn.execute(
                    """SELECT id FROM knowledge_documents
                       WHERE collection_id = %s AND starts_with(source_key, %s)
                         AND NOT (source_key = ANY(%s)
                                  OR split_part(source_key, '#', 1) = ANY(%s))
                       ORDER BY id FOR UPDATE""",
                    (collection.id, prefix, kept, kept),
                )
            ]
            count_documents(conn, tenant_id, collection.id, gone, -1)
            rows = conn.execute(
                "DELETE FROM knowledge_documents WHERE id = ANY(%s) RETURNING source_key",
                (gone,),
            ).fetchall()
        for row in rows:
            log.info(
                "knowledge.document_removed", collection=collection.name, source=row["source_key"]
            )
        return len(rows)


@dataclass(frozen=True)
class _Embedded:
    """A batch ready to store: its changed documents and the vectors of their chunks."""

    unchanged: int
    changed: list[_Prepared]
    vectors: dict[str, Any]  # chunk hash -> vector
    fresh: set[str]  # the hashes embedded for this batch (the rest were reused)


@dataclass(frozen=True)
class _Prepared:
    document: Document
    chunks: list[Chunk]
    hashes: list[str]
    fingerprint: str

    @property
    def key(self) -> str:
        return self.document.source_key

    @classmethod
    def of(cls, document: Document, chunking: ChunkingConfig, model: str) -> _Prepared:
        chunks = chunk_document(document, chunking)
        return cls(
            document,
            chunks,
            [c.content_hash(model) for c in chunks],
            _fingerprint(document, chunking, model),
        )


def _fingerprint(document: Document, chunking: ChunkingConfig, model: str) -> str:
    settings = f"{model}\x00{chunking.max_chars}\x00{chunking.overlap_chars}"
    return hashlib.sha256(f"{settings}\x00{document.fingerprint()}".encode()).hexdigest()


def _lock_all(conn: Conn, collection_id: int, source_keys: list[str]) -> None:
    """Lock the documents' identities for this transaction, in one order for every
    writer (that of the lock keys), so two runs storing overlapping batches wait for
    each other but never deadlock."""
    conn.execute(
        """SELECT count(pg_advisory_xact_lock(%(space)s::integer, key))
           FROM (SELECT DISTINCT hashtext(k) AS key FROM unnest(%(keys)s::text[]) k
                 ORDER BY 1) ordered""",
        {"space": ADVISORY_NAMESPACE << 24 | collection_id % (1 << 24), "keys": source_keys},
    )


def _upsert_documents(
    conn: Conn, tenant_id: int, collection_id: int, prepared: list[_Prepared]
) -> dict[str, int]:
    """Insert or update the documents' rows; their ids by source key."""
    rows = conn.execute(
        """INSERT INTO knowledge_documents
               (tenant_id, collection_id, source_key, source_kind, title, url,
                content_hash, metadata)
           SELECT %(tenant)s, %(collection)s, d.*
           FROM unnest(%(keys)s::text[], %(kinds)s::text[], %(titles)s::text[],
                       %(urls)s::text[], %(hashes)s::text[], %(metadata)s::jsonb[]) d
           ON CONFLICT (collection_id, source_key) DO UPDATE SET
               source_kind = EXCLUDED.source_kind, title = EXCLUDED.title,
               url = EXCLUDED.url, content_hash = EXCLUDED.content_hash,
               metadata = EXCLUDED.metadata, ingested_at = now()
           RETURNING id, source_key""",
        {
            "tenant": tenant_id,
            "collection": collection_id,
            "keys": [p.key for p in prepared],
            "kinds": [p.document.kind for p in prepared],
            "titles": [p.document.title for p in prepared],
            "urls": [p.document.url for p in prepared],
            "hashes": [p.fingerprint for p in prepared],
            "metadata": [Jsonb(p.document.metadata) for p in prepared],
        },
    ).fetchall()
    return {row["source_key"]: row["id"] for row in rows}


def _insert_chunks(
    conn: Conn,
    tenant_id: int,
    collection: Collection,
    prepared: list[_Prepared],
    document_ids: dict[str, int],
    vectors: dict[str, Any],
) -> None:
    # executemany sends the rows in one pipeline. Not COPY: Postgres refuses COPY FROM
    # into a table with row-level security, which this role is subject to.
    with conn.cursor() as cursor:
        cursor.executemany(
            """INSERT INTO knowledge_chunks
                   (tenant_id, collection_id, document_id, position, title,
                    heading_path, text, url, content_hash, metadata, dims, embedding)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (
                    tenant_id,
                    collection.id,
                    document_ids[p.key],
                    chunk.position,
                    chunk.title,
                    list(chunk.heading_path),
                    chunk.text,
                    chunk.url,
                    digest,
                    Jsonb(p.document.metadata),
                    collection.embedding_dimensions,
                    vectors[digest],
                )
                for p in prepared
                for chunk, digest in zip(p.chunks, p.hashes, strict=True)
            ],
        )

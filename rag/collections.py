"""Named collections per tenant, each bound to the embedding model that filled it."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import psycopg
from psycopg import sql

from core.db import Conn, Pool

MAX_INDEXED_DIMENSIONS = 2_000  # pgvector's HNSW limit for the `vector` type
# A denser graph than pgvector's default (16, 64): recall@10 0.93 -> 0.97 at 100k chunks
# (ef_search 100 -> 200), as in migrations/0005_knowledge.sql.
HNSW_M = 24
HNSW_EF_CONSTRUCTION = 128


@dataclass(frozen=True)
class Collection:
    id: int
    name: str
    embedding_model: str
    embedding_dimensions: int


class EmbeddingMismatch(Exception):
    """A collection was built with another embedding model than the one configured."""


class UnknownCollection(Exception):
    """The tenant has no collection of that name."""


def check_model(collection: Collection, model: str, dimensions: int) -> None:
    if (collection.embedding_model, collection.embedding_dimensions) != (model, dimensions):
        raise EmbeddingMismatch(
            f"collection {collection.name!r} was embedded with {collection.embedding_model} "
            f"({collection.embedding_dimensions} dimensions) but the configured model is "
            f"{model} ({dimensions} dimensions); vectors of different models cannot be "
            "compared: configure the original model again, or ingest into a new collection"
        )


def ensure_collection(
    conn: Conn, tenant_id: int, name: str, model: str, dimensions: int
) -> Collection:
    """The tenant's collection `name`, created for `model` if new; a collection built
    with another model is refused with EmbeddingMismatch. `conn` is tenant-scoped."""
    conn.execute(
        """INSERT INTO knowledge_collections
               (tenant_id, name, embedding_model, embedding_dimensions)
           VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id, name) DO NOTHING""",
        (tenant_id, name, model, dimensions),
    )
    (collection,) = find_collections(conn, [name])
    check_model(collection, model, dimensions)
    return collection


def find_collections(conn: Conn, names: list[str] | None) -> list[Collection]:
    """The scoped tenant's collections, all or those named; UnknownCollection names any
    missing one."""
    rows = conn.execute(
        """SELECT id, name, embedding_model, embedding_dimensions FROM knowledge_collections
           WHERE %(names)s::text[] IS NULL OR name = ANY (%(names)s::text[]) ORDER BY name""",
        {"names": names},
    ).fetchall()
    found = [Collection(**row) for row in rows]
    missing = sorted(set(names or []) - {c.name for c in found})
    if missing:
        raise UnknownCollection("no knowledge collection named " + ", ".join(map(repr, missing)))
    return found


def vector_index_name(dimensions: int) -> str:
    return f"knowledge_chunks_hnsw_{dimensions}"


def ensure_vector_index(pool: Pool, dimensions: int) -> None:
    """The partial HNSW index for vectors of this dimension (384 comes with the migration).

    Run as the tables' owner, outside any tenant scope: it is schema, not tenant data.
    """
    if dimensions > MAX_INDEXED_DIMENSIONS:
        return  # searched exactly; pgvector cannot index more dimensions as `vector`
    # UniqueViolation: another process created it at the same moment.
    with pool.connection() as conn, contextlib.suppress(psycopg.errors.UniqueViolation):
        conn.execute(vector_index_statement(dimensions))


def vector_index_statement(dimensions: int) -> sql.Composed:
    return sql.SQL(
        "CREATE INDEX IF NOT EXISTS {name} ON knowledge_chunks USING hnsw "
        "((embedding::vector({dims})) vector_cosine_ops) "
        "WITH (m = {m}, ef_construction = {ef}) WHERE dims = {dims}"
    ).format(
        name=sql.Identifier(vector_index_name(dimensions)),
        dims=sql.Literal(dimensions),
        m=sql.Literal(HNSW_M),
        ef=sql.Literal(HNSW_EF_CONSTRUCTION),
    )

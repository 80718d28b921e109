"""Every read and write of knowledge runs inside `tenant_scope`: one transaction, as the
role row-level security restricts, with the tenant set for that transaction only.

Why a role: the product connects as the tables' owner (a superuser in the embedded
server), and owners and superusers are exempt from row-level security. `SET LOCAL ROLE
chatops_knowledge` makes the policies of migrations/0005_knowledge.sql apply, and both
settings end with the transaction, so a pooled connection never carries a tenant over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from threading import Lock

from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from core.db import Conn, Pool

KNOWLEDGE_ROLE = "chatops_knowledge"


class VectorTypes:
    """pgvector's type OIDs, looked up once per database and registered on each connection
    we use, so vectors travel as numpy arrays in binary."""

    def __init__(self) -> None:
        self._info: TypeInfo | None = None
        self._lock = Lock()

    def register(self, conn: Conn) -> None:
        with self._lock:
            if self._info is None:
                info = TypeInfo.fetch(conn, "vector")
                if info is None:
                    raise RuntimeError("the pgvector extension is missing: run `chatops migrate`")
                self._info = info
        register_vector_info(conn, self._info)


@contextmanager
def tenant_scope(pool: Pool, tenant_id: int, vectors: VectorTypes) -> Iterator[Conn]:
    """A connection in a transaction that can see only `tenant_id`'s knowledge."""
    with pool.connection() as conn, conn.transaction():
        scope(conn, tenant_id, vectors)
        yield conn


def scope(conn: Conn, tenant_id: int, vectors: VectorTypes) -> None:
    """Restrict the current transaction of `conn` to one tenant's knowledge."""
    vectors.register(conn)
    conn.execute(f"SET LOCAL ROLE {KNOWLEDGE_ROLE}")
    conn.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant_id),))

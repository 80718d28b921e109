"""A source people marked wrong or outdated ranks lower, for their tenant only, until the
document changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from core.db import open_async_pool
from rag.documents import Block, Document
from rag.ingest import Ingestor
from rag.retriever import HybridRetriever
from rag.source_flags import MIN_FACTOR, flag_document, penalty

TITLE = "VPN token reset"
TEXT = "To reset your VPN token, open the self-service portal and choose Reset token."
QUESTION = "How do I reset my VPN token?"


def twin_documents(ingestor: Ingestor, tenant: int, text: str = TEXT) -> None:
    """Two documents equal in all but their source: they tie, and the tie goes to the one
    ingested first (the lower chunk id)."""
    target = ingestor.collection(tenant, "kb")
    ingestor.ingest(
        tenant,
        target,
        [Document(f"test:{name}", "file", TITLE, (Block((), text),)) for name in ("a", "b")],
    )


def ranked_documents(retriever: HybridRetriever, tenant: int) -> list[int]:
    return [r.hit.document_id for r in retriever.rank(tenant, [QUESTION], limit=5)]


def flag(database_url: str, tenant: int, document_id: int, user: str) -> str | None:
    async def run() -> str | None:
        pool = await open_async_pool(database_url, max_size=1)
        try:
            return await flag_document(
                pool, tenant_id=tenant, document_id=document_id, user=user, run_id=None
            )
        finally:
            await pool.close()

    return asyncio.run(run())


def test_a_flagged_document_ranks_below_its_equal_for_that_tenant_only(
    ingestor: Ingestor,
    retriever: HybridRetriever,
    new_tenant: Callable[[], int],
    database_url: str,
) -> None:
    """After a person flags the first of two equal documents, the other one comes first
    for their tenant; another tenant with the same documents keeps its order."""
    flagging, other = new_tenant(), new_tenant()
    twin_documents(ingestor, flagging)
    twin_documents(ingestor, other)
    first, second = ranked_documents(retriever, flagging)[:2]
    other_order = ranked_documents(retriever, other)[:2]

    assert flag(database_url, flagging, first, "U0READER") == TITLE

    assert ranked_documents(retriever, flagging)[:2] == [second, first]
    assert ranked_documents(retriever, other)[:2] == other_order


def test_another_tenants_document_cannot_be_flagged(
    ingestor: Ingestor,
    retriever: HybridRetriever,
    new_tenant: Callable[[], int],
    database_url: str,
) -> None:
    """A flag naming a document of another tenant is refused and changes nothing there."""
    owner, stranger = new_tenant(), new_tenant()
    twin_documents(ingestor, owner)
    order = ranked_documents(retriever, owner)

    assert flag(database_url, stranger, order[0], "U0STRANGER") is None
    assert ranked_documents(retriever, owner) == order


def test_re_ingesting_a_changed_document_lifts_the_demotion(
    ingestor: Ingestor,
    retriever: HybridRetriever,
    tenant: int,
    database_url: str,
) -> None:
    """Once the flagged source is fixed (new content), it is no longer demoted."""
    twin_documents(ingestor, tenant)
    first, second = ranked_documents(retriever, tenant)[:2]
    flag(database_url, tenant, first, "U0READER")
    assert ranked_documents(retriever, tenant)[:2] == [second, first]

    fixed = TEXT + " The portal is at vpn.example."
    target = ingestor.collection(tenant, "kb")
    ingestor.ingest(
        tenant,
        target,
        [Document(f"test:{name}", "file", TITLE, (Block((), fixed),)) for name in ("a", "b")],
    )

    assert ranked_documents(retriever, tenant)[:2] == [first, second]


def test_more_people_flagging_lowers_it_further_but_never_below_half() -> None:
    """Each person's flag takes 20% off, and the demotion stops at half."""
    assert penalty(0) == 1.0
    assert penalty(1) == 0.8
    assert penalty(2) < penalty(1)
    assert penalty(10) == MIN_FACTOR

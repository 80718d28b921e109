"""Hybrid search, reranking and tenant isolation on real Postgres with pgvector."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.db import Pool
from rag.documents import Block, Document
from rag.embeddings import LocalEmbedder, Vectors
from rag.ingest import Ingestor
from rag.lexemes import uncommon_lexemes
from rag.loaders.files import load_file
from rag.rerank import FeatureReranker
from rag.retriever import HybridRetriever, RetrievalOptions
from rag.search import EXACT_SCAN_MAX_CHUNKS, hybrid_search
from rag.tenancy import VectorTypes, tenant_scope

CORPUS = {
    "Refund policy": "Customers may request reimbursement within 30 days of the order date. "
    "The amount is returned to the original card.",
    "Shipping times": "Orders leave the warehouse within two business days and arrive "
    "within a week.",
    "Office badges": "Badges must be worn visibly at all times inside the office building.",
    "Gateway release": "The gateway now rotates TLS certificates without a restart and uses "
    "less memory under heavy load. Build ZK-88412 ships this change.",
    "Error codes": "Error codes start with a letter and a build number, for example when a "
    "build fails or a code is rejected.",
    "Parental leave": "Employees receive sixteen weeks of paid parental leave after the "
    "birth or adoption of a child.",
    "Laptop setup": "New laptops come with disk encryption enabled; install the VPN "
    "client before the first login.",
    "Lunch menu": "The cafeteria serves vegetarian lunch on Tuesdays and fish on Fridays.",
}


def document(title: str, text: str, **metadata: object) -> Document:
    return Document(f"test:{title}", "file", title, (Block((), text),), metadata=dict(metadata))


def embed_one(embedder: object, text: str) -> Vectors:
    """``text`` embedded by the local model the ``embedder`` fixture loads."""
    from rag.embeddings import LocalEmbedder

    assert isinstance(embedder, LocalEmbedder)
    vector: Vectors = embedder.embed([text])[0]
    return vector


def vector_neighbours(
    pool: Pool,
    vectors: VectorTypes,
    tenant: int,
    query: Vectors,
    *,
    exact: bool | None,
    exact_scan_max_chunks: int = EXACT_SCAN_MAX_CHUNKS,
) -> list[int]:
    """The ids of the five chunks of all ``tenant``'s collections nearest to ``query``, by
    vector search alone."""
    with tenant_scope(pool, tenant, vectors) as conn:
        ids = [c["id"] for c in conn.execute("SELECT id FROM knowledge_collections")]
        return [
            h.chunk_id
            for h in hybrid_search(
                conn,
                text="",
                vector=query,
                collection_ids=ids,
                candidates=5,
                limit=5,
                mode="vector",
                exact=exact,
                exact_scan_max_chunks=exact_scan_max_chunks,
            )
        ]


def ingest_corpus(ingestor: Ingestor, tenant: int, collection: str = "kb") -> None:
    target = ingestor.collection(tenant, collection)
    ingestor.ingest(tenant, target, [document(t, x) for t, x in CORPUS.items()])


def titles(retriever: HybridRetriever, tenant: int, query: str, **options: object) -> list[str]:
    ranked = retriever.rank(tenant, [query], limit=5, **options)  # type: ignore[arg-type]
    return [r.hit.title for r in ranked]


def test_hybrid_search_finds_an_exact_rare_term_that_vectors_miss(
    ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """A build number that means nothing to the embedding model is found by hybrid
    search, while vector search alone ranks other documents first."""
    ingest_corpus(ingestor, tenant)

    vector_only = titles(retriever, tenant, "ZK-88412", mode="vector", rerank=False)
    hybrid = titles(retriever, tenant, "ZK-88412")

    assert vector_only[0] != "Gateway release"
    assert hybrid[0] == "Gateway release"


def test_hybrid_search_finds_a_paraphrase_that_full_text_misses(
    ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """A question sharing no word with its answer is found by hybrid search through
    the vectors, while full-text search alone does not find it at all."""
    ingest_corpus(ingestor, tenant)
    question = "How can I get my money back for a purchase?"

    full_text_only = titles(retriever, tenant, question, mode="fulltext", rerank=False)
    hybrid = titles(retriever, tenant, question)

    assert "Refund policy" not in full_text_only
    assert hybrid[0] == "Refund policy"


def test_one_tenant_cannot_see_another_tenants_chunks(
    ingestor: Ingestor,
    retriever: HybridRetriever,
    pool: Pool,
    vectors: VectorTypes,
    new_tenant: Callable[[], int],
) -> None:
    """Row-level security, not a WHERE clause, keeps tenants apart: searching, full-text
    lookup and plain SELECTs run for one tenant never return the other's chunks."""
    acme, globex = new_tenant(), new_tenant()
    ingest_corpus(ingestor, acme)
    target = ingestor.collection(globex, "kb")
    ingestor.ingest(globex, target, [document("Globex only", "Globex ships turbines.")])

    assert titles(retriever, globex, "ZK-88412 refund reimbursement") == ["Globex only"]
    assert "Globex only" not in titles(retriever, acme, "Globex turbines")

    with tenant_scope(pool, globex, vectors) as conn:
        role = conn.execute(
            "SELECT current_user AS name, rolsuper, rolbypassrls FROM pg_roles"
            " WHERE rolname = current_user"
        ).fetchone()
        assert role == {"name": "chatops_knowledge", "rolsuper": False, "rolbypassrls": False}
        # No tenant filter in these queries: the database applies it.
        chunk_tenants = conn.execute("SELECT DISTINCT tenant_id FROM knowledge_chunks").fetchall()
        assert [r["tenant_id"] for r in chunk_tenants] == [globex]
        collections = conn.execute("SELECT tenant_id FROM knowledge_collections").fetchall()
        assert {r["tenant_id"] for r in collections} == {globex}
        acme_ids = [
            r["id"]
            for r in conn.execute(
                "SELECT id FROM knowledge_collections WHERE tenant_id = %s", (acme,)
            )
        ]
        assert acme_ids == []
        # Even naming the other tenant's collection, the full-text half finds nothing.
        with pool.connection() as owner:
            acme_collection = owner.execute(
                "SELECT id FROM knowledge_collections WHERE tenant_id = %s", (acme,)
            ).fetchone()
        assert acme_collection is not None
        leaked = conn.execute(
            "SELECT * FROM knowledge_fulltext('reimbursement', ARRAY['reimburs'],"
            " ARRAY[%s]::bigint[], '{}'::jsonb, 10)",
            (acme_collection["id"],),
        ).fetchall()
        assert leaked == []
        counted = conn.execute("SELECT DISTINCT tenant_id FROM knowledge_lexemes").fetchall()
        assert [r["tenant_id"] for r in counted] == [globex]
        # A write for the other tenant is refused by the policy's WITH CHECK.
        with pytest.raises(Exception, match="row-level security"), conn.transaction():
            conn.execute(
                "INSERT INTO knowledge_collections"
                " (tenant_id, name, embedding_model, embedding_dimensions)"
                " VALUES (%s, 'stolen', 'm', 3)",
                (acme,),
            )


def test_full_text_matches_on_the_words_that_are_not_common(
    ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """Words found in many chunks of the collection are left out of matching (they only
    weigh in the rank), the telling ones are kept, and counts follow the collection."""
    ingest_corpus(ingestor, tenant)
    question = "Which build fixes the gateway memory leak under heavy load?"
    with tenant_scope(pool, tenant, vectors) as conn:
        ids = [r["id"] for r in conn.execute("SELECT id FROM knowledge_collections")]
        everything = uncommon_lexemes(conn, ids, question)
        telling = uncommon_lexemes(conn, ids, question, common_chunks=2)

    assert set(everything) == {"build", "fix", "gateway", "memori", "leak", "heavi", "load"}
    assert "build" not in telling  # in "Gateway release" and twice in "Error codes"
    assert {"gateway", "leak", "memori"} <= set(telling)


def test_a_transaction_without_a_tenant_sees_no_knowledge(
    ingestor: Ingestor, pool: Pool, vectors: VectorTypes, tenant: int
) -> None:
    """As the knowledge role, a transaction that forgot to name its tenant reads no rows."""
    ingest_corpus(ingestor, tenant)
    with pool.connection() as conn, conn.transaction():
        conn.execute("SET LOCAL ROLE chatops_knowledge")
        row = conn.execute("SELECT count(*) AS n FROM knowledge_chunks").fetchone()
    assert row == {"n": 0}


def test_search_is_limited_to_the_collections_and_metadata_asked_for(
    ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """Filters by collection name and by metadata restrict both halves of the search."""
    ingest_corpus(ingestor, tenant, "kb")
    hr = ingestor.collection(tenant, "hr")
    ingestor.ingest(
        tenant,
        hr,
        [
            document(
                "Leave policy EU", "Parental leave in the EU office is 20 weeks.", region="eu"
            ),
            document(
                "Leave policy US", "Parental leave in the US office is 16 weeks.", region="us"
            ),
        ],
    )

    in_hr = titles(retriever, tenant, "parental leave weeks", collections=["hr"])
    eu_only = titles(
        retriever, tenant, "parental leave weeks", collections=["hr"], metadata={"region": "eu"}
    )

    assert set(in_hr) == {"Leave policy EU", "Leave policy US"}
    assert eu_only == ["Leave policy EU"]


def test_near_duplicates_do_not_fill_the_top_results(
    ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """When the same page is stored twice, a different relevant document comes second
    instead of the copy."""
    ingest_corpus(ingestor, tenant)
    target = ingestor.collection(tenant, "kb")
    paragraph = "To reset your password, open Settings, choose Security and press Reset."
    copies = [
        Document(f"test:{where}", "file", "Password reset", (Block((), paragraph),), url=where)
        for where in ("https://wiki.example.com/a", "https://wiki.example.com/b")
    ]
    lockout = document(
        "Account lockout",
        "After five wrong passwords the account locks; reset it from the Security settings.",
    )
    ingestor.ingest(tenant, target, [*copies, lockout])
    question = "how do I reset my password"

    plain = retriever.rank(tenant, [question], limit=3, diversify=False)
    diverse = retriever.rank(tenant, [question], limit=3)

    assert {r.hit.url for r in plain[:2]} == {c.url for c in copies}
    assert [r.hit.title for r in diverse[:2]] == ["Password reset", "Account lockout"]


def test_passages_carry_title_headings_and_link(
    ingestor: Ingestor, retriever: HybridRetriever, tenant: int
) -> None:
    """What the agent loop receives names where each passage comes from."""
    target = ingestor.collection(tenant, "kb")
    ingestor.ingest(
        tenant,
        target,
        [
            Document(
                "test:handbook",
                "file",
                "Employee Handbook",
                (Block(("Travel", "Expenses"), "Submit travel expenses within thirty days."),),
                url="https://intranet.example.com/handbook",
            )
        ],
    )

    (passage,) = retriever.search(tenant, ["expense deadline"], limit=3)

    assert passage.title == "Employee Handbook > Travel > Expenses"
    assert passage.url == "https://intranet.example.com/handbook"
    assert passage.text == "Submit travel expenses within thirty days."


def test_exact_and_indexed_vector_search_agree_on_a_small_collection(
    ingestor: Ingestor, pool: Pool, vectors: VectorTypes, embedder: object, tenant: int
) -> None:
    """The HNSW index (used by default) returns the same neighbours as an exact scan."""
    ingest_corpus(ingestor, tenant)
    query = embed_one(embedder, "office security rules")
    indexed, exact = (
        vector_neighbours(pool, vectors, tenant, query, exact=exact) for exact in (False, True)
    )
    assert indexed == exact


def test_a_small_tenant_beside_a_large_one_gets_its_exact_neighbours(
    ingestor: Ingestor,
    pool: Pool,
    vectors: VectorTypes,
    embedder: object,
    new_tenant: Callable[[], int],
) -> None:
    """A tenant with a few chunks in a table another tenant fills gets exactly its own
    nearest chunks, and the large tenant's search through the graph finds its own too."""
    small, large = new_tenant(), new_tenant()
    ingest_corpus(ingestor, small)
    ingest_corpus(ingestor, large)
    query = embed_one(embedder, "office security rules")

    def neighbours(tenant: int, exact: bool | None, threshold: int) -> list[int]:
        return vector_neighbours(
            pool, vectors, tenant, query, exact=exact, exact_scan_max_chunks=threshold
        )

    assert neighbours(small, None, 10_000) == neighbours(small, True, 10_000)
    through_graph = neighbours(large, None, 1)  # above the threshold: the HNSW walk
    assert through_graph == neighbours(large, True, 1)
    assert not set(through_graph) & set(neighbours(small, True, 10_000))


def test_a_large_tenant_searched_through_the_graph_finds_the_right_passage(
    ingestor: Ingestor,
    pool: Pool,
    vectors: VectorTypes,
    embedder: object,
    new_tenant: Callable[[], int],
) -> None:
    """A tenant too large for an exact scan is searched by walking the shared HNSW graph
    (sorting switched off for that statement): hybrid search with reranking still puts
    the passage with the question's rare term first, finds a paraphrase by its meaning,
    shows nothing of another tenant that holds the same documents, and leaves the
    transaction's later statements planned as usual."""
    from rag.embeddings import LocalEmbedder
    from rag.rerank import FeatureReranker

    assert isinstance(embedder, LocalEmbedder)
    large, other = new_tenant(), new_tenant()
    ingest_corpus(ingestor, large)
    ingest_corpus(ingestor, other)
    with tenant_scope(pool, other, vectors) as conn:
        others = {r["id"] for r in conn.execute("SELECT id FROM knowledge_chunks")}

    def best(question: str) -> list[str]:
        (vector,) = embedder.embed([question])
        with tenant_scope(pool, large, vectors) as conn:
            ids = [c["id"] for c in conn.execute("SELECT id FROM knowledge_collections")]
            hits = hybrid_search(
                conn,
                text=question,
                vector=vector,
                collection_ids=ids,
                match_lexemes=uncommon_lexemes(conn, ids, question),
                candidates=8,
                limit=8,
                exact_scan_max_chunks=1,  # as if the tenant had more than the threshold
            )
            after = conn.execute("SELECT current_setting('enable_sort') AS sort").fetchone()
        assert after == {"sort": "on"}
        assert hits and not {h.chunk_id for h in hits} & others
        scores = FeatureReranker().score(question, vector, hits)
        ranked = sorted(zip(scores, hits, strict=True), key=lambda p: -p[0])
        return [hit.title for _, hit in ranked]

    assert best("Which build ships the ZK-88412 gateway change?")[0] == "Gateway release"
    assert best("How can I get my money back for a purchase?")[0] == "Refund policy"


def test_the_agent_is_given_the_pages_that_answer_not_every_page_a_search_touched(
    pool: Pool, embedder: LocalEmbedder, vectors: VectorTypes, ingestor: Ingestor, tenant: int
) -> None:
    """With the sandbox's nine sample documents, a search for the discount on 150 seats
    gave the agent eight passages (repairs, expenses, delivery, refunds among them) and a
    small model summarised them all. It now gets the pages close to the best match."""
    samples = Path(__file__).resolve().parents[2] / "sandbox" / "sample_knowledge"
    target = ingestor.collection(tenant, "kb")
    ingestor.ingest(tenant, target, [d for p in sorted(samples.glob("*.md")) for d in load_file(p)])
    question = ["How much discount can I give a customer buying 150 seats without asking anyone?"]

    def given(floor: float) -> list[str]:
        options = RetrievalOptions(relevance_floor=floor)
        retriever = HybridRetriever(pool, embedder, FeatureReranker(), options, vectors)
        return [p.title for p in retriever.search(tenant, question, limit=8)]

    everything = given(0.0)
    relevant = given(RetrievalOptions().relevance_floor)

    assert len(everything) == 8
    assert relevant and all(t.startswith("Widget Cloud for business") for t in relevant)
    assert any(t.startswith("Warranty and repairs") for t in everything)

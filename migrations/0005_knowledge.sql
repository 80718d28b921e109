-- Knowledge: collections of documents, cut into chunks that carry both a vector
-- (pgvector, HNSW, cosine) and a full-text vector (tsvector, GIN), for hybrid search.
--
-- Tenant isolation is enforced by the database, not only by WHERE clauses. The product
-- reads and writes these tables as the NOLOGIN role chatops_knowledge (SET LOCAL ROLE in
-- each transaction, see rag/tenancy.py), and row-level security limits that role to the
-- rows of the tenant named by the transaction-local setting app.tenant_id. With the
-- setting missing, the policies match nothing: a forgotten scope fails closed.

DO $$
BEGIN
    -- Roles are shared by every database of the server, so another database's migration
    -- (or an administrator, where the migrating user may not create roles) may have made it.
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'chatops_knowledge') THEN
        CREATE ROLE chatops_knowledge NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- created by a concurrent migration of another database
END
$$;

-- The connecting (migrating) user must be able to SET ROLE to it.
GRANT chatops_knowledge TO CURRENT_USER;

CREATE FUNCTION knowledge_tenant() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('app.tenant_id', true), '')::bigint
$$;

-- array_to_string is only STABLE (for some element types its output depends on
-- settings); joining text is not, and generated columns need IMMUTABLE.
CREATE FUNCTION knowledge_join_headings(text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_to_string($1, ' ') $$;

-- A named set of documents. The embedding model and its dimension are fixed when the
-- collection is created: vectors from different models cannot be compared.
CREATE TABLE knowledge_collections (
    id                   bigserial PRIMARY KEY,
    tenant_id            bigint NOT NULL REFERENCES tenants(id),
    name                 text NOT NULL,
    embedding_model      text NOT NULL,
    embedding_dimensions integer NOT NULL CHECK (embedding_dimensions > 0),
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

-- One source document: a file, a day of a Slack channel, an email thread.
CREATE TABLE knowledge_documents (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    collection_id   bigint NOT NULL REFERENCES knowledge_collections(id) ON DELETE CASCADE,
    -- Stable identity of the source (file:///abs/path, slack://T/C/day, email://...):
    -- re-ingesting the same source updates this row instead of adding another.
    source_key      text NOT NULL,
    source_kind     text NOT NULL CHECK (source_kind IN ('file', 'slack', 'email')),
    title           text NOT NULL,
    url             text,
    -- Hash of the extracted text, chunking settings and model: equal means nothing to redo.
    content_hash    text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    ingested_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (collection_id, source_key)
);
CREATE INDEX knowledge_documents_tenant ON knowledge_documents (tenant_id, collection_id);

CREATE TABLE knowledge_chunks (
    id              bigserial PRIMARY KEY,
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    collection_id   bigint NOT NULL REFERENCES knowledge_collections(id) ON DELETE CASCADE,
    document_id     bigint NOT NULL REFERENCES knowledge_documents(id) ON DELETE CASCADE,
    position        integer NOT NULL,
    title           text NOT NULL,
    heading_path    text[] NOT NULL DEFAULT '{}',
    text            text NOT NULL,
    url             text,
    -- Hash of exactly what was embedded, so an edited document re-embeds only the chunks
    -- that changed.
    content_hash    text NOT NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- Unsized, so collections of different models share the table; each dimension gets
    -- its own partial HNSW index on a cast to the sized type (pgvector's documented
    -- pattern), created by the first collection of that dimension (rag/collections.py).
    dims            integer NOT NULL,
    embedding       vector NOT NULL CHECK (vector_dims(embedding) = dims),
    tsv             tsvector GENERATED ALWAYS AS (
                        setweight(to_tsvector('english', title), 'A')
                        || setweight(to_tsvector('english', knowledge_join_headings(heading_path)), 'B')
                        || to_tsvector('english', text)
                    ) STORED,
    UNIQUE (document_id, position)
);
CREATE INDEX knowledge_chunks_tsv ON knowledge_chunks USING gin (tsv);
CREATE INDEX knowledge_chunks_tenant ON knowledge_chunks (tenant_id, collection_id);
-- The default offline model (all-MiniLM-L6-v2) has 384 dimensions. A denser graph than
-- pgvector's default (m 16, ef_construction 64) is what brings recall@10 above 0.95 at
-- 100k chunks (bench/retrieval.py); keep in step with rag/collections.py.
CREATE INDEX knowledge_chunks_hnsw_384 ON knowledge_chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops)
    WITH (m = 24, ef_construction = 128) WHERE dims = 384;

-- How many chunks of a collection contain each lexeme (document frequency), kept up to
-- date by ingestion (rag/ingest.py) in the same transaction as the chunks. Full-text
-- search reads it to tell a question's common words from its telling ones.
CREATE TABLE knowledge_lexemes (
    tenant_id       bigint NOT NULL REFERENCES tenants(id),
    collection_id   bigint NOT NULL REFERENCES knowledge_collections(id) ON DELETE CASCADE,
    lexeme          text NOT NULL,
    chunks          integer NOT NULL,
    PRIMARY KEY (collection_id, lexeme)
);

ALTER TABLE knowledge_collections ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_lexemes ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_documents ENABLE ROW LEVEL SECURITY;
ALTER TABLE knowledge_chunks ENABLE ROW LEVEL SECURITY;

CREATE POLICY tenant_rows ON knowledge_collections TO chatops_knowledge
    USING (tenant_id = knowledge_tenant()) WITH CHECK (tenant_id = knowledge_tenant());
CREATE POLICY tenant_rows ON knowledge_documents TO chatops_knowledge
    USING (tenant_id = knowledge_tenant()) WITH CHECK (tenant_id = knowledge_tenant());
CREATE POLICY tenant_rows ON knowledge_chunks TO chatops_knowledge
    USING (tenant_id = knowledge_tenant()) WITH CHECK (tenant_id = knowledge_tenant());
CREATE POLICY tenant_rows ON knowledge_lexemes TO chatops_knowledge
    USING (tenant_id = knowledge_tenant()) WITH CHECK (tenant_id = knowledge_tenant());

GRANT SELECT, INSERT, UPDATE, DELETE
    ON knowledge_collections, knowledge_documents, knowledge_chunks, knowledge_lexemes
    TO chatops_knowledge;
GRANT USAGE ON SEQUENCE
    knowledge_collections_id_seq, knowledge_documents_id_seq, knowledge_chunks_id_seq
    TO chatops_knowledge;

-- The full-text half of hybrid search. Under row-level security Postgres evaluates the
-- policy before any operator that is not LEAKPROOF, and `@@` is not, so a query run as
-- chatops_knowledge cannot use the GIN index: it tests every row of the tenant (measured:
-- 560 ms instead of 1 ms at 100k chunks). This function runs as the tables' owner, which
-- row-level security does not restrict, and applies the same tenant predicate itself,
-- read from the same transaction-local setting: a caller cannot name another tenant. It
-- returns only chunk ids and ranks; the search joins them back to knowledge_chunks, where
-- the policy applies again.
--
-- A question rarely shares all its words with the answer, so chunks match on any of its
-- words; but ranking every chunk that contains a common word costs too much on a large
-- collection (26k of 100k chunks for a typical question). So the caller passes the words
-- to match on (p_match: the question's lexemes that are not common in the collections,
-- by knowledge_lexemes; all lexemes still count in the rank); with none, chunks must
-- contain every lexeme of the question.
CREATE FUNCTION knowledge_fulltext(
    p_text text, p_match text[], p_collections bigint[], p_metadata jsonb, p_limit integer
) RETURNS TABLE (chunk_id bigint, rank bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    v_tenant bigint := knowledge_tenant();
    v_lexemes text[] := tsvector_to_array(to_tsvector('english', p_text));
    v_match tsquery;
    v_rank tsquery;
BEGIN
    IF v_tenant IS NULL OR cardinality(v_lexemes) = 0 OR p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Quoted lexemes: already stemmed, so no configuration may split or stem them again.
    SELECT string_agg(quote_literal(l), ' | ')::tsquery INTO v_rank FROM unnest(v_lexemes) l;
    IF cardinality(p_match) > 0 THEN
        SELECT string_agg(quote_literal(l), ' | ')::tsquery INTO v_match FROM unnest(p_match) l;
    ELSE
        SELECT string_agg(quote_literal(l), ' & ')::tsquery INTO v_match FROM unnest(v_lexemes) l;
    END IF;
    RETURN QUERY
        SELECT c.id, row_number() OVER (ORDER BY ts_rank(c.tsv, v_rank) DESC, c.id)
        FROM knowledge_chunks c
        WHERE c.tsv @@ v_match
          AND c.tenant_id = v_tenant
          AND c.collection_id = ANY (p_collections)
          AND c.metadata @> p_metadata
        ORDER BY ts_rank(c.tsv, v_rank) DESC, c.id
        LIMIT p_limit;
END
$$;

REVOKE ALL ON FUNCTION knowledge_fulltext(text, text[], bigint[], jsonb, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION knowledge_fulltext(text, text[], bigint[], jsonb, integer)
    TO chatops_knowledge;

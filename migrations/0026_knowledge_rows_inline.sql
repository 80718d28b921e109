-- A knowledge chunk's row keeps its text, tsvector and vector together in the table.
--
-- Postgres moves values out of a row into the TOAST table once the row passes about
-- 2 kB. A chunk of 1,000 characters with its tsvector (~1.2 kB) and a 384-dimension
-- vector (1.5 kB) is about 3.7 kB, so the vector always went out of line and, in 62% of
-- 100,000 chunks, the tsvector too. Then every chunk the full-text half ranks cost a
-- TOAST index lookup and page on top of its row, and every chunk an exact scan compares
-- another (bench/retrieval.py). With the target at 4 kB such a row stays whole, two to a
-- page; a longer one still goes out of line. Rows written before keep their layout until
-- they are written again (re-ingesting the document, or VACUUM FULL).
ALTER TABLE knowledge_chunks SET (toast_tuple_target = 4080);

-- The full-text half's statement is planned for each call. PL/pgSQL keeps a plan per
-- connection and, after five calls, may keep a generic one for every tenant after: a
-- plan that suits a tenant with 1,000 chunks reads all of one with 50,000.
ALTER FUNCTION knowledge_fulltext(text, text[], bigint[], jsonb, integer)
    SET plan_cache_mode = force_custom_plan;

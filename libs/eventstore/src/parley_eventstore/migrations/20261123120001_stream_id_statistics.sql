-- Per-stream statements stay on the (stream_id, version) index whatever the data's skew.
--
-- Streams can be few compared with their events, and one stream can hold most of the table
-- (a busy chat conversation, a benchmark). The store's statements run as generic plans
-- (plan_cache_mode=force_generic_plan), where `stream_id = $1` is estimated from the column's
-- distinct count: with one dominant stream ANALYZE finds ~1 distinct value, the plan expects
-- the whole table and loading a stream's tail becomes a sequential scan (measured: 0.3 ms ->
-- 10 ms per chat send at 100,000 messages in one conversation). Fixing the distinct count at
-- 2% of the rows (about fifty events per stream on average: a generic estimate of tens of
-- rows) keeps every per-stream statement on the index. Short streams (users, auth) lose
-- nothing: their estimate was already a few rows.
-- ANALYZE reads the override when it next runs (autovacuum does).

-- migrate:up
ALTER TABLE events ALTER COLUMN stream_id SET (n_distinct = -0.02);
ANALYZE events;

-- migrate:down
ALTER TABLE events ALTER COLUMN stream_id RESET (n_distinct);

-- The search model (issue 21): the generations of the model (each a schema g<N> of tables,
-- created by the projector: parley_projector_search.schema) and which one readers use.

-- migrate:up
CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE TABLE search_generations (
    n          integer     PRIMARY KEY CHECK (n > 0),
    state      text        NOT NULL CHECK (state IN ('building', 'live', 'retired')),
    created_at timestamptz NOT NULL DEFAULT now(),
    swapped_at timestamptz
);
-- at most one generation is read at a time
CREATE UNIQUE INDEX search_generations_one_live ON search_generations (state)
    WHERE state = 'live';

-- migrate:down
DROP TABLE search_generations;

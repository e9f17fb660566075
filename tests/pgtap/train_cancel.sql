-- A cancelled train stops promptly and leaves no trace.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(5);

CREATE TABLE it_t_big AS
SELECT u AS user_id, (u * 7 + j * 13) % 2000 AS item_id
  FROM generate_series(1, 5000) u, generate_series(1, 20) j;

-- runs q; returns how it ended and how long it took
CREATE FUNCTION pg_temp.timed(q text, OUT outcome text, OUT seconds float8) LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    BEGIN
        EXECUTE q;
        outcome := 'finished';
    EXCEPTION WHEN query_canceled THEN
        outcome := SQLSTATE;
    END;
    seconds := extract(epoch FROM clock_timestamp() - t0);
END $$;

-- the whole run, for comparison
CREATE TEMP TABLE it_t_full AS
SELECT * FROM pg_temp.timed($$SELECT * FROM train('full', 'it_t_big', options => '{"iterations": 60}')$$);
SELECT is((SELECT outcome FROM it_t_full), 'finished', 'the whole run finishes');

-- the same, cancelled by statement_timeout after a tenth of that time
DO $$
BEGIN
    PERFORM set_config('statement_timeout', greatest(20, (seconds * 100)::int)::text, true) FROM it_t_full;
END $$;
CREATE TEMP TABLE it_t_cut AS
SELECT * FROM pg_temp.timed($$SELECT * FROM train('cut', 'it_t_big', options => '{"iterations": 60}')$$);
SET LOCAL statement_timeout = 0;

SELECT is((SELECT outcome FROM it_t_cut), '57014', 'the train is cancelled');
SELECT cmp_ok((SELECT seconds FROM it_t_cut), '<', (SELECT seconds / 2 FROM it_t_full),
              'it stops well before a whole run would have ended');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'cut')
          + (SELECT count(*) FROM it_user_factors WHERE model = 'cut')
          + (SELECT count(*) FROM it_item_factors WHERE model = 'cut'), 0::bigint, 'and leaves no trace');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'full'$$, $$VALUES (1, true)$$,
                  'the finished model is untouched');

SELECT * FROM finish();
ROLLBACK;

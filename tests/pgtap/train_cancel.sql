-- A cancelled train stops promptly and leaves no trace: it wrote no row
-- (not even one the cancel then rolled back), and the transaction that
-- goes on knows nothing of the model.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(9);

CREATE TABLE it_t_big AS
SELECT u AS user_id, (u * 7 + j * 13) % 2000 AS item_id
  FROM generate_series(1, 5000) u, generate_series(1, 20) j;
CREATE TABLE it_t_small AS
SELECT u AS user_id, (u * 7 + j * 13) % 50 AS item_id
  FROM generate_series(1, 40) u, generate_series(1, 5) j;

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

-- Every row written for model 'cut', in any of its tables, counted by a
-- sequence: nextval is not undone when the statement that wrote the row is
-- rolled back, so the count shows rows the cancel took back as well as rows
-- it did not.
CREATE SEQUENCE public.it_t_cut_rows;
GRANT USAGE ON SEQUENCE public.it_t_cut_rows TO PUBLIC;
CREATE FUNCTION public.it_t_count_cut_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.it_t_cut_rows');
    RETURN NULL;
END $$;
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_model
  FOR EACH ROW WHEN (NEW.model = 'cut') EXECUTE FUNCTION public.it_t_count_cut_row();
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_user_factors
  FOR EACH ROW WHEN (NEW.model = 'cut') EXECUTE FUNCTION public.it_t_count_cut_row();
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_item_factors
  FOR EACH ROW WHEN (NEW.model = 'cut') EXECUTE FUNCTION public.it_t_count_cut_row();
CREATE FUNCTION pg_temp.cut_rows() RETURNS bigint LANGUAGE sql AS $$
  SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.it_t_cut_rows $$;

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
SELECT is(pg_temp.cut_rows(), 0::bigint,
          'it wrote no row of the model, not even one rolled back with the cancelled statement');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'cut')
          + (SELECT count(*) FROM it_user_factors WHERE model = 'cut')
          + (SELECT count(*) FROM it_item_factors WHERE model = 'cut'), 0::bigint,
          'the transaction that goes on sees no row of the model');
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'cut')$$, '42704', 'model "cut" does not exist',
                 'nor does any scoring function know it');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'full'$$, $$VALUES (1, true)$$,
                  'the finished model is untouched');

-- the same name trained to the end in the same transaction: version 1, and
-- the counter sees its rows (so the 0 above is not a counter that never counts)
SELECT is((SELECT version FROM train('cut', 'it_t_small', options => '{"factors": 4, "iterations": 2}')), 1,
          'training the model again in the same transaction makes version 1');
SELECT cmp_ok(pg_temp.cut_rows(), '>=',
              1 + (SELECT count(DISTINCT user_id) FROM it_t_small) + (SELECT count(DISTINCT item_id) FROM it_t_small),
              'and the counter counts its model row and factor rows (and the updates of its model row)');

SELECT * FROM finish();
ROLLBACK;

-- What the planner is told: costs and rows that make recommend() over a
-- large customers table a parallel plan with default settings, and a clear
-- error when a model's stored source cannot run in a parallel worker.
--
-- PostgreSQL costs a function in FROM as if it ran once and was rescanned
-- from a tuplestore, also when it is LATERAL and runs for every outer row,
-- so no cost makes CROSS JOIN LATERAL recommend() parallel; the function in
-- the select list is costed per row, and that is the form README.md shows
-- for many users.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(10);

-- the planner's unit is a sequential page read; a call of recommend() costs
-- about as much as reading tens of pages, one of score() much less
SELECT ok((SELECT procost >= 1000 AND prorows = 10 FROM pg_proc WHERE proname = 'recommend'),
          'recommend: a high cost and 10 rows');
SELECT ok((SELECT procost >= 1000 AND prorows = 10 FROM pg_proc WHERE proname = 'recommend_for'),
          'recommend_for likewise');
SELECT ok((SELECT procost >= 10 AND procost < (SELECT procost FROM pg_proc WHERE proname = 'recommend')
             FROM pg_proc WHERE proname = 'score'),
          'score: cheaper than recommend, dearer than an operator');
SELECT ok((SELECT bool_and(prorows = 1) FROM pg_proc WHERE proname = 'train'), 'train returns one row');
SELECT ok((SELECT prorows <= 4 FROM pg_proc WHERE proname = 'evaluate'), 'evaluate returns a row per segment');

CREATE TABLE it_p_ev AS
SELECT u AS user_id, 1 + (u * 7 + j) % 50 AS item_id FROM generate_series(1, 200) u, generate_series(0, 5) j;
SELECT ok((SELECT version FROM train('pm', 'it_p_ev', options => '{"factors": 4, "iterations": 4}')) = 1, 'a model');

-- 300k customers (about 13 MB, above min_parallel_table_scan_size), with statistics
CREATE TABLE it_p_customers AS
SELECT c AS id, CASE WHEN c % 3 = 0 THEN 'DE' ELSE 'FR' END AS country FROM generate_series(1, 300000) c;
ANALYZE it_p_customers;

CREATE FUNCTION pg_temp.plan_text(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    line text;
    out text := '';
BEGIN
    FOR line IN EXECUTE 'EXPLAIN ' || q LOOP
        out := out || line || E'\n';
    END LOOP;
    RETURN out;
END $$;

RESET ALL;      -- the planner's default settings
SET LOCAL client_min_messages = warning;
SELECT ok(pg_temp.plan_text($$SELECT id, (r).item_id, (r).rank
                                 FROM (SELECT c.id, recommend(c.id, 5, 'pm') AS r
                                         FROM it_p_customers c WHERE c.country = 'DE') s$$)
          ~ 'Gather.*ProjectSet.*Parallel Seq Scan on it_p_customers',
          'recommend() over many customers is planned with parallel workers, one call per customer');
SELECT set_eq($$SELECT id, (r).item_id, (r).rank FROM (SELECT c.id, recommend(c.id, 5, 'pm') AS r
                                                         FROM it_p_customers c WHERE c.id <= 300) s$$,
              $$SELECT c.id, r.item_id, r.rank FROM it_p_customers c CROSS JOIN LATERAL recommend(c.id, 5, 'pm') r
                 WHERE c.id <= 300$$,
              'and it answers as CROSS JOIN LATERAL does');

-- a stored source that is not parallel safe (nextval), run in a worker
CREATE SEQUENCE it_p_seq;
CREATE VIEW it_p_unsafe AS SELECT user_id, item_id, nextval('it_p_seq') AS n FROM it_p_ev;
SELECT ok((SELECT version FROM train('pu', 'it_p_unsafe', options => '{"factors": 4, "iterations": 4}')) = 1,
          'a model whose source calls nextval()');
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL force_parallel_mode = on;
SELECT throws_ok($$SELECT count(*) FROM (VALUES (100001::bigint)) v(id) CROSS JOIN LATERAL recommend(v.id, 5, 'pu') r$$,
                 '25000', 'the stored interactions source of model "pu" is not parallel safe, so this parallel query cannot fold in users from it',
                 'folding in from it in a parallel worker: an error that names the source and what to do');

SELECT * FROM finish();
ROLLBACK;

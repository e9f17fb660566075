-- evaluate() on a hand-made model and test set whose metrics are worked
-- out below by hand.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

SELECT plan(30);

INSERT INTO it_model_acl (model, owner) VALUES ('shop', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('shop', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 3}', 3, 4, 8, 10, 0, 0, '[]', '{0,0,0}');
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('shop', 1, 1, '{1,0,0}', 10),
  ('shop', 1, 2, '{0,1,0}', 30),
  ('shop', 1, 3, '{0,0,1}', 30),
  ('shop', 1, 4, '{1,1,0}', 5),
  ('shop', 1, 5, '{0.5,0.5,0.5}', 20),
  ('shop', 1, 6, '{-1,0,1}', 0),
  ('shop', 1, 7, '{1,0,1}', 30),
  ('shop', 1, 8, '{0.2,0.9,-0.3}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('shop', 1, 1, '{1,0.5,-0.2}', '{4}'),
  ('shop', 1, 2, '{0.1,1,0.7}', '{2,3}'),
  ('shop', 1, 3, '{-0.3,0.2,1}', '{}'),
  ('shop', 1, 4, '{1,1,1}', '{1}');

-- Held-out positives, k = 2.
--  user 1 (warm, seen 4): ranking 1 7 8 5 2 3 6; positives 1, 6 (4 was seen:
--    ignored).  Top 2 = 1 7: precision 1/2, recall 1/2, NDCG 1/(1+1/log2 3),
--    AP (1/1)/2; AUC: 1 beats all 5 negatives, 6 none: 5/10.
--  user 2 (warm, seen 2 3): ranking 4 5 7 8 6 1; positives 5 and item 999,
--    which the model does not know (a positive never hit).  Top 2 = 4 5:
--    precision 1/2, recall 1/2, NDCG (1/log2 3)/(1+1/log2 3), AP (1/2)/2;
--    AUC: 5 beats 4 of 5 negatives, 999 none: 4/10.
--  user 3 (warm): ranking 6 3 7 5 2 4 8 1; positive 4.  Top 2 = 6 3: all 0;
--    AUC 2/7.
--  user 4 (warm, seen 1): positive 1 only, seen in training: not counted.
--  user 50 (cold): popularity 2 3 7 5 1 4 8 6; positives 7, 8.  Top 2 = 2 3:
--    all 0; AUC: 7 beats 4 of 6 negatives, 8 beats 1: 5/12.
CREATE TEMP TABLE held_out (user_id int, item_id bigint);
INSERT INTO held_out VALUES (1, 1), (1, 6), (1, 4), (2, 5), (2, 999), (3, 4), (4, 1), (50, 7), (50, 8),
                            (1, 1);   -- a duplicate counts once

CREATE TEMP TABLE want (segment text, users bigint, precision_at_k float8, recall_at_k float8,
                        ndcg_at_k float8, map_at_k float8, auc float8, coverage float8);
INSERT INTO want
SELECT 'all', 4, (0.5 + 0.5) / 4, (0.5 + 0.5) / 4,
       (1 / (1 + 1 / log(2, 3)) + (1 / log(2, 3)) / (1 + 1 / log(2, 3))) / 4,
       (0.5 + 0.25) / 4, (5 / 10.0 + 4 / 10.0 + 2 / 7.0 + 5 / 12.0) / 4,
       7 / 8.0                                                   -- 1 7 4 5 6 3 2
UNION ALL
SELECT 'warm', 3, (0.5 + 0.5) / 3, (0.5 + 0.5) / 3,
       (1 / (1 + 1 / log(2, 3)) + (1 / log(2, 3)) / (1 + 1 / log(2, 3))) / 3,
       (0.5 + 0.25) / 3, (5 / 10.0 + 4 / 10.0 + 2 / 7.0) / 3,
       6 / 8.0                                                   -- 1 7 4 5 6 3
UNION ALL
SELECT 'cold', 1, 0, 0, 0, 0, 5 / 12.0, 2 / 8.0;                 -- 2 3

CREATE FUNCTION pg_temp.rounded(model text, test text, k int)
RETURNS TABLE (segment text, users bigint, p numeric, r numeric, n numeric, m numeric, a numeric, c numeric)
LANGUAGE sql AS $$
  SELECT segment, users, round(precision_at_k::numeric, 6), round(recall_at_k::numeric, 6),
         round(ndcg_at_k::numeric, 6), round(map_at_k::numeric, 6), round(auc::numeric, 6),
         round(coverage::numeric, 6)
    FROM evaluate(model, test, k)
$$;

SELECT results_eq(
  $$SELECT * FROM pg_temp.rounded('shop', 'held_out', 2)$$,
  $$SELECT segment, users, round(precision_at_k::numeric, 6), round(recall_at_k::numeric, 6),
           round(ndcg_at_k::numeric, 6), round(map_at_k::numeric, 6), round(auc::numeric, 6),
           round(coverage::numeric, 6) FROM want$$,
  'metrics of every segment equal the hand-computed values');
SELECT results_eq(
  $$SELECT * FROM pg_temp.rounded('shop', 'SELECT user_id, item_id FROM held_out', 2)$$,
  $$SELECT * FROM pg_temp.rounded('shop', 'held_out', 2)$$,
  'a query gives the same as the table name');
SELECT results_eq(
  $$SELECT * FROM pg_temp.rounded(NULL, 'held_out', 2)$$,
  $$SELECT * FROM pg_temp.rounded('shop', 'held_out', 2)$$,
  'model NULL is the most recently deployed model');
SELECT results_eq(
  $$SELECT * FROM pg_temp.rounded('shop', 'SELECT item_id AS x, item_id, user_id::numeric AS user_id FROM held_out', 2)$$,
  $$SELECT * FROM pg_temp.rounded('shop', 'held_out', 2)$$,
  'columns are found by name, ids of any integer type');

-- the test query itself redeploys the model (a new row) and scores with
-- it, so the cache reloads while evaluate holds the previous copy
CREATE FUNCTION pg_temp.redeploy() RETURNS int VOLATILE LANGUAGE sql AS $$
  UPDATE it_model SET deployed_at = deployed_at WHERE model = 'shop';
  SELECT count(*)::int * 0 FROM recommend(1, 10, 'shop');
$$;
SELECT results_eq(
  $$SELECT * FROM pg_temp.rounded('shop', 'SELECT user_id, item_id + pg_temp.redeploy() AS item_id FROM held_out', 2)$$,
  $$SELECT * FROM pg_temp.rounded('shop', 'held_out', 2)$$,
  'a reload of the model during evaluate does not disturb it');

-- the cold segment against recommend(): same lists
SELECT results_eq(
  $$SELECT precision_at_k FROM evaluate('shop', 'SELECT * FROM (VALUES (50, 2), (50, 3), (50, 7)) v(user_id, item_id)', 2) WHERE segment = 'cold'$$,
  $$VALUES (1.0::float8)$$,
  'a cold user is ranked by popularity, as recommend does');
SELECT results_eq(
  $$SELECT segment, users, precision_at_k FROM evaluate('shop', 'SELECT * FROM (VALUES (60, 2), (61, 5)) v(user_id, item_id)', 1)$$,
  $$VALUES ('all', 2::bigint, 0.5::float8), ('warm', 0, NULL), ('cold', 2, 0.5)$$,
  'no warm user: users = 0 and NULL metrics');
SELECT results_eq(
  $$SELECT segment, users, coverage FROM evaluate('shop', 'SELECT * FROM (VALUES (3, 4)) v(user_id, item_id)', 1)$$,
  $$VALUES ('all', 1::bigint, 1 / 8.0::float8), ('warm', 1, 1 / 8.0), ('cold', 0, NULL)$$,
  'no cold user: users = 0 and NULL coverage');
SELECT results_eq(
  $$SELECT segment, users FROM evaluate('shop', 'SELECT * FROM (VALUES (4, 1)) v(user_id, item_id)', 2)$$,
  $$VALUES ('all', 0::bigint), ('warm', 0), ('cold', 0)$$,
  'a user whose positives were all seen in training is not counted');
SELECT results_eq(
  $$SELECT users, precision_at_k, recall_at_k, auc FROM evaluate('shop', 'SELECT * FROM (VALUES (3, 999)) v(user_id, item_id)', 2) WHERE segment = 'all'$$,
  $$VALUES (1::bigint, 0::float8, 0::float8, 0::float8)$$,
  'only unknown items: counted, nothing hit, AUC 0');
SELECT results_eq(
  $$SELECT recall_at_k FROM evaluate('shop', 'SELECT * FROM (VALUES (3, 4), (3, 998), (3, 999)) v(user_id, item_id)', 8) WHERE segment = 'all'$$,
  $$VALUES (1 / 3.0::float8)$$,
  'unknown items count as positives in recall');
SELECT results_eq(
  $$SELECT round(precision_at_k::numeric, 6), recall_at_k, coverage FROM evaluate('shop', 'SELECT * FROM (VALUES (3, 4)) v(user_id, item_id)', 100) WHERE segment = 'all'$$,
  $$VALUES (round(1 / 100.0, 6), 1::float8, 1::float8)$$,
  'k larger than the catalogue: everything ranked, precision over k');

-- many warm users (several blocks of the batched scoring) agree with
-- metrics computed one user at a time from recommend()
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'shop', 1, 1000 + u,
       ARRAY[sin(u), cos(u * 0.7), sin(u * 1.3)]::real[],
       CASE WHEN u % 3 = 0 THEN '{}'::bigint[] ELSE ARRAY[1 + u % 8]::bigint[] END
  FROM generate_series(1, 300) u;
CREATE TEMP TABLE many AS
SELECT 1000 + u AS user_id, 1 + (u * 5) % 8 AS item_id FROM generate_series(1, 300) u
UNION SELECT 1000 + u, 1 + (u * 3 + 1) % 8 FROM generate_series(1, 300) u;
CREATE TEMP TABLE many_expected AS
WITH pos AS (
  SELECT m.user_id, m.item_id FROM many m JOIN it_user_factors f ON f.model = 'shop' AND f.user_id = m.user_id
   WHERE m.item_id <> ALL (f.seen)),
top AS (
  SELECT p.user_id, r.item_id, r.rank FROM (SELECT DISTINCT user_id FROM pos) p,
         LATERAL recommend(p.user_id, 3, 'shop') r),
per_user AS (
  SELECT p.user_id, count(*) AS npos,
         (SELECT count(*) FROM top t WHERE t.user_id = p.user_id
             AND t.item_id IN (SELECT item_id FROM pos q WHERE q.user_id = p.user_id)) AS hits
    FROM pos p GROUP BY p.user_id)
SELECT count(*) AS users, avg(hits / 3.0) AS precision, avg(hits::numeric / npos) AS recall,
       (SELECT count(DISTINCT item_id) / 8.0 FROM top) AS coverage
  FROM per_user;
SELECT results_eq(
  $$SELECT users, round(precision_at_k::numeric, 6), round(recall_at_k::numeric, 6), round(coverage::numeric, 6)
      FROM evaluate('shop', 'many', 3) WHERE segment = 'warm'$$,
  $$SELECT users, round(precision, 6), round(recall, 6), round(coverage, 6) FROM many_expected$$,
  'batched scoring of 300 users agrees with recommend');
SELECT cmp_ok((SELECT users FROM many_expected), '>', 150::bigint, 'the batch case counts most users');

-- errors
SELECT throws_ok($$SELECT * FROM evaluate('nope', 'held_out', 10)$$, '42704', 'model "nope" does not exist',
                 'unknown model');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'no_such_table', 10)$$, '42P01', NULL, 'missing table');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT user_id FROM held_out', 10)$$, '42703',
                 'test has no column named item_id', 'missing item_id column');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT item_id AS uid, item_id FROM held_out', 10)$$, '42703',
                 'test has no column named user_id', 'missing user_id column');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT user_id::text, item_id FROM held_out', 10)$$, '42804',
                 NULL, 'user_id of the wrong type');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT user_id, item_id FROM held_out WHERE', 10)$$, '42601',
                 NULL, 'a query with a syntax error');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT user_id, item_id / 0 AS item_id FROM held_out', 10)$$,
                 '22012', NULL, 'a query that fails');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT NULL::int AS user_id, 1 AS item_id', 10)$$, '22004',
                 'user_id is null in row 1 of test', 'NULL user_id');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT 1 AS user_id, NULL::int AS item_id', 10)$$, '22004',
                 'item_id is null in row 1 of test', 'NULL item_id');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'SELECT * FROM held_out WHERE false', 10)$$, '22023',
                 'test set is empty', 'empty test set');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'WITH d AS (DELETE FROM held_out RETURNING *) SELECT * FROM d', 10)$$,
                 '0A000', NULL, 'a data-modifying query is refused');
SELECT is((SELECT count(*) FROM held_out), 10::bigint, '... and deleted nothing');
SELECT throws_ok($$SELECT * FROM evaluate('shop', NULL, 10)$$, '22004', 'test must not be NULL', 'test NULL');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'held_out', 0)$$, '22023', 'k must be positive, not 0', 'k = 0');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'held_out', NULL)$$, '22004', 'k must not be NULL', 'k NULL');
SELECT throws_ok($$SELECT * FROM evaluate('shop', 'held_out', 1000000)$$, '22023', 'k must be at most 100000, not 1000000',
                 'k huge');

SELECT * FROM finish();
ROLLBACK;

-- recommend_batch(user_ids, ...): recommend() for many users in one call,
-- the same rows for each user as recommend() gives them.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 600, items => 300, per_user => 15, groups => 4, seed => 0.4);
SET client_min_messages = warning;
SELECT * FROM train('batch', 'it_demo.events', options => '{"factors": 8, "iterations": 4}');
RESET client_min_messages;
-- two users with rows since training: folded in, and ranked with the
-- popularity term training chose (on this data it chose one), so the batch
-- scans them again alone
INSERT INTO it_demo.events (user_id, item_id, weight, ts)
SELECT u, i, 1, now() FROM (VALUES (999996), (999997)) a(u), generate_series(3, 40, 7) i;
-- warm users, two folded in, two the model has never seen, in a scrambled order
CREATE TEMP TABLE who AS
SELECT array_agg(u::bigint ORDER BY (u::bigint * 7919) % 613) AS ids
  FROM (SELECT generate_series(1, 600) AS u UNION ALL SELECT 999996 UNION ALL SELECT 999997
        UNION ALL SELECT 999998 UNION ALL SELECT 999999) s;
-- what recommend() answers, one call per user
CREATE FUNCTION pg_temp.one_by_one(ids bigint[], k int, exclude_seen boolean, candidates bigint[])
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank int, source text)
LANGUAGE sql AS $$
    SELECT u.id, r.item_id, r.score, r.rank, r.source
      FROM unnest(ids) WITH ORDINALITY u(id, o),
           LATERAL recommend(u.id, k, 'batch', exclude_seen, candidates => candidates) r
     ORDER BY u.o, r.rank
$$;
\o

SELECT plan(10);

SELECT is((SELECT count(*) FROM (SELECT b.* FROM who, recommend_batch(who.ids, 10, 'batch') b
                                  EXCEPT
                                  SELECT o.user_id, o.item_id, o.score, o.rank, o.source
                                    FROM who, pg_temp.one_by_one(who.ids, 10, true, NULL) o) d), 0::bigint,
          'every row of recommend_batch is the row recommend() gives: item, score, rank and source');
SELECT is((SELECT count(*) FROM who, recommend_batch(who.ids, 10, 'batch')),
          (SELECT count(*) FROM who, pg_temp.one_by_one(who.ids, 10, true, NULL)),
          'and no row is missing');
SELECT is((SELECT array_agg(DISTINCT b.source ORDER BY b.source) FROM who, recommend_batch(who.ids, 10, 'batch') b),
          ARRAY['fold_in', 'model', 'popular'],
          'warm, folded-in and new users in one batch, each served as recommend() serves them');
SELECT is((SELECT array_agg(user_id ORDER BY n) FROM (
             SELECT user_id, min(ord) AS n FROM (
               SELECT b.user_id, row_number() OVER () AS ord FROM recommend_batch(ARRAY[5, 3, 5, 9], 2, 'batch') b) s
              GROUP BY user_id) t),
          ARRAY[5, 3, 9]::bigint[], 'users come in the order given, a repeated user once');
SELECT is((SELECT count(*) FROM recommend_batch(ARRAY[5, 3, 5, 9], 2, 'batch')), 6::bigint,
          'two rows for each of the three users');
SELECT is((SELECT count(*) FROM (SELECT b.* FROM who, recommend_batch(who.ids[1:50], 4, 'batch', false) b
                                  EXCEPT
                                  SELECT o.user_id, o.item_id, o.score, o.rank, o.source
                                    FROM who, pg_temp.one_by_one(who.ids[1:50], 4, false, NULL) o) d), 0::bigint,
          'with exclude_seen false, as recommend()');
SELECT is((SELECT count(*) FROM (SELECT b.* FROM who, recommend_batch(who.ids[1:50], 5, 'batch',
                                                                      candidates => ARRAY[2, 4, 6, 8, 10, 12, 14, 16]) b
                                  EXCEPT
                                  SELECT o.user_id, o.item_id, o.score, o.rank, o.source
                                    FROM who, pg_temp.one_by_one(who.ids[1:50], 5, true, ARRAY[2, 4, 6, 8, 10, 12, 14, 16]) o) d),
          0::bigint, 'with candidates, as recommend()');
SELECT is_empty($$SELECT * FROM recommend_batch(NULL, 10, 'batch')$$, 'a NULL array gives no rows');
SELECT throws_ok($$SELECT * FROM recommend_batch(ARRAY[1, NULL], 10, 'batch')$$, '22004', NULL,
                 'a NULL user is an error (22004)');
SELECT throws_ok($$SELECT * FROM recommend_batch(ARRAY[1], 0, 'batch')$$, '22023', NULL,
                 'k must be positive (22023)');

SELECT * FROM finish();
ROLLBACK;

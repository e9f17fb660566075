-- Business filters inside the top k: recommend(..., candidates) ranks only
-- the given items (in stock, in a region), exactly as it ranks every item.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 600, items => 200, per_user => 15, groups => 4, seed => 0.3);
SET client_min_messages = warning;
SELECT * FROM train('cand', 'it_demo.events', options => '{"factors": 8, "iterations": 4}');
RESET client_min_messages;
-- in stock: every third item
CREATE TEMP TABLE stock AS SELECT array_agg(item_id ORDER BY item_id) AS ids FROM it_demo.items WHERE item_id % 3 = 0;
\o

SELECT plan(7);

SELECT is((SELECT array_agg(r.item_id ORDER BY r.rank)
             FROM stock, recommend(7, 10, 'cand', candidates => stock.ids) r),
          (SELECT (array_agg(r.item_id ORDER BY r.rank))[1:10]
             FROM recommend(7, 200, 'cand') r WHERE r.item_id % 3 = 0),
          'candidates: the best of them, in the order of the full ranking');
SELECT ok((SELECT bool_and(abs(r.score - score(7, r.item_id, 'cand')) < 1e-6)
             FROM stock, recommend(7, 10, 'cand', candidates => stock.ids) r),
          'each scored as score() scores it');
SELECT is((SELECT count(*) FROM recommend(7, 10, 'cand', false, candidates => (SELECT array_agg(item_id) FROM it_demo.events WHERE user_id = 7))),
          (SELECT least(10, count(DISTINCT item_id)) FROM it_demo.events WHERE user_id = 7),
          'with exclude_seen false the user''s own items can be ranked');
SELECT is((SELECT count(*) FROM recommend(7, 10, 'cand', candidates => (SELECT array_agg(item_id) FROM it_demo.events WHERE user_id = 7))),
          0::bigint, 'with exclude_seen the user''s own items are left out');
SELECT is((SELECT array_agg(r.item_id ORDER BY r.rank) FROM recommend(999999, 3, 'cand', candidates => ARRAY[5, 10, 15, 100000]) r),
          (SELECT array_agg(r.item_id ORDER BY r.rank) FROM recommend(999999, 200, 'cand') r WHERE r.item_id IN (5, 10, 15)),
          'a new user''s candidates by popularity; unknown ids are left out');
SELECT is((SELECT count(*) FROM recommend(7, 10, 'cand', candidates => '{}')), 0::bigint, 'no candidates, no rows');
SELECT throws_ok($$SELECT * FROM recommend(7, 10, 'cand', candidates => ARRAY[1, NULL])$$, '22004', NULL,
                 'a NULL candidate is an error (22004)');

SELECT * FROM finish();
ROLLBACK;

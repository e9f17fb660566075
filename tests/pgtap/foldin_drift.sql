-- The fold-in weight under a planted drift between early and late
-- interactions: every user's first interactions come from another group
-- than their later ones (a gift, an onboarding screen).  With ts in the
-- source, training reveals each validation user's earliest interactions,
-- sees that trusting them is wrong, and chooses a strong prior; a new user
-- who revealed only those misleading first interactions is then served at
-- least as well as by the prior alone, and far better than by a weak prior.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET client_min_messages = warning;

SELECT plan(6);

-- users 1-1200 trained, 1201-1400 new; 4 groups of 20 items.  Each user's
-- first 3 interactions (day 0) are from the next group's items, the 15
-- later ones (days 1-60) from their own group's; the feature hint tells the
-- group 90% of the time.
CREATE TABLE dr_users AS
SELECT u AS user_id,
       'g' || CASE WHEN abs(hashint8(u * 31)) % 10 = 0 THEN abs(hashint8(u * 37)) % 4 ELSE u % 4 END AS hint
  FROM generate_series(1, 1400) u;
CREATE TABLE dr_all AS
WITH u AS (SELECT u, u % 4 AS g FROM generate_series(1, 1400) u)
SELECT u AS user_id, 1 + ((g + 1) % 4) * 20 + abs(hashint8(u * 100 + j)) % 20 AS item_id, 1.0::real AS weight,
       timestamptz '2024-01-01' + (j || ' minutes')::interval AS ts, true AS early
  FROM u, generate_series(0, 2) j
UNION ALL
SELECT u, 1 + g * 20 + abs(hashint8(u * 1000 + j)) % 20, 1.0::real,
       timestamptz '2024-01-02' + ((abs(hashint8(u * 77 + j)) % 60) || ' days')::interval, false
  FROM u, generate_series(0, 14) j;
-- the new users' early rows appear once dr_reveal says so
CREATE TABLE dr_reveal (shown boolean);
INSERT INTO dr_reveal VALUES (false);
CREATE VIEW dr_src AS
SELECT user_id, item_id, weight, ts FROM dr_all
 WHERE user_id <= 1200 OR (early AND (SELECT shown FROM dr_reveal));
CREATE VIEW dr_src_nots AS SELECT user_id, item_id, weight FROM dr_src;
-- the new users' targets: their later items not among the revealed ones
CREATE VIEW dr_targets AS
SELECT DISTINCT l.user_id, l.item_id FROM dr_all l
 WHERE l.user_id > 1200 AND NOT l.early
   AND NOT EXISTS (SELECT 1 FROM dr_all e WHERE e.early AND e.user_id = l.user_id AND e.item_id = l.item_id);

SELECT * FROM train('dr_ts', 'dr_src', user_features => 'dr_users', options => '{"factors": 8, "iterations": 10}') \g /dev/null
SELECT * FROM train('dr_rand', 'dr_src_nots', user_features => 'dr_users', options => '{"factors": 8, "iterations": 10}') \g /dev/null
SELECT * FROM train('dr_weak', 'dr_src', user_features => 'dr_users',
                    options => '{"factors": 8, "iterations": 10, "prior_weight": 0.01}') \g /dev/null

-- what the simulations saw (the fold-in rankings without popularity)
CREATE TEMP TABLE dr_grid AS
SELECT e.model, (g->>'prior_weight')::float8 AS w, (g->>'precision')::float8 AS p
  FROM it_prior e, jsonb_array_elements(e.metrics->'fold_in_grid') g
 WHERE e.model IN ('dr_ts', 'dr_rand') AND e.kind = 'user_features'
   AND (g->>'popularity_blend')::float8 = 0;
SELECT cmp_ok((SELECT p FROM dr_grid WHERE model = 'dr_ts' ORDER BY w LIMIT 1), '<',
              (SELECT 0.6 * max(p) FROM dr_grid WHERE model = 'dr_ts'),
              'with ts, revealing the earliest interactions shows a weak prior following them astray');
SELECT cmp_ok((SELECT p FROM dr_grid WHERE model = 'dr_rand' ORDER BY w LIMIT 1), '>',
              (SELECT 0.75 * max(p) FROM dr_grid WHERE model = 'dr_rand'),
              'revealed at random (no ts), the drift does not show');
SELECT cmp_ok((SELECT fold_in_weight FROM it_prior WHERE model = 'dr_ts' AND kind = 'population'), '>',
              (SELECT fold_in_weight FROM it_prior WHERE model = 'dr_rand' AND kind = 'population'),
              'the population prior gets a stronger weight when the earliest interactions are revealed');

-- serving the new users: precision@10 on their later items
CREATE FUNCTION pg_temp.precision(model text, skip int) RETURNS float8 LANGUAGE sql AS $$
  SELECT avg(hits / 10.0) FROM (
    SELECT u.user_id,
           (SELECT count(*) FROM (SELECT r.item_id FROM recommend(u.user_id, 10 + skip, model) r
                                   WHERE NOT EXISTS (SELECT 1 FROM dr_all e WHERE e.early AND e.user_id = u.user_id
                                                                               AND e.item_id = r.item_id)
                                   ORDER BY r.rank LIMIT 10) t
             JOIN dr_targets d ON d.user_id = u.user_id AND d.item_id = t.item_id) AS hits
      FROM generate_series(1201, 1400) u(user_id)) x
$$;
-- features only: before the new users revealed anything
CREATE TEMP TABLE dr_p AS SELECT 'features'::text AS what, pg_temp.precision('dr_ts', 3) AS p;
UPDATE dr_reveal SET shown = true;
INSERT INTO dr_p SELECT 'fold_in', pg_temp.precision('dr_ts', 0);
INSERT INTO dr_p SELECT 'weak', pg_temp.precision('dr_weak', 0);
SELECT is((SELECT min(source) FROM recommend(1201, 3, 'dr_ts')), 'fold_in', 'the new users are folded in');
SELECT cmp_ok((SELECT p FROM dr_p WHERE what = 'fold_in'), '>=',
              (SELECT p - 0.05 FROM dr_p WHERE what = 'features'),
              'folded in from their misleading first interactions, they are served about as well as by the prior alone');
SELECT cmp_ok((SELECT p FROM dr_p WHERE what = 'fold_in'), '>',
              (SELECT p + 0.1 FROM dr_p WHERE what = 'weak'),
              'and far better than with a weak prior that trusts those interactions');

SELECT * FROM finish();
ROLLBACK;

--
-- train(), train(model), deploy() and drop_model() on a small data set with
-- three groups of users, each group using its own items.
--
-- the per-iteration NOTICEs carry timings (and the extension may exist)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

-- users 1-8 use items 0-4, users 9-16 items 10-14, users 17-24 items 20-24;
-- each user three of the five, with weights 1 or 2
CREATE TABLE regress_events AS
SELECT u AS user_id, 10 * ((u - 1) / 8) + (u + j) % 5 AS item_id, 1 + j % 2 AS weight
  FROM generate_series(1, 24) u, generate_series(0, 2) j;

SELECT model, version, users, items, interactions
  FROM train('regress_shop', 'regress_events', options => '{"factors": 4, "iterations": 10}');

SELECT model, version, deployed, algorithm, options->'factors' AS factors,
       options->'iterations' AS iterations, options->'seed' AS seed, users, items, interactions,
       jsonb_array_length(history) AS curve
  FROM models WHERE model = 'regress_shop';

-- the training curve falls and never rises
SELECT bool_and(loss <= prev) AS never_rises, min(n) AS first, max(n) AS last
  FROM (SELECT n, (e->>'loss')::float8 AS loss, lag((e->>'loss')::float8) OVER (ORDER BY n) AS prev
          FROM it_model, jsonb_array_elements(history) WITH ORDINALITY h(e, n)
         WHERE model = 'regress_shop') x;

-- what each user saw, and how many users each item had
SELECT user_id, seen FROM it_user_factors WHERE model = 'regress_shop' AND user_id IN (1, 2, 9, 24)
 ORDER BY user_id;
SELECT item_id, popularity FROM it_item_factors WHERE model = 'regress_shop' ORDER BY item_id LIMIT 6;

-- the factors learned the groups: every user's best-scoring item is one of
-- their own group's
SELECT (u.user_id - 1) / 8 AS user_group, best.item_id / 10 AS item_group, count(*) AS users
  FROM it_user_factors u
 CROSS JOIN LATERAL (
       SELECT i.item_id
         FROM it_item_factors i
        WHERE i.model = u.model AND i.version = u.version
        ORDER BY (SELECT sum(a * b) FROM unnest(u.factors, i.factors) AS t(a, b)) DESC
        LIMIT 1) best
 WHERE u.model = 'regress_shop'
 GROUP BY 1, 2 ORDER BY 1, 2;

-- retrain with the stored definition, roll back, roll forward
SELECT model, version, users, items, interactions FROM train('regress_shop');
SELECT version, deployed, options->'factors' AS factors FROM models WHERE model = 'regress_shop' ORDER BY version;
SELECT deploy('regress_shop', 1);
SELECT version, deployed FROM models WHERE model = 'regress_shop' ORDER BY version;
SELECT deploy('regress_shop', 2);
SELECT version, deployed FROM models WHERE model = 'regress_shop' ORDER BY version;

-- errors
\set VERBOSITY terse
SELECT * FROM train('regress_bad', 'regress_events', options => '{"factor": 4}');
\set VERBOSITY default
SELECT * FROM train('regress_bad', 'regress_events', options => '{"factors": 0}');
SELECT * FROM train('regress_bad', 'SELECT user_id AS customer, item_id FROM regress_events');
SELECT * FROM train('regress_bad', 'SELECT user_id, item_id, -1 AS weight FROM regress_events');
SELECT * FROM train('regress_bad', 'regress_nope');
SELECT deploy('regress_shop', 9);
SELECT * FROM train('regress_nope');

SELECT drop_model('regress_shop');
SELECT count(*) FROM models WHERE model IN ('regress_shop', 'regress_bad');
DROP TABLE regress_events;
RESET client_min_messages;

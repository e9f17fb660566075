-- positive_threshold: ratings below it are confident negatives for ALS,
-- fold-in and evaluate; its old name prior_min_weight; the record and
-- NOTICE when weights look like ratings.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET client_min_messages = warning;

SELECT plan(14);

-- 160 users, 40 items: even users like items 0-19 (ratings 4 and 5) and
-- dislike some of 20-39 (ratings 1 and 2); odd users the other way round.
-- Every user rates 10 liked and 6 disliked items.
CREATE TABLE pt_events AS
SELECT u AS user_id,
       CASE WHEN liked THEN (u % 2) * 20 ELSE (1 - u % 2) * 20 END + (u * 7 + j * 3) % 20 AS item_id,
       CASE WHEN liked THEN 4 + j % 2 ELSE 1 + j % 2 END::real AS weight
  FROM generate_series(0, 159) u,
       LATERAL (SELECT j, j < 10 AS liked FROM generate_series(0, 15) j) r;
-- a new user: three liked items of the first group, three disliked of the second
INSERT INTO pt_events VALUES (1000, 1, 5), (1000, 4, 5), (1000, 7, 4), (1000, 21, 1), (1000, 24, 1), (1000, 27, 2);
CREATE VIEW pt_train AS SELECT * FROM pt_events WHERE user_id < 1000;

CREATE FUNCTION pg_temp.group_of(item bigint) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT (item / 20)::int $$;

SELECT * FROM train('pt0', 'pt_train', options => '{"factors": 8, "iterations": 10, "seed": 3}') \g /dev/null
SELECT * FROM train('pt4', 'pt_train', options => '{"factors": 8, "iterations": 10, "seed": 3, "positive_threshold": 4}') \g /dev/null

-- what the weights looked like
SELECT is((SELECT metrics->'ratings' FROM it_model WHERE model = 'pt0'),
          '{"levels": 4, "min": 1, "max": 5, "suggested_positive_threshold": 4}'::jsonb,
          'without a threshold, weights that look like ratings are recorded with a suggested threshold');
SELECT ok((SELECT NOT metrics ? 'ratings' FROM it_model WHERE model = 'pt4'),
          'with a threshold, nothing to suggest');

-- the scores of each user's own disliked items
CREATE TEMP TABLE pt_disliked AS
SELECT m.model, avg(score(e.user_id, e.item_id, m.model)) AS s
  FROM pt_events e CROSS JOIN (VALUES ('pt0'), ('pt4')) m(model)
 WHERE e.user_id < 1000 AND e.weight < 4
 GROUP BY m.model;
CREATE TEMP TABLE pt_liked AS
SELECT m.model, avg(score(e.user_id, e.item_id, m.model)) AS s
  FROM pt_events e CROSS JOIN (VALUES ('pt0'), ('pt4')) m(model)
 WHERE e.user_id < 1000 AND e.weight >= 4
 GROUP BY m.model;
SELECT cmp_ok((SELECT s FROM pt_disliked WHERE model = 'pt0'), '>', 0.5::float8,
              'without a threshold a one-star rating is a positive: the disliked items score high');
SELECT cmp_ok((SELECT s FROM pt_disliked WHERE model = 'pt4'), '<', 0.2::float8,
              'with positive_threshold 4 they are negatives: they score low');
SELECT cmp_ok((SELECT s FROM pt_liked WHERE model = 'pt4'), '>',
              (SELECT s FROM pt_disliked WHERE model = 'pt4') + 0.4,
              'and far below the liked items');

-- recommendations: the share of the user's own group in every top 5
CREATE TEMP TABLE pt_share AS
SELECT m.model, avg((pg_temp.group_of(r.item_id) = u % 2)::int) AS share
  FROM generate_series(0, 159) u CROSS JOIN (VALUES ('pt0'), ('pt4')) m(model),
       LATERAL recommend(u, 5, m.model) r
 GROUP BY m.model;
SELECT cmp_ok((SELECT share FROM pt_share WHERE model = 'pt4'), '>', 0.5::numeric,
              'with the threshold, most of the top 5 come from the liked group');
SELECT cmp_ok((SELECT share FROM pt_share WHERE model = 'pt4'), '>',
              (SELECT share FROM pt_share WHERE model = 'pt0') + 0.2,
              'clearly more often than without it');

-- fold-in of a new user: the disliked ratings push the other group down
-- pt_train does not hold user 1000; folding in reads the stored source, so
-- point both models at the table that does
UPDATE it_model SET interactions_source = 'pt_events' WHERE model IN ('pt0', 'pt4');
SELECT is((SELECT min(source) FROM recommend(1000, 5, 'pt4') r), 'fold_in', 'the new user is folded in');
SELECT cmp_ok((SELECT avg((pg_temp.group_of(item_id) = 0)::int) FROM recommend(1000, 5, 'pt4')), '>=', 0.8::numeric,
              'folded in with the threshold, the new user gets the group they rated high');
SELECT cmp_ok((SELECT avg(score(1000, i, 'pt4')) FROM generate_series(20, 39) i), '<',
              (SELECT avg(score(1000, i, 'pt0')) FROM generate_series(20, 39) i),
              'and the group they rated low scores lower than without the threshold');

-- evaluate: test rows below the threshold are not positives
CREATE TABLE pt_test (user_id bigint, item_id bigint, weight real);
-- user 2 only has a low-weight test row; user 4 a high one (items neither has rated)
INSERT INTO pt_test VALUES (2, 21, 1), (4, 1, 5);
SELECT is((SELECT users FROM evaluate('pt4', 'pt_test', 10) WHERE segment = 'all'), 1::bigint,
          'evaluate counts only the test rows at or above the threshold');
SELECT is((SELECT users FROM evaluate('pt4', 'SELECT user_id, item_id FROM pt_test', 10) WHERE segment = 'all'), 2::bigint,
          'without a weight column every test row is a positive');

-- the old name, and both names at once
SELECT * FROM train('pt_alias', 'pt_train', options => '{"factors": 4, "iterations": 2, "prior_min_weight": 4}') \g /dev/null
SELECT ok((SELECT (options->>'positive_threshold')::float8 = 4 AND NOT options ? 'prior_min_weight'
             FROM it_model WHERE model = 'pt_alias'),
          'prior_min_weight is taken as positive_threshold and stored under that name');
SELECT throws_ok($$SELECT * FROM train('pt_both', 'pt_train', options => '{"positive_threshold": 4, "prior_min_weight": 3}')$$,
                 '22023', 'option "positive_threshold" is given twice',
                 'both names at once is an error');

SELECT * FROM finish();
ROLLBACK;

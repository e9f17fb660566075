-- Ranking quality on generated data with planted groups: the model must
-- find at least twice the held-out positives that popularity finds, and
-- evaluate() must agree with the same metrics computed independently in SQL
-- from recommend().
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 2000, items => 400, per_user => 20, groups => 8, seed => 0.42);
SELECT * FROM it_demo.split(test_fraction => 0.2);
SET client_min_messages = warning;
CREATE TEMP TABLE trained AS
SELECT * FROM train('quality_recall', 'it_demo.train_events',
                    options => '{"factors": 24, "iterations": 10, "seed": 7}');
RESET client_min_messages;

-- The held-out positives of warm users (users the model was trained on),
-- one row per (user, item), leaving out items the user had in training.
CREATE TEMP TABLE pos AS
SELECT DISTINCT t.user_id, t.item_id
  FROM it_demo.test_events t
 WHERE EXISTS (SELECT 1 FROM it_demo.train_events r WHERE r.user_id = t.user_id)
   AND NOT EXISTS (SELECT 1 FROM it_demo.train_events r
                    WHERE r.user_id = t.user_id AND r.item_id = t.item_id);
CREATE TEMP TABLE warm AS
SELECT user_id, count(*) AS npos FROM pos GROUP BY user_id;

-- Popularity: items by how many users had them in training, each user's
-- training items left out, the top 10.
CREATE TEMP TABLE popular AS
SELECT item_id, row_number() OVER (ORDER BY count(DISTINCT user_id) DESC, item_id) AS rnk
  FROM it_demo.train_events
 GROUP BY item_id;

CREATE TEMP TABLE top10 AS
SELECT 'popularity' AS method, w.user_id, p.item_id
  FROM warm w
       CROSS JOIN LATERAL (
           SELECT item_id FROM popular
            WHERE NOT EXISTS (SELECT 1 FROM it_demo.train_events r
                               WHERE r.user_id = w.user_id AND r.item_id = popular.item_id)
            ORDER BY rnk
            LIMIT 10) p
UNION ALL
SELECT 'model', w.user_id, r.item_id
  FROM warm w
       CROSS JOIN LATERAL recommend(w.user_id, 10, 'quality_recall') r;

CREATE TEMP TABLE sql_metrics AS
SELECT method,
       count(*) AS users,
       avg(hits / 10.0::float8) AS precision_at_10,
       avg(hits / npos::float8) AS recall_at_10
  FROM (SELECT t.method, w.user_id, w.npos,
               count(p.item_id) AS hits
          FROM warm w
               JOIN top10 t USING (user_id)
               LEFT JOIN pos p ON p.user_id = t.user_id AND p.item_id = t.item_id
         GROUP BY t.method, w.user_id, w.npos) per_user
 GROUP BY method;

CREATE TEMP TABLE ev AS
SELECT * FROM evaluate('quality_recall', 'it_demo.test_events', 10);
\o

SELECT plan(11);

SELECT is((SELECT users FROM trained),
          (SELECT count(DISTINCT user_id) FROM it_demo.train_events),
          'train reports the number of distinct users');
SELECT is((SELECT items FROM trained),
          (SELECT count(DISTINCT item_id) FROM it_demo.train_events),
          'train reports the number of distinct items');
SELECT is((SELECT interactions FROM trained),
          (SELECT count(*) FROM (SELECT DISTINCT user_id, item_id FROM it_demo.train_events) d),
          'train reports the number of distinct (user, item) pairs');

SELECT is((SELECT count(*) FROM top10 WHERE method = 'model'),
          (SELECT 10 * count(*) FROM warm),
          'recommend returns 10 items for every warm user');

SELECT is((SELECT users FROM ev WHERE segment = 'warm'),
          (SELECT count(*) FROM warm),
          'evaluate counts the warm users with held-out positives');
SELECT is((SELECT users FROM ev WHERE segment = 'all'),
          (SELECT count(DISTINCT user_id) FROM it_demo.test_events),
          'evaluate counts every test user in segment all');

SELECT ok(abs((SELECT precision_at_k FROM ev WHERE segment = 'warm')
              - (SELECT precision_at_10 FROM sql_metrics WHERE method = 'model')) < 1e-6,
          format('evaluate precision@10 %s equals the SQL computation from recommend %s',
                 (SELECT precision_at_k FROM ev WHERE segment = 'warm'),
                 (SELECT precision_at_10 FROM sql_metrics WHERE method = 'model')));
SELECT ok(abs((SELECT recall_at_k FROM ev WHERE segment = 'warm')
              - (SELECT recall_at_10 FROM sql_metrics WHERE method = 'model')) < 1e-6,
          format('evaluate recall@10 %s equals the SQL computation from recommend %s',
                 (SELECT recall_at_k FROM ev WHERE segment = 'warm'),
                 (SELECT recall_at_10 FROM sql_metrics WHERE method = 'model')));

SELECT ok((SELECT recall_at_10 FROM sql_metrics WHERE method = 'model')
          >= 2 * (SELECT recall_at_10 FROM sql_metrics WHERE method = 'popularity'),
          format('recall@10 of the model (%s) is at least twice that of popularity (%s)',
                 round((SELECT recall_at_10 FROM sql_metrics WHERE method = 'model')::numeric, 4),
                 round((SELECT recall_at_10 FROM sql_metrics WHERE method = 'popularity')::numeric, 4)));
SELECT ok((SELECT precision_at_10 FROM sql_metrics WHERE method = 'model')
          >= 2 * (SELECT precision_at_10 FROM sql_metrics WHERE method = 'popularity'),
          format('precision@10 of the model (%s) is at least twice that of popularity (%s)',
                 round((SELECT precision_at_10 FROM sql_metrics WHERE method = 'model')::numeric, 4),
                 round((SELECT precision_at_10 FROM sql_metrics WHERE method = 'popularity')::numeric, 4)));
SELECT ok((SELECT auc FROM ev WHERE segment = 'warm') > 0.7,
          format('AUC of the warm users (%s) is well above chance',
                 round((SELECT auc FROM ev WHERE segment = 'warm')::numeric, 4)));

SELECT * FROM finish();
ROLLBACK;

--
-- recommend(), score(), similar_items() and evaluate() on a small model
-- whose factors are written directly into the storage tables.
--
CREATE EXTENSION IF NOT EXISTS interest_transfer;

INSERT INTO it_model_acl (model, owner) VALUES ('regress_rec', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('regress_rec', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 2}', 2, 3, 6, 8, 0, 0, '[]', '{0,0}');
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('regress_rec', 1, 101, '{1,0}', 40),
  ('regress_rec', 1, 102, '{0,1}', 25),
  ('regress_rec', 1, 103, '{0.7,0.7}', 40),
  ('regress_rec', 1, 104, '{-1,0.2}', 5),
  ('regress_rec', 1, 105, '{0.9,-0.4}', 10),
  ('regress_rec', 1, 106, '{0.1,0.3}', 0);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('regress_rec', 1, 1, '{1,0.25}', '{101}'),
  ('regress_rec', 1, 2, '{-0.5,1}', '{102,104}'),
  ('regress_rec', 1, 3, '{0,0}', '{}');

-- a trained user: best first, seen items left out
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend(1, 4, 'regress_rec');
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend(2, 10, 'regress_rec');
-- seen items kept
SELECT item_id, round(score::numeric, 4) AS score, rank
  FROM recommend(2, 3, 'regress_rec', exclude_seen => false);
-- an unknown user: most popular first (ties by item_id), popularity / max
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend(42, 4, 'regress_rec');
-- a NULL user: no rows
SELECT count(*) FROM recommend(NULL, 4, 'regress_rec');

-- score, joined with a query
SELECT i.item_id, round(score(1, i.item_id, 'regress_rec')::numeric, 4) AS user_1,
       round(score(42, i.item_id, 'regress_rec')::numeric, 4) AS unknown_user
  FROM (VALUES (101), (103), (106), (999)) AS i(item_id)
 ORDER BY i.item_id;
SELECT c.user_id, r.item_id, r.rank
  FROM (VALUES (1), (2), (42)) AS c(user_id)
 CROSS JOIN LATERAL recommend(c.user_id, 2, 'regress_rec') AS r
 ORDER BY c.user_id, r.rank;

-- similar items (cosine)
SELECT item_id, round(score::numeric, 4) AS score, rank FROM similar_items(101, 3, 'regress_rec');
SELECT item_id, round(score::numeric, 4) AS score, rank FROM similar_items(106, 10, 'regress_rec');

-- evaluate: user 1 is warm, user 7 cold, item 999 unknown to the model
SELECT segment, users, round(precision_at_k::numeric, 4) AS precision, round(recall_at_k::numeric, 4) AS recall,
       round(ndcg_at_k::numeric, 4) AS ndcg, round(map_at_k::numeric, 4) AS map, round(auc::numeric, 4) AS auc,
       round(coverage::numeric, 4) AS coverage
  FROM evaluate('regress_rec', 'SELECT * FROM (VALUES (1, 103), (1, 999), (2, 106), (7, 101)) AS t(user_id, item_id)', 2);

-- errors
SELECT * FROM recommend(1, 0, 'regress_rec');
SELECT * FROM recommend(1, 100001, 'regress_rec');
SELECT * FROM recommend(1, 10, 'regress_missing');
SELECT * FROM similar_items(999, 10, 'regress_rec');
SELECT * FROM evaluate('regress_rec', 'SELECT 1 AS user_id', 10);

SELECT drop_model('regress_rec');

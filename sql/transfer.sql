--
-- Serving users and items a model was not trained on: the path that
-- serves a user (source), recommend_for() and refresh(), on a small model
-- version written directly into the storage tables (2 factors, a linear
-- features -> interest layer per side).
--
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
RESET client_min_messages;

CREATE TABLE regress_tr_events (user_id bigint, item_id bigint, weight float8,
                                ts timestamptz DEFAULT '2024-01-01 00:00+00');
INSERT INTO regress_tr_events (user_id, item_id, weight) VALUES
  (1, 101, 1), (1, 102, 2), (2, 103, 1), (2, 104, 1), (3, 105, 3);
CREATE TABLE regress_tr_customers (user_id bigint, segment text);
INSERT INTO regress_tr_customers VALUES (1, 'books'), (2, 'films'), (3, 'books'), (7, 'films'), (8, 'books');
CREATE TABLE regress_tr_products (item_id bigint, category text);
INSERT INTO regress_tr_products VALUES (101, 'novel'), (102, 'novel'), (103, 'drama'), (104, 'drama'),
                                       (105, 'novel'), (106, 'drama');

INSERT INTO it_model_acl (model, owner) VALUES ('regress_tr', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      user_features_source, item_features_source, options, factors, users, items,
                      interactions, seconds, loss, history, user_mean)
VALUES ('regress_tr', 1, 'als', true, now(),
        'regress_tr_events', 'regress_tr_customers', 'regress_tr_products',
        '{"factors": 2, "alpha": 1, "prior_weight": 1}', 2, 3, 6, 5, 0, 0, '[]', '{0.5,0.5}');
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('regress_tr', 1, 101, '{1,0}', 5), ('regress_tr', 1, 102, '{0.9,0.1}', 4),
  ('regress_tr', 1, 103, '{0,1}', 3), ('regress_tr', 1, 104, '{0.1,0.9}', 2),
  ('regress_tr', 1, 105, '{0.5,0.5}', 1), ('regress_tr', 1, 106, '{-0.2,0.3}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('regress_tr', 1, 1, '{1,0}', '{101,102}'), ('regress_tr', 1, 2, '{0,1}', '{103,104}'),
  ('regress_tr', 1, 3, '{0.5,0.5}', '{105}');
-- segment books -> (1, 0), films -> (0, 1), anything else -> (0.3, 0.3);
-- category novel -> (1, 0), drama -> (0, 1)
INSERT INTO it_prior (model, version, kind, spec, dims, params, layout, metrics,
                      in_use, popularity_blend, prior_variance, fold_in_weight)
SELECT v.m, v.ver, v.side || '_features', v.spec::jsonb, v.dims, v.params::real[], v.layout::jsonb, v.metrics::jsonb,
       coalesce((v.metrics::jsonb ->> 'use_features')::boolean, true),
       coalesce((v.metrics::jsonb ->> 'popularity_blend')::real, 0),
       (v.metrics::jsonb ->> 'prior_variance')::float8, (v.metrics::jsonb ->> 'fold_in_prior_weight')::float8
  FROM (VALUES
 ('regress_tr', 1, 'user',
  '{"format": 1, "id_column": "user_id", "dims": 3, "rows": 3, "max_categories": 32, "min_category_count": 1,
    "columns": [{"name": "segment", "kind": "category", "type": "text", "offset": 0, "width": 3,
                 "missing": null, "nulls": 0, "values": ["books", "films"], "counts": [2, 1], "other": 2}]}',
  3, '{1,0,0.3, 0,1,0.3, 0,0}', '{"input": 3, "hidden": [], "output": 2}',
  '{"use_features": true, "popularity_blend": 0}'),
 ('regress_tr', 1, 'item',
  '{"format": 1, "id_column": "item_id", "dims": 3, "rows": 6, "max_categories": 32, "min_category_count": 1,
    "columns": [{"name": "category", "kind": "category", "type": "text", "offset": 0, "width": 3,
                 "missing": null, "nulls": 0, "values": ["drama", "novel"], "counts": [3, 3], "other": 2}]}',
  3, '{0,1,0, 1,0,0, 0,0}', '{"input": 3, "hidden": [], "output": 2}', '{"use_features": true}')) v(m, ver, side, spec, dims, params, layout, metrics);

-- a trained user
SELECT item_id, round(score::numeric, 4) AS score, rank, source FROM recommend(1, 3, 'regress_tr');
-- a customer with features only: the features prior
SELECT item_id, round(score::numeric, 4) AS score, rank, source FROM recommend(7, 3, 'regress_tr');
-- nobody known: popularity
SELECT item_id, round(score::numeric, 4) AS score, rank, source FROM recommend(9, 3, 'regress_tr');
-- a few interactions since training: fold-in around the features prior
INSERT INTO regress_tr_events (user_id, item_id, weight) VALUES (8, 103, 1), (8, 106, 2);
SELECT item_id, round(score::numeric, 4) AS score, rank, source FROM recommend(8, 3, 'regress_tr');
SELECT round(score(8, 101, 'regress_tr')::numeric, 4) AS score_101;

-- a visitor in no table
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend_for('{"segment": "films"}', k => 3, model => 'regress_tr');
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend_for('{"segment": "books"}', ARRAY[103, 106], 3, 'regress_tr');
SELECT item_id, round(score::numeric, 4) AS score, rank, source
  FROM recommend_for('{}', ARRAY[999], 3, 'regress_tr');
SELECT * FROM recommend_for('{"age": 31}', model => 'regress_tr');
SELECT * FROM recommend_for('{}', ARRAY[101, NULL], model => 'regress_tr');

-- refresh: the new customer is stored, a new product gets a vector
INSERT INTO regress_tr_products VALUES (107, 'drama');
SELECT refresh('regress_tr');
SELECT user_id, seen, source FROM it_user_factors WHERE model = 'regress_tr' ORDER BY user_id;
SELECT item_id, factors, popularity, source FROM it_item_factors WHERE model = 'regress_tr' AND item_id > 106;
SELECT item_id, round(score::numeric, 4) AS score, rank, source FROM recommend(8, 3, 'regress_tr');
SELECT item_id, round(score::numeric, 4) AS score, rank FROM similar_items(107, 2, 'regress_tr');
SELECT refresh('regress_tr');
SELECT refresh('regress_tr', ARRAY[2]);
SELECT user_id, round(factors[1]::numeric, 4) AS x1, round(factors[2]::numeric, 4) AS x2, source
  FROM it_user_factors WHERE model = 'regress_tr' AND user_id = 2;

SELECT drop_model('regress_tr');
DROP TABLE regress_tr_events, regress_tr_customers, regress_tr_products;

-- Serving users and items the model was not trained on: which path serves
-- a user ('model', 'fold_in', 'features', 'popular'), the fold-in against
-- its closed form, recommend_for(), refresh() and new items, on model
-- versions written by hand (k = 2) so that every number can be checked in
-- SQL.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(74);

-- A model version written by hand, k = 2: items 1..6 (item 1 = (1, 0) and
-- item 3 = (0, 1), so score(u, 1) and score(u, 3) are the user's vector),
-- users 1..3 trained, a user features model (segment and a 2-vector emb
-- through a linear layer: prior = (0.5 emb1 + [a] + 0.1 [other],
-- 0.5 emb2 + [b] + 0.1 [other])) and an item features model (category x
-- -> (1, 0), y -> (0, 1)).
CREATE TABLE tr_ev (user_id bigint, item_id bigint, weight float8, ts timestamptz DEFAULT '2024-01-01');
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (1, 1, 1), (1, 2, 2), (2, 3, 1), (2, 4, 1), (3, 5, 3);
CREATE TABLE tr_uf (user_id bigint, segment text, emb real[]);
INSERT INTO tr_uf VALUES (1, 'a', '{0,0}'), (2, 'b', '{0,0}'), (3, 'a', '{1,1}'), (10, 'a', '{1,0}'),
                         (11, 'b', NULL), (17, 'b', '{0,1}');
CREATE TABLE tr_itf (item_id bigint, category text);
INSERT INTO tr_itf VALUES (1, 'x'), (2, 'x'), (3, 'y'), (4, 'y'), (5, 'x'), (6, 'y');

CREATE FUNCTION pg_temp.hand_model(m text, opts jsonb, features boolean,
                                   user_metrics jsonb DEFAULT '{"use_features": true}',
                                   source text DEFAULT 'tr_ev') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO it_model_acl (model, owner) VALUES (m, current_user::regrole) ON CONFLICT DO NOTHING;
    INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                          user_features_source, item_features_source, options, factors, users, items,
                          interactions, seconds, loss, history, user_mean)
    VALUES (m, 1, 'als', true, now(), source,
            CASE WHEN features THEN 'tr_uf' END, CASE WHEN features THEN 'tr_itf' END,
            '{"factors": 2, "alpha": 1.0}'::jsonb || opts, 2, 3, 6, 5, 0, 0, '[]', '{0.2,0.3}');
    INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
      (m, 1, 1, '{1,0}', 5), (m, 1, 2, '{0.9,0.1}', 4), (m, 1, 3, '{0,1}', 3),
      (m, 1, 4, '{0.1,0.9}', 2), (m, 1, 5, '{0.5,0.5}', 1), (m, 1, 6, '{-0.2,0.3}', 1);
    INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
      (m, 1, 1, '{1,0}', '{1,2}'), (m, 1, 2, '{0,1}', '{3,4}'), (m, 1, 3, '{0.5,0.5}', '{5}');
    IF features THEN
        INSERT INTO it_prior (model, version, kind, spec, dims, params, layout, metrics,
                              in_use, popularity_blend, prior_variance, fold_in_weight)
        SELECT v.m, v.ver, v.side || '_features', v.spec::jsonb, v.dims, v.params::real[], v.layout::jsonb, v.metrics::jsonb,
               coalesce((v.metrics::jsonb ->> 'use_features')::boolean, true),
               coalesce((v.metrics::jsonb ->> 'popularity_blend')::real, 0),
               (v.metrics::jsonb ->> 'prior_variance')::float8, (v.metrics::jsonb ->> 'fold_in_prior_weight')::float8
          FROM (VALUES
         (m, 1, 'user',
          '{"format": 1, "id_column": "user_id", "dims": 5, "rows": 5, "max_categories": 32,
            "min_category_count": 2, "columns": [
             {"name": "emb", "kind": "vector", "type": "real[]", "offset": 0, "width": 2,
              "missing": null, "nulls": 0, "length": 2},
             {"name": "segment", "kind": "category", "type": "text", "offset": 2, "width": 3,
              "missing": null, "nulls": 0, "values": ["a", "b"], "counts": [3, 2], "other": 4}]}',
          5, '{0.5,0,1,0,0.1, 0,0.5,0,1,0.1, 0,0}', '{"input": 5, "hidden": [], "output": 2}', user_metrics),
         (m, 1, 'item',
          '{"format": 1, "id_column": "item_id", "dims": 3, "rows": 6, "max_categories": 32,
            "min_category_count": 2, "columns": [
             {"name": "category", "kind": "category", "type": "text", "offset": 0, "width": 3,
              "missing": null, "nulls": 0, "values": ["x", "y"], "counts": [3, 3], "other": 2}]}',
          3, '{1,0,0, 0,1,0, 0,0}', '{"input": 3, "hidden": [], "output": 2}', '{"use_features": true}')) v(m, ver, side, spec, dims, params, layout, metrics);
    END IF;
END $$;

-- The fold-in in closed form (k = 2):
--   x = (Y'Y + sum_i alpha w_i y_i y_i' + lambda0 I)^-1 (sum_i (1 + alpha w_i) y_i + lambda0 prior)
-- over the items of the version, duplicates of an item summed.
CREATE FUNCTION pg_temp.fold2(m text, ids bigint[], ws float8[], prior float8[], lambda0 float8)
RETURNS float8[] LANGUAGE sql AS $$
WITH y AS (SELECT item_id, factors[1]::float8 AS y1, factors[2]::float8 AS y2
             FROM it_item_factors WHERE model = m AND version = 1),
     g AS (SELECT sum(y1 * y1) AS g11, sum(y1 * y2) AS g12, sum(y2 * y2) AS g22 FROM y),
     a AS (SELECT (options->>'alpha')::float8 AS alpha FROM it_model WHERE model = m AND version = 1),
     u AS (SELECT coalesce(sum(a.alpha * w * y1 * y1), 0) AS c11, coalesce(sum(a.alpha * w * y1 * y2), 0) AS c12,
                  coalesce(sum(a.alpha * w * y2 * y2), 0) AS c22,
                  coalesce(sum((1 + a.alpha * w) * y1), 0) AS b1, coalesce(sum((1 + a.alpha * w) * y2), 0) AS b2
             FROM (SELECT id, sum(w) AS w FROM unnest(ids, ws) AS t(id, w) GROUP BY id) t
                  JOIN y ON y.item_id = t.id CROSS JOIN a),
     s AS (SELECT g11 + c11 + lambda0 AS a11, g12 + c12 AS a12, g22 + c22 + lambda0 AS a22,
                  b1 + lambda0 * prior[1] AS b1, b2 + lambda0 * prior[2] AS b2 FROM g, u)
SELECT ARRAY[(a22 * b1 - a12 * b2) / (a11 * a22 - a12 * a12), (a11 * b2 - a12 * b1) / (a11 * a22 - a12 * a12)]
  FROM s
$$;

-- a user's vector as the scoring functions see it
CREATE FUNCTION pg_temp.vec(u bigint, m text) RETURNS float8[] LANGUAGE sql AS $$
  SELECT ARRAY[score(u, 1, m)::float8, score(u, 3, m)::float8] $$;
CREATE FUNCTION pg_temp.close(a float8[], b float8[], tol float8) RETURNS boolean LANGUAGE sql AS $$
  SELECT abs(a[1] - b[1]) < tol AND abs(a[2] - b[2]) < tol $$;

SELECT pg_temp.hand_model('tiny', '{"prior_weight": 1}', true);

-- the four paths ------------------------------------------------------------------
SELECT is((SELECT min(source) || max(source) FROM recommend(1, 10, 'tiny')), 'modelmodel',
          'a trained user: source model');
SELECT is((SELECT min(source) || max(source) FROM recommend(10, 10, 'tiny')), 'featuresfeatures',
          'features only: source features');
SELECT ok((SELECT bool_and(abs(r.score - (1.5 * i.factors[1] + 0 * i.factors[2])) < 1e-6)
             FROM recommend(10, 10, 'tiny') r JOIN it_item_factors i ON i.model = 'tiny' AND i.item_id = r.item_id),
          'features path: scores are f(features).y, f = the stored linear layer on the encoded row');
SELECT is((SELECT count(*) FROM recommend(10, 10, 'tiny')), 6::bigint, 'features path: nothing is seen');
SELECT results_eq($$SELECT item_id, source FROM recommend(12, 3, 'tiny') ORDER BY rank$$,
                  $$VALUES (1::bigint, 'popular'::text), (2, 'popular'), (3, 'popular')$$,
                  'nothing known: popular');

INSERT INTO tr_ev (user_id, item_id, weight) VALUES (10, 3, 1), (10, 4, 2), (10, 999, 1),
    (13, 1, 1), (13, 6, 3), (14, 1, 1), (14, 1, 2), (15, 1, 3), (16, 2, 0),
    (17, 3, 1), (17, 5, 1);
SELECT is((SELECT min(source) || max(source) FROM recommend(10, 10, 'tiny')), 'fold_infold_in',
          'own rows and features: source fold_in');
SELECT ok(pg_temp.close(pg_temp.vec(10, 'tiny'), pg_temp.fold2('tiny', '{3,4}', '{1,2}', '{1.5,0}', 1), 1e-4),
          format('fold-in with the features prior equals the closed form: %s vs %s',
                 pg_temp.vec(10, 'tiny'), pg_temp.fold2('tiny', '{3,4}', '{1,2}', '{1.5,0}', 1)));
SELECT is_empty($$SELECT 1 FROM recommend(10, 10, 'tiny') WHERE item_id IN (3, 4)$$,
                'fold-in: the user''s items are not recommended');
SELECT ok(pg_temp.close(pg_temp.vec(13, 'tiny'), pg_temp.fold2('tiny', '{1,6}', '{1,3}', '{0.2,0.3}', 1), 1e-4),
          format('fold-in without features uses the population mean: %s vs %s',
                 pg_temp.vec(13, 'tiny'), pg_temp.fold2('tiny', '{1,6}', '{1,3}', '{0.2,0.3}', 1)));
SELECT ok(pg_temp.close(pg_temp.vec(14, 'tiny'), pg_temp.vec(15, 'tiny'), 1e-6),
          'duplicate rows of an item are summed');
SELECT is((SELECT min(source) FROM recommend(16, 3, 'tiny')), 'popular',
          'rows of weight 0 only: nothing known');
SELECT results_eq($$SELECT item_id, score FROM recommend(10, 10, 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, score(10, item_id, 'tiny') FROM recommend(10, 10, 'tiny') ORDER BY rank$$,
                  'score() gives a cold user the scores recommend() ranks by');

-- recommend_for -----------------------------------------------------------------
SELECT results_eq($$SELECT item_id, score, source FROM recommend_for('{"segment": "b", "emb": [0, 1]}', '{3,5}', 10, 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, score, source FROM recommend(17, 10, 'tiny') ORDER BY rank$$,
                  'recommend_for(features, items) = recommend of a user with those features and items');
SELECT results_eq($$SELECT item_id, score, source FROM recommend_for('{"segment": "b", "emb": [0, 1]}', '{3,5,999,5}', 10, 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, score, source FROM recommend_for('{"segment": "b", "emb": [0, 1]}', '{3,5,5}', 10, 'tiny') ORDER BY rank$$,
                  'recommend_for: items the model does not know are ignored');
SELECT results_eq($$SELECT item_id, score, source FROM recommend_for('{"segment": "b"}', k => 10, model => 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, score, source FROM recommend(11, 10, 'tiny') ORDER BY rank$$,
                  'recommend_for(features) = recommend of a user with only those features');
SELECT results_eq($$SELECT item_id, score, source FROM recommend_for('{}', k => 3, model => 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, score, source FROM recommend(12, 3, 'tiny') ORDER BY rank$$,
                  'recommend_for(''{}'') is popularity');
SELECT results_eq($$SELECT item_id, source FROM recommend_for(NULL, NULL, 3, 'tiny') ORDER BY rank$$,
                  $$SELECT item_id, source FROM recommend(12, 3, 'tiny') ORDER BY rank$$,
                  'recommend_for(NULL, NULL) is popularity');
SELECT results_eq($$SELECT item_id FROM recommend_for('{}', '{999}', 10, 'tiny') ORDER BY rank$$,
                  $$SELECT item_id FROM recommend(12, 10, 'tiny') ORDER BY rank$$,
                  'recommend_for with only unknown items is popularity');
SELECT ok(pg_temp.close(
            ARRAY[(SELECT score FROM recommend_for('{}', '{5}', 10, 'tiny') WHERE item_id = 1)::float8,
                  (SELECT score FROM recommend_for('{}', '{5}', 10, 'tiny') WHERE item_id = 3)::float8],
            pg_temp.fold2('tiny', '{5}', '{1}', '{0.2,0.3}', 1), 1e-4),
          'recommend_for(''{}'', items): fold-in around the population mean, each item weight 1');
SELECT is((SELECT string_agg(DISTINCT source, ',') FROM recommend_for('{}', '{5}', 10, 'tiny')), 'fold_in',
          'recommend_for with items: source fold_in');
SELECT is_empty($$SELECT 1 FROM recommend_for('{}', '{5,2}', 10, 'tiny') WHERE item_id IN (2, 5)$$,
                'recommend_for: the given items are not recommended');

-- popularity_blend, use_features false, fold_in false, automatic lambda0 ---------
SELECT pg_temp.hand_model('blend', '{"prior_weight": 1}', true, '{"use_features": true, "popularity_blend": 0.5}');
SELECT ok((SELECT bool_and(abs(r.score - (i.factors[2] + 0.5 * i.popularity / 5.0)) < 1e-6)
             FROM recommend(11, 10, 'blend') r JOIN it_item_factors i ON i.model = 'blend' AND i.item_id = r.item_id),
          'features path with popularity_blend: x.y + blend * popularity / max popularity');
SELECT results_eq($$SELECT item_id FROM recommend(11, 10, 'blend') ORDER BY rank$$,
                  $$SELECT item_id FROM it_item_factors WHERE model = 'blend'
                     ORDER BY (factors[2] + 0.5 * popularity / 5.0)::real DESC, item_id$$,
                  'features path with popularity_blend: ranked by the blended score');
SELECT is((SELECT score(11, 1, 'blend')), (SELECT score FROM recommend(11, 10, 'blend') WHERE item_id = 1),
          'score() blends as recommend() does');
SELECT ok(pg_temp.close(pg_temp.vec(13, 'blend'), pg_temp.vec(13, 'tiny'), 1e-7),
          'the fold-in path does not blend');

SELECT pg_temp.hand_model('nofeat', '{"prior_weight": 1}', true, '{"use_features": false}');
SELECT is((SELECT min(source) FROM recommend(11, 3, 'nofeat')), 'popular',
          'use_features false: a user with only features gets popularity');
SELECT ok(pg_temp.close(pg_temp.vec(10, 'nofeat'), pg_temp.fold2('nofeat', '{3,4}', '{1,2}', '{0.2,0.3}', 1), 1e-4),
          'use_features false: fold-in around the population mean');
SELECT is((SELECT min(source) FROM recommend_for('{"segment": "a"}', model => 'nofeat')), 'popular',
          'use_features false: recommend_for checks the features but serves popularity');

SELECT pg_temp.hand_model('nofold', '{"prior_weight": 1, "fold_in": false}', true);
SELECT is((SELECT min(source) FROM recommend(10, 3, 'nofold')), 'features',
          'fold_in false: the rows are not read, the features prior serves');
SELECT is((SELECT min(source) FROM recommend(13, 3, 'nofold')), 'popular',
          'fold_in false: rows without features give popularity');

-- automatic lambda0 = max(alpha, 0.2) / (2 v), v = mean squared deviation per
-- coordinate of the trained users' vectors from the population mean
SELECT pg_temp.hand_model('auto', '{"alpha": 2.0}', false);
SELECT ok(pg_temp.close(pg_temp.vec(13, 'auto'),
                        pg_temp.fold2('auto', '{1,6}', '{1,3}', '{0.2,0.3}',
                                      2.0 / (2 * (SELECT avg((f - (ARRAY[0.2, 0.3])[i])^2)
                                                    FROM it_user_factors, unnest(factors) WITH ORDINALITY AS t(f, i)
                                                   WHERE model = 'auto'))),
                        1e-4),
          'prior_weight 0: lambda0 = alpha / (2 * variance of the trained users around their mean)');

-- evaluate: warm = served by a trained vector, cold = every other path --------------
CREATE TEMP TABLE ev_tiny AS SELECT * FROM evaluate('tiny', 'SELECT * FROM (VALUES (1, 6), (10, 1), (11, 2), (13, 3), (99, 1)) v(user_id, item_id)', 3);
SELECT results_eq($$SELECT segment, users FROM ev_tiny ORDER BY segment$$,
                  $$VALUES ('all'::text, 5::bigint), ('cold', 4), ('warm', 1)$$,
                  'evaluate: fold-in, features and popular users are cold');
SELECT is((SELECT precision_at_k FROM ev_tiny WHERE segment = 'cold'),
          (SELECT avg(hit) FROM (
             SELECT (EXISTS (SELECT 1 FROM recommend(t.u, 3, 'tiny') r WHERE r.item_id = t.i))::int / 3.0::float8 AS hit
               FROM (VALUES (10::bigint, 1::bigint), (11, 2), (13, 3), (99, 1)) t(u, i)) h),
          'evaluate: the cold segment ranks as recommend() does');

-- refresh: new items ------------------------------------------------------------------
CREATE TEMP TABLE before_items AS SELECT item_id, score FROM recommend(11, 100, 'tiny');
INSERT INTO tr_itf VALUES (7, 'y'), (8, 'x');
CREATE TEMP TABLE expected_new AS
SELECT count(DISTINCT user_id) AS n FROM tr_ev e
 WHERE weight > 0 AND NOT EXISTS (SELECT 1 FROM it_user_factors f
                                   WHERE f.model = 'tiny' AND f.user_id = e.user_id);
CREATE TEMP TABLE before_10 AS SELECT item_id, score, rank FROM recommend(10, 100, 'tiny');
SELECT is(refresh('tiny'), (SELECT n FROM expected_new),
          'refresh returns the number of users it folded in (those with rows and no stored vector)');
SELECT results_eq($$SELECT item_id, factors, popularity, source FROM it_item_factors
                     WHERE model = 'tiny' AND item_id > 6 ORDER BY item_id$$,
                  $$VALUES (7::bigint, '{0,1}'::real[], 0::bigint, 'features'::text), (8, '{1,0}', 0, 'features')$$,
                  'refresh adds the items of item_features from their features');
SELECT set_eq($$SELECT item_id FROM recommend(11, 100, 'tiny')$$,
              $$SELECT item_id FROM before_items UNION VALUES (7::bigint), (8::bigint)$$,
              'the cached model reloads: new items are recommended in the same session');
SELECT results_eq($$SELECT item_id, score = 1, abs(score - 0.9 / sqrt(0.82)) < 1e-6 FROM similar_items(7, 2, 'tiny') ORDER BY rank$$,
                  $$VALUES (3::bigint, true, false), (4, false, true)$$,
                  'similar_items works for a new item: item 3 (same factors, cosine 1), then item 4 (0.9 / sqrt(0.82))');
SELECT ok((SELECT refreshed_at IS NOT NULL FROM it_model WHERE model = 'tiny'), 'refresh sets refreshed_at');

-- refresh: users ------------------------------------------------------------------------
SELECT results_eq($$SELECT seen, source FROM it_user_factors WHERE model = 'tiny' AND user_id = 10$$,
                  $$VALUES ('{3,4,999}'::bigint[], 'fold_in'::text)$$,
                  'a refreshed user: every item of positive weight is seen, source fold_in');
SELECT results_eq($$SELECT item_id, score FROM recommend(10, 100, 'tiny') WHERE item_id <= 6 ORDER BY rank$$,
                  $$SELECT item_id, score FROM before_10 ORDER BY rank$$,
                  'a refreshed user has the vector recommend() folded in before the refresh');
SELECT is((SELECT string_agg(DISTINCT source, ',') FROM recommend(10, 100, 'tiny')), 'fold_in',
          'recommend reports the stored source fold_in');
SELECT is_empty($$SELECT 1 FROM it_user_factors WHERE model = 'tiny' AND user_id = 16$$,
                'a user with rows of weight 0 only is not stored');
SELECT is(refresh('tiny'), 0::bigint, 'a second refresh finds nothing to do');

UPDATE tr_ev SET ts = now() + interval '1 hour' WHERE user_id = 1 AND item_id = 2;
INSERT INTO tr_ev VALUES (1, 5, 1, now() + interval '1 hour');
SELECT is(refresh('tiny'), 1::bigint, 'a trained user with a row later than the last refresh is refreshed');
SELECT ok(pg_temp.close((SELECT factors::float8[] FROM it_user_factors WHERE model = 'tiny' AND user_id = 1),
                        pg_temp.fold2('tiny', '{1,2,5}', '{1,2,1}', '{1,0}', 1), 1e-4),
          'a known user is folded in from all their rows around their stored vector');
SELECT results_eq($$SELECT seen, source FROM it_user_factors WHERE model = 'tiny' AND user_id = 1$$,
                  $$VALUES ('{1,2,5}'::bigint[], 'fold_in'::text)$$,
                  'a known user''s seen set and source are updated');
SELECT is_empty($$SELECT 1 FROM recommend(1, 100, 'tiny') WHERE item_id = 5$$,
                'the new item of a refreshed user is no longer recommended to them');
-- (the rows' ts stay later than this transaction's now(): move them back)
UPDATE tr_ev SET ts = '2024-01-01' WHERE user_id = 1;

SELECT is(refresh('tiny', '{2, 3, 777, 2}'), 2::bigint,
          'refresh of given users: known users are refreshed, users without rows or vector skipped');
SELECT results_eq($$SELECT user_id, source FROM it_user_factors WHERE model = 'tiny' AND user_id IN (2, 3) ORDER BY 1$$,
                  $$VALUES (2::bigint, 'fold_in'::text), (3, 'fold_in')$$,
                  'refresh of given users stores them as fold_in');

-- refresh without a ts column: each user's item set against the stored seen set
SELECT pg_temp.hand_model('nots', '{"prior_weight": 1}', false, source => 'SELECT user_id, item_id, weight FROM tr_ev');
SELECT is(refresh('nots'),
          (SELECT count(*) FROM (
             SELECT user_id, array_agg(DISTINCT item_id ORDER BY item_id) AS items FROM tr_ev WHERE weight > 0 GROUP BY user_id
             EXCEPT
             SELECT user_id, seen FROM it_user_factors WHERE model = 'nots') changed),
          'refresh without ts: the users whose item set differs from the stored one');
SELECT results_eq($$SELECT user_id FROM it_user_factors WHERE model = 'nots' AND source = 'fold_in' ORDER BY 1$$,
                  $$VALUES (1::bigint), (10), (13), (14), (15), (17)$$,
                  'refresh without ts: the changed trained user and the new users');
SELECT is(refresh('nots'), 0::bigint, 'refresh without ts: nothing changed, nothing refreshed');
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (2, 6, 1), (3, 5, 1);
SELECT is(refresh('nots'), 1::bigint, 'refresh without ts: a new item of a user; a repeated item changes nothing');
SELECT is((SELECT seen FROM it_user_factors WHERE model = 'nots' AND user_id = 2), '{3,4,6}'::bigint[],
          'refresh without ts: the new seen set');
SELECT is((SELECT refreshed_at IS NOT NULL FROM it_model WHERE model = 'nots'), true,
          'refresh without ts sets refreshed_at');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'nots'), 6::bigint,
          'a model without item features gets no new items');

-- the transaction is the unit: a rolled-back refresh leaves nothing
SAVEPOINT r;
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (30, 1, 1);
SELECT is(refresh('tiny'), 1::bigint, 'refresh inside a savepoint');
ROLLBACK TO SAVEPOINT r;
SELECT is_empty($$SELECT 1 FROM it_user_factors WHERE model = 'tiny' AND user_id = 30$$,
                'a rolled-back refresh leaves no row');

-- ------------------------------------------------------------------------------
-- A model trained with features on the generated shop (tests/data/generate.sql):
-- 20% of the users held out entirely (cold), 10% of the items too.  The same
-- ALS model without features (same seed: the same factors) is the baseline:
-- popularity for users with nothing, the population mean as the fold-in prior.
-- ------------------------------------------------------------------------------
\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 2000, items => 400, per_user => 20, groups => 8, seed => 0.42);
SELECT * FROM it_demo.split(test_fraction => 0.2, cold_user_fraction => 0.2, cold_item_fraction => 0.1);
SET LOCAL client_min_messages = warning;
CREATE TABLE q_events AS SELECT * FROM it_demo.train_events;
CREATE INDEX ON q_events (user_id);
CREATE TABLE q_items AS
SELECT * FROM it_demo.items i WHERE NOT EXISTS (SELECT 1 FROM it_demo.cold_items c WHERE c.item_id = i.item_id);
SELECT * FROM train('q', 'q_events', 'it_demo.users', 'q_items', '{"factors": 32, "iterations": 10, "seed": 7}');
SELECT * FROM train('q_nofeat', 'q_events', NULL, NULL, '{"factors": 32, "iterations": 10, "seed": 7}');
-- each cold user's first 3 events are revealed later; the rest are their positives
CREATE TEMP TABLE q_revealed AS
SELECT user_id, item_id, weight, ts
  FROM (SELECT e.*, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS rn
          FROM it_demo.events e WHERE user_id IN (SELECT user_id FROM it_demo.cold_users)) r
 WHERE rn <= 3;
CREATE TEMP TABLE q_cold_test AS
SELECT t.user_id, t.item_id FROM it_demo.test_events t JOIN it_demo.cold_users USING (user_id)
 WHERE NOT EXISTS (SELECT 1 FROM q_revealed r WHERE r.user_id = t.user_id AND r.item_id = t.item_id);
CREATE TEMP TABLE q_cold AS SELECT min(user_id) AS u FROM it_demo.cold_users;
CREATE TEMP TABLE q_eval (variant text, users bigint, p float8);
INSERT INTO q_eval SELECT 'features', users, precision_at_k FROM evaluate('q', 'q_cold_test', 10) WHERE segment = 'cold';
INSERT INTO q_eval SELECT 'popular', users, precision_at_k FROM evaluate('q_nofeat', 'q_cold_test', 10) WHERE segment = 'cold';
CREATE TEMP TABLE q_features_list AS SELECT item_id, score FROM recommend((SELECT u FROM q_cold), 10, 'q');
\o

SELECT is((SELECT metrics->>'use_features' FROM it_prior WHERE model = 'q' AND kind = 'user_features'), 'true',
          'trained: validation keeps the user features path');
SELECT is((SELECT min(source) || max(source) FROM recommend((SELECT min(user_id) FROM q_events), 10, 'q')),
          'modelmodel', 'trained: a trained user is served by model');
SELECT is((SELECT min(source) || max(source) FROM recommend((SELECT u FROM q_cold), 10, 'q')),
          'featuresfeatures', 'trained: a held-out user with features only is served by features');
SELECT is((SELECT min(source) FROM recommend(-1, 10, 'q')), 'popular', 'trained: an unknown id is served by popular');
SELECT results_eq($$SELECT item_id, score FROM recommend_for((SELECT to_jsonb(u) - 'user_id' FROM it_demo.users u
                                                                WHERE u.user_id = (SELECT u FROM q_cold)), k => 10, model => 'q')
                     ORDER BY rank$$,
                  $$SELECT item_id, score FROM q_features_list ORDER BY score DESC, item_id$$,
                  'trained: recommend_for(the user''s row as jsonb) = recommend for that user (number, text, date, NULL, real[] features)');

INSERT INTO q_events SELECT * FROM q_revealed;
SELECT is((SELECT min(source) || max(source) FROM recommend((SELECT u FROM q_cold), 10, 'q')),
          'fold_infold_in', 'trained: with 3 revealed interactions the held-out user is served by fold_in');
\o /dev/null
INSERT INTO q_eval SELECT 'fold-in, features prior', users, precision_at_k FROM evaluate('q', 'q_cold_test', 10) WHERE segment = 'cold';
INSERT INTO q_eval SELECT 'fold-in, population prior', users, precision_at_k FROM evaluate('q_nofeat', 'q_cold_test', 10) WHERE segment = 'cold';
\o
SELECT ok((SELECT p FROM q_eval WHERE variant = 'features') >= 1.5 * (SELECT p FROM q_eval WHERE variant = 'popular'),
          format('features only beats popularity by 1.5x on precision@10 of held-out users: %s vs %s',
                 round((SELECT p FROM q_eval WHERE variant = 'features')::numeric, 4),
                 round((SELECT p FROM q_eval WHERE variant = 'popular')::numeric, 4)));
SELECT ok((SELECT p FROM q_eval WHERE variant = 'fold-in, features prior') > (SELECT p FROM q_eval WHERE variant = 'features'),
          format('fold-in with 3 interactions beats features only: %s vs %s',
                 round((SELECT p FROM q_eval WHERE variant = 'fold-in, features prior')::numeric, 4),
                 round((SELECT p FROM q_eval WHERE variant = 'features')::numeric, 4)));
SELECT ok((SELECT p FROM q_eval WHERE variant = 'fold-in, features prior') > (SELECT p FROM q_eval WHERE variant = 'fold-in, population prior'),
          format('fold-in with the features prior beats fold-in with the population prior: %s vs %s',
                 round((SELECT p FROM q_eval WHERE variant = 'fold-in, features prior')::numeric, 4),
                 round((SELECT p FROM q_eval WHERE variant = 'fold-in, population prior')::numeric, 4)));
SELECT is((SELECT count(DISTINCT users) FROM q_eval), 1::bigint, 'every variant is measured on the same users');

-- refresh stores the held-out users' fold-in vectors; the popularity term
-- of the fold-in ranking is not part of a stored vector
CREATE TEMP TABLE q_before AS
SELECT item_id, score FROM recommend((SELECT u FROM q_cold), 100000, 'q', exclude_seen => false);
SELECT is(refresh('q'), (SELECT count(*) FROM it_demo.cold_users), 'trained: refresh stores every held-out user');
CREATE TEMP TABLE q_after AS
SELECT item_id, score FROM recommend((SELECT u FROM q_cold), 100000, 'q', exclude_seen => false);
SELECT ok((SELECT max(abs((b.score - a.score)
                          - (SELECT (metrics->>'fold_in_popularity_blend')::float8 FROM it_prior
                              WHERE model = 'q' AND kind = 'user_features')
                            * f.popularity / (SELECT max(popularity) FROM it_item_factors g
                                               WHERE g.model = 'q' AND g.version = f.version)::float8))
                 <= 1e-4 * (1 + max(abs(b.score)))
             FROM q_before b JOIN q_after a USING (item_id)
             JOIN it_item_factors f ON f.model = 'q' AND f.item_id = b.item_id
            WHERE f.version = (SELECT version FROM models WHERE model = 'q' AND deployed))
          AND (SELECT count(*) FROM q_after) = (SELECT count(*) FROM q_before),
          'trained: after refresh the stored vector scores every item as the fold-in on the fly, less its popularity term');

-- new products: in item_features only after training
INSERT INTO q_items SELECT * FROM it_demo.items i WHERE EXISTS (SELECT 1 FROM it_demo.cold_items c WHERE c.item_id = i.item_id);
SELECT is(refresh('q'), 0::bigint, 'trained: a refresh with new items only refreshes no user');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'q' AND source = 'features'),
          (SELECT count(*) FROM it_demo.cold_items), 'trained: refresh gives every new item a vector');
-- AUC of the new items for trained users with held-out positives among them
CREATE TEMP TABLE q_auc AS
WITH pos AS (SELECT DISTINCT t.user_id, t.item_id FROM it_demo.test_events t JOIN it_demo.cold_items USING (item_id)
              WHERE EXISTS (SELECT 1 FROM it_user_factors f
                             WHERE f.model = 'q' AND f.user_id = t.user_id AND f.source = 'model')),
     s AS (SELECT u.user_id, c.item_id, score(u.user_id, c.item_id, 'q') AS sc,
                  EXISTS (SELECT 1 FROM pos p WHERE p.user_id = u.user_id AND p.item_id = c.item_id) AS is_pos
             FROM (SELECT DISTINCT user_id FROM pos) u CROSS JOIN it_demo.cold_items c)
SELECT a.user_id, avg(CASE WHEN a.sc > b.sc THEN 1.0 WHEN a.sc = b.sc THEN 0.5 ELSE 0 END) AS auc
  FROM s a JOIN s b ON a.user_id = b.user_id AND a.is_pos AND NOT b.is_pos
 GROUP BY a.user_id;
SELECT ok((SELECT avg(auc) FROM q_auc) >= 0.65 AND (SELECT count(*) FROM q_auc) >= 100,
          format('new items are ranked for the right users: AUC %s over %s users (chance 0.5)',
                 round((SELECT avg(auc) FROM q_auc), 4), (SELECT count(*) FROM q_auc)));
SELECT ok((SELECT avg((SELECT count(*) FROM similar_items(c.item_id, 10, 'q') s
                         JOIN it_demo.item_groups g ON g.item_id = s.item_id
                        WHERE g.grp = (SELECT grp FROM it_demo.item_groups WHERE item_id = c.item_id)) / 10.0)
             FROM it_demo.cold_items c) >= 0.4,
          'similar_items of new items: at least 40% of the top 10 in the item''s hidden group (chance 12.5%)');

SELECT * FROM finish();
ROLLBACK;

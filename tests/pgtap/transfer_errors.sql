-- Serving users and items the model was not trained on: every bad input
-- to recommend_for() and refresh(), and every broken stored source, is an
-- ERROR with its SQLSTATE and a hint -- never a silent fallback.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(48);

-- SQLSTATE of a failing statement, with its hint and context
CREATE FUNCTION pg_temp.failure(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
    c text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN SQLSTATE || ' | ' || coalesce(h, '') || ' | ' || coalesce(c, '');
END $$;

-- A model version written by hand, k = 2: items 1..6, users 1..3 trained,
-- a user features model (an encoder over segment and a 2-vector emb, and a
-- linear layer) and an item features model (category).
CREATE TABLE tr_ev (user_id bigint, item_id bigint, weight float8, ts timestamptz DEFAULT '2024-01-01');
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (1, 1, 1), (1, 2, 2), (2, 3, 1), (2, 4, 1), (3, 5, 3);
CREATE TABLE tr_uf (user_id bigint, segment text, emb real[]);
INSERT INTO tr_uf VALUES (1, 'a', '{0,0}'), (2, 'b', '{0,0}'), (3, 'a', '{1,1}'), (10, 'a', '{1,0}'), (11, 'b', NULL);
CREATE TABLE tr_itf (item_id bigint, category text);
INSERT INTO tr_itf VALUES (1, 'x'), (2, 'x'), (3, 'y'), (4, 'y'), (5, 'x'), (6, 'y');

CREATE FUNCTION pg_temp.hand_model(m text, opts jsonb, features boolean,
                                   user_metrics jsonb DEFAULT '{"use_features": true}') RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO it_model_acl (model, owner) VALUES (m, current_user::regrole) ON CONFLICT DO NOTHING;
    INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                          user_features_source, item_features_source, options, factors, users, items,
                          interactions, seconds, loss, history, user_mean)
    VALUES (m, 1, 'als', true, now(), 'tr_ev',
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

SELECT pg_temp.hand_model('tiny', '{"prior_weight": 1}', true);
SELECT pg_temp.hand_model('plain', '{"prior_weight": 1}', false);

-- recommend_for: the features --------------------------------------------------
SELECT throws_ok($$SELECT * FROM recommend_for('{"segment": "a", "bogus": 1}', model => 'tiny')$$,
                 '22023', 'unknown feature "bogus"', 'recommend_for: an unknown feature key');
SELECT ok(pg_temp.failure($$SELECT * FROM recommend_for('{"bogus": 1}', model => 'tiny')$$)
          LIKE '22023 | The model knows the features emb, segment.%',
          'recommend_for: the hint lists the known features');
SELECT throws_ok($$SELECT * FROM recommend_for('{"emb": [1, 2, 3]}', model => 'tiny')$$,
                 '2202E', 'feature "emb" has 3 values, expected 2', 'recommend_for: a vector of the wrong length');
SELECT throws_ok($$SELECT * FROM recommend_for('{"emb": "no"}', model => 'tiny')$$,
                 '42804', NULL, 'recommend_for: a vector feature given as a string');
SELECT throws_ok($$SELECT * FROM recommend_for('{"segment": 7}', model => 'tiny')$$,
                 '42804', NULL, 'recommend_for: a category feature given as a number');
SELECT throws_ok($$SELECT * FROM recommend_for('[1, 2]', model => 'tiny')$$,
                 '22023', 'features must be a jsonb object', 'recommend_for: features not an object');
SELECT throws_ok($$SELECT * FROM recommend_for('{"segment": "a"}', model => 'plain')$$,
                 '0A000', 'model "plain" was trained without user features',
                 'recommend_for: features on a model trained without user features');
SELECT ok(pg_temp.failure($$SELECT * FROM recommend_for('{"segment": "a"}', model => 'plain')$$)
          LIKE '0A000 | Train the model with user_features%',
          'recommend_for: the hint says to train with user_features');
SELECT is((SELECT count(*) FROM recommend_for('{}', '{1}', model => 'plain')), 5::bigint,
          'recommend_for: no features on a model without features is fine');

-- recommend_for: the items and k -------------------------------------------------
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{1, NULL, 3}', model => 'tiny')$$,
                 '22004', 'items must not contain NULL (element 2 is NULL)', 'recommend_for: NULL in items');
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{{1, 2}, {3, 4}}', model => 'tiny')$$,
                 '2202E', 'items must be a one-dimensional array', 'recommend_for: a two-dimensional items array');
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{}', 0, 'tiny')$$,
                 '22023', 'k must be positive, not 0', 'recommend_for: k = 0');
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{}', NULL, 'tiny')$$,
                 '22004', 'k must not be NULL', 'recommend_for: k NULL');
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{}', 10, 'nope')$$,
                 '42704', 'model "nope" does not exist', 'recommend_for: an unknown model');

-- refresh: arguments and ownership ----------------------------------------------
SELECT throws_ok($$SELECT refresh('nope')$$, '42704', 'model "nope" does not exist',
                 'refresh: an unknown model');
SELECT throws_ok($$SELECT refresh(NULL)$$, '22004', 'model must not be NULL', 'refresh: NULL model');
SELECT throws_ok($$SELECT refresh('tiny', '{1, NULL}')$$, '22004',
                 'users must not contain NULL (element 2 is NULL)', 'refresh: NULL in users');
SELECT throws_ok($$SELECT refresh('tiny', '{{1}, {2}}')$$, '2202E',
                 'users must be a one-dimensional array', 'refresh: a two-dimensional users array');

CREATE ROLE it_transfer_other;
GRANT SELECT ON tr_ev, tr_uf, tr_itf TO it_transfer_other;
SET LOCAL ROLE it_transfer_other;
SELECT throws_ok($$SELECT refresh('tiny')$$, '42501', 'permission denied for model "tiny"',
                 'refresh: by a role without the train privilege');
SELECT throws_ok($$SELECT refresh('tiny', '{10}')$$, '42501', 'permission denied for model "tiny"',
                 'refresh of given users: by a role without the train privilege');
-- serving is for roles the owner granted use, and reads the stored sources as the owner
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'tiny')$$, '42501', 'permission denied for model "tiny"',
                 'recommend: by a role the owner granted nothing');
RESET ROLE;
SELECT grant_model('tiny', 'it_transfer_other', 'use');
SET LOCAL ROLE it_transfer_other;
SELECT is((SELECT min(source) FROM recommend(10, 3, 'tiny')), 'features',
          'a role granted use is served');
RESET ROLE;
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'tiny' AND source = 'fold_in'), 0::bigint,
          'a refused refresh wrote nothing');

-- the caller cannot read the stored source, its owner can ----------------------------
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (20, 1, 1);
REVOKE SELECT ON tr_ev FROM it_transfer_other;
SET LOCAL ROLE it_transfer_other;
SELECT is((SELECT min(source) FROM recommend(20, 3, 'tiny')), 'fold_in',
          'a cold user is folded in from a source only the owner may read, as a view would read it');
SELECT is((SELECT count(*) FROM recommend(1, 3, 'tiny')), 3::bigint,
          'a trained user is served without reading the source');
RESET ROLE;

SAVEPOINT dropped;
DROP TABLE tr_ev;
SELECT ok(pg_temp.failure($$SELECT * FROM recommend(20, 3, 'tiny')$$)
          LIKE '42P01 | Model "tiny" serves users and items it was not trained on from their rows in its stored interactions source%',
          'recommend: a dropped interactions table is an error with a hint, not popularity');
SELECT throws_ok($$SELECT score(20, 1, 'tiny')$$, '42P01', NULL, 'score: a dropped interactions table');
SELECT throws_ok($$SELECT * FROM evaluate('tiny', 'SELECT 20 AS user_id, 3 AS item_id')$$, '42P01', NULL,
                 'evaluate: a dropped interactions table');
SELECT throws_ok($$SELECT refresh('tiny')$$, '42P01', NULL, 'refresh: a dropped interactions table');
SELECT results_eq($$SELECT item_id FROM recommend(1, 3, 'tiny') ORDER BY rank$$,
                  $$VALUES (5::bigint), (4::bigint), (3::bigint)$$,
                  'a trained user is still served');
ROLLBACK TO SAVEPOINT dropped;

-- a query source whose table went away
UPDATE it_model SET interactions_source = 'SELECT user_id, item_id, weight FROM tr_ev_gone' WHERE model = 'plain';
SELECT ok(pg_temp.failure($$SELECT * FROM recommend(20, 3, 'plain')$$)
          LIKE '42P01 | Model "plain" serves users%',
          'a query source naming a table that does not exist: an error with a hint');
UPDATE it_model SET interactions_source = 'tr_ev' WHERE model = 'plain';

-- bad rows of a cold user, as training would refuse them
INSERT INTO tr_ev (user_id, item_id, weight) VALUES (21, NULL, 1), (22, 1, -1), (23, 1, 'NaN'), (24, 1, NULL);
SELECT throws_ok($$SELECT * FROM recommend(21, 3, 'plain')$$, '22004',
                 'item_id is NULL in a row of user 21 in interactions', 'a cold user with a NULL item_id');
SELECT throws_ok($$SELECT * FROM recommend(22, 3, 'plain')$$, '22023',
                 'weight of user 22 for item 1 in interactions is negative', 'a cold user with a negative weight');
SELECT throws_ok($$SELECT * FROM recommend(23, 3, 'plain')$$, '22023',
                 'weight of user 23 for item 1 in interactions is NaN', 'a cold user with a NaN weight');
SELECT throws_ok($$SELECT * FROM recommend(24, 3, 'plain')$$, '22004',
                 'weight of user 24 for item 1 in interactions is NULL', 'a cold user with a NULL weight');
SELECT ok(pg_temp.failure($$SELECT * FROM recommend(22, 3, 'plain')$$)
          LIKE '22023 | Weights count positive evidence%while reading interactions of user 22 for model "plain"%',
          'a bad weight: its own hint, and the context names the user and the model');
DELETE FROM tr_ev WHERE user_id IN (21, 22, 23, 24);

-- the user features source ----------------------------------------------------
INSERT INTO tr_uf VALUES (10, 'b', NULL);
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'tiny')$$, '21000',
                 'user_features has more than one row for user 10', 'two features rows for one user');
DELETE FROM tr_uf WHERE user_id = 10 AND segment = 'b';
SAVEPOINT altered;
ALTER TABLE tr_uf DROP COLUMN emb;
SELECT ok(pg_temp.failure($$SELECT * FROM recommend(10, 3, 'tiny')$$)
          LIKE '42703 | Put the column back into the features source%while reading user_features of user 10 for model "tiny"%',
          'a features column dropped since training: an error naming it, with a hint');
ROLLBACK TO SAVEPOINT altered;
SAVEPOINT retyped;
ALTER TABLE tr_uf ALTER COLUMN segment TYPE int USING 1;
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'tiny')$$, '42804', NULL,
                 'a features column of another type since training');
ROLLBACK TO SAVEPOINT retyped;

-- stored features models that do not fit the model -----------------------------
SELECT pg_temp.hand_model('bad_layout', '{}', true, '{"use_features": true}');
UPDATE it_prior SET layout = '{"input": 5, "hidden": [], "output": 3}' WHERE model = 'bad_layout' AND kind = 'user_features';
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'bad_layout')$$, 'XX001',
                 'stored user features model of model "bad_layout" version 1 is invalid',
                 'a stored features model with the wrong number of outputs');
UPDATE it_prior SET layout = '{"input": 5, "hidden": [], "output": 2}', params = '{1,2,3}'
 WHERE model = 'bad_layout' AND kind = 'user_features';
UPDATE it_model SET loss = 1 WHERE model = 'bad_layout';   -- a new row: the cached copy reloads
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'bad_layout')$$, 'XX001', NULL,
                 'a stored features model with the wrong number of parameters');
SELECT throws_ok($$UPDATE it_prior SET fold_in_weight = 1e300 WHERE model = 'bad_layout' AND kind = 'user_features'$$,
                 '23514', NULL, 'the table refuses a fold-in weight beyond what a float solve takes');
SELECT throws_ok($$UPDATE it_prior SET popularity_blend = -1 WHERE model = 'bad_layout' AND kind = 'user_features'$$,
                 '23514', NULL, 'the table refuses a negative popularity blend');
-- past the table's checks (a restored dump of an edited table), loading still refuses it
ALTER TABLE it_prior DROP CONSTRAINT it_prior_fold_in_weight_check;
UPDATE it_prior SET params = '{0.5,0,1,0,0.1, 0,0.5,0,1,0.1, 0,0}', fold_in_weight = 1e300
 WHERE model = 'bad_layout' AND kind = 'user_features';
UPDATE it_model SET loss = 2 WHERE model = 'bad_layout';
SELECT throws_ok($$SELECT * FROM recommend(10, 3, 'bad_layout')$$, 'XX001',
                 'stored user_features prior of model "bad_layout" version 1 is invalid',
                 'a stored fold-in weight beyond what a float solve takes');

-- refresh: the item features source ---------------------------------------------
INSERT INTO tr_itf VALUES (7, 'x'), (7, 'y');
SELECT throws_ok($$SELECT refresh('tiny')$$, '23505',
                 'item_features of model "tiny" has more than one row for an item',
                 'refresh: two features rows for one new item');
DELETE FROM tr_itf WHERE item_id = 7;
INSERT INTO tr_itf VALUES (NULL, 'x');
SELECT throws_ok($$SELECT refresh('tiny')$$, '22004', 'item_id is NULL in row 7 of item_features',
                 'refresh: a NULL item id in item_features');
DELETE FROM tr_itf WHERE item_id IS NULL;
SAVEPOINT items_dropped;
DROP TABLE tr_itf;
SELECT ok(pg_temp.failure($$SELECT refresh('tiny')$$)
          LIKE '42P01 | Model "tiny" serves users and items it was not trained on from their rows in its stored item_features source%',
          'refresh: a dropped item_features table is an error with a hint');
ROLLBACK TO SAVEPOINT items_dropped;
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'tiny'), 6::bigint,
          'failed refreshes added no item');

SELECT * FROM finish();
ROLLBACK;

-- Versions, deployment, retraining, transactions, the stored model and
-- ownership: what train() writes and who may change it.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

\ir lib/as_role.psql
SELECT plan(73);

-- 30 users in 3 groups of 10; group g uses items 100 g + 1 .. 100 g + 6,
-- each user 4 of them (weights 1..3)
CREATE TABLE it_t_ev AS
SELECT u AS user_id, 100 * ((u - 1) / 10) + (u + j) % 6 + 1 AS item_id, 1 + (u + j) % 3 AS weight
  FROM generate_series(1, 30) u, generate_series(0, 3) j;

-- runs q as role r with search_path path; returns the SQLSTATE it failed
-- with, or P0001 when it succeeded (and then undoes it)
CREATE FUNCTION pg_temp.as_role_path(r text, path text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    PERFORM set_config('search_path', path, true);
    EXECUTE q INTO res;
    RAISE EXCEPTION 'succeeded: %', res;
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

-- ---------------------------------------------------------------------
-- first version: what train() returns and writes
-- ---------------------------------------------------------------------
CREATE TEMP TABLE it_t_r1 AS
SELECT * FROM train('v', 'it_t_ev', options => '{"factors": 4, "iterations": 8}');

SELECT results_eq($$SELECT model, version, users, items, interactions FROM it_t_r1$$,
                  $$VALUES ('v'::text, 1, 30::bigint, 18::bigint, 120::bigint)$$,
                  'train returns the model, version 1 and the sizes');
SELECT ok((SELECT loss > 0 AND loss < 'Infinity' AND seconds >= 0 FROM it_t_r1), 'loss and seconds are set');
SELECT results_eq($$SELECT m.algorithm, m.factors, m.interactions_source, m.user_features_source IS NULL, m.deployed,
                           m.users, m.items, m.interactions, a.owner = current_user::regrole
                      FROM it_model m JOIN it_model_acl a USING (model) WHERE model = 'v'$$,
                  $$VALUES ('als'::text, 4, 'it_t_ev'::text, true, true, 30::bigint, 18::bigint, 120::bigint, true)$$,
                  'the model row holds the definition, sizes, owner, and is deployed');
-- regularization "auto": cbar * sqrt(interactions per user), cbar = 1 + alpha * mean weight of a pair
SELECT is((SELECT (options->>'regularization')::numeric FROM models WHERE model = 'v'),
          (SELECT round(l::numeric, 2 - floor(log(l))::int)   -- three significant digits
             FROM (SELECT (1 + avg(w)) * sqrt(count(*)::float8 / count(DISTINCT user_id)) AS l
                     FROM (SELECT user_id, item_id, sum(weight) AS w FROM it_t_ev GROUP BY 1, 2) p) r),
          'the default regularization is worked out from the data, and the version stores the number');
SELECT is((SELECT metrics->'regularization'->>'rule' FROM it_model WHERE model = 'v'), 'auto',
          'and its metrics say so');
-- train(model) works it out again on the data it reads; a number given stays
CREATE TABLE it_t_va AS SELECT * FROM it_t_ev;
SELECT * FROM train('va', 'it_t_va', options => '{"factors": 4, "iterations": 4}') \g /dev/null
SELECT * FROM train('vn', 'it_t_va', options => '{"factors": 4, "iterations": 4, "regularization": 0.5}') \g /dev/null
INSERT INTO it_t_va SELECT user_id, item_id + 50, weight FROM it_t_va;
SELECT * FROM train('va') \g /dev/null
SELECT * FROM train('vn') \g /dev/null
SELECT is((SELECT array_agg((options->>'regularization')::numeric ORDER BY version) FROM models WHERE model = 'va'),
          (SELECT ARRAY[6, round(l::numeric, 2 - floor(log(l))::int)]
             FROM (SELECT (1 + avg(w)) * sqrt(count(*)::float8 / count(DISTINCT user_id)) AS l
                     FROM (SELECT user_id, item_id, sum(weight) AS w FROM it_t_va GROUP BY 1, 2) p) r),
          'train(model) works the automatic regularization out again on the new data');
SELECT is((SELECT array_agg((options->>'regularization')::numeric ORDER BY version) FROM models WHERE model = 'vn'),
          ARRAY[0.5, 0.5], 'and keeps a regularization given as a number');
SELECT is((SELECT options FROM models WHERE model = 'v') - 'regularization',
          '{"factors": 4, "iterations": 8, "alpha": 1, "cg_steps": 3, "seed": 42, "threads": 0,
            "deploy": "always", "prior_weight": 0, "fold_in": true,
            "prior_hidden": 64, "prior_epochs": 200, "prior_learning_rate": 0.001, "prior_weight_decay": 3,
            "prior_batch": 64, "prior_patience": 20, "prior_validation": 0.2, "positive_threshold": 0,
            "prior_budget": 1, "prior_vector_weight": 0, "new_items": true, "max_categories": 32,
            "min_category_count": 2, "domain_weights": "balanced", "cross_domain_ranking": "auto", "context": null, "timezone": null, "source_models": null,
            "source_user_map": null}'::jsonb,
          'options are stored with every default filled in');
SELECT results_eq($$SELECT loss, seconds FROM models WHERE model = 'v'$$, $$SELECT loss, seconds FROM it_t_r1$$,
                  'the view shows the returned loss and seconds');

SELECT ok((SELECT metrics->'phases' ?& ARRAY['read', 'map', 'als', 'contexts', 'cross_domain', 'priors',
                                              'fold_in_weight', 'deploy', 'write']
                  AND (SELECT bool_and(v::float8 >= 0) AND sum(v::float8) <= seconds + 0.01 +
                              CASE WHEN (metrics->>'fold_in_beside_write')::bool
                                   THEN (metrics->'phases'->>'fold_in_weight')::float8 ELSE 0 END
                         FROM jsonb_each_text(metrics->'phases') e(k, v))
             FROM it_model WHERE model = 'v'),
          'metrics keep where the time of train() went, the phases adding up to no more than the whole call '
          '(the fold-in weight''s simulations beside the writes aside)');
-- training curve
SELECT is((SELECT jsonb_array_length(history) FROM it_model WHERE model = 'v'), 8, 'one history entry per iteration');
SELECT is((SELECT array_agg((e->>'iteration')::int ORDER BY n)
             FROM it_model, jsonb_array_elements(history) WITH ORDINALITY h(e, n) WHERE model = 'v'),
          ARRAY[1, 2, 3, 4, 5, 6, 7, 8], 'iterations are numbered in order');
SELECT is((SELECT count(*) FROM (
             SELECT (e->>'loss')::float8 AS loss,
                    lag((e->>'loss')::float8) OVER (ORDER BY n) AS prev
               FROM it_model, jsonb_array_elements(history) WITH ORDINALITY h(e, n) WHERE model = 'v') x
            WHERE loss > prev * (1 + 1e-6)), 0::bigint, 'the loss never rises');
SELECT ok((SELECT (history->0->>'loss')::float8 > (history->-1->>'loss')::float8 FROM it_model WHERE model = 'v'),
          'the loss falls over the run');
SELECT is((SELECT (history->-1->>'loss')::float8 FROM it_model WHERE model = 'v'), (SELECT loss FROM it_t_r1),
          'the returned loss is the last iteration''s');
SELECT ok((SELECT bool_and((e->>'seconds')::float8 >= 0) FROM it_model, jsonb_array_elements(history) e WHERE model = 'v'),
          'every iteration has its elapsed time');

-- factor rows
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'v' AND version = 1 AND cardinality(factors) = 4),
          30::bigint, 'one user row of 4 factors per user');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'v' AND version = 1 AND cardinality(factors) = 4),
          18::bigint, 'one item row of 4 factors per item');
SELECT set_eq($$SELECT user_id, seen FROM it_user_factors WHERE model = 'v' AND version = 1$$,
              $$SELECT user_id, array_agg(DISTINCT item_id ORDER BY item_id) FROM it_t_ev GROUP BY user_id$$,
              'seen holds each user''s items, sorted');
SELECT set_eq($$SELECT item_id, popularity FROM it_item_factors WHERE model = 'v' AND version = 1$$,
              $$SELECT item_id, count(DISTINCT user_id) FROM it_t_ev GROUP BY item_id$$,
              'popularity counts each item''s users');
SELECT is((SELECT max(abs(m.user_mean[i] - a.avg)) < 1e-5
             FROM it_model m,
                  (SELECT i, avg(f.factors[i]) AS avg
                     FROM it_user_factors f, generate_series(1, 4) i
                    WHERE f.model = 'v' AND f.version = 1 GROUP BY i) a
            WHERE m.model = 'v'), true, 'user_mean is the mean user vector');

-- ---------------------------------------------------------------------
-- more versions, deploy, retrain
-- ---------------------------------------------------------------------
SELECT is((SELECT version FROM train('v', 'SELECT * FROM it_t_ev', options => '{"factors": 3, "seed": 7, "iterations": 4}')),
          2, 'a second train makes version 2');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'v' ORDER BY version$$,
                  $$VALUES (1, false), (2, true)$$, 'the new version is the deployed one');
SELECT lives_ok($$SELECT deploy('v', 1)$$, 'deploy an older version');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'v' ORDER BY version$$,
                  $$VALUES (1, true), (2, false)$$, 'rolled back to version 1');
SELECT lives_ok($$SELECT deploy('v', 1)$$, 'deploying the deployed version again is fine');
SELECT is((SELECT count(*) FROM models WHERE model = 'v' AND deployed), 1::bigint, 'exactly one deployed version');

SELECT results_eq($$SELECT model, version, users, items, interactions FROM train('v')$$,
                  $$VALUES ('v'::text, 3, 30::bigint, 18::bigint, 120::bigint)$$,
                  'train(model) makes version 3');
SELECT results_eq($$SELECT interactions_source, options, factors FROM it_model WHERE model = 'v' AND version = 3$$,
                  $$SELECT interactions_source, options, factors FROM it_model WHERE model = 'v' AND version = 1$$,
                  'train(model) reuses the sources and options of the deployed version, not of the latest');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'v' ORDER BY version$$,
                  $$VALUES (1, false), (2, false), (3, true)$$, 'and deploys it');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (model, user_id)
            WHERE model = 'v' AND a.version = 1 AND b.version = 3 AND a.factors = b.factors),
          30::bigint, 'same data, options and seed: identical user factors');
SELECT is((SELECT count(*) FROM it_item_factors a JOIN it_item_factors b USING (model, item_id)
            WHERE model = 'v' AND a.version = 1 AND b.version = 3 AND a.factors = b.factors),
          18::bigint, 'same data, options and seed: identical item factors');
SELECT is((SELECT version FROM train('v', 'it_t_ev', options => '{"factors": 3, "seed": 8, "iterations": 4}')),
          4, 'version 4 with another seed');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (model, user_id)
            WHERE model = 'v' AND a.version = 2 AND b.version = 4 AND a.factors = b.factors),
          0::bigint, 'another seed gives other factors');

-- ---------------------------------------------------------------------
-- duplicates, zero weights, row order, sources
-- ---------------------------------------------------------------------
SELECT results_eq($$SELECT users, items, interactions FROM train('d',
                      'SELECT * FROM (VALUES (1, 10, 1), (1, 10, 2), (1, 11, 1), (2, 10, 1), (2, 12, 0), (3, 12, 0)) v(user_id, item_id, weight)',
                      options => '{"factors": 2, "iterations": 3}')$$,
                  $$VALUES (2::bigint, 2::bigint, 3::bigint)$$,
                  'a repeated pair is one interaction; weight 0 rows are left out');
SELECT results_eq($$SELECT user_id, seen FROM it_user_factors WHERE model = 'd' ORDER BY user_id$$,
                  $$VALUES (1::bigint, '{10,11}'::bigint[]), (2, '{10}')$$,
                  'seen lists a repeated pair once');
SELECT lives_ok($$SELECT * FROM train('d2',
                      'SELECT * FROM (VALUES (1, 10, 3), (1, 11, 1), (2, 10, 1)) v(user_id, item_id, weight)',
                      options => '{"factors": 2, "iterations": 3}')$$, 'the same data with the pair summed');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (user_id)
            WHERE a.model = 'd' AND b.model = 'd2' AND a.factors = b.factors),
          2::bigint, 'duplicates are summed: same factors as one row of the summed weight');
SELECT lives_ok($$SELECT * FROM train('o', 'SELECT * FROM it_t_ev ORDER BY user_id DESC, item_id DESC',
                                      options => '{"factors": 4, "iterations": 8}')$$,
                'the same interactions in another order');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (user_id)
            WHERE a.model = 'v' AND a.version = 1 AND b.model = 'o' AND a.factors = b.factors),
          30::bigint, 'the row order does not change the model');

CREATE TABLE it_t_mid AS
SELECT u AS user_id, (u * 7 + j * 13) % 300 AS item_id FROM generate_series(1, 2000) u, generate_series(1, 10) j;
SELECT lives_ok($$SELECT * FROM train('t1', 'it_t_mid', options => '{"factors": 8, "iterations": 3, "threads": 1}')$$,
                'one thread');
SELECT lives_ok($$SELECT * FROM train('t2', 'it_t_mid', options => '{"factors": 8, "iterations": 3, "threads": 2}')$$,
                'two threads');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (user_id)
            WHERE a.model = 't1' AND b.model = 't2' AND a.factors = b.factors),
          2000::bigint, 'the number of threads does not change the model');

CREATE SCHEMA "It Data";
CREATE TABLE "It Data"."Events" AS SELECT user_id::int, item_id::smallint, weight::numeric AS weight,
                                          now()::date AS ts FROM it_t_ev;
CREATE VIEW it_t_view AS SELECT user_id, item_id FROM it_t_ev WHERE user_id <= 20;
SELECT results_eq($$SELECT users, interactions FROM train('q', '"It Data"."Events"', options => '{"iterations": 2}')$$,
                  $$VALUES (30::bigint, 120::bigint)$$,
                  'a quoted, schema-qualified table with int, smallint, numeric and date columns');
SELECT is((SELECT interactions_source FROM it_model WHERE model = 'q'), '"It Data"."Events"', 'the source is stored as given');
SELECT results_eq($$SELECT users FROM train('q', 'it_t_view', options => '{"iterations": 2}')$$,
                  $$VALUES (20::bigint)$$, 'a view');
SELECT results_eq($$SELECT users FROM train('q', E'-- recent\n/* only /* group */ 1 */ WITH e AS (SELECT * FROM it_t_ev WHERE user_id <= 10)\nSELECT * FROM e; ',
                                            options => '{"iterations": 2}')$$,
                  $$VALUES (10::bigint)$$, 'a query after comments, with a trailing semicolon');
SELECT results_eq($$SELECT users FROM train('q', 'TABLE it_t_ev', options => '{"iterations": 2}')$$,
                  $$VALUES (30::bigint)$$, 'a TABLE query');
SELECT results_eq($$SELECT users FROM train('q', ' (SELECT * FROM it_t_ev WHERE user_id <= 5)', options => '{"iterations": 2}')$$,
                  $$VALUES (5::bigint)$$, 'a parenthesized query');

-- ---------------------------------------------------------------------
-- transactions: a rolled-back train leaves nothing
-- ---------------------------------------------------------------------
SAVEPOINT before_w;
SELECT is((SELECT version FROM train('w', 'it_t_ev', options => '{"iterations": 2}')), 1, 'train inside a savepoint');
SELECT is((SELECT version FROM train('v')), 5, 'and a new version of v');
ROLLBACK TO SAVEPOINT before_w;
SELECT is((SELECT count(*) FROM it_model WHERE model = 'w')
          + (SELECT count(*) FROM it_user_factors WHERE model = 'w')
          + (SELECT count(*) FROM it_item_factors WHERE model = 'w'), 0::bigint, 'rolled back: no trace of the new model');
SELECT results_eq($$SELECT max(version), max(version) FILTER (WHERE deployed) FROM it_model WHERE model = 'v'$$,
                  $$VALUES (4, 4)$$, 'rolled back: v is back to version 4, deployed');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'v' AND version = 5), 0::bigint,
          'rolled back: no factor rows of version 5');

-- ---------------------------------------------------------------------
-- ownership and privileges
-- ---------------------------------------------------------------------
CREATE ROLE it_t_alice;
CREATE ROLE it_t_bob;
CREATE TABLE it_t_alice_ev AS SELECT * FROM it_t_ev;
CREATE TABLE it_t_secret AS SELECT * FROM it_t_ev;
GRANT SELECT ON it_t_alice_ev TO it_t_alice, it_t_bob;

SELECT is(pg_temp.as_role('it_t_alice', $$SELECT version FROM train('alice_m', 'it_t_alice_ev', options => '{"iterations": 2}')$$),
          '1', 'a role without superuser trains its own model');
SELECT is((SELECT owner::text FROM it_model_acl WHERE model = 'alice_m'), 'it_t_alice', 'and owns it');
SELECT is(pg_temp.as_role('it_t_alice', $$SELECT version FROM train('alice_m')$$), '2', 'and retrains it');
SELECT is(pg_temp.as_role('it_t_alice', $$SELECT deploy('alice_m', 1)::text$$), '', 'and deploys it');
SELECT is(pg_temp.as_role('it_t_alice', $$INSERT INTO it_model SELECT * FROM it_model WHERE model = 'alice_m' RETURNING 1$$),
          '42501', 'but cannot write the model tables directly');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT deploy('alice_m', 2)::text$$), '42501', 'another role cannot deploy it');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT drop_model('alice_m')::text$$), '42501', 'nor drop it');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT version FROM train('alice_m')$$), '42501', 'nor retrain it');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT version FROM train('alice_m', 'it_t_alice_ev')$$), '42501',
          'nor train a new version of it');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT version FROM train('bob_m', 'it_t_secret')$$), '42501',
          'a table the role cannot SELECT cannot be read through train');
SELECT is(pg_temp.as_role('it_t_bob', $$SELECT version FROM train('bob_m', 'SELECT * FROM it_t_secret')$$), '42501',
          'nor through a query');
-- an operator = of bob's ahead of pg_catalog's, which finds no model
CREATE SCHEMA it_t_evil;
CREATE FUNCTION it_t_evil.never(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT false';
CREATE OPERATOR it_t_evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = it_t_evil.never);
GRANT USAGE ON SCHEMA it_t_evil TO it_t_bob;
SELECT is(pg_temp.as_role_path('it_t_bob', 'it_t_evil, pg_catalog, public',
                               $$SELECT version FROM public.train('alice_m', 'public.it_t_alice_ev')$$),
          '42501', 'a search_path with another = does not make the model look new');
SELECT is(pg_temp.as_role_path('it_t_bob', 'it_t_evil, pg_catalog, public',
                               $$SELECT public.deploy('alice_m', 2)::text$$),
          '42501', 'nor deployable');
SELECT is(pg_temp.as_role_path('it_t_bob', 'it_t_evil, pg_catalog, public',
                               $$SELECT public.drop_model('alice_m')::text$$),
          '42501', 'nor droppable');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'alice_m' ORDER BY version$$,
                  $$VALUES (1, true), (2, false)$$, 'alice''s model is as she left it');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'bob_m'), 0::bigint, 'bob trained nothing');

-- ---------------------------------------------------------------------
-- drop_model
-- ---------------------------------------------------------------------
SELECT is(drop_model('v'), 4::bigint, 'drop_model returns the number of versions');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'v')
          + (SELECT count(*) FROM it_user_factors WHERE model = 'v')
          + (SELECT count(*) FROM it_item_factors WHERE model = 'v'), 0::bigint, 'and leaves no row of the model');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'o'), 30::bigint, 'other models are untouched');

SELECT * FROM finish();
ROLLBACK;

-- Training the features -> interest models with a model version: the
-- it_prior rows (spec, dims, parameters, layout, typed serving values,
-- metrics), the check
-- against popularity on held-out trained users and its fallback with pure
-- noise for features, new items from item_features, the options, and
-- that a failed, cancelled or rolled-back train leaves nothing behind.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 2000, items => 400, per_user => 20, groups => 8, seed => 0.42);
SELECT * FROM it_demo.split(test_fraction => 0.2, cold_user_fraction => 0.1, cold_item_fraction => 0.05);
SET client_min_messages = warning;
-- the features priors, one row per side
CREATE TEMP VIEW feature_priors AS
SELECT model, version, replace(kind, '_features', '') AS side, spec, dims, params, layout, metrics, in_use
  FROM it_prior WHERE kind IN ('user_features', 'item_features');

-- informative features on both sides
SELECT * FROM train('trn', 'it_demo.train_events', 'it_demo.users', 'it_demo.items',
                    '{"factors": 16, "iterations": 8, "seed": 7}');
-- pure noise for user features: random but deterministic numbers
SELECT * FROM train('trn_noise', 'it_demo.train_events',
                    'SELECT user_id, (hashint8(user_id) % 1000)::int AS noise FROM it_demo.users', NULL,
                    '{"factors": 16, "iterations": 8, "seed": 7}');
-- items only, new items off, a linear model
SELECT * FROM train('trn_off', 'it_demo.train_events', NULL, 'it_demo.items',
                    '{"factors": 16, "iterations": 8, "seed": 7, "new_items": false, "prior_hidden": 0}');
-- too few trained users with features
SELECT * FROM train('trn_few', 'it_demo.train_events', 'SELECT * FROM it_demo.users WHERE user_id <= 12', NULL,
                    '{"factors": 16, "iterations": 8, "seed": 7}');
-- no interaction weighs enough to count as a positive
SELECT * FROM train('trn_weight', 'it_demo.train_events', 'it_demo.users', NULL,
                    '{"factors": 16, "iterations": 8, "seed": 7, "prior_min_weight": 1000}');
-- no features at all
SELECT * FROM train('trn_plain', 'it_demo.train_events', options => '{"factors": 16, "iterations": 8, "seed": 7}');

-- what the encoder makes of the sources, fitted on its own
CREATE TEMP TABLE enc_dims AS
SELECT 'user'::text AS side, (SELECT cardinality(vec) FROM it_encode_features('it_demo.users', 'user_id') LIMIT 1) AS dims
UNION ALL
SELECT 'item', (SELECT cardinality(vec) FROM it_encode_features('it_demo.items', 'item_id') LIMIT 1);

-- SQLSTATE and hint of a failing statement
CREATE FUNCTION pg_temp.hint_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
BEGIN
    EXECUTE q;
    RETURN NULL;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
    RETURN h;
END $$;

-- trains, counts the rows it wrote, then rolls the train back (a
-- subtransaction, as a ROLLBACK would)
CREATE FUNCTION pg_temp.train_rolled_back(OUT encoders bigint, OUT new_items bigint) LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        SET LOCAL client_min_messages = warning;
        PERFORM * FROM train('trn_rb', 'it_demo.train_events', 'it_demo.users', 'it_demo.items',
                             '{"factors": 8, "iterations": 3, "seed": 7}');
        SELECT count(*) INTO encoders FROM feature_priors WHERE model = 'trn_rb';
        SELECT count(*) INTO new_items FROM it_item_factors WHERE model = 'trn_rb' AND source = 'features';
        RAISE EXCEPTION 'roll back';
    EXCEPTION WHEN raise_exception THEN
        RETURN;
    END;
END $$;

-- runs q; returns how it ended and how long it took
CREATE FUNCTION pg_temp.timed(q text, OUT outcome text, OUT seconds float8) LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    BEGIN
        SET LOCAL client_min_messages = warning;
        EXECUTE q;
        outcome := 'finished';
    EXCEPTION WHEN query_canceled THEN
        outcome := SQLSTATE;
    END;
    seconds := extract(epoch FROM clock_timestamp() - t0);
END $$;
\o

SELECT plan(68);

-- the encoder rows of informative features
SELECT results_eq($$SELECT side FROM feature_priors WHERE model = 'trn' ORDER BY side$$,
                  $$VALUES ('item'::text), ('user')$$, 'one features prior row per side given');
SELECT results_eq($$SELECT e.side, e.dims FROM feature_priors e WHERE model = 'trn' ORDER BY side$$,
                  $$SELECT side, dims FROM enc_dims ORDER BY side$$,
                  'dims: the floats of an encoded row, as it_encode_features encodes the source');
SELECT results_eq($$SELECT side, layout FROM feature_priors WHERE model = 'trn' ORDER BY side$$,
                  $$SELECT side, jsonb_build_object('input', dims, 'hidden', jsonb_build_array(64), 'output', 16)
                      FROM enc_dims ORDER BY side$$,
                  'layout: features in, one hidden layer of 64 (the default), the 16 factors out');
SELECT results_eq($$SELECT side, cardinality(params) FROM feature_priors WHERE model = 'trn' ORDER BY side$$,
                  $$SELECT side, dims * 64 + 64 + 64 * 16 + 16 FROM enc_dims ORDER BY side$$,
                  'params: the weights and biases of both layers');
SELECT is((SELECT count(*) FROM feature_priors, unnest(params) p
            WHERE model = 'trn' AND NOT (p > '-Infinity'::real AND p < 'Infinity'::real)),
          0::bigint, 'every parameter is a finite number');
SELECT is((SELECT spec->>'id_column' FROM it_prior WHERE model = 'trn' AND kind = 'user_features'), 'user_id',
          'the spec is the encoder''s, with its id column');
SELECT is((SELECT (metrics->>'use_features')::boolean FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          true, 'informative user features beat popularity: use_features');
SELECT cmp_ok((SELECT (metrics->>'precision')::float8 FROM it_prior WHERE model = 'trn' AND kind = 'user_features'), '>=',
              (SELECT 1.5 * (metrics->>'baseline_precision')::float8 FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
              'their validation precision@10 is at least 1.5x that of popularity');
SELECT ok((SELECT (metrics->>'popularity_blend')::float8 >= 0
                  AND (metrics->>'prior_variance')::float8 > 0
                  AND (metrics->>'evaluated_rows')::int > 100
                  AND (metrics->>'epochs_run')::int BETWEEN 1 AND 200
                  AND jsonb_array_length(metrics->'history') = (metrics->>'epochs_run')::int
             FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          'metrics: popularity_blend >= 0, prior_variance, rows evaluated, one history entry per epoch');
SELECT is((SELECT count(*) FROM it_prior
            WHERE model = 'trn' AND kind IN ('user_features', 'item_features')
              AND metrics->>'stopped' IN ('epochs', 'patience', 'converged')
              AND (metrics->>'stopped' <> 'epochs' OR metrics->>'epochs_run' = metrics->>'epochs_allowed')
              AND (metrics->>'stopped' <> 'converged' OR (metrics->>'epochs_allowed')::int < 200)),
          2::bigint, 'each side says why its fit ended; only a fit the work budget capped stops on convergence');
SELECT matches((SELECT metrics->'notices'->>0 FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
               '^user features model: precision@10 0\.[0-9]+ on [0-9]+ validation users, popularity 0\.[0-9]+',
               'the NOTICE about the user model is kept in its metrics');
SELECT is((SELECT (metrics->>'use_features')::boolean FROM it_prior WHERE model = 'trn' AND kind = 'item_features'),
          true, 'informative item features beat user activity: use_features');
SELECT ok((SELECT metrics->'user_prior'->>'use_features' = 'true'
                  AND metrics->'item_prior'->>'use_features' = 'true'
                  AND (metrics->'user_prior'->>'popularity_blend')::float8 >= 0
             FROM it_model WHERE model = 'trn'),
          'a summary of both in it_model.metrics');
SELECT ok((SELECT options @> '{"prior_hidden": 64, "prior_epochs": 200, "prior_learning_rate": 0.001,
                               "prior_weight_decay": 3, "prior_batch": 64, "prior_patience": 20,
                               "prior_validation": 0.2, "positive_threshold": 0, "prior_budget": 1,
                               "prior_vector_weight": 0, "new_items": true, "max_categories": 32,
                               "min_category_count": 2}'
             FROM it_model WHERE model = 'trn'),
          'the options of the features models are stored with their defaults');

-- a validation slice under 1000 rows: the gate pools cross-fitted slices
SELECT is((SELECT ARRAY[(metrics->>'validation_slices')::int, (metrics->>'gate_rows')::int]
             FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          (SELECT CASE WHEN v >= 1000 THEN ARRAY[1, v]
                       ELSE ARRAY[least(n / v, (999 + v) / v), least(n / v, (999 + v) / v) * v] END
             FROM (SELECT (metrics->>'validation_rows')::int AS v, (metrics->>'rows_used')::int AS n
                     FROM it_prior WHERE model = 'trn' AND kind = 'user_features') x),
          'the features gate pools enough cross-fitted slices for 1000 rows, or all there are');
SELECT is((SELECT (metrics->>'gate_rows')::int > (metrics->>'validation_rows')::int
             FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'),
          true, 'and pure-noise features, checked on the pooled slices, are still refused (below)');

-- the fold-in weight and popularity blend of each prior, chosen by simulation on trained users
SELECT ok((SELECT (metrics->>'fold_in_prior_weight')::float8 > 0
                  AND (metrics->>'fold_in_prior_weight')::float8 < 'Infinity'::float8
                  AND (metrics->>'fold_in_popularity_blend')::float8 >= 0
                  AND (metrics->>'fold_in_users')::int >= 30
                  AND jsonb_array_length(metrics->'fold_in_grid') = 60
                  AND (SELECT count(DISTINCT g->'prior_weight') FROM jsonb_array_elements(metrics->'fold_in_grid') g) = 10
             FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          'features prior: a positive, finite fold_in_prior_weight and a blend, chosen on validation users over 10 weights x 6 blends');
-- a grid entry is (weight, blend); entries in order: by blend, then by weight
CREATE TEMP VIEW trn_grid AS
SELECT e.model, e.kind, g.n, (g.e->>'prior_weight')::float8 AS w, (g.e->>'popularity_blend')::float8 AS b,
       (g.e->>'precision')::float8 AS p,
       g.e->'prior_weight' = e.metrics->'fold_in_prior_weight'
         AND g.e->'popularity_blend' = e.metrics->'fold_in_popularity_blend' AS chosen,
       g.e->'prior_weight' = e.metrics->'fold_in_best_weight'
         AND g.e->'popularity_blend' = e.metrics->'fold_in_best_popularity_blend' AS best,
       (e.metrics->>'fold_in_tolerance')::float8 AS tolerance
  FROM it_prior e, jsonb_array_elements(e.metrics->'fold_in_grid') WITH ORDINALITY g(e, n);
SELECT is((SELECT count(*) FROM trn_grid WHERE model = 'trn' AND kind = 'user_features' AND chosen),
          1::bigint, 'it is one of the grid''s entries');
SELECT is((SELECT bool_and(b1 <= b2 AND (b1 < b2 OR w1 < w2))
             FROM (SELECT w AS w1, b AS b1, lead(w) OVER (ORDER BY n) AS w2, lead(b) OVER (ORDER BY n) AS b2
                     FROM trn_grid WHERE model = 'trn' AND kind = 'user_features') x WHERE w2 IS NOT NULL),
          true, 'the entries go by blend, then by weight');
-- the one-standard-error rule: the last entry within fold_in_tolerance of the best
SELECT is((SELECT bool_and(c.p >= b.p - c.tolerance AND c.n >= b.n)
             FROM trn_grid c, trn_grid b
            WHERE c.model = 'trn' AND c.kind = 'user_features' AND c.chosen
              AND b.model = 'trn' AND b.kind = 'user_features' AND b.best),
          true, 'and its precision is within one standard error of the grid''s best, no earlier in the grid');
SELECT is((SELECT count(*) FROM trn_grid g, trn_grid c, trn_grid b
            WHERE g.model = 'trn' AND g.kind = 'user_features'
              AND c.model = 'trn' AND c.kind = 'user_features' AND c.chosen
              AND b.model = 'trn' AND b.kind = 'user_features' AND b.best
              AND g.n > c.n AND g.p >= b.p - b.tolerance),
          0::bigint, 'no later entry (more popularity, or the same with a stronger weight) is within it');
SELECT ok((SELECT (metrics->>'fold_in_prior_weight')::float8 > 0
                  AND (metrics->>'fold_in_prior_weight')::float8 < 'Infinity'::float8
                  AND EXISTS (SELECT 1 FROM jsonb_array_elements(metrics->'fold_in_grid') g
                               WHERE g->'prior_weight' = metrics->'fold_in_prior_weight')
                  AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(metrics->'fold_in_grid') c,
                                                jsonb_array_elements(metrics->'fold_in_grid') g
                                   WHERE c->'prior_weight' = metrics->'fold_in_prior_weight'
                                     AND c->'popularity_blend' = metrics->'fold_in_popularity_blend'
                                     AND (g->>'precision')::float8 > (c->>'precision')::float8
                                                                     + (metrics->>'fold_in_tolerance')::float8)
             FROM it_model WHERE model = 'trn_plain'),
          'population prior, without features: it_model.metrics has a weight within one standard error of its grid''s best');
SELECT ok((SELECT (metrics->>'fold_in_prior_weight')::float8 > 0 FROM it_model WHERE model = 'trn'),
          'with features, too');
SELECT is((SELECT metrics ? 'fold_in_prior_weight' FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'),
          false, 'no weight for a features prior that is not used');

-- what serving reads: typed columns, the same numbers as the metrics report
SELECT results_eq($$SELECT kind, in_use, fold_in_weight IS NOT NULL FROM it_prior WHERE model = 'trn' ORDER BY kind$$,
                  $$VALUES ('item_features'::text, true, false), ('population', true, true), ('user_features', true, true)$$,
                  'it_prior: a features row per side and the population row, each in use, with fold-in weights');
SELECT is((SELECT fold_in_weight FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          (SELECT (metrics->>'fold_in_prior_weight')::float8 FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
          'the features prior''s typed fold-in weight is the one its metrics report');
SELECT is((SELECT fold_in_weight FROM it_prior WHERE model = 'trn_plain' AND kind = 'population'),
          (SELECT (metrics->>'fold_in_prior_weight')::float8 FROM it_model WHERE model = 'trn_plain'),
          'the population prior''s typed fold-in weight is the one it_model.metrics reports');
SELECT results_eq($$SELECT in_use, fold_in_weight, popularity_blend FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'$$,
                  $$SELECT false, NULL::float8, ((metrics->>'popularity_blend')::real) FROM it_prior
                     WHERE model = 'trn_noise' AND kind = 'user_features'$$,
                  'a features prior that lost to popularity: not in use, no weight');

-- new items
SELECT set_eq($$SELECT item_id FROM it_item_factors WHERE model = 'trn' AND source = 'features'$$,
              $$SELECT item_id FROM it_demo.items EXCEPT SELECT item_id FROM it_demo.train_events$$,
              'items only in item_features get factor rows with source ''features''');
SELECT cmp_ok((SELECT count(*) FROM it_item_factors WHERE model = 'trn' AND source = 'features'), '>=', 10::bigint,
              'there are new items to test');
SELECT is((SELECT count(*) FROM it_item_factors
            WHERE model = 'trn' AND source = 'features'
              AND (popularity <> 0 OR cardinality(factors) <> 16
                   OR EXISTS (SELECT 1 FROM unnest(factors) f WHERE NOT (f > '-Infinity'::real AND f < 'Infinity'::real)))),
          0::bigint, 'their rows: popularity 0, 16 finite factors');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'trn' AND source = 'model'),
          (SELECT count(DISTINCT item_id) FROM it_demo.train_events), 'trained items keep source ''model''');
SELECT is((SELECT (metrics->'item_prior'->>'new_items')::bigint FROM it_model WHERE model = 'trn'),
          (SELECT count(*) FROM it_item_factors WHERE model = 'trn' AND source = 'features'),
          'their number is in the metrics');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'trn_off' AND source = 'features'), 0::bigint,
          'with new_items off, none');
SELECT matches((SELECT metrics->'notices'->>1 FROM it_prior WHERE model = 'trn_off' AND kind = 'item_features'),
               '^[0-9]+ items of item_features are not in the interactions and get no vector: option new_items is off$',
               'and a NOTICE says why');
SELECT results_eq($$SELECT layout, cardinality(params) FROM feature_priors WHERE model = 'trn_off'$$,
                  $$SELECT jsonb_build_object('input', dims, 'hidden', '[]'::jsonb, 'output', 16), dims * 16 + 16
                      FROM enc_dims WHERE side = 'item'$$,
                  'prior_hidden 0: a linear model');
SELECT is((SELECT count(*) FROM it_prior WHERE model = 'trn_off' AND kind = 'user_features'), 0::bigint,
          'no row for a side without features');

-- the fallback
SELECT results_eq($$SELECT (metrics->>'use_features')::boolean, (metrics->>'popularity_blend')::float8
                      FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'$$,
                  $$VALUES (false, 0::float8)$$,
                  'noise for features: use_features false, no blend');
SELECT matches((SELECT metrics->'notices'->>0 FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'),
               '^user features did not beat (popularity|the same model without features) on [0-9]+ validation users \(.*\); new users will get popular items$',
               'and the NOTICE says so');
SELECT is((SELECT metrics->'user_prior'->>'use_features' FROM it_model WHERE model = 'trn_noise'), 'false',
          'the summary too');
SELECT cmp_ok((SELECT (metrics->>'loss_z')::float8 FROM it_prior WHERE model = 'trn_noise' AND kind = 'user_features'), '<',
              (SELECT (metrics->>'loss_z')::float8 / 4 FROM it_prior WHERE model = 'trn' AND kind = 'user_features'),
              'noise improves the validation loss far less than informative features');
SELECT results_eq($$SELECT params IS NULL, layout IS NULL, (metrics->>'use_features')::boolean
                      FROM feature_priors WHERE model = 'trn_few'$$,
                  $$VALUES (true, true, false)$$,
                  'too few trained users with features: no model, use_features false');
SELECT matches((SELECT metrics->'notices'->>0 FROM feature_priors WHERE model = 'trn_few'),
               '^only [0-9]+ trained users have a row in user_features; at least 20 are needed',
               'and a NOTICE says so');
SELECT results_eq($$SELECT (metrics->>'use_features')::boolean, (metrics->>'evaluated_rows')::int
                      FROM feature_priors WHERE model = 'trn_weight'$$,
                  $$VALUES (false, 0)$$,
                  'no positive reaches positive_threshold (given by its old name prior_min_weight): nothing to check, use_features false');
SELECT matches((SELECT metrics->'notices'->>0 FROM feature_priors WHERE model = 'trn_weight'),
               '^user features could not be checked: none of the [0-9]+ validation users has a positive',
               'and a NOTICE says so');
SELECT is((SELECT count(*) FROM feature_priors WHERE model = 'trn_plain'), 0::bigint, 'no features, no encoder rows');

-- where the priors' time went: each side's fit and check inside the priors
-- phase, every fold-in weight choice (the population's and the user
-- features prior's) in the fold_in_weight phase
SELECT ok((SELECT bool_and((f.metrics->>'seconds')::float8 > 0 AND (f.metrics->>'check_seconds')::float8 > 0)
                  AND (m.metrics->'phases'->>'priors')::float8 + 0.001 >=
                      sum((f.metrics->>'seconds')::float8 + (f.metrics->>'check_seconds')::float8)
             FROM feature_priors f JOIN it_model m USING (model, version)
            WHERE f.model = 'trn' AND f.version = 1
            GROUP BY m.metrics),
          'each prior keeps its fit and check seconds, and the priors phase holds them');
SELECT ok((SELECT (m.metrics->'phases'->>'fold_in_weight')::float8 + 0.001 >=
                  (f.metrics->>'fold_in_seconds')::float8 + (m.metrics->>'fold_in_seconds')::float8
                  AND (f.metrics->>'fold_in_seconds')::float8 > 0
             FROM feature_priors f JOIN it_model m USING (model, version)
            WHERE f.model = 'trn' AND f.version = 1 AND f.side = 'user'),
          'the fold_in_weight phase holds the user features prior''s fold-in weight choice and the population''s');

-- the same data, options and seed: the same models (train(model) retrains
-- with the stored definition)
SELECT is((SELECT version FROM train('trn')), 2, 'train(model) retrains');
SELECT is((SELECT count(*) FROM feature_priors a JOIN feature_priors b USING (model, side)
            WHERE a.model = 'trn' AND a.version = 1 AND b.version = 2
              AND a.params = b.params AND a.spec = b.spec AND a.metrics->'precision' = b.metrics->'precision'),
          2::bigint, 'with identical features models');

-- nothing left behind
SELECT results_eq($$SELECT * FROM pg_temp.train_rolled_back()$$, $$VALUES (2::bigint, 21::bigint)$$,
                  'inside the transaction: the encoder rows and new items are there');
SELECT is((SELECT count(*) FROM feature_priors WHERE model = 'trn_rb')
          + (SELECT count(*) FROM it_model WHERE model = 'trn_rb')
          + (SELECT count(*) FROM it_item_factors WHERE model = 'trn_rb'),
          0::bigint, 'rolled back: no encoder row, no model, no new item');
SELECT throws_ok($$SELECT * FROM train('trn_bad', 'it_demo.train_events',
                                       'SELECT user_id, point(age, 1) AS p FROM it_demo.users')$$,
                 '42804', NULL, 'a feature column of an unsupported type is an error');
SELECT isnt(pg_temp.hint_of($$SELECT * FROM train('trn_bad', 'it_demo.train_events',
                                                  'SELECT user_id, point(age, 1) AS p FROM it_demo.users')$$),
            NULL, 'with a hint');
SELECT throws_ok($$SELECT * FROM train('trn_bad', 'it_demo.train_events', NULL,
                                       'SELECT item_id, category FROM it_demo.items UNION ALL SELECT 1, ''x''')$$,
                 '23505', NULL, 'an item in item_features twice is an error');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'trn_bad')
          + (SELECT count(*) FROM feature_priors WHERE model = 'trn_bad'), 0::bigint,
          'and they leave no model');

-- cancelled while the features model trains: ALS alone takes a fraction
-- of the timeout; the features model would take minutes.  Every row
-- written for model trn_cut is counted by a sequence, which the rollback
-- of the cancelled statement does not undo.
CREATE SEQUENCE public.it_t_trn_cut_rows;
GRANT USAGE ON SEQUENCE public.it_t_trn_cut_rows TO PUBLIC;
CREATE FUNCTION public.it_t_count_trn_cut_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_catalog.nextval('public.it_t_trn_cut_rows');
    RETURN NULL;
END $$;
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_model
  FOR EACH ROW WHEN (NEW.model = 'trn_cut') EXECUTE FUNCTION public.it_t_count_trn_cut_row();
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_prior
  FOR EACH ROW WHEN (NEW.model = 'trn_cut') EXECUTE FUNCTION public.it_t_count_trn_cut_row();
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_user_factors
  FOR EACH ROW WHEN (NEW.model = 'trn_cut') EXECUTE FUNCTION public.it_t_count_trn_cut_row();
CREATE TRIGGER it_t_count AFTER INSERT OR UPDATE ON it_item_factors
  FOR EACH ROW WHEN (NEW.model = 'trn_cut') EXECUTE FUNCTION public.it_t_count_trn_cut_row();
CREATE TEMP TABLE als_only AS
SELECT * FROM pg_temp.timed($$SELECT * FROM train('trn_als', 'it_demo.train_events',
                                                  options => '{"factors": 16, "iterations": 8}')$$);
DO $$
BEGIN
    PERFORM set_config('statement_timeout', greatest(1000, (seconds * 4000)::int + 300)::text, true) FROM als_only;
END $$;
CREATE TEMP TABLE cancelled AS
SELECT * FROM pg_temp.timed($$SELECT * FROM train('trn_cut', 'it_demo.train_events', 'it_demo.users', NULL,
                                                  '{"factors": 16, "iterations": 8, "prior_epochs": 10000,
                                                    "prior_patience": 0, "prior_budget": 1000}')$$);
SET LOCAL statement_timeout = 0;
SELECT is((SELECT outcome FROM cancelled), '57014', 'a train cancelled while its features model trains');
SELECT cmp_ok((SELECT seconds FROM cancelled), '<',
              (SELECT greatest(1000, (seconds * 4000)::int + 300) / 1000.0 + 2 FROM als_only)::float8,
              'stops within moments of the cancel');
SELECT is((SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.it_t_trn_cut_rows), 0::bigint,
          'and wrote no row, not even one rolled back with the cancelled statement');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'trn_cut')
          + (SELECT count(*) FROM feature_priors WHERE model = 'trn_cut'), 0::bigint,
          'the transaction that goes on sees no row of the model');

-- options
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_hidden": -1}')$$,
                 '22023', 'option "prior_hidden" must be an integer from 0 to 4096, not -1', 'prior_hidden < 0');
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_epochs": 0}')$$,
                 '22023', 'option "prior_epochs" must be an integer from 1 to 10000, not 0', 'prior_epochs 0');
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_learning_rate": 0}')$$,
                 '22023', 'option "prior_learning_rate" must be a number from 1e-09 to 1, not 0', 'prior_learning_rate 0');
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events',
                                       options => '{"prior_learning_rate": 0.5, "prior_weight_decay": 2}')$$,
                 '22023', 'option "prior_learning_rate" times option "prior_weight_decay" must be less than 1, not 1',
                 'a learning rate times weight decay of 1 or more');
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_validation": 0.6}')$$,
                 '22023', 'option "prior_validation" must be a number from 0.05 to 0.5, not 0.6', 'prior_validation too large');
SELECT throws_ok($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"new_items": "yes"}')$$,
                 '22023', 'option "new_items" must be true or false, not "yes"', 'new_items not a boolean');
SELECT ok((SELECT bool_and(h IS NOT NULL)
             FROM unnest(ARRAY[
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_weight_decay": -1}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_batch": 0}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_patience": 1001}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_min_weight": -1}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_budget": 0}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_vector_weight": 1.5}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"max_categories": 10001}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"min_category_count": 0}')$$),
                    pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_hidden": 2.5}')$$)]) h),
          'every other out-of-range option is an error with a hint');
SELECT matches(pg_temp.hint_of($$SELECT * FROM train('trn_opt', 'it_demo.train_events', options => '{"prior_hiden": 8}')$$),
               '\mpositive_threshold\M.*\mprior_hidden\M.*\mnew_items\M.*\mmax_categories\M',
               'an unknown option lists the options of the features models among the valid ones');

SELECT * FROM finish();
ROLLBACK;

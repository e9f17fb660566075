-- import_model(): factors trained elsewhere become a version like any other.
-- A model trained here is exported in the shape Spark writes
-- (id, features) and imported as another model with the same
-- interactions: it must serve what the source serves (top-k, scores,
-- fold-in, evaluate), train the priors as train() does, deploy by its
-- option, and refuse bad factors, retraining and other roles' models.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\ir lib/as_role.psql
\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 2000, items => 400, per_user => 20, groups => 8, seed => 0.42);
SELECT * FROM it_demo.split(test_fraction => 0.2, cold_user_fraction => 0.1, cold_item_fraction => 0.05);
SET client_min_messages = warning;

-- the source model, trained here on the warm users' training events
CREATE TABLE it_i_ev AS SELECT user_id, item_id, weight, ts FROM it_demo.train_events;
SELECT * FROM train('src', 'it_i_ev', options => '{"factors": 16, "iterations": 8, "seed": 7}');
-- the same fit with the features and links priors
SELECT * FROM train('srcf', 'it_i_ev', 'it_demo.users', 'it_demo.items',
                    '{"factors": 16, "iterations": 8, "seed": 7}', 'it_demo.links');
-- the training events as they were (for a model trained later on the same data)
CREATE TABLE it_i_ev0 AS SELECT * FROM it_i_ev;
-- then the cold users' events arrive: both models fold them in from it_i_ev
INSERT INTO it_i_ev SELECT e.user_id, e.item_id, e.weight, e.ts
  FROM it_demo.events e JOIN it_demo.cold_users c USING (user_id);

-- exported as Spark writes userFactors / itemFactors: id, features
CREATE TABLE it_i_uf AS
SELECT user_id AS id, factors AS features FROM it_user_factors
 WHERE model = 'src' AND context = '' AND source = 'model';
CREATE TABLE it_i_if AS
SELECT item_id AS id, factors AS features FROM it_item_factors WHERE model = 'src' AND source = 'model';
-- double precision, int ids, in another order
CREATE TABLE it_i_uf8 AS SELECT id::int AS id, features::float8[] AS features FROM it_i_uf ORDER BY hashint8(id);
CREATE TABLE it_i_if8 AS SELECT id::int AS id, features::float8[] AS features FROM it_i_if ORDER BY id DESC;
-- the warm users 1 to 40 left out of the factors
CREATE TABLE it_i_uf_part AS SELECT * FROM it_i_uf WHERE id > 40;

CREATE TEMP TABLE imp_result AS
SELECT * FROM import_model('imp', 'it_i_uf', 'it_i_if', '{"interactions": "it_i_ev", "iterations": 8, "seed": 7}');
SELECT * FROM import_model('imp8', 'it_i_uf8', 'it_i_if8', '{"interactions": "it_i_ev", "iterations": 8, "seed": 7}');
SELECT * FROM import_model('imp_part', 'it_i_uf_part', 'it_i_if', '{"interactions": "it_i_ev", "iterations": 8, "seed": 7}');
SELECT * FROM import_model('imp0', 'it_i_uf', 'it_i_if');
SELECT * FROM import_model('impf', 'it_i_uf', 'it_i_if',
                           '{"interactions": "it_i_ev", "user_features": "it_demo.users",
                             "item_features": "it_demo.items", "user_links": "it_demo.links", "iterations": 8, "seed": 7}');
-- a few warm users and a few cold users (rows in it_i_ev, no factors)
CREATE TEMP TABLE warm AS SELECT id AS user_id FROM it_i_uf WHERE id > 40 ORDER BY id LIMIT 6;
CREATE TEMP TABLE cold AS SELECT user_id FROM it_demo.cold_users ORDER BY user_id LIMIT 6;

-- top-10 of model m for the users of table t, by rank
CREATE FUNCTION pg_temp.top(m text, t text) RETURNS TABLE (user_id bigint, rank int, item_id bigint, score real, source text)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format('SELECT u.user_id, r.rank, r.item_id, r.score, r.source FROM %I u, recommend(u.user_id, 10, %L) r', t, m);
END $$;
-- the same rankings: at each rank the same item, unless the two items' scores tie within 1e-5; scores within 1e-5
CREATE FUNCTION pg_temp.same_top(a text, b text, t text) RETURNS boolean LANGUAGE sql AS $$
    SELECT count(*) = (SELECT 10 * count(*) FROM pg_temp.top(a, t) x WHERE x.rank = 1)
       AND bool_and((x.item_id = y.item_id OR abs(x.score - y.score) < 1e-5) AND abs(x.score - y.score) < 1e-5)
      FROM pg_temp.top(a, t) x JOIN pg_temp.top(b, t) y USING (user_id, rank)
$$;
\o

SELECT plan(79);

-- ---------------------------------------------------------------------
-- what import_model() returns and writes
-- ---------------------------------------------------------------------
SELECT results_eq($$SELECT model, version, users, items, interactions FROM imp_result$$,
                  $$SELECT 'imp'::text, 1, m.users, m.items, m.interactions FROM it_model m WHERE model = 'src'$$,
                  'import_model returns the model, version 1 and the sizes of the source model');
SELECT ok((SELECT loss > 0 AND loss < 'Infinity' AND seconds >= 0 FROM imp_result), 'loss and seconds are set');
SELECT is((SELECT loss FROM it_model WHERE model = 'imp'), (SELECT loss FROM it_model WHERE model = 'src'),
          'the loss is the objective of the imported factors on the interactions: the source''s last loss');
SELECT results_eq($$SELECT algorithm, factors, interactions_source, deployed, history FROM it_model WHERE model = 'imp'$$,
                  $$VALUES ('imported'::text, 16, 'it_i_ev'::text, true, '[]'::jsonb)$$,
                  'an imported version: algorithm imported, the factors'' length, its interactions source, deployed');
SELECT results_eq($$SELECT metrics->'imported'->>'user_factors', metrics->'imported'->>'item_factors',
                           (metrics->'imported'->>'users')::bigint, (metrics->'imported'->>'items')::bigint,
                           (metrics->'imported'->>'users_without_factors')::bigint,
                           (metrics->'imported'->>'items_without_factors')::bigint
                      FROM it_model WHERE model = 'imp'$$,
                  $$SELECT 'it_i_uf', 'it_i_if', (SELECT count(*) FROM it_i_uf), (SELECT count(*) FROM it_i_if),
                           (SELECT count(*) FROM it_demo.cold_users),
                           (SELECT count(DISTINCT item_id) FROM it_i_ev WHERE item_id NOT IN (SELECT id FROM it_i_if))$$,
                  'metrics say it was imported, from where, and which users and items of the interactions have no factors');
SELECT is((SELECT options - 'timezone' FROM it_model WHERE model = 'imp'),
          (SELECT options - 'timezone' FROM it_model WHERE model = 'src'),
          'it stores the options train() stored for the same fit (regularization auto worked out alike)');
SELECT results_eq($$SELECT user_id, seen FROM it_user_factors WHERE model = 'imp' ORDER BY user_id$$,
                  $$SELECT user_id, seen FROM it_user_factors WHERE model = 'src' ORDER BY user_id$$,
                  'the users'' seen lists come from the interactions');
SELECT results_eq($$SELECT item_id, popularity FROM it_item_factors WHERE model = 'imp' ORDER BY item_id$$,
                  $$SELECT item_id, popularity FROM it_item_factors WHERE model = 'src' ORDER BY item_id$$,
                  'and the items'' popularity');
SELECT is((SELECT user_mean FROM it_model WHERE model = 'imp'), (SELECT user_mean FROM it_model WHERE model = 'src'),
          'the population prior is the mean imported user');
SELECT results_eq($$SELECT kind, in_use, fold_in_weight, popularity_blend FROM it_prior WHERE model = 'imp'$$,
                  $$SELECT kind, in_use, fold_in_weight, popularity_blend FROM it_prior WHERE model = 'src'$$,
                  'its fold-in weight is fitted on the interactions as train() fits it');
SELECT ok((SELECT fold_in_weight > 0 FROM it_prior WHERE model = 'imp' AND kind = 'population'),
          'and measured');

-- ---------------------------------------------------------------------
-- serving: the same as the source model
-- ---------------------------------------------------------------------
SELECT ok(pg_temp.same_top('src', 'imp', 'warm'), 'warm users get the source model''s top-10');
SELECT ok(pg_temp.same_top('src', 'imp8', 'warm'), 'also from float8[] factors, int ids and rows in any order');
SELECT ok((SELECT bool_and(abs(score(w.user_id, i.id, 'imp') - score(w.user_id, i.id, 'src')) < 1e-6)
             FROM warm w, it_i_if i WHERE i.id % 7 = 0),
          'score() equals the source model''s');
SELECT ok((SELECT bool_and(source = 'model') FROM pg_temp.top('imp', 'warm')), 'served from their imported vectors');
SELECT is((SELECT count(*) FROM pg_temp.top('imp', 'warm') t JOIN it_i_ev e USING (user_id, item_id)), 0::bigint,
          'and never an item they have seen');
SELECT ok(pg_temp.same_top('src', 'imp', 'cold'),
          'users with interactions but no factors are folded in as the source model folds them in');
SELECT ok((SELECT bool_and(source = 'fold_in') FROM pg_temp.top('imp', 'cold')), 'from their rows (source fold_in)');
-- users left out of the import: folded in, close to what their trained vector gives
CREATE TEMP TABLE left_out AS SELECT id AS user_id FROM it_i_uf WHERE id <= 40 ORDER BY id LIMIT 10;
SELECT ok((SELECT bool_and(source = 'fold_in') FROM pg_temp.top('imp_part', 'left_out')),
          'a user whose factors were left out of the import is folded in');
SELECT cmp_ok((SELECT count(*) FROM pg_temp.top('src', 'left_out') s
                 JOIN pg_temp.top('imp_part', 'left_out') p USING (user_id, item_id))::numeric
              / (SELECT count(*) FROM pg_temp.top('src', 'left_out')), '>=', 0.6,
              'and gets most of the items their trained vector ranks first');
SELECT cmp_ok((SELECT count(*) FROM pg_temp.top('imp0', 'left_out') s
                 JOIN pg_temp.top('imp_part', 'left_out') p USING (user_id, item_id))::numeric
              / (SELECT count(*) FROM pg_temp.top('src', 'left_out')), '<',
              (SELECT count(*) FROM pg_temp.top('src', 'left_out') s
                 JOIN pg_temp.top('imp_part', 'left_out') p USING (user_id, item_id))::numeric
              / (SELECT count(*) FROM pg_temp.top('src', 'left_out')),
              'more than it shares with a ranking that ignores what they have seen');

-- evaluate on the held-out events: the same numbers
SELECT results_eq($$SELECT segment, users, round(precision_at_k::numeric, 9), round(recall_at_k::numeric, 9)
                      FROM evaluate('imp', 'it_demo.test_events')$$,
                  $$SELECT segment, users, round(precision_at_k::numeric, 9), round(recall_at_k::numeric, 9)
                      FROM evaluate('src', 'it_demo.test_events')$$,
                  'evaluate() gives the source model''s precision and recall, warm and cold');

-- refresh folds the cold users in and stores them, as it does for the source model
SELECT is(refresh('imp', (SELECT array_agg(user_id) FROM cold)), 6::bigint, 'refresh(model, users) folds in the cold users');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'imp' AND source = 'fold_in'), 6::bigint,
          'and stores their vectors');
SELECT is(refresh('src', (SELECT array_agg(user_id) FROM cold)), 6::bigint, 'so does refresh of the source model');
SELECT ok(pg_temp.same_top('src', 'imp', 'cold'), 'and the stored vectors serve alike');

-- ---------------------------------------------------------------------
-- without interactions
-- ---------------------------------------------------------------------
SELECT results_eq($$SELECT interactions_source IS NULL, interactions, (options->>'fold_in')::boolean,
                           metrics->'imported'->'interactions'
                      FROM it_model WHERE model = 'imp0'$$,
                  $$VALUES (true, 0::bigint, false, 'false'::jsonb)$$,
                  'without interactions: no source, no interactions, no fold-in');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'imp0' AND seen <> '{}'), 0::bigint, 'nothing seen');
SELECT is((SELECT max(popularity) FROM it_item_factors WHERE model = 'imp0'), 0::bigint, 'popularity 0');
SELECT is((SELECT fold_in_weight FROM it_prior WHERE model = 'imp0' AND kind = 'population'), NULL::float8,
          'the population prior''s fold-in weight is not measured (its formula serves)');
SELECT ok((SELECT bool_and(abs(score(w.user_id, i.id, 'imp0') - score(w.user_id, i.id, 'src')) < 1e-6)
             FROM warm w, it_i_if i WHERE i.id % 7 = 0),
          'scores are still the imported factors''');
SELECT ok((SELECT count(*) FROM pg_temp.top('imp0', 'warm') t JOIN it_i_ev e USING (user_id, item_id)) > 0,
          'but seen items are not left out');
SELECT ok((SELECT bool_and(source = 'popular' AND score = 0) FROM pg_temp.top('imp0', 'cold')),
          'and a user without factors gets the popular ranking, where every item scores 0');
SELECT throws_ok($$SELECT refresh('imp0')$$, '55000',
                 'version 1 of model "imp0" has no interactions source to refresh from',
                 'refresh() refuses a version without interactions');

-- ---------------------------------------------------------------------
-- the priors, trained on the imported factors as train() trains them
-- ---------------------------------------------------------------------
SELECT results_eq($$SELECT kind, in_use, round((metrics->>'precision')::numeric, 6) FROM it_prior
                     WHERE model = 'impf' ORDER BY kind$$,
                  $$SELECT kind, in_use, round((metrics->>'precision')::numeric, 6) FROM it_prior
                     WHERE model = 'srcf' ORDER BY kind$$,
                  'the features and links priors are the ones train() fits on the same factors');
SELECT is((SELECT array_agg(kind ORDER BY kind) FROM it_prior WHERE model = 'impf' AND in_use),
          ARRAY['item_features', 'population', 'social', 'user_features'],
          'and they are in use');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'impf' AND source = 'features'),
          (SELECT count(*) FROM it_demo.cold_items), 'items only in item_features get a vector from them');
-- a new user with features only: the features prior serves
INSERT INTO it_demo.users SELECT 3000001, age, gender, region, income, signup, embedding FROM it_demo.users WHERE user_id = 5;
CREATE TEMP TABLE newcomer AS SELECT 3000001::bigint AS user_id;
SELECT is((SELECT array_agg(DISTINCT source) FROM pg_temp.top('impf', 'newcomer')), ARRAY['features'],
          'a new user with features is served from the features prior');
SELECT ok(pg_temp.same_top('srcf', 'impf', 'newcomer'), 'as the model trained with it serves them');

-- contexts derived from ts: the same vectors as a model trained with them
SELECT * FROM train('srcc', 'it_i_ev0', options => '{"factors": 16, "iterations": 8, "seed": 7, "context": "weekpart", "timezone": "UTC"}') \g /dev/null
SELECT * FROM import_model('impc', 'it_i_uf', 'it_i_if',
                           '{"interactions": "it_i_ev0", "iterations": 8, "seed": 7, "context": "weekpart", "timezone": "UTC"}') \g /dev/null
SELECT results_eq($$SELECT contexts, context_weights, metrics->'contexts' FROM it_model WHERE model = 'impc'$$,
                  $$SELECT contexts, context_weights, metrics->'contexts' FROM it_model WHERE model = 'srcc'$$,
                  'option context: the contexts and their fold-in weights are chosen as train() chooses them');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'impc' AND context = 'weekend'),
          (SELECT count(*) FROM it_user_factors WHERE model = 'srcc' AND context = 'weekend'),
          'and the users get their weekend vectors');

-- ---------------------------------------------------------------------
-- versions, deploy, retrain
-- ---------------------------------------------------------------------
SELECT is((SELECT version FROM import_model('imp', 'it_i_uf', 'it_i_if', '{"interactions": "it_i_ev", "deploy": "never"}')), 2,
          'a second import is version 2');
SELECT is((SELECT version FROM models WHERE model = 'imp' AND deployed), 1, 'deploy never leaves version 1 deployed');
SELECT lives_ok($$SELECT deploy('imp', 2)$$, 'deploy() an imported version');
SELECT ok(pg_temp.same_top('src', 'imp', 'warm'), 'which serves');
SELECT throws_ok($$SELECT * FROM train('imp')$$, '55000',
                 'model "imp" holds imported factors, which train(model) cannot retrain',
                 'train(model) refuses an imported model');
SELECT is((SELECT version FROM train('imp', 'it_i_ev', options => '{"factors": 4, "iterations": 2}')), 3,
          'train() with interactions makes a version of ALS of it');

-- ---------------------------------------------------------------------
-- bad factors: every check, with its SQLSTATE
-- ---------------------------------------------------------------------
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT id FROM it_i_uf', 'it_i_if')$$, '42703',
                 'user_factors has no column named features', 'a missing column');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'SELECT id, features::text AS features FROM it_i_if')$$, '42804',
                 'column features of item_factors has type text', 'features of the wrong type');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT id::float8 AS id, features FROM it_i_uf', 'it_i_if')$$, '42804',
                 'column id of user_factors has type double precision', 'an id of the wrong type');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT NULL::bigint AS id, ''{1,2}''::real[] AS features', 'it_i_if')$$,
                 '22004', 'id is NULL in row 1 of user_factors', 'a NULL id');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'VALUES (1, ''{1,2}''::real[]), (2, NULL)', 'it_i_if')$$,
                 '42703', NULL, 'VALUES without the names');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT * FROM (VALUES (1, ''{1,2}''::real[]), (2, NULL)) v(id, features)', 'it_i_if')$$,
                 '22004', 'features of id 2 in user_factors is NULL', 'NULL features');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT * FROM (VALUES (1, ''{1,2}''::real[]), (2, ''{1,2,3}'')) v(id, features)', 'it_i_if')$$,
                 '22000', 'features of id 2 in user_factors has 3 values, and those of the rows before 2',
                 'arrays of different lengths within a side');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT id, features[1:8] AS features FROM it_i_uf', 'it_i_if')$$,
                 '22000', 'user_factors of model "bad" has 8 factors per row and item_factors 16',
                 'arrays of different lengths between the sides');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT 1 AS id, ''{}''::real[] AS features', 'it_i_if')$$,
                 '22000', 'features of id 1 in user_factors is empty', 'an empty array');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT 1 AS id, ''{{1,2},{3,4}}''::real[] AS features', 'it_i_if')$$,
                 '2202E', 'features of id 1 in user_factors is a 2-dimensional array', 'a multidimensional array');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT 1 AS id, ''{1,NULL,3}''::real[] AS features', 'it_i_if')$$,
                 '22004', 'features of id 1 in user_factors has a NULL (element 2)', 'a NULL element');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT 1 AS id, ''{1,NaN}''::real[] AS features', 'it_i_if')$$,
                 '22023', 'features of id 1 in user_factors has a value that is not a finite real (element 2 is NaN)', 'NaN');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'SELECT 5 AS id, ''{1,-Infinity}''::float8[] AS features')$$,
                 '22023', 'features of id 5 in item_factors has a value that is not a finite real (element 2 is -Infinity)', 'infinity');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'SELECT 5 AS id, ''{1,1e300}''::float8[] AS features')$$,
                 '22023', NULL, 'a double beyond the range of a real');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'SELECT * FROM it_i_if UNION ALL SELECT * FROM it_i_if WHERE id = 17')$$,
                 '23505', 'item_factors has more than one row for id 17', 'duplicate ids');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT * FROM it_i_uf WHERE false', 'it_i_if')$$,
                 '22000', 'user_factors of model "bad" has no rows', 'no rows on a side');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'SELECT 1 AS id, array_fill(0.1::real, ARRAY[1025]) AS features', 'it_i_if')$$,
                 '54000', 'features of id 1 in user_factors has 1025 values; a model holds at most 1024 factors',
                 'more factors than a model holds');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"factors": 8}')$$,
                 '22023', 'option "factors" is 8, and the imported factors have 16', 'an option factors that disagrees');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"deploy": "if_better"}')$$,
                 '22023', NULL, 'deploy if_better');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"user_features": "it_demo.users"}')$$,
                 '22023', 'option "user_features" trains the users'' features prior on the interactions, and option "interactions" is not given',
                 'features without interactions');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"interactions": 42}')$$,
                 '22023', NULL, 'a source option that is not a string');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"interactions": "SELECT user_id, item_id, ''books'' AS domain FROM it_i_ev"}')$$,
                 '0A000', NULL, 'interactions with a domain column');
SELECT throws_ok($$SELECT * FROM import_model('bad', 'it_i_uf', 'it_i_if', '{"interactions": "SELECT user_id, item_id + 100000 AS item_id FROM it_i_ev"}')$$,
                 '22000', NULL, 'interactions none of whose items has factors');
SELECT throws_ok($$SELECT * FROM import_model('bad', NULL, 'it_i_if')$$, '22004', 'user_factors must not be NULL', 'a NULL source');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'bad'), 0::bigint, 'a failed import leaves no model');

-- ---------------------------------------------------------------------
-- access: the model's owner only, as for train() with a new definition
-- ---------------------------------------------------------------------
CREATE ROLE it_i_alice;
CREATE ROLE it_i_bob;
GRANT SELECT ON it_i_uf, it_i_if, it_i_ev TO it_i_alice, it_i_bob;
SELECT is(pg_temp.as_role('it_i_alice', $$SELECT version FROM import_model('alice_m', 'it_i_uf', 'it_i_if')$$), '1',
          'a role imports a new model of its own');
SELECT is(pg_temp.as_role('it_i_bob', $$SELECT version FROM import_model('alice_m', 'it_i_uf', 'it_i_if')$$), '42501',
          'another role cannot import into it');
SELECT is(pg_temp.as_role('it_i_alice', $$SELECT grant_model('alice_m', 'it_i_bob', 'train')::text$$), '', 'alice lets bob train it');
SELECT is(pg_temp.as_role('it_i_bob', $$SELECT version FROM import_model('alice_m', 'it_i_uf', 'it_i_if', '{"interactions": "it_i_ev"}')$$), '42501',
          'nor may a trainer: the stored sources would serve with the owner''s rights');
SELECT is(pg_temp.as_role('it_i_bob', $$SELECT version FROM import_model('bob_m', 'it_i_uf', 'SELECT * FROM it_i_if')$$), '1',
          'bob imports a model of his own');
REVOKE SELECT ON it_i_if FROM it_i_bob;
SELECT is(pg_temp.as_role('it_i_bob', $$SELECT version FROM import_model('bob_m', 'it_i_uf', 'it_i_if')$$), '42501',
          'the factors are read with the caller''s privileges');

-- read-only: refused before any source is read
SET LOCAL TRANSACTION READ ONLY;
SELECT throws_ok($$SELECT * FROM import_model('imp', 'SELECT 1 / 0 AS id', 'it_i_if')$$, '25006',
                 'cannot import model "imp" in a read-only transaction',
                 'import_model in a read-only transaction fails before reading the factors');

SELECT * FROM finish();
ROLLBACK;

-- When a new version is deployed (the option deploy: always, never,
-- if_better), what train(model) retrains from after a rollback, and the
-- refusals that come before any work (read-only transactions).
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(26);

-- 400 users in 8 groups of 50; group g uses items 25 g + 1 .. 25 g + 25, each
-- user 12 of them (a few more often): enough users for a validation slice
CREATE TABLE it_d_ev AS
SELECT u AS user_id, 25 * (u % 8) + 1 + ((u * 7 + j * j) % 25) AS item_id, 1 + j % 3 AS weight
  FROM generate_series(1, 400) u, generate_series(0, 11) j;

CREATE FUNCTION pg_temp.deployed(m text) RETURNS int LANGUAGE sql AS
  $$SELECT version FROM models WHERE model = m AND deployed$$;

-- always (the default)
SELECT is((SELECT version FROM train('d', 'it_d_ev', options => '{"factors": 8, "iterations": 8}')), 1,
          'version 1');
SELECT is((SELECT deploy_decision FROM models WHERE model = 'd' AND version = 1),
          '{"rule": "always", "deployed": true}'::jsonb, 'deploy always: deployed, and recorded');

-- never
SELECT is((SELECT version FROM train('d', 'it_d_ev', options => '{"factors": 8, "iterations": 8, "deploy": "never"}')), 2,
          'version 2 with deploy never');
SELECT is(pg_temp.deployed('d'), 1, 'is stored but not deployed');
SELECT is((SELECT deploy_decision FROM models WHERE model = 'd' AND version = 2),
          '{"rule": "never", "deployed": false}'::jsonb, 'and the decision says so');

-- if_better against a clearly worse definition: kept out
SELECT is((SELECT version FROM train('d', 'it_d_ev',
                                     options => '{"factors": 1, "iterations": 1, "regularization": 1000, "deploy": "if_better"}')),
          3, 'version 3: a much worse definition, deploy if_better');
SELECT is(pg_temp.deployed('d'), 1, 'is not deployed');
SELECT ok((SELECT (deploy_decision->>'deployed')::boolean = false
              AND deploy_decision->>'rule' = 'if_better'
              AND (deploy_decision->>'compared_with')::int = 1
              AND (deploy_decision->>'validation_users')::int >= 100
              AND (deploy_decision->>'precision_at_10')::float8 < (deploy_decision->>'deployed_precision_at_10')::float8
             FROM models WHERE model = 'd' AND version = 3),
          'the decision records both held-out precisions, the new one lower');

-- if_better with a better definition: deployed
SELECT is((SELECT version FROM train('d', 'it_d_ev', options => '{"factors": 1, "iterations": 1, "regularization": 1000}')),
          4, 'version 4: the worse definition, deployed always');
SELECT is(pg_temp.deployed('d'), 4, 'is deployed');
SELECT is((SELECT version FROM train('d', 'it_d_ev', options => '{"factors": 8, "iterations": 8, "deploy": "if_better"}')),
          5, 'version 5: a better definition, deploy if_better');
SELECT is(pg_temp.deployed('d'), 5, 'wins and is deployed');
SELECT ok((SELECT (deploy_decision->>'precision_at_10')::float8 >= (deploy_decision->>'deployed_precision_at_10')::float8 + 0.05
             FROM models WHERE model = 'd' AND version = 5),
          'by a clear margin of held-out precision@10');
-- the same definition again: not worse, so deployed
SELECT is((SELECT version FROM train('d')), 6, 'train(model) with deploy if_better stored');
SELECT is(pg_temp.deployed('d'), 6, 'the same definition on the same data is not worse: deployed');
-- no deployed version to compare with
SELECT is((SELECT version FROM train('d2', 'it_d_ev', options => '{"factors": 4, "iterations": 4, "deploy": "if_better"}')),
          1, 'a new model with deploy if_better');
SELECT is((SELECT deploy_decision->>'reason' FROM models WHERE model = 'd2' AND deployed),
          'no version was deployed', 'is deployed: there was nothing to compare with');
SELECT throws_ok($$SELECT * FROM train('d', 'it_d_ev', options => '{"deploy": "sometimes"}')$$, '22023', NULL,
                 'an unknown deploy rule is an error');

-- train(model) after a rollback retrains the deployed version's definition
SELECT lives_ok($$SELECT deploy('d', 1)$$, 'roll back to version 1');
SELECT is((SELECT version FROM train('d')), 7, 'the nightly train(model)');
SELECT is((SELECT options FROM models WHERE model = 'd' AND version = 7),
          (SELECT options FROM models WHERE model = 'd' AND version = 1),
          'retrained with version 1''s definition, not the latest version''s');
SELECT is(pg_temp.deployed('d'), 7, 'and deployed as version 1''s rule says (always)');

-- refusals before any work: the source would fail if it were read
SET LOCAL TRANSACTION READ ONLY;
SELECT throws_ok($$SELECT * FROM train('d', 'SELECT 1 / 0 AS user_id, 1 AS item_id')$$, '25006',
                 'cannot train model "d" in a read-only transaction',
                 'train in a read-only transaction fails before reading the source');
SELECT throws_ok($$SELECT * FROM train('d')$$, '25006', NULL, 'so does train(model)');
SELECT throws_ok($$SELECT deploy('d', 2)$$, '25006', NULL, 'and deploy');
SELECT throws_ok($$SELECT refresh('d')$$, '25006', NULL, 'and refresh');

SELECT * FROM finish();
ROLLBACK;

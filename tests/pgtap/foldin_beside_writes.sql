-- The population prior's fold-in weight is chosen on a thread of its own
-- while the factor rows are written.  The choice is the one made when the
-- simulations run after the writes (as they do when a trigger on a factor
-- table runs user code in them), an error in the writes stops the thread
-- and raises the error, and nothing of the failed version is left.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1500, items => 300, per_user => 20, groups => 6, seed => 0.3);
\o
SET client_min_messages = warning;

SELECT plan(9);

CREATE TEMP VIEW fold AS
SELECT version, metrics->'fold_in_grid' AS grid, (metrics->>'fold_in_users')::int AS users,
       metrics->>'fold_in_prior_weight' AS weight, metrics->>'fold_in_popularity_blend' AS blend,
       (metrics->'phases'->>'fold_in_weight')::float8 AS seconds,
       (metrics->'phases'->>'write')::float8 AS write_seconds,
       (metrics->>'fold_in_beside_write')::bool AS beside
  FROM it_model WHERE model = 'fbw';

-- beside the writes
SELECT * FROM train('fbw', 'it_demo.events', options => '{"factors": 16, "iterations": 6, "seed": 3}');
SELECT ok((SELECT users >= 30 AND grid IS NOT NULL AND weight IS NOT NULL FROM fold WHERE version = 1),
          'the population fold-in weight was chosen by simulation');
SELECT ok((SELECT seconds > 0 AND write_seconds > 0 AND beside FROM fold WHERE version = 1),
          'its phase and the writing''s are kept, and it ran beside the writes');

-- after them: a row trigger on a factor table runs user code in the writes
CREATE FUNCTION public.it_t_fbw_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER it_t_fbw AFTER INSERT ON it_item_factors FOR EACH ROW EXECUTE FUNCTION public.it_t_fbw_noop();
SELECT * FROM train('fbw', 'it_demo.events', options => '{"factors": 16, "iterations": 6, "seed": 3}');
DROP TRIGGER it_t_fbw ON it_item_factors;
SELECT is((SELECT grid FROM fold WHERE version = 2), (SELECT grid FROM fold WHERE version = 1),
          'simulated after the writes: the same precision for every weight and blend');
SELECT is((SELECT (weight, blend, users, beside)::text FROM fold WHERE version = 2),
          (SELECT (weight, blend, users, false)::text FROM fold WHERE version = 1),
          'and the same weight, blend and users, the simulations not beside the writes');

-- an error in the writes while the thread runs: the row of the last user
-- of the next version is already there
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'fbw', 3, max(user_id), array_fill(0::real, ARRAY[16]), '{}' FROM it_demo.events;
SELECT throws_ok($$SELECT * FROM train('fbw', 'it_demo.events', options => '{"factors": 16, "iterations": 6, "seed": 3}')$$,
                 '23505', NULL, 'a unique violation in the factor rows is raised');
SELECT is((SELECT count(*) FROM it_model WHERE model = 'fbw'), 2::bigint, 'no version was added');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'fbw' AND version = 3), 1::bigint,
          'and no factor row but the one in the way');

-- the backend goes on: out of the way, the same version trains
DELETE FROM it_user_factors WHERE model = 'fbw' AND version = 3;
SELECT * FROM train('fbw', 'it_demo.events', options => '{"factors": 16, "iterations": 6, "seed": 3}');
SELECT is((SELECT (grid, beside)::text FROM fold WHERE version = 3), (SELECT (grid, true)::text FROM fold WHERE version = 1),
          'trained again after the error: the same simulations, beside the writes');
SELECT ok((SELECT count(*) FROM recommend((SELECT min(user_id) FROM it_demo.events), 10, 'fbw')) = 10,
          'and it serves');

SELECT * FROM finish();
ROLLBACK;

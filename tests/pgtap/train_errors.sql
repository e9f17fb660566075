-- train(), train(model), deploy() and drop_model(): every bad input is an
-- ERROR with its SQLSTATE and a hint, and a failed train leaves no trace.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(70);

CREATE TABLE it_t_good AS
SELECT * FROM (VALUES (1::bigint, 10::bigint, 1.0::float8), (1, 11, 2.0), (2, 10, 1.0),
                      (2, 12, 1.0), (3, 11, 3.0)) v(user_id, item_id, weight);
CREATE TABLE it_t_empty (user_id bigint, item_id bigint);
CREATE SEQUENCE it_t_seq;

-- SQLSTATE of a failing statement, and whether it came with a hint and
-- with the context naming the source and the model
CREATE FUNCTION pg_temp.failure(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    h text;
    c text;
BEGIN
    EXECUTE q;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT, c = PG_EXCEPTION_CONTEXT;
    RETURN SQLSTATE
        || CASE WHEN coalesce(h, '') <> '' THEN ' hint' ELSE ' no hint' END
        || CASE WHEN c LIKE '%while reading interactions for model "bad"%' THEN ' context' ELSE '' END;
END $$;

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

-- a model that exists, for the version and option tests
SELECT is((SELECT users FROM train('ok', 'it_t_good', options => '{"factors": 2, "iterations": 2}')),
          3::bigint, 'a valid model trains');

-- NULL arguments and names
SELECT throws_ok($$SELECT * FROM train(NULL, 'it_t_good')$$, '22004',
                 'model must not be NULL', 'NULL model');
SELECT throws_ok($$SELECT * FROM train('bad', NULL)$$, '22004',
                 'interactions must not be NULL', 'NULL interactions');
SELECT throws_ok($$SELECT * FROM train(NULL::text)$$, '22004',
                 'model must not be NULL', 'NULL model in train(model)');
SELECT throws_ok($$SELECT * FROM train('', 'it_t_good')$$, '22023',
                 'model name must not be empty', 'empty model name');
SELECT throws_ok($$SELECT * FROM train(repeat('m', 129), 'it_t_good')$$, '42622',
                 NULL, 'model name too long');

-- NULL ids and weights, with the row number
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2), (NULL, 3)) v(user_id, item_id)')$$,
                 '22004', 'user_id is NULL in row 2 of interactions', 'NULL user_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2), (2, 3), (3, NULL)) v(user_id, item_id)')$$,
                 '22004', 'item_id is NULL in row 3 of interactions', 'NULL item_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2, 1.0), (2, 3, NULL)) v(user_id, item_id, weight)')$$,
                 '22004', 'weight is NULL in row 2 of interactions', 'NULL weight');
SELECT is(pg_temp.failure($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2), (NULL, 3)) v(user_id, item_id)')$$),
          '22004 hint context', 'NULL user_id: hint and context');

-- bad weights
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2, 1.0), (2, 3, ''NaN''::float8)) v(user_id, item_id, weight)')$$,
                 '22023', 'weight in row 2 of interactions is NaN', 'NaN weight');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, ''NaN''::numeric AS weight')$$,
                 '22023', 'weight in row 1 of interactions is NaN', 'NaN numeric weight');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, ''Infinity''::float8 AS weight')$$,
                 '22023', 'weight in row 1 of interactions is infinite or too large', 'infinite weight');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, ''-Infinity''::float4 AS weight')$$,
                 '22023', 'weight in row 1 of interactions is infinite', 'minus infinite weight');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, 1e300::float8 AS weight')$$,
                 '22023', 'weight in row 1 of interactions is infinite or too large', 'weight beyond real');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM (VALUES (1, 2, 1), (2, 3, 0), (3, 3, -2)) v(user_id, item_id, weight)')$$,
                 '22023', 'weight in row 3 of interactions is negative', 'negative weight');
SELECT is(pg_temp.failure($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, -0.5 AS weight')$$),
          '22023 hint context', 'negative weight: hint and context');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, 3e38::real AS weight UNION ALL SELECT 1, 2, 3e38::real')$$,
                 '22003', NULL, 'duplicates summing beyond real');

-- missing and mistyped columns
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS uid, 2 AS item_id')$$,
                 '42703', 'interactions has no column named user_id', 'missing user_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item')$$,
                 '42703', 'interactions has no column named item_id', 'missing item_id');
SELECT is(pg_temp.failure($$SELECT * FROM train('bad', 'SELECT 1 AS uid, 2 AS item_id')$$),
          '42703 hint context', 'missing column: hint and context');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT ''1''::text AS user_id, 2 AS item_id')$$,
                 '42804', 'column user_id of interactions has type text', 'text user_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2.5::float8 AS item_id')$$,
                 '42804', 'column item_id of interactions has type double precision', 'float item_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, ''1''::text AS weight')$$,
                 '42804', 'column weight of interactions has type text', 'text weight');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1 AS user_id, 2 AS item_id, 5 AS ts')$$,
                 '42804', 'column ts of interactions has type integer', 'integer ts');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1.5 AS user_id, 2 AS item_id')$$,
                 '22003', 'user_id 1.5 in row 1 of interactions is not a bigint', 'fractional numeric id');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT user_id, item_id, user_id FROM it_t_good')$$,
                 '42702', 'interactions has more than one column named user_id', 'ambiguous user_id');

-- sources that are not a readable relation or a single read-only query
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT 1/0 AS user_id, 2 AS item_id')$$,
                 '22012', 'division by zero', 'query that fails at run time');
SELECT is(pg_temp.failure($$SELECT * FROM train('bad', 'SELECT 1/0 AS user_id, 2 AS item_id')$$),
          '22012 no hint context', 'failing query: context names the model');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM it_t_nope')$$,
                 '42P01', 'relation "it_t_nope" does not exist', 'query on an unknown table');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_nope')$$,
                 '42P01', 'relation "it_t_nope" given as interactions does not exist', 'unknown table name');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELEC user_id FROM it_t_good')$$,
                 '22023', 'interactions must be a table name, a view name or a query', 'neither a name nor a query');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_seq')$$,
                 '42809', '"it_t_seq" given as interactions is not a table or view', 'a sequence');
SELECT throws_ok($$SELECT * FROM train('bad', 'DELETE FROM it_t_good RETURNING *')$$,
                 '22023', 'interactions must be a table name, a view name or a query', 'DELETE refused');
SELECT throws_ok($$SELECT * FROM train('bad', 'WITH d AS (DELETE FROM it_t_good RETURNING *) SELECT * FROM d')$$,
                 '0A000', NULL, 'data-modifying WITH refused');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM it_t_good) AS s; DELETE FROM it_t_good; SELECT * FROM (SELECT * FROM it_t_good')$$,
                 '22023', 'interactions must be a single query', 'a second statement smuggled in');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good; DELETE FROM it_t_good')$$,
                 '22023', 'interactions must be a table name, a view name or a query', 'a statement after a name');
SELECT is((SELECT count(*) FROM it_t_good), 5::bigint, 'the data-modifying attempts changed nothing');

-- empty results
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_empty')$$,
                 '22000', 'interactions of model "bad" has no rows', 'empty table');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT * FROM it_t_good WHERE false')$$,
                 '22000', 'interactions of model "bad" has no rows', 'empty query');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT user_id, item_id, 0 AS weight FROM it_t_good')$$,
                 '22000', 'every weight in interactions of model "bad" is 0', 'every weight 0');

-- feature sources are checked when given
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', 'SELECT 1 AS uid')$$,
                 '42703', 'user_features has no column named user_id', 'user_features without user_id');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', NULL, 'it_t_nope')$$,
                 '42P01', 'relation "it_t_nope" given as item_features does not exist', 'unknown item_features');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', 'SELECT 1 AS user_id', 'SELECT ''x''::text AS item_id')$$,
                 '42804', 'column item_id of item_features has type text', 'mistyped item_features id');

-- options
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"factor": 3}')$$,
                 '22023', 'unknown option "factor"', 'unknown option');
SELECT matches(pg_temp.hint_of($$SELECT * FROM train('bad', 'it_t_good', options => '{"factor": 3}')$$),
               '^Valid options are: .*\mfactors\M.*\miterations\M.*\mregularization\M.*\malpha\M.*\mcg_steps\M.*\mseed\M',
               'unknown option: the hint lists the valid ones');
SELECT matches(pg_temp.hint_of($$SELECT * FROM train('bad', 'it_t_good', options => '{"factors": 0}')$$),
               'default, 64', 'bad value: the hint gives the default');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"factors": 0}')$$,
                 '22023', 'option "factors" must be an integer from 1 to 1024, not 0', 'factors 0');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"factors": 5000}')$$,
                 '22023', 'option "factors" must be an integer from 1 to 1024, not 5000', 'factors 5000');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"factors": "x"}')$$,
                 '22023', 'option "factors" must be an integer from 1 to 1024, not "x"', 'factors "x"');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"factors": 2.5}')$$,
                 '22023', 'option "factors" must be an integer from 1 to 1024, not 2.5', 'factors 2.5');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"iterations": 0}')$$,
                 '22023', NULL, 'iterations 0');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"regularization": -0.1}')$$,
                 '22023', 'option "regularization" must be a number from 0 to 1e+30 or "auto", not -0.1', 'negative regularization');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"regularization": "large"}')$$,
                 '22023', 'option "regularization" must be a number from 0 to 1e+30 or "auto", not "large"',
                 'a word other than auto for regularization');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"alpha": true}')$$,
                 '22023', 'option "alpha" must be a number from 0 to 1e+30, not true', 'boolean alpha');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"cg_steps": 65}')$$,
                 '22023', NULL, 'cg_steps 65');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '{"threads": -1}')$$,
                 '22023', NULL, 'threads -1');
SELECT throws_ok($$SELECT * FROM train('bad', 'it_t_good', options => '[{"factors": 3}]')$$,
                 '22023', 'options must be a jsonb object', 'options not an object');

-- unknown models and versions
SELECT throws_ok($$SELECT * FROM train('it_t_nope')$$, '42704',
                 'model "it_t_nope" does not exist', 'retrain of an unknown model');
SELECT throws_ok($$SELECT deploy('it_t_nope', 1)$$, '42704',
                 'model "it_t_nope" does not exist', 'deploy of an unknown model');
SELECT throws_ok($$SELECT deploy('ok', 7)$$, '42704',
                 'version 7 of model "ok" does not exist', 'deploy of an unknown version');
SELECT throws_ok($$SELECT deploy('ok', NULL)$$, '22004',
                 'version must not be NULL', 'deploy of a NULL version');
SELECT throws_ok($$SELECT drop_model('it_t_nope')$$, '42704',
                 'model "it_t_nope" does not exist', 'drop of an unknown model');

-- the memory budget: refused before allocating, saying how much, with a hint
CREATE TABLE it_t_many AS
SELECT u::bigint AS user_id, (u * 7 + j) % 500 AS item_id FROM generate_series(1, 20000) u, generate_series(1, 5) j;
SET interest_transfer.train_memory = '1MB';
SELECT throws_like($$SELECT * FROM train('it_t_mem', 'it_t_many')$$,
                   'training model "it_t_mem" needs more memory than interest_transfer.train_memory (1.0 MB)%',
                   'a model larger than interest_transfer.train_memory is refused');
SELECT alike(pg_temp.hint_of($$SELECT * FROM train('it_t_mem', 'it_t_many')$$),
            'Raise the budget for this session, for example SET interest_transfer.train_memory = %',
            'the hint says what to set');
SELECT is(pg_temp.failure($$SELECT * FROM train('it_t_mem', 'it_t_many')$$), '54000 hint',
          'with program_limit_exceeded (54000)');
RESET interest_transfer.train_memory;
SELECT is(current_setting('interest_transfer.train_memory'), '2GB', 'the default budget is 2GB');

-- no failed train left anything behind, and the valid model is untouched
SELECT is((SELECT count(*) FROM it_model WHERE model <> 'ok'), 0::bigint, 'no partial model row');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model <> 'ok')
          + (SELECT count(*) FROM it_item_factors WHERE model <> 'ok'), 0::bigint, 'no partial factor rows');
SELECT results_eq($$SELECT version, deployed FROM models WHERE model = 'ok'$$,
                  $$VALUES (1, true)$$, 'the valid model is as trained');

SELECT * FROM finish();
ROLLBACK;

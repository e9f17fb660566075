-- Feature encoding: what each column type encodes to, the layout of the
-- slots, independence from column and row order, applying a fitted encoder
-- to the rows of another query and to a jsonb object, and the it_prior
-- table that stores encoders with a model version.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

SELECT plan(50);
SET LOCAL timezone = 'UTC';

-- 200 users.  Columns are laid out by name:
--   age      1                 numeric, no NULLs
--   const    2                 numeric, constant
--   country  3 DE, 4 FR, 5 IT, 6 other, 7 missing
--            (DE 100 rows, FR 60, IT 30, five values seen once, five NULLs)
--   emb      8..11, 12 missing (NULL every 25th row)
--   score    13, 14 missing    (NULL every 10th row)
--   signup   15                date, no NULLs
--   vip      16 false (134 rows), 17 true (66), 18 other
CREATE TEMP TABLE feat AS
SELECT i AS user_id,
       (18 + (i * 7) % 50)::int AS age,
       CASE WHEN i % 10 = 0 THEN NULL ELSE (i % 13) * 1.5 END::float8 AS score,
       CASE WHEN i <= 100 THEN 'DE' WHEN i <= 160 THEN 'FR' WHEN i <= 190 THEN 'IT'
            WHEN i <= 195 THEN 'x' || i END AS country,
       (i % 3 = 0) AS vip,
       DATE '2020-01-01' + (i * 37) % 365 AS signup,
       CASE WHEN i % 25 = 0 THEN NULL ELSE ARRAY[i * 0.5, -i, 0.25, i % 7]::real[] END AS emb,
       7 AS const
  FROM generate_series(1, 200) i;

CREATE TEMP TABLE enc AS
SELECT f.*, e.vec FROM it_encode_features('feat', 'user_id') e JOIN feat f ON f.user_id = e.id;

-- shape
SELECT is((SELECT count(*) FROM enc), 200::bigint, 'one encoded row per features row');
SELECT is((SELECT array_agg(DISTINCT array_length(vec, 1)) FROM enc), ARRAY[18],
          'every row has 18 slots: the documented layout');
SELECT is((SELECT array_agg(id) FROM it_encode_features('feat', 'user_id')),
          (SELECT array_agg(i::bigint) FROM generate_series(1, 200) i),
          'rows come back in ascending id order');

-- numeric: standardised
SELECT ok((SELECT abs(avg(vec[1])) < 1e-6 AND abs(stddev_pop(vec[1]) - 1) < 1e-5 FROM enc),
          'a numeric column has mean 0 and standard deviation 1 over the rows');
SELECT ok((SELECT max(abs(e.vec[1] - (e.age - s.m) / s.sd)) < 1e-5
             FROM enc e, (SELECT avg(age) m, stddev_pop(age) sd FROM feat) s),
          'each numeric value is (x - mean) / std');
SELECT ok((SELECT bool_and(vec[2] = 0) FROM enc),
          'a constant column encodes as 0 (its deviation is taken as 1)');

-- numeric with NULLs: the missing indicator
SELECT ok((SELECT bool_and(vec[13] = 0 AND vec[14] = 1) FROM enc WHERE score IS NULL),
          'a NULL number encodes as 0 with the missing slot set');
SELECT ok((SELECT bool_and(vec[14] = 0) FROM enc WHERE score IS NOT NULL),
          'the missing slot is 0 for non-NULL numbers');
SELECT ok((SELECT abs(avg(vec[13])) < 1e-6 AND abs(stddev_pop(vec[13]) - 1) < 1e-5
             FROM enc WHERE score IS NOT NULL),
          'mean and deviation are taken over the non-NULL values');

-- category: one-hot over frequent values, other, missing
SELECT ok((SELECT bool_and(vec[3] + vec[4] + vec[5] + vec[6] + vec[7] = 1) FROM enc),
          'exactly one category slot is set in every row');
SELECT ok((SELECT bool_and((vec[3] = 1) = (country = 'DE') AND (vec[4] = 1) = (country = 'FR')
                            AND (vec[5] = 1) = (country = 'IT')) FROM enc WHERE country IS NOT NULL),
          'each frequent value has its own slot');
SELECT is((SELECT array_agg(user_id ORDER BY user_id) FROM enc WHERE vec[6] = 1),
          ARRAY[191, 192, 193, 194, 195], 'values seen only once go to the other slot');
SELECT is((SELECT array_agg(user_id ORDER BY user_id) FROM enc WHERE vec[7] = 1),
          ARRAY[196, 197, 198, 199, 200], 'NULL goes to the missing slot');

-- boolean
SELECT ok((SELECT bool_and((vec[16] = 1) = NOT vip AND (vec[17] = 1) = vip AND vec[18] = 0) FROM enc),
          'a boolean column is one-hot over false and true (most frequent first)');

-- date: days since the epoch, standardised
SELECT ok((SELECT max(abs(e.vec[15] - (e.signup - DATE '1970-01-01' - s.m) / s.sd)) < 1e-5
             FROM enc e, (SELECT avg(signup - DATE '1970-01-01') m,
                                 stddev_pop(signup - DATE '1970-01-01') sd FROM feat) s),
          'a date encodes as standardised days');
SELECT ok((SELECT max(abs(a.vec[15] - b.vec[1])) < 1e-5
             FROM enc a
             JOIN it_encode_features('SELECT user_id, signup::timestamptz AS t FROM feat', 'user_id') b
               ON b.id = a.user_id),
          'a timestamptz column encodes like the date it holds');

-- vector: as it is
SELECT ok((SELECT bool_and(vec[8:11] = emb AND vec[12] = 0) FROM enc WHERE emb IS NOT NULL),
          'a vector column is copied unchanged, without scaling');
SELECT ok((SELECT bool_and(vec[8:11] = '{0,0,0,0}' AND vec[12] = 1) FROM enc WHERE emb IS NULL),
          'a NULL vector encodes as zeros with the missing slot set');
SELECT ok((SELECT bool_and(e.vec = f.emb::real[]) FROM it_encode_features(
              'SELECT user_id, ARRAY[user_id, user_id / 3.0, 1e-3]::float8[] AS emb FROM feat', 'user_id') e
           JOIN (SELECT user_id, ARRAY[user_id, user_id / 3.0, 1e-3]::float8[] AS emb FROM feat) f
             ON f.user_id = e.id),
          'a double precision[] column is taken as it is (as real)');

-- other numeric types and ids
SELECT ok((SELECT bool_and(a.vec[1] = b.vec[1]) FROM enc a
             JOIN it_encode_features('SELECT user_id::bigint AS user_id, age::numeric AS age FROM feat', 'user_id') b
               ON b.id = a.user_id),
          'numeric and integer columns of equal values encode identically; bigint ids work');
SELECT is((SELECT count(*) FROM it_encode_features('SELECT user_id::numeric AS user_id, age FROM feat', 'user_id')),
          200::bigint, 'a numeric id holding whole numbers is accepted');

-- independence from column order and row order
SELECT ok((SELECT count(*) = 200 AND bool_and(a.vec = b.vec) FROM enc a
             JOIN it_encode_features('SELECT vip, signup, score, emb, country, const, age, user_id
                                        FROM feat ORDER BY user_id DESC', 'user_id') b
               ON b.id = a.user_id),
          'another column order and row order give identical vectors');
SELECT ok((SELECT count(*) = 200 AND bool_and(a.vec = b.vec) FROM enc a
             JOIN it_encode_features('SELECT * FROM feat ORDER BY md5(user_id::text)', 'user_id') b
               ON b.id = a.user_id),
          'fitting again on shuffled rows gives bit-identical vectors (deterministic statistics)');

-- options
SELECT is((SELECT array_agg(DISTINCT array_length(vec, 1)) FROM it_encode_features('feat', 'user_id', NULL,
              '{"max_categories": 1}')), ARRAY[15], 'max_categories 1 keeps one slot for country and one for vip');
SELECT ok((SELECT bool_and((e.vec[3] = 1) = (f.country = 'DE') AND (e.vec[4] = 1) = (f.country <> 'DE'))
             FROM it_encode_features('feat', 'user_id', NULL, '{"max_categories": 1}') e
             JOIN feat f ON f.user_id = e.id WHERE f.country IS NOT NULL),
          'with max_categories 1 only the most frequent value keeps a slot; the rest are other');
SELECT ok((SELECT bool_and((e.vec[4] = 1) = (f.country IN ('FR', 'IT') OR f.country LIKE 'x%'))
             FROM it_encode_features('feat', 'user_id', NULL, '{"min_category_count": 61}') e
             JOIN feat f ON f.user_id = e.id WHERE f.country IS NOT NULL),
          'values seen fewer than min_category_count times go to the other slot');
SELECT is((SELECT vec[3:7] FROM it_encode_features('feat', 'user_id', NULL, '{"min_category_count": 1}')
            WHERE id = 191), '{0,0,0,1,0}'::real[], 'with min_category_count 1 a value seen once gets its own slot');

-- applying the fitted encoder to the rows of another query (columns by name)
SELECT ok((SELECT count(*) = 200 AND bool_and(a.vec = b.vec) FROM enc a
             JOIN it_encode_features('feat', 'user_id', 'feat') b ON b.id = a.user_id),
          'applying the encoder to its own source gives the fitted vectors exactly');
SELECT ok((SELECT count(*) = 200 AND bool_and(a.vec = b.vec) FROM enc a
             JOIN it_encode_features('feat', 'user_id',
                    'SELECT vip, 42 AS unrelated, signup, score, emb, country, const, age::float8 AS age, user_id FROM feat') b
               ON b.id = a.user_id),
          'applying to other column order, another numeric type and an extra column gives the same vectors');
SELECT is((SELECT vec[3:7] FROM it_encode_features('feat', 'user_id',
              $$SELECT user_id, age, const, 'ES' AS country, emb, score, signup, vip FROM feat WHERE user_id = 1$$)),
          '{0,0,0,1,0}'::real[], 'a value not seen when fitting goes to the other slot');
SELECT is((SELECT vec[15:18] FROM it_encode_features('feat', 'user_id',
              $$SELECT user_id, age, const, country, emb, score, NULL::date AS signup, NULL::boolean AS vip
                  FROM feat WHERE user_id = 1$$)),
          '{0,0,0,0}'::real[], 'NULL in a column that had none when fitted encodes as zeros (the mean; no slot)');

-- enums and char(n): c is cd (5 rows), ab (4), other; m is happy, ok, sad
-- (3 rows each: ties in byte order), other
CREATE TYPE pg_temp.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TEMP TABLE moods AS
SELECT i AS id, (ARRAY['sad', 'ok', 'happy'])[1 + i % 3]::pg_temp.mood AS m,
       (CASE WHEN i % 2 = 0 THEN 'ab' ELSE 'cd' END)::char(4) AS c
  FROM generate_series(1, 9) i;
SELECT is((SELECT array_agg(vec ORDER BY id) FROM it_encode_features('moods', 'id') WHERE id IN (1, 2, 3)),
          '{{1,0,0,0,1,0,0},{0,1,0,1,0,0,0},{1,0,0,0,0,1,0}}'::real[],
          'char(n) and enum columns are one-hot (char values without padding)');
SELECT is(it_encode_features_json('moods', 'id', '{"c": "ab", "m": "happy"}'),
          '{0,1,0,1,0,0,0}'::real[], 'jsonb strings match char(n) and enum values');

-- jsonb objects (recommend_for)
SELECT is(it_encode_features_json('feat', 'user_id', (SELECT to_jsonb(f) FROM feat f WHERE user_id = 7)),
          (SELECT vec FROM enc WHERE user_id = 7), 'a jsonb row encodes exactly like the table row');
SELECT is(it_encode_features_json('feat', 'user_id', (SELECT to_jsonb(f) FROM feat f WHERE user_id = 50)),
          (SELECT vec FROM enc WHERE user_id = 50), 'jsonb nulls encode like SQL NULLs');
SELECT is(it_encode_features_json('feat', 'user_id', (SELECT to_jsonb(f) - 'user_id' FROM feat f WHERE user_id = 198)),
          (SELECT vec FROM enc WHERE user_id = 198), 'the id key is optional');
SELECT is(it_encode_features_json('feat', 'user_id', '{}'),
          '{0,0,0,0,0,0,1,0,0,0,0,1,0,1,0,0,0,0}'::real[],
          'missing keys are missing values: means, missing slots, nothing for a category without one');
SELECT is(it_encode_features_json('feat', 'user_id', '{"country": "Narnia", "vip": true}'),
          '{0,0,0,0,0,1,0,0,0,0,0,1,0,1,0,0,1,0}'::real[], 'unknown category values go to other; booleans as JSON');
SELECT ok((SELECT abs(v[1] - (40 - m) / sd) < 1e-5 AND v[15] = (SELECT vec[15] FROM enc WHERE user_id = 7)
             FROM (SELECT it_encode_features_json('feat', 'user_id',
                            jsonb_build_object('age', 40, 'signup', (SELECT signup::text FROM feat WHERE user_id = 7))) v) x,
                  (SELECT avg(age) m, stddev_pop(age) sd FROM feat) s),
          'jsonb numbers are standardised; date strings encode like dates');

-- errors of jsonb objects
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"height": 180}')$$,
                 '22023', 'unknown feature "height"', 'an unknown key is an error naming it');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"age": "old"}')$$,
                 '42804', 'feature "age" must be a number, not a string', 'a string for a numeric column is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"vip": "yes"}')$$,
                 '42804', NULL, 'a string for a boolean column is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"country": 49}')$$,
                 '42804', NULL, 'a number for a text column is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"emb": [1, 2]}')$$,
                 '2202E', 'feature "emb" has 2 values, expected 4', 'a vector of the wrong length is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"emb": [1, 2, "x", 4]}')$$,
                 '42804', NULL, 'a vector with a non-number element is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '{"signup": "soon"}')$$,
                 '22007', NULL, 'a malformed date is an error');
SELECT throws_ok($$SELECT it_encode_features_json('feat', 'user_id', '[1, 2]')$$,
                 '22023', 'features must be a jsonb object', 'a non-object is an error');

-- the storage table
SELECT ok(NOT has_table_privilege('public', 'it_prior', 'SELECT')
          AND NOT has_table_privilege('public', 'it_prior', 'INSERT'),
          'it_prior is read and written by the extension''s functions only');
SELECT throws_ok($$INSERT INTO it_prior (model, version, kind, in_use, spec, dims) VALUES ('nope', 1, 'user_features', true, '{}', 3)$$,
                 '23503', NULL, 'a prior belongs to an existing model version');
SELECT throws_ok($$INSERT INTO it_prior (model, version, kind, in_use, spec, dims) VALUES ('nope', 1, 'both', true, '{}', 3)$$,
                 '23514', NULL, 'kind is one the extension knows');

SELECT * FROM finish();
ROLLBACK;

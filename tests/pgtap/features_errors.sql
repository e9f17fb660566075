-- Feature encoding: every bad features source gives an ERROR with its
-- SQLSTATE (and, for the main ones, its message), never a crash or a
-- silently wrong encoding.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

SELECT plan(27);

CREATE TEMP TABLE people AS
SELECT i AS user_id, 20 + i % 40 AS age, ARRAY[i, 1, 2]::real[] AS emb
  FROM generate_series(1, 50) i;

-- column types
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, age, ''{}''::json AS doc FROM people', 'user_id')$$,
                 '42804', 'feature column "doc" of features has unsupported type json',
                 'a json column is refused, naming the column and its type');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, ''\x00''::bytea AS blob FROM people', 'user_id')$$,
                 '42804', 'feature column "blob" of features has unsupported type bytea', 'a bytea column is refused');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, ARRAY[1, 2] AS ints FROM people', 'user_id')$$,
                 '42804', 'feature column "ints" of features has unsupported type integer[]',
                 'an integer[] column is refused (cast it to real[])');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, point(1, 2) AS p FROM people', 'user_id')$$,
                 '42804', NULL, 'a point column is refused');

-- vector columns
SELECT throws_ok($$SELECT * FROM it_encode_features(
                     'SELECT user_id, CASE WHEN user_id = 5 THEN ARRAY[1, 2, 3]::real[] ELSE ARRAY[1, 2]::real[] END AS v
                        FROM people', 'user_id')$$,
                 '2202E', 'vector column "v" of features has 3 values for user_id 5, expected 2',
                 'a vector of another length is an error naming the row');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, ARRAY[[1, 2], [3, 4]]::real[] AS v FROM people', 'user_id')$$,
                 '2202E', NULL, 'a two-dimensional vector is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, ''{}''::real[] AS v FROM people', 'user_id')$$,
                 '2202E', NULL, 'an empty vector is an error (NULL is the missing value)');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, ARRAY[1, NULL]::real[] AS v FROM people', 'user_id')$$,
                 '22004', NULL, 'a vector with a NULL element is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, age, NULL::real[] AS v FROM people', 'user_id')$$,
                 '22004', NULL, 'a vector column that is NULL in every row has no length: error');
SELECT throws_ok($$SELECT * FROM it_encode_features(
                     'SELECT user_id, CASE WHEN user_id = 9 THEN ARRAY[1, ''NaN'']::real[] ELSE ARRAY[1, 2]::real[] END AS v
                        FROM people', 'user_id')$$,
                 '22000', NULL, 'a NaN inside a vector is an error');

-- values
SELECT throws_ok($$SELECT * FROM it_encode_features(
                     'SELECT user_id, CASE WHEN user_id = 9 THEN ''NaN''::float8 ELSE 1 END AS x FROM people', 'user_id')$$,
                 '22000', 'feature column "x" of features has a NaN or infinite value for user_id 9',
                 'a NaN number is an error naming the row');
SELECT throws_ok($$SELECT * FROM it_encode_features(
                     'SELECT user_id, CASE WHEN user_id = 9 THEN ''infinity''::date ELSE current_date END AS d FROM people', 'user_id')$$,
                 '22000', NULL, 'an infinite date is an error');

-- ids
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id % 10 AS user_id, age FROM people', 'user_id')$$,
                 '23505', 'features has more than one row for user_id 0', 'a duplicate id is an error naming it');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT NULLIF(user_id, 3) AS user_id, age FROM people', 'user_id')$$,
                 '22004', 'features has a row whose user_id is NULL', 'a NULL id is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'customer_id')$$,
                 '42703', 'features has no column named "customer_id"', 'a missing id column is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id::text AS user_id, age FROM people', 'user_id')$$,
                 '42804', 'column "user_id" of features has type text', 'a text id is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id + 0.5 AS user_id, age FROM people', 'user_id')$$,
                 '22003', NULL, 'a numeric id with a fraction is an error');

-- shape of the source
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id FROM people', 'user_id')$$,
                 '22023', 'features has no feature columns', 'a source with only the id is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, age FROM people WHERE false', 'user_id')$$,
                 '22000', 'features has no rows', 'an empty source is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('SELECT user_id, age, age FROM people', 'user_id')$$,
                 '42702', NULL, 'two columns of one name are an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('no_such_table', 'user_id')$$,
                 '42P01', NULL, 'an unknown table is an error');

-- applying to another source
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'user_id', 'SELECT user_id, age FROM people')$$,
                 '42703', 'the features have no column named "emb"',
                 'a column the encoder was fitted with, missing when applying, is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'user_id', 'SELECT user_id, age::text AS age, emb FROM people')$$,
                 '42804', 'feature column "age" has type text', 'a column of another kind when applying is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'user_id', 'SELECT user_id, age, ARRAY[1, 2]::real[] AS emb FROM people')$$,
                 '2202E', NULL, 'a vector of another length when applying is an error');

-- options and arguments
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'user_id', NULL, '{"max_category": 3}')$$,
                 '22023', 'unknown option "max_category"', 'an unknown option is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features('people', 'user_id', NULL, '{"min_category_count": 0}')$$,
                 '22023', NULL, 'min_category_count below 1 is an error');
SELECT throws_ok($$SELECT * FROM it_encode_features(NULL, 'user_id')$$,
                 '22004', NULL, 'a NULL source is an error');

SELECT * FROM finish();
ROLLBACK;

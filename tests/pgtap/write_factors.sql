-- The factor rows train() writes: their values, the same rows whether they
-- go in batches straight into the table or through INSERT (a table with a
-- trigger), and the table's own constraints and triggers still apply.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

SELECT plan(14);

-- 40 users, items 1 .. 12; user u has 3 + u % 5 items (weights 1..3),
-- item 12 is given weight 0 by everyone (left out)
CREATE TABLE it_t_wf AS
SELECT u AS user_id, (u * 7 + j * 5) % 11 + 1 AS item_id, (1 + (u + j) % 3)::real AS weight
  FROM generate_series(1, 40) u, generate_series(0, 2 + u % 5) j
UNION ALL
SELECT u, 12, 0 FROM generate_series(1, 40) u;

SELECT * FROM train('wf', 'it_t_wf', options => '{"factors": 4, "iterations": 6}') \g /dev/null

-- ---------------------------------------------------------------------
-- the rows of a version
-- ---------------------------------------------------------------------
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'wf' AND version = 1), 40::bigint,
          'one row per user');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'wf' AND version = 1), 11::bigint,
          'one row per item of positive weight');
SELECT results_eq(
    $$SELECT user_id, seen FROM it_user_factors WHERE model = 'wf' AND version = 1 ORDER BY user_id$$,
    $$SELECT user_id::bigint, array_agg(DISTINCT item_id::bigint ORDER BY item_id::bigint)
        FROM it_t_wf WHERE weight > 0 GROUP BY user_id ORDER BY user_id$$,
    'seen holds each user''s items, sorted');
SELECT results_eq(
    $$SELECT item_id, popularity FROM it_item_factors WHERE model = 'wf' AND version = 1 ORDER BY item_id$$,
    $$SELECT item_id::bigint, count(DISTINCT user_id) FROM it_t_wf WHERE weight > 0 GROUP BY item_id ORDER BY item_id$$,
    'popularity counts each item''s users');
SELECT is((SELECT count(*) FROM it_user_factors
            WHERE model = 'wf' AND version = 1 AND cardinality(factors) = 4 AND array_lower(factors, 1) = 1
              AND source = 'model' AND context = '' AND updated_at = now() AND seen_domain IS NULL),
          40::bigint, 'user rows: 4 factors from index 1, source, global context, written now, no domains');
SELECT is((SELECT count(*) FROM it_item_factors
            WHERE model = 'wf' AND version = 1 AND cardinality(factors) = 4 AND array_lower(factors, 1) = 1
              AND source = 'model' AND domain = 0),
          11::bigint, 'item rows: 4 factors from index 1, source, domain 0');
-- the rows are in the primary key's index: an index scan finds every one
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT is((SELECT count(*) FROM it_user_factors u
            WHERE model = 'wf' AND version = 1 AND context = ''
              AND user_id IN (SELECT DISTINCT user_id FROM it_t_wf)), 40::bigint,
          'the index of it_user_factors finds every user row');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'wf' AND version = 1 AND domain = 0
              AND item_id BETWEEN 1 AND 12), 11::bigint,
          'the index of it_item_factors finds every item row');
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT is((SELECT count(*) FROM recommend(7, 3, model => 'wf')), 3::bigint,
          'the version serves');

-- ---------------------------------------------------------------------
-- with a trigger on the tables, through INSERT: the same rows, the trigger runs
-- ---------------------------------------------------------------------
CREATE TABLE it_t_wf_fired (tab text, n int);
CREATE FUNCTION it_t_wf_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.it_t_wf_fired VALUES (TG_TABLE_NAME, 1);
    RETURN NULL;
END $$;
CREATE TRIGGER it_t_wf_u AFTER INSERT ON it_user_factors FOR EACH ROW EXECUTE FUNCTION it_t_wf_count();
CREATE TRIGGER it_t_wf_i AFTER INSERT ON it_item_factors FOR EACH ROW EXECUTE FUNCTION it_t_wf_count();
SELECT * FROM train('wf', 'it_t_wf', options => '{"factors": 4, "iterations": 6}') \g /dev/null
SELECT results_eq($$SELECT tab, sum(n)::int FROM it_t_wf_fired GROUP BY tab ORDER BY tab$$,
                  $$VALUES ('it_item_factors'::text, 11), ('it_user_factors'::text, 40)$$,
                  'a row trigger on the factor tables fires for every row written');
SELECT is((SELECT count(*) FROM it_user_factors a JOIN it_user_factors b USING (model, user_id, context)
            WHERE model = 'wf' AND a.version = 1 AND b.version = 2
              AND a.factors = b.factors AND a.seen = b.seen AND a.source = b.source
              AND a.updated_at = b.updated_at AND a.seen_domain IS NOT DISTINCT FROM b.seen_domain),
          40::bigint, 'the user rows written through INSERT are the same, value for value');
SELECT is((SELECT count(*) FROM it_item_factors a JOIN it_item_factors b USING (model, domain, item_id)
            WHERE model = 'wf' AND a.version = 1 AND b.version = 2
              AND a.factors = b.factors AND a.popularity = b.popularity AND a.source = b.source),
          11::bigint, 'and the item rows');
DROP TRIGGER it_t_wf_u ON it_user_factors;
DROP TRIGGER it_t_wf_i ON it_item_factors;

-- ---------------------------------------------------------------------
-- a check constraint of the table holds on the rows written in batches
-- ---------------------------------------------------------------------
SAVEPOINT before_check;
ALTER TABLE it_item_factors ADD CONSTRAINT it_t_wf_popular CHECK (popularity < 12) NOT VALID;
SELECT throws_ok($$SELECT * FROM train('wf', 'it_t_wf', options => '{"factors": 4, "iterations": 6}')$$,
                 '23514', NULL, 'a row that breaks a check constraint of it_item_factors fails the training');
ROLLBACK TO SAVEPOINT before_check;
ALTER TABLE it_item_factors ADD CONSTRAINT it_t_wf_popular CHECK (popularity < 41) NOT VALID;
SELECT lives_ok($$SELECT * FROM train('wf', 'it_t_wf', options => '{"factors": 4, "iterations": 6}')$$,
                'rows that keep the check constraint are written');

SELECT * FROM finish();
ROLLBACK;

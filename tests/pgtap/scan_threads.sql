-- interest_transfer.scan_threads: recommend() scans the items' 8-bit copy
-- cut between threads, with the very rows of a scan by one thread.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 400, items => 300, per_user => 15, groups => 4, seed => 0.6);
SET client_min_messages = warning;
SELECT * FROM train('scan', 'it_demo.events', options => '{"factors": 8, "iterations": 4}');
RESET client_min_messages;
CREATE FUNCTION pg_temp.top(threads int) RETURNS TABLE (user_id bigint, item_id bigint, score real, rank int)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('interest_transfer.scan_threads', threads::text, true);
    RETURN QUERY SELECT u, r.item_id, r.score, r.rank
                   FROM generate_series(1::bigint, 400) u, LATERAL recommend(u, 10, 'scan') r;
END $$;
CREATE TEMP TABLE one_thread AS SELECT * FROM pg_temp.top(1);
\o

SELECT plan(6);

SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'interest_transfer.scan_threads'), '0', 'automatic by default');
SELECT is((SELECT count(*) FROM one_thread), 4000::bigint, 'ten items for each of 400 users');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top(2) EXCEPT SELECT * FROM one_thread) d), 0::bigint,
          'two threads: every row (item, score, rank) as one thread gives it');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top(8) EXCEPT SELECT * FROM one_thread) d), 0::bigint,
          'eight threads: the same rows');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top(0) EXCEPT SELECT * FROM one_thread) d), 0::bigint,
          'automatic: the same rows');
SELECT throws_ok($$SET interest_transfer.scan_threads = 9$$, '22023', NULL, 'more than 8 threads is refused');

SELECT * FROM finish();
ROLLBACK;

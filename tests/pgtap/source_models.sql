-- Mapping between two models (option source_models): a 'video' model
-- learns, on the users it shares with a 'books' model, to map their books
-- vector to a prior in video; users known only in 'books' are served from
-- it.  Generated data (tests/data/generate.sql): every user has books and
-- videos; a deterministic 20% of the users is held out of 'video'
-- entirely.  Also: the source version is pinned, ids that differ across
-- platforms (source_user_map), fold-in around the mapped prior, and the
-- errors of a missing, self, unshared or badly mapped source.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1500, items => 400, per_user => 20, groups => 8, seed => 0.42);
CREATE TABLE held AS SELECT user_id FROM it_demo.users WHERE abs(hashint8(user_id * 7919 + 13)) % 5 = 0;
CREATE TABLE ev AS
SELECT e.user_id, e.item_id, e.weight, e.ts, i.domain FROM it_demo.events e JOIN it_demo.items i USING (item_id);
CREATE TABLE books_src AS SELECT user_id, item_id, weight FROM ev WHERE domain = 'books';
CREATE TABLE video_src AS
SELECT user_id, item_id, weight FROM ev WHERE domain = 'video' AND user_id NOT IN (SELECT user_id FROM held);
CREATE TABLE video_test AS
SELECT DISTINCT user_id, item_id FROM ev WHERE domain = 'video' AND user_id IN (SELECT user_id FROM held);
-- the same people under other ids on another platform
CREATE TABLE books_other AS SELECT user_id + 100000 AS user_id, item_id, weight FROM books_src;
CREATE TABLE id_map AS SELECT DISTINCT user_id, user_id + 100000 AS source_user_id FROM ev;
SET client_min_messages = warning;
SELECT * FROM train('books', 'books_src', options => '{"factors": 16, "iterations": 8, "seed": 7}');
SELECT * FROM train('books_other', 'books_other', options => '{"factors": 8, "iterations": 8, "seed": 7}');
SELECT * FROM train('video', 'video_src',
                    options => '{"factors": 16, "iterations": 8, "seed": 7, "source_models": ["books"]}');
SELECT * FROM train('video_map', 'video_src',
                    options => '{"factors": 16, "iterations": 8, "seed": 7, "source_models": ["books_other"],
                                 "source_user_map": "id_map"}');
RESET client_min_messages;

CREATE TEMP TABLE video_pop AS
SELECT item_id FROM video_src GROUP BY item_id ORDER BY count(DISTINCT user_id) DESC, item_id LIMIT 10;
CREATE FUNCTION pg_temp.served(model text) RETURNS TABLE (user_id bigint, item_id bigint, source text)
LANGUAGE sql AS $$
  SELECT h.user_id, r.item_id, r.source FROM held h CROSS JOIN LATERAL recommend(h.user_id, 10, model) r
   WHERE h.user_id IN (SELECT user_id FROM video_test)
$$;
CREATE FUNCTION pg_temp.prec(model text) RETURNS numeric LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM pg_temp.served(model) s JOIN video_test t USING (user_id, item_id))::numeric
         / (10 * (SELECT count(DISTINCT user_id) FROM video_test))
$$;
CREATE TEMP TABLE prec AS
SELECT pg_temp.prec('video') AS mapped, pg_temp.prec('video_map') AS mapped_ids,
       (SELECT count(*) FROM video_test t JOIN video_pop p USING (item_id))::numeric
         / (10 * (SELECT count(DISTINCT user_id) FROM video_test)) AS popularity;
CREATE TEMP TABLE before AS SELECT * FROM pg_temp.served('video');
CREATE TEMP TABLE ev_video AS SELECT * FROM evaluate('video', 'video_test', 10);
\o

SELECT plan(20);

-- training
SELECT is((SELECT in_use FROM it_prior WHERE model = 'video' AND kind = 'source_models'), true,
          'the mapping from books beats video popularity on the shared users, and is kept');
SELECT is((SELECT spec->'source_models' FROM it_prior WHERE model = 'video' AND kind = 'source_models'),
          '[{"model": "books", "version": 1, "factors": 16, "users": 1500}]'::jsonb,
          'the source model and the version read are recorded');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'video' AND context = '@source_models'),
          (SELECT count(*) FROM held),
          'every user known only in books gets a stored prior');
SELECT is((SELECT count(*) FROM models WHERE model = 'video' AND users = 1500 - (SELECT count(*) FROM held)),
          1::bigint, 'the priors are not counted as trained users');

-- serving
SELECT is((SELECT array_agg(DISTINCT source) FROM pg_temp.served('video')), ARRAY['domain:books'],
          'users known only in books are served from the mapping, source domain:books');
SELECT diag(format('held-out users, video precision@10: mapping %s, other ids through source_user_map %s, popularity %s',
                   round(mapped, 4), round(mapped_ids, 4), round(popularity, 4))) FROM prec;
SELECT ok(mapped >= 1.5 * popularity, 'the mapping serves them at least 1.5x video popularity') FROM prec;
SELECT is((SELECT users FROM ev_video WHERE segment = 'cross_domain'), (SELECT count(DISTINCT user_id) FROM video_test),
          'evaluate: the users served from the source models are the cross_domain segment');
SELECT ok(abs((SELECT precision_at_k FROM ev_video WHERE segment = 'cross_domain') - (SELECT mapped FROM prec)) < 1e-9,
          'evaluate''s cross_domain precision@10 is what recommend() serves');
SELECT is((SELECT array_agg(DISTINCT source) FROM pg_temp.served('video_map')), ARRAY['domain:books_other'],
          'with source_user_map, users of another id space (and a source of 8 factors) are served from the mapping');
SELECT ok(mapped_ids >= 1.5 * popularity, 'and at least 1.5x video popularity') FROM prec;

-- a user known only in books who starts watching is folded in around the mapped prior
INSERT INTO video_src
SELECT v.user_id, v.item_id, 1 FROM video_test v WHERE v.user_id = (SELECT min(user_id) FROM video_test) LIMIT 3;
SELECT is((SELECT DISTINCT source FROM recommend((SELECT min(user_id) FROM video_test), 10, 'video')), 'fold_in',
          'a user of the mapping with rows in video is folded in');
DELETE FROM video_src WHERE user_id = (SELECT min(user_id) FROM video_test);

-- a retrain of the source changes nothing until the target is retrained
\o /dev/null
SELECT * FROM train('books', 'books_src', options => '{"factors": 16, "iterations": 8, "seed": 99}');
\o
SELECT set_eq('SELECT user_id, item_id, source FROM pg_temp.served(''video'')', 'SELECT * FROM before',
              'after books is retrained, video serves the same lists');
\o /dev/null
SELECT * FROM train('video');
\o
SELECT is((SELECT spec->'source_models'->0->>'version' FROM it_prior WHERE model = 'video' AND kind = 'source_models'
            ORDER BY version DESC LIMIT 1), '2', 'train(video) reads the version of books deployed now');

-- a source dropped after training: the stored priors still serve
SELECT drop_model('books_other');
SELECT is((SELECT array_agg(DISTINCT source) FROM pg_temp.served('video_map')), ARRAY['domain:books_other'],
          'the priors stay with the version when the source model is dropped');

-- errors
SET client_min_messages = warning;
SELECT throws_ok($$SELECT * FROM train('bad', 'video_src', options => '{"source_models": ["music"]}')$$,
                 '42704', NULL, 'a source model that does not exist is an error (42704)');
SELECT throws_like($$SELECT * FROM train('video', 'video_src', options => '{"source_models": ["video"]}')$$,
                   '%cannot be a source model of itself%', 'a model cannot be its own source');
SELECT throws_like($$SELECT * FROM train('bad', 'video_src', options => '{"source_models": ["books"], "source_user_map": "id_map"}')$$,
                   '%share no users%', 'a source that shares no users is an error with a hint');
SELECT throws_ok($$SELECT * FROM train('bad', 'video_src', options => '{"source_models": ["books"],
                   "source_user_map": "SELECT user_id, CASE WHEN user_id = 3 THEN NULL ELSE user_id END AS source_user_id FROM id_map"}')$$,
                 '22004', NULL, 'a NULL id in source_user_map is an error (22004)');
SELECT throws_ok($$SELECT * FROM train('bad', 'video_src', options => '{"source_models": ["books"],
                   "source_user_map": "SELECT 5 AS user_id, user_id AS source_user_id FROM id_map"}')$$,
                 '21000', NULL, 'a user mapped to two source users is an error (21000)');
SELECT throws_ok($$SELECT * FROM train('bad', 'video_src', options => '{"source_models": "books"}')$$,
                 '22023', NULL, 'source_models must be an array of names (22023)');

SELECT * FROM finish();
ROLLBACK;

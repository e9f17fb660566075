-- recommend(), score() and similar_items() on small models whose factors
-- are written by hand, checked against the same arithmetic done in SQL.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

SELECT plan(65);

-- x.y and cosine in plain SQL, the reference for every check below
CREATE FUNCTION pg_temp.dot(a real[], b real[]) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$ SELECT sum(x::float8 * y::float8) FROM unnest(a, b) AS t(x, y) $$;
CREATE FUNCTION pg_temp.cosine(a real[], b real[]) RETURNS float8
LANGUAGE sql IMMUTABLE AS $$
  SELECT pg_temp.dot(a, b) / nullif(sqrt(pg_temp.dot(a, a)) * sqrt(pg_temp.dot(b, b)), 0) $$;

-- a model version written directly into the storage tables
CREATE FUNCTION pg_temp.add_version(m text, v int, deployed boolean, at timestamptz) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO it_model_acl (model, owner) VALUES (m, current_user::regrole) ON CONFLICT DO NOTHING;
  INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                        options, factors, users, items, interactions, seconds, loss, history, user_mean)
  VALUES (m, v, 'als', deployed, at,
          'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 3}', 3, 4, 8, 10, 0, 0, '[]', '{0,0,0}');
$$;

SELECT throws_ok($$SELECT * FROM recommend(1, 10)$$, '42704', 'no model has been deployed that you may use',
                 'model NULL with no deployed model is an error');

SELECT pg_temp.add_version('shop', 1, true, now() - interval '1 hour');
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('shop', 1, 1, '{1,0,0}', 10),
  ('shop', 1, 2, '{0,1,0}', 30),
  ('shop', 1, 3, '{0,0,1}', 30),
  ('shop', 1, 4, '{1,1,0}', 5),
  ('shop', 1, 5, '{0.5,0.5,0.5}', 20),
  ('shop', 1, 6, '{-1,0,1}', 0),
  ('shop', 1, 7, '{1,0,1}', 30),
  ('shop', 1, 8, '{0.2,0.9,-0.3}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('shop', 1, 1, '{1,0.5,-0.2}', '{4}'),
  ('shop', 1, 2, '{0.1,1,0.7}', '{2,3}'),
  ('shop', 1, 3, '{-0.3,0.2,1}', '{}'),
  ('shop', 1, 4, '{1,1,1}', '{1}');

CREATE TEMP VIEW expected AS
SELECT u.user_id, i.item_id, pg_temp.dot(u.factors, i.factors) AS dot, i.item_id = ANY (u.seen) AS seen
  FROM it_user_factors u JOIN it_item_factors i USING (model, version)
 WHERE model = 'shop' AND version = 1;

-- recommend: order and scores of the dot products, seen items left out
SELECT results_eq(
  $$SELECT item_id FROM recommend(1, 10, 'shop') ORDER BY rank$$,
  $$SELECT item_id FROM expected WHERE user_id = 1 AND NOT seen ORDER BY dot DESC, item_id$$,
  'recommend ranks by x.y, seen items left out (user 1)');
SELECT results_eq(
  $$SELECT item_id FROM recommend(2, 3, 'shop') ORDER BY rank$$,
  $$SELECT item_id FROM expected WHERE user_id = 2 AND NOT seen ORDER BY dot DESC, item_id LIMIT 3$$,
  'recommend top 3 of user 2');
SELECT ok((SELECT bool_and(abs(r.score - e.dot) < 1e-6) FROM recommend(3, 10, 'shop') r
             JOIN expected e ON e.user_id = 3 AND e.item_id = r.item_id),
          'recommend scores equal x.y within 1e-6');
SELECT results_eq(
  $$SELECT array_agg(rank ORDER BY rank), array_agg(DISTINCT source) FROM recommend(1, 10, 'shop')$$,
  $$VALUES ('{1,2,3,4,5,6,7}'::int[], '{model}'::text[])$$,
  'ranks are 1..n and the source of a trained user is model');
SELECT is_empty(
  $$SELECT item_id FROM recommend(2, 10, 'shop') WHERE item_id IN (2, 3)$$,
  'seen items are not recommended');
SELECT results_eq(
  $$SELECT item_id FROM recommend(2, 10, 'shop', exclude_seen => false) ORDER BY rank$$,
  $$SELECT item_id FROM expected WHERE user_id = 2 ORDER BY dot DESC, item_id$$,
  'exclude_seen => false ranks seen items too');
SELECT is((SELECT count(*) FROM recommend(1, 100000, 'shop')), 7::bigint,
          'k larger than the catalogue returns every unseen item');
SELECT is((SELECT count(*) FROM recommend(3, 8, 'shop')), 8::bigint,
          'k equal to the catalogue, nothing seen: every item');

-- users the model does not know: popularity
SELECT results_eq(
  $$SELECT item_id, round(score::numeric, 4), source FROM recommend(1000, 10, 'shop') ORDER BY rank$$,
  $$SELECT item_id, round(popularity::numeric / 30, 4), 'popular'::text FROM it_item_factors
     WHERE model = 'shop' ORDER BY popularity DESC, item_id$$,
  'unknown user: most popular first, ties by item_id, score popularity / max');
SELECT is_empty($$SELECT * FROM recommend(NULL, 10, 'shop')$$, 'NULL user_id gives no rows');

-- score
SELECT ok((SELECT bool_and(abs(score(e.user_id, e.item_id, 'shop') - e.dot) < 1e-6) FROM expected e),
          'score equals x.y for every user and item');
SELECT is((SELECT count(*) FROM expected e WHERE score(e.user_id, e.item_id, 'shop') IS NULL), 0::bigint,
          'score is never NULL for known users and items');
SELECT is(score(1, 99, 'shop'), NULL::real, 'score of an unknown item is NULL');
SELECT is(score(NULL, 1, 'shop'), NULL::real, 'score with a NULL user is NULL');
SELECT is(score(1, NULL, 'shop'), NULL::real, 'score with a NULL item is NULL');
SELECT is(round(score(1000, 5, 'shop')::numeric, 4), round(20 / 30.0, 4),
          'score of an unknown user is popularity / max popularity');
SELECT results_eq(
  $$SELECT r.item_id, r.score FROM recommend(1, 10, 'shop') r ORDER BY r.rank$$,
  $$SELECT i.item_id, score(1, i.item_id, 'shop') FROM it_item_factors i
     WHERE i.model = 'shop' AND i.item_id <> 4 ORDER BY score(1, i.item_id, 'shop') DESC, i.item_id$$,
  'score per row agrees with recommend');
SELECT results_eq(
  $$SELECT u.user_id, score(u.user_id, 5, 'shop') FROM generate_series(1::bigint, 4) u(user_id) ORDER BY 1$$,
  $$SELECT user_id, dot::real FROM expected WHERE item_id = 5 ORDER BY 1$$,
  'score switches users row by row');

-- similar_items: cosine of item factors, the item itself left out
SELECT results_eq(
  $$SELECT item_id FROM similar_items(1, 10, 'shop') ORDER BY rank$$,
  $$SELECT b.item_id FROM it_item_factors a JOIN it_item_factors b USING (model, version)
     WHERE model = 'shop' AND a.item_id = 1 AND b.item_id <> 1
     ORDER BY pg_temp.cosine(a.factors, b.factors) DESC, b.item_id$$,
  'similar_items ranks by cosine');
SELECT ok((SELECT bool_and(abs(s.score - pg_temp.cosine(a.factors, b.factors)) < 1e-6)
             FROM similar_items(8, 10, 'shop') s
             JOIN it_item_factors a ON a.model = 'shop' AND a.item_id = 8
             JOIN it_item_factors b ON b.model = 'shop' AND b.item_id = s.item_id),
          'similar_items scores are cosines');
SELECT is((SELECT count(*) FROM similar_items(5, 100, 'shop')), 7::bigint,
          'similar_items never returns the item itself');
SELECT results_eq($$SELECT item_id, rank FROM similar_items(1, 2, 'shop')$$,
                  $$VALUES (4::bigint, 1), (7::bigint, 2)$$,
                  'similar_items ties (items 4 and 7) by item_id');
SELECT is_empty($$SELECT * FROM similar_items(NULL, 10, 'shop')$$, 'NULL item_id gives no rows');

-- errors
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'nope')$$, '42704', 'model "nope" does not exist',
                 'unknown model');
SELECT throws_ok($$SELECT score(1, 1, 'nope')$$, '42704', 'model "nope" does not exist',
                 'unknown model in score');
SELECT throws_ok($$SELECT * FROM recommend(1, 0, 'shop')$$, '22023', 'k must be positive, not 0', 'k = 0');
SELECT throws_ok($$SELECT * FROM recommend(1, -5, 'shop')$$, '22023', 'k must be positive, not -5', 'k < 0');
SELECT throws_ok($$SELECT * FROM recommend(1, 100001, 'shop')$$, '22023', 'k must be at most 100000, not 100001',
                 'k huge');
SELECT throws_ok($$SELECT * FROM recommend(1, NULL, 'shop')$$, '22004', 'k must not be NULL', 'k NULL');
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'shop', NULL)$$, '22004', 'exclude_seen must not be NULL',
                 'exclude_seen NULL');
SELECT throws_ok($$SELECT * FROM similar_items(99, 10, 'shop')$$, '42704', 'item 99 is not in model "shop"',
                 'similar_items of an unknown item');
SELECT throws_ok($$SELECT * FROM similar_items(1, 0, 'shop')$$, '22023', 'k must be positive, not 0',
                 'similar_items k = 0');

-- model NULL: the only deployed model, else interest_transfer.default_model
SELECT results_eq($$SELECT item_id FROM recommend(1, 2)$$, $$VALUES (1::bigint), (7::bigint)$$,
                  'model NULL uses the only deployed model');
SELECT pg_temp.add_version('other', 1, true, now());
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('other', 1, 100, '{1,0,0}', 1), ('other', 1, 200, '{0,1,0}', 2), ('other', 1, 300, '{0,0,1}', 3);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('other', 1, 1, '{0,0,1}', '{}');
SELECT throws_ok($$SELECT * FROM recommend(1, 2)$$, '42P08', 'the call names no model, and several are deployed',
                 'model NULL with two deployed models is an error, not whichever was deployed last');
SET LOCAL interest_transfer.default_model = 'other';
SELECT results_eq($$SELECT item_id, score FROM recommend(1, 2)$$,
                  $$VALUES (300::bigint, 1::real), (100::bigint, 0::real)$$,
                  'model NULL uses interest_transfer.default_model');
SELECT is(score(1, 300), 1::real, 'score with model NULL uses it too');
SET LOCAL interest_transfer.default_model = 'shop';
SELECT results_eq($$SELECT item_id FROM recommend(1, 2)$$, $$VALUES (1::bigint), (7::bigint)$$,
                  'changing the setting changes model NULL, in the same backend');
SET LOCAL interest_transfer.default_model = 'nope';
SELECT throws_ok($$SELECT * FROM recommend(1, 2)$$, '42704',
                 'model "nope" (interest_transfer.default_model) does not exist',
                 'a default_model that does not exist is an error naming the setting');
RESET interest_transfer.default_model;

-- a new deployed version is picked up by the same backend
SELECT results_eq($$SELECT item_id FROM recommend(3, 1, 'shop')$$, $$VALUES (6::bigint)$$,
                  'version 1 answers before the switch');
SELECT pg_temp.add_version('shop', 2, false, now());
INSERT INTO it_item_factors (model, version, item_id, factors, popularity)
SELECT 'shop', 2, item_id, ARRAY[factors[3], factors[2], factors[1]], popularity
  FROM it_item_factors WHERE model = 'shop' AND version = 1;
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'shop', 2, user_id, factors, seen FROM it_user_factors WHERE model = 'shop' AND version = 1;
SELECT results_eq($$SELECT item_id FROM recommend(3, 1, 'shop')$$, $$VALUES (6::bigint)$$,
                  'an undeployed version is not used');
SELECT deploy('shop', 2);
-- user 3 = (-0.3, 0.2, 1); version 2 reverses the item factors: item 4 = (0,1,1) scores 1.2
SELECT results_eq($$SELECT item_id, round(score::numeric, 4) FROM recommend(3, 1, 'shop')$$,
                  $$VALUES (4::bigint, 1.2)$$,
                  'deploying version 2 changes the answers in the same backend');
SELECT is(score(3, 1, 'shop'), 1::real, 'score follows the deployed version');

-- dropped and trained again: same name and version number, other factors
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'again')$$, '42704', NULL, 'model not there yet');
SELECT pg_temp.add_version('again', 1, false, now());
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'again')$$, '55000', 'model "again" has no deployed version',
                 'a model without a deployed version is an error');
UPDATE it_model SET deployed = true WHERE model = 'again';
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES ('again', 1, 1, '{1,1,1}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES ('again', 1, 3, '{1,1,1}', '{}');
SELECT results_eq($$SELECT item_id, score FROM recommend(3, 1, 'again')$$, $$VALUES (1::bigint, 3::real)$$,
                  'version 1 of model again is cached');
-- dropped and written again with no call in between: same name, version and
-- trained_at (one transaction), other rows
SELECT is(drop_model('again'), 1::bigint, 'drop_model');
SELECT pg_temp.add_version('again', 1, true, now());
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('again', 1, 1, '{0,1,0}', 1), ('again', 1, 6, '{0,0,-1}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES ('again', 1, 3, '{0,2,1}', '{}');
SELECT results_eq($$SELECT item_id, score FROM recommend(3, 10, 'again')$$,
                  $$VALUES (1::bigint, 2::real), (6::bigint, -1::real)$$,
                  'a version with the same number and trained_at but new rows is reloaded');
SELECT is(score(3, 6, 'again'), -1::real, 'score sees the new rows too');
SELECT is(drop_model('shop'), 2::bigint, 'drop_model of two versions');
SELECT throws_ok($$SELECT * FROM recommend(3, 1, 'shop')$$, '42704', 'model "shop" does not exist',
                 'a dropped model is gone from the cache');

-- the same answers from a parallel worker (a fresh backend: its own cache);
-- CREATE TABLE AS may run its query in a worker, a pgTAP call may not
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL force_parallel_mode = on;
SET LOCAL max_parallel_workers_per_gather = 1;
CREATE TEMP TABLE par_recommend AS SELECT item_id, score FROM recommend(3, 10, 'again');
CREATE TEMP TABLE par_score AS SELECT sum(score(3, g % 2 * 5 + 1, 'again')) AS s FROM generate_series(1, 100) g;
RESET force_parallel_mode;
SELECT results_eq($$SELECT item_id, score FROM par_recommend$$,
                  $$VALUES (1::bigint, 2::real), (6::bigint, -1::real)$$,
                  'recommend in a parallel worker');
SELECT is((SELECT s FROM par_score), 50::real, 'score in a parallel worker');

-- 64 factors: score() gives recommend()'s scores to the bit, and their order
INSERT INTO it_model_acl (model, owner) VALUES ('wide', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('wide', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 64}', 64, 20, 500, 0, 0, 0, '[]', array_fill(0::real, ARRAY[64]));
INSERT INTO it_item_factors (model, version, item_id, factors, popularity)
SELECT 'wide', 1, i, (SELECT array_agg(sin(i * 7.3 + j * 1.9)::real ORDER BY j) FROM generate_series(1, 64) j), i % 7
  FROM generate_series(1, 500) i;
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'wide', 1, u, (SELECT array_agg(cos(u * 3.1 + j * 0.7)::real ORDER BY j) FROM generate_series(1, 64) j),
       ARRAY[u, u + 100]::bigint[]
  FROM generate_series(1, 20) u;
SELECT is((SELECT count(*) FROM generate_series(1, 20) u, LATERAL recommend(u, 100, 'wide') r
            WHERE r.score IS DISTINCT FROM score(u, r.item_id, 'wide')), 0::bigint,
          'score() equals recommend()''s score exactly (64 factors)');
SELECT is((SELECT count(*) FROM generate_series(1, 20) u,
                  LATERAL (SELECT score, lead(score) OVER (ORDER BY rank) AS next FROM recommend(u, 500, 'wide')) r
            WHERE r.next > r.score), 0::bigint,
          'recommend()''s scores never rise with rank');
SELECT ok((SELECT bool_and(abs(r.score - pg_temp.dot(u.factors, i.factors)) < 1e-5)
             FROM it_user_factors u, LATERAL recommend(u.user_id, 500, 'wide') r, it_item_factors i
            WHERE u.model = 'wide' AND i.model = 'wide' AND i.item_id = r.item_id),
          'recommend()''s scores are x.y (64 factors)');


-- ties and near ties at the k-th place: 500 pairs of items with identical
-- factors (item i and item i + 500) and 64 factors, so that scores tie
-- exactly and, between neighbours, nearly.  The list is decided by the
-- reported scores (ties by item_id), not by the BLAS kernel's last bits:
-- asking for fewer items gives the first of the longer list.
INSERT INTO it_model_acl (model, owner) VALUES ('twins', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('twins', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 64}', 64, 20, 1000, 0, 0, 0, '[]', array_fill(0::real, ARRAY[64]));
INSERT INTO it_item_factors (model, version, item_id, factors, popularity)
SELECT 'twins', 1, i + t * 500, (SELECT array_agg(sin(i * 7.3 + j * 1.9)::real ORDER BY j) FROM generate_series(1, 64) j), i % 7
  FROM generate_series(1, 500) i, generate_series(0, 1) t;
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'twins', 1, u, (SELECT array_agg(cos(u * 3.1 + j * 0.7)::real ORDER BY j) FROM generate_series(1, 64) j), '{}'
  FROM generate_series(1, 50) u;
CREATE TEMP TABLE twins_rec AS
SELECT u, r.item_id, r.score, r.rank FROM generate_series(1, 50) u, LATERAL recommend(u, 1000, 'twins') r;
CREATE TEMP TABLE twins_sim AS
SELECT i, s.item_id, s.score, s.rank FROM generate_series(1, 40) i, LATERAL similar_items(i, 999, 'twins') s;
SELECT is((SELECT count(*) FROM twins_rec a JOIN twins_rec b ON b.u = a.u AND b.item_id = a.item_id + 500
            WHERE a.item_id <= 500 AND a.rank < b.rank AND a.score = b.score
              AND NOT EXISTS (SELECT 1 FROM twins_rec c
                               WHERE c.u = a.u AND c.rank BETWEEN a.rank AND b.rank AND c.score <> a.score)),
          50 * 500::bigint,
          'recommend: items with identical factors score the same and rank together, lower item_id first');
SELECT is((SELECT count(*) FROM generate_series(1, 50) g(uu), generate_series(1, 60) k,
                  LATERAL (SELECT array_agg(item_id ORDER BY rank) AS got FROM recommend(uu, k, 'twins')) r
            WHERE r.got IS DISTINCT FROM (SELECT array_agg(item_id ORDER BY rank) FROM twins_rec
                                           WHERE u = uu AND rank <= k)), 0::bigint,
          'recommend(u, k) is the first k of recommend(u, 1000), for every k up to 60');
SELECT is((SELECT count(*) FROM twins_sim a JOIN twins_sim b ON b.i = a.i AND b.item_id = a.item_id + 500
            WHERE a.item_id <= 500 AND a.rank < b.rank AND a.score = b.score
              AND NOT EXISTS (SELECT 1 FROM twins_sim c
                               WHERE c.i = a.i AND c.rank BETWEEN a.rank AND b.rank AND c.score <> a.score)),
          40 * 499::bigint,
          'similar_items: items with identical factors score the same and rank together, lower item_id first');
SELECT is((SELECT count(*) FROM generate_series(1, 40) g(ii), generate_series(1, 60) k,
                  LATERAL (SELECT array_agg(item_id ORDER BY rank) AS got FROM similar_items(ii, k, 'twins')) s
            WHERE s.got IS DISTINCT FROM (SELECT array_agg(item_id ORDER BY rank) FROM twins_sim
                                           WHERE i = ii AND rank <= k)), 0::bigint,
          'similar_items(i, k) is the first k of similar_items(i, 999), for every k up to 60');

-- evaluate measures recommend()'s lists, whose ties it breaks the same way:
-- with every item above 500 a positive, the 9 best hold 4 of them
CREATE TEMP TABLE twins_pos AS
SELECT u AS user_id, i AS item_id FROM generate_series(1, 50) u, generate_series(501, 1000) i;
SELECT results_eq(
  $$SELECT users, round(precision_at_k::numeric, 9), round(recall_at_k::numeric, 9), round(coverage::numeric, 9)
      FROM evaluate('twins', 'twins_pos', 9) WHERE segment = 'warm'$$,
  $$SELECT count(*), round(avg(hits / 9.0), 9), round(avg(hits / 500.0), 9),
           round((SELECT count(DISTINCT item_id) FROM twins_rec WHERE rank <= 9) / 1000.0, 9)
      FROM (SELECT u, count(*) FILTER (WHERE item_id > 500) AS hits FROM twins_rec WHERE rank <= 9 GROUP BY u) h$$,
  'evaluate: precision, recall and coverage of recommend()''s lists, ties included');
SELECT is((SELECT count(*) FROM twins_rec WHERE rank <= 9 AND item_id > 500), 50 * 4::bigint,
          'their 9 best: 4 pairs and the lower item_id of the fifth');


-- stored factors that are not finite are corrupt data, not silently NaN scores
SELECT pg_temp.add_version('nan_item', 1, true, now());
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES
  ('nan_item', 1, 1, '{1,0,0}', 1), ('nan_item', 1, 2, '{0,NaN,0}', 1);
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'nan_item')$$, 'XX001',
                 'item factors has a value that is not finite (element 2)', 'NaN in stored item factors is an error');
SELECT pg_temp.add_version('inf_user', 1, true, now());
INSERT INTO it_item_factors (model, version, item_id, factors, popularity) VALUES ('inf_user', 1, 1, '{1,0,0}', 1);
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES ('inf_user', 1, 1, '{0,0,-Infinity}', '{}');
SELECT throws_ok($$SELECT score(1, 1, 'inf_user')$$, 'XX001',
                 'user factors has a value that is not finite (element 3)', 'infinity in stored user factors is an error');
INSERT INTO it_model_acl (model, owner) VALUES ('nan_mean', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('nan_mean', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 3}', 3, 0, 0, 0, 0, 0, '[]', '{0,NaN,0}');
SELECT throws_ok($$SELECT * FROM similar_items(1, 10, 'nan_mean')$$, 'XX001',
                 'user_mean of the model has a value that is not finite (element 2)', 'NaN in a stored user_mean is an error');

SELECT * FROM finish();
ROLLBACK;

-- A user's taste in a context: vectors per (user, context), the fold-in of
-- the user's rows there around their global vector, kept per context only
-- when it beats the global vector on held-out rows.  Generated data
-- (tests/data/generate.sql): on Saturdays and Sundays every user is after
-- the next group, a planted weekend taste.  Each user's latest 20% of
-- interactions are held out; the model is trained on the rest with
-- option context 'weekpart'.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1500, items => 400, per_user => 30, groups => 8, seed => 0.42);
CREATE TABLE ranked AS
SELECT e.*, row_number() OVER (PARTITION BY user_id ORDER BY ts DESC, item_id) AS rn,
       count(*) OVER (PARTITION BY user_id) AS cnt,
       CASE WHEN extract(isodow FROM ts AT TIME ZONE 'UTC') >= 6 THEN 'weekend' ELSE 'weekday' END AS part
  FROM it_demo.events e;
CREATE TABLE ctx_train AS SELECT user_id, item_id, weight, ts FROM ranked WHERE rn > cnt / 5;
CREATE TABLE ctx_test AS SELECT DISTINCT user_id, item_id, part FROM ranked WHERE rn <= cnt / 5;
SET client_min_messages = warning;
SELECT * FROM train('ctx', 'ctx_train',
                    options => '{"factors": 16, "iterations": 8, "seed": 7, "context": "weekpart", "timezone": "UTC"}');
-- a context column: mobile on weekends, desktop otherwise, some rows without one
SELECT * FROM train('ctx_col', $$SELECT user_id, item_id, weight,
                                        CASE WHEN item_id % 10 = 0 THEN NULL
                                             WHEN extract(isodow FROM ts AT TIME ZONE 'UTC') >= 6 THEN 'mobile'
                                             ELSE 'desktop' END AS context
                                   FROM ctx_train$$,
                    options => '{"factors": 16, "iterations": 8, "seed": 7}');
SELECT * FROM train('ctx_day', 'ctx_train', options => '{"factors": 8, "iterations": 4, "context": "daypart"}');
-- the same times as timestamps without a zone (UTC wall clock), in a session of another zone
SET TimeZone = 'America/New_York';
SELECT * FROM train('ctx_wall', $$SELECT user_id, item_id, weight, ts AT TIME ZONE 'UTC' AS ts FROM ctx_train$$,
                    options => '{"factors": 16, "iterations": 8, "seed": 7, "context": "weekpart", "timezone": "Asia/Tokyo"}');
RESET TimeZone;
SELECT * FROM train('noctx', 'ctx_train', options => '{"factors": 8, "iterations": 4}');
RESET client_min_messages;

-- precision@10 of each part's held-out rows, ranked in that context and globally ('')
CREATE TEMP TABLE prec AS
WITH tu AS (SELECT DISTINCT user_id, part FROM ctx_test)
SELECT tu.part, h.how, avg(x.hits) / 10 AS p
  FROM tu CROSS JOIN (VALUES ('global'), ('context')) h(how)
 CROSS JOIN LATERAL (SELECT count(*) AS hits
                       FROM recommend(tu.user_id, 10, 'ctx', context => CASE h.how WHEN 'context' THEN tu.part ELSE '' END) r
                      WHERE EXISTS (SELECT 1 FROM ctx_test t
                                     WHERE t.user_id = tu.user_id AND t.part = tu.part AND t.item_id = r.item_id)) x
 GROUP BY 1, 2;
CREATE TEMP TABLE weekend_test AS SELECT user_id, item_id FROM ctx_test WHERE part = 'weekend';
CREATE TEMP TABLE ev_weekend AS SELECT * FROM evaluate('ctx', 'weekend_test', 10, NULL, 'weekend');
-- what evaluate counts: users with a weekend test item they did not take in training
CREATE TEMP TABLE prec_eval AS
SELECT avg(x.hits) / 10 AS p
  FROM (SELECT DISTINCT w.user_id FROM weekend_test w
         WHERE NOT EXISTS (SELECT 1 FROM ctx_train t WHERE t.user_id = w.user_id AND t.item_id = w.item_id)) u
 CROSS JOIN LATERAL (SELECT count(*) AS hits FROM recommend(u.user_id, 10, 'ctx', context => 'weekend') r
                      JOIN weekend_test w ON w.user_id = u.user_id AND w.item_id = r.item_id) x;
\o

SELECT plan(28);

-- training
SELECT is((SELECT contexts FROM it_model WHERE model = 'ctx'), ARRAY['weekday', 'weekend'],
          'option context weekpart derives weekday and weekend from ts');
SELECT is((SELECT options->>'timezone' FROM it_model WHERE model = 'ctx'), 'UTC', 'the time zone is stored');
SELECT is((SELECT (metrics->'contexts'->'weekend'->>'kept')::boolean FROM it_model WHERE model = 'ctx'), true,
          'the weekend vectors beat the global vector on held-out weekend rows, and are kept');
SELECT ok((SELECT count(*) FROM it_user_factors WHERE model = 'ctx' AND context = 'weekend')
          BETWEEN 1000 AND (SELECT count(DISTINCT user_id) FROM ctx_train),
          'users with weekend rows get a weekend vector');
SELECT is((SELECT contexts FROM it_model WHERE model = 'ctx_col'), ARRAY['desktop', 'mobile'],
          'a context column gives the contexts (NULL: no context)');
SELECT ok((SELECT contexts <@ ARRAY['afternoon', 'evening', 'morning', 'night'] FROM it_model WHERE model = 'ctx_day'),
          'option context daypart derives parts of the day');
SELECT is((SELECT count(*) FROM it_user_factors WHERE model = 'ctx_wall' AND context = 'weekend'),
          (SELECT count(*) FROM it_user_factors WHERE model = 'ctx' AND context = 'weekend'),
          'a ts without a zone is taken as the wall-clock time it is, whatever the session''s zone and option timezone');

-- serving
SELECT diag(format('held-out %s rows, precision@10: context vector %s, global vector %s', g.part,
                   round(c.p, 4), round(g.p, 4)))
  FROM prec g JOIN prec c ON c.part = g.part AND c.how = 'context' WHERE g.how = 'global' ORDER BY g.part;
SELECT ok((SELECT c.p >= 1.3 * g.p FROM prec c JOIN prec g ON g.part = c.part AND g.how = 'global'
            WHERE c.part = 'weekend' AND c.how = 'context'),
          'weekend held-out rows: the weekend vector serves at least 1.3x the global vector');
SELECT ok((SELECT c.p >= g.p FROM prec c JOIN prec g ON g.part = c.part AND g.how = 'global'
            WHERE c.part = 'weekday' AND c.how = 'context'),
          'weekday held-out rows: the weekday vector serves no worse than the global vector');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx', context => 'weekend')), 'context:weekend',
          'a context vector served says so in source');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx')),
          'context:' || CASE WHEN extract(isodow FROM now() AT TIME ZONE 'UTC') >= 6 THEN 'weekend' ELSE 'weekday' END,
          'without a context, a model of derived contexts serves the context of now() in its time zone');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx', context => '')), 'model',
          'context '''' is the global vector');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx_col', context => 'mobile')), 'context:mobile',
          'contexts of a column are served by name');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx_col')), 'model',
          'without a context, a model of a context column serves the global vector');
SELECT is((SELECT DISTINCT source FROM recommend(999999, 10, 'ctx', context => 'weekend')), 'popular',
          'a user without a vector in the context falls back as without one');
CREATE TEMP TABLE batch_ids AS SELECT ARRAY(SELECT generate_series(1, 40)::bigint) || 999999::bigint AS ids;
SELECT is((SELECT count(*) FROM (
             (SELECT b.user_id, b.item_id, b.rank, b.source
                FROM batch_ids, recommend_batch(batch_ids.ids, 10, 'ctx', context => 'weekend') b
              EXCEPT ALL
              SELECT u, r.item_id, r.rank, r.source
                FROM batch_ids, unnest(batch_ids.ids) u, recommend(u, 10, 'ctx', context => 'weekend') r)
             UNION ALL
             (SELECT u, r.item_id, r.rank, r.source
                FROM batch_ids, unnest(batch_ids.ids) u, recommend(u, 10, 'ctx', context => 'weekend') r
              EXCEPT ALL
              SELECT b.user_id, b.item_id, b.rank, b.source
                FROM batch_ids, recommend_batch(batch_ids.ids, 10, 'ctx', context => 'weekend') b)) diff),
          0::bigint,
          'recommend_batch in a context gives the rows and sources recommend gives there');
SELECT is((SELECT array_agg(DISTINCT b.source ORDER BY b.source)
             FROM batch_ids, recommend_batch(batch_ids.ids, 10, 'ctx', context => 'weekend') b),
          ARRAY['context:weekend', 'popular'],
          'recommend_batch serves the context vectors, and a user without one by popularity');
SELECT ok((SELECT abs(score(5, r.item_id, 'ctx', NULL, 'weekend') - r.score) < 1e-6
             FROM recommend(5, 1, 'ctx', context => 'weekend') r),
          'score in a context is the score recommend ranked by');
SELECT ok(abs((SELECT precision_at_k FROM ev_weekend WHERE segment = 'all')
              - (SELECT p FROM prec_eval)) < 1e-9,
          'evaluate in a context measures what recommend serves there');

-- refresh: user 5 watches the weekend group's favourites on a Saturday
CREATE TEMP TABLE before5 AS
SELECT context, factors FROM it_user_factors WHERE model = 'ctx' AND user_id = 5;
INSERT INTO ctx_train
SELECT 5, item_id, 5, '2024-03-02 12:00+00' FROM generate_series(1, 400, 37) item_id;
SELECT is(refresh('ctx', ARRAY[5]::bigint[]), 1::bigint, 'refresh folds the user in again');
SELECT ok((SELECT b.factors <> a.factors FROM before5 b JOIN it_user_factors a
             ON a.model = 'ctx' AND a.user_id = 5 AND a.context = b.context WHERE b.context = 'weekend'),
          'refresh folds the new weekend rows into the weekend vector');
SELECT is((SELECT DISTINCT source FROM recommend(5, 10, 'ctx', context => 'weekend')), 'context:weekend',
          'the refreshed weekend vector serves in the weekend');

-- errors
SELECT throws_like($$SELECT * FROM recommend(5, 10, 'ctx', context => 'holiday')$$,
                   '%has no context "holiday"%', 'an unknown context is an error with the list');
SELECT throws_ok($$SELECT * FROM recommend(5, 10, 'noctx', context => 'weekend')$$, '22023', NULL,
                 'a context for a model without contexts is an error (22023)');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT user_id, item_id, ''@x'' AS context FROM ctx_train')$$,
                 '22023', NULL, 'a context name starting with @ is refused (22023)');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT user_id, item_id, ts, ''a'' AS context FROM ctx_train',
                                       options => '{"context": "weekpart"}')$$,
                 '22023', NULL, 'option context with a context column is refused (22023)');
SELECT throws_ok($$SELECT * FROM train('bad', 'SELECT user_id, item_id FROM ctx_train',
                                       options => '{"context": "weekpart"}')$$,
                 '22023', NULL, 'option context without ts is refused (22023)');
SELECT throws_ok($$SELECT * FROM train('bad', 'ctx_train', options => '{"context": "weekpart", "timezone": "Mars/Olympus"}')$$,
                 '22023', NULL, 'an unknown time zone is refused (22023)');

SELECT * FROM finish();
ROLLBACK;

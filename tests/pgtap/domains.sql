-- Items of several domains in one model (a domain column in interactions):
-- joint training with shared user vectors, serving within a domain, the
-- source of a user whose interest comes from another domain, evaluate's
-- cross_domain segment, and the errors of a domain that is missing,
-- unknown or NULL.  Generated data (tests/data/generate.sql): every user
-- has books and videos; item ids are renumbered within each domain, so the
-- same id names a book and a video.  A deterministic 20% of the users is
-- held out of 'video' entirely and keeps their books.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1500, items => 400, per_user => 20, groups => 8, seed => 0.42);
CREATE TEMP TABLE local_items AS
SELECT item_id AS global_id, domain,
       row_number() OVER (PARTITION BY domain ORDER BY item_id) AS item_id
  FROM it_demo.items;
CREATE TEMP TABLE held AS
SELECT user_id FROM it_demo.users WHERE abs(hashint8(user_id * 7919 + 13)) % 5 = 0;
CREATE TEMP TABLE ev AS
SELECT e.user_id, l.item_id, e.weight, e.ts, l.domain
  FROM it_demo.events e JOIN local_items l ON l.global_id = e.item_id;
CREATE TEMP VIEW dom_train AS
SELECT * FROM ev WHERE domain = 'books' OR user_id NOT IN (SELECT user_id FROM held);
-- the held-out users' videos: their positives in 'video'
CREATE TEMP TABLE video_test AS
SELECT DISTINCT user_id, item_id, 'video'::text AS domain FROM ev
 WHERE domain = 'video' AND user_id IN (SELECT user_id FROM held);
SET client_min_messages = warning;
SELECT * FROM train('dom', 'dom_train', options => '{"factors": 16, "iterations": 8, "seed": 7}');
-- the same ids without the domain column, for the errors of a model without domains
SELECT * FROM train('nodom', 'SELECT user_id, item_id, weight FROM ev WHERE domain = ''books''',
                    options => '{"factors": 8, "iterations": 4, "seed": 7}');
-- held-out users ranked by their co-buyers
SELECT * FROM train('dom_nb', 'dom_train', options => '{"factors": 16, "iterations": 8, "seed": 7,
                                                        "cross_domain_ranking": "neighbours"}');
-- video weighed 3 times books (a table, which a stored source may read)
CREATE TABLE dom_w_src AS SELECT * FROM dom_train;
SELECT * FROM train('dom_w', 'dom_w_src',
                    options => '{"factors": 8, "iterations": 2, "seed": 7, "domain_weights": {"video": 3}}');
RESET client_min_messages;

-- what recommend() serves the held-out users in 'video', and video popularity
CREATE TEMP TABLE served AS
SELECT h.user_id, r.item_id, r.rank, r.source, r.score
  FROM held h CROSS JOIN LATERAL recommend(h.user_id, 10, 'dom', domain => 'video') r
 WHERE h.user_id IN (SELECT user_id FROM video_test);
CREATE TEMP TABLE video_pop AS
SELECT item_id FROM dom_train WHERE domain = 'video'
 GROUP BY item_id ORDER BY count(DISTINCT user_id) DESC, item_id LIMIT 10;
CREATE TEMP TABLE prec AS
SELECT (SELECT count(*) FROM served s JOIN video_test t USING (user_id, item_id))::numeric
         / (10 * (SELECT count(DISTINCT user_id) FROM video_test)) AS model,
       (SELECT count(*) FROM video_test t JOIN video_pop p USING (item_id))::numeric
         / (10 * (SELECT count(DISTINCT user_id) FROM video_test)) AS popularity;
CREATE TEMP TABLE ev_video AS SELECT * FROM evaluate('dom', 'video_test', 10, 'video');
CREATE TEMP TABLE served_nb AS
SELECT h.user_id, r.item_id, r.rank, r.source, r.score
  FROM held h CROSS JOIN LATERAL recommend(h.user_id, 10, 'dom_nb', domain => 'video') r
 WHERE h.user_id IN (SELECT user_id FROM video_test);
CREATE TEMP TABLE ev_video_nb AS SELECT * FROM evaluate('dom_nb', 'video_test', 10, 'video');
-- the co-buyer score of every video for three held-out users, by its definition:
-- sum over the other users who took the video of the books they share with the user,
-- plus popularity / max popularity
CREATE TEMP TABLE pop_all AS
SELECT domain, item_id, count(DISTINCT user_id)::float8 / max(count(DISTINCT user_id)) OVER () AS p
  FROM dom_train GROUP BY 1, 2;
CREATE TEMP TABLE nb_expected AS
WITH u AS (SELECT user_id FROM video_test GROUP BY user_id ORDER BY user_id LIMIT 3),
     shared AS (SELECT u.user_id, o.user_id AS other, count(DISTINCT o.item_id) AS n
                  FROM u JOIN dom_train mine ON mine.user_id = u.user_id
                  JOIN dom_train o ON o.domain = mine.domain AND o.item_id = mine.item_id AND o.user_id <> u.user_id
                 GROUP BY 1, 2)
SELECT u.user_id, p.item_id,
       p.p + coalesce((SELECT sum(s.n) FROM shared s
                        WHERE s.user_id = u.user_id
                          AND EXISTS (SELECT 1 FROM dom_train t WHERE t.user_id = s.other AND t.domain = 'video'
                                                                  AND t.item_id = p.item_id)), 0) AS score
  FROM u CROSS JOIN pop_all p WHERE p.domain = 'video';
\o

SELECT plan(38);

-- training
SELECT is((SELECT domains FROM it_model WHERE model = 'dom'), ARRAY['books', 'video'],
          'the model records its domains, sorted');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'dom'),
          (SELECT count(DISTINCT (domain, item_id)) FROM dom_train),
          'items are namespaced by domain: book 7 and video 7 are two items');
SELECT is((SELECT domains FROM it_model WHERE model = 'nodom'), NULL::text[],
          'a model trained without a domain column has no domains');

-- serving within a domain
SELECT is((SELECT count(DISTINCT user_id) FROM served), (SELECT count(DISTINCT user_id) FROM video_test),
          'every held-out user is served videos');
SELECT ok((SELECT bool_and(abs(score(s.user_id, s.item_id, 'dom', 'video') - s.score) <= 1e-5) FROM served s)
          AND (SELECT count(*) FILTER (WHERE abs(score(s.user_id, s.item_id, 'dom', 'books') - s.score) > 1e-3)
                 FROM served s) > (SELECT count(*) / 2 FROM served),
          'recommend(..., domain => ''video'') ranks videos: its scores are those of the video, not of the book with the same id');
SELECT is((SELECT array_agg(DISTINCT source) FROM served), ARRAY['domain:books'],
          'a user with books only is served videos from the shared vector, source domain:books');
SELECT diag('held-out users, video precision@10: model ' || round(model, 4) || ', popularity ' || round(popularity, 4))
  FROM prec;
SELECT cmp_ok((SELECT model FROM prec), '>=', 1.5 * (SELECT popularity FROM prec),
              'held-out users: precision@10 in video at least 1.5x video popularity');
SELECT is((SELECT array_agg(DISTINCT r.source) FROM
             (SELECT user_id FROM it_demo.users WHERE user_id NOT IN (SELECT user_id FROM held) LIMIT 20) u
             CROSS JOIN LATERAL recommend(u.user_id, 5, 'dom', true, 'video') r),
          ARRAY['model'], 'a user with videos is served from their own vector, source model (positional domain)');
SELECT ok((SELECT bool_and(abs(score(s.user_id, s.item_id, 'dom', 'video') - s.score) <= 1e-5)
             FROM served s WHERE s.rank = 1),
          'score(user, item, model, domain) is the score recommend() ranked by');
-- cosines within the books (domain index 0), computed here from the stored factors
CREATE TEMP TABLE book_cos AS
SELECT b.item_id,
       (SELECT sum(x * y) FROM unnest(a.factors, b.factors) t(x, y))
       / sqrt((SELECT sum(x * x) FROM unnest(a.factors) x) * (SELECT sum(y * y) FROM unnest(b.factors) y)) AS cos
  FROM it_item_factors a JOIN it_item_factors b ON b.model = a.model AND b.version = a.version AND b.domain = a.domain
 WHERE a.model = 'dom' AND a.domain = 0 AND a.item_id = 1 AND b.item_id <> 1;
SELECT ok(abs((SELECT score FROM similar_items(1, 1, 'dom', 'books')) - (SELECT max(cos) FROM book_cos)) < 1e-5,
          'similar_items(..., domain): the best cosine among that domain''s items');
SELECT ok(NOT EXISTS (SELECT 1 FROM similar_items(3, 400, 'dom', 'video') WHERE item_id = 3),
          'similar_items leaves the item itself out within its domain');

-- evaluate within a domain
SELECT is((SELECT users FROM ev_video WHERE segment = 'cross_domain'),
          (SELECT count(DISTINCT user_id) FROM video_test),
          'evaluate(..., domain): every held-out user is in segment cross_domain');
SELECT ok(abs((SELECT precision_at_k FROM ev_video WHERE segment = 'cross_domain') - (SELECT model FROM prec)) < 1e-9,
          'evaluate''s cross_domain precision@10 is what recommend() serves');
SELECT is((SELECT count(*) FROM evaluate('nodom', 'SELECT user_id, item_id FROM ev WHERE domain = ''books'' LIMIT 500')),
          3::bigint, 'without a domain, evaluate still returns its three segments');

-- the ranking of users new to a domain
SELECT ok((SELECT metrics->'cross_domain_ranking'->>'rule' = 'auto'
                  AND metrics->'cross_domain_ranking'->'value' ?& ARRAY['books', 'video']
                  AND (metrics->'cross_domain_ranking'->'simulated'->'video'->>'users')::int >= 30
             FROM it_model WHERE model = 'dom'),
          'cross_domain_ranking "auto" chooses per domain on users held out of it, and records the numbers');
SELECT is((SELECT options->'cross_domain_ranking' FROM it_model WHERE model = 'dom_nb'),
          '{"books": "neighbours", "video": "neighbours"}'::jsonb, 'a word given applies to every domain');
SELECT is((SELECT count(*) FROM served_nb s JOIN nb_expected e USING (user_id, item_id)
            WHERE abs(s.score - e.score) <= 1e-4 * greatest(1, e.score)),
          (SELECT count(*) FROM served_nb WHERE user_id IN (SELECT user_id FROM nb_expected)),
          'co-buyers: recommend() scores a video by the books its other users share with the user, plus popularity');
SELECT is((SELECT count(*) FROM served_nb s JOIN nb_expected e USING (user_id, item_id)
            WHERE EXISTS (SELECT 1 FROM nb_expected b WHERE b.user_id = s.user_id AND b.score > e.score + 1e-3
                             AND b.item_id NOT IN (SELECT item_id FROM served_nb x WHERE x.user_id = s.user_id))),
          0::bigint, 'co-buyers: no video left out scores higher than one served');
SELECT diag(format('held-out users, video precision@10 ranked by co-buyers: %s',
                   round((SELECT count(*) FROM served_nb s JOIN video_test t USING (user_id, item_id))::numeric
                         / (10 * (SELECT count(DISTINCT user_id) FROM video_test)), 4)));
SELECT ok((SELECT count(*) FROM served_nb s JOIN video_test t USING (user_id, item_id))::numeric
            / (10 * (SELECT count(DISTINCT user_id) FROM video_test)) >= 1.5 * (SELECT popularity FROM prec),
          'co-buyers serve the held-out users at least 1.5x video popularity');
SELECT ok(abs((SELECT precision_at_k FROM ev_video_nb WHERE segment = 'cross_domain')
              - (SELECT count(*) FROM served_nb s JOIN video_test t USING (user_id, item_id))::numeric
                / (10 * (SELECT count(DISTINCT user_id) FROM video_test))) < 1e-9,
          'evaluate ranks the cross_domain users by co-buyers as recommend() does');
SELECT throws_ok($$SELECT * FROM train('dom_bad', 'dom_train', options => '{"cross_domain_ranking": {"music": "vector"}}')$$,
                 '22023', NULL, 'a ranking for an unknown domain is an error (22023)');

-- domain weights
CREATE TEMP TABLE pairs AS
SELECT domain, user_id, item_id, sum(weight) AS w FROM dom_train GROUP BY 1, 2, 3;
SELECT is((SELECT metrics->'domain_weights'->>'rule' FROM it_model WHERE model = 'dom'), 'balanced',
          'domains are balanced by default');
SELECT ok((SELECT bool_and(abs((m.options->'domain_weights'->>d.domain)::float8 - d.most::float8 / d.c)
                           < 1e-3 * d.most / d.c)
             FROM it_model m,
                  (SELECT domain, count(*) AS c, max(count(*)) OVER () AS most FROM pairs GROUP BY domain) d
            WHERE m.model = 'dom'),
          '"balanced" weighs each domain by the largest domain''s pairs over its own, stored with the version');
SELECT is((SELECT options->'domain_weights' FROM it_model WHERE model = 'dom_w'), '{"books": 1, "video": 3}'::jsonb,
          'given weights are stored for every domain, the others 1');
SELECT ok((SELECT abs((metrics->'regularization'->>'mean_confidence')::float8
                      - (SELECT 1 + avg(w * CASE domain WHEN 'video' THEN 3 ELSE 1 END) FROM pairs))
                  < 1e-4 * (metrics->'regularization'->>'mean_confidence')::float8
             FROM it_model WHERE model = 'dom_w'),
          'training sees each domain''s weights times its scale');
SET client_min_messages = warning;
SELECT * FROM train('dom_w') \g /dev/null
SELECT * FROM train('dom_w', 'dom_w_src', options => '{"factors": 8, "iterations": 2, "seed": 7}') \g /dev/null
SELECT * FROM train('dom_w') \g /dev/null
SELECT is((SELECT array_agg(metrics->'domain_weights'->>'rule' ORDER BY version) FROM it_model WHERE model = 'dom_w'),
          ARRAY['given', 'given', 'balanced', 'balanced'],
          'train(model) keeps given weights, and works "balanced" out again');
SELECT * FROM train('dom_wide', 'dom_w_src', options => '{"factors": 4, "iterations": 2, "domain_weights": {"books": 0.01, "video": 20}}') \g /dev/null
SELECT lives_ok($$SELECT * FROM train('dom_wide')$$, 'train(model) takes back the relative weights it stored (here 1 and 2000)');
SELECT throws_like($$SELECT * FROM train('dom_bad', 'dom_train', options => '{"domain_weights": {"music": 2}}')$$,
                   '%names domain "music", which the interactions of model "dom_bad" do not have%',
                   'a weight for an unknown domain is an error');
SELECT throws_ok($$SELECT * FROM train('nodom2', 'SELECT user_id, item_id, weight FROM ev',
                                       options => '{"domain_weights": {"books": 2}}')$$,
                 '22023', NULL, 'domain weights without a domain column are an error (22023)');
SELECT throws_ok($$SELECT * FROM train('dom_bad', 'dom_train', options => '{"domain_weights": {"video": -1}}')$$,
                 '22023', NULL, 'a weight that is not a positive number is an error (22023)');

-- errors
SELECT throws_like($$SELECT * FROM recommend(1, 10, 'dom')$$,
                   '%has items of 2 domains, and no domain was given%',
                   'a model with domains needs a domain');
SELECT throws_like($$SELECT * FROM recommend(1, 10, 'dom', domain => 'music')$$,
                   '%has no domain "music"%', 'an unknown domain is an error');
SELECT throws_like($$SELECT * FROM recommend(1, 10, 'nodom', domain => 'books')$$,
                   '%has no domains, and domain "books" was given%',
                   'a domain for a model without domains is an error');
SELECT throws_like($$SELECT score(1, 1, 'dom')$$, '%no domain was given%', 'score needs the domain too');
SELECT throws_ok($$SELECT * FROM train('dom_null', 'SELECT user_id, item_id, weight,
                                         CASE WHEN user_id = 5 THEN NULL ELSE domain END AS domain FROM ev')$$,
                 '22004', NULL, 'a NULL domain in interactions is an error (22004)');
SELECT throws_ok($$SELECT refresh('dom')$$, '0A000', NULL, 'refresh of a model with domains is refused (0A000)');
SELECT throws_ok($$SELECT * FROM recommend_for('{}', '{1, 2}', 10, 'dom')$$, '0A000', NULL,
                 'recommend_for with items of a model with domains is refused (0A000)');
SELECT throws_ok($$SELECT * FROM train('dom_items', 'dom_train', item_features => 'it_demo.items')$$, '0A000', NULL,
                 'item_features with a domain column is refused (0A000)');

SELECT * FROM finish();
ROLLBACK;

-- Interest from a user's links (train's user_links): a new user without
-- behaviour but with friends gets a prior learned from their friends'
-- vectors (and their features when the model has user features).
-- Generated data (tests/data/generate.sql): every user has 3 to 8 links,
-- 80% within their hidden group.  A deterministic 20% of the users is new:
-- none of their interactions is trained.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1500, items => 400, per_user => 20, groups => 8, seed => 0.42);
CREATE TABLE newu AS SELECT user_id FROM it_demo.users WHERE abs(hashint8(user_id * 7919 + 13)) % 5 = 0;
CREATE TABLE soc_train AS
SELECT user_id, item_id, weight FROM it_demo.events WHERE user_id NOT IN (SELECT user_id FROM newu);
CREATE TABLE soc_test AS
SELECT DISTINCT user_id, item_id FROM it_demo.events WHERE user_id IN (SELECT user_id FROM newu);
CREATE TABLE links AS SELECT * FROM it_demo.links;
CREATE VIEW feats AS SELECT user_id, age, gender, region, income FROM it_demo.users;
SET client_min_messages = warning;
SELECT * FROM train('soc', 'soc_train', options => '{"factors": 16, "iterations": 8, "seed": 7}',
                    user_links => 'links');
SELECT * FROM train('socf', 'soc_train', user_features => 'feats',
                    options => '{"factors": 16, "iterations": 8, "seed": 7}', user_links => 'links');
SELECT * FROM train('feat', 'soc_train', user_features => 'feats',
                    options => '{"factors": 16, "iterations": 8, "seed": 7}');
RESET client_min_messages;

-- new users with at least 3 links to trained users
CREATE TEMP TABLE three AS
SELECT user_id FROM links
 WHERE user_id IN (SELECT user_id FROM newu) AND linked_user_id NOT IN (SELECT user_id FROM newu)
 GROUP BY 1 HAVING count(*) >= 3;
CREATE TEMP TABLE served AS
SELECT v.model, t.user_id, r.item_id, r.source
  FROM (VALUES ('soc'), ('socf'), ('feat')) v(model) CROSS JOIN three t
 CROSS JOIN LATERAL recommend(t.user_id, 10, v.model) r;
CREATE TEMP TABLE prec AS
SELECT v.model, (SELECT count(*) FROM served s JOIN soc_test x USING (user_id, item_id) WHERE s.model = v.model)::numeric
                / (10 * (SELECT count(*) FROM three)) AS p
  FROM (VALUES ('soc'), ('socf'), ('feat')) v(model)
UNION ALL
SELECT 'popularity', (SELECT count(*) FROM three t
                        JOIN soc_test x ON x.user_id = t.user_id
                        JOIN (SELECT item_id FROM soc_train GROUP BY 1 ORDER BY count(DISTINCT user_id) DESC, item_id LIMIT 10) p
                          ON p.item_id = x.item_id)::numeric / (10 * (SELECT count(*) FROM three));
\o

SELECT plan(14);

SELECT is((SELECT in_use FROM it_prior WHERE model = 'soc' AND kind = 'social'), true,
          'the social prior beats popularity on held-out trained users, and is kept');
SELECT is((SELECT user_links_source FROM it_model WHERE model = 'soc'), 'links',
          'the user_links source is stored with the definition');
SELECT ok((SELECT metrics->'notices' FROM it_prior WHERE model = 'soc' AND kind = 'social')::text
          LIKE '%' || (SELECT count(*) FROM links WHERE user_id = linked_user_id) || ' self-links%',
          'self-links are ignored, and a NOTICE counts them');
SELECT is((SELECT array_agg(DISTINCT source) FROM served WHERE model = 'soc'), ARRAY['social'],
          'new users with links are served from them, source social');
SELECT diag(format('new users with >= 3 links, precision@10: links %s, features + links %s, features %s, popularity %s',
                   round((SELECT p FROM prec WHERE model = 'soc'), 4), round((SELECT p FROM prec WHERE model = 'socf'), 4),
                   round((SELECT p FROM prec WHERE model = 'feat'), 4), round((SELECT p FROM prec WHERE model = 'popularity'), 4)));
SELECT ok((SELECT p FROM prec WHERE model = 'soc') >= 1.5 * (SELECT p FROM prec WHERE model = 'popularity'),
          'the social prior serves them at least 1.5x popularity');
SELECT ok((SELECT p FROM prec WHERE model = 'socf') > (SELECT p FROM prec WHERE model = 'feat'),
          'features and links serve them better than features alone');
SELECT is((SELECT DISTINCT source FROM recommend(999999, 10, 'soc')),
          'popular', 'a new user without links gets what a new user gets');

-- a new user with links who starts interacting is folded in around the social prior
INSERT INTO soc_train SELECT (SELECT min(user_id) FROM three), item_id, 3 FROM generate_series(1, 3) item_id;
SELECT is((SELECT DISTINCT source FROM recommend((SELECT min(user_id) FROM three), 10, 'soc')), 'fold_in',
          'with rows of their own they are folded in');
SELECT is((SELECT refresh('soc', ARRAY[(SELECT min(user_id) FROM three)]::bigint[])), 1::bigint,
          'refresh reads their links again and stores their folded-in vector');
DELETE FROM soc_train WHERE user_id = (SELECT min(user_id) FROM three);

-- train(model) reads the links again
\o /dev/null
SET client_min_messages = warning;
SELECT * FROM train('soc');
RESET client_min_messages;
\o
SELECT is((SELECT count(*) FROM it_prior WHERE model = 'soc' AND kind = 'social'), 2::bigint,
          'train(model) trains the social prior again from the stored user_links');

-- errors
SELECT throws_ok($$SELECT * FROM train('bad', 'soc_train', user_links => 'SELECT user_id, NULL::bigint AS linked_user_id FROM links')$$,
                 '22004', NULL, 'a NULL linked_user_id is an error (22004)');
SELECT throws_ok($$SELECT * FROM train('bad', 'soc_train', user_links => 'SELECT user_id, linked_user_id, -1 AS weight FROM links')$$,
                 '22023', NULL, 'a negative link weight is an error (22023)');
SELECT throws_ok($$SELECT * FROM train('bad', 'soc_train', user_links => 'SELECT user_id, linked_user_id, NULL::real AS weight FROM links')$$,
                 '22004', NULL, 'a NULL link weight is an error (22004)');
SELECT throws_ok($$SELECT * FROM train('bad', 'soc_train', user_links => 'SELECT user_id FROM links')$$,
                 '42703', NULL, 'user_links without linked_user_id is an error (42703)');

SELECT * FROM finish();
ROLLBACK;

-- Installing into a schema of its own, next to an application that has a
-- table called models (and train, score ... in its own schema): every
-- function works schema-qualified and with the schema on the search_path.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
SET LOCAL client_min_messages = warning;

SELECT plan(12);

DROP EXTENSION IF EXISTS interest_transfer CASCADE;
CREATE TABLE public.models (id serial PRIMARY KEY, name text);   -- the application's
INSERT INTO public.models (name) VALUES ('car'), ('bike');

SELECT throws_ok($$CREATE EXTENSION interest_transfer$$, '42P07', NULL,
                 'into public, the name models collides with the application''s table');
CREATE SCHEMA recs;
SELECT lives_ok($$CREATE EXTENSION interest_transfer SCHEMA recs$$, 'into its own schema it installs');
SELECT is((SELECT count(*) FROM public.models), 2::bigint, 'the application''s table is untouched');

CREATE TABLE public.it_s_ev AS
SELECT u AS user_id, 10 * (u % 3) + 1 + (u + j) % 6 AS item_id FROM generate_series(1, 60) u, generate_series(0, 3) j;

-- schema-qualified calls, with the default search_path
SELECT is((SELECT version FROM recs.train('shop', 'it_s_ev', options => '{"factors": 4, "iterations": 6}')), 1,
          'recs.train');
SELECT is((SELECT count(*) FROM recs.recommend(1, 3)), 3::bigint, 'recs.recommend, model NULL');
SELECT is((SELECT count(*) FROM recs.recommend(1000, 3, 'shop')), 3::bigint, 'a cold user');
SELECT ok(recs.score(1, 2, 'shop') IS NOT NULL, 'recs.score');
SELECT is((SELECT count(*) FROM recs.similar_items(2, 3, 'shop')), 3::bigint, 'recs.similar_items');
SELECT is((SELECT count(*) FROM recs.models WHERE model = 'shop'), 1::bigint, 'recs.models');
SELECT is((SELECT segment FROM recs.evaluate('shop', 'SELECT user_id, item_id FROM it_s_ev', 5) WHERE segment = 'all'),
          'all', 'recs.evaluate');

-- with the schema on the search_path after the application's
SET LOCAL search_path = public, recs;
SELECT is((SELECT version FROM train('shop')), 2, 'train(model) found through the search_path');
SELECT is((SELECT count(*) FROM recommend(1, 3)), 3::bigint, 'and recommend');

SELECT * FROM finish();
ROLLBACK;

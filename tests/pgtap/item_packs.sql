-- Item packs (it_item_packs): every version train() writes holds its items
-- also as a few large rows, which a backend loads instead of the rows.  The
-- packs hold exactly the rows (domains, new items from item features, items
-- a refresh adds); a model loaded from them serves what the same model
-- loaded from the rows serves; a broken pack is an error, not a wrong
-- answer; drop_model removes them; other roles cannot read them.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\ir lib/as_role.psql
SELECT plan(24);

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 300, items => 1200, per_user => 15, groups => 6, seed => 0.42);
SET client_min_messages = warning;
CREATE TEMP VIEW ip_dom_ev AS
SELECT e.user_id, e.item_id, e.weight, i.domain FROM it_demo.events e JOIN it_demo.items i USING (item_id);
-- 512 factors: 512 items per pack (2^18 values), so each domain has several
SELECT * FROM train('ip_dom', 'ip_dom_ev', options => '{"factors": 512, "iterations": 1, "seed": 7}');
-- items 901..1200 have no interactions: new items from their features
SELECT * FROM train('ip_new', 'SELECT user_id, item_id, weight FROM it_demo.events WHERE item_id <= 900',
                    item_features => 'it_demo.items', options => '{"factors": 8, "iterations": 4, "seed": 7}');
-- a few items: packs small enough to be stored in the row
CREATE TABLE ip_tiny_ev AS
SELECT u AS user_id, 100 * ((u - 1) / 10) + (u + j) % 6 + 1 AS item_id, 1 + (u + j) % 3 AS weight
  FROM generate_series(1, 30) u, generate_series(0, 3) j;
SELECT * FROM train('ip_tiny', 'ip_tiny_ev', options => '{"factors": 4, "iterations": 4}');
RESET client_min_messages;
\o

-- the packs of a version, one row per item, in pack order
CREATE FUNCTION pg_temp.packed(m text) RETURNS TABLE (chunk int, domain smallint, item_id bigint,
                                                      popularity bigint, factors real[], norm real)
LANGUAGE sql AS $$
    SELECT p.chunk, p.domain, i.id, p.popularity[i.n],
           p.factors[(i.n - 1) * v.factors + 1 : i.n * v.factors], p.norms[i.n]
      FROM it_item_packs p JOIN it_model v USING (model, version)
     CROSS JOIN LATERAL unnest(p.item_ids) WITH ORDINALITY AS i(id, n)
     WHERE p.model = m AND v.deployed
     ORDER BY p.chunk, i.n
$$;

-- ---------------------------------------------------------------------
-- what train() writes
-- ---------------------------------------------------------------------
SELECT ok((SELECT count(*) = (SELECT sum(ceil(n / 512.0)) FROM (SELECT count(*) AS n FROM it_item_factors
                                                                   WHERE model = 'ip_dom' GROUP BY domain) d)
                   AND max(items) = 512 AND count(DISTINCT domain) = 2
             FROM it_item_packs WHERE model = 'ip_dom'),
          'train writes packs of at most 2^18 factor values (512 items at 512 factors) of one domain each');
SELECT ok((SELECT bool_and(cardinality(item_ids) = items AND cardinality(popularity) = items
                           AND cardinality(norms) = items AND cardinality(factors) = items * 512)
             FROM it_item_packs WHERE model = 'ip_dom'),
          'each pack holds items ids, popularities and norms, and items * factors values');
SELECT results_eq($$SELECT domain, item_id, popularity, factors FROM pg_temp.packed('ip_dom')$$,
                  $$SELECT domain, item_id, popularity, factors FROM it_item_factors
                     WHERE model = 'ip_dom' AND version = 1 ORDER BY domain, item_id$$,
                  'the packs hold every item row, in (domain, item_id) order: ids, popularity and factors');
SELECT is((SELECT count(*) FROM pg_temp.packed('ip_dom')
            WHERE abs(norm - (SELECT sqrt(sum(f::float8 * f)) FROM unnest(factors) f)) > 1e-6 * norm),
          0::bigint, 'and the length of each item''s factors');
SELECT is((SELECT count(*) FROM it_item_factors WHERE model = 'ip_new' AND source = 'features'),
          (SELECT count(*) FROM it_demo.items
            WHERE item_id NOT IN (SELECT item_id FROM it_demo.events WHERE item_id <= 900)),
          'ip_new has new items: those of item_features without interactions');
SELECT results_eq($$SELECT item_id, popularity, factors FROM pg_temp.packed('ip_new')$$,
                  $$SELECT item_id, popularity, factors FROM it_item_factors
                     WHERE model = 'ip_new' AND version = 1 ORDER BY item_id$$,
                  'the packs hold the new items of the features prior too');
SELECT results_eq($$SELECT item_id, factors FROM pg_temp.packed('ip_tiny')$$,
                  $$SELECT item_id, factors FROM it_item_factors WHERE model = 'ip_tiny' ORDER BY item_id$$,
                  'and the items of a small model, in one pack');

-- the values in the TOAST table of it_item_packs
CREATE FUNCTION pg_temp.toasted_values() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(DISTINCT chunk_id) FROM %s',
                   (SELECT reltoastrelid::regclass FROM pg_class WHERE oid = 'it_item_packs'::regclass)) INTO n;
    RETURN n;
END $$;
SELECT ok((SELECT bool_and(pg_column_compression(factors) IS NULL AND pg_column_compression(item_ids) IS NULL)
             FROM it_item_packs)
          AND pg_temp.toasted_values() >= 3 * (SELECT count(*) FROM it_item_packs WHERE model = 'ip_dom'),
          'the packs are stored uncompressed, the large ones out of line (read straight into the model)');

-- ---------------------------------------------------------------------
-- loaded from packs or from rows: the same model
-- ---------------------------------------------------------------------
CREATE TEMP TABLE ip_users AS SELECT user_id FROM it_demo.users ORDER BY user_id LIMIT 25;
-- what the deployed version serves: top 20 of two domains, scores, similar items
CREATE FUNCTION pg_temp.served(m text, domains text[]) RETURNS TABLE (what text, u bigint, item_id bigint, rank int, score real)
LANGUAGE sql AS $$
    SELECT 'recommend ' || coalesce(d, ''), x.user_id, r.item_id, r.rank, r.score
      FROM ip_users x CROSS JOIN unnest(coalesce(domains, ARRAY[NULL::text])) d
     CROSS JOIN LATERAL recommend(x.user_id, 20, m, domain => d) r
    UNION ALL
    SELECT 'score', x.user_id, i.item_id, 0, score(x.user_id, i.item_id, m, CASE WHEN domains IS NOT NULL THEN i.domain END)
      FROM ip_users x CROSS JOIN (SELECT item_id, domain FROM it_demo.items WHERE item_id % 97 = 1) i
    UNION ALL
    SELECT 'similar', s.item_id, t.item_id, t.rank, t.score
      FROM (SELECT DISTINCT ON (domain) item_id, domain FROM it_item_factors
             WHERE model = m ORDER BY domain, item_id DESC) s
     CROSS JOIN LATERAL similar_items(s.item_id, 10, m, domain => (SELECT domains[s.domain + 1] FROM it_model
                                                                     WHERE model = m AND deployed)) t
$$;
CREATE TEMP TABLE ip_from_packs AS
SELECT 'ip_dom'::text AS m, * FROM pg_temp.served('ip_dom', ARRAY['books', 'video'])
UNION ALL SELECT 'ip_new', * FROM pg_temp.served('ip_new', NULL)
UNION ALL SELECT 'ip_tiny', 'tiny', u.user_id, r.item_id, r.rank, r.score
  FROM generate_series(1, 30) u(user_id) CROSS JOIN LATERAL recommend(u.user_id, 5, 'ip_tiny') r;
SELECT ok((SELECT count(*) FILTER (WHERE what LIKE 'recommend%') = 25 * 20 * 3 AND count(*) FILTER (WHERE what = 'similar') = 30
                   AND count(*) FILTER (WHERE what = 'tiny') = 30 * 5 AND count(*) FILTER (WHERE what = 'score') = 25 * 13 * 2
             FROM ip_from_packs),
          'served from the packs: 20 items for each user and domain, 10 similar items, scores');

-- a broken pack: an error that says so, before any answer
UPDATE it_item_packs SET item_ids = item_ids[2:] || item_ids[1] WHERE model = 'ip_dom' AND chunk = 0;
UPDATE it_model SET refreshed_at = now() WHERE model = 'ip_dom';   -- a new row: backends reload
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'ip_dom', domain => 'books')$$, 'XX001',
                 'item pack 0 of version 1 of model "ip_dom" is invalid: its item ids are not ascending after the previous pack''s',
                 'a pack whose ids are out of order is corrupt data (XX001)');
UPDATE it_item_packs SET item_ids = (SELECT array_agg(i ORDER BY i) FROM unnest(item_ids) i) WHERE model = 'ip_dom' AND chunk = 0;
UPDATE it_item_packs SET norms = norms[2:] WHERE model = 'ip_dom' AND chunk = 2;
UPDATE it_model SET refreshed_at = now() WHERE model = 'ip_dom';
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'ip_dom', domain => 'books')$$, 'XX001',
                 (SELECT format('item pack 2 of version 1 of model "ip_dom" is invalid: norms is not an array of %s values without NULLs', items)
                    FROM it_item_packs WHERE model = 'ip_dom' AND chunk = 2),
                 'so is a pack with a norm missing');
UPDATE it_item_packs SET norms = norms || 1::real WHERE model = 'ip_dom' AND chunk = 2;
UPDATE it_item_packs SET factors = factors[1:511] || 'NaN'::real || factors[513:] WHERE model = 'ip_dom' AND chunk = 0;
UPDATE it_model SET refreshed_at = now() WHERE model = 'ip_dom';
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'ip_dom', domain => 'books')$$, 'XX001',
                 'item pack 0 of version 1 of model "ip_dom" is invalid: factors has a value that is not finite',
                 'and one with a factor that is not finite');
UPDATE it_item_packs SET items = items + 1 WHERE model = 'ip_tiny';
UPDATE it_model SET refreshed_at = now() WHERE model = 'ip_tiny';
SELECT throws_ok($$SELECT * FROM recommend(1, 10, 'ip_tiny')$$, 'XX001',
                 'item pack 0 of version 1 of model "ip_tiny" is invalid: item_ids is not an array of 19 values without NULLs',
                 'and one whose item count is not its arrays'' (a pack stored in its row)');

-- without packs (a version written before them) the rows are read
DELETE FROM it_item_packs WHERE model IN ('ip_dom', 'ip_new', 'ip_tiny');
UPDATE it_model SET refreshed_at = now() WHERE model IN ('ip_dom', 'ip_new', 'ip_tiny');
CREATE TEMP TABLE ip_from_rows AS
SELECT 'ip_dom'::text AS m, * FROM pg_temp.served('ip_dom', ARRAY['books', 'video'])
UNION ALL SELECT 'ip_new', * FROM pg_temp.served('ip_new', NULL)
UNION ALL SELECT 'ip_tiny', 'tiny', u.user_id, r.item_id, r.rank, r.score
  FROM generate_series(1, 30) u(user_id) CROSS JOIN LATERAL recommend(u.user_id, 5, 'ip_tiny') r;
SELECT is((SELECT count(*) FROM ip_from_rows), (SELECT count(*) FROM ip_from_packs),
          'served from the rows: as many answers');
SELECT is((SELECT count(*) FROM ip_from_packs p FULL JOIN ip_from_rows r USING (m, what, u, item_id, rank)
            WHERE p.m IS NULL OR r.m IS NULL),
          0::bigint, 'the same items in the same ranks for every user, domain and model');
SELECT ok((SELECT max(abs(p.score - r.score)) FROM ip_from_packs p JOIN ip_from_rows r USING (m, what, u, item_id, rank)) < 1e-6,
          'with the same scores');

-- ---------------------------------------------------------------------
-- refresh, drop_model, privileges
-- ---------------------------------------------------------------------
SELECT is((SELECT count(*) FROM it_item_packs WHERE model = 'ip_new'), 0::bigint, 'ip_new has no packs now');
INSERT INTO it_demo.items (item_id, category, brand, price, domain, added)
SELECT 5000 + item_id, category, brand, price, domain, added FROM it_demo.items WHERE item_id IN (901, 902);
SET client_min_messages = warning;
SELECT refresh('ip_new') \g /dev/null
RESET client_min_messages;
SELECT results_eq($$SELECT item_id, popularity, factors FROM pg_temp.packed('ip_new')$$,
                  $$SELECT item_id, popularity, factors FROM it_item_factors
                     WHERE model = 'ip_new' AND version = 1 ORDER BY item_id$$,
                  'a refresh that adds items writes the packs of every item of the version');
SELECT ok((SELECT count(*) = 2 FROM pg_temp.packed('ip_new') WHERE item_id > 5000), 'the new ones among them');
SELECT set_has($$SELECT item_id FROM recommend(1, 1202, 'ip_new')$$, $$VALUES (5901::bigint), (5902::bigint)$$,
               'and the reloaded model serves them');
INSERT INTO it_demo.items (item_id, category, brand, price, domain, added)
SELECT 6000 + item_id, category, brand, price, domain, added FROM it_demo.items WHERE item_id = 903;
SET client_min_messages = warning;
SELECT refresh('ip_new') \g /dev/null
RESET client_min_messages;
SELECT is((SELECT sum(items) FROM it_item_packs WHERE model = 'ip_new'),
          (SELECT count(*) FROM it_item_factors WHERE model = 'ip_new'),
          'a second refresh replaces them: still one packed item per row');

SELECT is(drop_model('ip_new'), 1::bigint, 'drop_model deletes the version');
SELECT is((SELECT count(*) FROM it_item_packs WHERE model = 'ip_new'), 0::bigint, 'and its packs');
CREATE ROLE it_ip_other;
\o /dev/null
SELECT grant_model('ip_dom', 'it_ip_other');
\o
SELECT is(pg_temp.as_role('it_ip_other', 'SELECT count(*)::text FROM it_item_packs'), '42501',
          'a role that may use a model still cannot read the tables: not the packs either');

SELECT * FROM finish();
ROLLBACK;

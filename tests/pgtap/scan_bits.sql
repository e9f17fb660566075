-- interest_transfer.scan_bits: recommend() scans the items' 4-bit copy
-- first (then the 8-bit copy's blocks that can hold the best items, then
-- exact scores) and returns the very rows of the 8-bit scan: whole
-- models, one domain of a model with domains, the seen items left out,
-- over threads; and nothing it leaves out scores above what it returns.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 500, items => 900, per_user => 20, groups => 6, seed => 0.27);
SET client_min_messages = warning;
SELECT * FROM train('bits', 'it_demo.events', options => '{"factors": 12, "iterations": 5, "seed": 3}');
-- the same events with the generator's two domains
SELECT * FROM train('bits_dom', 'SELECT e.user_id, e.item_id, e.weight, i.domain
                                   FROM it_demo.events e JOIN it_demo.items i USING (item_id)',
                    options => '{"factors": 12, "iterations": 5, "seed": 3}');
RESET client_min_messages;
CREATE FUNCTION pg_temp.top(bits text, model text, dom text DEFAULT NULL, threads int DEFAULT 0)
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank int, source text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('interest_transfer.scan_bits', bits, true);
    PERFORM set_config('interest_transfer.scan_threads', threads::text, true);
    RETURN QUERY SELECT u, r.item_id, r.score, r.rank, r.source
                   FROM generate_series(1::bigint, 500) u, LATERAL recommend(u, 10, model, domain => dom) r;
END $$;
CREATE TEMP TABLE eight AS SELECT * FROM pg_temp.top('8', 'bits');
CREATE TEMP TABLE four AS SELECT * FROM pg_temp.top('4', 'bits');
CREATE TEMP TABLE eight_dom AS SELECT * FROM pg_temp.top('8', 'bits_dom', 'video');
-- every unseen item's exact score for 40 users, from the stored factors
CREATE TEMP TABLE item_vec AS
SELECT t.item_id, p.factors[(t.o - 1) * 12 + 1 : t.o * 12] AS factors
  FROM it_item_packs p, unnest(p.item_ids) WITH ORDINALITY AS t(item_id, o)
 WHERE p.model = 'bits';
CREATE TEMP TABLE exact AS
SELECT u.user_id, i.item_id, (SELECT sum(a * b) FROM unnest(u.factors, i.factors) AS t(a, b)) AS score
  FROM it_user_factors u, item_vec i
 WHERE u.model = 'bits' AND u.user_id <= 40 AND NOT i.item_id = ANY (u.seen);
-- a version without items (its rows written directly)
INSERT INTO it_model_acl (model, owner) VALUES ('bits_empty', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('bits_empty', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 2}', 2, 1, 0, 0, 0, 0,
        '[]', '{0,0}');
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES ('bits_empty', 1, 1, '{1,0.25}', '{}');
\o

SELECT plan(11);

SELECT is((SELECT boot_val FROM pg_settings WHERE name = 'interest_transfer.scan_bits'), 'auto',
          'automatic by default');
SELECT is((SELECT count(*) FROM four), 5000::bigint, 'ten items for each of 500 users');
SELECT is((SELECT count(*) FROM (SELECT * FROM four EXCEPT SELECT * FROM eight) d), 0::bigint,
          '4 bits: every row (item, score, rank, source) as the 8-bit scan gives it');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top('4', 'bits', threads => 3) EXCEPT SELECT * FROM eight) d),
          0::bigint, '4 bits over three threads: the same rows');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top('auto', 'bits') EXCEPT SELECT * FROM eight) d),
          0::bigint, 'automatic (8 bits for so few items): the same rows');
SELECT ok((SELECT count(*) FROM eight_dom) > 4000, 'one domain of a model with domains: most users get ten videos');
SELECT is((SELECT count(*) FROM (SELECT * FROM pg_temp.top('4', 'bits_dom', 'video') EXCEPT SELECT * FROM eight_dom) d),
          0::bigint, 'one domain at 4 bits: the rows of the 8-bit scan');
-- what it returns against the exact scores of everything it could have returned
SELECT is((SELECT count(*)
             FROM exact x
             JOIN (SELECT user_id, min(score) AS tenth FROM four WHERE user_id <= 40 GROUP BY user_id) f
               USING (user_id)
            WHERE x.score > f.tenth + 1e-4 * (abs(f.tenth) + 1)
              AND NOT EXISTS (SELECT 1 FROM four r WHERE r.user_id = x.user_id AND r.item_id = x.item_id)),
          0::bigint, 'no unseen item left out scores above the tenth returned');
SET LOCAL interest_transfer.scan_bits = '4';
SELECT is((SELECT count(*) FROM recommend(1, 4, 'bits_empty')), 0::bigint, 'a version without items: no rows at 4 bits');
SET LOCAL interest_transfer.scan_bits = '8';
SELECT is((SELECT count(*) FROM recommend(1, 4, 'bits_empty')), 0::bigint, 'and at 8');
SELECT throws_ok($$SET interest_transfer.scan_bits = '2'$$, '22023', NULL, 'bits other than 4 or 8 are refused');

SELECT * FROM finish();
ROLLBACK;

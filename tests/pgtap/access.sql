-- Who may read what: the raw tables are the extension's, a model is used,
-- trained and managed by the roles its owner allows, a stored source runs
-- with its owner's rights (never the caller's), and a role that owns or
-- uses models cannot be dropped until they are given away.  Three roles:
-- alice owns models, bob serves recommendations, carol trains.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS interest_transfer;
SET LOCAL client_min_messages = warning;

\ir lib/as_role.psql
SELECT plan(65);

CREATE ROLE it_a_alice;
CREATE ROLE it_a_bob;
CREATE ROLE it_a_carol;
CREATE ROLE it_a_dave;
GRANT it_a_bob TO it_a_dave;    -- dave inherits what bob may do

-- 60 users in 3 groups of 20; group g uses items 10 g + 1 .. 10 g + 8
CREATE TABLE it_a_ev AS
SELECT u AS user_id, 10 * ((u - 1) / 20) + 1 + (u + j) % 8 AS item_id, 1 + j % 2 AS weight
  FROM generate_series(1, 60) u, generate_series(0, 4) j;
-- a user who is not trained on, in group 0's items
CREATE TABLE it_a_late (user_id bigint, item_id bigint, weight int);   -- filled after training
GRANT SELECT ON it_a_ev, it_a_late TO it_a_alice;
GRANT SELECT ON it_a_ev TO it_a_carol;
CREATE TABLE it_a_bob_secret (note text);
INSERT INTO it_a_bob_secret VALUES ('bob''s private note');
GRANT SELECT ON it_a_bob_secret TO it_a_bob;

-- runs q as role r with search_path path; returns its first column, or the SQLSTATE it failed with
CREATE FUNCTION pg_temp.as_role_path(r text, path text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    res text;
BEGIN
    EXECUTE format('SET LOCAL ROLE %I', r);
    PERFORM set_config('search_path', path, true);
    EXECUTE q INTO res;
    RESET ROLE;
    RESET search_path;
    RETURN coalesce(res, 'null');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;

-- ---------------------------------------------------------------------
-- the raw tables
-- ---------------------------------------------------------------------
SELECT is((SELECT count(*) FROM unnest(ARRAY['it_model', 'it_model_acl', 'it_user_factors', 'it_item_factors',
                                             'it_prior', 'it_role_pin']) t
            WHERE has_table_privilege('public', t, 'SELECT')
               OR has_table_privilege('public', t, 'INSERT')
               OR has_table_privilege('public', t, 'UPDATE')
               OR has_table_privilege('public', t, 'DELETE')), 0::bigint,
          'no raw table of the extension is readable or writable by PUBLIC');

SELECT is(pg_temp.as_role('it_a_alice', $$SELECT version FROM train('am', 'it_a_ev', options => '{"factors": 4, "iterations": 6}')$$),
          '1', 'alice trains model am');
SELECT is((SELECT owner::text FROM models WHERE model = 'am'), 'it_a_alice', 'the models view names her as owner');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM it_user_factors$$), '42501',
          'bob cannot read the users'' vectors and histories');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT count(*) FROM it_user_factors$$), '42501',
          'nor can the model''s owner read the raw table');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM models WHERE model = 'am'$$), '0',
          'bob does not see alice''s model in the models view');

-- ---------------------------------------------------------------------
-- use
-- ---------------------------------------------------------------------
SELECT is(pg_temp.as_role_msg('it_a_bob', $$SELECT count(*) FROM recommend(1, 5, 'am')$$),
          '42501: permission denied for model "am"', 'bob may not use it: insufficient_privilege');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT score(1, 2, 'am')::text$$), '42501', 'nor score with it');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM similar_items(2, 3, 'am')$$), '42501', 'nor similar_items');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend_for('{}', '{1}', 3, 'am')$$), '42501', 'nor recommend_for');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM evaluate('am', 'SELECT 1 AS user_id, 2 AS item_id')$$),
          '42501', 'nor evaluate');
SELECT is(has_model_privilege('am', 'use', 'it_a_bob'), false, 'has_model_privilege agrees');
SELECT is(pg_temp.as_role_msg('it_a_carol', $$SELECT grant_model('am', 'it_a_bob', 'use')::text$$),
          '42501: must be owner of model "am"', 'only the owner grants');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_bob', 'use')::text$$), '', 'alice grants bob use');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend(1, 5, 'am')$$), '5', 'bob is served now');
SELECT is(pg_temp.as_role('it_a_dave', $$SELECT count(*) FROM recommend(1, 5, 'am')$$), '5',
          'and so is a member of bob''s role');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM models WHERE model = 'am'$$), '1',
          'and sees the model in the models view');
SELECT is(has_model_privilege('am', 'use', 'it_a_bob') AND NOT has_model_privilege('am', 'train', 'it_a_bob'), true,
          'has_model_privilege: use, not train');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT deploy('am', 1)::text$$), '42501', 'use does not let bob deploy');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT version FROM train('am')$$), '42501', 'nor retrain');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT refresh('am')::text$$), '42501', 'nor refresh');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT grant_model('am', 'it_a_carol', 'use')::text$$), '42501',
          'nor grant the model to others');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT drop_model('am')::text$$), '42501', 'nor drop it');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_bob', 'owner')::text$$), '22023',
          'ownership is not a grantable privilege');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_bob', 'read')::text$$), '22023',
          'an unknown privilege is an error');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_nobody', 'use')::text$$), '42704',
          'a role that does not exist is an error');

-- ---------------------------------------------------------------------
-- train
-- ---------------------------------------------------------------------
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_carol', 'train')::text$$), '',
          'alice lets carol train');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT version FROM train('am')$$), '2',
          'carol retrains am with its stored definition');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT deploy('am', 1)::text$$), '', 'and deploys a version');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT count(*) FROM recommend(1, 5, 'am')$$), '5', 'train includes use');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT version FROM train('am', 'it_a_ev', options => '{"factors": 2}')$$),
          '42501', 'but only the owner gives a model a new definition');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT drop_model('am')::text$$), '42501', 'or drops it');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT revoke_model('am', 'it_a_bob', 'use')::text$$), '', 'alice revokes bob');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend(1, 5, 'am')$$), '42501', 'and bob is refused again');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'public', 'use')::text$$), '', 'alice grants use to public');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend(1, 5, 'am')$$), '5', 'and every role is served');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT revoke_model('am', 'public', 'use')::text$$), '', 'and takes it back');

-- ---------------------------------------------------------------------
-- the default model is chosen among the models a role may use
-- ---------------------------------------------------------------------
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT version FROM train('cm', 'it_a_ev', options => '{"factors": 3, "iterations": 4}')$$),
          '1', 'carol trains her own model cm');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('am', 'it_a_bob', 'use')::text$$), '', 'bob may use am again');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend(1, 5)$$), '5',
          'for bob, model NULL is am: carol''s experiment does not change his answers');
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT count(*) FROM recommend(1, 5)$$), '42P08',
          'carol may use both: model NULL is ambiguous for her');

-- ---------------------------------------------------------------------
-- a stored source runs with its owner's rights, read-only
-- ---------------------------------------------------------------------
-- alice's source returns rows only when it runs as alice, and calls a
-- function that tries to copy whatever the running role can read
CREATE TABLE it_a_loot (note text);
GRANT INSERT, SELECT ON it_a_loot TO PUBLIC;
CREATE FUNCTION it_a_spy() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    BEGIN
        INSERT INTO it_a_loot SELECT note FROM it_a_bob_secret;
    EXCEPTION WHEN OTHERS THEN
        INSERT INTO it_a_loot VALUES ('failed: ' || SQLSTATE);
    END;
    RETURN true;
END $$;
SELECT is(pg_temp.as_role('it_a_alice',
    $$SELECT version FROM train('spy', 'SELECT user_id, item_id, weight FROM it_a_ev UNION ALL
                                        SELECT user_id, item_id, weight FROM it_a_late
                                         WHERE current_user = ''it_a_alice'' AND it_a_spy()',
                                options => '{"factors": 4, "iterations": 6}')$$), '1',
          'alice trains a model whose source calls a function');
DELETE FROM it_a_loot;
INSERT INTO it_a_late VALUES (999, 1, 1), (999, 2, 1), (999, 3, 1);
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('spy', 'it_a_bob', 'use')::text$$), '', 'and lets bob use it');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM recommend(999, 5, 'spy')$$), '25006',
          'bob''s call of a cold user runs the source read-only: the function''s write fails the call');
SELECT is((SELECT count(*) FROM it_a_loot), 0::bigint, 'and nothing of bob''s was copied anywhere');
-- the same kind of source without the write: it runs as alice
DELETE FROM it_a_late;
SELECT is(pg_temp.as_role('it_a_alice',
    $$SELECT version FROM train('spy', 'SELECT user_id, item_id, weight FROM it_a_ev UNION ALL
                                        SELECT user_id, item_id, weight FROM it_a_late
                                         WHERE current_user = ''it_a_alice''',
                                options => '{"factors": 4, "iterations": 6}')$$), '2',
          'a version whose source returns rows only to alice');
INSERT INTO it_a_late VALUES (999, 1, 1), (999, 2, 1), (999, 3, 1);
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT min(source) FROM recommend(999, 5, 'spy')$$), 'fold_in',
          'bob''s call folds the cold user in from rows only alice can see: the source ran as alice');
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT count(*) FROM it_a_late$$), '42501',
          'though bob himself cannot read that table');
-- bob's search_path cannot swap the table a stored name resolves to
CREATE SCHEMA it_a_bobs;
CREATE TABLE it_a_bobs.it_a_ev (user_id bigint, item_id bigint, weight int);
GRANT USAGE ON SCHEMA it_a_bobs TO it_a_bob, it_a_alice;
GRANT SELECT ON it_a_bobs.it_a_ev TO it_a_bob, it_a_alice;
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT version FROM train('named', 'it_a_ev', options => '{"factors": 4, "iterations": 6}')$$),
          '1', 'a model whose source is a table name');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('named', 'it_a_bob', 'use')::text$$), '', 'granted to bob');
INSERT INTO it_a_ev VALUES (998, 11, 1), (998, 12, 1);
SELECT is(pg_temp.as_role_path('it_a_bob', 'it_a_bobs, public', $$SELECT min(source) FROM public.recommend(998, 5, 'named')$$),
          'fold_in', 'with bob''s search_path first, the name still resolves as it did for alice');

-- what a stored source sets does not outlive it
CREATE FUNCTION it_a_setter() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('search_path', 'it_a_bobs', false);
    PERFORM set_config('work_mem', '77kB', false);
    RETURN true;
END $$;
DELETE FROM it_a_late;
SELECT is(pg_temp.as_role('it_a_alice',
    $$SELECT version FROM train('setter', 'SELECT user_id, item_id, weight FROM it_a_ev UNION ALL
                                          SELECT user_id, item_id, weight FROM it_a_late WHERE it_a_setter()',
                                options => '{"factors": 4, "iterations": 4}')$$), '1',
          'a model whose source changes settings of the session');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('setter', 'it_a_bob', 'use')::text$$), '', 'granted to bob');
INSERT INTO it_a_late VALUES (999, 1, 1), (999, 2, 1);
SELECT is(pg_temp.as_role('it_a_bob', $$SELECT current_setting('work_mem') || ' ' || current_setting('search_path')
                                         FROM (SELECT count(*) FROM recommend(999, 5, 'setter')) x$$),
          current_setting('work_mem') || ' ' || current_setting('search_path'),
          'after bob''s call folded in through it, bob''s settings are his own');

-- a stored name that no longer resolves cannot be taken over by the caller's temporary table
CREATE TABLE it_a_gone (user_id bigint, item_id bigint);
INSERT INTO it_a_gone SELECT user_id, item_id FROM it_a_ev;
GRANT SELECT ON it_a_gone TO it_a_alice;
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT version FROM train('gone', 'SELECT user_id, item_id FROM it_a_gone',
                                                                   options => '{"factors": 4, "iterations": 4}')$$),
          '1', 'a model whose query names a table');
SELECT is(pg_temp.as_role('it_a_alice', $$SELECT grant_model('gone', 'it_a_bob', 'use')::text$$), '', 'granted to bob');
DROP TABLE it_a_gone;
CREATE TEMP TABLE it_a_gone (user_id bigint, item_id bigint);
INSERT INTO it_a_gone VALUES (999, 1);
GRANT SELECT ON it_a_gone TO PUBLIC;
SELECT is(pg_temp.as_role_msg('it_a_bob', $$SELECT count(*) FROM recommend(999, 5, 'gone')$$),
          '42501: the stored interactions source of model "gone" reads a temporary relation, "it_a_gone"',
          'the temporary table of the session being served is refused, not read as the owner');
DROP TABLE it_a_gone;

-- the models view: a cheap function of the caller sees no row it may not see
CREATE TABLE it_a_seen (model text);
GRANT INSERT ON it_a_seen TO it_a_carol;
CREATE FUNCTION it_a_peek(m text) RETURNS boolean LANGUAGE plpgsql COST 0.0001 AS $$
BEGIN
    INSERT INTO it_a_seen VALUES (m);
    RETURN true;
END $$;
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT count(*) FROM models WHERE it_a_peek(model)$$),
          (SELECT count(*)::text FROM models WHERE has_model_privilege(model, 'use', 'it_a_carol')),
          'carol''s query on models');
SELECT is((SELECT count(*) FROM it_a_seen WHERE NOT has_model_privilege(model, 'use', 'it_a_carol')), 0::bigint,
          'and her function was never shown a model she may not use');

-- a member of a group cannot move the group's grants on someone else's model
CREATE ROLE it_a_staff;
GRANT it_a_staff TO it_a_carol;
SELECT is(pg_temp.as_role('it_a_carol', $$SELECT reassign_models('it_a_carol', 'it_a_staff')::text$$), '1',
          'carol reassigns her own model cm to her group');
SELECT is((SELECT owner::text FROM models WHERE model = 'cm' LIMIT 1), 'it_a_staff', 'which now owns it');
SELECT ok(has_model_privilege('am', 'train', 'it_a_carol') AND NOT has_model_privilege('am', 'train', 'it_a_staff'),
          'but her grant on alice''s model am stays hers: grants are the owner''s to give');

-- ---------------------------------------------------------------------
-- roles that own or use models cannot vanish
-- ---------------------------------------------------------------------
REVOKE ALL ON it_a_ev, it_a_late FROM it_a_alice;
REVOKE USAGE ON SCHEMA it_a_bobs FROM it_a_alice;
REVOKE SELECT ON it_a_bobs.it_a_ev FROM it_a_alice;
SELECT throws_ok($$DROP ROLE it_a_alice$$, '2BP01', NULL, 'DROP ROLE refuses while alice owns models');
SELECT is(reassign_models('it_a_alice', 'it_a_dave'), 5::bigint, 'reassign_models gives her five models to dave');
SELECT lives_ok($$DROP ROLE it_a_alice$$, 'then alice can be dropped');

SELECT * FROM finish();
ROLLBACK;

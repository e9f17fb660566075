--
-- The shared item file (interest_transfer.item_cache): the first backend
-- that loads a version from its packs writes it, later loads map it; a
-- damaged, truncated or outdated file is never used; drop_model removes it.
-- Each reload is forced by touching the deployed row, as deploy() does.
--
CREATE EXTENSION IF NOT EXISTS interest_transfer;
-- loaded now, so its start-up lines (which depend on the CPU) are not below
LOAD 'interest_transfer';

INSERT INTO it_model_acl (model, owner) VALUES ('regress_ic', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('regress_ic', 1, 'als', true, now(),
        'SELECT 0::bigint AS user_id, 0::bigint AS item_id WHERE false', '{"factors": 2}', 2, 2, 6, 8, 0, 0, '[]', '{0,0}');
INSERT INTO it_user_factors (model, version, user_id, factors, seen) VALUES
  ('regress_ic', 1, 1, '{1,0.25}', '{101}'),
  ('regress_ic', 1, 2, '{-0.5,1}', '{102,104}');
-- two packs of three items
INSERT INTO it_item_packs (model, version, chunk, domain, items, item_ids, popularity, factors, norms) VALUES
  ('regress_ic', 1, 0, 0, 3, '{101,102,103}', '{40,25,40}', '{1,0, 0,1, 0.7,0.7}', '{1,1,0.98994946}'),
  ('regress_ic', 1, 1, 0, 3, '{104,105,106}', '{5,10,0}', '{-1,0.2, 0.9,-0.4, 0.1,0.3}', '{1.0198039,0.98488575,0.31622776}');

CREATE TEMP TABLE files_before AS
  SELECT f FROM pg_ls_dir('interest_transfer', true, false) f;
CREATE FUNCTION pg_temp.new_files() RETURNS SETOF text LANGUAGE sql AS
  $$ SELECT f FROM pg_ls_dir('interest_transfer', true, false) f EXCEPT SELECT f FROM files_before $$;
CREATE FUNCTION pg_temp.reload() RETURNS void LANGUAGE sql AS
  $$ UPDATE it_model SET deployed_at = clock_timestamp() WHERE model = 'regress_ic' AND deployed $$;
-- the first bytes, the last byte changed (the end of the domain ranges, which are checksummed)
CREATE FUNCTION pg_temp.write_file(data bytea) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    lo oid := lo_from_bytea(0, data);
BEGIN
    PERFORM lo_export(lo, 'interest_transfer/' || (SELECT * FROM pg_temp.new_files()));
    PERFORM lo_unlink(lo);
END $$;
CREATE FUNCTION pg_temp.file() RETURNS bytea LANGUAGE sql AS
  $$ SELECT pg_read_binary_file('interest_transfer/' || (SELECT * FROM pg_temp.new_files())) $$;

-- loaded from the packs, which writes the file
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
RESET client_min_messages;
SELECT count(*) AS files FROM pg_temp.new_files();

-- mapped from the file: the same ranking
SELECT pg_temp.reload();
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
RESET client_min_messages;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(2, 4, 'regress_ic');
-- the 4-bit copy, mapped from the file too: the same rankings
SET interest_transfer.scan_bits = '4';
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(2, 4, 'regress_ic');
RESET interest_transfer.scan_bits;

-- a checksummed byte changed: not used, loaded from the packs and written again
SELECT pg_temp.write_file(overlay(f PLACING set_byte('\x00'::bytea, 0, get_byte(f, length(f) - 1) # 1)
                                  FROM length(f)))
  FROM pg_temp.file() f;
SELECT pg_temp.reload();
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
RESET client_min_messages;

-- cut short: not used either
SELECT pg_temp.write_file(substring(f FROM 1 FOR length(f) - 8)) FROM pg_temp.file() f;
SELECT pg_temp.reload();
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
RESET client_min_messages;

-- the packs rewritten with other vectors: the old file is not theirs
DELETE FROM it_item_packs WHERE model = 'regress_ic' AND chunk = 1;
INSERT INTO it_item_packs (model, version, chunk, domain, items, item_ids, popularity, factors, norms) VALUES
  ('regress_ic', 1, 1, 0, 3, '{104,105,106}', '{5,10,0}', '{2,0, 0.9,-0.4, 0.1,0.3}', '{2,0.98488575,0.31622776}');
SELECT pg_temp.reload();
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 4, 'regress_ic');
RESET client_min_messages;
SELECT count(*) AS files FROM pg_temp.new_files();

-- off: neither read nor written
SET interest_transfer.item_cache = off;
SELECT pg_temp.reload();
SET client_min_messages = debug1;
SELECT item_id, round(score::numeric, 4) AS score, rank FROM recommend(1, 2, 'regress_ic');
RESET client_min_messages;
RESET interest_transfer.item_cache;

-- drop_model removes the model's files
SELECT drop_model('regress_ic');
SELECT count(*) AS files FROM pg_temp.new_files();

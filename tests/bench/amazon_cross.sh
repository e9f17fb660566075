#!/bin/bash
# Cross-domain benchmark on two Amazon domains that share their users
# (Electronics and Cell Phones): how well a user's interest in one domain
# serves them in the other, where they have no behaviour yet, next to the
# target domain's popularity, all measured in the same run.
#
#   tests/bench/amazon_cross.sh [DATA_DIR] [OPTIONS_JSON]
#       (default ../shared/data/amazon-electronic-phone, options '{}')
#
# Protocol, in both directions (target = phone, then electronics): 20% of
# the users (a fixed hash of the id) are held out of the target domain
# entirely; their behaviour in the other domain is kept. Their positives
# are all their target-domain interactions (train.txt and test.txt of that
# domain). Every ranking covers all the target domain's items.
#
# Rankings measured:
#   - target popularity: the target items by how many training users took them;
#   - target only: a model trained on the target domain alone; held-out
#     users are new to it and get what it serves a new user (popularity);
#   - joint (namespaced items): one model trained on both domains, items
#     namespaced by domain (id * 2 + domain), user vectors shared; a held-out
#     user's list is the best target items of recommend(). This is the
#     classic collective factorisation, built from SQL around train();
#   - joint (domain column): the same model trained from a `domain` column,
#     served by recommend(..., domain => target) with the default options:
#     its domains weighed (domain_weights "balanced") and the ranking of a
#     user new to the target chosen when training (cross_domain_ranking
#     "auto": the shared vector or the co-buyers, it_model.metrics says
#     which);
#   - mapping (source_models): a model of the other domain alone, and a
#     target-only model trained with options source_models => [it]: the
#     held-out users get the mapping of their other-domain vector (EMCDR).
#
# Prints tables; asserts nothing. The data set's terms forbid
# redistribution: it is read in place, never copied.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/amazon-electronic-phone}
options=${2:-'{}'}
[ -f "$data/electronic_phone/train.txt" ] || { echo "amazon-electronic-phone not found at $data; nothing to measure"; exit 0; }
export PATH=${IT_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH

tmp=$(mktemp -d /tmp/it-bench-amazon.XXXXXX)
trap '"$here/tests/pgcluster" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
eval "$("$here/tests/pgcluster" start "$tmp")"

psql -q -v ON_ERROR_STOP=1 -v data="$data" -v options="$options" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION interest_transfer;
-- domain 0: electronics, 1: cell phones; item ids are local to a domain
CREATE TABLE raw (user_id bigint, item_id bigint, w int);
CREATE TABLE events (domain int, user_id bigint, item_id bigint);
\set cmd 'cat ' :'data' '/electronic_phone/train.txt ' :'data' '/electronic_phone/test.txt'
COPY raw FROM PROGRAM :'cmd';
INSERT INTO events SELECT DISTINCT 0, user_id, item_id FROM raw;
TRUNCATE raw;
\set cmd 'cat ' :'data' '/phone_electronic/train.txt ' :'data' '/phone_electronic/test.txt'
COPY raw FROM PROGRAM :'cmd';
INSERT INTO events SELECT DISTINCT 1, user_id, item_id FROM raw;
CREATE INDEX ON events (domain, user_id);
ANALYZE events;

-- the users held out of the target domain
CREATE TABLE held AS SELECT DISTINCT user_id FROM events WHERE abs(hashint8(user_id * 7919 + 13)) % 5 = 0;
CREATE TABLE results (target text, ranking text, users bigint, precision_at_10 numeric, recall_at_10 numeric);
CREATE TABLE lists (ranking text, user_id bigint, item_id bigint);
CREATE TABLE chosen (target text, metrics jsonb);

CREATE FUNCTION measure(target int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  name text := CASE target WHEN 0 THEN 'electronics' ELSE 'phone' END;
BEGIN
  TRUNCATE lists;
  -- the interactions each model may read
  DROP VIEW IF EXISTS target_train, joint_train, joint_domains, other_train;
  EXECUTE format('CREATE VIEW target_train AS SELECT user_id, item_id, 1.0::real AS weight FROM events
                   WHERE domain = %s AND user_id NOT IN (SELECT user_id FROM held)', target);
  EXECUTE format('CREATE VIEW joint_train AS SELECT user_id, item_id * 2 + domain AS item_id, 1.0::real AS weight
                    FROM events WHERE domain <> %s OR user_id NOT IN (SELECT user_id FROM held)', target);
  EXECUTE format('CREATE VIEW joint_domains AS
                  SELECT user_id, item_id, 1.0::real AS weight,
                         CASE domain WHEN 0 THEN ''electronics'' ELSE ''phone'' END AS domain
                    FROM events WHERE domain <> %s OR user_id NOT IN (SELECT user_id FROM held)', target);
  EXECUTE format('CREATE VIEW other_train AS SELECT user_id, item_id, 1.0::real AS weight FROM events
                   WHERE domain <> %s', target);
  PERFORM drop_model(m) FROM (VALUES ('target_only'), ('joint'), ('joint_domains'), ('mapped'), ('other_only')) v(m)
    WHERE EXISTS (SELECT 1 FROM models WHERE model = m);
  PERFORM * FROM train('target_only', 'target_train', options => current_setting('bench.options')::jsonb);
  PERFORM * FROM train('joint', 'joint_train', options => current_setting('bench.options')::jsonb);
  PERFORM * FROM train('joint_domains', 'joint_domains', options => current_setting('bench.options')::jsonb);
  PERFORM * FROM train('other_only', 'other_train', options => current_setting('bench.options')::jsonb);
  PERFORM * FROM train('mapped', 'target_train',
                       options => current_setting('bench.options')::jsonb || '{"source_models": ["other_only"]}');

  -- held-out users who have a positive in the target domain
  CREATE TEMP TABLE tu AS
    SELECT DISTINCT h.user_id FROM held h JOIN events e ON e.user_id = h.user_id AND e.domain = target;
  INSERT INTO lists
    SELECT 'target popularity', tu.user_id, p.item_id FROM tu CROSS JOIN (
      SELECT item_id FROM events WHERE domain = target AND user_id NOT IN (SELECT user_id FROM held)
       GROUP BY item_id ORDER BY count(*) DESC, item_id LIMIT 10) p;
  INSERT INTO lists
    SELECT 'target only (new user: ' || min(r.source) OVER (PARTITION BY tu.user_id) || ')', tu.user_id, r.item_id
      FROM tu CROSS JOIN LATERAL recommend(tu.user_id, 10, 'target_only') r;
  INSERT INTO lists
    SELECT 'joint (namespaced items)', tu.user_id, j.item_id FROM tu CROSS JOIN LATERAL (
      SELECT r.item_id / 2 AS item_id FROM recommend(tu.user_id, 5000, 'joint') r
       WHERE r.item_id % 2 = target ORDER BY r.rank LIMIT 10) j;
  INSERT INTO lists
    SELECT 'joint (domain column, source ' || min(r.source) OVER (PARTITION BY tu.user_id) || ')', tu.user_id, r.item_id
      FROM tu CROSS JOIN LATERAL recommend(tu.user_id, 10, 'joint_domains', domain => name) r;

  INSERT INTO chosen SELECT name, metrics FROM it_model WHERE model = 'joint_domains';
  INSERT INTO lists
    SELECT 'mapping (source_models, source ' || min(r.source) OVER (PARTITION BY tu.user_id) || ')', tu.user_id, r.item_id
      FROM tu CROSS JOIN LATERAL recommend(tu.user_id, 10, 'mapped') r;

  INSERT INTO results
    SELECT name, l.ranking, count(DISTINCT tu.user_id),
           round(sum(hits) / (10.0 * count(DISTINCT tu.user_id)), 4),
           round(avg(hits::numeric / npos), 4)
      FROM (SELECT DISTINCT ranking FROM lists) l CROSS JOIN tu
      CROSS JOIN LATERAL (SELECT count(*) AS hits FROM lists x
                            JOIN events e ON e.domain = target AND e.user_id = x.user_id AND e.item_id = x.item_id
                           WHERE x.ranking = l.ranking AND x.user_id = tu.user_id) h
      CROSS JOIN LATERAL (SELECT count(*) AS npos FROM events e WHERE e.domain = target AND e.user_id = tu.user_id) n
     GROUP BY l.ranking;
  DROP TABLE tu;
END $$;

SELECT set_config('bench.options', :'options', false);
\echo == options :options
SELECT measure(1);
SELECT measure(0);

\pset footer off
\echo == users held out of the target domain (their other domain kept), precision@10 and recall@10 over all target items
SELECT r.target, r.ranking, r.users, r.precision_at_10, r.recall_at_10,
       round(r.precision_at_10 / NULLIF(p.precision_at_10, 0), 2) AS vs_popularity,
       round(r.precision_at_10 / NULLIF(j.precision_at_10, 0), 2) AS vs_classic_joint
  FROM results r JOIN results p ON p.target = r.target AND p.ranking = 'target popularity'
  JOIN results j ON j.target = r.target AND j.ranking = 'joint (namespaced items)'
 ORDER BY r.target, r.precision_at_10;
\echo == how the domain-column model ranks users new to a domain (chosen when training)
SELECT target, metrics->'cross_domain_ranking' AS cross_domain_ranking FROM chosen ORDER BY target;
SQL

#!/bin/bash
# MovieLens 100K new-user benchmark: interest transferred from demographics,
# and fold-in with 3 and 10 revealed interactions, next to popularity and to
# popularity within the same gender and age band, all measured in this run.
#
#   tests/bench/ml100k_cold.sh [DATA_DIR] [OPTIONS_JSON]
#
# Protocol: users with user_id % 5 = 0 are held out entirely (cold). The
# model trains on every rating of the other users (weight = rating) with
# user features age, gender and occupation, and the options given (default
# none). Positives of a cold user are
# their ratings >= 4. "Revealed N" puts the cold user's N earliest ratings
# into the interactions source after training (no retraining); those items
# are then left out of every ranking and of the positives, for the model and
# the baselines alike. The data set is read in place, never copied.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-100k}
options=${2:-'{}'}
[ -f "$data/u.data" ] || { echo "ml-100k not found at $data; nothing to measure"; exit 0; }
export PATH=${IT_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH

tmp=$(mktemp -d /tmp/it-bench-ml100k-cold.XXXXXX)
trap '"$here/tests/pgcluster" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
eval "$("$here/tests/pgcluster" start "$tmp")"

psql -q -v ON_ERROR_STOP=1 -v data="$data" -v options="$options" <<'SQL'
CREATE EXTENSION interest_transfer;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
CREATE TABLE users (user_id bigint PRIMARY KEY, age int, gender text, occupation text, zip text);
\set cmd 'cat ' :'data' '/u.data'
COPY ratings FROM PROGRAM :'cmd';
\set cmd 'cat ' :'data' '/u.user'
COPY users FROM PROGRAM :'cmd' WITH (FORMAT text, DELIMITER '|');
CREATE INDEX ON ratings (user_id);

-- the interactions source the model reads: warm ratings now, revealed cold ratings later
CREATE TABLE events AS
  SELECT user_id, item_id, rating AS weight, to_timestamp(ts) AS ts FROM ratings WHERE user_id % 5 <> 0;
CREATE INDEX ON events (user_id);
CREATE VIEW user_features AS SELECT user_id, age, gender, occupation FROM users;
-- each cold user's ratings in time order
CREATE TABLE cold AS
  SELECT user_id, item_id, rating, to_timestamp(ts) AS ts,
         row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS nth
    FROM ratings WHERE user_id % 5 = 0;
CREATE TABLE revealed (user_id bigint, item_id bigint);
CREATE VIEW test_pos AS
  SELECT c.user_id, c.item_id FROM cold c
   WHERE c.rating >= 4
     AND NOT EXISTS (SELECT 1 FROM revealed r WHERE r.user_id = c.user_id AND r.item_id = c.item_id);
CREATE FUNCTION band(age int) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN age < 18 THEN 1 WHEN age < 25 THEN 2 WHEN age < 35 THEN 3
                 WHEN age < 45 THEN 4 WHEN age < 50 THEN 5 WHEN age < 56 THEN 6 ELSE 7 END $$;

-- precision@10 / recall@10 of a popularity ranking computed within a
-- grouping of users (grp = a constant for global popularity), leaving out
-- the revealed items, over the same users and positives as evaluate()
CREATE FUNCTION baseline(label text, by_band boolean)
RETURNS TABLE (ranking text, users bigint, precision_at_10 numeric, recall_at_10 numeric)
LANGUAGE sql AS $$
  WITH ug AS (SELECT user_id, CASE WHEN by_band THEN gender || band(age) ELSE '' END AS grp FROM users),
       pop AS (SELECT ug.grp, e.item_id, count(*) AS n
                 FROM ratings e JOIN ug USING (user_id)
                WHERE e.user_id % 5 <> 0 AND e.rating >= 4
                GROUP BY 1, 2),
       tu AS (SELECT DISTINCT t.user_id, ug.grp FROM test_pos t JOIN ug USING (user_id)),
       top AS (SELECT tu.user_id, p.item_id
                 FROM tu CROSS JOIN LATERAL (
                   SELECT pop.item_id FROM pop
                    WHERE pop.grp = tu.grp
                      AND NOT EXISTS (SELECT 1 FROM revealed r WHERE r.user_id = tu.user_id AND r.item_id = pop.item_id)
                    ORDER BY pop.n DESC, pop.item_id LIMIT 10) p),
       per AS (SELECT tu.user_id,
                      (SELECT count(*) FROM top JOIN test_pos tp USING (user_id, item_id) WHERE top.user_id = tu.user_id) AS hits,
                      (SELECT count(*) FROM test_pos tp WHERE tp.user_id = tu.user_id) AS npos
                 FROM tu)
  SELECT label, count(*), round(avg(hits / 10.0), 4), round(avg(hits::numeric / npos), 4) FROM per
$$;

CREATE TABLE results (revealed int, ranking text, users bigint, precision_at_10 numeric, recall_at_10 numeric);
-- the model's features-only ranking of the same users on the same targets:
-- recommend() while the revealed rows are not yet in events, the revealed
-- items left out of the list
CREATE FUNCTION features_only(n int) RETURNS void LANGUAGE sql AS $$
  WITH tu AS (SELECT DISTINCT user_id FROM test_pos),
       top AS (SELECT tu.user_id, r.item_id
                 FROM tu CROSS JOIN LATERAL (
                   SELECT item_id FROM recommend(tu.user_id, 10 + n, 'ml100k') x
                    WHERE NOT EXISTS (SELECT 1 FROM revealed v WHERE v.user_id = tu.user_id AND v.item_id = x.item_id)
                    ORDER BY rank LIMIT 10) r),
       per AS (SELECT tu.user_id,
                      (SELECT count(*) FROM top JOIN test_pos tp USING (user_id, item_id) WHERE top.user_id = tu.user_id) AS hits,
                      (SELECT count(*) FROM test_pos tp WHERE tp.user_id = tu.user_id) AS npos
                 FROM tu)
  INSERT INTO results SELECT n, 'model (features only, same targets)', count(*), round(avg(hits / 10.0), 4),
                             round(avg(hits::numeric / npos), 4) FROM per
$$;
-- per-user hits@10 of what recommend() serves and of global popularity
-- (revealed items left out of both), for the paired difference below
CREATE TABLE user_hits (revealed int, ranking text, user_id bigint, hits int);
CREATE FUNCTION measure_users(n int) RETURNS void LANGUAGE sql AS $$
  WITH tu AS (SELECT DISTINCT user_id FROM test_pos),
       pop AS (SELECT item_id, count(*) AS c FROM ratings WHERE user_id % 5 <> 0 AND rating >= 4 GROUP BY 1)
  INSERT INTO user_hits
  SELECT n, 'model', tu.user_id,
         (SELECT count(*) FROM recommend(tu.user_id, 10, 'ml100k') r
            JOIN test_pos tp ON tp.user_id = tu.user_id AND tp.item_id = r.item_id)
    FROM tu
  UNION ALL
  SELECT n, 'popularity', tu.user_id,
         (SELECT count(*) FROM (SELECT pop.item_id FROM pop
                                 WHERE NOT EXISTS (SELECT 1 FROM revealed v WHERE v.user_id = tu.user_id AND v.item_id = pop.item_id)
                                 ORDER BY pop.c DESC, pop.item_id LIMIT 10) t
            JOIN test_pos tp ON tp.user_id = tu.user_id AND tp.item_id = t.item_id)
    FROM tu;
$$;
CREATE FUNCTION measure(n int) RETURNS void LANGUAGE sql AS $$
  SELECT measure_users(n);
  INSERT INTO results SELECT n, * FROM baseline('popularity', false);
  INSERT INTO results SELECT n, * FROM baseline('popularity in gender x age band', true);
  INSERT INTO results
    SELECT n, 'model (' || CASE WHEN n = 0 THEN 'features' ELSE 'fold-in, features prior' END || ')',
           users, round(precision_at_k::numeric, 4), round(recall_at_k::numeric, 4)
      FROM evaluate('ml100k', 'test_pos', 10) WHERE segment = 'cold';
$$;

\echo == training on the warm users (options :options)
SELECT model, version, users, items, interactions, round(seconds::numeric, 2) AS seconds
  FROM train('ml100k', 'events', user_features => 'user_features', options => :'options');
SELECT jsonb_pretty(metrics) AS prior FROM it_model WHERE model = 'ml100k';

SELECT measure(0);
INSERT INTO revealed SELECT user_id, item_id FROM cold WHERE nth <= 3;
SELECT features_only(3);
INSERT INTO events SELECT c.user_id, c.item_id, c.rating, c.ts FROM cold c JOIN revealed USING (user_id, item_id);
SELECT measure(3);
TRUNCATE revealed;
DELETE FROM events WHERE user_id % 5 = 0;
INSERT INTO revealed SELECT user_id, item_id FROM cold WHERE nth <= 10;
SELECT features_only(10);
INSERT INTO events SELECT c.user_id, c.item_id, c.rating, c.ts FROM cold c JOIN revealed USING (user_id, item_id);
SELECT measure(10);

\pset footer off
\echo == cold users (user_id % 5 = 0), precision@10 and recall@10
SELECT r.revealed, r.ranking, r.users, r.precision_at_10, r.recall_at_10,
       round(r.precision_at_10 / b.precision_at_10, 3) AS vs_band_popularity
  FROM results r
  JOIN results b ON b.revealed = r.revealed AND b.ranking = 'popularity in gender x age band'
 ORDER BY r.revealed, r.precision_at_10;

\echo
\echo == what recommend() serves minus popularity, paired per user (precision@10; se: standard error of the mean)
SELECT m.revealed, count(*) AS users, round(avg(m.hits) / 10.0, 4) AS served, round(avg(p.hits) / 10.0, 4) AS popularity,
       round(avg(m.hits - p.hits) / 10.0, 4) AS difference,
       round((stddev_samp(m.hits - p.hits) / 10.0 / sqrt(count(*)))::numeric, 4) AS se
  FROM user_hits m JOIN user_hits p ON p.revealed = m.revealed AND p.user_id = m.user_id AND p.ranking = 'popularity'
 WHERE m.ranking = 'model'
 GROUP BY m.revealed ORDER BY m.revealed;
SQL

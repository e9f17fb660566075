#!/bin/bash
# MovieLens 100K benchmark: warm-start quality of a trained model next to
# popularity, measured in the same run.
#
#   tests/bench/ml100k.sh [DATA_DIR]       (default ../shared/data/ml-100k)
#
# Holds out 20% of the ratings (a fixed hash of user and item), trains on the
# other 80% with weight = rating, and evaluates on the held-out ratings >= 4.
# Popularity is ranked the same way evaluate() ranks: items the user rated in
# training are left out. Prints a table; asserts nothing (see tests/ for that).
# The data set's terms forbid redistribution: it is read in place, never copied
# into the project.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-100k}
[ -f "$data/u.data" ] || { echo "ml-100k not found at $data; nothing to measure"; exit 0; }
export PATH=${IT_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH
options=${IT_BENCH_OPTIONS:-'{}'}

tmp=$(mktemp -d /tmp/it-bench-ml100k.XXXXXX)
trap '"$here/tests/pgcluster" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
eval "$("$here/tests/pgcluster" start "$tmp")"
chmod a+r "$data"/u.data "$data"/u.user 2>/dev/null || true

psql -q -v ON_ERROR_STOP=1 -v data="$data" -v options="$options" <<'SQL'
CREATE EXTENSION interest_transfer;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
\set cmd 'cat ' :'data' '/u.data'
COPY ratings FROM PROGRAM :'cmd';
CREATE TABLE split AS
  SELECT *, (abs(hashint8(user_id * 100003 + item_id)) % 5 = 0) AS held_out FROM ratings;
CREATE VIEW train_ratings AS SELECT user_id, item_id, rating AS weight FROM split WHERE NOT held_out;
CREATE VIEW test_pos AS SELECT user_id, item_id FROM split WHERE held_out AND rating >= 4;

\pset footer off
\echo == training (options :options)
SELECT model, version, users, items, interactions, round(seconds::numeric, 2) AS seconds
  FROM train('ml100k', 'train_ratings', options => :'options');

\echo == model, evaluate() at k = 10
SELECT segment, users, round(precision_at_k::numeric, 4) AS p_at_10, round(recall_at_k::numeric, 4) AS r_at_10,
       round(ndcg_at_k::numeric, 4) AS ndcg, round(map_at_k::numeric, 4) AS map, round(auc::numeric, 4) AS auc,
       round(coverage::numeric, 4) AS coverage
  FROM evaluate('ml100k', 'test_pos', 10) WHERE segment = 'warm';

\echo == popularity, same users and exclusions
WITH pop AS (SELECT item_id, count(*) AS n FROM train_ratings GROUP BY item_id),
     users AS (SELECT DISTINCT t.user_id FROM test_pos t
                WHERE EXISTS (SELECT 1 FROM train_ratings r WHERE r.user_id = t.user_id)),
     top AS (
       SELECT u.user_id, p.item_id
         FROM users u CROSS JOIN LATERAL (
           SELECT pop.item_id FROM pop
            WHERE NOT EXISTS (SELECT 1 FROM train_ratings r WHERE r.user_id = u.user_id AND r.item_id = pop.item_id)
            ORDER BY pop.n DESC, pop.item_id LIMIT 10) p),
     per_user AS (
       SELECT u.user_id,
              (SELECT count(*) FROM top t JOIN test_pos tp USING (user_id, item_id) WHERE t.user_id = u.user_id) AS hits,
              (SELECT count(*) FROM test_pos tp WHERE tp.user_id = u.user_id
                  AND NOT EXISTS (SELECT 1 FROM train_ratings r WHERE r.user_id = tp.user_id AND r.item_id = tp.item_id)) AS npos
         FROM users u)
SELECT 'popularity' AS baseline, count(*) FILTER (WHERE npos > 0) AS users,
       round(avg(hits / 10.0) FILTER (WHERE npos > 0), 4) AS p_at_10,
       round(avg(hits::numeric / npos) FILTER (WHERE npos > 0), 4) AS r_at_10
  FROM per_user;
SQL

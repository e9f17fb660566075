#!/bin/bash
# Contexts on MovieLens 100K: does a user's taste at the weekend differ
# from their taste on weekdays, and do context vectors serve it better
# than the user's global vector?  Reported honestly, whichever way it goes.
#
#   tests/bench/ml100k_context.sh [DATA_DIR] [OPTIONS_JSON]
#       (default ../shared/data/ml-100k, options '{}')
#
# Protocol: 20% of every user's ratings (a fixed hash of user and item)
# are held out; the model is trained on the rest, weight = rating,
# positive_threshold 4, option context 'weekpart' in UTC (the data's
# timestamps are UTC seconds). The held-out positives (rating >= 4) are
# split by the part of the week they were rated in; each part's are
# ranked for every user who has some, by the part's context vector
# (recommend(..., context => part)) and by the global vector (context =>
# ''), precision@10 over all items with the user's training items left
# out. Training keeps a context only when it beat the global vector on
# held-out rows of its own (it_model.metrics->'contexts', printed), so the
# context rows should never lose.
#
# Prints tables; asserts nothing. The data set's terms forbid
# redistribution: it is read in place, never copied.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-100k}
options=${2:-'{}'}
[ -f "$data/u.data" ] || { echo "ml-100k not found at $data; nothing to measure"; exit 0; }
export PATH=${IT_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH

tmp=$(mktemp -d /tmp/it-bench-ml100k-context.XXXXXX)
trap '"$here/tests/pgcluster" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
eval "$("$here/tests/pgcluster" start "$tmp")"

psql -q -v ON_ERROR_STOP=1 -v data="$data" -v options="$options" <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION interest_transfer;
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
\set cmd 'cat ' :'data' '/u.data'
COPY ratings FROM PROGRAM :'cmd';
CREATE TABLE split AS
  SELECT user_id, item_id, rating, to_timestamp(ts) AS ts,
         abs(hashint8(user_id * 100003 + item_id)) % 5 = 0 AS held,
         CASE WHEN extract(isodow FROM to_timestamp(ts) AT TIME ZONE 'UTC') >= 6 THEN 'weekend' ELSE 'weekday' END AS part
    FROM ratings;
CREATE TABLE train_rows AS SELECT user_id, item_id, rating AS weight, ts FROM split WHERE NOT held;
CREATE TABLE test_pos AS SELECT user_id, item_id, part FROM split WHERE held AND rating >= 4;
ANALYZE train_rows;
SELECT set_config('bench.options', :'options', false);
SELECT users, items, round(seconds::numeric, 2) AS seconds
  FROM train('ml', 'train_rows',
             options => '{"positive_threshold": 4, "context": "weekpart", "timezone": "UTC"}'::jsonb
                        || current_setting('bench.options')::jsonb);

\pset footer off
\echo == rows by part of the week (training / held-out positives)
SELECT s.part, count(*) FILTER (WHERE NOT held) AS training_rows,
       count(*) FILTER (WHERE held AND rating >= 4) AS held_out_positives,
       count(DISTINCT user_id) FILTER (WHERE held AND rating >= 4) AS users
  FROM split s GROUP BY 1 ORDER BY 1;
\echo == what training kept (held-out rows of its own, on up to 1000 users per context)
SELECT c.key AS context, c.value AS decision FROM it_model, jsonb_each(metrics->'contexts') c WHERE model = 'ml';
\echo == held-out positives of each part, precision@10
WITH tu AS (SELECT DISTINCT user_id, part FROM test_pos)
SELECT tu.part, count(*) / 2 AS users,
       round(avg(x.hits) FILTER (WHERE h.how = 'global') / 10, 4) AS global_vector,
       round(avg(x.hits) FILTER (WHERE h.how = 'context') / 10, 4) AS context_vector,
       round((avg(x.hits) FILTER (WHERE h.how = 'context')) / NULLIF(avg(x.hits) FILTER (WHERE h.how = 'global'), 0), 3) AS ratio
  FROM tu CROSS JOIN (VALUES ('global'), ('context')) h(how)
 CROSS JOIN LATERAL (SELECT count(*) AS hits
                       FROM recommend(tu.user_id, 10, 'ml', context => CASE h.how WHEN 'context' THEN tu.part ELSE '' END) r
                       JOIN test_pos t ON t.user_id = tu.user_id AND t.part = tu.part AND t.item_id = r.item_id) x
 GROUP BY 1 ORDER BY 1;
SQL

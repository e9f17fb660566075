#!/bin/bash
# MovieLens 100K: how far any demographics-only ranking can get above the
# gender x age band popularity of tests/bench/ml100k_cold.sh, same protocol.
#
#   tests/bench/ml100k_cold_ceiling.sh [DATA_DIR]
#
# Cold users are user_id % 5 = 0 and their positives their ratings >= 4, as
# in ml100k_cold.sh. Two rankings that cheat in the user's favour:
# - popularity within a cell of users (every grouping of gender, age band and
#   occupation), shrunk towards global popularity with a weight s; the
#   (cell, s) pair is chosen on the cold users' own positives (an oracle
#   tuning over 40 pairs), the counts come from the warm users;
# - one global ranking built from the cold users' own positives (an oracle
#   list: no demographic ranking that serves every user the same list can
#   beat it).
# And for the cold users' N earliest ratings revealed (N = 3, 10; targets:
# their later ratings >= 4, revealed items never ranked): item-based
# nearest neighbours, the sum of cosine similarities (co-occurrence among
# warm positives) to the revealed items, plus s times popularity / max; the
# (revealed items counted: all or ratings >= 4, s) pair is chosen on the
# cold users' targets, an oracle tuning over 12 pairs per N.
# Prints each next to the popularity measured in the same run; asserts
# nothing. The data set is read in place, never copied.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
data=${1:-$here/../shared/data/ml-100k}
[ -f "$data/u.data" ] || { echo "ml-100k not found at $data; nothing to measure"; exit 0; }
export PATH=${IT_PGBIN:-/usr/lib/postgresql/15/bin}:$PATH

tmp=$(mktemp -d /tmp/it-bench-ml100k-ceiling.XXXXXX)
trap '"$here/tests/pgcluster" stop "$tmp" >/dev/null 2>&1; rm -rf "$tmp"' EXIT
eval "$("$here/tests/pgcluster" start "$tmp")"

psql -q -P footer=off -v ON_ERROR_STOP=1 -v data="$data" <<'SQL'
CREATE TABLE ratings (user_id bigint, item_id bigint, rating real, ts bigint);
CREATE TABLE users (user_id bigint PRIMARY KEY, age int, gender text, occupation text, zip text);
\set cmd 'cat ' :'data' '/u.data'
COPY ratings FROM PROGRAM :'cmd';
\set cmd 'cat ' :'data' '/u.user'
COPY users FROM PROGRAM :'cmd' WITH (FORMAT text, DELIMITER '|');
CREATE FUNCTION band(age int) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN age < 18 THEN 1 WHEN age < 25 THEN 2 WHEN age < 35 THEN 3
                 WHEN age < 45 THEN 4 WHEN age < 50 THEN 5 WHEN age < 56 THEN 6 ELSE 7 END $$;
CREATE TABLE warm_pos AS SELECT user_id, item_id FROM ratings WHERE user_id % 5 <> 0 AND rating >= 4;
CREATE TABLE cold_pos AS SELECT user_id, item_id FROM ratings WHERE user_id % 5 = 0 AND rating >= 4;
CREATE INDEX ON cold_pos (user_id, item_id);
CREATE TABLE global AS
  SELECT item_id, count(*)::float8 / (SELECT count(*) FROM warm_pos) AS share FROM warm_pos GROUP BY 1;
CREATE TABLE results (ranking text, cells text, shrink float8, precision_at_10 numeric);

-- precision@10 of cell popularity: share of the cell's warm positives plus
-- s times the item's share of all warm positives
CREATE FUNCTION cell_popularity(def text, s float8) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format($q$
    CREATE TEMP TABLE ug ON COMMIT DROP AS SELECT user_id, (%s)::text AS cell FROM users;
    CREATE TEMP TABLE top ON COMMIT DROP AS
      WITH c AS (SELECT ug.cell, w.item_id, count(*)::float8 / sum(count(*)) OVER (PARTITION BY ug.cell) AS share
                   FROM warm_pos w JOIN ug USING (user_id) GROUP BY 1, 2),
           sc AS (SELECT cl.cell, g.item_id, coalesce(c.share, 0) + %s * g.share AS score
                    FROM (SELECT DISTINCT cell FROM ug) cl CROSS JOIN global g
                    LEFT JOIN c ON c.cell = cl.cell AND c.item_id = g.item_id)
      SELECT cell, item_id FROM (
        SELECT cell, item_id, row_number() OVER (PARTITION BY cell ORDER BY score DESC, item_id) AS r FROM sc) x
       WHERE r <= 10;
    INSERT INTO results
      SELECT 'cell popularity', %L, %s, round(avg(coalesce(h.hits, 0)) / 10.0, 4)
        FROM (SELECT DISTINCT user_id FROM cold_pos) tu
        JOIN ug USING (user_id)
        LEFT JOIN (SELECT p.user_id, count(*) AS hits FROM cold_pos p JOIN ug USING (user_id)
                     JOIN top t ON t.cell = ug.cell AND t.item_id = p.item_id GROUP BY 1) h USING (user_id);
    DROP TABLE ug, top $q$, def, s, def, s);
END $f$;
SELECT count(*) AS configurations FROM (SELECT cell_popularity(d, s)
  FROM unnest(ARRAY['''''', 'gender', 'band(age)', 'occupation', 'gender || band(age)',
                    'gender || occupation', 'band(age) || occupation', 'gender || band(age) || occupation']) d,
       unnest(ARRAY[0, 0.1, 0.3, 1, 3]::float8[]) s) x;

-- the oracle list: the items most often positive among the cold users themselves
INSERT INTO results
  SELECT 'oracle global list (cold users'' own positives)', '', NULL, round(avg(coalesce(h.hits, 0)) / 10.0, 4)
    FROM (SELECT DISTINCT user_id FROM cold_pos) tu
    LEFT JOIN (SELECT p.user_id, count(*) AS hits FROM cold_pos p
                 JOIN (SELECT item_id FROM cold_pos GROUP BY 1 ORDER BY count(*) DESC, item_id LIMIT 10) t USING (item_id)
                GROUP BY 1) h USING (user_id);

\echo == demographics-only rankings of cold users, precision@10, next to gender x age band popularity (s = 0)
WITH b AS (SELECT precision_at_10 FROM results WHERE cells = 'gender || band(age)' AND shrink = 0)
SELECT ranking, CASE cells WHEN '''''' THEN 'all users' ELSE replace(replace(cells, ' || ', ' x '), 'band(age)', 'age band') END AS cells, shrink, r.precision_at_10, round(r.precision_at_10 / b.precision_at_10, 3) AS vs_band_popularity
  FROM results r, b
 WHERE r.ranking <> 'cell popularity' OR r.shrink = 0 AND r.cells IN ('''''', 'gender || band(age)')
    OR r.precision_at_10 = (SELECT max(precision_at_10) FROM results WHERE ranking = 'cell popularity')
 ORDER BY r.precision_at_10;
\echo (the row with the highest precision among cell popularities is the oracle-tuned one of 40 (cell, s) pairs)

CREATE TABLE cold AS
  SELECT user_id, item_id, rating, row_number() OVER (PARTITION BY user_id ORDER BY ts, item_id) AS nth
    FROM ratings WHERE user_id % 5 = 0;
CREATE TABLE pop AS SELECT item_id, count(*)::float8 AS n FROM warm_pos GROUP BY 1;
CREATE TABLE sim AS
  SELECT a.item_id AS i, b.item_id AS j, count(*) / sqrt(pa.n * pb.n) AS s
    FROM warm_pos a JOIN warm_pos b ON a.user_id = b.user_id AND a.item_id <> b.item_id
    JOIN pop pa ON pa.item_id = a.item_id JOIN pop pb ON pb.item_id = b.item_id
   GROUP BY a.item_id, b.item_id, pa.n, pb.n;
CREATE INDEX ON sim (i);
CREATE TABLE knn_results (revealed int, counted text, shrink float8, precision_at_10 numeric);
CREATE FUNCTION knn(nrev int, only_pos bool, sh float8) RETURNS void LANGUAGE sql AS $$
  WITH rev AS (SELECT user_id, item_id, rating FROM cold WHERE nth <= nrev),
       tgt AS (SELECT user_id, item_id FROM cold WHERE nth > nrev AND rating >= 4),
       tu AS (SELECT DISTINCT user_id FROM tgt),
       kn AS (SELECT rev.user_id, sim.j AS item_id, sum(sim.s) AS k FROM rev JOIN sim ON sim.i = rev.item_id
               WHERE NOT only_pos OR rev.rating >= 4 GROUP BY 1, 2),
       sc AS (SELECT tu.user_id, pop.item_id, coalesce(kn.k, 0) + sh * pop.n / (SELECT max(n) FROM pop) AS score
                FROM tu CROSS JOIN pop
                LEFT JOIN kn ON kn.user_id = tu.user_id AND kn.item_id = pop.item_id
               WHERE NOT EXISTS (SELECT 1 FROM rev WHERE rev.user_id = tu.user_id AND rev.item_id = pop.item_id)),
       top AS (SELECT user_id, item_id FROM (
                 SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id ORDER BY score DESC, item_id) AS r FROM sc) x
                WHERE r <= 10)
  INSERT INTO knn_results
  SELECT nrev, CASE WHEN only_pos THEN 'ratings >= 4' ELSE 'all' END, sh, round(avg(coalesce(h, 0)) / 10.0, 4)
    FROM tu LEFT JOIN (SELECT top.user_id, count(*) AS h FROM top JOIN tgt USING (user_id, item_id) GROUP BY 1) hh USING (user_id)
$$;
SELECT count(*) AS configurations FROM (SELECT knn(n, o, s)
  FROM unnest(ARRAY[3, 10]) n, unnest(ARRAY[false, true]) o, unnest(ARRAY[0, 0.3, 1, 3, 10, 1e6]::float8[]) s) x;

\echo
\echo == N earliest ratings revealed: item-based neighbours, precision@10, next to popularity (s = 1e6 ranks by popularity)
WITH b AS (SELECT revealed, precision_at_10 FROM knn_results WHERE shrink = 1e6 AND counted = 'all')
SELECT r.revealed, CASE WHEN r.shrink = 1e6 THEN 'popularity' ELSE 'item neighbours' END AS ranking,
       r.counted, r.shrink, r.precision_at_10, round(r.precision_at_10 / b.precision_at_10, 3) AS vs_popularity
  FROM knn_results r JOIN b USING (revealed)
 WHERE (r.shrink = 1e6 AND r.counted = 'all') OR (r.shrink = 1 AND r.counted = 'ratings >= 4')
    OR r.precision_at_10 = (SELECT max(precision_at_10) FROM knn_results k WHERE k.revealed = r.revealed)
 ORDER BY r.revealed, r.precision_at_10;
\echo (per N, the row with the highest precision is the oracle-tuned one of 12 pairs; s = 1 on ratings >= 4 is an untuned choice)
SQL

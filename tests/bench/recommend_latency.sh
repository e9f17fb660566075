#!/bin/sh
# recommend() latency: p50 / p95 / p99 / mean of single calls, next to
# baselines measured in the same run.
#
#   tests/bench/recommend_latency.sh [ITEMS] [FACTORS] [USERS] [CALLS]
#
# Defaults: 20000 items, 64 factors, 10000 users (50 seen items each), 1000
# calls.  The model is written directly into the storage tables (random
# factors, power-law popularity), so training is not part of the run.  Uses
# the server in PGHOST/PGPORT when set (a database "it_bench" is created
# there), otherwise starts a throw-away cluster in a temporary directory.
#
# Reported, each over CALLS calls with random users:
#   server   a plpgsql loop timing each PERFORM * FROM recommend(u, 10) with
#            clock_timestamp(): the SQL call inside the server, no client
#   pgbench  one SELECT * FROM recommend(:u, 10) per transaction over the
#            Unix socket (client round trip included), from pgbench's log
#   lateral  SELECT count(*) FROM generate_series(...) g, LATERAL recommend(...)
#            total time / CALLS
#   batch    recommend_batch(ARRAY[1..USERS], 10) against CROSS JOIN LATERAL
#            recommend() over the same USERS users: rows per second, and the ratio
#   baseline pgbench SELECT 1 (round-trip floor), and the same top-10 in plain
#            SQL (dot products over unnest, 20 calls, 3 above 200000 items),
#            for the ratios
#   bandwidth the time merely reading the 8-bit and the 4-bit item copies'
#            bytes (with their scales) takes on one core
#            (tests/bench/scan_bandwidth): the floor of a one-thread scan
#            (from 32,768 items the server scans the 4-bit copy first,
#            interest_transfer.scan_bits); from 262,144 items, where the
#            server cuts that scan between two threads, also on two threads
#            started and joined per read, as recommend() starts its own
#   load     the first call of a new backend (reads the item factors), and
#            the second: the median of LOADS (7) new backends, from the rows
#            alone, from the item packs training writes (with
#            interest_transfer.item_cache off), and from the shared item
#            file the first backend wrote
# Then the ratios: plain SQL p50 / server p50, and the client's extra latency
# over SELECT 1 (pgbench recommend p50 - SELECT 1 p50).
set -eu

ITEMS=${1:-20000}
FACTORS=${2:-64}
USERS=${3:-10000}
CALLS=${4:-1000}
SEEN=50

here=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$(pg_config --bindir):$PATH
export PATH

tmp=$(mktemp -d)
own_cluster=
cleanup() {
    if [ -n "$own_cluster" ]; then "$here/tests/pgcluster" stop "$tmp/pg" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ -z "${PGHOST:-}" ]; then
    own_cluster=1
    # the server runs as "postgres" when started as root: it must reach $tmp/pg
    [ "$(id -u)" = 0 ] && chmod 777 "$tmp"
    eval "$("$here/tests/pgcluster" start "$tmp/pg")"
fi
export PGDATABASE=it_bench
dropdb --if-exists it_bench >/dev/null 2>&1 || true
createdb it_bench

psql -X -q -v ON_ERROR_STOP=1 -v items="$ITEMS" -v factors="$FACTORS" -v users="$USERS" -v seen="$SEEN" >/dev/null <<'SQL'
CREATE EXTENSION interest_transfer;
SELECT setseed(0.42);
INSERT INTO it_model_acl (model, owner) VALUES ('bench', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      options, factors, users, items, interactions, seconds, loss, history, user_mean)
VALUES ('bench', 1, 'als', true, now(),
        'bench', '{}', :factors, :users, :items, 0, 0, 0, '[]',
        array_fill(0::real, ARRAY[:factors]));
INSERT INTO it_item_factors (model, version, item_id, factors, popularity)
SELECT 'bench', 1, i,
       (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, :factors) j WHERE i > 0),
       floor(100000 / (i ^ 0.9))::bigint
  FROM generate_series(1, :items) i;
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'bench', 1, u,
       (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, :factors) j WHERE u > 0),
       (SELECT array_agg(DISTINCT 1 + floor(random() * :items)::bigint) FROM generate_series(1, :seen) j WHERE u > 0)
  FROM generate_series(1, :users) u;
VACUUM ANALYZE it_model, it_item_factors, it_user_factors;
SQL

echo "recommend() latency: $ITEMS items, $FACTORS factors, $USERS users ($SEEN seen items each), $CALLS calls, top 10"

# First call of a new backend (loads the model), then the second: the
# median of LOADS new backends, first from the rows alone (a version written
# before item packs), then from the packs training writes with the rows,
# then from the shared item file (item_cache.c).
LOADS=${LOADS:-7}
first_call() {
    psql -X -q -At -v ON_ERROR_STOP=1 <<'SQL'
CREATE TEMP TABLE t (what text, ms float8);
DO $$
DECLARE
    t0 timestamptz;
BEGIN
    t0 := clock_timestamp();
    PERFORM * FROM recommend(1, 10);
    INSERT INTO t VALUES ('first', extract(epoch FROM clock_timestamp() - t0) * 1e3);
    t0 := clock_timestamp();
    PERFORM * FROM recommend(2, 10);
    INSERT INTO t VALUES ('second', extract(epoch FROM clock_timestamp() - t0) * 1e3);
END
$$;
SELECT string_agg(round(ms::numeric, 2)::text, ' ' ORDER BY what) FROM t;
SQL
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
loads() {
    : >"$tmp/load.txt"
    for i in $(seq "$LOADS"); do first_call >>"$tmp/load.txt"; done
    echo "load     first call (loads the model from the $1), median of $LOADS backends: $(cut -d' ' -f1 "$tmp/load.txt" | median) ms"
    echo "load     second call ($1): $(cut -d' ' -f2 "$tmp/load.txt" | median) ms"
}
loads rows
psql -X -q -v ON_ERROR_STOP=1 -v factors="$FACTORS" >/dev/null <<'SQL'
-- the packs as training writes them (store.c): 4096 items per pack at 64 factors
INSERT INTO it_item_packs (model, version, chunk, domain, items, item_ids, popularity, factors, norms)
SELECT 'bench', 1, c, 0, count(*), array_agg(item_id ORDER BY item_id), array_agg(popularity ORDER BY item_id),
       ARRAY(SELECT unnest(array_agg(factors ORDER BY item_id))),
       array_agg((SELECT sqrt(sum(f::float8 * f::float8)) FROM unnest(factors) f)::real ORDER BY item_id)
  FROM (SELECT (row_number() OVER (ORDER BY item_id) - 1) / greatest(1, 262144 / :factors) AS c, *
          FROM it_item_factors WHERE model = 'bench' AND version = 1) i
 GROUP BY c;
VACUUM ANALYZE it_item_packs;
SQL
PGOPTIONS="${PGOPTIONS:-} -c interest_transfer.item_cache=off" loads packs
# one backend writes the version's shared item file, the next ones map it
first_call >/dev/null
loads "shared item file"

# Server side: each call timed inside one backend.
(psql -X -q -At -v ON_ERROR_STOP=1 -v calls="$CALLS" -v users="$USERS" <<'SQL'
SET it.calls = :'calls';
SET it.users = :'users';
CREATE TEMP TABLE lat (us float8);
SELECT count(*) FROM recommend(1, 10) \g /dev/null
DO $$
DECLARE
    t0 timestamptz;
    n int := current_setting('it.calls')::int;
    users int := current_setting('it.users')::int;
BEGIN
    FOR i IN 1 .. n LOOP
        t0 := clock_timestamp();
        PERFORM * FROM recommend(1 + (i * 7919) % users, 10);
        INSERT INTO lat VALUES (extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END
$$;
SELECT format('server   p50 %s us  p95 %s us  p99 %s us  mean %s us',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 1),
              round(percentile_cont(0.95) WITHIN GROUP (ORDER BY us)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY us)::numeric, 1),
              round(avg(us)::numeric, 1))
  FROM lat;
SQL
) | tee "$tmp/server.txt"

# The same machine merely reading the bytes the server's first pass scans.
make -s -C "$here" PG_CONFIG="$(command -v pg_config)" tests/bench/bin/scan_bandwidth >/dev/null
"$here/tests/bench/bin/scan_bandwidth" "$ITEMS" "$FACTORS"
"$here/tests/bench/bin/scan_bandwidth" "$ITEMS" "$FACTORS" 200 4
[ "$ITEMS" -ge 262144 ] && "$here/tests/bench/bin/scan_bandwidth" "$ITEMS" "$FACTORS" 200 4 2

# Client round trip, one call per transaction.
cat >"$tmp/rec.sql" <<EOF
\set u random(1, $USERS)
SELECT * FROM recommend(:u, 10);
EOF
printf 'SELECT 1;\n' >"$tmp/one.sql"
pct() {
    # pgbench log: client_id transaction_no time(us) script_no time_epoch time_us.
    # The time column reads 0 for fast transactions in pgbench 15, so use the
    # interval between consecutive completions instead (one client: the
    # transaction's round trip, client side included).
    cat "$tmp"/log_"$1".* | awk '{ t = $5 * 1000000 + $6; if (NR > 1) print t - prev; prev = t }' |
        sort -n | awk -v name="$2" '
        { v[NR] = $1; s += $1 }
        END { printf "%s p50 %.1f us  p95 %.1f us  p99 %.1f us  mean %.1f us\n", name, v[int(NR * 0.5 + 0.5)],
                     v[int(NR * 0.95 + 0.5)], v[int(NR * 0.99 + 0.5)], s / NR }'
}
(cd "$tmp" && pgbench -n -f rec.sql -t "$CALLS" -c 1 -l --log-prefix=log_rec >/dev/null 2>&1)
(cd "$tmp" && pgbench -n -f one.sql -t "$CALLS" -c 1 -l --log-prefix=log_one >/dev/null 2>&1)
pct rec "pgbench  recommend" | tee "$tmp/rec.txt"
pct one "baseline SELECT 1" | tee "$tmp/one.txt"

# LATERAL over many users in one statement.
psql -X -q -At -v ON_ERROR_STOP=1 -v calls="$CALLS" -v users="$USERS" <<'SQL'
SET it.calls = :'calls';
SET it.users = :'users';
CREATE TEMP TABLE t (ms float8);
DO $$
DECLARE
    t0 timestamptz;
    n int := current_setting('it.calls')::int;
    users int := current_setting('it.users')::int;
    rows bigint;
BEGIN
    t0 := clock_timestamp();
    SELECT count(*) INTO rows FROM generate_series(1, n) g, LATERAL recommend(1 + (g * 7919) % users, 10);
    INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1e6 / n);
END
$$;
SELECT format('lateral  mean %s us per call', round(ms::numeric, 1)) FROM t;
SQL

# Many users in one statement: recommend_batch against CROSS JOIN LATERAL
# recommend() over the same USERS users, rows per second of each.
psql -X -q -At -v ON_ERROR_STOP=1 -v users="$USERS" <<'SQL' | tee "$tmp/batch.txt"
SET it.users = :'users';
CREATE TEMP TABLE t (what text, rows bigint, s float8);
DO $$
DECLARE
    t0 timestamptz;
    users int := current_setting('it.users')::int;
    rows bigint;
BEGIN
    t0 := clock_timestamp();
    SELECT count(*) INTO rows FROM generate_series(1, users) g CROSS JOIN LATERAL recommend(g, 10) r;
    INSERT INTO t VALUES ('lateral', rows, extract(epoch FROM clock_timestamp() - t0));
    t0 := clock_timestamp();
    SELECT count(*) INTO rows FROM recommend_batch(ARRAY(SELECT generate_series(1, users)::bigint), 10);
    INSERT INTO t VALUES ('batch', rows, extract(epoch FROM clock_timestamp() - t0));
END
$$;
SELECT format('%s %s rows in %s s: %s rows/s', rpad(what, 8), rows, round(s::numeric, 3), round((rows / s)::numeric))
  FROM t ORDER BY what DESC;
SELECT format('ratio    recommend_batch / LATERAL recommend rows/s: %sx',
              round(((SELECT rows / s FROM t WHERE what = 'batch') / (SELECT rows / s FROM t WHERE what = 'lateral'))::numeric, 2));
SQL

# The same top 10 in plain SQL, for scale.
PLAIN_CALLS=20
[ "$ITEMS" -gt 200000 ] && PLAIN_CALLS=3
(psql -X -q -At -v ON_ERROR_STOP=1 -v users="$USERS" -v plain_calls="$PLAIN_CALLS" <<'SQL'
SET it.users = :'users';
SET it.plain_calls = :'plain_calls';
CREATE TEMP TABLE t (us float8);
DO $$
DECLARE
    t0 timestamptz;
    users int := current_setting('it.users')::int;
BEGIN
    FOR r IN 1 .. current_setting('it.plain_calls')::int LOOP
        t0 := clock_timestamp();
        PERFORM i.item_id,
                (SELECT sum(a * b) FROM unnest(i.factors, u.factors) AS f(a, b)) AS s
           FROM it_item_factors i, it_user_factors u
          WHERE u.model = 'bench' AND u.version = 1 AND u.user_id = 1 + (r * 7919) % users
            AND i.model = 'bench' AND i.version = 1 AND i.item_id <> ALL (u.seen)
          ORDER BY s DESC LIMIT 10;
        INSERT INTO t VALUES (extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
END
$$;
SELECT format('baseline plain SQL top-10 p50 %s us (%s calls)',
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 1), count(*))
  FROM t;
SQL
) | tee "$tmp/plain.txt"

p50() { sed -n 's/.* p50 \([0-9.]*\) us.*/\1/p' "$tmp/$1.txt"; }
awk -v server="$(p50 server)" -v plain="$(p50 plain)" -v rec="$(p50 rec)" -v one="$(p50 one)" 'BEGIN {
    printf "ratio    plain SQL / recommend (server p50): %.0fx\n", plain / server
    printf "ratio    client extra latency over SELECT 1 (p50): %.1f us\n", rec - one
}'

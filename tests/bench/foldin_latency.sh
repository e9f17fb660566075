#!/bin/sh
# Fold-in latency: the solve alone, and recommend() end to end for users the
# model was not trained on, next to baselines measured in the same run.
#
#   tests/bench/foldin_latency.sh [ITEMS] [FACTORS] [CALLS]
#
# Defaults: 20000 items, 64 factors, 1000 calls.
#
# 1. Kernel (tests/bench/bench_foldin.c, no server): it_fold_in with 3 and
#    with 10 interactions, next to one sgemv over the item matrix.
# 2. Server: a model version written directly into the storage tables
#    (random factors, power-law popularity, 10000 trained users) with a user
#    features model (age, gender, region encoded to 13 floats, an MLP with
#    one hidden layer of 64 units), an interactions table indexed on user_id
#    and a customers table keyed by user_id.  Each call timed inside one
#    backend (plpgsql loop, clock_timestamp()), p50 / p99 / mean over CALLS
#    calls with a different user each:
#      model      a trained user (the baseline: one indexed read + scoring)
#      fold_in    a user with 3 interactions and a features row: two reads
#                 through saved plans, the MLP, the solve, scoring
#      features   a user with a features row only
#      popular    a user in neither table (both reads find nothing)
#      recommend_for  features as jsonb and 3 items (no reads)
# Uses the server in PGHOST/PGPORT when set (database it_bench_foldin),
# otherwise starts a throw-away cluster.
set -eu

ITEMS=${1:-20000}
FACTORS=${2:-64}
CALLS=${3:-1000}
USERS=10000
COLD=2000

here=$(cd "$(dirname "$0")/../.." && pwd)
PATH=$(pg_config --bindir):$PATH
export PATH

make -s -C "$here" tests/bench/bin/bench_foldin
"$here/tests/bench/bin/bench_foldin" -k "$FACTORS" -m "$ITEMS" -n 3 -c "$CALLS"
echo

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
    chmod 755 "$tmp"
    eval "$("$here/tests/pgcluster" start "$tmp/pg")"
fi
export PGDATABASE=it_bench_foldin
dropdb --if-exists it_bench_foldin >/dev/null 2>&1 || true
createdb it_bench_foldin

psql -X -q -v ON_ERROR_STOP=1 -v items="$ITEMS" -v factors="$FACTORS" -v users="$USERS" -v cold="$COLD" >/dev/null <<'SQL'
CREATE EXTENSION interest_transfer;
SELECT setseed(0.42);
CREATE TABLE events (user_id bigint, item_id bigint, weight real, ts timestamptz DEFAULT now());
CREATE TABLE customers (user_id bigint PRIMARY KEY, age int, gender text, region text);
-- trained users 1..users; cold users 1000001.. (3 events and a customers row),
-- 2000001.. (a customers row only), 3000001.. (nothing)
INSERT INTO events (user_id, item_id, weight)
SELECT 1000000 + u, 1 + floor(random() * :items)::bigint, 1 + floor(random() * 4)
  FROM generate_series(1, :cold) u, generate_series(1, 3) j;
CREATE INDEX ON events (user_id);
INSERT INTO customers
SELECT u, 18 + floor(random() * 60)::int, CASE WHEN random() < 0.5 THEN 'f' ELSE 'm' END,
       'region_' || floor(random() * 8)::int
  FROM (SELECT 1000000 + g AS u FROM generate_series(1, :cold) g
        UNION ALL SELECT 2000000 + g FROM generate_series(1, :cold) g) c;
ANALYZE events, customers;

INSERT INTO it_model_acl (model, owner) VALUES ('bench', current_user::regrole) ON CONFLICT DO NOTHING;
INSERT INTO it_model (model, version, algorithm, deployed, deployed_at, interactions_source,
                      user_features_source, options, factors, users, items, interactions, seconds,
                      loss, history, user_mean)
VALUES ('bench', 1, 'als', true, now(),
        'events', 'customers', jsonb_build_object('factors', :factors, 'alpha', 1),
        :factors, :users, :items, 0, 0, 0, '[]',
        (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, :factors)));
INSERT INTO it_item_factors (model, version, item_id, factors, popularity)
SELECT 'bench', 1, i,
       (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, :factors) j WHERE i > 0),
       floor(100000 / (i ^ 0.9))::bigint
  FROM generate_series(1, :items) i;
INSERT INTO it_user_factors (model, version, user_id, factors, seen)
SELECT 'bench', 1, u,
       (SELECT array_agg((random() - 0.5)::real) FROM generate_series(1, :factors) j WHERE u > 0),
       (SELECT array_agg(DISTINCT 1 + floor(random() * :items)::bigint) FROM generate_series(1, 20) j WHERE u > 0)
  FROM generate_series(1, :users) u;
-- age (numeric), gender (f, m, other), region (8 values, other): 13 floats;
-- an MLP 13 -> 64 (ReLU) -> factors
INSERT INTO it_prior (model, version, kind, in_use, spec, dims, params, layout, metrics)
SELECT 'bench', 1, 'user_features', true,
       jsonb_build_object('format', 1, 'id_column', 'user_id', 'dims', 13, 'rows', 10000,
                          'max_categories', 32, 'min_category_count', 2, 'columns', jsonb_build_array(
           jsonb_build_object('name', 'age', 'kind', 'numeric', 'type', 'integer', 'offset', 0, 'width', 1,
                              'missing', null, 'nulls', 0, 'mean', 47.5, 'std', 17.3),
           jsonb_build_object('name', 'gender', 'kind', 'category', 'type', 'text', 'offset', 1, 'width', 3,
                              'missing', null, 'nulls', 0, 'values', jsonb_build_array('f', 'm'),
                              'counts', jsonb_build_array(5000, 5000), 'other', 3),
           jsonb_build_object('name', 'region', 'kind', 'category', 'type', 'text', 'offset', 4, 'width', 9,
                              'missing', null, 'nulls', 0,
                              'values', (SELECT jsonb_agg('region_' || r ORDER BY r) FROM generate_series(0, 7) r),
                              'counts', (SELECT jsonb_agg(1250) FROM generate_series(0, 7) r), 'other', 12))),
       13,
       (SELECT array_agg(((random() - 0.5) * 0.2)::real)
          FROM generate_series(1, 64 * (13 + 1) + :factors * (64 + 1))),
       jsonb_build_object('input', 13, 'hidden', jsonb_build_array(64), 'output', :factors),
       '{"use_features": true, "popularity_blend": 0}';
VACUUM ANALYZE it_model, it_item_factors, it_user_factors, it_prior;
SQL

echo "recommend() end to end: $ITEMS items, $FACTORS factors, $CALLS calls each, top 10, server side"
psql -X -q -At -v ON_ERROR_STOP=1 -v calls="$CALLS" -v users="$USERS" -v cold="$COLD" <<'SQL'
SET it.calls = :'calls';
SET it.users = :'users';
SET it.cold = :'cold';
CREATE TEMP TABLE lat (what text, us float8);
-- load the model and the features model, prepare the plans
SELECT count(*) FROM recommend(1000001, 10) \g /dev/null
SELECT count(*) FROM recommend(1, 10) \g /dev/null
DO $$
DECLARE
    t0 timestamptz;
    n int := current_setting('it.calls')::int;
    users int := current_setting('it.users')::int;
    cold int := current_setting('it.cold')::int;
    src text;
BEGIN
    FOR i IN 1 .. n LOOP
        t0 := clock_timestamp();
        PERFORM * FROM recommend(1 + (i * 7919) % users, 10);
        INSERT INTO lat VALUES ('model', extract(epoch FROM clock_timestamp() - t0) * 1e6);

        t0 := clock_timestamp();
        PERFORM * FROM recommend(1000001 + (i * 7919) % cold, 10);
        INSERT INTO lat VALUES ('fold_in', extract(epoch FROM clock_timestamp() - t0) * 1e6);

        t0 := clock_timestamp();
        PERFORM * FROM recommend(2000001 + (i * 7919) % cold, 10);
        INSERT INTO lat VALUES ('features', extract(epoch FROM clock_timestamp() - t0) * 1e6);

        t0 := clock_timestamp();
        PERFORM * FROM recommend(3000001 + i, 10);
        INSERT INTO lat VALUES ('popular', extract(epoch FROM clock_timestamp() - t0) * 1e6);

        t0 := clock_timestamp();
        PERFORM * FROM recommend_for(jsonb_build_object('age', 20 + i % 50, 'gender', 'f', 'region', 'region_' || i % 8),
                                     ARRAY[1 + (i * 7) % 20000, 1 + (i * 13) % 20000, 1 + (i * 17) % 20000]::bigint[], 10);
        INSERT INTO lat VALUES ('recommend_for', extract(epoch FROM clock_timestamp() - t0) * 1e6);
    END LOOP;
    -- the paths really are the ones measured
    SELECT min(source) INTO src FROM recommend(1000001, 10);
    IF src <> 'fold_in' THEN RAISE EXCEPTION 'cold user served by %', src; END IF;
    SELECT min(source) INTO src FROM recommend(2000001, 10);
    IF src <> 'features' THEN RAISE EXCEPTION 'features user served by %', src; END IF;
    SELECT min(source) INTO src FROM recommend(3000001, 10);
    IF src <> 'popular' THEN RAISE EXCEPTION 'unknown user served by %', src; END IF;
END
$$;
SELECT format('%-14s p50 %7s us  p99 %7s us  mean %7s us', what,
              round(percentile_cont(0.5) WITHIN GROUP (ORDER BY us)::numeric, 1),
              round(percentile_cont(0.99) WITHIN GROUP (ORDER BY us)::numeric, 1),
              round(avg(us)::numeric, 1))
  FROM lat GROUP BY what
 ORDER BY array_position(ARRAY['model', 'fold_in', 'features', 'popular', 'recommend_for'], what);
SELECT format('ratio fold_in / model (p50): %s',
              round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM lat WHERE what = 'fold_in')::numeric
                    / (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY us) FROM lat WHERE what = 'model')::numeric, 2));
SQL

#!/bin/sh
# Speed of the whole train() call next to a CPU ALS fit measured in the same
# run (the goal: train() <= 0.5 x the fastest open-source CPU ALS fit).
#
#   tests/bench/train_speed.sh [USERS] [ITEMS] [INTERACTIONS]
#
# Defaults: 50,000 users, 10,000 items, 1,000,000 distinct (user, item)
# pairs.  Environment: IT_BENCH_ZIPF (item popularity exponent, default
# 0.8), IT_BENCH_REPS (repetitions, default 3), IT_BENCH_FEATURES=0 skips
# the second scenario, IT_BENCH_FEATURE_USERS (its users, default 100,000),
# IT_PGBIN (the server's bin directory; default: pg_config on PATH).  Uses
# the server in PGHOST/PGPORT when set (a database "it_bench_train" is
# created there; the extension must be installed), otherwise starts a
# throw-away cluster in a temporary directory.
#
# 1. Generates inside PostgreSQL (setseed, so every run has the same data)
#    the interactions: each user's activity lognormal (sigma 1), items drawn
#    with Zipf-like popularity; weight = how many times a pair was drawn.
# 2. Times SELECT * FROM train('bench', 'events', options =>
#    '{"factors": 64, "iterations": 10, "threads": 2}') from the client
#    (psql \timing), IT_BENCH_REPS times, and prints the median and the
#    phases the model keeps in it_model.metrics->'phases'.
# 3. Exports the same interactions with COPY and times the reference,
#    tests/bench/bin/implicit_cg: a pure-C stand-in for implicit's CPU
#    conjugate-gradient ALS fit, implicit.cpu.als.AlternatingLeastSquares(
#    factors=64, iterations=10, use_cg=True, num_threads=2).fit(user_items),
#    the fastest open-source CPU ALS we know of (implicit itself is not
#    installable here, see the program's header).  It uses train()'s
#    regularization (options->>'regularization' of the trained version, the
#    "auto" rule's value), its alpha and its CG steps, so both do the same
#    arithmetic; its final loss is printed next to train()'s as a check.
#    Then once more with -g (sgemv for ssymv, which skips a lock inside
#    OpenBLAS that implicit pays too): a stricter reference, printed apart.
# 4. Prints the ratio train() / stand-in and the target (<= 0.5).
# 5. Unless IT_BENCH_FEATURES=0: 100,000 users with features (age band,
#    country, device, tenure) and items with features (category, price), the
#    interactions leaning to a category the user's features predict; trains
#    once with both feature sources and prints the phases and the ratio
#    priors / als (goal: <= 1).
# Asserts nothing; the machine's other load shows in the numbers.
set -eu

USERS=${1:-50000}
ITEMS=${2:-10000}
INTERACTIONS=${3:-1000000}
ZIPF=${IT_BENCH_ZIPF:-0.8}
REPS=${IT_BENCH_REPS:-3}
FEATURES=${IT_BENCH_FEATURES:-1}
FEATURE_USERS=${IT_BENCH_FEATURE_USERS:-100000}
FACTORS=64
ITERATIONS=10
THREADS=2
OPTIONS="{\"factors\": $FACTORS, \"iterations\": $ITERATIONS, \"threads\": $THREADS}"

here=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${IT_PGBIN:-}" ]; then PATH=$IT_PGBIN:$PATH; else PATH=$(pg_config --bindir):$PATH; fi
export PATH

# the stand-in, built from this checkout (not part of the normal build)
make -s -C "$here" PG_CONFIG="$(command -v pg_config)" tests/bench/bin/implicit_cg
standin=$here/tests/bench/bin/implicit_cg

tmp=$(mktemp -d /tmp/it-bench-train.XXXXXX)
own_cluster=
cleanup() {
    if [ -n "$own_cluster" ]; then "$here/tests/pgcluster" stop "$tmp/pg" >/dev/null 2>&1 || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

if [ -z "${PGHOST:-}" ]; then
    own_cluster=1
    chmod 755 "$tmp"
    eval "$("$here/tests/pgcluster" start "$tmp/pg")"
fi
export PGDATABASE=it_bench_train
dropdb --if-exists it_bench_train >/dev/null 2>&1 || true
createdb it_bench_train
psql -X -q -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION interest_transfer'

# generate PREFIX USERS ITEMS INTERACTIONS PREF SEED OVERSAMPLE: tables PREFIX_users
# (features and activity), PREFIX_items (features) and PREFIX_events
# (user_id, item_id, weight: distinct pairs).  PREF is the share of a user's
# draws taken from the category their features point to (0: none); draws
# are OVERSAMPLE x INTERACTIONS, so that as many distinct pairs are left.
generate() {
    psql -X -q -v ON_ERROR_STOP=1 -v p="$1" -v users="$2" -v items="$3" -v interactions="$4" \
         -v pref="$5" -v seed="$6" -v zipf="$ZIPF" -v categories=20 -v sigma=1 -v oversample="$7" <<'SQL'
\set t_u :p '_u'
\set t_users :p '_users'
\set t_items :p '_items'
\set t_events :p '_events'
SET client_min_messages = warning;
-- one backend, no parallel plan: random() after setseed gives the same rows every run
SET max_parallel_workers_per_gather = 0;
SELECT setseed(:seed) \g /dev/null
SELECT :zipf::float8 <> 1 AS zipf_ok \gset
\if :zipf_ok
\else
\echo 'IT_BENCH_ZIPF must not be 1 (the inverse of the popularity law divides by 1 - exponent)'
\quit
\endif
-- users: features a (age band), c (country, skewed), d (device), tenure;
-- activity w, lognormal; the favourite category follows the features 80% of the time
CREATE TABLE :"t_u" AS
SELECT user_id, a, c, d, tenure_days, w,
       CASE WHEN random() < 0.8 THEN (a * 7 + c * 3 + d) % :categories
            ELSE floor(random() * :categories)::int END AS fav
  FROM (SELECT u AS user_id,
               floor(random() * 6)::int AS a,
               floor(power(random(), 1.5) * 10)::int AS c,
               floor(random() * 3)::int AS d,
               floor(random() * 2000)::int AS tenure_days,
               exp(:sigma * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) AS w
          FROM generate_series(1, :users) u) s;
CREATE TABLE :"t_users" AS
SELECT user_id::bigint,
       (ARRAY['18-24', '25-34', '35-44', '45-54', '55-64', '65+'])[a + 1] AS age_band,
       (ARRAY['DE', 'US', 'FR', 'GB', 'ES', 'IT', 'PL', 'NL', 'SE', 'JP'])[c + 1] AS country,
       (ARRAY['android', 'ios', 'desktop'])[d + 1] AS device,
       tenure_days
  FROM :"t_u";
-- items: the category of item i is (i - 1) % categories; price by category
CREATE TABLE :"t_items" AS
SELECT i::bigint AS item_id, 'cat' || lpad(((i - 1) % :categories)::text, 2, '0') AS category,
       round(((5 + 10 * ((i - 1) % :categories % 7)) * exp(0.5 * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())))::numeric, 2) AS price
  FROM generate_series(1, :items) i;
-- draws per user in proportion to w; an item by the inverse of the
-- continuous Zipf law over the whole catalogue, or (share pref) over the
-- favourite category's items, fav + 1, fav + 1 + categories, ...
CREATE TEMP TABLE draws AS
WITH n AS (SELECT user_id, fav,
                  least(:items / 2, greatest(1, round(w / sum(w) OVER () * :interactions * :oversample)))::int AS n
             FROM :"t_u")
SELECT n.user_id,
       CASE WHEN random() < :pref
            THEN 1 + n.fav + :categories * (floor(power(1 + random() * (power(:items / :categories + 1, 1 - :zipf) - 1),
                                                        1 / (1 - :zipf)))::int - 1)
            ELSE floor(power(1 + random() * (power(:items + 1, 1 - :zipf) - 1), 1 / (1 - :zipf)))::int
       END AS item_id
  FROM n CROSS JOIN LATERAL generate_series(1, n.n) g;
-- distinct pairs (weight: times drawn), a random :interactions of them
CREATE TABLE :"t_events" AS
SELECT user_id::bigint, item_id::bigint, weight FROM (
    SELECT user_id, item_id, count(*)::real AS weight, random() AS r
      FROM draws WHERE item_id BETWEEN 1 AND :items GROUP BY 1, 2) pairs
 ORDER BY r LIMIT :interactions;
DROP TABLE :"t_u";
VACUUM ANALYZE :"t_users", :"t_items", :"t_events";
SQL
}

# train_timed ARGS: runs SELECT version FROM train(ARGS); prints "VERSION MS"
train_timed() {
    psql -X -q -At -v ON_ERROR_STOP=1 <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p; /^[0-9][0-9]*$/p' | tr '\n' ' '
SET client_min_messages = warning;
\timing on
SELECT version FROM train($1);
SQL
}

# phases MODEL VERSION: the phases, as they are stored, one "  key  seconds" a line
phases() {
    psql -X -q -At -v ON_ERROR_STOP=1 -v m="$1" -v v="$2" <<'SQL'
SELECT format('  %-14s %s s', key, value) FROM it_model, jsonb_each(metrics->'phases')
 WHERE model = :'m' AND version = :v;
SELECT format('  %-14s %s s', '(sum)', round(sum(value::text::numeric), 4)) FROM it_model, jsonb_each(metrics->'phases')
 WHERE model = :'m' AND version = :v;
SQL
}

phase() {
    psql -X -q -At -v ON_ERROR_STOP=1 -v m="$1" -v v="$2" -v k="$3" <<'SQL'
SELECT metrics->'phases'->>:'k' FROM it_model WHERE model = :'m' AND version = :v;
SQL
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------
echo "== train() speed: $USERS users, $ITEMS items, $INTERACTIONS interactions, zipf $ZIPF; options $OPTIONS; $REPS runs"
t0=$(date +%s)
generate b "$USERS" "$ITEMS" "$INTERACTIONS" 0 0.42 1.2
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT format('data: %s users, %s items, %s interactions; most popular item %s users, most active user %s items, weights 1 to %s (generated in $(( $(date +%s) - t0 )) s)',
    count(DISTINCT user_id), count(DISTINCT item_id), count(*),
    (SELECT max(n) FROM (SELECT count(*) n FROM b_events GROUP BY item_id) s),
    (SELECT max(n) FROM (SELECT count(*) n FROM b_events GROUP BY user_id) s), max(weight)) FROM b_events"

: >"$tmp/train.txt"
rep=1
while [ "$rep" -le "$REPS" ]; do
    set -- $(train_timed "'bench', 'b_events', options => '$OPTIONS'")
    version=$1
    ms=$2
    echo "$ms $version" >>"$tmp/train.txt"
    echo "train() run $rep: $(awk -v ms="$ms" 'BEGIN { printf "%.3f", ms / 1000 }') s (version $version; phases $(psql -X -At -c "SELECT metrics->'phases' FROM it_model WHERE model = 'bench' AND version = $version"))"
    rep=$((rep + 1))
done
train_s=$(cut -d' ' -f1 "$tmp/train.txt" | median | awk '{ printf "%.3f", $1 / 1000 }')
# the run whose time is the median (the lower middle one for an even count)
mid_version=$(sort -n "$tmp/train.txt" | sed -n "$(( (REPS + 1) / 2 ))p" | cut -d' ' -f2)
echo "train() median of $REPS: $train_s s (whole SQL call, timed by the client)"
echo "phases of version $mid_version (it_model.metrics->'phases', seconds):"
phases bench "$mid_version"
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT format('  fold_in_weight ran beside write: %s', coalesce(metrics->>'fold_in_beside_write', 'false'))
    FROM it_model WHERE model = 'bench' AND version = $mid_version"
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT format('  not in the phases: %s s of the call (writing the model, commit, client; negative when phases overlap)',
    round(($train_s - sum(value::text::numeric)), 3)) FROM it_model, jsonb_each(metrics->'phases') WHERE model = 'bench' AND version = $mid_version"

# the same interactions, and train()'s arithmetic, for the stand-in
psql -X -q -v ON_ERROR_STOP=1 -c "\\copy (SELECT user_id, item_id, weight FROM b_events) TO '$tmp/events.tsv'"
set -- $(psql -X -At -F ' ' -c "SELECT options->>'regularization', options->>'alpha', options->>'cg_steps', loss FROM it_model WHERE model = 'bench' AND version = $mid_version")
reg=$1
alpha=$2
cg=$3
train_loss=$4
echo "== stand-in: $standin (pure C, OpenMP, OpenBLAS level-1/2 per row)"
"$standin" -f "$FACTORS" -i "$ITERATIONS" -t "$THREADS" -c "$cg" -r "$reg" -a "$alpha" -n "$REPS" -l "$tmp/events.tsv" | tee "$tmp/standin.txt"
echo "== stand-in with -g (sgemv instead of ssymv: without OpenBLAS's buffer lock, a stricter reference)"
"$standin" -f "$FACTORS" -i "$ITERATIONS" -t "$THREADS" -c "$cg" -r "$reg" -a "$alpha" -n "$REPS" -g "$tmp/events.tsv" |
    grep -v '^implicit_cg:\|^data:' | tee "$tmp/standin_g.txt"
fit_median() { sed -n 's/^median of [0-9]*: fit \([0-9.]*\) s.*/\1/p' "$1"; }
standin_s=$(fit_median "$tmp/standin.txt")
standin_g_s=$(fit_median "$tmp/standin_g.txt")
standin_loss=$(sed -n "s/^iteration *$ITERATIONS: loss \([0-9.e+-]*\) .*/\1/p" "$tmp/standin.txt")
echo "== ratio"
awk -v t="$train_s" -v s="$standin_s" -v g="$standin_g_s" -v tl="$train_loss" -v sl="$standin_loss" 'BEGIN {
    printf "final loss: train() %.6g, stand-in %.6g (same objective and lambda; differ by %.2f%%)\n", tl, sl, 100 * (tl - sl) / sl
    printf "train() %.3f s / stand-in fit %.3f s = %.3f (target <= 0.5: %s)\n", t, s, t / s, (t / s <= 0.5) ? "met" : "not met"
    printf "train() %.3f s / stand-in fit with -g %.3f s = %.3f (stricter)\n", t, g, t / g
}'

# ---------------------------------------------------------------------------
if [ "$FEATURES" = 0 ]; then exit 0; fi
echo "== with features: $FEATURE_USERS users (age band, country, device, tenure), $ITEMS items (category, price), $INTERACTIONS interactions"
t0=$(date +%s)
generate f "$FEATURE_USERS" "$ITEMS" "$INTERACTIONS" 0.6 0.43 1.5
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT format('data: %s users, %s items, %s interactions (generated in $(( $(date +%s) - t0 )) s)',
    count(DISTINCT user_id), count(DISTINCT item_id), count(*)) FROM f_events"
set -- $(train_timed "'feat', 'f_events', user_features => 'f_users', item_features => 'f_items', options => '$OPTIONS'")
version=$1
echo "train() with user_features and item_features: $(awk -v ms="$2" 'BEGIN { printf "%.3f", ms / 1000 }') s (whole SQL call)"
echo "phases (it_model.metrics->'phases', seconds):"
phases feat "$version"
psql -X -q -At -v ON_ERROR_STOP=1 -c "SELECT format('  %s prior: used %s, precision@10 %s vs popularity %s; fit %s s (%s of %s epochs, %s rows), check %s s, fold-in weight %s s',
    kind, metrics->>'use_features',
    round((metrics->>'precision')::numeric, 4), round((metrics->>'baseline_precision')::numeric, 4),
    round((metrics->>'seconds')::numeric, 3), metrics->>'epochs_run', metrics->>'epochs_allowed', metrics->>'training_rows',
    round((metrics->>'check_seconds')::numeric, 3), coalesce(round((metrics->>'fold_in_seconds')::numeric, 3)::text, '-'))
  FROM it_prior WHERE model = 'feat' AND version = $version AND kind IN ('user_features', 'item_features') ORDER BY kind"
awk -v p="$(phase feat "$version" priors)" -v a="$(phase feat "$version" als)" 'BEGIN {
    if (a > 0) printf "priors / als = %.3f / %.3f = %.2f (goal <= 1: %s)\n", p, a, p / a, (p <= a) ? "met" : "not met"
    else print "priors / als: the model keeps no als phase"
}'

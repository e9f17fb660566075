#!/bin/bash
# A hot standby serves recommend() from the replicated model, sees a new
# version once the primary commits it, folds in a new user from the
# replicated interactions, and refuses to train, import, deploy or refresh
# at once, before reading anything, with a hint to use the primary.
# Uses the cluster named by PGHOST/PGPORT/PGUSER as the primary and starts a
# standby of it (pg_basebackup) in a temporary directory.  Prints "ok" or
# what failed; exit status 0 on success.
set -euo pipefail

primary_host=$PGHOST
dir=$(mktemp -d "${TMPDIR:-/tmp}/it-standby.XXXXXX")
db=it_standby
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
sq() { PGHOST=$dir q "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

cleanup()
{
    [ -f "$dir/data/postmaster.pid" ] && as_owner pg_ctl -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] && chown postgres "$dir"

q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q -d "$db" >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION interest_transfer;
CREATE TABLE events AS
SELECT u AS user_id, 10 * (u % 3) + 1 + (u + j) % 6 AS item_id FROM generate_series(1, 90) u, generate_series(0, 3) j;
SELECT version FROM train('sm', 'events', options => '{"factors": 4, "iterations": 6}');
SQL

as_owner pg_basebackup -h "$primary_host" -D "$dir/data" -R -X stream -c fast >/dev/null
{
    echo "unix_socket_directories = '$dir'"
    echo "hot_standby = on"
    echo "shared_preload_libraries = ''"
} >>"$dir/data/postgresql.conf"
as_owner pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null || { cat "$dir/server.log"; fail "standby did not start"; }
[ "$(sq -d "$db" -c 'SELECT pg_is_in_recovery()')" = t ] || fail "the standby is not in recovery"

wait_replay()
{
    local lsn
    # the end of a record written now: with synchronous_commit off
    # (tests/pgcluster) the write position can still be before the commit
    # that just returned, and the insert position can sit past the header of
    # a page no record has reached yet, which the standby never replays to
    lsn=$(q -d postgres -c "SELECT pg_logical_emit_message(false, 'interest_transfer', 'standby test')")
    for _ in $(seq 1 100); do
        [ "$(sq -d postgres -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'")" = t ] && return 0
        sleep 0.1
    done
    fail "the standby did not replay up to $lsn"
}
wait_replay

primary=$(q -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'sm')")
standby=$(sq -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'sm')")
[ "$primary" = "$standby" ] || fail "the standby recommends $standby, the primary $primary"
echo "standby serves version 1: $standby"

# refusals: before anything is read (the source would fail with 22012 if it were)
for call in "SELECT * FROM train('sm', 'SELECT 1 / 0 AS user_id, 1 AS item_id')" \
            "SELECT * FROM train('sm')" "SELECT deploy('sm', 1)" "SELECT refresh('sm')" \
            "SELECT * FROM import_model('sm', 'SELECT 1 / 0 AS id', 'SELECT 1 / 0 AS id')"; do
    if sq -d "$db" -c "\\set VERBOSITY verbose" -c "$call" >/dev/null 2>"$dir/err"; then
        fail "on the standby, $call succeeded"
    fi
    grep -q 'ERROR:  25006: cannot .* model "sm" on a hot standby' "$dir/err" || { cat "$dir/err"; fail "$call: not the standby refusal"; }
    grep -q 'HINT:  Run .* on the primary server' "$dir/err" || { cat "$dir/err"; fail "$call: no hint"; }
done
echo "standby refuses train, train(model), deploy, refresh, import_model: $(grep -m1 '^ERROR' "$dir/err")"

# a new version on the primary reaches the standby's serving
q -d "$db" -c "SET client_min_messages = warning" -c "SELECT version FROM train('sm', 'events', options => '{\"factors\": 3, \"iterations\": 6, \"seed\": 9}')" >/dev/null
wait_replay
v=$(sq -d "$db" -c "SELECT version FROM models WHERE model = 'sm' AND deployed")
[ "$v" = 2 ] || fail "the standby's deployed version is $v, not 2"
primary=$(q -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'sm')")
standby=$(sq -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'sm')")
[ "$primary" = "$standby" ] || fail "after version 2 the standby recommends $standby, the primary $primary"
echo "standby serves version 2 after the primary committed it: $standby"

# a new user's rows arrive on the primary: the standby folds them in from the replicated source
q -d "$db" -c "INSERT INTO events VALUES (1000, 1), (1000, 2), (1000, 3)"
wait_replay
src=$(sq -d "$db" -c "SELECT DISTINCT source FROM recommend(1000, 5, 'sm')")
[ "$src" = fold_in ] || fail "the standby serves a new user with interactions from '$src', not fold_in"
primary=$(q -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1000, 5, 'sm')")
standby=$(sq -d "$db" -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1000, 5, 'sm')")
[ "$primary" = "$standby" ] || fail "for a new user the standby recommends $standby, the primary $primary"
echo "standby folds in a new user as the primary does: $standby"
echo ok

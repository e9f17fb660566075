#!/bin/bash
# Models survive pg_dump and a restore into a cluster whose roles have other
# OIDs: owners and grants are stored by role (regrole), so after dropping
# and re-creating the roles, a plain and a custom-format restore each give
# back a model its owner can retrain and deploy, its grantee can use, and
# whose owner cannot be dropped while she owns it.  Uses the cluster named
# by PGHOST/PGPORT/PGUSER.  Prints "ok" or what failed; exit status 0 on
# success.
set -euo pipefail

tmp=$(mktemp -d "${TMPDIR:-/tmp}/it-dump.XXXXXX")
chmod 755 "$tmp"
q() { psql -X -q -At -v ON_ERROR_STOP=1 "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

cleanup()
{
    for d in it_dr_src it_dr_plain it_dr_custom; do
        q -d postgres -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1 || true
    done
    q -d postgres -c "DROP ROLE IF EXISTS it_dr_alice" -c "DROP ROLE IF EXISTS it_dr_bob" >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
tmp=$(mktemp -d "${TMPDIR:-/tmp}/it-dump.XXXXXX")

q -d postgres -c "CREATE ROLE it_dr_alice LOGIN" -c "CREATE ROLE it_dr_bob LOGIN" -c "CREATE DATABASE it_dr_src"
q -d it_dr_src >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION interest_transfer;
CREATE TABLE events AS
SELECT u AS user_id, 10 * (u % 3) + 1 + (u + j) % 6 AS item_id FROM generate_series(1, 90) u, generate_series(0, 3) j;
GRANT SELECT ON events TO it_dr_alice;
SET ROLE it_dr_alice;
SELECT version FROM train('am', 'events', options => '{"factors": 4, "iterations": 6}');
SELECT grant_model('am', 'it_dr_bob', 'use');
RESET ROLE;
SQL
before=$(q -d it_dr_src -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'am')")
old_oid=$(q -d postgres -c "SELECT oid FROM pg_roles WHERE rolname = 'it_dr_alice'")

pg_dump -d it_dr_src -f "$tmp/plain.sql"
pg_dump -d it_dr_src -Fc -f "$tmp/custom.dump"

# the roles go away and come back with new OIDs
q -d postgres -c "DROP DATABASE it_dr_src" -c "DROP ROLE it_dr_alice" -c "DROP ROLE it_dr_bob" \
    -c "CREATE ROLE it_dr_filler" -c "DROP ROLE it_dr_filler" \
    -c "CREATE ROLE it_dr_bob LOGIN" -c "CREATE ROLE it_dr_alice LOGIN"
new_oid=$(q -d postgres -c "SELECT oid FROM pg_roles WHERE rolname = 'it_dr_alice'")
[ "$old_oid" != "$new_oid" ] || fail "the re-created role kept its OID; the test proves nothing"

q -d postgres -c "CREATE DATABASE it_dr_plain" -c "CREATE DATABASE it_dr_custom"
psql -X -q -v ON_ERROR_STOP=1 -d it_dr_plain -f "$tmp/plain.sql" >"$tmp/plain.log" 2>&1 \
    || { cat "$tmp/plain.log"; fail "plain restore failed"; }
pg_restore -d it_dr_custom --exit-on-error "$tmp/custom.dump" >"$tmp/custom.log" 2>&1 \
    || { cat "$tmp/custom.log"; fail "custom-format restore failed"; }

for db in it_dr_plain it_dr_custom; do
    owner=$(q -d "$db" -c "SELECT DISTINCT owner FROM models WHERE model = 'am'")
    [ "$owner" = it_dr_alice ] || fail "$db: the model's owner is '$owner', not it_dr_alice"
    after=$(q -d "$db" -U it_dr_bob -c "SELECT string_agg(item_id::text, ',' ORDER BY rank) FROM recommend(1, 5, 'am')") \
        || fail "$db: the grantee cannot use the restored model"
    [ "$after" = "$before" ] || fail "$db: recommend(1, 5) gave $after, before the dump $before"
    v=$(q -d "$db" -U it_dr_alice -c "SET client_min_messages = warning" -c "SELECT version FROM train('am')") \
        || fail "$db: the owner cannot retrain her restored model"
    [ "$v" = 2 ] || fail "$db: retrain made version $v, not 2"
    q -d "$db" -U it_dr_alice -c "SELECT deploy('am', 1)" >/dev/null || fail "$db: the owner cannot deploy"
    if q -d "$db" -U it_dr_bob -c "SELECT deploy('am', 2)" >/dev/null 2>&1; then
        fail "$db: the grantee of use could deploy"
    fi
    echo "$db: owner it_dr_alice (OID $old_oid before, $new_oid now) retrained and deployed; it_dr_bob is served $after"
done

# the restored grants pin the roles: DROP ROLE refuses while they own or use models
if q -d it_dr_plain -c "DROP ROLE it_dr_alice" >/dev/null 2>"$tmp/drop.err"; then
    fail "DROP ROLE it_dr_alice succeeded while she owns restored models"
fi
grep -q 'it_role_pin' "$tmp/drop.err" || { cat "$tmp/drop.err"; fail "DROP ROLE refused for another reason"; }
echo "DROP ROLE it_dr_alice refused: $(grep -m1 'privileges for table it_role_pin' "$tmp/drop.err")"
echo ok

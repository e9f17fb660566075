#!/bin/bash
# Scheduled retraining through pg_cron, end to end: a nightly-style train(model)
# job and a refresh(model) job, run by pg_cron's background workers in their
# own database, must succeed and leave a new deployed version and a refreshed
# user behind. Uses the cluster named by PGHOST/PGPORT/PGUSER (tests/pgcluster
# preloads pg_cron with cron.database_name = 'postgres'). pg_cron runs jobs at
# minute boundaries, so this waits up to about 75 seconds.
# Prints "ok" or what failed; exit status 0 on success.
set -euo pipefail
db=it_cron
psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
psql -X -q -At -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION interest_transfer;
CREATE TABLE events (user_id bigint, item_id bigint, weight real, ts timestamptz DEFAULT now() - interval '1 day');
INSERT INTO events (user_id, item_id, weight)
  SELECT u, 1 + (u % 4) * 10 + (i % 10), 1 FROM generate_series(1, 200) u, generate_series(1, 6) i;
SELECT version FROM train('cron_m', 'events', options => '{"factors": 4, "iterations": 3}');
-- a new user after training: refresh() must fold them in
INSERT INTO events (user_id, item_id, weight, ts) VALUES (1001, 1, 1, now()), (1001, 2, 1, now());
SQL
psql -X -q -At -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
CREATE EXTENSION IF NOT EXISTS pg_cron;
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('it-retrain', 'it-refresh');
SQL
# The jobs are followed by jobid: cron.unschedule deletes their cron.job
# rows, but not their runs in cron.job_run_details.
retrain=$(psql -X -q -At -d postgres -v ON_ERROR_STOP=1 \
          -c "SELECT cron.schedule_in_database('it-retrain', '* * * * *', \$\$SELECT train('cron_m')\$\$, '$db')")
refresh=$(psql -X -q -At -d postgres -v ON_ERROR_STOP=1 \
          -c "SELECT cron.schedule_in_database('it-refresh', '* * * * *', \$\$SELECT refresh('cron_m')\$\$, '$db')")
jobs="$retrain, $refresh"
unschedule()
{
    psql -X -q -At -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobid IN ($jobs)" >/dev/null || true
}
trap unschedule EXIT

# until each job has a finished run
done=0
for _ in $(seq 1 90); do
    done=$(psql -X -At -d postgres -c "SELECT count(DISTINCT jobid) FROM cron.job_run_details
                                        WHERE jobid IN ($jobs) AND status IN ('succeeded', 'failed')")
    [ "$done" = 2 ] && break
    sleep 1
done
unschedule
# a run started at a later minute boundary may still be going: let it end
for _ in $(seq 1 60); do
    running=$(psql -X -At -d postgres -c "SELECT count(*) FROM cron.job_run_details
                                           WHERE jobid IN ($jobs) AND status NOT IN ('succeeded', 'failed')")
    [ "$running" = 0 ] && break
    sleep 1
done
psql -X -At -d postgres -c "SELECT CASE jobid WHEN $retrain THEN 'it-retrain' ELSE 'it-refresh' END, status, return_message
                              FROM cron.job_run_details WHERE jobid IN ($jobs) ORDER BY start_time"
[ "$done" = 2 ] || { echo "pg_cron jobs did not finish in time"; exit 1; }
[ "$running" = 0 ] || { echo "a pg_cron run did not end"; exit 1; }
# every run of each job succeeded, and each job ran
bad=$(psql -X -At -d postgres -c "SELECT string_agg(format('%s: %s succeeded, %s failed', j.name, j.ok, j.failed), '; ')
                                    FROM (SELECT j.name, count(*) FILTER (WHERE d.status = 'succeeded') AS ok,
                                                 count(*) FILTER (WHERE d.status = 'failed') AS failed
                                            FROM (VALUES ($retrain, 'it-retrain'), ($refresh, 'it-refresh')) j(jobid, name)
                                            LEFT JOIN cron.job_run_details d USING (jobid)
                                           GROUP BY j.name) j
                                   WHERE j.ok = 0 OR j.failed > 0")
[ -z "$bad" ] || { echo "a pg_cron job failed: $bad"; exit 1; }
# each retrain run wrote and deployed a version after version 1 (the first
# also saw user 1001, who arrived after version 1); whichever job ran
# first, user 1001 is stored
want=$(psql -X -At -d postgres -c "SELECT 1 + count(*) FROM cron.job_run_details WHERE jobid = $retrain AND status = 'succeeded'")
deployed=$(psql -X -At -d "$db" -c "SELECT version FROM models WHERE model = 'cron_m' AND deployed")
refreshed=$(psql -X -At -d "$db" -c "SELECT count(*) FROM it_user_factors WHERE model = 'cron_m' AND user_id = 1001")
echo "deployed version of cron_m: $deployed; stored rows of the new user: $refreshed"
[ "$deployed" = "$want" ] || { echo "train(model) from pg_cron did not deploy version $want"; exit 1; }
[ "$refreshed" -ge 1 ] || { echo "the new user was never stored"; exit 1; }
psql -X -q -d postgres -c "DROP DATABASE $db"
echo ok

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
SELECT cron.schedule_in_database('it-retrain', '* * * * *', \$\$SELECT train('cron_m')\$\$, '$db') > 0;
SELECT cron.schedule_in_database('it-refresh', '* * * * *', \$\$SELECT refresh('cron_m')\$\$, '$db') > 0;
SQL
done=0
for _ in $(seq 1 90); do
    done=$(psql -X -At -d postgres -c "SELECT count(DISTINCT j.jobname) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                        WHERE j.jobname IN ('it-retrain', 'it-refresh') AND d.status IN ('succeeded', 'failed')")
    [ "$done" = 2 ] && break
    sleep 1
done
psql -X -q -d postgres -c "SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname IN ('it-retrain', 'it-refresh')" >/dev/null
psql -X -At -d postgres -c "SELECT j.jobname, d.status, d.return_message FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                            WHERE j.jobname IN ('it-retrain', 'it-refresh') ORDER BY d.start_time"
[ "$done" = 2 ] || { echo "pg_cron jobs did not finish in time"; exit 1; }
bad=$(psql -X -At -d postgres -c "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                                   WHERE j.jobname IN ('it-retrain', 'it-refresh') AND d.status <> 'succeeded'")
[ "$bad" = 0 ] || { echo "a pg_cron job failed"; exit 1; }
# the retrain job wrote and deployed version 2 (it also saw user 1001, who
# arrived after version 1); whichever job ran first, user 1001 is stored
deployed=$(psql -X -At -d "$db" -c "SELECT version FROM models WHERE model = 'cron_m' AND deployed")
refreshed=$(psql -X -At -d "$db" -c "SELECT count(*) FROM it_user_factors WHERE model = 'cron_m' AND user_id = 1001")
echo "deployed version of cron_m: $deployed; stored rows of the new user: $refreshed"
[ "$deployed" = 2 ] || { echo "train(model) from pg_cron did not deploy version 2"; exit 1; }
[ "$refreshed" -ge 1 ] || { echo "the new user was never stored"; exit 1; }
psql -X -q -d postgres -c "DROP DATABASE $db"
echo ok

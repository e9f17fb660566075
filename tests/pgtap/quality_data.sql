-- The generated shop (tests/data/generate.sql) that the quality tests,
-- benchmarks and demo stand on: deterministic, with the planted structure
-- it promises, and a split without leaks.
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgtap;

\o /dev/null
\ir ../data/generate.sql
SELECT * FROM it_demo.generate(users => 1000, items => 200, per_user => 20, groups => 8, seed => 0.42);
CREATE TEMP TABLE digest1 AS
SELECT (SELECT md5(string_agg(format('%s,%s,%s,%s', user_id, item_id, weight, extract(epoch FROM ts)), ';'
                              ORDER BY user_id, ts, item_id, weight)) FROM it_demo.events) AS events,
       (SELECT md5(string_agg(format('%s', u), ';' ORDER BY user_id)) FROM it_demo.users u) AS users,
       (SELECT md5(string_agg(format('%s', i), ';' ORDER BY item_id)) FROM it_demo.items i) AS items;
-- the same arguments again
SELECT * FROM it_demo.generate(users => 1000, items => 200, per_user => 20, groups => 8, seed => 0.42);
CREATE TEMP TABLE digest2 AS
SELECT (SELECT md5(string_agg(format('%s,%s,%s,%s', user_id, item_id, weight, extract(epoch FROM ts)), ';'
                              ORDER BY user_id, ts, item_id, weight)) FROM it_demo.events) AS events,
       (SELECT md5(string_agg(format('%s', u), ';' ORDER BY user_id)) FROM it_demo.users u) AS users,
       (SELECT md5(string_agg(format('%s', i), ';' ORDER BY item_id)) FROM it_demo.items i) AS items;
SELECT * FROM it_demo.generate(users => 1000, items => 200, per_user => 20, groups => 8, seed => 0.43);
CREATE TEMP TABLE digest3 AS
SELECT (SELECT md5(string_agg(format('%s,%s,%s,%s', user_id, item_id, weight, extract(epoch FROM ts)), ';'
                              ORDER BY user_id, ts, item_id, weight)) FROM it_demo.events) AS events;
SELECT * FROM it_demo.generate(users => 1000, items => 200, per_user => 20, groups => 8, seed => 0.42);
SELECT * FROM it_demo.split(test_fraction => 0.2, cold_user_fraction => 0.1, cold_item_fraction => 0.05);

CREATE TEMP TABLE ev AS
SELECT e.*, ug.grp AS ugrp, ig.grp AS igrp, i.domain,
       extract(isodow FROM e.ts AT TIME ZONE 'UTC') >= 6 AS weekend
  FROM it_demo.events e
       JOIN it_demo.user_groups ug USING (user_id)
       JOIN it_demo.item_groups ig USING (item_id)
       JOIN it_demo.items i USING (item_id);
\o

SELECT plan(20);

-- determinism
SELECT is((SELECT events FROM digest2), (SELECT events FROM digest1), 'the same arguments give the same events');
SELECT is((SELECT users FROM digest2), (SELECT users FROM digest1), 'the same arguments give the same users');
SELECT is((SELECT items FROM digest2), (SELECT items FROM digest1), 'the same arguments give the same items');
SELECT isnt((SELECT events FROM digest3), (SELECT events FROM digest1), 'another seed gives other events');

-- sizes and shape
SELECT is((SELECT count(*) FROM it_demo.users), 1000::bigint, '1000 users');
SELECT is((SELECT count(*) FROM it_demo.items), 200::bigint, '200 items');
SELECT ok((SELECT count(*) BETWEEN 19000 AND 21000 FROM it_demo.events), 'about 20 events per user');
SELECT is((SELECT count(*) FROM (SELECT user_id FROM ev GROUP BY user_id HAVING count(DISTINCT domain) = 2) u),
          1000::bigint, 'every user has events in both domains');
SELECT ok((SELECT bool_and(weight BETWEEN 1 AND 5) AND bool_and(ts >= '2024-01-01 00:00+00' AND ts < '2024-02-26 00:00+00')
             FROM it_demo.events),
          'weights are within 1..5 and timestamps within the 8 weeks');

-- planted structure
SELECT ok((SELECT avg((igrp = ugrp)::int) BETWEEN 0.75 AND 0.9 FROM ev WHERE NOT weekend),
          'on weekdays about 80% of the events are in the user''s group');
SELECT ok((SELECT avg((igrp = (ugrp + 1) % 8)::int) BETWEEN 0.75 AND 0.9 FROM ev WHERE weekend),
          'on weekends about 80% of the events are in the next group');
SELECT ok((SELECT avg((u.region = 'region_' || g.grp)::int) BETWEEN 0.8 AND 0.95
             FROM it_demo.users u JOIN it_demo.user_groups g USING (user_id)),
          'region tells the group most of the time, not always');
SELECT ok((SELECT avg((i.category = 'cat_' || g.grp)::int) BETWEEN 0.82 AND 0.97
             FROM it_demo.items i JOIN it_demo.item_groups g USING (item_id)),
          'category tells the item group most of the time, not always');
SELECT ok((SELECT avg(d) FROM (
              SELECT (SELECT sum(a.embedding[k] * b.embedding[k]) FROM generate_series(1, 8) k) AS d
                FROM it_demo.users a JOIN it_demo.user_groups ga USING (user_id),
                     it_demo.users b JOIN it_demo.user_groups gb USING (user_id)
               WHERE a.user_id < 200 AND b.user_id < 200 AND a.user_id < b.user_id AND ga.grp = gb.grp) s)
          > (SELECT avg(d) FROM (
              SELECT (SELECT sum(a.embedding[k] * b.embedding[k]) FROM generate_series(1, 8) k) AS d
                FROM it_demo.users a JOIN it_demo.user_groups ga USING (user_id),
                     it_demo.users b JOIN it_demo.user_groups gb USING (user_id)
               WHERE a.user_id < 200 AND b.user_id < 200 AND a.user_id < b.user_id AND ga.grp <> gb.grp) s) + 0.3,
          'embeddings of users in the same group are more alike than across groups');
SELECT ok((SELECT max(c) > 5 * percentile_cont(0.5) WITHIN GROUP (ORDER BY c)
             FROM (SELECT count(*) AS c FROM it_demo.events GROUP BY item_id) p),
          'item popularity is skewed (the top item has over 5x the median item''s events)');

-- split
SELECT is((SELECT count(*) FROM it_demo.train_events t JOIN it_demo.cold_users USING (user_id)), 0::bigint,
          'cold users have no training events');
SELECT is((SELECT count(*) FROM it_demo.train_events t JOIN it_demo.cold_items USING (item_id)), 0::bigint,
          'cold items have no training events');
SELECT is((SELECT count(*) FROM it_demo.test_events t JOIN it_demo.train_events r USING (user_id, item_id)), 0::bigint,
          'no held-out (user, item) pair is in training');
SELECT ok((SELECT bool_and(t.ts >= r.last) FROM it_demo.test_events t
             JOIN (SELECT user_id, max(ts) AS last FROM it_demo.train_events GROUP BY user_id) r USING (user_id)
            WHERE t.item_id NOT IN (SELECT item_id FROM it_demo.cold_items)),
          'held-out events of warm users on warm items are their latest');
SELECT ok((SELECT count(*) BETWEEN 50 AND 150 FROM it_demo.cold_users)
          AND (SELECT count(DISTINCT user_id) FROM it_demo.test_events) >= 990,
          'about 10% of the users are cold and almost every user has held-out positives');

SELECT * FROM finish();
ROLLBACK;

-- tests/data/generate.sql
--    A synthetic shop with planted structure, for tests, benchmarks and the
--    demo.  Load it with psql, then call the functions it defines:
--
--      \i tests/data/generate.sql
--      SELECT * FROM it_demo.generate(users => 2000, items => 500);
--      SELECT * FROM it_demo.split(0.2);
--
-- The truth the tests measure against:
--   * every user belongs to one hidden group, every item to one hidden group
--     (item group = (item_id - 1) % groups); it_demo.user_groups and
--     it_demo.item_groups hold it and are for tests only;
--   * demographics are correlated with the user's group but do not give it
--     away: region equals the group's region 85% of the time, age band and
--     gender lean by group, income by group with noise (2% NULL), and an
--     8-dimensional unit "embedding" is a noisy projection of the group, as a
--     text embedding of a profile would be;
--   * items: category is the group's 90% of the time, brand and price lean by
--     group; items alternate between the domains 'books' and 'video' in
--     blocks of `groups` ids, so every group has items in both domains;
--   * events: each user draws about per_user interactions (uniform between
--     0.5x and 1.5x, at least 2; the first is always a book, the second a
--     video, so every user has behaviour in both domains).  80% come from
--     the items of the group the user is after, where popularity follows a
--     power law with exponent zipf over the items ordered by id; the rest
--     (browsing) from all items of the domain, uniformly.  (A power law there
--     too would make the same few items every group's favourites and leave
--     popularity within 2x of even a perfect group oracle.)  Timestamps
--     cover 8 weeks from Monday 2024-01-01 (UTC); on Saturdays and Sundays
--     the user is after the next group, (group + 1) % groups: the
--     weekday/weekend context.  Weights are 2..5 inside the group's pool and
--     1..3 outside; duplicates of a (user, item) pair happen and are meant
--     to be summed;
--   * links (it_demo.links: user_id, linked_user_id, weight): 3 to 8 per
--     user, 80% to a user of the same group, the rest to any user.
--
-- Determinism: every random number is a hash of (seed, stream, row, draw)
-- (hashint8extended), never random(), so the data depend on the arguments
-- only -- not on the plan, parallel workers, row order or the session's
-- random() state.  The same arguments give the same rows on every machine.
--
-- Set-based SQL throughout: 100k users x 20 interactions (2M events) take
-- under ten seconds, the default size under one.

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS it_demo CASCADE;
CREATE SCHEMA it_demo;
RESET client_min_messages;

COMMENT ON SCHEMA it_demo IS 'synthetic shop with planted latent groups (tests/data/generate.sql)';

-- Uniform number in [0, 1) from (seed, stream, a, b): 53 bits of two chained
-- 64-bit hashes.  Inlined by the planner (a single-expression SQL function).
CREATE FUNCTION it_demo.u(s bigint, stream int, a bigint, b bigint)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT (hashint8extended(b, hashint8extended(a, s # stream::bigint))
            & 9007199254740991)::float8 / 9007199254740992.0
$$;

-- Standard normal number (Box-Muller on two independent uniforms).
CREATE FUNCTION it_demo.n(s bigint, stream int, a bigint, b bigint)
RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT sqrt(-2.0 * ln(1.0 - it_demo.u(s, stream, a, b)))
           * cos(2.0 * pi() * it_demo.u(s, stream + 1000, a, b))
$$;

-- Rank in [0, n) drawn from a truncated power law with exponent zipf (the
-- probability of rank r is about proportional to (r + 1)^-zipf), by
-- inverting the continuous distribution on [1, n + 1): O(1), no tables.
CREATE FUNCTION it_demo.zipf_rank(u float8, n bigint, zipf float8)
RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT least(n - 1, greatest(0, floor(
             CASE WHEN abs(zipf - 1.0::float8) < 1e-9::float8
                  THEN exp(u * ln(n::float8 + 1.0::float8))
                  ELSE power(1.0::float8 + u * (power(n::float8 + 1.0::float8, 1.0::float8 - zipf) - 1.0::float8),
                             1.0::float8 / (1.0::float8 - zipf))
             END) - 1))::bigint
$$;

CREATE FUNCTION it_demo.generate(users int DEFAULT 2000,
                                 items int DEFAULT 500,
                                 per_user int DEFAULT 20,
                                 groups int DEFAULT 8,
                                 seed float8 DEFAULT 0.42,
                                 zipf float8 DEFAULT 1.1)
RETURNS TABLE (table_name text, row_count bigint)
LANGUAGE plpgsql
SET max_parallel_workers_per_gather = 0
SET client_min_messages = warning
AS $fn$
DECLARE
    s bigint;
    g int := groups;            -- short names for the formulas below
    ni int := items;
BEGIN
    IF users IS NULL OR users < 1 THEN
        RAISE EXCEPTION 'users must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF groups IS NULL OR groups < 1 THEN
        RAISE EXCEPTION 'groups must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF items IS NULL OR items < 2 * groups THEN
        RAISE EXCEPTION 'items must be at least 2 * groups (%)', 2 * groups
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Every group needs an item in each of the two domains.';
    END IF;
    IF per_user IS NULL OR per_user < 1 THEN
        RAISE EXCEPTION 'per_user must be at least 1' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF seed IS NULL OR seed <> seed OR zipf IS NULL OR zipf < 0 OR zipf > 10 THEN
        RAISE EXCEPTION 'seed must be a number and zipf between 0 and 10'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    s := hashfloat8extended(seed, 0);

    DROP TABLE IF EXISTS it_demo.settings, it_demo.users, it_demo.items, it_demo.events,
        it_demo.user_groups, it_demo.item_groups, it_demo.train_events,
        it_demo.test_events, it_demo.cold_users, it_demo.cold_items, it_demo.links;

    CREATE TABLE it_demo.settings (
        users int, items int, per_user int, groups int, seed float8, zipf float8, hash_seed bigint);
    INSERT INTO it_demo.settings VALUES (users, items, per_user, groups, seed, zipf, s);

    -- hidden truth
    CREATE TABLE it_demo.user_groups (user_id bigint PRIMARY KEY, grp int NOT NULL);
    INSERT INTO it_demo.user_groups
    SELECT i, floor(it_demo.u(s, 1, i, 0) * g)::int
      FROM generate_series(1, users) i;

    CREATE TABLE it_demo.item_groups (item_id bigint PRIMARY KEY, grp int NOT NULL);
    INSERT INTO it_demo.item_groups
    SELECT i, ((i - 1) % g)::int
      FROM generate_series(1, items) i;

    -- users: demographics correlated with the group
    CREATE TABLE it_demo.users (
        user_id   bigint PRIMARY KEY,
        age       int NOT NULL,
        gender    text NOT NULL,
        region    text NOT NULL,
        income    numeric,
        signup    date NOT NULL,
        embedding real[] NOT NULL
    );
    INSERT INTO it_demo.users
    SELECT ug.user_id,
           CASE WHEN it_demo.u(s, 2, ug.user_id, 0) < 0.6
                THEN 18 + 10 * (ug.grp % 5) + floor(it_demo.u(s, 3, ug.user_id, 0) * 10)
                ELSE 18 + floor(it_demo.u(s, 3, ug.user_id, 0) * 57)
           END::int,
           CASE WHEN it_demo.u(s, 4, ug.user_id, 0) < CASE WHEN ug.grp % 2 = 0 THEN 0.25 ELSE 0.75 END
                THEN 'f' ELSE 'm'
           END,
           'region_' || CASE WHEN it_demo.u(s, 5, ug.user_id, 0) < 0.85
                             THEN ug.grp
                             ELSE floor(it_demo.u(s, 6, ug.user_id, 0) * g)::int
                        END,
           CASE WHEN it_demo.u(s, 7, ug.user_id, 0) < 0.02 THEN NULL
                ELSE round(((30000 + 8000 * (ug.grp % 4)) * exp(0.3 * it_demo.n(s, 8, ug.user_id, 0)))::numeric, -2)
           END,
           date '2022-01-01' + floor(it_demo.u(s, 9, ug.user_id, 0) * 730)::int,
           (SELECT array_agg((v / norm)::real ORDER BY d)
              FROM (SELECT d, v, sqrt(sum(v * v) OVER ()) AS norm
                      FROM (SELECT d, it_demo.n(s, 20, ug.grp, d) + it_demo.n(s, 21, ug.user_id, d) AS v
                              FROM generate_series(1, 8) d) e) f)
      FROM it_demo.user_groups ug
     ORDER BY ug.user_id;

    -- items: category, brand and price lean by group; two domains
    CREATE TABLE it_demo.items (
        item_id   bigint PRIMARY KEY,
        category  text NOT NULL,
        brand     text NOT NULL,
        price     numeric NOT NULL,
        domain    text NOT NULL,
        added     date NOT NULL
    );
    INSERT INTO it_demo.items
    SELECT ig.item_id,
           'cat_' || CASE WHEN it_demo.u(s, 11, ig.item_id, 0) < 0.9
                          THEN ig.grp
                          ELSE floor(it_demo.u(s, 12, ig.item_id, 0) * g)::int
                     END,
           'brand_' || CASE WHEN it_demo.u(s, 13, ig.item_id, 0) < 0.7
                            THEN 3 * ig.grp + floor(it_demo.u(s, 14, ig.item_id, 0) * 3)::int
                            ELSE floor(it_demo.u(s, 14, ig.item_id, 0) * 3 * g)::int
                       END,
           round((8 * (1 + ig.grp % 4) * exp(0.5 * it_demo.n(s, 15, ig.item_id, 0)))::numeric, 2),
           CASE WHEN ((ig.item_id - 1) / g) % 2 = 0 THEN 'books' ELSE 'video' END,
           date '2023-01-01' + floor(it_demo.u(s, 16, ig.item_id, 0) * 365)::int
      FROM it_demo.item_groups ig
     ORDER BY ig.item_id;

    -- events.  Items of group q in domain d are 1 + q + g * (2 m + d),
    -- m = 0, 1, ... (m = 0 the most popular); all items of domain d are
    -- 1 + (r % g) + g * (2 (r / g) + d), r = 0, 1, ...
    CREATE TABLE it_demo.events (
        user_id bigint NOT NULL,
        item_id bigint NOT NULL,
        weight  real NOT NULL,
        ts      timestamptz NOT NULL
    );
    INSERT INTO it_demo.events
    WITH per AS (
        SELECT ug.user_id, ug.grp,
               greatest(2, round(per_user * (0.5 + it_demo.u(s, 30, ug.user_id, 0))))::int AS n,
               hashint8extended(ug.user_id, s # 31) AS hu
          FROM it_demo.user_groups ug
    ), hashed AS (
        -- two 64-bit hashes per draw: h1 gives the popularity rank (53 bits),
        -- h2's bit fields the day, second, pool, domain and weight
        SELECT per.user_id, per.grp, j,
               hashint8extended(j, per.hu # 1) AS h1,
               hashint8extended(j, per.hu # 2) AS h2
          FROM per CROSS JOIN LATERAL generate_series(0, per.n - 1) j
        OFFSET 0                -- a fence: compute each hash once, not once per use
    ), draw AS (
        SELECT user_id, grp, j,
               (((h2 & 65535) * 56) >> 16)::int AS day,
               ((((h2 >> 16) & 131071) * 86400) >> 17)::int AS sec,
               ((h2 >> 33) & 1023) < 819 AS in_group,     -- 80%
               CASE j WHEN 0 THEN 0 WHEN 1 THEN 1 ELSE ((h2 >> 43) & 1)::int END AS dom,
               (h1 & 9007199254740991)::float8 / 9007199254740992.0 AS ur,
               ((h2 >> 44) & 1023)::float8 / 1024.0 AS uw
          FROM hashed
    ), pool AS (
        -- q: the group the user is after at that time (weekend: the next one);
        -- the pool is q's items of the domain, or all items of the domain
        SELECT d.user_id, d.j, d.day, d.sec, d.dom, d.ur, d.uw, w.q,
               d.in_group AND w.n_group > 0 AS from_group,
               CASE WHEN d.in_group AND w.n_group > 0 THEN w.n_group
                    ELSE g * ((ni / g + 1 - d.dom) / 2)
                         + CASE WHEN (ni / g) % 2 = d.dom THEN ni % g ELSE 0 END
               END AS pool_size
          FROM draw d
               CROSS JOIN LATERAL (
                   SELECT q, ((ni - q + g - 1) / g + 1 - d.dom) / 2 AS n_group
                     FROM (SELECT CASE WHEN d.day % 7 >= 5 THEN (d.grp + 1) % g ELSE d.grp END AS q) q
               ) w
        OFFSET 0                -- keeps zipf_rank's arguments plain columns, so it is inlined
    ), ranked AS (
        SELECT p.*,
               CASE WHEN p.from_group THEN it_demo.zipf_rank(p.ur, p.pool_size, zipf)
                    ELSE floor(p.ur * p.pool_size)::bigint
               END AS r
          FROM pool p
        OFFSET 0
    )
    SELECT user_id,
           CASE WHEN from_group
                THEN 1 + q + g * (2 * r + dom)
                ELSE 1 + r % g + g * (2 * (r / g) + dom)
           END,
           CASE WHEN from_group
                THEN 2 + floor(4 * uw)
                ELSE 1 + floor(3 * uw)
           END::real,
           timestamptz '2024-01-01 00:00:00+00' + make_interval(days => day, secs => sec)
      FROM ranked
     ORDER BY user_id, j;

    CREATE INDEX ON it_demo.events (user_id);

    -- links between users (friends): 3 to 8 per user, 80% to a user of the
    -- same hidden group, the rest to any user (self-links and duplicates
    -- happen), weights 1..3
    CREATE TABLE it_demo.links (user_id bigint NOT NULL, linked_user_id bigint NOT NULL, weight real NOT NULL);
    CREATE TEMP TABLE it_demo_members ON COMMIT DROP AS
    SELECT user_id, grp, row_number() OVER (PARTITION BY grp ORDER BY user_id) - 1 AS idx,
           count(*) OVER (PARTITION BY grp) AS size
      FROM it_demo.user_groups;
    INSERT INTO it_demo.links
    SELECT d.user_id,
           CASE WHEN d.same THEN o.user_id ELSE 1 + floor(d.v * users)::bigint END,
           (1 + floor(3 * it_demo.u(s, 63, d.user_id, d.j)))::real
      FROM (SELECT m.user_id, m.grp, m.size, j,
                   it_demo.u(s, 60, m.user_id, j) < 0.8 AS same,
                   it_demo.u(s, 61, m.user_id, j) AS v
              FROM it_demo_members m
             CROSS JOIN LATERAL generate_series(1, 3 + floor(6 * it_demo.u(s, 62, m.user_id, 0))::int) j) d
      LEFT JOIN it_demo_members o ON d.same AND o.grp = d.grp AND o.idx = floor(d.v * d.size)::bigint
     ORDER BY 1, 2;
    DROP TABLE it_demo_members;
    CREATE INDEX ON it_demo.links (user_id);
    ANALYZE it_demo.user_groups, it_demo.item_groups, it_demo.users, it_demo.items, it_demo.events, it_demo.links;

    -- split() fills these; empty until then
    CREATE TABLE it_demo.train_events (LIKE it_demo.events);
    CREATE TABLE it_demo.test_events (LIKE it_demo.events);
    CREATE INDEX ON it_demo.train_events (user_id);
    CREATE INDEX ON it_demo.test_events (user_id);
    CREATE TABLE it_demo.cold_users (user_id bigint PRIMARY KEY);
    CREATE TABLE it_demo.cold_items (item_id bigint PRIMARY KEY);

    RETURN QUERY
        SELECT 'it_demo.users', count(*) FROM it_demo.users
        UNION ALL SELECT 'it_demo.items', count(*) FROM it_demo.items
        UNION ALL SELECT 'it_demo.events', count(*) FROM it_demo.events
        UNION ALL SELECT 'it_demo.links', count(*) FROM it_demo.links;
END
$fn$;

COMMENT ON FUNCTION it_demo.generate(int, int, int, int, float8, float8) IS
  'recreate it_demo.users, items, events, user_groups and item_groups, deterministically for the arguments';

-- Standard split for evaluation, deterministic for the generated data:
--   * it_demo.cold_users: a fraction of the users (10% by default), chosen by
--     a hash of user_id; none of their events is used for training;
--   * it_demo.cold_items: a fraction of the items (none by default); none of
--     their events is used for training;
--   * it_demo.train_events: for every other user, their events on other
--     items except the latest test_fraction of them (by ts; at least one
--     held out when the user has two or more);
--   * it_demo.test_events: the held-out positives, one row per (user, item)
--     with the weights summed and the first ts: the latest events of warm
--     users on items they did not interact with in training, every item of
--     the cold users, and every (user, cold item) pair.
-- The raw events of the cold users stay in it_demo.events, in time order,
-- for tests that reveal a few of them.
CREATE FUNCTION it_demo.split(test_fraction float8 DEFAULT 0.2,
                              cold_user_fraction float8 DEFAULT 0.1,
                              cold_item_fraction float8 DEFAULT 0.0)
RETURNS TABLE (table_name text, row_count bigint)
LANGUAGE plpgsql
SET max_parallel_workers_per_gather = 0
SET client_min_messages = warning
AS $fn$
DECLARE
    s bigint;
BEGIN
    IF test_fraction IS NULL OR NOT (test_fraction >= 0 AND test_fraction < 1)
       OR cold_user_fraction IS NULL OR NOT (cold_user_fraction >= 0 AND cold_user_fraction < 1)
       OR cold_item_fraction IS NULL OR NOT (cold_item_fraction >= 0 AND cold_item_fraction < 1) THEN
        RAISE EXCEPTION 'fractions must be at least 0 and less than 1'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass('it_demo.settings') IS NOT NULL THEN
        SELECT hash_seed INTO s FROM it_demo.settings;
    END IF;
    IF s IS NULL THEN
        RAISE EXCEPTION 'no generated data'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Call it_demo.generate() first.';
    END IF;

    TRUNCATE it_demo.train_events, it_demo.test_events, it_demo.cold_users, it_demo.cold_items;

    INSERT INTO it_demo.cold_users
    SELECT user_id FROM it_demo.user_groups
     WHERE it_demo.u(s, 90, user_id, 0) < cold_user_fraction
     ORDER BY user_id;
    INSERT INTO it_demo.cold_items
    SELECT item_id FROM it_demo.item_groups
     WHERE it_demo.u(s, 91, item_id, 0) < cold_item_fraction
     ORDER BY item_id;

    -- every event, marked for training or not
    CREATE TEMP TABLE it_demo_split ON COMMIT DROP AS
    SELECT user_id, item_id, weight, ts,
           NOT cold AND rn > CASE WHEN cnt >= 2 AND test_fraction > 0
                                  THEN greatest(1, round(cnt * test_fraction)) ELSE 0 END AS in_train
      FROM (SELECT e.*, c.cold,
                   row_number() OVER (PARTITION BY e.user_id, c.cold
                                      ORDER BY e.ts DESC, e.item_id DESC, e.weight DESC) AS rn,
                   count(*) OVER (PARTITION BY e.user_id, c.cold) AS cnt
              FROM it_demo.events e
                   CROSS JOIN LATERAL (
                       SELECT EXISTS (SELECT 1 FROM it_demo.cold_users cu WHERE cu.user_id = e.user_id)
                           OR EXISTS (SELECT 1 FROM it_demo.cold_items ci WHERE ci.item_id = e.item_id) AS cold
                   ) c) r;

    INSERT INTO it_demo.train_events
    SELECT user_id, item_id, weight, ts
      FROM it_demo_split
     WHERE in_train
     ORDER BY user_id, ts, item_id, weight;

    INSERT INTO it_demo.test_events
    SELECT user_id, item_id, sum(weight)::real, min(ts)
      FROM it_demo_split h
     WHERE NOT in_train
       AND NOT EXISTS (SELECT 1 FROM it_demo.train_events t
                        WHERE t.user_id = h.user_id AND t.item_id = h.item_id)
     GROUP BY user_id, item_id
     ORDER BY user_id, item_id;

    DROP TABLE it_demo_split;

    ANALYZE it_demo.train_events, it_demo.test_events, it_demo.cold_users, it_demo.cold_items;

    RETURN QUERY
        SELECT 'it_demo.train_events', count(*) FROM it_demo.train_events
        UNION ALL SELECT 'it_demo.test_events', count(*) FROM it_demo.test_events
        UNION ALL SELECT 'it_demo.cold_users', count(*) FROM it_demo.cold_users
        UNION ALL SELECT 'it_demo.cold_items', count(*) FROM it_demo.cold_items;
END
$fn$;

COMMENT ON FUNCTION it_demo.split(float8, float8, float8) IS
  'fill it_demo.train_events, test_events, cold_users and cold_items from the generated events';

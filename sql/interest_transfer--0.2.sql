/* interest_transfer--0.2.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION interest_transfer" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Storage.  A model is a set of versions; each version is one row of
-- it_model plus its factor rows.  Who owns a model and who may use or
-- train it is one row of it_model_acl.  Only the extension's functions
-- read and write these tables (as the tables' owner, after checking the
-- caller's privileges on the model); no other role can read them, so a
-- user's history (it_user_factors.seen) is visible only through the
-- functions, to roles the model's owner allowed.
-- ---------------------------------------------------------------------------

-- Owner and grants of each model.  regrole, so a dump names the roles and a
-- restore finds them by name; 0 ('-') in users / trainers is PUBLIC.
CREATE TABLE it_model_acl (
    model        text      PRIMARY KEY CHECK (model <> ''),
    owner        regrole   NOT NULL,
    users        regrole[] NOT NULL DEFAULT '{}',   -- may use: recommend, score, evaluate, ...
    trainers     regrole[] NOT NULL DEFAULT '{}'    -- may also retrain, deploy and refresh
);

-- Has no columns and no rows: SELECT on it is granted to every role that
-- owns or was granted a model, so that DROP ROLE refuses ("privileges for
-- table it_role_pin") while the role still owns or uses models, and a dump
-- keeps those grants by role name; reassign_models() and revoke_model()
-- release it.
CREATE TABLE it_role_pin ();

CREATE TABLE it_model (
    model                 text        NOT NULL CHECK (model <> ''),
    version               int         NOT NULL CHECK (version > 0),
    algorithm             text        NOT NULL,
    deployed              boolean     NOT NULL DEFAULT false,
    deployed_at           timestamptz,
    interactions_source   text,                   -- table name or query, as given (NULL: imported without interactions)
    user_features_source  text,
    item_features_source  text,
    options               jsonb       NOT NULL,   -- every option, defaults filled in
    factors               int         NOT NULL,
    users                 bigint      NOT NULL,
    items                 bigint      NOT NULL,
    interactions          bigint      NOT NULL,
    trained_at            timestamptz NOT NULL DEFAULT now(),
    seconds               float8      NOT NULL,
    loss                  float8      NOT NULL,
    history               jsonb       NOT NULL,   -- [{"iteration", "loss", "seconds"}, ...]
    metrics               jsonb       NOT NULL DEFAULT '{}',
    user_mean             real[]      NOT NULL,   -- mean warm-user vector (population prior)
    refreshed_at          timestamptz,            -- last refresh() that changed this version
    search_path           text,                   -- search_path the stored sources are read with
    deploy_decision       jsonb,                  -- what the deploy option decided, and why
    domains               text[]                  -- the interactions' domains, sorted (NULL: no domain column)
                          CONSTRAINT it_model_domains_check
                          CHECK (cardinality(domains) BETWEEN 1 AND 32767 AND array_position(domains, NULL) IS NULL),
    contexts              text[]                  -- the contexts users have vectors in, sorted (NULL: none)
                          CONSTRAINT it_model_contexts_check
                          CHECK (cardinality(contexts) BETWEEN 1 AND 64 AND array_position(contexts, NULL) IS NULL),
    context_weights       float8[]                -- per context: the fold-in weight of its vectors, 0 when it kept none
                          CONSTRAINT it_model_context_weights_check
                          CHECK (cardinality(context_weights) = cardinality(contexts) AND array_position(context_weights, NULL) IS NULL),
    user_links_source     text,                   -- the users' links (friends, follows): table name or query, as given
    PRIMARY KEY (model, version),
    FOREIGN KEY (model) REFERENCES it_model_acl ON DELETE CASCADE
);
CREATE UNIQUE INDEX it_model_deployed ON it_model (model) WHERE deployed;

CREATE TABLE it_user_factors (
    model        text     NOT NULL,
    version      int      NOT NULL,
    user_id      bigint   NOT NULL,
    factors      real[]   NOT NULL,
    seen         bigint[] NOT NULL,               -- items the user interacted with, sorted
    source       text     NOT NULL DEFAULT 'model',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    context      text     NOT NULL DEFAULT '',     -- '' the user's global vector; a context's (it_model.contexts); '@source_models' the prior of a user known only in source models
    seen_domain  smallint[],                       -- with domains: the domain (it_model.domains index, from 0) of each seen item
    PRIMARY KEY (model, version, user_id, context)
    -- no foreign key to it_model: its per-row check halves the speed of
    -- writing a model; drop_model deletes the factor rows itself
);

CREATE TABLE it_item_factors (
    model        text     NOT NULL,
    version      int      NOT NULL,
    item_id      bigint   NOT NULL,
    factors      real[]   NOT NULL,
    popularity   bigint   NOT NULL,               -- users who interacted with it
    source       text     NOT NULL DEFAULT 'model',
    domain       smallint NOT NULL DEFAULT 0,      -- index in it_model.domains (0 without domains)
    PRIMARY KEY (model, version, domain, item_id)
    -- no foreign key to it_model, as for it_user_factors
);

REVOKE ALL ON it_model_acl, it_role_pin, it_model, it_user_factors, it_item_factors FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('it_model_acl', '');
SELECT pg_catalog.pg_extension_config_dump('it_model', '');
SELECT pg_catalog.pg_extension_config_dump('it_user_factors', '');
SELECT pg_catalog.pg_extension_config_dump('it_item_factors', '');

CREATE FUNCTION has_model_privilege(model text, privilege text DEFAULT 'use',
                                    role name DEFAULT CURRENT_USER)
RETURNS boolean
AS 'MODULE_PATHNAME', 'interest_transfer_has_model_privilege'
LANGUAGE C STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION has_model_privilege(text, text, name) IS
  'whether a role (the current user by default) may use, train or owns a model';

-- security_barrier: a caller's cheap function in a WHERE clause must not see
-- the rows of models it may not use before the privilege filter drops them
CREATE VIEW models WITH (security_barrier) AS
SELECT m.model, m.version, m.deployed, m.algorithm, m.options, m.users, m.items, m.interactions,
       m.trained_at, m.seconds, m.loss, m.history, a.owner, m.deploy_decision
  FROM it_model m JOIN it_model_acl a ON a.model OPERATOR(pg_catalog.=) m.model
 WHERE has_model_privilege(m.model, 'use');
COMMENT ON VIEW models IS 'every version of the models you may use, with its options, sizes, training curve and deploy decision';
GRANT SELECT ON models TO PUBLIC;

CREATE FUNCTION grant_model(model text, role text, privilege text DEFAULT 'use')
RETURNS void
AS 'MODULE_PATHNAME', 'interest_transfer_grant_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 10000;
COMMENT ON FUNCTION grant_model(text, text, text) IS
  'let a role (or public) use a model (use: recommend, score, evaluate, ...) or also retrain, deploy and refresh it (train); owner only';

CREATE FUNCTION revoke_model(model text, role text, privilege text DEFAULT 'use')
RETURNS void
AS 'MODULE_PATHNAME', 'interest_transfer_revoke_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 10000;
COMMENT ON FUNCTION revoke_model(text, text, text) IS
  'take back a privilege given with grant_model; owner only';

CREATE FUNCTION reassign_models(old_role regrole, new_role regrole)
RETURNS bigint
AS 'MODULE_PATHNAME', 'interest_transfer_reassign_models'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 10000;
COMMENT ON FUNCTION reassign_models(regrole, regrole) IS
  'give every model owned by, or granted to, a role to another role (before DROP ROLE); returns how many models changed';

-- ---------------------------------------------------------------------------
-- Training
-- ---------------------------------------------------------------------------

CREATE FUNCTION train(model text, interactions text,
                      user_features text DEFAULT NULL,
                      item_features text DEFAULT NULL,
                      options jsonb DEFAULT '{}',
                      user_links text DEFAULT NULL)
RETURNS TABLE (model text, version int, users bigint, items bigint,
               interactions bigint, seconds float8, loss float8)
AS 'MODULE_PATHNAME', 'interest_transfer_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 1000000 ROWS 1;
COMMENT ON FUNCTION train(text, text, text, text, jsonb, text) IS
  'train a new version of a model from an interactions table or query, and deploy it as the option deploy says (always, never, if_better)';

CREATE FUNCTION train(model text)
RETURNS TABLE (model text, version int, users bigint, items bigint,
               interactions bigint, seconds float8, loss float8)
AS 'MODULE_PATHNAME', 'interest_transfer_retrain'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 1000000 ROWS 1;
COMMENT ON FUNCTION train(text) IS
  'train a new version of a model with the sources and options of its deployed version (its latest when none is deployed)';

CREATE FUNCTION import_model(model text, user_factors text, item_factors text,
                             options jsonb DEFAULT '{}')
RETURNS TABLE (model text, version int, users bigint, items bigint,
               interactions bigint, seconds float8, loss float8)
AS 'MODULE_PATHNAME', 'interest_transfer_import_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 1000000 ROWS 1;
COMMENT ON FUNCTION import_model(text, text, text, jsonb) IS
  'a new version of a model from factors trained elsewhere (tables or queries of id and features, as Spark ALS writes userFactors and itemFactors), with the interactions, features and links of option interactions, user_features, item_features, user_links for seen items, popularity, fold-in and the priors';

CREATE FUNCTION deploy(model text, version int)
RETURNS void
AS 'MODULE_PATHNAME', 'interest_transfer_deploy'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 10000;
COMMENT ON FUNCTION deploy(text, int) IS 'make a version the one that scoring functions use';

CREATE FUNCTION drop_model(model text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'interest_transfer_drop_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 10000;
COMMENT ON FUNCTION drop_model(text) IS 'delete every version of a model; returns how many versions were deleted';

-- ---------------------------------------------------------------------------
-- Scoring.  STABLE: they read the model tables in the query's snapshot.
-- ---------------------------------------------------------------------------

CREATE FUNCTION recommend(user_id bigint, k int DEFAULT 10, model text DEFAULT NULL,
                          exclude_seen boolean DEFAULT true, domain text DEFAULT NULL,
                          context text DEFAULT NULL, candidates bigint[] DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank int, source text)
AS 'MODULE_PATHNAME', 'interest_transfer_recommend'
LANGUAGE C STABLE PARALLEL SAFE COST 5000 ROWS 10;
COMMENT ON FUNCTION recommend(bigint, int, text, boolean, text, text, bigint[]) IS
  'the k best items for a user (of one domain, for a model trained with domains; in a context, for a model trained with contexts; among candidates, when given), best first, with where the user''s interest came from';

CREATE FUNCTION recommend_batch(user_ids bigint[], k int DEFAULT 10, model text DEFAULT NULL,
                                exclude_seen boolean DEFAULT true, domain text DEFAULT NULL,
                                context text DEFAULT NULL, candidates bigint[] DEFAULT NULL)
RETURNS TABLE (user_id bigint, item_id bigint, score real, rank int, source text)
AS 'MODULE_PATHNAME', 'interest_transfer_recommend_batch'
LANGUAGE C STABLE PARALLEL SAFE COST 100000 ROWS 1000;
COMMENT ON FUNCTION recommend_batch(bigint[], int, text, boolean, text, text, bigint[]) IS
  'recommend() for many users in one call (each user once, in the order given), the users served by a vector scored together with matrix products';

CREATE FUNCTION score(user_id bigint, item_id bigint, model text DEFAULT NULL, domain text DEFAULT NULL,
                      context text DEFAULT NULL)
RETURNS real
AS 'MODULE_PATHNAME', 'interest_transfer_score'
LANGUAGE C STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION score(bigint, bigint, text, text, text) IS
  'the model''s score of one item (of a domain, for a model trained with domains) for one user (NULL when the item is unknown)';

CREATE FUNCTION similar_items(item_id bigint, k int DEFAULT 10, model text DEFAULT NULL, domain text DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank int)
AS 'MODULE_PATHNAME', 'interest_transfer_similar_items'
LANGUAGE C STABLE PARALLEL SAFE COST 5000 ROWS 10;
COMMENT ON FUNCTION similar_items(bigint, int, text, text) IS
  'the k items whose factors are closest (cosine) to an item''s (both of one domain, for a model trained with domains)';

CREATE FUNCTION evaluate(model text, test text, k int DEFAULT 10, domain text DEFAULT NULL,
                         context text DEFAULT NULL)
RETURNS TABLE (segment text, users bigint, precision_at_k float8, recall_at_k float8,
               ndcg_at_k float8, map_at_k float8, auc float8, coverage float8)
AS 'MODULE_PATHNAME', 'interest_transfer_evaluate'
LANGUAGE C VOLATILE PARALLEL RESTRICTED COST 1000000 ROWS 4;
COMMENT ON FUNCTION evaluate(text, text, int, text, text) IS
  'ranking quality of the deployed version on held-out positives, for all, warm and cold users (and, within a domain, cross_domain users)';

-- ---------------------------------------------------------------------------
-- Priors.  One row per model version and kind of prior interest that
-- training fitted: what serving reads in typed columns (whether the prior
-- is used, its fold-in weight, its variance, its popularity blend) and, for
-- the features priors, the spec that turns a features row into the input of
-- the features -> interest model (column kinds, offsets, means and
-- deviations, vocabularies, vector lengths) and that model's parameters.
-- metrics keeps what training measured, for people to read.  Later kinds
-- (another domain's mapping, linked users) are rows of the same table.
-- ---------------------------------------------------------------------------

CREATE TABLE it_prior (
    model            text     NOT NULL,
    version          int      NOT NULL,
    kind             text     NOT NULL,
    spec             jsonb,                        -- feature encoder (features kinds)
    dims             int      CONSTRAINT it_prior_dims_check CHECK (dims > 0),   -- floats per encoded row
    params           real[],                       -- features -> interest model
    layout           jsonb,                        -- its shape
    metrics          jsonb    NOT NULL DEFAULT '{}',
    in_use           boolean  NOT NULL,            -- serving uses this prior
    fold_in_weight   float8,                       -- lambda0 training chose (NULL: not measured)
    prior_variance   float8,                       -- around the prior (NULL: not measured)
    popularity_blend real     NOT NULL DEFAULT 0,
    CONSTRAINT it_prior_pkey PRIMARY KEY (model, version, kind),
    CONSTRAINT it_prior_model_version_fkey FOREIGN KEY (model, version) REFERENCES it_model ON DELETE CASCADE,
    CONSTRAINT it_prior_kind_check CHECK (kind IN ('population', 'user_features', 'item_features', 'source_models', 'social')),
    CONSTRAINT it_prior_encoder_check CHECK ((kind = 'population') = (spec IS NULL AND dims IS NULL)),
    CONSTRAINT it_prior_fold_in_weight_check CHECK (fold_in_weight > 0 AND fold_in_weight <= 3.4028234663852886e38),
    CONSTRAINT it_prior_prior_variance_check CHECK (prior_variance >= 0 AND prior_variance <= 3.4028234663852886e38),
    CONSTRAINT it_prior_popularity_blend_check CHECK (popularity_blend >= 0 AND popularity_blend < 'Infinity')
);

REVOKE ALL ON it_prior FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('it_prior', '');

-- The items of a version once more, packed: a few large rows of up to a few
-- thousand items each, in (domain, item_id) order, so that loading a model
-- into a backend reads a handful of rows instead of one per item.  Written
-- from it_item_factors in the transaction that writes the version (and
-- rewritten by a refresh that adds items), so the two never disagree; a
-- version without packs (written before them) is read from it_item_factors.
-- EXTERNAL: the arrays are stored out of line uncompressed, and reading
-- them back is a plain copy.
CREATE TABLE it_item_packs (
    model        text      NOT NULL,
    version      int       NOT NULL,
    chunk        int       NOT NULL CONSTRAINT it_item_packs_chunk_check CHECK (chunk >= 0),
    domain       smallint  NOT NULL,               -- of every item of the pack
    items        int       NOT NULL CONSTRAINT it_item_packs_items_check CHECK (items > 0),
    item_ids     bigint[]  NOT NULL,               -- items ids, ascending
    popularity   bigint[]  NOT NULL,               -- per item, as it_item_factors.popularity
    factors      real[]    NOT NULL,               -- items * factors values, one item after another
    norms        real[]    NOT NULL,               -- per item, the length of its factors
    CONSTRAINT it_item_packs_pkey PRIMARY KEY (model, version, chunk)
    -- no foreign key to it_model, as for it_item_factors: train() writes the
    -- packs with the factor rows, before the version's row (a deferred key
    -- cannot be checked as the tables' owner, a security-restricted
    -- operation); drop_model deletes them itself
);
ALTER TABLE it_item_packs ALTER COLUMN item_ids SET STORAGE EXTERNAL,
                          ALTER COLUMN popularity SET STORAGE EXTERNAL,
                          ALTER COLUMN factors SET STORAGE EXTERNAL,
                          ALTER COLUMN norms SET STORAGE EXTERNAL;

REVOKE ALL ON it_item_packs FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('it_item_packs', '');

CREATE FUNCTION it_encode_features(source text, id_column text,
                                   apply_to text DEFAULT NULL,
                                   options jsonb DEFAULT '{}')
RETURNS TABLE (id bigint, vec real[])
AS 'MODULE_PATHNAME', 'interest_transfer_encode_features'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 100000 ROWS 1000;
COMMENT ON FUNCTION it_encode_features(text, text, text, jsonb) IS
  'fit a feature encoder on a table or query and return its rows encoded, ordered by id (or, with apply_to, the rows of another table or query encoded with it); for inspecting what training sees';

CREATE FUNCTION it_encode_features_json(source text, id_column text, features jsonb,
                                        options jsonb DEFAULT '{}')
RETURNS real[]
AS 'MODULE_PATHNAME', 'interest_transfer_encode_features_json'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 100000;
COMMENT ON FUNCTION it_encode_features_json(text, text, jsonb, jsonb) IS
  'fit a feature encoder on a table or query and encode one jsonb object of features with it, as recommend_for does';

-- ---------------------------------------------------------------------------
-- Serving users and items the model was not trained on
-- ---------------------------------------------------------------------------

CREATE FUNCTION recommend_for(features jsonb, items bigint[] DEFAULT '{}', k int DEFAULT 10,
                              model text DEFAULT NULL)
RETURNS TABLE (item_id bigint, score real, rank int, source text)
AS 'MODULE_PATHNAME', 'interest_transfer_recommend_for'
LANGUAGE C STABLE PARALLEL SAFE COST 5000 ROWS 10;
COMMENT ON FUNCTION recommend_for(jsonb, bigint[], int, text) IS
  'the k best items for a visitor in no table, from their features (jsonb keyed by column name) and the items they just touched';

CREATE FUNCTION refresh(model text, users bigint[] DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'interest_transfer_refresh'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 1000000;
COMMENT ON FUNCTION refresh(text, bigint[]) IS
  'fold in again the users whose interactions changed since the deployed version was trained or last refreshed (or the given users), add new items from item_features; returns how many users were refreshed';

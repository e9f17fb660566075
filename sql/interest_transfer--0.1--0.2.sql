/* interest_transfer--0.1--0.2.sql */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION interest_transfer UPDATE TO '0.2'" to load this file. \quit

-- ---------------------------------------------------------------------------
-- Owners and grants move to it_model_acl, stored as regrole so a dump names
-- the roles.  Every model keeps the owner it had.  In 0.1 every role could
-- read every model, so existing models are granted to PUBLIC for use (the
-- applications serving them keep working); revoke_model(model, 'public')
-- takes that back.
-- ---------------------------------------------------------------------------

CREATE TABLE it_model_acl (
    model        text      PRIMARY KEY CHECK (model <> ''),
    owner        regrole   NOT NULL,
    users        regrole[] NOT NULL DEFAULT '{}',
    trainers     regrole[] NOT NULL DEFAULT '{}'
);

-- a model's owner is the role that trained its first version
INSERT INTO it_model_acl (model, owner, users)
SELECT DISTINCT ON (model) model, owner::regrole, ARRAY[0::oid::regrole]
  FROM it_model
 ORDER BY model, version;

CREATE TABLE it_role_pin ();

ALTER TABLE it_model DROP COLUMN owner;
ALTER TABLE it_model ADD COLUMN search_path text;
-- 0.1 read the stored sources with the caller's search_path; from now on
-- they run as the model's owner, with the default path and pg_temp last
UPDATE it_model SET search_path = '"$user", public, pg_temp';
ALTER TABLE it_model ADD COLUMN deploy_decision jsonb;
ALTER TABLE it_model ADD COLUMN domains text[]
    CONSTRAINT it_model_domains_check
    CHECK (cardinality(domains) BETWEEN 1 AND 32767 AND array_position(domains, NULL) IS NULL);
ALTER TABLE it_model ADD COLUMN contexts text[]
    CONSTRAINT it_model_contexts_check
    CHECK (cardinality(contexts) BETWEEN 1 AND 64 AND array_position(contexts, NULL) IS NULL);
ALTER TABLE it_model ADD COLUMN context_weights float8[]
    CONSTRAINT it_model_context_weights_check
    CHECK (cardinality(context_weights) = cardinality(contexts) AND array_position(context_weights, NULL) IS NULL);
ALTER TABLE it_model ADD COLUMN user_links_source text;
ALTER TABLE it_model ADD FOREIGN KEY (model) REFERENCES it_model_acl ON DELETE CASCADE;

-- the raw tables are read through the extension's functions only
REVOKE ALL ON it_model_acl, it_role_pin, it_model, it_user_factors, it_item_factors FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('it_model_acl', '');

-- ---------------------------------------------------------------------------
-- Priors move from it_encoder to it_prior, keyed by kind, with what serving
-- reads (whether the prior is used, its fold-in weight, its variance, its
-- popularity blend) in typed columns instead of inside metrics; the
-- population prior's fold-in weight moves there from it_model.metrics.
-- User factors get a context key ('' for the user's global vector).
-- ---------------------------------------------------------------------------

ALTER TABLE it_encoder RENAME TO it_prior;
ALTER TABLE it_prior RENAME COLUMN side TO kind;
ALTER TABLE it_prior DROP CONSTRAINT it_encoder_side_check;
ALTER TABLE it_prior RENAME CONSTRAINT it_encoder_pkey TO it_prior_pkey;
ALTER TABLE it_prior RENAME CONSTRAINT it_encoder_model_version_fkey TO it_prior_model_version_fkey;
ALTER TABLE it_prior RENAME CONSTRAINT it_encoder_dims_check TO it_prior_dims_check;
ALTER TABLE it_prior ALTER COLUMN spec DROP NOT NULL, ALTER COLUMN dims DROP NOT NULL;
ALTER TABLE it_prior ADD COLUMN in_use boolean, ADD COLUMN fold_in_weight float8,
                     ADD COLUMN prior_variance float8, ADD COLUMN popularity_blend real NOT NULL DEFAULT 0;
REVOKE ALL ON it_prior FROM PUBLIC;

-- numbers out of range in old metrics are left out (NULL, or 0 for the blend)
UPDATE it_prior SET
    kind = kind || '_features',
    in_use = CASE WHEN pg_catalog.jsonb_typeof(metrics -> 'use_features') = 'boolean'
                  THEN (metrics ->> 'use_features')::boolean ELSE params IS NOT NULL END,
    fold_in_weight = CASE WHEN pg_catalog.jsonb_typeof(metrics -> 'fold_in_prior_weight') = 'number'
                           AND (metrics ->> 'fold_in_prior_weight')::float8 > 0
                           AND (metrics ->> 'fold_in_prior_weight')::float8 <= 3.4028234663852886e38
                          THEN (metrics ->> 'fold_in_prior_weight')::float8 END,
    prior_variance = CASE WHEN pg_catalog.jsonb_typeof(metrics -> 'prior_variance') = 'number'
                           AND (metrics ->> 'prior_variance')::float8 >= 0
                           AND (metrics ->> 'prior_variance')::float8 <= 3.4028234663852886e38
                          THEN (metrics ->> 'prior_variance')::float8 END,
    popularity_blend = CASE WHEN pg_catalog.jsonb_typeof(metrics -> 'popularity_blend') = 'number'
                             AND (metrics ->> 'popularity_blend')::float8 >= 0
                             AND (metrics ->> 'popularity_blend')::float8 <= 3.4028234663852886e38
                            THEN (metrics ->> 'popularity_blend')::real ELSE 0 END;
ALTER TABLE it_prior ALTER COLUMN in_use SET NOT NULL;

INSERT INTO it_prior (model, version, kind, in_use, fold_in_weight)
SELECT m.model, m.version, 'population', true, (m.metrics ->> 'fold_in_prior_weight')::float8
  FROM it_model m
 WHERE pg_catalog.jsonb_typeof(m.metrics -> 'fold_in_prior_weight') = 'number'
   AND (m.metrics ->> 'fold_in_prior_weight')::float8 > 0
   AND (m.metrics ->> 'fold_in_prior_weight')::float8 <= 3.4028234663852886e38;

ALTER TABLE it_prior
    ADD CONSTRAINT it_prior_kind_check CHECK (kind IN ('population', 'user_features', 'item_features', 'source_models', 'social')),
    ADD CONSTRAINT it_prior_encoder_check CHECK ((kind = 'population') = (spec IS NULL AND dims IS NULL)),
    ADD CONSTRAINT it_prior_fold_in_weight_check CHECK (fold_in_weight > 0 AND fold_in_weight <= 3.4028234663852886e38),
    ADD CONSTRAINT it_prior_prior_variance_check CHECK (prior_variance >= 0 AND prior_variance <= 3.4028234663852886e38),
    ADD CONSTRAINT it_prior_popularity_blend_check CHECK (popularity_blend >= 0 AND popularity_blend < 'Infinity');

ALTER TABLE it_user_factors ADD COLUMN context text NOT NULL DEFAULT '';
ALTER TABLE it_user_factors DROP CONSTRAINT it_user_factors_pkey;
ALTER TABLE it_user_factors ADD PRIMARY KEY (model, version, user_id, context);
ALTER TABLE it_user_factors ADD COLUMN seen_domain smallint[];
ALTER TABLE it_item_factors ADD COLUMN domain smallint NOT NULL DEFAULT 0;
ALTER TABLE it_item_factors DROP CONSTRAINT it_item_factors_pkey;
ALTER TABLE it_item_factors ADD PRIMARY KEY (model, version, domain, item_id);

-- every owner is pinned (see it_role_pin in the install script), so that
-- DROP ROLE refuses while a role still owns models
DO $$
DECLARE
    r name;
BEGIN
    FOR r IN SELECT DISTINCT rolname FROM pg_catalog.pg_roles
              WHERE oid IN (SELECT owner FROM it_model_acl) LOOP
        EXECUTE pg_catalog.format('GRANT SELECT ON it_role_pin TO %I', r);
    END LOOP;
END $$;

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

CREATE FUNCTION has_model_privilege(model text, privilege text DEFAULT 'use',
                                    role name DEFAULT CURRENT_USER)
RETURNS boolean
AS 'MODULE_PATHNAME', 'interest_transfer_has_model_privilege'
LANGUAGE C STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION has_model_privilege(text, text, name) IS
  'whether a role (the current user by default) may use, train or owns a model';

DROP VIEW models;
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
-- Planner facts: what a call costs and returns, so that LATERAL joins over
-- many users can run in parallel workers.
-- ---------------------------------------------------------------------------

ALTER FUNCTION train(text, text, text, text, jsonb) COST 1000000 ROWS 1;
ALTER FUNCTION train(text) COST 1000000 ROWS 1;
ALTER FUNCTION deploy(text, int) COST 10000;
ALTER FUNCTION drop_model(text) COST 10000;
ALTER FUNCTION recommend(bigint, int, text, boolean) COST 5000 ROWS 10;
ALTER FUNCTION score(bigint, bigint, text) COST 100;
ALTER FUNCTION similar_items(bigint, int, text) COST 5000 ROWS 10;
ALTER FUNCTION evaluate(text, text, int) COST 1000000 ROWS 3;
ALTER FUNCTION it_encode_features(text, text, text, jsonb) COST 100000 ROWS 1000;
ALTER FUNCTION it_encode_features_json(text, text, jsonb, jsonb) COST 100000;
ALTER FUNCTION recommend_for(jsonb, bigint[], int, text) COST 5000 ROWS 10;
ALTER FUNCTION refresh(text, bigint[]) COST 1000000;

COMMENT ON FUNCTION train(text, text, text, text, jsonb) IS
  'train a new version of a model from an interactions table or query, and deploy it as the option deploy says (always, never, if_better)';
COMMENT ON FUNCTION train(text) IS
  'train a new version of a model with the sources and options of its deployed version (its latest when none is deployed)';

-- ---------------------------------------------------------------------------
-- Domains: recommend, score, similar_items and evaluate take a domain (last,
-- defaulting to NULL, so every earlier call, positional or named, still
-- resolves to the one function).
-- ---------------------------------------------------------------------------

DROP FUNCTION recommend(bigint, int, text, boolean);
DROP FUNCTION score(bigint, bigint, text);
DROP FUNCTION similar_items(bigint, int, text);
DROP FUNCTION evaluate(text, text, int);

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
-- Links between users: train takes a user_links source (last, defaulting
-- to NULL, so every earlier call still resolves to the one function).
-- ---------------------------------------------------------------------------

DROP FUNCTION train(text, text, text, text, jsonb);
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

-- ---------------------------------------------------------------------------
-- Factors trained elsewhere: import_model() writes a version from them, with
-- algorithm 'imported'; one imported without interactions has no
-- interactions source.
-- ---------------------------------------------------------------------------

ALTER TABLE it_model ALTER COLUMN interactions_source DROP NOT NULL;

CREATE FUNCTION import_model(model text, user_factors text, item_factors text,
                             options jsonb DEFAULT '{}')
RETURNS TABLE (model text, version int, users bigint, items bigint,
               interactions bigint, seconds float8, loss float8)
AS 'MODULE_PATHNAME', 'interest_transfer_import_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE COST 1000000 ROWS 1;
COMMENT ON FUNCTION import_model(text, text, text, jsonb) IS
  'a new version of a model from factors trained elsewhere (tables or queries of id and features, as Spark ALS writes userFactors and itemFactors), with the interactions, features and links of option interactions, user_features, item_features, user_links for seen items, popularity, fold-in and the priors';

-- ---------------------------------------------------------------------------
-- The item side of each version, packed for loading (see the install
-- script).  Versions written before have no packs: a backend reads their
-- items row by row from it_item_factors, as before, until they are retrained.
-- ---------------------------------------------------------------------------

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

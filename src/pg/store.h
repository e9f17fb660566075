/*
 * store.h
 *    Every statement on the extension's own tables (it_model, it_prior,
 *    it_user_factors, it_item_factors, it_item_packs, it_model_acl,
 *    it_role_pin), in one module (store.c), so the storage model can be
 *    read, changed and upgraded in one place:
 *
 *      the deployed-row lookup and the reads a model load needs (saved
 *      plans, prepared once per schema);
 *      a version's it_model row, written once, after its factor rows, with
 *      the seconds of the whole call (only its few it_prior rows, which
 *      reference it, come after);
 *      one batched writer of factor rows, for training, new items and
 *      refresh;
 *      the priors of a version (it_prior), with what serving reads in
 *      typed columns;
 *      deploy, drop, and what refresh reads and touches.
 *
 *    Every function runs its statements in the caller's SPI connection and
 *    with the caller's current user: callers that write switch to the
 *    tables' owner first (ItBeginWrite, ItRunAsTablesOwner).  Errors of
 *    the statements themselves are internal: the extension's tables are
 *    not the user's input.
 */
#ifndef IT_STORE_H
#define IT_STORE_H

#include "postgres.h"

#include "executor/spi.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* ------------------------------------------------------------------------
 * Reads of the model cache (cache.c).  Saved plans; each leaves its rows
 * in SPI_tuptable.
 * ------------------------------------------------------------------------ */

/*
 * Deployed rows: of model, or of every model (NULL) ordered by name; columns
 * model, version, trained_at, xmin, ctid, owner, users, trainers (the last
 * three from it_model_acl).  Returns how many (at most 2 for a named model).
 */
extern uint64 ItStoreDeployedRows(const char *model);

/*
 * The definition of a version: xmin, ctid, algorithm, interactions_source,
 * user_features_source, item_features_source, options, factors, users,
 * items, user_mean, search_path.  ERROR when the row vanished.
 */
extern void ItStoreModelRow(const char *model, int version);

/*
 * A user's row of a version in a context (NULL: the global row): factors,
 * seen, source, seen_domain.  false: none.
 */
extern bool ItStoreUserRow(const char *model, int version, int64 user_id, const char *context);

/*
 * The rows of many users at once, in any order: the same columns as
 * ItStoreUserRow, then user_id.  Users without a row are missing.
 */
extern void ItStoreUserRows(const char *model, int version, const int64 *user_ids, int n,
                            const char *context);

/*
 * The context key of the rows that hold the prior of a user known only in
 * the source models (option source_models): not a context of the user's
 * behaviour, which never starts with '@'.
 */
#define IT_CONTEXT_SOURCE_MODELS "@source_models"

/* A user's prior from the source models: factors, source.  false: none. */
extern bool ItStoreUserPriorRow(const char *model, int version, int64 user_id);

/* The global rows of the users ids[0..n) of a version: user_id, factors, into SPI_tuptable. */
extern void ItStoreUserVectors(const char *model, int version, const int64 *ids, int n);

/* A cursor over a version's global user rows in id order: user_id, factors. */
extern Portal ItStoreUserFactorCursor(const char *model, int version);

/* A cursor over a version's items in (domain, id) order: item_id, factors, popularity, domain. */
extern Portal ItStoreItemCursor(const char *model, int version);

/*
 * A version's item packs (it_item_packs) in chunk order: chunk, domain,
 * items, item_ids, popularity, factors, norms.  Returns how many (0: a
 * version written before packs, read with ItStoreItemCursor).
 */
extern uint64 ItStoreItemPacks(const char *model, int version);

/*
 * A cursor over a version's users (global rows) in id order: user_id, and
 * with with_seen also seen and seen_domain.
 */
extern Portal ItStoreUserCursor(const char *model, int version, bool with_seen);

/* factors of the first limit users trained with the version ('model' rows), in id order */
extern void ItStoreTrainedUserSample(const char *model, int version, int limit);

/* ------------------------------------------------------------------------
 * Model rows
 * ------------------------------------------------------------------------ */

/* A model's definition: what train() reads, and how. */
typedef struct ItDefinition
{
    const char *interactions;   /* NULL: none (a version imported without them) */
    const char *user_features;  /* NULL when none */
    const char *item_features;  /* NULL when none */
    const char *user_links;     /* NULL when none */
    Jsonb      *options;        /* as given (NULL: defaults) or stored */
    bool        stored;         /* train(model): read with the owner's rights */
    Oid         owner;          /* stored: the model's owner */
    char       *search_path;    /* the sources are read with (stored: NULL before 0.2) */
    const char *algorithm;      /* stored: it_model.algorithm ("als", "imported"); else NULL */
} ItDefinition;

/*
 * The definition train(model) retrains with: the deployed version's, else
 * the latest version's, and the model's owner, as committed now (the
 * latest snapshot: after the model's lock).  Copied into mcxt.  false when
 * the model has no version.
 */
extern bool ItStoreLatestDefinition(const char *model, MemoryContext mcxt, ItDefinition *def);

/*
 * The deployed version's number and options (copied into the current
 * context) as committed now; false when none is deployed.  options may
 * be NULL.
 */
extern bool ItStoreDeployedVersion(const char *model, int *version, Jsonb **options);

extern bool ItStoreVersionExists(const char *model, int version);

/* The next version number of model (1 for a new one). */
extern int  ItStoreNextVersion(const char *model);

/* Creates a model's it_model_acl row owned by owner; false when it exists. */
extern bool ItStoreCreateModel(const char *model, Oid owner);

/* A version's it_model row, written once. */
typedef struct ItModelRow
{
    const char *model;
    int         version;
    const char *algorithm;      /* "als" (NULL), "imported" */
    const ItDefinition *def;    /* sources and search_path */
    Jsonb      *options;        /* every option, defaults filled in */
    int         factors;
    int64       users;
    int64       items;
    int64       interactions;
    double      seconds;
    double      loss;
    const char *history;        /* json text */
    const char *metrics;        /* json text, NULL: {} */
    const float *user_mean;     /* factors floats */
    const char *deploy_decision;    /* json text */
    bool        deployed;       /* the model's deployed version from now on */
    int         n_domains;      /* 0: no domain column */
    char      **domains;        /* n_domains names, sorted */
    int         n_contexts;     /* 0: no context vectors */
    char      **contexts;       /* n_contexts names, sorted */
    const double *context_weights;  /* n_contexts: fold-in weights, 0: not kept */
} ItModelRow;

extern void ItStoreInsertModel(const ItModelRow *row);

/* Makes version the deployed one of model (it must exist). */
extern void ItStoreDeploy(const char *model, int version);

/* Deletes every version, factor row and prior of model and its grants; returns the versions. */
extern int64 ItStoreDropModel(const char *model);

/* Refresh: refreshed_at = now() (set_time) or unchanged; cached copies reload either way. */
extern void ItStoreTouchModel(const char *model, int version, bool set_time);

/* When the version was last refreshed, else trained. */
extern TimestampTz ItStoreRefreshedSince(const char *model, int version);

/* ------------------------------------------------------------------------
 * Owners and grants (it_model_acl, it_role_pin; the rules are access.c's)
 * ------------------------------------------------------------------------ */

/* A model's owner, users, trainers, in SPI_tuptable; fresh: as committed now.  false: none. */
extern bool ItStoreAclRow(const char *model, bool fresh);

/* Whether role owns, may use or may train any model. */
extern bool ItStoreRoleHasModels(Oid role);

/* GRANT (pin) or REVOKE SELECT on it_role_pin for a role (see the install script). */
extern void ItStorePinRole(const char *rolename, bool pin);

/* Adds role to (grant) or removes it from the users or trainers of model. */
extern void ItStoreChangeGrant(const char *model, bool trainers, Oid role, bool grant);

/* The models role owns, uses or trains, by name (a List of char *, valid until SPI_finish). */
extern List *ItStoreModelsOfRole(Oid role);

/*
 * Hands model from old_role to new_role: its ownership when old_role owns
 * it, and with move_grants its grants too.  Returns the rows changed.
 */
extern int64 ItStoreReassign(const char *model, Oid old_role, Oid new_role, bool move_grants);

/* ------------------------------------------------------------------------
 * Factor rows
 * ------------------------------------------------------------------------ */

typedef enum ItFactorWrite
{
    IT_FACTORS_INSERT,          /* new rows (a new version) */
    IT_FACTORS_UPSERT,          /* replace existing rows (refresh of users) */
    IT_FACTORS_SKIP_EXISTING    /* keep rows another transaction added (refresh of items) */
} ItFactorWrite;

/*
 * n rows of one side.  Users: row r saw the items
 * seen_ids[seen_index[j]] (or seen_ids[j] when seen_index is NULL) for j
 * in [seen_ptr[r], seen_ptr[r + 1]).  Items: popularity of row r is
 * popularity[r] (its users with a positive), or 0 when popularity is
 * NULL.
 */
typedef struct ItFactorRows
{
    bool        users;          /* it_user_factors, else it_item_factors */
    ItFactorWrite mode;
    const char *source;         /* 'model', 'fold_in', 'features', 'domain:...' */
    const char *context;        /* users: it_user_factors.context (NULL: '') */
    int         k;
    int64       n;
    const int64 *ids;
    const float *factors;       /* n * k */
    const int64 *seen_ptr;
    const int32 *seen_index;
    const int64 *seen_ids;
    const int64 *popularity;
    /*
     * With domains (else NULL): items, the domain of row r; users, the
     * domain of each item index (rows with seen_index only).
     */
    const int16 *domains;
} ItFactorRows;

/*
 * Writes the rows, many per execution of one prepared statement, bounded
 * in rows and values per batch; returns how many were written (all of
 * them, except for IT_FACTORS_SKIP_EXISTING).
 */
extern int64 ItStoreWriteFactors(const char *model, int version, const ItFactorRows *rows);

/*
 * Whether ItStoreWriteFactors writes both factor tables directly, running
 * no code of anyone's but PostgreSQL's own: plain tables of the expected
 * columns, insertable by the current role, no row security, triggers,
 * rules, CHECK constraints, or index expressions and predicates.  Work
 * that may not share the backend with arbitrary functions (BLAS on
 * another thread) runs beside such writes only.
 */
extern bool ItStoreFactorsRunNoUserCode(void);

/*
 * Packs the item rows of a version (k factors), as committed now and as
 * this transaction wrote them, into it_item_packs: one pass over them in
 * (domain, id) order, a few thousand items of one domain per pack.  After
 * the version's item rows (before its it_model row), and after every
 * change of them, in the same transaction; replace deletes the version's
 * packs first.
 * Returns the items packed.
 */
extern int64 ItStoreWriteItemPacks(const char *model, int version, int k, bool replace);

/* Items in memory: n of them in (domain, id) order. */
typedef struct ItItemSet
{
    int64       n;
    const int64 *ids;
    const float *factors;       /* n * k */
    const int64 *popularity;    /* NULL: 0 */
    const int16 *domains;       /* NULL: 0 */
} ItItemSet;

/*
 * The same from the items just written from memory: the nsets (1 or 2)
 * sets, merged, must be every item row of the version (train.c writes the
 * trained items and the new items of the features prior).  No read back,
 * unless a set is not in (domain, id) order.
 */
extern int64 ItStoreWriteItemPacksFrom(const char *model, int version, int k,
                                       const ItItemSet *sets, int nsets);

/* ------------------------------------------------------------------------
 * Priors (it_prior)
 * ------------------------------------------------------------------------ */

typedef enum ItPriorKind
{
    IT_PRIOR_POPULATION,        /* the mean warm user */
    IT_PRIOR_USER_FEATURES,     /* features -> interest, users */
    IT_PRIOR_ITEM_FEATURES,     /* features -> interest, items */
    IT_PRIOR_SOURCE_MODELS,     /* source models' user vectors -> interest */
    IT_PRIOR_SOCIAL             /* linked users' vectors (and features) -> interest */
} ItPriorKind;

extern const char *ItPriorKindName(ItPriorKind kind);

typedef struct ItPriorRow
{
    ItPriorKind kind;
    bool        in_use;         /* serving uses it */
    double      fold_in_weight; /* > 0; 0: not measured (NULL) */
    double      prior_variance; /* > 0; 0: not measured (NULL) */
    float       popularity_blend;   /* >= 0 */
    float       fold_in_blend;  /* metrics fold_in_popularity_blend, >= 0; 0 when absent */
    Jsonb      *spec;           /* feature encoder; NULL for the population */
    int         dims;           /* with spec */
    float      *params;         /* NULL when none */
    int64       nparams;
    Jsonb      *layout;         /* NULL when none */
    Jsonb      *metrics;        /* NULL: {} */
} ItPriorRow;

extern void ItStorePrior(const char *model, int version, const ItPriorRow *row);

/*
 * The prior of a kind of a version, copied into mcxt; false, *out zeroed,
 * when the version has none.  ERROR (data_corrupted) when a stored value
 * is out of range.
 */
extern bool ItLoadPrior(const char *model, int version, ItPriorKind kind,
                        MemoryContext mcxt, ItPriorRow *out);

#endif                          /* IT_STORE_H */

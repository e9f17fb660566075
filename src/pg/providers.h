/*
 * providers.h
 *    What serving users and items the model was not trained on needs from
 *    a model version besides its factors: its serving state (the stored
 *    features -> interest models, the options and fold-in weights), the
 *    saved plans that read one id's rows of the model's sources, and
 *    fold-in.  Shared by interest.c, the providers (provider_*.c),
 *    interactions.c and refresh.c.
 */
#ifndef IT_PROVIDERS_H
#define IT_PROVIDERS_H

#include "common.h"
#include "cache.h"
#include "features_encoder.h"
#include "mlp.h"

/* The features -> interest model of one side ("user" or "item"). */
typedef struct ItSidePrior
{
    bool        stored;         /* the version has an it_prior row for it */
    bool        use_features;   /* ... and its validation kept the features path */
    float       pop_blend;      /* popularity_blend of the features path, >= 0 */
    double      prior_variance; /* metrics prior_variance (0: not stored) */
    double      fold_in_weight; /* metrics fold_in_prior_weight (0: not stored) */
    float       fold_in_blend;  /* metrics fold_in_popularity_blend (0: not stored) */
    ItEncoder  *encoder;
    int         dims;           /* encoded floats per row */
    ItMlpLayout layout;
    float      *params;         /* it_mlp_param_count(&layout) floats */
    float      *workspace;      /* it_mlp_workspace_floats(&layout, 1) floats, or NULL */
} ItSidePrior;

/* Providers of prior interest a model can have (interest.c's list). */
#define IT_MAX_PROVIDERS 8

/* A saved plan reading the rows of one id of a source. */
typedef struct ItIdPlan
{
    SPIPlanPtr  plan;           /* NULL until first use */
    struct ItOrphanPlan *orphan;    /* preallocated node that frees it later */
} ItIdPlan;

typedef struct ItTransfer
{
    MemoryContext cxt;          /* child of the model's context */
    ItSidePrior user;
    ItSidePrior item;
    ItSidePrior source;         /* the mapping of option source_models */
    ItSidePrior social;         /* the links of user_links */
    float       fold_in_weight[IT_MAX_PROVIDERS];   /* lambda0 of each provider's
                                                     * prior, in interest.c's order */
    float       fold_in_blend[IT_MAX_PROVIDERS];    /* the popularity blend of the
                                                     * fold-in ranking around it */
    float       alpha;          /* confidence scale, as in training */
    bool        fold_in;        /* read unknown users' rows at query time */
    bool        new_items;      /* give items only in item_features a vector */
    float      *scratch;        /* k*k + k floats for it_fold_in */
    ItIdPlan    interactions;   /* interactions rows of one user */
    ItIdPlan    user_features;  /* user_features row of one user */
    ItIdPlan    user_links;     /* user_links rows of one user */
} ItTransfer;

/*
 * A new, empty serving state of m (ItGetTransfer in interest.c fills it):
 * zeroed, with the fold-in scratch, in a context of its own under the
 * current one (the caller moves it under the model's once filled), whose
 * saved plans are freed when it is.
 */
extern ItTransfer *ItNewTransfer(ItModel *m);

/*
 * x[m->k] = fold-in of the given items with the prior, weighted lambda0
 * (ERROR when the system cannot be solved, which a stored model cannot
 * cause).
 */
extern void ItFoldIn(ItModel *m, ItTransfer *t, const int32 *items, const float *weights,
                     int n, const float *prior, float lambda0, float *x);

/* Error context for reading a model's stored source during serving. */
typedef struct ItServeContext
{
    const char *model;
    const char *what;           /* "interactions", "user_features", ... */
    int64       id;
    bool        has_id;
    bool        running;        /* running the source: its errors get a hint */
    ErrorContextCallback cb;
    ItRunAs     runas;          /* as the model's owner (access.h) */
} ItServeContext;

/*
 * Between Push and Pop, statements run with the rights of the model's
 * owner, with the search_path stored with its definition, read-only
 * (ItRunAsModelOwner), and errors name the source.
 */
extern void ItServeContextPush(ItServeContext *sc, ItModel *m, const char *what,
                               bool has_id, int64 id);
extern void ItServeContextPop(ItServeContext *sc);

/*
 * Runs "SELECT * FROM (<source>) s WHERE s.<idcol> = id" read-only through
 * the saved plan p (prepared on first use; count 0: every row), between
 * ItServeContextPush and Pop; the rows land in SPI_tuptable.  Refuses a
 * source that reads temporary relations, and in a parallel query one that
 * is not parallel safe.
 */
extern void ItRunIdPlan(ItServeContext *sc, ItIdPlan *p, const char *source, const char *idcol,
                        int64 id, long count);

#endif                          /* IT_PROVIDERS_H */

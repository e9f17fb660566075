/*
 * providers.h
 *    What serving users and items the model was not trained on needs from
 *    a model version besides its factors: the stored feature encoders and
 *    features -> interest models, the options that tune fold-in, and the
 *    saved plans that read one user's rows of the model's sources.
 *    Shared by providers.c (scoring, recommend_for) and refresh.c.
 */
#ifndef IT_PROVIDERS_H
#define IT_PROVIDERS_H

#include "interest_transfer.h"
#include "mlp.h"

/* The features -> interest model of one side ("user" or "item"). */
typedef struct ItSidePrior
{
    bool        stored;         /* the version has an it_encoder row for it */
    bool        use_features;   /* ... and its validation kept the features path */
    float       pop_blend;      /* popularity_blend of the features path, >= 0 */
    float       lambda0;        /* fold-in weight of this prior (user side) */
    double      prior_variance; /* metrics prior_variance (0: not stored) */
    double      fold_in_weight; /* metrics fold_in_prior_weight (0: not stored) */
    ItEncoder  *encoder;
    int         dims;           /* encoded floats per row */
    ItMlpLayout layout;
    float      *params;         /* it_mlp_param_count(&layout) floats */
    float      *workspace;      /* it_mlp_workspace_floats(&layout, 1) floats, or NULL */
} ItSidePrior;

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
    float       lambda_pop;     /* fold-in weight of the population prior and of
                                 * a stored vector (refresh) */
    float       alpha;          /* confidence scale, as in training */
    bool        fold_in;        /* read unknown users' rows at query time */
    bool        new_items;      /* give items only in item_features a vector */
    float      *scratch;        /* k*k + k floats for it_fold_in */
    ItIdPlan    interactions;   /* interactions rows of one user */
    ItIdPlan    user_features;  /* user_features row of one user */
} ItTransfer;

/*
 * The transfer state of a model version, loaded on first use into the
 * model's memory (ItTransfer lives as long as the ItModel).  Must be called
 * inside SPI_connect.
 */
extern ItTransfer *ItGetTransfer(ItModel *m);

/*
 * The features prior of a user: true, with prior[m->k] set, when the user
 * side's features path is in use and the user has a row in the
 * user_features source (inside SPI_connect).  More than one row is an
 * ERROR.
 */
extern bool ItUserFeaturesPrior(ItModel *m, ItTransfer *t, int64 user_id, float *prior);

/* out[k] = f(encoded) for one encoded row of a side with use_features. */
extern void ItSideForward(const ItSidePrior *s, const float *encoded, int64 n, float *out);

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

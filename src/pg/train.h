/*
 * train.h
 *    Making a model version once its factors are there (train.c): shared by
 *    train(), which fits the factors with ALS, and import_model()
 *    (import.c), which reads factors trained elsewhere.
 *
 *    Both read the interactions into an ItTrainData whose users and items
 *    are those of the version, then
 *
 *      keys = ItPrepareInteractions(&d, &opts, &options, model, stored);
 *                          the NOTICE for ratings, domain weights, lambda
 *                          "auto" worked out (the metrics keys that record them)
 *      ... the factors X (users x k) and Y (items x k) ...
 *      ItBuildVersion(&b, &res);
 *                          popularity, contexts, cross-domain ranking, the
 *                          priors (transfer.c), the deploy decision, and the
 *                          write: factor rows, the it_model row, the priors
 *
 *    so a version is the same whatever made its factors: every provider,
 *    score, evaluate, refresh and deploy work on it alike.
 */
#ifndef IT_TRAIN_H
#define IT_TRAIN_H

#include "postgres.h"

#include "fmgr.h"
#include "portability/instr_time.h"
#include "utils/jsonb.h"

#include "interactions.h"
#include "options.h"
#include "store.h"
#include "transfer.h"

/* The interactions, as a matrix over the version's users and items (interactions.c). */
typedef ItInteractionMatrix ItTrainData;

/* What one call of train() or import_model() reports. */
typedef struct ItTrainResult
{
    int         version;
    int64       users;
    int64       items;
    int64       interactions;
    double      seconds;
    double      loss;
} ItTrainResult;

/* A version whose factors are there, to finish and write (ItBuildVersion). */
typedef struct ItVersionBuild
{
    const char *model;
    const ItDefinition *def;    /* the sources to store */
    const char *algorithm;      /* it_model.algorithm: "als", "imported" */
    const char *action;         /* the operation, for messages: "train", "import" */
    Jsonb      *options;        /* resolved, to store (ItBuildVersion may add to it) */
    ItOptions  *opts;
    ItTrainData *d;             /* d->nusers x d->nitems, ids ascending */
    float      *X;              /* d->nusers * opts->factors */
    float      *Y;              /* d->nitems * opts->factors */
    double      loss;
    const char *history;        /* json array text */
    ItTransferTrain *transfer;  /* from ItTransferRead, before anything is written */
    char       *keys;           /* it_model.metrics keys of the caller's, or NULL */
    instr_time  start;          /* the start of the call */
    double      t_read;         /* seconds since start when the reading was done */
    double      t_factors;      /* seconds since start when the factors were there */
} ItVersionBuild;

/* ERRORs (invalid_parameter_value, name_too_long) on an empty or too long model name. */
extern void ItCheckModelName(const char *model);

/*
 * A user_features / item_features source: that the caller can read it and
 * that it has the id column (idcol).  NULL: nothing to check.
 */
extern void ItCheckFeatureSource(const char *source, const char *what, const char *idcol,
                                 const char *model);

/*
 * After reading the interactions, before the factors are used: the NOTICE
 * for weights that look like ratings, the domains' weights (applied to d)
 * and regularization "auto" (set in *o and *options).  Returns the
 * it_model.metrics keys that record them ("k": v, ... without braces), or
 * NULL when none applies.
 */
extern char *ItPrepareInteractions(ItTrainData *d, ItOptions *o, Jsonb **options,
                                   const char *model, bool stored);

/*
 * Everything after the factors: fits the priors on them (b->transfer),
 * decides deployment (option deploy; if_better refits the options on a
 * validation slice, so only train() may ask for it), and writes the
 * version in the caller's transaction, as the tables' owner, after
 * checking the caller's privilege again (ItBeginWrite).  Fills *res.
 */
extern void ItBuildVersion(ItVersionBuild *b, ItTrainResult *res);

/* The one row train() and import_model() return (InitMaterializedSRF first). */
extern void ItReturnTrainResult(FunctionCallInfo fcinfo, const char *model, const ItTrainResult *res);

#endif                          /* IT_TRAIN_H */

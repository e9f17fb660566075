/*
 * transfer.h
 *    Training the features -> interest models of a model version
 *    (transfer.c), called by train (train.c) in three steps:
 *
 *      t = ItTransferRead(model, user_features, item_features, options);
 *                          reads and encodes the features sources, with the
 *                          caller's privileges, before anything is written
 *                          (either may be NULL)
 *      ... ALS fit ...
 *      ItTransferFit(t, &trained);
 *                          fits the user and item priors on the trained
 *                          factors and interactions, checks them against
 *                          popularity on held-out trained rows, and
 *                          chooses the fold-in weight of the features
 *                          prior and of the population prior by
 *                          simulation on trained users
 *      ... between ItBeginWrite and ItEndWrite ...
 *      ItTransferWriteItems(t, model, version);
 *                          the new items' factor rows, before the it_model row
 *      ItTransferWrite(t, model, version);
 *                          after it: one it_prior row per side given and one
 *                          for the population prior (store.c)
 *      ItTransferSummary(t);
 *                          the summary for it_model.metrics (with the
 *                          population prior's fold_in_prior_weight), JSON
 *                          text; NULL when t is NULL
 *      ItTransferEnd(t);
 *
 * Every function accepts t == NULL and then does nothing.  Everything is
 * allocated in a memory context of its own, a child of the context current
 * at ItTransferRead, deleted by ItTransferEnd (or with its parent).
 */
#ifndef IT_TRANSFER_H
#define IT_TRANSFER_H

#include "common.h"
#include "options.h"

typedef struct ItTransferTrain ItTransferTrain;    /* opaque */

/* The trained model, as the priors need it. */
typedef struct ItTrainedModel
{
    int         k;              /* factors */
    float       alpha;          /* confidence scale of training */
    double      regularization; /* lambda of training: the number used, never "auto" */
    int64       nusers;
    int64       nitems;
    const int64 *user_ids;      /* ascending */
    const int64 *item_ids;      /* ascending */
    const ItCsr *R;             /* users x items, summed weights */
    const ItCsr *Rt;            /* items x users */
    const int64 *popularity;    /* nitems: the users each item is a positive of */
    const double *times;        /* R's entries' times (ts), or NULL when the source has none */
    const float *X;             /* nusers * k */
    const float *Y;             /* nitems * k */
} ItTrainedModel;

extern ItTransferTrain *ItTransferRead(const char *model, const char *user_features,
                                       const char *item_features, const char *user_links,
                                       const ItOptions *options);
extern void ItTransferFit(ItTransferTrain *t, const ItTrainedModel *tm);
extern void ItTransferWriteItems(ItTransferTrain *t, const char *model, int version);
/* The new items ItTransferWriteItems writes (ids ascending, domain 0, popularity 0); 0 when none. */
extern int64 ItTransferNewItems(const ItTransferTrain *t, const int64 **ids, const float **factors);
extern void ItTransferWrite(ItTransferTrain *t, const char *model, int version);
extern const char *ItTransferSummary(ItTransferTrain *t);
/*
 * The population prior's fold-in weight, beside the writes: after
 * ItTransferDeferPopulation, ItTransferFit only prepares its simulations;
 * ItTransferStartPopulation starts them on a thread of their own (when
 * the factor writes run no user code, ItStoreFactorsRunNoUserCode: the
 * thread calls BLAS, and the caller may not until the end), and
 * ItTransferFinishPopulation waits for them (or runs them, when they did
 * not start) and makes the choice, before ItTransferSummary and
 * ItTransferWrite.  ItTransferStopPopulation, for error paths, stops and
 * waits for the thread without raising anything.
 */
extern void ItTransferDeferPopulation(ItTransferTrain *t);
extern void ItTransferStartPopulation(ItTransferTrain *t);
extern void ItTransferStopPopulation(ItTransferTrain *t);
/* Returns whether the simulations ran on their own thread. */
extern bool ItTransferFinishPopulation(ItTransferTrain *t);
/* The seconds the choice of the population prior's fold-in weight took (so far). */
extern double ItTransferFoldInSeconds(const ItTransferTrain *t);
extern void ItTransferEnd(ItTransferTrain *t);

#endif                          /* IT_TRANSFER_H */

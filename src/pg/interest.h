/*
 * interest.h
 *    The interest of a user, decided in one place (interest.c) for
 *    recommend, score, recommend_for, evaluate and refresh, and the score
 *    it gives an item.
 */
#ifndef IT_INTEREST_H
#define IT_INTEREST_H

#include "common.h"
#include <math.h>

#include "cache.h"
#include "interactions.h"
#include "providers.h"

/* The interest of one user, as every scoring function sees it. */
typedef struct ItInterest
{
    ItInterestSource source;
    float      *x;              /* m->k floats; NULL for IT_SOURCE_POPULAR */
    int32      *seen;           /* item indexes, sorted ascending */
    int         nseen;
    float       pop_blend;      /* >= 0: a vector ranks by x.y_i + pop_blend *
                                 * m->pop_score[i] (the features path; 0 otherwise) */
    const char *label;          /* recommend's source, when not the name of source */
} ItInterest;

/*
 * The interest of a user (README, "Where a user's interest comes from"),
 * in the order of DESIGN.md: the stored row of the deployed version
 * (IT_SOURCE_MODEL, or 'fold_in' after refresh), as it is; else, with the
 * option fold_in, their rows in the interactions source (a saved plan per
 * model version, run as the model's owner) folded in with it_fold_in
 * around the best prior available (IT_SOURCE_FOLD_IN); else that prior
 * alone (IT_SOURCE_FEATURES, ranked with the side's popularity_blend);
 * else popularity (IT_SOURCE_POPULAR).  The priors come from the
 * providers of interest.c's list, each with its fold-in weight.  Fills
 * *out in the current memory context; needs no SPI connection.
 */
extern void ItUserInterest(ItModel *m, int64 user_id, ItInterest *out);

/*
 * A visitor in no table (recommend_for): the prior from their features (a
 * jsonb object keyed by the user_features column names, or NULL), folded
 * in with the given items, each one interaction of weight 1 (items the
 * model does not know are ignored); the items are the interest's seen
 * items.
 */
extern void ItVisitorInterest(ItModel *m, Jsonb *features, const int64 *items, int nitems,
                              ItInterest *out);

/*
 * refresh(): the user's rows folded in around their stored vector, else
 * around the best prior (IT_SOURCE_FOLD_IN, in the current context).
 * False, touching nothing, for a user without a stored row and without
 * rows known to the model.  Inside SPI_connect.
 */
extern bool ItRefreshInterest(ItModel *m, int64 user_id, const ItUserRows *rows,
                              ItInterest *out);

/*
 * The serving state of a model version (providers.h), loaded on first use
 * into the model's memory (it lives as long as the ItModel): the options
 * that tune fold-in, every provider's stored parameters and their fold-in
 * weights.  Must be called inside SPI_connect.
 */
extern ItTransfer *ItGetTransfer(ItModel *m);

/*
 * x.y as reported to users, the same bits whichever function reports it.
 * (BLAS sums in an order that depends on the number of rows, so a score
 * taken from one sgemv over every item and one computed alone could differ
 * in the last bit.)
 */
static inline float
ItDot(const float *x, const float *y, int k)
{
    double      s = 0.0;

    for (int j = 0; j < k; j++)
        s += (double) x[j] * (double) y[j];
    return (float) s;
}

/* |x|, rounded up a little (a bound's scale: never below the true norm). */
static inline double
ItVectorNorm(const float *x, int k)
{
    double      s = 0.0;

    for (int j = 0; j < k; j++)
        s += (double) x[j] * (double) x[j];
    return sqrt(s) * (1.0 + 1e-9);
}

/*
 * The score an interest gives item index idx, the one recommend() ranks
 * by: x.y (plus the popularity term), or popularity / max popularity.
 */
extern float ItItemScore(const ItModel *m, const ItInterest *in, int64 idx);

/*
 * How far a score from it_score_all or it_score_many (plus the popularity
 * term) can be from ItItemScore's, for item i and an interest with a
 * vector x: tol(i) = tol_scale |y_i| + tol_const.  A float dot product of
 * k terms, summed in any order, with or without FMA, is within
 * k u sum |x_j y_ij| <= k u |x| |y_i| of the exact value (u = FLT_EPSILON
 * / 2); ItItemScore's rounding to float and the float additions of the
 * popularity term add a few u of the score's magnitude.  (k + 4)
 * FLT_EPSILON (|x| |y_i| + blend) is about twice that.
 */
extern void ItScoreTolerance(const ItModel *m, const ItInterest *in,
                             double *tol_scale, double *tol_const);

/*
 * What recommend() reports as the source of an interest ranked within
 * domain d (-1: no domain): the source's name, or, for a user whose
 * interactions are all in other domains, 'domain:' and those domains
 * (comma-separated, sorted).  palloc'd or constant.
 */
extern const char *ItInterestSourceLabel(const ItModel *m, const ItInterest *in, int d);

#endif                          /* IT_INTEREST_H */

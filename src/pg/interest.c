/*
 * interest.c
 *    Which interest serves a user, decided in one place for recommend,
 *    score, recommend_for, evaluate and refresh: the providers of prior
 *    interest in their order (one static list), the fold-in weight each
 *    gets, and the score an interest gives an item.
 *
 * The order (DESIGN.md; README, "Where a user's interest comes from"):
 *   1. a prior fitted on the user's own rows (the stored row of the
 *      deployed version: 'model', or 'fold_in' after refresh()) serves as
 *      it is, before anything is read;
 *   2. the user's rows in the interactions source (option fold_in) are
 *      folded in, x = argmin sum c_i (1 - x.y_i)^2 + lambda0 |x - prior|^2
 *      over their items known to the model, around the first prior of the
 *      list that serves them, with that provider's lambda0 ('fold_in');
 *      the list: the mapping of the user's vectors in the source models
 *      (provider_source.c), their features, the population mean;
 *   3. without rows, that prior alone ('domain:<sources>', 'features'),
 *      unless it is the population's;
 *   4. popularity ('popular').
 * Adding a provider is a provider_x.c (provider.h) and one line in
 * ItProviders.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"

#include "interest.h"
#include "provider.h"

/*
 * The providers, in the order they are asked.  The last one must serve
 * every user: its fold-in weight is the one of every provider that has no
 * measurement of its own.
 */
static const ItProvider *const ItProviders[] = {
    &ItProviderStored,
    &ItProviderSource,
    &ItProviderSocial,
    &ItProviderFeatures,
    &ItProviderPopulation,
};

#define IT_NPROVIDERS ((int) lengthof(ItProviders))

StaticAssertDecl(lengthof(ItProviders) <= IT_MAX_PROVIDERS,
                 "raise IT_MAX_PROVIDERS");

/* ------------------------------------------------------------------------
 * The serving state and the fold-in weights
 * ------------------------------------------------------------------------ */

/* alpha / (2 variance) (variance 0, nothing to measure: alpha), within what a float solve takes */
static float
PriorPrecision(double alpha, double variance)
{
    double      l = variance > 0.0 ? alpha / (2.0 * variance) : alpha;

    return (float) Max(Min(l, 1e20), 1e-20);
}

/*
 * The fold-in weight of provider p: the option prior_weight when set,
 * else what training measured for it, else the precision of its variance,
 * else fallback.  *blend: the popularity blend training chose with the
 * measured weight, 0 with any other.  The measurements are asked for only
 * when needed (they may run a query).
 */
static float
FoldInWeight(const ItProvider *p, ItModel *m, ItTransfer *t, double pw, double a, float fallback,
             float *blend)
{
    double      measured;
    double      variance;

    *blend = 0.0f;
    if (pw > 0.0)
        return (float) pw;
    measured = p->measured_weight ? p->measured_weight(m, t, blend) : 0.0;
    if (measured > 0.0)
        return (float) measured;
    /* the blend was chosen with the measured weight; with any other it is 0 */
    *blend = 0.0f;
    variance = p->variance ? p->variance(m, t) : 0.0;
    if (variance > 0.0)
        return PriorPrecision(a, variance);
    return fallback;
}

ItTransfer *
ItGetTransfer(ItModel *m)
{
    ItTransfer *t;
    double      pw;
    double      alpha;
    double      a;
    float       reference;
    ItRunAs     r;

    if (m->transfer != NULL)
        return (ItTransfer *) m->transfer;

    ItRunAsTablesOwner(&r);
    t = ItNewTransfer(m);

    pw = m->opts.prior_weight;
    alpha = m->opts.alpha;
    /* in range: ItReadOptions checked the stored options against the options table */
    t->alpha = (float) alpha;
    t->fold_in = m->opts.fold_in;
    t->new_items = m->opts.new_items;

    for (int i = 0; i < IT_NPROVIDERS; i++)
        if (ItProviders[i]->load)
            ItProviders[i]->load(m, t);

    /*
     * lambda0.  Automatic (prior_weight 0): the weight training chose for
     * the prior by simulation on trained users (transfer.c; the features
     * prior's and the population prior's in their it_prior rows
     * (fold_in_weight); see FoldInGrid there
     * for what it gains on MovieLens 100k, where the formula below was far
     * too weak).  Versions that store no measured weight keep the formula:
     * the precision of a Gaussian prior, 1 / variance of the users'
     * vectors around it, times
     * max(alpha, 0.2) / 2.  The variance makes lambda0 follow the scale of
     * the user vectors (ALS leaves the scale of X against Y to the
     * regularisation), the confidence scale alpha keeps the prior's worth
     * against a few interactions (c = 1 + alpha w) whatever alpha is.
     * Measured on the generated data, 3 interactions revealed per cold
     * user, factors 16 to 64, regularization 0.05 to 10, alpha 0 to 10:
     * within 0.007 of the best precision@10 of multipliers 0.1 to 10 of it
     * everywhere, where a fixed lambda0 loses up to 0.06 when the
     * regularization changes.  The variance around the features prior is
     * the training's measurement (metrics prior_variance) when stored,
     * else the population's; with it the automatic lambda0 of the features
     * prior was within 0.001 of the best fixed lambda0 of 0.25 to 10 at
     * factors 16 to 64, and above all of them at regularization 1.
     */
    a = Max(alpha, 0.2);
    reference = FoldInWeight(ItProviders[IT_NPROVIDERS - 1], m, t, pw, a, PriorPrecision(a, 0.0),
                             &t->fold_in_blend[IT_NPROVIDERS - 1]);
    t->fold_in_weight[IT_NPROVIDERS - 1] = reference;
    for (int i = 0; i < IT_NPROVIDERS - 1; i++)
        t->fold_in_weight[i] = FoldInWeight(ItProviders[i], m, t, pw, a, reference, &t->fold_in_blend[i]);

    ItRunAsEnd(&r);
    MemoryContextSetParent(t->cxt, m->cxt);
    m->transfer = t;
    return t;
}

/* ------------------------------------------------------------------------
 * The decision
 * ------------------------------------------------------------------------ */

/* Whether a user without a fitted prior could get anything but popularity. */
static bool
AnythingToRead(const ItModel *m, const ItTransfer *t)
{
    if (t->fold_in)
        return true;
    for (int i = 0; i < IT_NPROVIDERS; i++)
    {
        const ItProvider *p = ItProviders[i];

        if (!p->fitted && p->source != IT_SOURCE_POPULAR && (p->usable == NULL || p->usable(m, t)))
            return true;
    }
    return false;
}

static void
PresetPrior(const ItProvider *p, float *x, ItPrior *pr)
{
    memset(pr, 0, sizeof(*pr));
    pr->x = x;
    pr->source = p->source;
}

/*
 * Decides the interest of req's user into *out (allocated in the current
 * context).  given: the user's rows, or NULL to read them from the
 * interactions source when the option fold_in is on.  refresh: a fitted
 * prior is folded in with the rows instead of served as it is, and a user
 * without one and without rows known to the model is not served (false).
 */
static bool
DecideInterest(ItInterestRequest *req, const ItUserRows *given, bool refresh, ItInterest *out)
{
    MemoryContext callercxt = CurrentMemoryContext;
    ItModel    *m = req->m;
    ItTransfer *t;
    ItUserRows  rows;
    ItPrior     pr;
    float      *prior;
    int         chosen = -1;

    memset(out, 0, sizeof(*out));
    out->source = IT_SOURCE_POPULAR;

    /* 1. a prior fitted on the user's rows: no SPI round trip */
    if (req->has_user)
    {
        prior = palloc(sizeof(float) * m->k);
        for (int i = 0; i < IT_NPROVIDERS && chosen < 0; i++)
        {
            const ItProvider *p = ItProviders[i];

            if (!p->fitted)
                continue;
            PresetPrior(p, prior, &pr);
            if (p->prior(req, &pr))
                chosen = i;
        }
        if (chosen >= 0 && !refresh)
        {
            out->source = pr.source;
            out->x = prior;
            out->seen = pr.seen;
            out->nseen = pr.nseen;
            out->pop_blend = pr.pop_blend;
            return true;
        }
        if (chosen < 0)
            pfree(prior);
    }

    /* nothing to read: no SPI round trip */
    t = (ItTransfer *) m->transfer;
    if (!refresh && chosen < 0 && given == NULL && t != NULL && !AnythingToRead(m, t))
        return true;

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    t = ItGetTransfer(m);
    req->t = t;

    /* 2. the user's own rows */
    memset(&rows, 0, sizeof(rows));
    if (given != NULL)
        rows = *given;
    else if (req->has_user && t->fold_in)
        ItReadUserRows(m, t, req->user_id, CurrentMemoryContext, &rows);

    if (chosen < 0 && refresh && rows.n == 0)
    {
        SPI_finish();
        return false;
    }

    /* 3. the best prior that serves the user */
    if (chosen < 0)
    {
        prior = palloc(sizeof(float) * m->k);
        for (int i = 0; i < IT_NPROVIDERS && chosen < 0; i++)
        {
            const ItProvider *p = ItProviders[i];

            if (p->fitted)
                continue;
            PresetPrior(p, prior, &pr);
            if (p->prior(req, &pr))
                chosen = i;
        }
        if (chosen < 0)
            elog(ERROR, "no provider of interest served user " INT64_FORMAT, req->user_id);
    }

    if (rows.n > 0 || refresh)
    {
        out->source = IT_SOURCE_FOLD_IN;
        out->x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);
        ItFoldIn(m, t, rows.items, rows.weights, rows.n, prior, t->fold_in_weight[chosen], out->x);
        /* ranked as training chose it: x.y_i + blend * popularity_i / max */
        out->pop_blend = t->fold_in_blend[chosen];
        if (rows.n > 0)
        {
            out->seen = MemoryContextAlloc(callercxt, sizeof(int32) * rows.n);
            memcpy(out->seen, rows.items, sizeof(int32) * rows.n);
            out->nseen = rows.n;
        }
    }
    else if (ItProviders[chosen]->source != IT_SOURCE_POPULAR)
    {
        /* 4. the prior alone */
        out->source = pr.source;
        out->label = pr.label ? MemoryContextStrdup(callercxt, pr.label) : NULL;
        out->x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);
        memcpy(out->x, prior, sizeof(float) * m->k);
        out->pop_blend = pr.pop_blend;
    }
    SPI_finish();
    return true;
}

void
ItUserInterest(ItModel *m, int64 user_id, ItInterest *out)
{
    ItInterestRequest req = {m, NULL, true, user_id, NULL};

    (void) DecideInterest(&req, NULL, false, out);
}

void
ItVisitorInterest(ItModel *m, Jsonb *features, const int64 *items, int nitems, ItInterest *out)
{
    ItInterestRequest req = {m, NULL, false, 0, features};
    ItUserRows  rows;
    double     *weights = palloc(sizeof(double) * Max(nitems, 1));

    if (nitems > 0 && m->n_domains > 0)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("recommend_for() cannot take items for model \"%s\", whose items are of %d domains",
                        m->name, m->n_domains),
                 errhint("Pass the visitor's features only, or give the visitor a user_id and rows in the model's interactions source.")));
    for (int i = 0; i < nitems; i++)
        weights[i] = 1.0;
    ItCollectUserRows(m, items, NULL, weights, nitems, CurrentMemoryContext, &rows);
    pfree(weights);
    (void) DecideInterest(&req, &rows, false, out);
}

bool
ItRefreshInterest(ItModel *m, int64 user_id, const ItUserRows *rows, ItInterest *out)
{
    ItInterestRequest req = {m, NULL, true, user_id, NULL};

    return DecideInterest(&req, rows, true, out);
}

/* ------------------------------------------------------------------------
 * The score of an item
 * ------------------------------------------------------------------------ */

float
ItItemScore(const ItModel *m, const ItInterest *in, int64 idx)
{
    if (in->x == NULL)
        return m->pop_score[idx];
    if (in->pop_blend > 0.0f)
        return ItDot(in->x, m->Y + (size_t) idx * m->k, m->k) + in->pop_blend * m->pop_score[idx];
    return ItDot(in->x, m->Y + (size_t) idx * m->k, m->k);
}

void
ItScoreTolerance(const ItModel *m, const ItInterest *in, double *tol_scale, double *tol_const)
{
    double      xx = 0.0;

    for (int j = 0; j < m->k; j++)
        xx += (double) in->x[j] * (double) in->x[j];
    *tol_scale = (m->k + 4) * (double) FLT_EPSILON * sqrt(xx);
    *tol_const = (m->k + 4) * (double) FLT_EPSILON * Max(in->pop_blend, 0.0f);
}

const char *
ItInterestSourceLabel(const ItModel *m, const ItInterest *in, int d)
{
    StringInfoData buf;
    int         last = -1;

    if (in->label != NULL)
        return in->label;
    if (d < 0 || in->nseen == 0 || in->x == NULL)
        return ItInterestSourceName(in->source);
    for (int i = 0; i < in->nseen; i++)
        if (in->seen[i] >= m->domain_start[d] && in->seen[i] < m->domain_start[d + 1])
            return ItInterestSourceName(in->source);
    /* seen is ascending, so are its domains */
    initStringInfo(&buf);
    appendStringInfoString(&buf, "domain:");
    for (int i = 0; i < in->nseen; i++)
    {
        int         dom = ItItemDomain(m, in->seen[i]);

        if (dom == last)
            continue;
        appendStringInfo(&buf, "%s%s", last >= 0 ? "," : "", m->domains[dom]);
        last = dom;
    }
    return buf.data;
}

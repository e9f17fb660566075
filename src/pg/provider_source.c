/*
 * provider_source.c
 *    The source models' vectors -> interest (option source_models): the
 *    prior of a user this version was not trained on but another model
 *    was, computed by the mapping when the version was trained
 *    (transfer.c) and stored with it (it_user_factors rows of context
 *    '@source_models', source 'domain:<sources>').  Served alone it ranks
 *    with the mapping's popularity_blend; with rows of the user it is the
 *    prior they are folded in around, with the weight training chose for
 *    it.  A retrain of a source model changes nothing here until this
 *    model is trained again.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "provider.h"
#include "store.h"

static void
SourceLoad(ItModel *m, ItTransfer *t)
{
    if (m->opts.source_models != NULL)
        (void) ItLoadSidePrior(m, "source_models mapping", IT_PRIOR_SOURCE_MODELS, false,
                               &t->source, t->cxt);
}

static bool
SourceUsable(const ItModel *m, const ItTransfer *t)
{
    return t->source.use_features;
}

static double
SourceMeasuredWeight(ItModel *m, ItTransfer *t, float *blend)
{
    *blend = t->source.fold_in_blend;
    return t->source.fold_in_weight;
}

static double
SourceVariance(ItModel *m, ItTransfer *t)
{
    return t->source.prior_variance;
}

/* The stored prior of the user (inside SPI_connect). */
static bool
SourcePrior(const ItInterestRequest *req, ItPrior *out)
{
    ItModel    *m = req->m;
    ItRunAs     r;
    bool        found;

    if (!req->has_user || req->t == NULL || !req->t->source.use_features)
        return false;
    ItRunAsTablesOwnerForPlans(&r);
    found = ItStoreUserPriorRow(m->name, m->version, req->user_id);
    if (found)
    {
        bool        isnull;
        HeapTuple   tup = SPI_tuptable->vals[0];
        TupleDesc   desc = SPI_tuptable->tupdesc;

        ItArrayToFloats(SPI_getbinval(tup, desc, 1, &isnull), out->x, m->k, "user prior");
        out->label = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
        out->pop_blend = req->t->source.pop_blend;
    }
    SPI_freetuptable(SPI_tuptable);
    ItRunAsEnd(&r);
    return found;
}

const ItProvider ItProviderSource = {
    .name = "source_models",
    .source = IT_SOURCE_DOMAIN,
    .fitted = false,
    .load = SourceLoad,
    .usable = SourceUsable,
    .measured_weight = SourceMeasuredWeight,
    .variance = SourceVariance,
    .prior = SourcePrior,
};

/*
 * provider_population.c
 *    The population prior: the mean of the trained users' vectors
 *    (m->user_mean), for a user nothing else is known about.  Alone it
 *    serves no one (popularity ranks such users: 'popular'); it is the
 *    prior the rows of a user are folded in around when no other provider
 *    serves them, and its fold-in weight is the one every provider
 *    without a measurement of its own gets.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "provider.h"
#include "store.h"

/*
 * The mean squared deviation, per coordinate, of the trained users'
 * vectors from the population mean, over the first IT_VARIANCE_USERS of
 * them by id (a deterministic sample; enough for one number); 0 when the
 * version stores none.
 */
#define IT_VARIANCE_USERS 5000

static double
UserVariance(ItModel *m)
{
    float      *x = palloc(sizeof(float) * m->k);
    double      ss = 0.0;

    ItStoreTrainedUserSample(m->name, m->version, IT_VARIANCE_USERS);
    for (uint64 r = 0; r < SPI_processed; r++)
    {
        bool        isnull;

        ItArrayToFloats(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull),
                        x, m->k, "user factors");
        for (int j = 0; j < m->k; j++)
        {
            double      d = (double) x[j] - (double) m->user_mean[j];

            ss += d * d;
        }
    }
    if (SPI_processed > 0)
        ss /= (double) SPI_processed * m->k;
    SPI_freetuptable(SPI_tuptable);
    pfree(x);
    return isfinite(ss) ? ss : 0.0;
}

/*
 * The fold-in weight and popularity blend of the population prior that
 * training measured (its it_prior row), or 0 when the version stores none
 * (trained before it was measured, or too few users to measure).
 */
static double
PopulationMeasuredWeight(ItModel *m, ItTransfer *t, float *blend)
{
    ItPriorRow  pop;

    if (!ItLoadPrior(m->name, m->version, IT_PRIOR_POPULATION, CurrentMemoryContext, &pop))
        return 0.0;
    *blend = pop.fold_in_blend;
    return pop.fold_in_weight;
}

static double
PopulationVariance(ItModel *m, ItTransfer *t)
{
    return UserVariance(m);
}

static bool
PopulationPrior(const ItInterestRequest *req, ItPrior *out)
{
    memcpy(out->x, req->m->user_mean, sizeof(float) * req->m->k);
    return true;
}

const ItProvider ItProviderPopulation = {
    .name = "population",
    .source = IT_SOURCE_POPULAR,
    .fitted = false,
    .measured_weight = PopulationMeasuredWeight,
    .variance = PopulationVariance,
    .prior = PopulationPrior,
};

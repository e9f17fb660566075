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
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2];
    float      *x = palloc(sizeof(float) * m->k);
    double      ss = 0.0;
    int         ret;

    values[0] = CStringGetTextDatum(m->name);
    values[1] = Int32GetDatum(m->version);
    ret = SPI_execute_with_args(psprintf("SELECT factors FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                                         "AND version OPERATOR(pg_catalog.=) $2 "
                                         "AND source OPERATOR(pg_catalog.=) 'model' "
                                         "ORDER BY user_id LIMIT %d",
                                         ItTable("it_user_factors"), IT_VARIANCE_USERS),
                                2, argtypes, values, NULL, true, 0);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
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
 * The fold-in weight of the population prior that training measured
 * (it_model.metrics fold_in_prior_weight), or 0 when the version stores
 * none (trained before it was measured, or too few users to measure).
 */
static double
PopulationFoldInWeight(ItModel *m)
{
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2];
    Datum       d;
    bool        isnull;
    int         ret;
    double      w = 0.0;

    values[0] = CStringGetTextDatum(m->name);
    values[1] = Int32GetDatum(m->version);
    ret = SPI_execute_with_args(psprintf("SELECT metrics OPERATOR(pg_catalog.->) 'fold_in_prior_weight' "
                                         "FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                                         "AND version OPERATOR(pg_catalog.=) $2",
                                         ItTable("it_model")),
                                2, argtypes, values, NULL, true, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 1)
    {
        d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
        if (!isnull)
        {
            Jsonb      *j = DatumGetJsonbP(d);
            JsonbValue  v;

            bool        scalar = JsonbExtractScalar(&j->root, &v);

            if (scalar && v.type == jbvNull)
                w = 0.0;
            else if (!scalar || v.type != jbvNumeric ||
                     !((w = JsonNumberValue(&v)) > 0.0 && w <= FLT_MAX))
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_CORRUPTED),
                         errmsg("stored metrics of model \"%s\" version %d are invalid", m->name, m->version),
                         errdetail("Its \"fold_in_prior_weight\" is not a finite number > 0."),
                         errhint("Train a new version with train('%s').", m->name)));
        }
    }
    SPI_freetuptable(SPI_tuptable);
    return w;
}

static double
PopulationMeasuredWeight(ItModel *m, ItTransfer *t)
{
    return PopulationFoldInWeight(m);
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

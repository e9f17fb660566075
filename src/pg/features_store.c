/*
 * features_store.c
 *    Feature encoding: storage with a model version, one it_encoder row
 *    per (model, version, side) holding the spec and the features ->
 *    interest model's parameters, layout and metrics.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "features_int.h"
#include "interest_transfer.h"

static void
CheckSide(const char *side)
{
    if (strcmp(side, "user") != 0 && strcmp(side, "item") != 0)
        elog(ERROR, "feature encoder side must be \"user\" or \"item\", not \"%s\"", side);
}

void
ItEncoderStore(const char *model, int version, const char *side,
               Jsonb *spec, int dims, const float *params, int64 nparams,
               Jsonb *layout, Jsonb *metrics)
{
    Oid         argtypes[8] = {TEXTOID, INT4OID, TEXTOID, JSONBOID, INT4OID,
    FLOAT4ARRAYOID, JSONBOID, JSONBOID};
    Datum       values[8];
    char        nulls[8];
    int         ret;

    CheckSide(side);
    memset(nulls, ' ', sizeof(nulls));
    if (nparams < 0 || nparams > (int64) (MaxAllocSize / sizeof(float)) - 64)
        elog(ERROR, "feature model has too many parameters (" INT64_FORMAT ")", nparams);
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(side);
    values[3] = JsonbPGetDatum(spec);
    values[4] = Int32GetDatum(dims);
    if (params != NULL)
        values[5] = ItFloatArrayDatum(params, (int) nparams);
    else
    {
        values[5] = (Datum) 0;
        nulls[5] = 'n';
    }
    if (layout != NULL)
        values[6] = JsonbPGetDatum(layout);
    else
    {
        values[6] = (Datum) 0;
        nulls[6] = 'n';
    }
    if (metrics != NULL)
        values[7] = JsonbPGetDatum(metrics);
    else
        values[7] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

    ret = SPI_execute_with_args(psprintf("INSERT INTO %s (model, version, side, spec, dims, params, layout, metrics) "
                                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                                         ItTable("it_encoder")),
                                8, argtypes, values, nulls, false, 0);
    if (ret != SPI_OK_INSERT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

bool
ItEncoderLoad(const char *model, int version, const char *side,
              MemoryContext mcxt, ItStoredEncoder *out)
{
    Oid         argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
    Datum       values[3];
    HeapTuple   tup;
    TupleDesc   desc;
    bool        isnull;
    Datum       d;
    MemoryContext old;
    int         ret;

    CheckSide(side);
    memset(out, 0, sizeof(*out));
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(side);
    ret = SPI_execute_with_args(psprintf("SELECT spec, dims, params, layout, metrics FROM %s "
                                         "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                                         "AND side OPERATOR(pg_catalog.=) $3",
                                         ItTable("it_encoder")),
                                3, argtypes, values, NULL, true, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
        return false;
    tup = SPI_tuptable->vals[0];
    desc = SPI_tuptable->tupdesc;

    out->encoder = ItEncoderFromSpec(DatumGetJsonbP(SPI_getbinval(tup, desc, 1, &isnull)), mcxt);
    out->dims = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
    if (out->dims != out->encoder->dims)
        SpecCorrupt("Its dims do not match its spec.%s", NULL);

    old = MemoryContextSwitchTo(mcxt);
    d = SPI_getbinval(tup, desc, 3, &isnull);
    if (!isnull)
    {
        ArrayType  *arr = DatumGetArrayTypeP(d);
        int         n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

        out->nparams = n;
        out->params = palloc(sizeof(float) * Max(n, 1));
        ItArrayToFloats(d, out->params, n, "stored feature model");
    }
    d = SPI_getbinval(tup, desc, 4, &isnull);
    if (!isnull)
        out->layout = DatumGetJsonbPCopy(d);
    d = SPI_getbinval(tup, desc, 5, &isnull);
    if (!isnull)
        out->metrics = DatumGetJsonbPCopy(d);
    MemoryContextSwitchTo(old);
    return true;
}

/*
 * features_sql.c
 *    Feature encoding from SQL: it_encode_features and
 *    it_encode_features_json fit an encoder on the fly, to look at what a
 *    features source encodes to, and their option helpers.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "features_int.h"
#include "options.h"
#include "common.h"
#include "spi_read.h"

/* The encoder options of a helper call: only the encoder's own keys. */
static void
HelperOptions(Jsonb *options, ItEncoderOptions *o)
{
    ItOptions   all;

    if (options != NULL)
    {
        JsonbIterator *it;
        JsonbIteratorToken tok;
        JsonbValue  v;

        if (!JB_ROOT_IS_OBJECT(options))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("options must be a jsonb object"),
                     errhint("Write the options as an object, for example '{\"max_categories\": 16}'.")));
        it = JsonbIteratorInit(&options->root);
        while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        {
            if (tok != WJB_KEY)
                continue;
            if (!((v.val.string.len == 14 && memcmp(v.val.string.val, "max_categories", 14) == 0) ||
                  (v.val.string.len == 18 && memcmp(v.val.string.val, "min_category_count", 18) == 0)))
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("unknown option \"%s\"", pnstrdup(v.val.string.val, v.val.string.len)),
                         errhint("Valid options are: max_categories, min_category_count.")));
            tok = JsonbIteratorNext(&it, &v, true);
            if (v.type != jbvNumeric && v.type != jbvNull)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("encoder options must be integers"),
                         errhint("Write them as numbers, for example '{\"max_categories\": 16}'.")));
        }
    }
    /* the ranges and their messages are those of train()'s options */
    ItReadOptions(ItResolveOptions(options), NULL, &all);
    ItEncoderOptionsFrom(&all, o);
}

static char *
TextArg(FunctionCallInfo fcinfo, int n, const char *name)
{
    if (PG_ARGISNULL(n))
        ItNullArgument(name, psprintf("Give a value for %s.", name));
    return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* Fits an encoder on a source; needs SPI_connect. */
static ItEncoded *
FitOnSource(const char *source, const char *id_column, const ItEncoderOptions *opts)
{
    ItSource    src;
    ItEncoderBuilder *b;
    uint64      n;
    ItEncoded  *enc;

    ItSourceOpen(&src, source, "features", NULL, NULL, 0, NULL, NULL);
    b = ItEncoderBegin(src.tupdesc, id_column, "features", opts);
    while ((n = ItSourceFetch(&src, 10000)) > 0)
        ItEncoderAddRows(b, src.batch, n);
    enc = ItEncoderFinish(b);
    ItSourceClose(&src);
    return enc;
}

PG_FUNCTION_INFO_V1(interest_transfer_encode_features);
Datum
interest_transfer_encode_features(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    char       *source = TextArg(fcinfo, 0, "source");
    char       *id_column = TextArg(fcinfo, 1, "id_column");
    char       *apply_to = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
    ItEncoderOptions opts;
    ItEncoded  *enc;
    MemoryContext rowcxt;
    MemoryContext old;
    Datum       values[2];
    bool        nulls[2] = {false, false};

    HelperOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);
    InitMaterializedSRF(fcinfo, 0);
    rowcxt = AllocSetContextCreate(CurrentMemoryContext, "encoded row", ALLOCSET_SMALL_SIZES);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    enc = FitOnSource(source, id_column, &opts);

    if (apply_to == NULL)
    {
        for (int64 r = 0; r < enc->n; r++)
        {
            CHECK_FOR_INTERRUPTS();
            old = MemoryContextSwitchTo(rowcxt);
            values[0] = Int64GetDatum(enc->ids[r]);
            values[1] = ItFloatArrayDatum(enc->X + r * enc->dims, enc->dims);
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            MemoryContextSwitchTo(old);
            MemoryContextReset(rowcxt);
        }
    }
    else
    {
        ItEncoder  *e = ItEncoderFromSpec(enc->spec, CurrentMemoryContext);
        float      *vec = palloc(sizeof(float) * e->dims);
        ItSource    src;
        int         idcol;
        uint64      n;

        ItSourceOpen(&src, apply_to, "features to encode", NULL, NULL, 0, NULL, NULL);
        idcol = ItSourceColumn(&src, id_column, IT_COLUMN_ID, true);
        while ((n = ItSourceFetch(&src, 1000)) > 0)
        {
            Oid         idtype = ItSourceColumnType(&src, idcol);

            CHECK_FOR_INTERRUPTS();
            for (uint64 i = 0; i < n; i++)
            {
                HeapTuple   tup = src.batch->vals[i];
                bool        isnull;
                Datum       id = heap_getattr(tup, idcol + 1, src.tupdesc, &isnull);

                old = MemoryContextSwitchTo(rowcxt);
                nulls[0] = isnull;
                values[0] = isnull ? (Datum) 0 :
                    Int64GetDatum(ItDatumGetId(&src, idcol, idtype, id, src.rows - n + i + 1));
                ItEncodeTuple(e, tup, src.tupdesc, vec);
                values[1] = ItFloatArrayDatum(vec, e->dims);
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
                MemoryContextSwitchTo(old);
                MemoryContextReset(rowcxt);
            }
        }
        ItSourceClose(&src);
    }

    SPI_finish();
    return (Datum) 0;
}

PG_FUNCTION_INFO_V1(interest_transfer_encode_features_json);
Datum
interest_transfer_encode_features_json(PG_FUNCTION_ARGS)
{
    char       *source = TextArg(fcinfo, 0, "source");
    char       *id_column = TextArg(fcinfo, 1, "id_column");
    Jsonb      *features;
    MemoryContext fncxt = CurrentMemoryContext;
    ItEncoderOptions opts;
    ItEncoded  *enc;
    ItEncoder  *e;
    float      *vec;

    if (PG_ARGISNULL(2))
        ItNullArgument("features", "Pass '{}' for a row whose features are all missing.");
    features = PG_GETARG_JSONB_P(2);
    HelperOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    enc = FitOnSource(source, id_column, &opts);
    e = ItEncoderFromSpec(enc->spec, fncxt);
    SPI_finish();

    vec = palloc(sizeof(float) * e->dims);
    ItEncodeJsonb(e, features, vec);
    PG_RETURN_DATUM(ItFloatArrayDatum(vec, e->dims));
}

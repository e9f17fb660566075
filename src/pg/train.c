/*
 * train.c
 *    train(), train(model), deploy() and drop_model(): reading a user's
 *    interactions, fitting implicit ALS and writing a new model version.
 *
 * Training reads the interactions with the caller's privileges, read-only,
 * streaming the rows from the executor (interactions.c, through
 * ItSourceStream: no tuple is copied, several times faster than fetching
 * batches from a cursor), maps the ids to dense indexes, builds the user x
 * item matrix and runs the ALS kernels
 * in chunks of rows between CHECK_FOR_INTERRUPTS() calls.  Only when the fit is done does it write,
 * in the caller's transaction: a failed or rolled-back train leaves no
 * trace, and readers keep the deployed version until commit.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "interactions.h"
#include "interest_transfer.h"
#include "transfer.h"

PG_FUNCTION_INFO_V1(interest_transfer_train);
PG_FUNCTION_INFO_V1(interest_transfer_retrain);
PG_FUNCTION_INFO_V1(interest_transfer_deploy);
PG_FUNCTION_INFO_V1(interest_transfer_drop_model);

/* Longest model name accepted. */
#define IT_MAX_MODEL_NAME   128

/*
 * Work of one chunk of a half-step, per thread, in floating-point
 * operations: a few tens of milliseconds at most between interrupt checks.
 */
#define IT_CHUNK_FLOPS      4.0e7

/* Rows per INSERT of factor rows, and bounds on the arrays it passes. */
#define IT_WRITE_ROWS       10000
#define IT_WRITE_VALUES     (1 << 21)

/* Random initial factors are uniform in [-scale, scale], scale = this / sqrt(k). */
#define IT_INIT_SCALE       0.1

/* The interactions, as a matrix. */
typedef struct ItTrainData
{
    int64       nusers;
    int64       nitems;
    int64      *user_ids;       /* dense index -> user id, ascending */
    int64      *item_ids;       /* dense index -> item id, ascending */
    ItCsr       R;              /* users x items, summed weights */
    ItCsr       Rt;             /* items x users */
    int64       rows_read;      /* rows the source returned */
    double      read_seconds;   /* time spent running the source */
} ItTrainData;

/* What one call of train() reports. */
typedef struct ItTrainResult
{
    int         version;
    int64       users;
    int64       items;
    int64       interactions;
    double      seconds;
    double      loss;
} ItTrainResult;

static void
CheckModelName(const char *model)
{
    if (model[0] == '\0')
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("model name must not be empty"),
                 errhint("Name the model, for example train('shop', 'events').")));
    if (strlen(model) > IT_MAX_MODEL_NAME)
        ereport(ERROR,
                (errcode(ERRCODE_NAME_TOO_LONG),
                 errmsg("model name is longer than %d bytes", IT_MAX_MODEL_NAME),
                 errhint("Use a shorter name.")));
}

/* palloc of n elements of size bytes, checked, in memory that may exceed 1 GB. */
static void *
AllocArray(int64 n, Size size)
{
    if (n < 0 || (uint64) n > MaxAllocHugeSize / size)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("training data is too large: " INT64_FORMAT " elements of %zu bytes", n, size),
                 errhint("Train on a sample of the interactions, or with fewer factors.")));
    return MemoryContextAllocHuge(CurrentMemoryContext, Max(mul_size((Size) n, size), 1));
}

/* A one-dimensional array datum of n elements copied from data. */
static Datum
FlatArray(const void *data, int64 n, Oid elemtype, int elemsize)
{
    Size        nbytes;
    ArrayType  *a;

    if (n == 0)
        return PointerGetDatum(construct_empty_array(elemtype));
    nbytes = add_size(ARR_OVERHEAD_NONULLS(1), mul_size((Size) n, elemsize));
    if (!AllocSizeIsValid(nbytes))
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("array of " INT64_FORMAT " elements is too large", n)));
    a = (ArrayType *) palloc0(nbytes);
    SET_VARSIZE(a, nbytes);
    a->ndim = 1;
    a->dataoffset = 0;
    a->elemtype = elemtype;
    ARR_DIMS(a)[0] = (int) n;
    ARR_LBOUND(a)[0] = 1;
    memcpy(ARR_DATA_PTR(a), data, (Size) n * elemsize);
    return PointerGetDatum(a);
}

/*
 * user_features / item_features are stored with the model and used by the
 * feature transfer; check now that the caller can read them and that they
 * carry the id column.
 */
static void
CheckFeatureSource(const char *source, const char *what, const char *idcol, const char *model)
{
    ItSource    src;

    if (source == NULL)
        return;
    ItSourceOpen(&src, source, what, model, NULL, 0, NULL, NULL);
    (void) ItSourceColumn(&src, idcol, IT_COLUMN_ID, true);
    ItSourceClose(&src);
}

/*
 * Reads the interactions into d (interactions.c): ids mapped to dense
 * indexes, duplicates summed, rows of weight 0 left out.
 */
static void
ReadInteractions(ItTrainData *d, const char *source, const char *model)
{
    ItInteractionMatrix mx;

    ItReadInteractionMatrix(source, model, &mx);
    d->nusers = mx.nusers;
    d->nitems = mx.nitems;
    d->user_ids = mx.user_ids;
    d->item_ids = mx.item_ids;
    d->R = mx.R;
    d->Rt = mx.Rt;
    d->rows_read = mx.rows_read;
    d->read_seconds = mx.read_seconds;
}

/*
 * End of the chunk of rows starting at begin: about IT_CHUNK_FLOPS of work
 * per thread, cut at a multiple of IT_ALS_BLOCK.
 */
static int64
ChunkEnd(const ItCsr *R, int64 begin, int k, int cg_steps, int threads)
{
    double      budget = IT_CHUNK_FLOPS * threads;
    double      per_row = 2.0 * k * k * (cg_steps + 1);
    double      per_nz = 2.0 * k * (2 * cg_steps + 2);
    double      work = 0;
    int64       end = begin;

    while (end < R->nrows && work < budget)
    {
        int64       stop = Min(R->nrows, (end / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK);

        work += per_row * (stop - end) + per_nz * (R->indptr[stop] - R->indptr[end]);
        end = stop;
    }
    return end;
}

/* One half-step over every row of R, in chunks, interruptible between them. */
static void
HalfStep(const ItCsr *R, const float *Y, const float *YtY, float *X,
         const ItAlsParams *p, float *scratch)
{
    int64       begin = 0;

    while (begin < R->nrows)
    {
        int64       end = ChunkEnd(R, begin, p->factors, p->cg_steps, p->threads);

        CHECK_FOR_INTERRUPTS();
        it_als_half_step(R, Y, YtY, X, p, begin, end, scratch);
        begin = end;
    }
    CHECK_FOR_INTERRUPTS();
}

static void
AppendDouble(StringInfo buf, double v)
{
    char        tmp[DOUBLE_SHORTEST_DECIMAL_LEN];

    double_to_shortest_decimal_buf(v, tmp);
    appendStringInfoString(buf, tmp);
}

/*
 * Fits X and Y; returns the last loss, fills history (a JSON array).
 * quiet: no NOTICE per iteration (a validation fit).
 */
static double
Fit(ItTrainData *d, Jsonb *options, float *X, float *Y, StringInfo history, bool quiet)
{
    int         k = (int) ItOptionInt(options, "factors", 64);
    int         iterations = (int) ItOptionInt(options, "iterations", 15);
    uint64      seed = (uint64) ItOptionInt(options, "seed", 42);
    ItAlsParams p;
    float      *XtX;
    float      *YtY;
    float      *scratch;
    float       scale = (float) (IT_INIT_SCALE / sqrt((double) k));
    double      loss = 0;
    instr_time  start;

    p.factors = k;
    p.regularization = (float) ItOptionFloat(options, "regularization", 0.05);
    p.alpha = (float) ItOptionFloat(options, "alpha", 1.0);
    p.cg_steps = (int) ItOptionInt(options, "cg_steps", 3);
    p.threads = ItThreads((int) ItOptionInt(options, "threads", 0));

    XtX = AllocArray((int64) k * k, sizeof(float));
    YtY = AllocArray((int64) k * k, sizeof(float));
    scratch = AllocArray((int64) it_als_scratch_floats(k, p.threads), sizeof(float));

    /* two different streams of the same seed */
    it_random_init(X, d->nusers, k, seed, scale);
    it_random_init(Y, d->nitems, k, seed ^ UINT64CONST(0xD1B54A32D192ED03), scale);

    INSTR_TIME_SET_CURRENT(start);
    appendStringInfoChar(history, '[');
    it_gram(Y, d->nitems, k, YtY);
    for (int it = 1; it <= iterations; it++)
    {
        double      elapsed;

        CHECK_FOR_INTERRUPTS();
        HalfStep(&d->R, Y, YtY, X, &p, scratch);
        it_gram(X, d->nusers, k, XtX);
        CHECK_FOR_INTERRUPTS();
        HalfStep(&d->Rt, X, XtX, Y, &p, scratch);
        it_gram(Y, d->nitems, k, YtY);
        CHECK_FOR_INTERRUPTS();
        /* the same sum for any thread count (fixed partition of the rows) */
        loss = it_als_loss_gram_mt(&d->R, X, Y, XtX, YtY, k, p.regularization, p.alpha, p.threads);
        if (!isfinite(loss))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("training diverged at iteration %d (loss is not finite)", it),
                     errhint("Scale the weights down, or use a smaller alpha or a larger regularization.")));
        elapsed = ItElapsedSeconds(start);

        appendStringInfo(history, "%s{\"iteration\": %d, \"loss\": ", it > 1 ? ", " : "", it);
        AppendDouble(history, loss);
        appendStringInfo(history, ", \"seconds\": %.3f}", elapsed);

        if (!quiet)
            ereport(NOTICE,
                    (errmsg("iteration %d/%d: loss %.6g, %.1f s elapsed, about %.1f s left",
                            it, iterations, loss, elapsed,
                            elapsed / it * (iterations - it))));
    }
    appendStringInfoChar(history, ']');

    /* the loss is finite, but a factor could still not be with reg = 0 */
    for (int64 j = 0; j < d->nusers * k; j++)
        if (!isfinite(X[j]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("training diverged (a user factor is not finite)"),
                     errhint("Use a larger regularization, or scale the weights down.")));
    for (int64 j = 0; j < d->nitems * k; j++)
        if (!isfinite(Y[j]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("training diverged (an item factor is not finite)"),
                     errhint("Use a larger regularization, or scale the weights down.")));
    return loss;
}

static void
ExecPlan(SPIPlanPtr plan, Datum *values, const char *nulls, int expected)
{
    int         ret = SPI_execute_plan(plan, values, nulls, false, 0);

    if (ret < 0)
        elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(ret));
    if (expected >= 0 && SPI_processed != (uint64) expected)
        elog(ERROR, "expected %d rows written, not " UINT64_FORMAT, expected, SPI_processed);
}

/*
 * Writes the factor rows of one side (users or items): many rows per
 * execution of one prepared INSERT, each row's vector a slice of one flat
 * real[].  For users, also the sorted ids of their items (seen); for
 * items, the number of users (popularity).
 */
static void
WriteFactors(const char *model, int version, bool users, const int64 *ids, int64 n,
             const float *F, int k, const ItCsr *M, const int64 *other_ids)
{
    Oid         argtypes[7] = {TEXTOID, INT4OID, INT8ARRAYOID, FLOAT4ARRAYOID, INT4OID,
    INT8ARRAYOID, INT4ARRAYOID};
    Datum       values[7];
    SPIPlanPtr  plan;
    char       *sql;
    int64      *buf = NULL;
    int32      *offsets = NULL;
    int64       bufcap = 0;
    int64       begin = 0;

    if (users)
        sql = psprintf("INSERT INTO %s (model, version, user_id, factors, seen) "
                       "SELECT $1, $2, $3[i], $4[(i - 1) * $5 + 1 : i * $5], $6[$7[i] + 1 : $7[i + 1]] "
                       "FROM generate_series(1, cardinality($3)) AS i",
                       ItTable("it_user_factors"));
    else
        sql = psprintf("INSERT INTO %s (model, version, item_id, factors, popularity) "
                       "SELECT $1, $2, $3[i], $4[(i - 1) * $5 + 1 : i * $5], $6[i] "
                       "FROM generate_series(1, cardinality($3)) AS i",
                       ItTable("it_item_factors"));
    plan = SPI_prepare(sql, 7, argtypes);
    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[4] = Int32GetDatum(k);
    values[6] = PointerGetDatum(construct_empty_array(INT4OID));

    offsets = palloc(sizeof(int32) * (IT_WRITE_ROWS + 1));
    while (begin < n)
    {
        int64       end = begin;
        int64       nseen = 0;
        int64       maxrows = Min(IT_WRITE_ROWS, Max(1, IT_WRITE_VALUES / k));

        CHECK_FOR_INTERRUPTS();
        /* rows of this batch: bounded in count, factor values and seen ids */
        while (end < n && end - begin < maxrows)
        {
            int64       len = M->indptr[end + 1] - M->indptr[end];

            if (users && end > begin && nseen + len > IT_WRITE_VALUES)
                break;
            nseen += users ? len : 0;
            end++;
        }

        if (users)
        {
            if (nseen > bufcap)
            {
                if (buf)
                    pfree(buf);
                bufcap = Max(nseen, 1024);
                buf = AllocArray(bufcap, sizeof(int64));
            }
            nseen = 0;
            for (int64 u = begin; u < end; u++)
            {
                offsets[u - begin] = (int32) nseen;
                for (int64 j = M->indptr[u]; j < M->indptr[u + 1]; j++)
                    buf[nseen++] = other_ids[M->indices[j]];
            }
            offsets[end - begin] = (int32) nseen;
            values[5] = FlatArray(buf, nseen, INT8OID, sizeof(int64));
            values[6] = FlatArray(offsets, end - begin + 1, INT4OID, sizeof(int32));
        }
        else
        {
            if (end - begin > bufcap)
            {
                if (buf)
                    pfree(buf);
                bufcap = end - begin;
                buf = AllocArray(bufcap, sizeof(int64));
            }
            for (int64 i = begin; i < end; i++)
                buf[i - begin] = M->indptr[i + 1] - M->indptr[i];
            values[5] = FlatArray(buf, end - begin, INT8OID, sizeof(int64));
        }
        values[2] = FlatArray(ids + begin, end - begin, INT8OID, sizeof(int64));
        values[3] = FlatArray(F + begin * k, (end - begin) * k, FLOAT4OID, sizeof(float));

        ExecPlan(plan, values, NULL, (int) (end - begin));

        pfree(DatumGetPointer(values[2]));
        pfree(DatumGetPointer(values[3]));
        pfree(DatumGetPointer(values[5]));
        if (users)
            pfree(DatumGetPointer(values[6]));
        begin = end;
    }
    SPI_freeplan(plan);
}

/* Makes version the deployed one of model.  Between ItBeginWrite and ItEndWrite. */
static void
DeployVersion(const char *model, int version)
{
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};
    int         ret;

    ret = SPI_execute_with_args(psprintf("UPDATE %s SET deployed = false "
                                         "WHERE model = $1 AND deployed AND version <> $2",
                                         ItTable("it_model")),
                                2, argtypes, values, NULL, false, 0);
    if (ret != SPI_OK_UPDATE)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    ret = SPI_execute_with_args(psprintf("UPDATE %s SET deployed = true, deployed_at = clock_timestamp() "
                                         "WHERE model = $1 AND version = $2",
                                         ItTable("it_model")),
                                2, argtypes, values, NULL, false, 0);
    if (ret != SPI_OK_UPDATE)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed != 1)
        elog(ERROR, "version %d of model \"%s\" vanished", version, model);
}

/* ------------------------------------------------------------------------
 * The deploy option: always, never, if_better
 * ------------------------------------------------------------------------ */

/* A validation fit: the split's training part, other options. */
#define IT_VALIDATION_USERS     2000
#define IT_VALIDATION_MIN_ROWS  3
#define IT_VALIDATION_FRACTION  0.2
#define IT_VALIDATION_K         10
/* fewer countable users than this: no comparison */
#define IT_VALIDATION_MIN_USERS 20

typedef struct ItDeployDecision
{
    bool        deploy;
    StringInfoData json;        /* it_model.deploy_decision */
} ItDeployDecision;

/* Precision@10 on the held-out part of split after fitting options on its training part. */
static double
ValidationPrecision(ItTrainData *split, Jsonb *options, const int32 *held_users,
                    const int64 *held_indptr, const int32 *held_items, int64 nheld,
                    int64 *counted)
{
    int         k = (int) ItOptionInt(options, "factors", 64);
    float      *X = AllocArray(split->nusers * k, sizeof(float));
    float      *Y = AllocArray(split->nitems * k, sizeof(float));
    float      *scores = AllocArray(split->nitems, sizeof(float));
    int32      *top_idx = palloc(sizeof(int32) * IT_VALIDATION_K);
    float      *top_score = palloc(sizeof(float) * IT_VALIDATION_K);
    StringInfoData history;
    double      p;

    initStringInfo(&history);
    (void) Fit(split, options, X, Y, &history, true);
    CHECK_FOR_INTERRUPTS();
    p = it_holdout_precision(X, Y, split->nitems, k, &split->R, held_users, held_indptr,
                             held_items, nheld, IT_VALIDATION_K, scores, top_idx, top_score,
                             counted);
    pfree(X);
    pfree(Y);
    pfree(scores);
    pfree(history.data);
    return p;
}

/*
 * if_better: fit the new options and the deployed version's options on
 * the same training part of a validation slice of today's interactions
 * (about IT_VALIDATION_USERS users, a fifth of each one's interactions
 * held out, chosen by the seed), and deploy when the new options' held-out
 * precision@10 is not lower.  Too few users to measure: keep the deployed
 * version.
 */
static void
CompareWithDeployed(const char *model, ItTrainData *d, Jsonb *options, int dep_version,
                    Jsonb *dep_options, ItDeployDecision *out)
{
    ItTrainData split = *d;
    int64       max_users = Min((int64) IT_VALIDATION_USERS, d->nusers);
    int32      *held_users = AllocArray(Max(max_users, 1), sizeof(int32));
    int64      *held_indptr = AllocArray(max_users + 1, sizeof(int64));
    int32      *held_items = AllocArray(Max(d->R.nnz, 1), sizeof(int32));
    int64       nheld;
    int64       counted_new;
    int64       counted_old;
    double      p_new;
    double      p_old;

    split.R.indptr = AllocArray(d->nusers + 1, sizeof(int64));
    split.R.indices = AllocArray(Max(d->R.nnz, 1), sizeof(int32));
    split.R.data = AllocArray(Max(d->R.nnz, 1), sizeof(float));
    nheld = it_holdout_split(&d->R, (uint64) ItOptionInt(options, "seed", 42), max_users,
                             IT_VALIDATION_MIN_ROWS, IT_VALIDATION_FRACTION, &split.R,
                             held_users, held_indptr, held_items);
    split.Rt.indptr = AllocArray(d->nitems + 1, sizeof(int64));
    split.Rt.indices = AllocArray(Max(split.R.nnz, 1), sizeof(int32));
    split.Rt.data = AllocArray(Max(split.R.nnz, 1), sizeof(float));
    it_csr_transpose(&split.R, &split.Rt);

    p_new = ValidationPrecision(&split, options, held_users, held_indptr, held_items, nheld, &counted_new);
    p_old = ValidationPrecision(&split, dep_options, held_users, held_indptr, held_items, nheld, &counted_old);

    appendStringInfo(&out->json, ", \"compared_with\": %d, \"validation_users\": " INT64_FORMAT
                     ", \"precision_at_10\": %.6f, \"deployed_precision_at_10\": %.6f",
                     dep_version, counted_new, p_new, p_old);
    if (counted_new < IT_VALIDATION_MIN_USERS)
    {
        out->deploy = false;
        appendStringInfoString(&out->json, ", \"reason\": \"too few validation users to compare\"");
        ereport(NOTICE,
                (errmsg("deploy if_better: only " INT64_FORMAT " validation users, too few to compare; "
                        "version %d of model \"%s\" stays deployed",
                        counted_new, dep_version, model),
                 errhint("Deploy the new version by hand with deploy(model, version) if you want it.")));
    }
    else if (p_new >= p_old)
    {
        out->deploy = true;
        appendStringInfoString(&out->json, ", \"reason\": \"not worse than the deployed version\"");
        ereport(NOTICE,
                (errmsg("deploy if_better: the new version wins, precision@10 %.4f against %.4f "
                        "for the options of the deployed version %d, on " INT64_FORMAT " validation users; deploying it",
                        p_new, p_old, dep_version, counted_new)));
    }
    else
    {
        out->deploy = false;
        appendStringInfoString(&out->json, ", \"reason\": \"worse than the deployed version\"");
        ereport(NOTICE,
                (errmsg("deploy if_better: the deployed version %d wins, precision@10 %.4f against %.4f "
                        "for the new version, on " INT64_FORMAT " validation users; it stays deployed",
                        dep_version, p_old, p_new, counted_new),
                 errhint("The new version is stored; deploy it by hand with deploy(model, version) if you want it.")));
    }
    pfree(split.R.indptr);
    pfree(split.R.indices);
    pfree(split.R.data);
    pfree(split.Rt.indptr);
    pfree(split.Rt.indices);
    pfree(split.Rt.data);
    pfree(held_users);
    pfree(held_indptr);
    pfree(held_items);
}

/*
 * The deployed version's number and options (palloc'd); false when none
 * is deployed.  As the tables' owner.
 */
static bool
DeployedOptions(const char *model, int *version, Jsonb **options)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};
    ItRunAs     r;
    bool        isnull;
    bool        found;
    int         ret;

    ItRunAsTablesOwner(&r);
    /* after the model's lock: what the writers before committed */
    ret = ItExecuteLatest(psprintf("SELECT version, options FROM %s "
                                   "WHERE model OPERATOR(pg_catalog.=) $1 AND deployed",
                                   ItTable("it_model")),
                          1, argtypes, values, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    found = SPI_processed == 1;
    if (found)
    {
        *version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        *options = DatumGetJsonbPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
    }
    ItRunAsEnd(&r);
    return found;
}

static void
DecideDeploy(const char *model, ItTrainData *d, Jsonb *options, ItDeployDecision *out)
{
    char       *rule = ItOptionText(options, "deploy", "always");
    int         dep_version;
    Jsonb      *dep_options;

    /* the rule is one of the option's three words: no JSON escaping needed */
    initStringInfo(&out->json);
    appendStringInfo(&out->json, "{\"rule\": \"%s\"", rule);
    if (strcmp(rule, "never") == 0)
        out->deploy = false;
    else if (strcmp(rule, "if_better") == 0 && DeployedOptions(model, &dep_version, &dep_options))
        CompareWithDeployed(model, d, options, dep_version, dep_options, out);
    else
    {
        out->deploy = true;
        if (strcmp(rule, "if_better") == 0)
            appendStringInfoString(&out->json, ", \"reason\": \"no version was deployed\"");
    }
    appendStringInfo(&out->json, ", \"deployed\": %s}", out->deploy ? "true" : "false");
}

/* ------------------------------------------------------------------------
 * Writing a version
 * ------------------------------------------------------------------------ */

/* A model's definition: what train() reads, and how. */
typedef struct ItDefinition
{
    const char *interactions;
    const char *user_features;  /* NULL when none */
    const char *item_features;  /* NULL when none */
    Jsonb      *options;        /* as given (NULL: defaults) or stored */
    bool        stored;         /* train(model): read with the owner's rights */
    Oid         owner;          /* stored: the model's owner */
    char       *search_path;    /* the sources are read with (stored: NULL before 0.2) */
} ItDefinition;

/*
 * Writes a trained model as a new version, deployed when the decision
 * says so.  Runs as the tables' owner (ItBeginWrite), after every read of
 * the user's data.
 */
static int
WriteModel(const char *model, const ItDefinition *def, Jsonb *options, ItTrainData *d,
           const float *X, const float *Y, int k, double loss,
           const char *history, instr_time start, double *seconds,
           ItTransferTrain *transfer, const ItDeployDecision *decision)
{
    ItWriteState st;
    Oid         owner;
    int         version;
    int         ret;
    bool        isnull;
    double     *sum;
    float      *mean;
    Oid         argtypes[16] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
        INT4OID, INT8OID, INT8OID, INT8OID, FLOAT8OID, FLOAT8OID, JSONBOID, FLOAT4ARRAYOID,
    TEXTOID, JSONBOID};
    Datum       values[16];
    char        nulls[16];
    Oid         acl_types[2] = {TEXTOID, REGROLEOID};
    Datum       acl_values[2];
    Oid         upd_types[3] = {TEXTOID, INT4OID, FLOAT8OID};
    Datum       upd_values[3];

    /* population prior: the mean user vector */
    sum = palloc0(sizeof(double) * k);
    mean = palloc(sizeof(float) * k);
    for (int64 u = 0; u < d->nusers; u++)
        for (int j = 0; j < k; j++)
            sum[j] += X[u * k + j];
    for (int j = 0; j < k; j++)
        mean[j] = (float) (sum[j] / d->nusers);

    owner = ItBeginWrite(model, false, def->stored ? IT_PRIV_TRAIN : IT_PRIV_OWN, "train", &st);

    /* a new model: its owner is the role that trains it first */
    acl_values[0] = CStringGetTextDatum(model);
    acl_values[1] = ObjectIdGetDatum(owner);
    ret = SPI_execute_with_args(psprintf("INSERT INTO %s (model, owner) VALUES ($1, $2) "
                                         "ON CONFLICT (model) DO NOTHING",
                                         ItTable("it_model_acl")),
                                2, acl_types, acl_values, NULL, false, 0);
    if (ret != SPI_OK_INSERT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed > 0)
        ItSyncRolePins(&owner, 1);

    values[0] = CStringGetTextDatum(model);
    ret = SPI_execute_with_args(psprintf("SELECT coalesce(max(version), 0) + 1 FROM %s WHERE model = $1",
                                         ItTable("it_model")),
                                1, argtypes, values, NULL, false, 1);
    if (ret != SPI_OK_SELECT || SPI_processed != 1)
        elog(ERROR, "could not find the next version of model \"%s\"", model);
    version = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

    memset(nulls, ' ', sizeof(nulls));
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(def->interactions);
    if (def->user_features)
        values[3] = CStringGetTextDatum(def->user_features);
    else
    {
        values[3] = (Datum) 0;
        nulls[3] = 'n';
    }
    if (def->item_features)
        values[4] = CStringGetTextDatum(def->item_features);
    else
    {
        values[4] = (Datum) 0;
        nulls[4] = 'n';
    }
    values[5] = JsonbPGetDatum(options);
    values[6] = Int32GetDatum(k);
    values[7] = Int64GetDatum(d->nusers);
    values[8] = Int64GetDatum(d->nitems);
    values[9] = Int64GetDatum(d->R.nnz);
    values[10] = Float8GetDatum(ItElapsedSeconds(start));
    values[11] = Float8GetDatum(loss);
    values[12] = DirectFunctionCall1(jsonb_in, CStringGetDatum(history));
    values[13] = ItFloatArrayDatum(mean, k);
    if (def->search_path)
        values[14] = CStringGetTextDatum(def->search_path);
    else
    {
        values[14] = (Datum) 0;
        nulls[14] = 'n';
    }
    values[15] = DirectFunctionCall1(jsonb_in, CStringGetDatum(decision->json.data));

    ret = SPI_execute_with_args(psprintf("INSERT INTO %s (model, version, algorithm, "
                                         "interactions_source, user_features_source, item_features_source, "
                                         "options, factors, users, items, interactions, seconds, loss, "
                                         "history, user_mean, search_path, deploy_decision) "
                                         "VALUES ($1, $2, 'als', $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                                         "$12, $13, $14, $15, $16)",
                                         ItTable("it_model")),
                                16, argtypes, values, nulls, false, 0);
    if (ret != SPI_OK_INSERT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));

    WriteFactors(model, version, true, d->user_ids, d->nusers, X, k, &d->R, d->item_ids);
    WriteFactors(model, version, false, d->item_ids, d->nitems, Y, k, &d->Rt, NULL);
    /* features -> interest models and new items (transfer.c) */
    ItTransferWrite(transfer, model, version);

    /* the whole call, writing included */
    upd_values[0] = values[0];
    upd_values[1] = Int32GetDatum(version);
    *seconds = ItElapsedSeconds(start);
    upd_values[2] = Float8GetDatum(*seconds);
    ret = SPI_execute_with_args(psprintf("UPDATE %s SET seconds = $3 WHERE model = $1 AND version = $2",
                                         ItTable("it_model")),
                                3, upd_types, upd_values, NULL, false, 0);
    if (ret != SPI_OK_UPDATE)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));

    if (decision->deploy)
        DeployVersion(model, version);
    ItEndWrite(&st);
    return version;
}

/*
 * The whole of train(): check, read, fit, write.  Opens and closes its own
 * SPI connection; everything it allocates is freed before it returns.
 */
static void
TrainModel(const char *model, const ItDefinition *def, ItTrainResult *res)
{
    instr_time  start;
    MemoryContext ctx;
    MemoryContext oldctx;
    ItWriteState st;
    ItRunAs     as_owner;
    Jsonb      *options;
    ItTrainData d;
    float      *X;
    float      *Y;
    int         k;
    double      loss;
    double      t_read;
    double      t_fit;
    StringInfoData history;
    ItTransferTrain *transfer;
    ItTrainedModel trained;
    ItDeployDecision decision;

    INSTR_TIME_SET_CURRENT(start);
    CheckModelName(model);
    ItRefuseReadOnly("train", model);
    options = ItResolveOptions(def->options);
    k = (int) ItOptionInt(options, "factors", 64);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ctx = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer train",
                                ALLOCSET_DEFAULT_SIZES);
    oldctx = MemoryContextSwitchTo(ctx);

    /*
     * Fail before the work when the caller may not change this model: a
     * new definition needs its owner, a retrain with the stored one the
     * train privilege.  This also queues behind another train of it.
     */
    (void) ItBeginWrite(model, false, def->stored ? IT_PRIV_TRAIN : IT_PRIV_OWN, "train", &st);
    ItEndWrite(&st);

    /* a stored definition is read as a view is: with its owner's rights */
    if (def->stored)
        ItRunAsModelOwner(&as_owner, model, def->owner, def->search_path);
    CheckFeatureSource(def->user_features, "user_features", "user_id", model);
    CheckFeatureSource(def->item_features, "item_features", "item_id", model);
    /* features read and encoded before anything is written (transfer.c) */
    transfer = ItTransferRead(model, def->user_features, def->item_features, options);

    memset(&d, 0, sizeof(d));
    ReadInteractions(&d, def->interactions, model);
    if (def->stored)
        ItRunAsEnd(&as_owner);
    t_read = ItElapsedSeconds(start);

    X = AllocArray(d.nusers * k, sizeof(float));
    Y = AllocArray(d.nitems * k, sizeof(float));
    initStringInfo(&history);
    loss = Fit(&d, options, X, Y, &history, false);

    /* features -> interest models on the trained factors (transfer.c) */
    memset(&trained, 0, sizeof(trained));
    trained.k = k;
    trained.alpha = (float) ItOptionFloat(options, "alpha", 1.0);
    trained.nusers = d.nusers;
    trained.nitems = d.nitems;
    trained.user_ids = d.user_ids;
    trained.item_ids = d.item_ids;
    trained.R = &d.R;
    trained.Rt = &d.Rt;
    trained.X = X;
    trained.Y = Y;
    ItTransferFit(transfer, &trained);
    DecideDeploy(model, &d, options, &decision);
    t_fit = ItElapsedSeconds(start);

    res->version = WriteModel(model, def, options, &d, X, Y, k, loss, history.data, start,
                              &res->seconds, transfer, &decision);
    ItTransferEnd(transfer);
    res->users = d.nusers;
    res->items = d.nitems;
    res->interactions = d.R.nnz;
    res->loss = loss;

    ereport(DEBUG1,
            (errmsg("model \"%s\" version %d: read " INT64_FORMAT " rows in %.3f s, built the matrix in %.3f s, "
                    "fitted in %.3f s, wrote " INT64_FORMAT " user and " INT64_FORMAT " item rows in %.3f s",
                    model, res->version, d.rows_read, d.read_seconds, t_read - d.read_seconds,
                    t_fit - t_read, d.nusers, d.nitems, res->seconds - t_fit)));

    MemoryContextSwitchTo(oldctx);
    MemoryContextDelete(ctx);
    SPI_finish();
}

static void
ReturnResult(FunctionCallInfo fcinfo, const char *model, const ItTrainResult *res)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    Datum       values[7];
    bool        nulls[7] = {false};

    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(res->version);
    values[2] = Int64GetDatum(res->users);
    values[3] = Int64GetDatum(res->items);
    values[4] = Int64GetDatum(res->interactions);
    values[5] = Float8GetDatum(res->seconds);
    values[6] = Float8GetDatum(res->loss);
    tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * train(model, interactions, user_features, item_features, options)
 */
Datum
interest_transfer_train(PG_FUNCTION_ARGS)
{
    char       *model;
    ItDefinition def;
    ItTrainResult res;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model, for example train('shop', 'events').");
    if (PG_ARGISNULL(1))
        ItNullArgument("interactions",
                       "Give a table or view name or a query returning user_id and item_id, "
                       "or call train(model) to retrain with the stored definition.");
    memset(&def, 0, sizeof(def));
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));
    def.interactions = text_to_cstring(PG_GETARG_TEXT_PP(1));
    if (!PG_ARGISNULL(2))
        def.user_features = text_to_cstring(PG_GETARG_TEXT_PP(2));
    if (!PG_ARGISNULL(3))
        def.item_features = text_to_cstring(PG_GETARG_TEXT_PP(3));
    if (!PG_ARGISNULL(4))
        def.options = PG_GETARG_JSONB_P(4);
    /* read with the caller's rights now; stored with the path they resolve in */
    def.stored = false;
    def.search_path = ItDefinitionSearchPath();

    ItSetSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);
    TrainModel(model, &def, &res);
    ReturnResult(fcinfo, model, &res);
    return (Datum) 0;
}

/*
 * train(model): the sources and options of the deployed version (the
 * latest when none is deployed), read with the rights of the model's owner.
 */
Datum
interest_transfer_retrain(PG_FUNCTION_ARGS)
{
    MemoryContext callerctx = CurrentMemoryContext;
    char       *model;
    ItDefinition def;
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1];
    HeapTuple   tup;
    TupleDesc   desc;
    bool        isnull;
    Datum       d;
    int         ret;
    ItRunAs     r;
    ItTrainResult res;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model to retrain, for example train('shop').");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));

    ItSetSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    /*
     * Queue behind other writers first (after checking the privilege), then
     * read the definition they left: the deployed version and the owner as
     * they are now, not as this statement's snapshot saw them.
     */
    {
        ItWriteState st;

        (void) ItBeginWrite(model, true, IT_PRIV_TRAIN, "train", &st);
        ItEndWrite(&st);
    }
    values[0] = CStringGetTextDatum(model);
    ItRunAsTablesOwner(&r);
    ret = ItExecuteLatest(psprintf("SELECT m.interactions_source, m.user_features_source, "
                                   "m.item_features_source, m.options, m.search_path, a.owner "
                                   "FROM %s m JOIN %s a ON a.model OPERATOR(pg_catalog.=) m.model "
                                   "WHERE m.model OPERATOR(pg_catalog.=) $1 "
                                   "ORDER BY m.deployed DESC, m.version DESC LIMIT 1",
                                   ItTable("it_model"), ItTable("it_model_acl")),
                          1, argtypes, values, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("model \"%s\" does not exist", model),
                 errhint("Train it first with train('%s', interactions), or list the models with SELECT * FROM models.",
                         model)));
    memset(&def, 0, sizeof(def));
    tup = SPI_tuptable->vals[0];
    desc = SPI_tuptable->tupdesc;
    d = SPI_getbinval(tup, desc, 1, &isnull);
    def.interactions = MemoryContextStrdup(callerctx, TextDatumGetCString(d));
    d = SPI_getbinval(tup, desc, 2, &isnull);
    if (!isnull)
        def.user_features = MemoryContextStrdup(callerctx, TextDatumGetCString(d));
    d = SPI_getbinval(tup, desc, 3, &isnull);
    if (!isnull)
        def.item_features = MemoryContextStrdup(callerctx, TextDatumGetCString(d));
    d = SPI_getbinval(tup, desc, 4, &isnull);
    {
        MemoryContext old = MemoryContextSwitchTo(callerctx);

        def.options = DatumGetJsonbPCopy(d);
        MemoryContextSwitchTo(old);
    }
    d = SPI_getbinval(tup, desc, 5, &isnull);
    if (!isnull)
        def.search_path = MemoryContextStrdup(callerctx, TextDatumGetCString(d));
    def.owner = DatumGetObjectId(SPI_getbinval(tup, desc, 6, &isnull));
    def.stored = true;
    ItRunAsEnd(&r);
    SPI_finish();

    TrainModel(model, &def, &res);
    ReturnResult(fcinfo, model, &res);
    return (Datum) 0;
}

/*
 * deploy(model, version)
 */
Datum
interest_transfer_deploy(PG_FUNCTION_ARGS)
{
    char       *model;
    int         version;
    ItWriteState st;
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2];
    int         ret;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model, for example deploy('shop', 2).");
    if (PG_ARGISNULL(1))
        ItNullArgument("version", "Give the version to deploy; SELECT version FROM models WHERE model = '...' lists them.");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));
    version = PG_GETARG_INT32(1);

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    (void) ItBeginWrite(model, true, IT_PRIV_TRAIN, "deploy", &st);

    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    ret = SPI_execute_with_args(psprintf("SELECT 1 FROM %s WHERE model = $1 AND version = $2",
                                         ItTable("it_model")),
                                2, argtypes, values, NULL, false, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("version %d of model \"%s\" does not exist", version, model),
                 errhint("List its versions with SELECT version, trained_at FROM models WHERE model = '%s'.",
                         model)));
    DeployVersion(model, version);
    ItEndWrite(&st);
    SPI_finish();
    PG_RETURN_VOID();
}

/*
 * drop_model(model): deletes every version and the model's grants; returns
 * how many versions.
 */
Datum
interest_transfer_drop_model(PG_FUNCTION_ARGS)
{
    char       *model;
    ItWriteState st;
    ItModelAcl  acl;
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1];
    Oid        *roles;
    int         nroles = 0;
    int         ret;
    int64       deleted = 0;
    static const char *const tables[] = {"it_user_factors", "it_item_factors", "it_model", "it_model_acl"};

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model to drop, for example drop_model('shop').");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    (void) ItBeginWrite(model, true, IT_PRIV_OWN, "drop", &st);
    if (!ItReadModelAcl(model, true, &acl))
        elog(ERROR, "model \"%s\" vanished", model);
    values[0] = CStringGetTextDatum(model);
    /* the factor rows explicitly, so as not to depend on cascades */
    for (int i = 0; i < lengthof(tables); i++)
    {
        ret = SPI_execute_with_args(psprintf("DELETE FROM %s WHERE model = $1", ItTable(tables[i])),
                                    1, argtypes, values, NULL, false, 0);
        if (ret != SPI_OK_DELETE)
            elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
        if (strcmp(tables[i], "it_model") == 0)
            deleted = (int64) SPI_processed;
    }
    /* roles that no longer own or use a model may be dropped */
    roles = palloc(sizeof(Oid) * (1 + acl.nusers + acl.ntrainers));
    roles[nroles++] = acl.owner;
    for (int i = 0; i < acl.nusers; i++)
        roles[nroles++] = acl.users[i];
    for (int i = 0; i < acl.ntrainers; i++)
        roles[nroles++] = acl.trainers[i];
    ItSyncRolePins(roles, nroles);
    ItEndWrite(&st);
    SPI_finish();
    PG_RETURN_INT64(deleted);
}

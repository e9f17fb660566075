/*
 * providers.c
 *    Interest for users the model was not trained on: fold-in of their own
 *    rows with a prior, the features prior, and recommend_for().
 *
 * A model version may carry, besides its factors, a features -> interest
 * model per side (it_encoder: the encoder spec, the MLP's layout and
 * parameters, and whether validation kept the features path).  They are
 * loaded on first use into the cached model (ItGetTransfer) with the
 * options that tune fold-in, and the plans that read one user's rows of
 * the model's stored sources are prepared once per model version.
 *
 * Which interest serves a user is decided by ItUserInterest (score.c):
 *   1. 'model'     the version has a stored row for the user (its stored
 *                  source: 'model', or 'fold_in' after refresh());
 *   2. 'fold_in'   the user has rows in the interactions source (option
 *                  fold_in): x = argmin sum c_i (1 - x.y_i)^2
 *                  + lambda0 |x - prior|^2 over their items known to
 *                  the model, prior = the features prior when available,
 *                  else the population mean;
 *   3. 'features'  no usable rows, but a row in the user_features source
 *                  and a features model kept by validation: x = f(row);
 *   4. 'popular'   nothing known.
 * The sources are read with the caller's privileges, like any query they
 * write; when a stored source can no longer be read, the error says so
 * (never a silent fallback to popularity).
 */
#include "postgres.h"

#include "catalog/pg_proc.h"
#include "optimizer/clauses.h"
#include "utils/plancache.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "interactions.h"
#include "providers.h"

PG_FUNCTION_INFO_V1(interest_transfer_recommend_for);

/*
 * Saved plans belong to the model version they were prepared for.  When a
 * model is freed (possibly while a transaction aborts) its plans are only
 * queued here, and freed at the next ItGetTransfer.
 */
typedef struct ItOrphanPlan
{
    struct ItOrphanPlan *next;
    SPIPlanPtr  plan;
} ItOrphanPlan;

static ItOrphanPlan *ItOrphans = NULL;

static void
FreeOrphanPlans(void)
{
    while (ItOrphans != NULL)
    {
        ItOrphanPlan *o = ItOrphans;

        ItOrphans = o->next;
        if (o->plan)
            SPI_freeplan(o->plan);
        pfree(o);
    }
}

static void
OrphanPlan(ItIdPlan *p)
{
    if (p->plan == NULL)
        return;
    p->orphan->plan = p->plan;
    p->orphan->next = ItOrphans;
    ItOrphans = p->orphan;
    p->plan = NULL;
    p->orphan = NULL;
}

/* Reset callback of a transfer state's context: queue its plans. */
static void
ReleaseTransferPlans(void *arg)
{
    ItTransfer *t = (ItTransfer *) arg;

    OrphanPlan(&t->interactions);
    OrphanPlan(&t->user_features);
}

/* ------------------------------------------------------------------------
 * Error context of reading a stored source while serving
 * ------------------------------------------------------------------------ */

/* Errors that are not about the source (cancel, out of memory, ...). */
static bool
IsSourceProblem(int code)
{
    int         cat = ERRCODE_TO_CATEGORY(code);

    return !(cat == ERRCODE_TO_CATEGORY(ERRCODE_SUCCESSFUL_COMPLETION) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_WARNING) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_NO_DATA) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR));
}

static void
ServeErrorCallback(void *arg)
{
    ItServeContext *sc = (ItServeContext *) arg;

    if (sc->has_id)
        errcontext("while reading %s of %s " INT64_FORMAT " for model \"%s\"",
                   sc->what, strcmp(sc->what, "item_features") == 0 ? "item" : "user",
                   sc->id, sc->model);
    else
        errcontext("while reading %s for model \"%s\"", sc->what, sc->model);
    if (sc->running && IsSourceProblem(geterrcode()))
        errhint("Model \"%s\" serves users and items it was not trained on from their rows in its "
                "stored %s source, read with the privileges of the model's owner: make that source "
                "readable again, or train a new version with sources that work.",
                sc->model, sc->what);
}

void
ItServeContextPush(ItServeContext *sc, ItModel *m, const char *what,
                   bool has_id, int64 id)
{
    /* a stored source runs as a view would: with its owner's rights */
    ItRunAsModelOwner(&sc->runas, m->name, m->owner, m->search_path);
    sc->model = m->name;
    sc->what = what;
    sc->has_id = has_id;
    sc->id = id;
    sc->running = false;
    sc->cb.callback = ServeErrorCallback;
    sc->cb.arg = sc;
    sc->cb.previous = error_context_stack;
    error_context_stack = &sc->cb;
}

void
ItServeContextPop(ItServeContext *sc)
{
    error_context_stack = sc->cb.previous;
    ItRunAsEnd(&sc->runas);
}

/* ------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------ */

static void
StoredCorrupt(const ItModel *m, const char *side, const char *detail)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored %s features model of model \"%s\" version %d is invalid",
                    side, m->name, m->version),
             errdetail("%s", detail),
             errhint("Train a new version with train('%s').", m->name)));
}

static JsonbValue *
JsonKey(Jsonb *j, const char *key)
{
    if (j == NULL || !JB_ROOT_IS_OBJECT(j))
        return NULL;
    return getKeyJsonValueFromContainer(&j->root, key, strlen(key), NULL);
}

static double
JsonNumberValue(JsonbValue *v)
{
    return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                              NumericGetDatum(v->val.numeric)));
}

/* An integer in [min, max] from a layout object, or ERROR. */
static int
LayoutInt(const ItModel *m, const char *side, JsonbValue *v, int min, int max, const char *what)
{
    double      d;

    if (v == NULL || v->type != jbvNumeric)
        StoredCorrupt(m, side, psprintf("Its layout has no number \"%s\".", what));
    d = JsonNumberValue(v);
    if (!(d >= min && d <= max) || d != floor(d))
        StoredCorrupt(m, side, psprintf("Its layout's \"%s\" is %g, not an integer from %d to %d.",
                                        what, d, min, max));
    return (int) d;
}

static void
ParseLayout(const ItModel *m, const char *side, Jsonb *layout, ItMlpLayout *out)
{
    JsonbValue *hidden;

    if (layout == NULL || !JB_ROOT_IS_OBJECT(layout))
        StoredCorrupt(m, side, "It has no layout object.");
    memset(out, 0, sizeof(*out));
    out->input = LayoutInt(m, side, JsonKey(layout, "input"), 1, IT_MLP_MAX_UNITS, "input");
    out->output = LayoutInt(m, side, JsonKey(layout, "output"), 1, IT_MLP_MAX_UNITS, "output");
    hidden = JsonKey(layout, "hidden");
    if (hidden != NULL && hidden->type != jbvNull)
    {
        JsonbContainer *arr;
        int         n;

        if (hidden->type != jbvBinary || !JsonContainerIsArray(hidden->val.binary.data) ||
            JsonContainerIsScalar(hidden->val.binary.data))
            StoredCorrupt(m, side, "Its layout's \"hidden\" is not an array.");
        arr = hidden->val.binary.data;
        n = JsonContainerSize(arr);
        if (n > IT_MLP_MAX_HIDDEN)
            StoredCorrupt(m, side, psprintf("Its layout has %d hidden layers, more than %d.",
                                            n, IT_MLP_MAX_HIDDEN));
        out->nhidden = n;
        for (int i = 0; i < n; i++)
            out->hidden[i] = LayoutInt(m, side, getIthJsonbValueFromContainer(arr, i),
                                       1, IT_MLP_MAX_UNITS, "hidden");
    }
    if (it_mlp_check_layout(out) != IT_MLP_OK)
        StoredCorrupt(m, side, "Its layout is out of range.");
}

/* metrics.use_features (default: parameters were stored) */
static bool
MetricsUseFeatures(const ItModel *m, const char *side, Jsonb *metrics, bool defval)
{
    JsonbValue *v = JsonKey(metrics, "use_features");

    if (v == NULL || v->type == jbvNull)
        return defval;
    if (v->type != jbvBool)
        StoredCorrupt(m, side, "Its metrics' \"use_features\" is not true or false.");
    return v->val.boolean;
}

/* A finite number >= 0 of the metrics (popularity_blend, prior_variance), or 0. */
static double
MetricsNumber(const ItModel *m, const char *side, Jsonb *metrics, const char *key)
{
    JsonbValue *v = JsonKey(metrics, key);
    double      d;

    if (v == NULL || v->type == jbvNull)
        return 0.0;
    if (v->type != jbvNumeric)
        StoredCorrupt(m, side, psprintf("Its metrics' \"%s\" is not a number.", key));
    d = JsonNumberValue(v);
    if (!(d >= 0.0 && d <= FLT_MAX))
        StoredCorrupt(m, side, psprintf("Its metrics' \"%s\" is not a finite number >= 0.", key));
    return d;
}

static void
LoadSide(ItModel *m, const char *side, ItSidePrior *s, MemoryContext cxt)
{
    ItStoredEncoder enc;
    size_t      nparams;

    memset(s, 0, sizeof(*s));
    if (!ItEncoderLoad(m->name, m->version, side, cxt, &enc))
        return;
    s->stored = true;
    s->encoder = enc.encoder;
    s->dims = enc.dims;
    s->use_features = MetricsUseFeatures(m, side, enc.metrics, enc.params != NULL);
    s->pop_blend = (float) MetricsNumber(m, side, enc.metrics, "popularity_blend");
    s->prior_variance = MetricsNumber(m, side, enc.metrics, "prior_variance");
    s->fold_in_weight = MetricsNumber(m, side, enc.metrics, "fold_in_prior_weight");
    if (!s->use_features)
        return;

    if (enc.params == NULL)
        StoredCorrupt(m, side, "Its metrics keep the features path, but no parameters are stored.");
    ParseLayout(m, side, enc.layout, &s->layout);
    if (s->layout.input != s->dims)
        StoredCorrupt(m, side, psprintf("Its layout takes %d inputs, but the encoder writes %d.",
                                        s->layout.input, s->dims));
    if (s->layout.output != m->k)
        StoredCorrupt(m, side, psprintf("Its layout gives %d outputs, but the model has %d factors.",
                                        s->layout.output, m->k));
    nparams = it_mlp_param_count(&s->layout);
    if (nparams == 0 || (int64) nparams != enc.nparams)
        StoredCorrupt(m, side, psprintf("It stores " INT64_FORMAT " parameters; its layout needs %zu.",
                                        enc.nparams, nparams));
    for (size_t i = 0; i < nparams; i++)
        if (!isfinite(enc.params[i]))
            StoredCorrupt(m, side, "A parameter is not finite.");
    s->params = enc.params;
}

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

/* alpha / (2 variance) (variance 0, nothing to measure: alpha), within what a float solve takes */
static float
PriorPrecision(double alpha, double variance)
{
    double      l = variance > 0.0 ? alpha / (2.0 * variance) : alpha;

    return (float) Max(Min(l, 1e20), 1e-20);
}

ItTransfer *
ItGetTransfer(ItModel *m)
{
    MemoryContext cxt;
    ItTransfer *t;
    MemoryContextCallback *cb;
    double      pw;
    double      alpha;
    ItRunAs     r;

    if (m->transfer != NULL)
        return (ItTransfer *) m->transfer;

    FreeOrphanPlans();
    ItRunAsTablesOwner(&r);

    /* built under the caller's (SPI) context: an error frees it */
    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer transfer",
                                ALLOCSET_SMALL_SIZES);
    t = MemoryContextAllocZero(cxt, sizeof(ItTransfer));
    t->cxt = cxt;

    pw = ItOptionFloat(m->options, "prior_weight", 0.0);
    alpha = ItOptionFloat(m->options, "alpha", 1.0);
    if (!(pw >= 0.0 && pw <= FLT_MAX) || !(alpha >= 0.0 && alpha <= FLT_MAX))
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("stored options prior_weight %g and alpha %g of model \"%s\" are out of range",
                        pw, alpha, m->name),
                 errhint("Train a new version with train('%s').", m->name)));
    t->alpha = (float) alpha;
    t->fold_in = ItOptionBool(m->options, "fold_in", true);
    t->new_items = ItOptionBool(m->options, "new_items", true);

    if (m->user_features_source != NULL)
        LoadSide(m, "user", &t->user, cxt);
    if (m->item_features_source != NULL)
        LoadSide(m, "item", &t->item, cxt);

    /*
     * lambda0.  Automatic (prior_weight 0): the weight training chose for
     * the prior by simulation on trained users (transfer.c; the features
     * prior's in its it_encoder metrics, the population prior's in
     * it_model.metrics, both fold_in_prior_weight; see FoldInGrid there
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
    if (pw > 0.0)
    {
        t->lambda_pop = (float) pw;
        t->user.lambda0 = (float) pw;
    }
    else
    {
        double      a = Max(alpha, 0.2);
        double      measured = PopulationFoldInWeight(m);

        t->lambda_pop = measured > 0.0 ? (float) measured : PriorPrecision(a, UserVariance(m));
        if (t->user.fold_in_weight > 0.0)
            t->user.lambda0 = (float) t->user.fold_in_weight;
        else
            t->user.lambda0 = t->user.prior_variance > 0.0 ?
                PriorPrecision(a, t->user.prior_variance) : t->lambda_pop;
    }

    t->scratch = MemoryContextAlloc(cxt, sizeof(float) * ((Size) m->k * m->k + m->k));

    cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
    cb->func = ReleaseTransferPlans;
    cb->arg = t;
    MemoryContextRegisterResetCallback(cxt, cb);

    ItRunAsEnd(&r);
    MemoryContextSetParent(cxt, m->cxt);
    m->transfer = t;
    return t;
}

/* ------------------------------------------------------------------------
 * Reading one user's rows of a stored source
 * ------------------------------------------------------------------------ */

/*
 * The saved plan of "SELECT * FROM (<source>) s WHERE s.<idcol> = $1"
 * (pg_catalog's =, $1 bigint), prepared on first use.
 */
static SPIPlanPtr
IdPlan(ItIdPlan *p, const char *source, const char *what, const char *idcol)
{
    Oid         argtypes[1] = {INT8OID};
    char       *sql;
    SPIPlanPtr  plan;

    if (p->plan != NULL)
        return p->plan;
    sql = ItSourceSql(source, what,
                      psprintf("s.%s OPERATOR(pg_catalog.=) $1", quote_identifier(idcol)));
    plan = SPI_prepare(sql, 1, argtypes);
    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    /* the subquery wrapping makes a second statement a syntax error; be sure */
    if (list_length(SPI_plan_get_plan_sources(plan)) != 1)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s must be a single query", what)));
    p->orphan = MemoryContextAllocZero(TopMemoryContext, sizeof(ItOrphanPlan));
    if (SPI_keepplan(plan) != 0)
        elog(ERROR, "SPI_keepplan failed");
    p->plan = plan;
    return plan;
}

/*
 * In a parallel query (LATERAL recommend() over many users), a stored
 * source that is not parallel safe (a view calling nextval(), a volatile
 * function) cannot run: say which source and what to do, instead of the
 * error the function inside it would raise.
 */
static void
RefuseParallelUnsafe(SPIPlanPtr plan, ItServeContext *sc)
{
    ListCell   *lc;

    foreach(lc, SPI_plan_get_plan_sources(plan))
    {
        CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
        ListCell   *lq;

        foreach(lq, ps->query_list)
        {
            if (max_parallel_hazard(lfirst_node(Query, lq)) == PROPARALLEL_UNSAFE)
            {
                sc->running = false;
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
                         errmsg("the stored %s source of model \"%s\" is not parallel safe, "
                                "so this parallel query cannot fold in users from it",
                                sc->what, sc->model),
                         errhint("Make the source parallel safe (no nextval(), no functions marked PARALLEL UNSAFE), "
                                 "or run this query without parallel workers: SET max_parallel_workers_per_gather = 0.")));
            }
        }
    }
}

void
ItRunIdPlan(ItServeContext *sc, ItIdPlan *p, const char *source, const char *idcol,
            int64 id, long count)
{
    Datum       values[1] = {Int64GetDatum(id)};
    SPIPlanPtr  plan;
    int         ret;

    sc->running = true;
    plan = IdPlan(p, source, sc->what, idcol);
    ItRefuseTempRelations(plan, sc->what, sc->model);
    if (IsInParallelMode())
        RefuseParallelUnsafe(plan, sc);
    ret = SPI_execute_plan(plan, values, NULL, true, count);
    if (ret != SPI_OK_SELECT)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s does not return rows", sc->what)));
    sc->running = false;
}

void
ItSideForward(const ItSidePrior *s, const float *encoded, int64 n, float *out)
{
    size_t      wfloats = it_mlp_workspace_floats(&s->layout, n);
    float      *work = wfloats > 0 ? palloc(sizeof(float) * wfloats) : NULL;
    int64       total = n * s->layout.output;

    it_mlp_forward(s->params, &s->layout, encoded, n, out, work);
    if (work)
        pfree(work);
    for (int64 i = 0; i < total; i++)
        if (!isfinite(out[i]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("the features prior is not finite"),
                     errhint("A feature value is far outside the range the model was trained on; check the features.")));
}

bool
ItUserFeaturesPrior(ItModel *m, ItTransfer *t, int64 user_id, float *prior)
{
    ItServeContext sc;
    float      *encoded;

    if (!t->user.use_features || m->user_features_source == NULL)
        return false;
    ItServeContextPush(&sc, m, "user_features", true, user_id);
    ItRunIdPlan(&sc, &t->user_features, m->user_features_source,
              ItEncoderIdColumn(t->user.encoder), user_id, 2);
    if (SPI_processed == 0)
    {
        ItServeContextPop(&sc);
        SPI_freetuptable(SPI_tuptable);
        return false;
    }
    if (SPI_processed > 1)
        ereport(ERROR,
                (errcode(ERRCODE_CARDINALITY_VIOLATION),
                 errmsg("user_features has more than one row for user " INT64_FORMAT, user_id),
                 errhint("Give each user one row of features, as when the model was trained.")));
    encoded = palloc(sizeof(float) * t->user.dims);
    ItEncodeTuple(t->user.encoder, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, encoded);
    ItServeContextPop(&sc);
    SPI_freetuptable(SPI_tuptable);

    ItSideForward(&t->user, encoded, 1, prior);
    pfree(encoded);
    return true;
}

void
ItFoldIn(ItModel *m, ItTransfer *t, const int32 *items, const float *weights,
         int n, const float *prior, float lambda0, float *x)
{
    int         rc;

    rc = it_fold_in(m->Y, m->k, m->YtY, items, weights, n, t->alpha, lambda0,
                    prior, x, t->scratch);
    if (rc != 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("fold-in with model \"%s\" version %d failed (status %d)",
                        m->name, m->version, rc),
                 errhint("The stored factors do not give a solvable system; train a new version with train('%s').",
                         m->name)));
}

/* ------------------------------------------------------------------------
 * The cold paths of ItUserInterest
 * ------------------------------------------------------------------------ */

bool
ItColdInterest(ItModel *m, int64 user_id, ItInterest *out)
{
    MemoryContext callercxt = CurrentMemoryContext;
    ItTransfer *t = (ItTransfer *) m->transfer;
    ItUserRows  rows;
    float      *prior;
    bool        have_prior;
    bool        served = false;

    /* nothing to read: no SPI round trip */
    if (t != NULL && !t->fold_in && !t->user.use_features)
        return false;

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    t = ItGetTransfer(m);

    memset(&rows, 0, sizeof(rows));
    if (t->fold_in)
        ItReadUserRows(m, t, user_id, CurrentMemoryContext, &rows);
    prior = palloc(sizeof(float) * m->k);
    have_prior = ItUserFeaturesPrior(m, t, user_id, prior);

    if (rows.n > 0)
    {
        float      *x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);

        ItFoldIn(m, t, rows.items, rows.weights, rows.n, have_prior ? prior : m->user_mean,
                 have_prior ? t->user.lambda0 : t->lambda_pop, x);
        out->source = IT_SOURCE_FOLD_IN;
        out->x = x;
        out->seen = MemoryContextAlloc(callercxt, sizeof(int32) * rows.n);
        memcpy(out->seen, rows.items, sizeof(int32) * rows.n);
        out->nseen = rows.n;
        out->pop_blend = 0.0f;
        served = true;
    }
    else if (have_prior)
    {
        float      *x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);

        memcpy(x, prior, sizeof(float) * m->k);
        out->source = IT_SOURCE_FEATURES;
        out->x = x;
        out->seen = NULL;
        out->nseen = 0;
        out->pop_blend = t->user.pop_blend;
        served = true;
    }
    SPI_finish();
    return served;
}

/* ------------------------------------------------------------------------
 * recommend_for(features jsonb, items bigint[] DEFAULT '{}', k int DEFAULT 10,
 *               model text DEFAULT NULL)
 *   RETURNS TABLE (item_id bigint, score real, rank int, source text)
 *
 * For a visitor in no table: the prior from the features (a jsonb object
 * keyed by the user_features column names; '{}' or NULL for none), folded
 * in with the items they touched (each counts as one interaction of
 * weight 1; items the model does not know are ignored).  source is
 * 'fold_in' with known items, else 'features', else 'popular'.  The given
 * items are never recommended.
 * ------------------------------------------------------------------------ */
Datum
interest_transfer_recommend_for(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    MemoryContext callercxt = CurrentMemoryContext;
    Jsonb      *features = NULL;
    int64      *ids = NULL;
    double     *weights = NULL;
    int         nids = 0;
    int         k;
    char       *model;
    ItModel    *m;
    ItTransfer *t;
    ItUserRows  rows;
    ItInterest  in;
    float      *prior = NULL;
    bool        have_prior = false;

    ItSetSchema(fcinfo);
    k = ItArgK(fcinfo, 2);
    model = PG_ARGISNULL(3) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(3));

    if (!PG_ARGISNULL(0))
    {
        features = PG_GETARG_JSONB_P(0);
        if (!JB_ROOT_IS_OBJECT(features))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("features must be a jsonb object"),
                     errhint("Pass the features keyed by column name, for example '{\"age\": 31, \"country\": \"DE\"}', or '{}' for none.")));
        if (JB_ROOT_COUNT(features) == 0)
            features = NULL;
    }
    if (!PG_ARGISNULL(1))
    {
        ids = ItIdArray(PG_GETARG_ARRAYTYPE_P(1), "items", &nids);
        weights = palloc(sizeof(double) * Max(nids, 1));
        for (int i = 0; i < nids; i++)
            weights[i] = 1.0;
    }

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    m = ItGetModelForCall(fcinfo, model);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    t = ItGetTransfer(m);
    if (features != NULL)
    {
        float      *encoded;

        if (!t->user.stored)
            ereport(ERROR,
                    (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                     errmsg("model \"%s\" was trained without user features", m->name),
                     errhint("Train the model with user_features to serve visitors from their features, "
                             "or pass '{}' as features to use only the items.")));
        encoded = palloc(sizeof(float) * t->user.dims);
        ItEncodeJsonb(t->user.encoder, features, encoded);
        if (t->user.use_features)
        {
            prior = palloc(sizeof(float) * m->k);
            ItSideForward(&t->user, encoded, 1, prior);
            have_prior = true;
        }
    }
    ItCollectUserRows(m, ids, weights, nids, CurrentMemoryContext, &rows);

    memset(&in, 0, sizeof(in));
    if (rows.n > 0)
    {
        in.source = IT_SOURCE_FOLD_IN;
        in.x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);
        ItFoldIn(m, t, rows.items, rows.weights, rows.n, have_prior ? prior : m->user_mean,
                 have_prior ? t->user.lambda0 : t->lambda_pop, in.x);
    }
    else if (have_prior)
    {
        in.source = IT_SOURCE_FEATURES;
        in.x = MemoryContextAlloc(callercxt, sizeof(float) * m->k);
        memcpy(in.x, prior, sizeof(float) * m->k);
        in.pop_blend = t->user.pop_blend;
    }
    else
        in.source = IT_SOURCE_POPULAR;
    /* the given items are left out of the list, whatever the path */
    if (rows.n > 0)
    {
        in.seen = MemoryContextAlloc(callercxt, sizeof(int32) * rows.n);
        memcpy(in.seen, rows.items, sizeof(int32) * rows.n);
        in.nseen = rows.n;
    }
    SPI_finish();

    ItReturnTopItems(rsinfo, m, &in, true, k);
    PG_RETURN_NULL();
}

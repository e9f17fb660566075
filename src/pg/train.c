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
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "context.h"
#include "cross_domain.h"
#include "interactions.h"
#include "item_cache.h"
#include "common.h"
#include "spi_read.h"
#include "options.h"
#include "store.h"
#include "train.h"
#include "transfer.h"

/* Longest model name accepted. */
#define IT_MAX_MODEL_NAME   128

/*
 * Work of one chunk of a half-step, per thread, in floating-point
 * operations: a few tens of milliseconds at most between interrupt checks.
 */
#define IT_CHUNK_FLOPS      4.0e7

/* Rows per INSERT of factor rows, and bounds on the arrays it passes. */

/* Random initial factors are uniform in [-scale, scale], scale = this / sqrt(k). */
#define IT_INIT_SCALE       0.1

void
ItCheckModelName(const char *model)
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

/*
 * user_features / item_features are stored with the model and used by the
 * feature transfer; check now that the caller can read them and that they
 * carry the id column.
 */
void
ItCheckFeatureSource(const char *source, const char *what, const char *idcol, const char *model)
{
    ItSource    src;

    if (source == NULL)
        return;
    ItSourceOpen(&src, source, what, model, NULL, 0, NULL, NULL);
    (void) ItSourceColumn(&src, idcol, IT_COLUMN_ID, true);
    ItSourceClose(&src);
}

/* Distinct whole weights that make a rating scale (1 to 10, a few values). */
#define IT_RATING_MAX_LEVELS 10

/*
 * Weights that look like ratings (few distinct whole values, from 1 to at
 * most 10) count as positives alike without positive_threshold: a rating
 * of 1 would teach the model the user likes the item.  A NOTICE says so,
 * with the threshold that would keep the top levels, and returns the
 * it_model.metrics key that records it (NULL when none applies).
 */
static char *
NoticeRatings(const ItCsr *R, const ItOptions *o, const char *model)
{
    bool        seen[IT_RATING_MAX_LEVELS + 1] = {false};
    int         levels = 0;
    int         lo = IT_RATING_MAX_LEVELS + 1;
    int         hi = 0;

    int         suggested;

    if (o->positive_threshold > 0.0 || R->nnz == 0)
        return NULL;
    for (int64 e = 0; e < R->nnz; e++)
    {
        float       w = R->data[e];
        int         v;

        if (!(w >= 1.0f && w <= IT_RATING_MAX_LEVELS) || w != floorf(w))
            return NULL;
        v = (int) w;
        if (!seen[v])
        {
            seen[v] = true;
            levels++;
            lo = Min(lo, v);
            hi = Max(hi, v);
        }
    }
    if (levels < 3)
        return NULL;
    suggested = lo + (hi - lo + 1) * 2 / 3;
    ereport(NOTICE,
            (errmsg("the weights of model \"%s\" look like ratings (%d whole values from %d to %d), "
                    "and every rating counts as a positive", model, levels, lo, hi),
             errhint("To treat low ratings as negatives, train with options => '{\"positive_threshold\": %d}' "
                     "(the ratings that count as positives, here %d and above).", suggested, suggested)));
    /* kept in it_model.metrics too */
    return psprintf("\"ratings\": {\"levels\": %d, \"min\": %d, \"max\": %d, \"suggested_positive_threshold\": %d}",
                    levels, lo, hi, suggested);
}

/*
 * regularization "auto" (the default): lambda = cbar * sqrt(nnz / users),
 * where cbar = 1 + alpha * (mean weight of a user-item pair) is the mean
 * confidence of an interaction.  Both factors scale the data term of a
 * user's normal equations, so a penalty fixed in absolute terms (the 0.05
 * of earlier versions) all but vanishes on rating data and on heavy users.
 * Measured on four data sets by sweeping lambda (warm precision@10 on
 * held-out positives, 64 factors, the rule's value in brackets): MovieLens
 * 100k ratings best 40 (44), the same with ratings >= 4 as unit clicks
 * best 20 (14), Amazon electronics and cell phones, sparse unit clicks,
 * best 7 to 15 (12) and 10 to 14 (8); the old default lost 25%, 28%, 7%
 * and 5% against the best.  Sets o->regularization, replaces "auto" in
 * *options by the number used, and returns the it_model.metrics key that
 * records it.  A number the user gave is kept as it is (NULL returned).
 */
static char *
AutoRegularization(const ItCsr *R, int64 nusers, ItOptions *o, Jsonb **options)
{
    double      sum = 0.0;
    double      cbar;
    double      per_user;
    double      lambda;
    char       *number;

    if (o->regularization != IT_OPTION_AUTO)
        return NULL;
    for (int64 e = 0; e < R->nnz; e++)
        sum += R->data[e];
    cbar = R->nnz > 0 ? 1.0 + o->alpha * sum / (double) R->nnz : 1.0;
    per_user = nusers > 0 ? (double) R->nnz / (double) nusers : 1.0;
    lambda = cbar * sqrt(per_user);
    /* three significant digits: the number a user would write */
    number = psprintf("%.3g", Min(Max(lambda, 1e-3), 1e30));
    o->regularization = strtod(number, NULL);
    *options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*options),
                                                  DirectFunctionCall1(jsonb_in,
                                                                      CStringGetDatum(psprintf("{\"regularization\": %s}", number)))));
    return psprintf("\"regularization\": {\"rule\": \"auto\", \"value\": %s, \"mean_confidence\": %.6g, "
                    "\"interactions_per_user\": %.6g}", number, cbar, per_user);
}

/*
 * Option domain_weights, for interactions with a domain column: the
 * confidence of each domain's rows is scaled, so that a small domain is
 * not drowned by a large one in the users' shared vectors.  "balanced"
 * (the default) scales each domain by the largest domain's interactions
 * over its own, so every domain weighs as much in all; an object gives
 * each named domain its number (others 1); "none" leaves them.  The
 * scales are relative: they are divided by the smallest, so no domain's
 * weights shrink and a positive (positive_threshold) stays one; a
 * negative stays one too (ItDomainScaled).  Measured on Amazon
 * electronics (118k interactions) and cell phones (53k), the held-out
 * users of one domain served from the other (tests/bench/amazon_cross.sh),
 * precision@10 with the target domain weighted 1, 2 and 4 times the
 * other: phones 0.092, 0.096, 0.101; electronics 0.111, 0.114, 0.114,
 * and 0.115 at half; "balanced" weighs phones 2.2 times.
 * Applies the scales to R and Rt, stores the numbers used in *options (so
 * fold-in weighs rows alike) and returns the it_model.metrics key that
 * records them, or NULL without domains.
 */
static char *
DomainWeights(ItTrainData *d, ItOptions *o, Jsonb **options, const char *model, bool stored)
{
    Jsonb      *w = o->domain_weights;
    bool        balanced = false;
    bool        given = w != NULL && JB_ROOT_IS_OBJECT(w);
    int64      *count;
    double     *scale;
    double      low = DBL_MAX;
    int64       most = 0;
    float       thr = (float) o->positive_threshold;
    StringInfoData value;
    StringInfoData counts;

    if (d->n_domains == 0)
    {
        if (given)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"domain_weights\" weighs domains, but the interactions of model \"%s\" have no domain column",
                            model),
                     errhint("Add a text column named domain to the interactions, or leave the option out.")));
        return NULL;
    }
    if (w != NULL && !given)
    {
        JsonbValue  v;

        if (JsonbExtractScalar(&w->root, &v) && v.type == jbvString)
            balanced = v.val.string.len == 8 && memcmp(v.val.string.val, "balanced", 8) == 0;
    }

    count = palloc0(sizeof(int64) * d->n_domains);
    scale = palloc(sizeof(double) * d->n_domains);
    for (int64 e = 0; e < d->R.nnz; e++)
        count[d->item_domain[d->R.indices[e]]]++;
    for (int i = 0; i < d->n_domains; i++)
        most = Max(most, count[i]);
    for (int i = 0; i < d->n_domains; i++)
        scale[i] = balanced && count[i] > 0 ? (double) most / (double) count[i] : 1.0;
    if (given)
    {
        JsonbIterator *it = JsonbIteratorInit(&w->root);
        JsonbIteratorToken tok;
        JsonbValue  v;
        char       *name = NULL;

        while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        {
            if (tok == WJB_KEY)
                name = pnstrdup(v.val.string.val, v.val.string.len);
            else if (tok == WJB_VALUE)
            {
                int         i;

                for (i = 0; i < d->n_domains; i++)
                    if (strcmp(d->domains[i], name) == 0)
                        break;
                /* a stored definition names the domains of its day: one gone since is no error */
                if (i == d->n_domains && stored)
                    continue;
                if (i == d->n_domains)
                {
                    StringInfoData names;

                    initStringInfo(&names);
                    for (int j = 0; j < d->n_domains; j++)
                        appendStringInfo(&names, "%s\"%s\"", j > 0 ? ", " : "", d->domains[j]);
                    ereport(ERROR,
                            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                             errmsg("option \"domain_weights\" names domain \"%s\", which the interactions of model \"%s\" do not have",
                                    name, model),
                             errhint("The domains are %s.", names.data)));
                }
                scale[i] = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v.val.numeric)));
            }
        }
    }
    for (int i = 0; i < d->n_domains; i++)
        low = Min(low, scale[i]);

    initStringInfo(&value);
    initStringInfo(&counts);
    appendStringInfoChar(&value, '{');
    appendStringInfoChar(&counts, '{');
    for (int i = 0; i < d->n_domains; i++)
    {
        /* four significant digits: the numbers a user would write */
        char       *number = psprintf("%.4g", scale[i] / low);

        scale[i] = strtod(number, NULL);
        if (i > 0)
        {
            appendStringInfoString(&value, ", ");
            appendStringInfoString(&counts, ", ");
        }
        escape_json(&value, d->domains[i]);
        appendStringInfo(&value, ": %s", number);
        escape_json(&counts, d->domains[i]);
        appendStringInfo(&counts, ": " INT64_FORMAT, count[i]);
    }
    appendStringInfoChar(&value, '}');
    appendStringInfoChar(&counts, '}');

    for (int64 r = 0; r < d->R.nrows; r++)
        for (int64 e = d->R.indptr[r]; e < d->R.indptr[r + 1]; e++)
            d->R.data[e] = ItDomainScaled(d->R.data[e], (float) scale[d->item_domain[d->R.indices[e]]], thr);
    for (int64 r = 0; r < d->Rt.nrows; r++)
        for (int64 e = d->Rt.indptr[r]; e < d->Rt.indptr[r + 1]; e++)
            d->Rt.data[e] = ItDomainScaled(d->Rt.data[e], (float) scale[d->item_domain[r]], thr);
    /* the rows by context too: context vectors fold them in around X */
    for (int64 e = 0; e < d->C.nnz; e++)
        d->C.data[e] = ItDomainScaled(d->C.data[e], (float) scale[d->item_domain[d->C.indices[e]]], thr);
    CHECK_FOR_INTERRUPTS();

    *options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*options),
                                                  DirectFunctionCall1(jsonb_in,
                                                                      CStringGetDatum(psprintf("{\"domain_weights\": %s}", value.data)))));
    return psprintf("\"domain_weights\": {\"rule\": \"%s\", \"value\": %s, \"interactions\": %s}",
                    balanced ? "balanced" : given ? "given" : "none", value.data, counts.data);
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

/*
 * One half-step over every row of R, in chunks, interruptible between
 * them; with row_loss, each row's loss term at the X it starts from
 * (it_als_half_step_loss).
 */
static void
HalfStep(const ItCsr *R, const float *Y, const float *YtY, float *X,
         const ItAlsParams *p, float *scratch, double *row_loss)
{
    int64       begin = 0;

    while (begin < R->nrows)
    {
        int64       end = ChunkEnd(R, begin, p->factors, p->cg_steps, p->threads);

        CHECK_FOR_INTERRUPTS();
        it_als_half_step_loss(R, Y, YtY, X, p, begin, end, scratch, row_loss);
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

static double Fit(ItTrainData *d, const ItOptions *o, float *X, float *Y, StringInfo history, bool quiet);

/* Fit for a simulation: no NOTICE, no history kept. */
static void
QuietFit(const ItInteractionMatrix *d, const ItOptions *o, float *X, float *Y)
{
    StringInfoData history;

    initStringInfo(&history);
    (void) Fit((ItTrainData *) d, o, X, Y, &history, true);
    pfree(history.data);
}

/* Iteration it's loss into history (and a NOTICE unless quiet); errors when it is not finite. */
static void
ReportIteration(StringInfo history, int it, int iterations, double loss, double elapsed, bool quiet)
{
    if (!isfinite(loss))
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("training diverged at iteration %d (loss is not finite)", it),
                 errhint("Scale the weights down, or use a smaller alpha or a larger regularization.")));
    appendStringInfo(history, "%s{\"iteration\": %d, \"loss\": ", it > 1 ? ", " : "", it);
    AppendDouble(history, loss);
    appendStringInfo(history, ", \"seconds\": %.3f}", elapsed);
    if (!quiet)
        ereport(NOTICE,
                (errmsg("iteration %d/%d: loss %.6g, %.1f s elapsed, about %.1f s left",
                        it, iterations, loss, elapsed,
                        elapsed / it * (iterations - it))));
}

/*
 * Fits X and Y; returns the last loss, fills history (a JSON array).
 * quiet: no NOTICE per iteration (a validation fit).  The loss of an
 * iteration's X and Y is summed by the next iteration's user half-step,
 * which computes every x_u.y_i of it as it starts (it_als_half_step_loss);
 * only the last iteration's takes a pass of its own.  Its line (and the
 * check that it is finite) therefore comes a half-step late; its seconds
 * are the iteration's own.
 */
static double
Fit(ItTrainData *d, const ItOptions *o, float *X, float *Y, StringInfo history, bool quiet)
{
    int         k = (int) o->factors;
    int         iterations = (int) o->iterations;
    uint64      seed = (uint64) o->seed;
    ItAlsParams p;
    float      *XtX;
    float      *YtY;
    float      *scratch;
    float       scale = (float) (IT_INIT_SCALE / sqrt((double) k));
    double      loss = 0;
    double      dense_loss = 0;
    double      elapsed = 0;
    double     *row_loss;
    instr_time  start;

    p.factors = k;
    p.regularization = (float) o->regularization;
    p.alpha = (float) o->alpha;
    p.cg_steps = (int) o->cg_steps;
    p.threads = ItThreads((int) o->threads);
    p.positive_threshold = (float) o->positive_threshold;

    XtX = ItAllocArray((int64) k * k, sizeof(float));
    YtY = ItAllocArray((int64) k * k, sizeof(float));
    scratch = ItAllocArray((int64) it_als_scratch_floats(k, p.threads), sizeof(float));

    /* two different streams of the same seed */
    it_random_init(X, d->nusers, k, seed, scale);
    it_random_init(Y, d->nitems, k, seed ^ UINT64CONST(0xD1B54A32D192ED03), scale);

    row_loss = ItAllocArray(d->nusers, sizeof(double));
    INSTR_TIME_SET_CURRENT(start);
    appendStringInfoChar(history, '[');
    it_gram(Y, d->nitems, k, YtY);
    for (int it = 1; it <= iterations; it++)
    {
        CHECK_FOR_INTERRUPTS();
        HalfStep(&d->R, Y, YtY, X, &p, scratch, it > 1 ? row_loss : NULL);
        if (it > 1)
        {
            /* the previous iteration's loss: its dense terms, and the rows in order */
            loss = dense_loss;
            for (int64 u = 0; u < d->nusers; u++)
                loss += row_loss[u];
            ReportIteration(history, it - 1, iterations, loss, elapsed, quiet);
        }
        it_gram(X, d->nusers, k, XtX);
        CHECK_FOR_INTERRUPTS();
        HalfStep(&d->Rt, X, XtX, Y, &p, scratch, NULL);
        it_gram(Y, d->nitems, k, YtY);
        CHECK_FOR_INTERRUPTS();
        dense_loss = it_als_loss_dense(XtX, YtY, k, p.regularization);
        elapsed = ItElapsedSeconds(start);
    }
    /* the last one's (iterations >= 1): a pass of its own, the same sum for any thread count */
    loss = it_als_loss_gram_mt(&d->R, X, Y, XtX, YtY, k, p.regularization, p.alpha,
                               p.positive_threshold, p.threads);
    ReportIteration(history, iterations, iterations, loss, ItElapsedSeconds(start), quiet);
    appendStringInfoChar(history, ']');
    pfree(row_loss);

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
ValidationPrecision(ItTrainData *split, const ItOptions *o, const int32 *held_users,
                    const int64 *held_indptr, const int32 *held_items, int64 nheld,
                    int64 *counted)
{
    int         k = (int) o->factors;
    float      *X = ItAllocFactorArray(split->nusers * k, sizeof(float));
    float      *Y = ItAllocFactorArray(split->nitems * k, sizeof(float));
    float      *scores = ItAllocArray(split->nitems, sizeof(float));
    int32      *top_idx = palloc(sizeof(int32) * IT_VALIDATION_K);
    float      *top_score = palloc(sizeof(float) * IT_VALIDATION_K);
    StringInfoData history;
    double      p;

    initStringInfo(&history);
    (void) Fit(split, o, X, Y, &history, true);
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
CompareWithDeployed(const char *model, ItTrainData *d, const ItOptions *o, int dep_version,
                    const ItOptions *dep, ItDeployDecision *out)
{
    ItTrainData split = *d;
    int64       max_users = Min((int64) IT_VALIDATION_USERS, d->nusers);
    int32      *held_users = ItAllocArray(Max(max_users, 1), sizeof(int32));
    int64      *held_indptr = ItAllocArray(max_users + 1, sizeof(int64));
    int32      *held_items = ItAllocArray(Max(d->R.nnz, 1), sizeof(int32));
    int64       nheld;
    int64       counted_new;
    int64       counted_old;
    double      p_new;
    double      p_old;

    split.R.indptr = ItAllocArray(d->nusers + 1, sizeof(int64));
    split.R.indices = ItAllocArray(Max(d->R.nnz, 1), sizeof(int32));
    split.R.data = ItAllocArray(Max(d->R.nnz, 1), sizeof(float));
    nheld = it_holdout_split(&d->R, (uint64) o->seed, max_users,
                             IT_VALIDATION_MIN_ROWS, IT_VALIDATION_FRACTION,
                             (float) o->positive_threshold, &split.R,
                             held_users, held_indptr, held_items);
    split.Rt.indptr = ItAllocArray(d->nitems + 1, sizeof(int64));
    split.Rt.indices = ItAllocArray(Max(split.R.nnz, 1), sizeof(int32));
    split.Rt.data = ItAllocArray(Max(split.R.nnz, 1), sizeof(float));
    it_csr_transpose(&split.R, &split.Rt);

    p_new = ValidationPrecision(&split, o, held_users, held_indptr, held_items, nheld, &counted_new);
    p_old = ValidationPrecision(&split, dep, held_users, held_indptr, held_items, nheld, &counted_old);

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

/* The deployed version's number and options, as the tables' owner; false when none. */
static bool
DeployedOptions(const char *model, int *version, ItOptions *options)
{
    ItRunAs     r;
    Jsonb      *stored;
    bool        found;

    ItRunAsTablesOwner(&r);
    /* after the model's lock: what the writers before committed */
    found = ItStoreDeployedVersion(model, version, &stored);
    ItRunAsEnd(&r);
    if (found)
        ItReadOptions(stored, model, options);
    return found;
}

static void
DecideDeploy(const char *model, ItTrainData *d, const ItOptions *o, ItDeployDecision *out)
{
    const char *rule = o->deploy;
    int         dep_version;
    ItOptions   dep_options;

    /* the rule is one of the option's three words: no JSON escaping needed */
    initStringInfo(&out->json);
    appendStringInfo(&out->json, "{\"rule\": \"%s\"", rule);
    if (strcmp(rule, "never") == 0)
        out->deploy = false;
    else if (strcmp(rule, "if_better") == 0 && DeployedOptions(model, &dep_version, &dep_options))
        CompareWithDeployed(model, d, o, dep_version, &dep_options, out);
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

/* The version's user and item factor rows. */
static void
WriteFactorTables(const ItVersionBuild *b, int version, const int64 *popularity)
{
    ItTrainData *d = b->d;
    int         k = (int) b->opts->factors;
    ItFactorRows rows;

    memset(&rows, 0, sizeof(rows));
    rows.users = true;
    rows.mode = IT_FACTORS_INSERT;
    rows.source = "model";
    rows.k = k;
    rows.n = d->nusers;
    rows.ids = d->user_ids;
    rows.factors = b->X;
    rows.seen_ptr = d->R.indptr;
    rows.seen_index = d->R.indices;
    rows.seen_ids = d->item_ids;
    rows.domains = d->item_domain;
    (void) ItStoreWriteFactors(b->model, version, &rows);

    memset(&rows, 0, sizeof(rows));
    rows.users = false;
    rows.mode = IT_FACTORS_INSERT;
    rows.source = "model";
    rows.k = k;
    rows.n = d->nitems;
    rows.ids = d->item_ids;
    rows.factors = b->Y;
    rows.popularity = popularity;
    rows.domains = d->item_domain;
    (void) ItStoreWriteFactors(b->model, version, &rows);
}

/*
 * Writes a version from its factors, deployed when the decision says so:
 * the factor rows first, then the it_model row, once, with the seconds of
 * the whole call, then the few rows of its priors.  Runs as the tables'
 * owner (ItBeginWrite), after every read of the user's data.
 */
/*
 * Where the time of train() went, in seconds, kept in metrics->'phases'
 * and shown by a DEBUG1 line: the source's rows read, the ids mapped and
 * the matrix built, ALS (or the factors read, for import_model), the
 * context vectors, the cross-domain choice, the side models (priors), the
 * fold-in weights (the population prior's and the users' features
 * prior's), the if_better check, and writing the factor rows.  The
 * population prior's simulations run on a thread of their own while the
 * factor rows are written (metrics->'fold_in_beside_write',
 * unless user code runs in those writes): the two phases then overlap, and
 * write leaves out the wait for the simulations.
 */
typedef struct ItTrainPhases
{
    double      read;
    double      map;
    double      als;
    double      contexts;
    double      cross_domain;
    double      priors;
    double      fold_in_weight;
    double      deploy;
    double      write;
    bool        fold_in_beside_write;   /* the fold-in weight's simulations ran while the rows were written */
} ItTrainPhases;

static char *
PhasesJson(const ItTrainPhases *p)
{
    return psprintf("\"phases\": {\"read\": %.4f, \"map\": %.4f, \"als\": %.4f, \"contexts\": %.4f, "
                    "\"cross_domain\": %.4f, \"priors\": %.4f, \"fold_in_weight\": %.4f, "
                    "\"deploy\": %.4f, \"write\": %.4f}, \"fold_in_beside_write\": %s",
                    p->read, p->map, p->als, p->contexts, p->cross_domain, p->priors,
                    p->fold_in_weight, p->deploy, p->write, p->fold_in_beside_write ? "true" : "false");
}

static int
WriteModel(const ItVersionBuild *b, const int64 *popularity, const ItDeployDecision *decision,
           const char *keys, const ItContextChoice *contexts, double *seconds, ItTrainPhases *phases)
{
    const char *model = b->model;
    const ItDefinition *def = b->def;
    ItTrainData *d = b->d;
    const float *X = b->X;
    const float *Y = b->Y;
    int         k = (int) b->opts->factors;
    ItWriteState st;
    const char *summary;
    ItModelRow row;
    Oid         owner;
    int         version;
    double     *sum;
    float      *mean;
    instr_time  write_start;
    instr_time  wait_start;
    double      waited;

    /* population prior: the mean user vector */
    sum = palloc0(sizeof(double) * k);
    mean = palloc(sizeof(float) * k);
    for (int64 u = 0; u < d->nusers; u++)
        for (int j = 0; j < k; j++)
            sum[j] += X[u * k + j];
    for (int j = 0; j < k; j++)
        mean[j] = (float) (sum[j] / d->nusers);

    INSTR_TIME_SET_CURRENT(write_start);
    owner = ItBeginWrite(model, false, def->stored ? IT_PRIV_TRAIN : IT_PRIV_OWN, b->action, &st);

    /* a new model: its owner is the role that writes it first */
    if (ItStoreCreateModel(model, owner))
        ItSyncRolePins(&owner, 1);
    version = ItStoreNextVersion(model);

    /*
     * The population prior's fold-in weight is chosen on a thread of its
     * own while the factor rows are written (when nothing but PostgreSQL
     * runs in the writes); the rest of the writing needs the choice, or
     * calls BLAS.
     */
    ItTransferStartPopulation(b->transfer);
    PG_TRY();
    {
        WriteFactorTables(b, version, popularity);
    }
    PG_CATCH();
    {
        ItTransferStopPopulation(b->transfer);
        PG_RE_THROW();
    }
    PG_END_TRY();
    INSTR_TIME_SET_CURRENT(wait_start);
    phases->fold_in_beside_write = ItTransferFinishPopulation(b->transfer);
    waited = ItElapsedSeconds(wait_start);
    phases->fold_in_weight = ItTransferFoldInSeconds(b->transfer);
    /* the new items' factor rows (transfer.c) */
    ItTransferWriteItems(b->transfer, model, version);
    /* the users' vectors in contexts (context.c) */
    ItContextWrite(contexts, d, b->opts, X, Y, model, version);
    /* every item row written above, packed for loading (store.c) */
    {
        ItItemSet   sets[2];

        memset(sets, 0, sizeof(sets));
        sets[0].n = d->nitems;
        sets[0].ids = d->item_ids;
        sets[0].factors = Y;
        sets[0].popularity = popularity;
        sets[0].domains = d->item_domain;
        sets[1].n = ItTransferNewItems(b->transfer, &sets[1].ids, &sets[1].factors);
        (void) ItStoreWriteItemPacksFrom(model, version, k, sets, 2);
    }
    /* where the time went: the factor rows are most of the writing */
    phases->write = ItElapsedSeconds(write_start) - waited;
    {
        char       *json = PhasesJson(phases);

        keys = keys ? psprintf("%s, %s", keys, json) : json;
    }

    memset(&row, 0, sizeof(row));
    row.model = model;
    row.version = version;
    row.algorithm = b->algorithm;
    row.def = def;
    row.options = b->options;
    row.factors = k;
    row.users = d->nusers;
    row.items = d->nitems;
    row.interactions = d->R.nnz;
    row.loss = b->loss;
    row.history = b->history;
    /* the priors' summary (transfer.c), what the weights looked like, lambda "auto" */
    summary = ItTransferSummary(b->transfer);
    if (keys == NULL)
        row.metrics = summary;
    else if (summary == NULL || strcmp(summary, "{}") == 0)
        row.metrics = psprintf("{%s}", keys);
    else
        row.metrics = psprintf("{%s, %s", keys, summary + 1);
    row.user_mean = mean;
    row.deploy_decision = decision->json.data;
    row.deployed = decision->deploy;
    row.n_domains = d->n_domains;
    row.domains = d->domains;
    row.n_contexts = ItContextNames(contexts, &row.contexts, &row.context_weights);
    /* the whole call, writing included */
    *seconds = row.seconds = ItElapsedSeconds(b->start);
    ItStoreInsertModel(&row);
    /* the few rows of the priors, which reference it (transfer.c) */
    ItTransferWrite(b->transfer, model, version);
    ItEndWrite(&st);
    return version;
}

char *
ItPrepareInteractions(ItTrainData *d, ItOptions *o, Jsonb **options, const char *model, bool stored)
{
    char       *keys = NoticeRatings(&d->R, o, model);
    char       *weights = DomainWeights(d, o, options, model, stored);
    char       *auto_lambda;

    if (weights != NULL)
        keys = keys ? psprintf("%s, %s", keys, weights) : weights;
    auto_lambda = AutoRegularization(&d->R, d->nusers, o, options);
    if (auto_lambda != NULL)
        keys = keys ? psprintf("%s, %s", keys, auto_lambda) : auto_lambda;
    return keys;
}

void
ItBuildVersion(ItVersionBuild *b, ItTrainResult *res)
{
    ItTrainData *d = b->d;
    ItOptions  *opts = b->opts;
    const char *model = b->model;
    char       *keys = b->keys;
    int64      *popularity;
    double      t_mark;
    double      t_contexts;
    double      t_cross;
    double      t_priors;
    double      t_fit;
    ItTrainedModel trained;
    ItDeployDecision decision;
    ItContextChoice *contexts;
    ItTrainPhases phases;

    /* popularity: the users each item is a positive of (serving's and the priors' baseline) */
    popularity = ItAllocArray(Max(d->nitems, 1), sizeof(int64));
    it_csr_row_positives(&d->Rt, (float) opts->positive_threshold, popularity);
    /* the users' vectors in contexts (context.c) */
    {
        char       *key;

        t_mark = ItElapsedSeconds(b->start);
        contexts = ItContextChoose(d, opts, b->X, b->Y, model, &key);
        t_contexts = ItElapsedSeconds(b->start) - t_mark;
        if (key != NULL)
            keys = keys ? psprintf("%s, %s", keys, key) : key;
    }
    /* how users new to a domain are ranked (cross_domain.c) */
    {
        char       *cross;

        t_mark = ItElapsedSeconds(b->start);
        cross = ItCrossDomainRanking(d, opts, QuietFit, &b->options, model, b->def->stored);
        t_cross = ItElapsedSeconds(b->start) - t_mark;

        if (cross != NULL)
            keys = keys ? psprintf("%s, %s", keys, cross) : cross;
    }
    /* features -> interest models on the factors (transfer.c) */
    memset(&trained, 0, sizeof(trained));
    trained.k = (int) opts->factors;
    trained.alpha = (float) opts->alpha;
    trained.regularization = opts->regularization;
    trained.nusers = d->nusers;
    trained.nitems = d->nitems;
    trained.user_ids = d->user_ids;
    trained.item_ids = d->item_ids;
    trained.R = &d->R;
    trained.Rt = &d->Rt;
    trained.popularity = popularity;
    trained.times = d->times;
    trained.X = b->X;
    trained.Y = b->Y;
    t_mark = ItElapsedSeconds(b->start);
    /* the population prior's fold-in weight: beside the writes (WriteModel) */
    ItTransferDeferPopulation(b->transfer);
    ItTransferFit(b->transfer, &trained);
    t_priors = ItElapsedSeconds(b->start) - t_mark;
    DecideDeploy(model, d, opts, &decision);
    t_fit = ItElapsedSeconds(b->start);
    /* where the time went (WriteModel adds the writing) */
    phases.read = d->read_seconds;
    phases.map = b->t_read - d->read_seconds;
    phases.als = b->t_factors - b->t_read;
    phases.contexts = t_contexts;
    phases.cross_domain = t_cross;
    phases.fold_in_weight = ItTransferFoldInSeconds(b->transfer);
    phases.priors = t_priors - phases.fold_in_weight;
    phases.deploy = t_fit - t_mark - t_priors;

    res->version = WriteModel(b, popularity, &decision, keys, contexts, &res->seconds, &phases);
    res->users = d->nusers;
    res->items = d->nitems;
    res->interactions = d->R.nnz;
    res->loss = b->loss;

    ereport(DEBUG1,
            (errmsg("model \"%s\" version %d done in %.3f s: read " INT64_FORMAT " rows %.3f s, map %.3f s, "
                    "factors (als) %.3f s, contexts %.3f s, cross_domain %.3f s, priors %.3f s, "
                    "fold_in_weight %.3f s, deploy %.3f s, write " INT64_FORMAT " user and " INT64_FORMAT
                    " item rows %.3f s",
                    model, res->version, res->seconds, d->rows_read, phases.read, phases.map, phases.als,
                    phases.contexts, phases.cross_domain, phases.priors, phases.fold_in_weight,
                    phases.deploy, d->nusers, d->nitems, phases.write)));}

/*
 * The whole of train(): check, read, fit, write.  Opens and closes its own
 * SPI connection; everything it allocates is freed before it returns.
 */
static void
TrainModel(const char *model, const ItDefinition *def, ItTrainResult *res)
{
    MemoryContext ctx;
    MemoryContext oldctx;
    ItWriteState st;
    ItRunAs     as_owner;
    Jsonb      *options;
    ItOptions   opts;
    ItTrainData d;
    int         k;
    StringInfoData history;
    ItContextRule rule;
    struct pg_tz *tz;
    ItVersionBuild b;

    memset(&b, 0, sizeof(b));
    INSTR_TIME_SET_CURRENT(b.start);
    ItCheckModelName(model);
    ItRefuseReadOnly("train", model);
    options = ItResolveOptions(def->options);
    ItReadOptions(options, NULL, &opts);
    k = (int) opts.factors;
    /* contexts derived from ts: the time zone is stored with the version */
    if (opts.timezone != NULL && opts.context == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"timezone\" is for contexts derived from ts, and option \"context\" is not given"),
                 errhint("Add option context (weekpart or daypart), or leave timezone out.")));
    rule = ItContextRuleOf(&opts, &options, &tz);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ctx = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer train",
                                ALLOCSET_DEFAULT_SIZES);
    oldctx = MemoryContextSwitchTo(ctx);
    /* everything below is counted against interest_transfer.train_memory */
    ItMemoryBudgetBegin(model, ctx);

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
    ItCheckFeatureSource(def->user_features, "user_features", "user_id", model);
    ItCheckFeatureSource(def->item_features, "item_features", "item_id", model);
    /* features read and encoded before anything is written (transfer.c) */
    b.transfer = ItTransferRead(model, def->user_features, def->item_features, def->user_links, &opts);

    /* ids mapped to dense indexes, duplicates summed, rows of weight 0 left out */
    ItReadInteractionMatrix(def->interactions, model, rule, tz, &d);
    if (def->stored)
        ItRunAsEnd(&as_owner);
    if (d.n_domains > 0 && def->item_features != NULL)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("item_features cannot be used yet with interactions that have a domain column"),
                 errhint("Train model \"%s\" without item_features, or one model per domain with its own item_features.",
                         model)));
    b.keys = ItPrepareInteractions(&d, &opts, &options, model, def->stored);
    b.t_read = ItElapsedSeconds(b.start);

    b.X = ItAllocFactorArray(d.nusers * k, sizeof(float));
    b.Y = ItAllocFactorArray(d.nitems * k, sizeof(float));
    initStringInfo(&history);
    b.loss = Fit(&d, &opts, b.X, b.Y, &history, false);
    b.t_factors = ItElapsedSeconds(b.start);

    b.model = model;
    b.def = def;
    b.algorithm = "als";
    b.action = "train";
    b.options = options;
    b.opts = &opts;
    b.d = &d;
    b.history = history.data;
    ItBuildVersion(&b, res);
    ItTransferEnd(b.transfer);

    MemoryContextSwitchTo(oldctx);
    MemoryContextDelete(ctx);
    SPI_finish();
}

void
ItReturnTrainResult(FunctionCallInfo fcinfo, const char *model, const ItTrainResult *res)
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
PG_FUNCTION_INFO_V1(interest_transfer_train);
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
    /* an older definition of train() (before its upgrade script) has no user_links */
    if (PG_NARGS() > 5 && !PG_ARGISNULL(5))
        def.user_links = text_to_cstring(PG_GETARG_TEXT_PP(5));
    /* read with the caller's rights now; stored with the path they resolve in */
    def.stored = false;
    def.search_path = ItDefinitionSearchPath();

    ItSetSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);
    TrainModel(model, &def, &res);
    ItReturnTrainResult(fcinfo, model, &res);
    return (Datum) 0;
}

/*
 * train(model): the sources and options of the deployed version (the
 * latest when none is deployed), read with the rights of the model's owner.
 */
PG_FUNCTION_INFO_V1(interest_transfer_retrain);
Datum
interest_transfer_retrain(PG_FUNCTION_ARGS)
{
    MemoryContext callerctx = CurrentMemoryContext;
    char       *model;
    ItDefinition def;
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
    ItRunAsTablesOwner(&r);
    if (!ItStoreLatestDefinition(model, callerctx, &def))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("model \"%s\" does not exist", model),
                 errhint("Train it first with train('%s', interactions), or list the models with SELECT * FROM models.",
                         model)));
    ItRunAsEnd(&r);
    SPI_finish();

    /*
     * Factors trained elsewhere (import_model): there is no fit from the
     * interactions to repeat, and fitting one here would silently replace
     * them with factors of another algorithm.
     */
    if (def.algorithm != NULL && strcmp(def.algorithm, "imported") == 0)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("model \"%s\" holds imported factors, which train(model) cannot retrain", model),
                 errdetail("Its deployed version (its latest, when none is deployed) was made by "
                           "import_model(), not trained from interactions."),
                 errhint("Import the new factors with import_model('%s', user_factors, item_factors, options), "
                         "or train it here from interactions with train('%s', interactions).", model, model)));

    TrainModel(model, &def, &res);
    ItReturnTrainResult(fcinfo, model, &res);
    return (Datum) 0;
}

/*
 * deploy(model, version)
 */
PG_FUNCTION_INFO_V1(interest_transfer_deploy);
Datum
interest_transfer_deploy(PG_FUNCTION_ARGS)
{
    char       *model;
    int         version;
    ItWriteState st;

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

    if (!ItStoreVersionExists(model, version))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("version %d of model \"%s\" does not exist", version, model),
                 errhint("List its versions with SELECT version, trained_at FROM models WHERE model = '%s'.",
                         model)));
    ItStoreDeploy(model, version);
    ItEndWrite(&st);
    SPI_finish();
    PG_RETURN_VOID();
}

/*
 * drop_model(model): deletes every version and the model's grants; returns
 * how many versions.
 */
PG_FUNCTION_INFO_V1(interest_transfer_drop_model);
Datum
interest_transfer_drop_model(PG_FUNCTION_ARGS)
{
    char       *model;
    ItWriteState st;
    ItModelAcl  acl;
    Oid        *roles;
    int         nroles = 0;
    int64       deleted;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model to drop, for example drop_model('shop').");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    (void) ItBeginWrite(model, true, IT_PRIV_OWN, "drop", &st);
    if (!ItReadModelAcl(model, true, &acl))
        elog(ERROR, "model \"%s\" vanished", model);
    deleted = ItStoreDropModel(model);
    /* rolled back, the files are written again on the next load */
    ItItemCacheForget(model);
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

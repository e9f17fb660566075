/*
 * evaluate.c
 *    evaluate(model, test, k): ranking quality of the deployed version on
 *    held-out positives, for all test users, the warm ones (served by a
 *    vector trained with the model) and the cold ones (everyone else).
 *
 * Every test user is served exactly as recommend() serves them: the
 * interest comes from ItUserInterest, and the items they interacted with
 * in training are left out of the ranking and of their positives.  Test
 * items the model does not know are positives that can never be hit: they
 * count in recall, NDCG, AP and AUC (ranked below every negative) but no
 * list can hold them.  A user whose positives were all seen in training
 * is not counted.
 *
 * Users with a vector are scored in blocks with one matrix product (users
 * x factors times factors x items) instead of one matrix-vector product
 * each.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/tuplestore.h"

#include "context.h"
#include "cross_domain.h"
#include "interest.h"

/* Rows fetched from the test set per round trip. */
#define IT_EVAL_FETCH 10000
/* Floats of block scores (users x items) computed at a time. */
#define IT_EVAL_BLOCK_FLOATS (4 * 1024 * 1024)
#define IT_EVAL_MAX_BLOCK 128

enum
{
    SEG_ALL,
    SEG_WARM,
    SEG_COLD,
    SEG_CROSS,
    NSEGMENTS
};

static const char *const SegmentNames[NSEGMENTS] = {"all", "warm", "cold", "cross_domain"};

typedef struct ItSegment
{
    int64       users;
    double      precision;
    double      recall;
    double      ndcg;
    double      ap;
    double      auc;
    int64       auc_users;      /* users with a defined AUC */
    bool       *covered;        /* n_items flags */
    int64       ncovered;
} ItSegment;

typedef struct ItEvalUser
{
    int64       user_id;
    ItInterest  in;
    int32      *pos;            /* known test items, indexes, sorted */
    int         npos;
    int         nunknown;       /* test items the model does not know */
    int         row;            /* row in the block's score matrix, or -1 */
    bool        cross;          /* interactions in other domains only */
    float      *nb;             /* ranked by co-buyers: the domain's scores, else NULL */
} ItEvalUser;

typedef struct ItTestPair
{
    int64       user_id;
    int64       item_id;
} ItTestPair;

static int
ComparePairs(const void *a, const void *b)
{
    const ItTestPair *x = a;
    const ItTestPair *y = b;

    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    return (x->item_id > y->item_id) - (x->item_id < y->item_id);
}

/*
 * Reads the test set (inside SPI_connect) into *pairs, sorted by user and
 * item, duplicates removed; returns how many.  With a domain and a domain
 * column, only that domain's rows.
 */
static int64
ReadTestSet(const char *test, const char *model, double threshold, const char *domain,
            ItTestPair **pairs_out)
{
    ItSource    src;
    int         ucol;
    int         icol;
    int         wcol;
    int         dcol;
    int64       other = 0;
    Oid         utype;
    Oid         itype;
    Oid         wtype = InvalidOid;
    int64       n = 0;
    int64       below = 0;
    int64       cap = 1024;
    int64       w;
    uint64      got;
    ItTestPair *pairs = palloc(sizeof(ItTestPair) * cap);

    ItSourceOpen(&src, test, "test", model, NULL, 0, NULL, NULL);
    ucol = ItSourceColumn(&src, "user_id", IT_COLUMN_ID, true);
    icol = ItSourceColumn(&src, "item_id", IT_COLUMN_ID, true);
    utype = ItSourceColumnType(&src, ucol);
    itype = ItSourceColumnType(&src, icol);
    /* with a weight column, rows below the model's positive_threshold are not positives */
    wcol = ItSourceColumn(&src, "weight", IT_COLUMN_WEIGHT, false);
    if (wcol >= 0)
        wtype = ItSourceColumnType(&src, wcol);
    dcol = domain ? ItSourceColumn(&src, "domain", IT_COLUMN_TEXT, false) : -1;

    while ((got = ItSourceFetch(&src, IT_EVAL_FETCH)) > 0)
    {
        TupleDesc   desc = src.batch->tupdesc;

        CHECK_FOR_INTERRUPTS();
        if (n + (int64) got > cap)
        {
            cap = Max(cap * 2, n + (int64) got);
            if ((Size) cap > MaxAllocHugeSize / sizeof(ItTestPair))
                ereport(ERROR,
                        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                         errmsg("test set is too large")));
            pairs = repalloc_huge(pairs, sizeof(ItTestPair) * cap);
        }
        for (uint64 i = 0; i < got; i++)
        {
            HeapTuple   tup = src.batch->vals[i];
            bool        unull;
            bool        inull;
            Datum       u = SPI_getbinval(tup, desc, ucol + 1, &unull);
            Datum       it = SPI_getbinval(tup, desc, icol + 1, &inull);
            int64       row = src.rows - (int64) got + (int64) i + 1;

            if (unull || inull)
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("%s is null in row " INT64_FORMAT " of test", unull ? "user_id" : "item_id", row),
                         errhint("Leave such rows out, for example with WHERE user_id IS NOT NULL AND item_id IS NOT NULL.")));
            if (dcol >= 0)
            {
                bool        dnull;
                Datum       dd = SPI_getbinval(tup, desc, dcol + 1, &dnull);

                if (dnull)
                    ereport(ERROR,
                            (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                             errmsg("domain is null in row " INT64_FORMAT " of test", row),
                             errhint("Give every test row the domain of its item, or leave the domain column out.")));
                if (strcmp(TextDatumGetCString(dd), domain) != 0)
                {
                    other++;
                    continue;
                }
            }
            if (wcol >= 0 && threshold > 0.0)
            {
                bool        wnull;
                Datum       wd = SPI_getbinval(tup, desc, wcol + 1, &wnull);

                if (wnull || !(ItDatumGetWeight(wd, wtype) >= threshold))
                {
                    below++;
                    continue;
                }
            }
            pairs[n].user_id = ItDatumGetId(&src, ucol, utype, u, row);
            pairs[n].item_id = ItDatumGetId(&src, icol, itype, it, row);
            n++;
        }
    }
    ItSourceClose(&src);

    if (below > 0)
        ereport(NOTICE,
                (errmsg(INT64_FORMAT " of " INT64_FORMAT " test rows weigh less than the model's positive_threshold %g "
                        "or have no weight, and are not counted as positives", below, below + n, threshold)));
    if (n == 0 && other > 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("test set has no rows of domain \"%s\"", domain),
                 errhint("Evaluate a domain the test rows are of, or give test rows of this one.")));
    if (n == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("test set is empty"),
                 errhint(below > 0 ? "Every row weighs less than the model's positive_threshold; give rows that are positives." :
                         "Give held-out positives as rows of (user_id, item_id).")));

    qsort(pairs, n, sizeof(ItTestPair), ComparePairs);
    w = 0;
    for (int64 i = 0; i < n; i++)
        if (w == 0 || ComparePairs(&pairs[i], &pairs[w - 1]) != 0)
            pairs[w++] = pairs[i];
    *pairs_out = pairs;
    return w;
}

/* Adds one user's metrics to a segment. */
static void
Accumulate(ItSegment *seg, const ItUserMetrics *um, const int32 *top, int ntop, int64 n_items)
{
    seg->users++;
    seg->precision += um->precision;
    seg->recall += um->recall;
    seg->ndcg += um->ndcg;
    seg->ap += um->ap;
    if (!isnan(um->auc))
    {
        seg->auc += um->auc;
        seg->auc_users++;
    }
    for (int i = 0; i < ntop; i++)
    {
        int32       idx = top[i];

        if (idx < 0 || idx >= n_items)
            continue;
        if (!seg->covered[idx])
        {
            seg->covered[idx] = true;
            seg->ncovered++;
        }
    }
}

static double
IdealDcg(int64 npos, int k)
{
    double      idcg = 0.0;
    int64       ideal = Min(npos, (int64) k);

    for (int64 r = 0; r < ideal; r++)
        idcg += 1.0 / log2((double) r + 2.0);
    return idcg;
}

/*
 * Metrics of one user from their scores over every item, with the test
 * items the model does not know counted as positives never ranked.
 */
static void
UserMetricsOf(ItModel *m, const ItEvalUser *u, const float *scores, int k,
              int32 *top_idx, float *top_score, ItSegment *segs)
{
    ItUserMetrics um;
    int64       counted;
    int64       ntotal;
    int64       ntop = Min((int64) k, m->n_items);
    const int32 *seen = u->in.seen;
    int64       nseen = u->in.nseen;

    for (int64 i = 0; i < ntop; i++)
        top_idx[i] = -1;
    counted = it_rank_metrics(scores, m->n_items, u->pos, u->npos, seen, nseen,
                              k, top_idx, top_score, &um);
    if (counted == 0 && u->nunknown == 0)
        return;                 /* every positive was seen in training */

    ntotal = counted + u->nunknown;
    if (counted == 0)
    {
        /* only unknown items: nothing can be hit */
        memset(&um, 0, sizeof(um));
        um.auc = (m->n_items - nseen > 0) ? 0.0 : NAN;
        for (int64 i = 0; i < ntop; i++)
            top_idx[i] = -1;
        it_topk(scores, m->n_items, seen, nseen, (int) ntop, top_idx, top_score);
    }
    else if (u->nunknown > 0)
    {
        double      share = (double) counted / (double) ntotal;
        double      idcg_known = IdealDcg(counted, k);
        double      idcg_all = IdealDcg(ntotal, k);

        um.recall *= share;
        um.ndcg = idcg_all > 0.0 ? um.ndcg * idcg_known / idcg_all : 0.0;
        um.ap *= (double) Min(counted, (int64) k) / (double) Min(ntotal, (int64) k);
        if (!isnan(um.auc))
            um.auc *= share;
    }

    Accumulate(&segs[SEG_ALL], &um, top_idx, (int) ntop, m->n_items);
    Accumulate(&segs[u->cross ? SEG_CROSS : u->in.source == IT_SOURCE_MODEL ? SEG_WARM : SEG_COLD],
               &um, top_idx, (int) ntop, m->n_items);
}

/*
 * Gives every item that could be among a user's k best the score
 * recommend() ranks by (ItItemScore) in place of the sgemm's, which differs
 * from it in the last bits by amounts that depend on the BLAS kernel: the
 * lists measured are then recommend()'s, ties by the lower item_id, on any
 * CPU.  The candidates are it_topk_candidates' for the bound of
 * ItScoreTolerance; the items left with sgemm scores stay below every
 * rescored one among the k best.  cand holds m->n_items entries.
 */
static void
ExactNearBoundary(const ItModel *m, const ItInterest *in, float *scores, int ntop,
                  int32 *top_idx, float *top_score, int32 *cand)
{
    int         got = it_topk(scores, m->n_items, in->seen, in->nseen, ntop, top_idx, top_score);
    double      tol_scale;
    double      tol_const;
    int64       ncand;

    if (got == 0)
        return;
    ItScoreTolerance(m, in, &tol_scale, &tol_const);
    ncand = it_topk_candidates(scores, m->n_items, in->seen, in->nseen, ntop, top_idx, top_score,
                               got, m->item_norms, tol_scale, tol_const, cand, m->n_items);
    for (int64 i = 0; i < ncand; i++)
        scores[cand[i]] = ItItemScore(m, in, cand[i]);
}

/*
 * Scores and measures the users of a block: one sgemm for those with a
 * vector, the popularity ranking for the others.
 */
static void
FlushBlock(ItModel *m, ItEvalUser *block, int nblock, int nvec, int k,
           float *X, float *S, const float *popular, int32 *top_idx,
           float *top_score, int32 *cand, ItSegment *segs)
{
    if (nvec > 0)
    {
        int         r = 0;

        for (int i = 0; i < nblock; i++)
        {
            if (block[i].row < 0)
                continue;
            memcpy(X + (size_t) r * m->k, block[i].in.x, sizeof(float) * m->k);
            r++;
        }
        /* S[nvec x n] = X[nvec x k] Y^T */
        it_score_many(m->Y, m->n_items, m->k, X, nvec, S);
        /* the features path ranks with a popularity term, as recommend() does */
        for (int i = 0; i < nblock; i++)
        {
            if (block[i].row >= 0 && block[i].in.pop_blend > 0.0f)
                it_add_scaled(S + (size_t) block[i].row * m->n_items, m->pop_score, m->n_items,
                              block[i].in.pop_blend);
        }
    }
    for (int i = 0; i < nblock; i++)
    {
        const float *scores = block[i].nb ? block[i].nb : popular;

        if (block[i].row >= 0)
        {
            float      *row = S + (size_t) block[i].row * m->n_items;

            ExactNearBoundary(m, &block[i].in, row, (int) Min((int64) k, m->n_items),
                              top_idx, top_score, cand);
            scores = row;
        }
        UserMetricsOf(m, &block[i], scores, k, top_idx, top_score, segs);
    }
}

/*
 * The items of domain d of m as a model of their own, for ranking and
 * measuring within the domain: the arrays point into m's (index 0 is item
 * domain_start[d]); the interest of a user is still decided on m.
 */
/*
 * A user's interest ranked within domain d: seen becomes the seen items
 * of the domain, as indexes of its DomainView; cross when the user has
 * seen items in other domains only.
 */
static void
InDomain(const ItModel *full, int d, ItEvalUser *u)
{
    int64       lo = full->domain_start[d];
    int64       hi = full->domain_start[d + 1];
    int         w = 0;

    for (int i = 0; i < u->in.nseen; i++)
        if (u->in.seen[i] >= lo && u->in.seen[i] < hi)
            u->in.seen[w++] = (int32) (u->in.seen[i] - lo);
    u->cross = u->in.nseen > 0 && w == 0;
    u->in.nseen = w;
}

static ItModel *
DomainView(ItModel *m, int d)
{
    ItModel    *v = palloc(sizeof(ItModel));
    int64       lo = m->domain_start[d];
    int64       w = 0;

    *v = *m;
    v->n_items = m->domain_start[d + 1] - lo;
    v->item_ids = m->item_ids + lo;
    v->Y = m->Y + (size_t) lo * m->k;
    v->popularity = m->popularity + lo;
    v->pop_score = m->pop_score + lo;
    v->item_norms = m->item_norms + lo;
    v->scores = m->scores + lo;
    v->pop_order = palloc(sizeof(int32) * Max(v->n_items, 1));
    for (int64 i = 0; i < m->n_items; i++)
        if (m->pop_order[i] >= lo && m->pop_order[i] < lo + v->n_items)
            v->pop_order[w++] = (int32) (m->pop_order[i] - lo);
    v->n_domains = 0;
    return v;
}

/*
 * evaluate(model text, test text, k int DEFAULT 10, domain text DEFAULT NULL)
 *   RETURNS TABLE (segment text, users bigint, precision_at_k float8,
 *                  recall_at_k float8, ndcg_at_k float8, map_at_k float8,
 *                  auc float8, coverage float8)
 *
 * Three rows: 'all', 'warm', 'cold'; with a domain (a model trained with
 * domains needs one) only that domain's items are ranked and measured, the
 * test rows of other domains (a domain column) are left out, warm users
 * are those with interactions in the domain, and a fourth row
 * 'cross_domain' counts the users with interactions in other domains
 * only; a model trained with source_models has that row too, for the
 * users served from their vectors in the source models alone ('domain:'
 * sources).  A segment without users has
 * users = 0 and NULL metrics.  model NULL means the most recently deployed
 * model.  Metrics are means over the segment's users (AUC over those that
 * have at least one negative); coverage is the share of the catalogue that
 * appears in at least one of the segment's top-k lists.
 */
PG_FUNCTION_INFO_V1(interest_transfer_evaluate);
Datum
interest_transfer_evaluate(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    char       *model;
    char       *test;
    int         k;
    ItModel    *m;
    ItTestPair *pairs;
    int64       npairs;
    ItSegment   segs[NSEGMENTS];
    MemoryContext blockcxt;
    MemoryContext oldcxt;
    ItEvalUser *block;
    int         blocksize;
    int         nblock = 0;
    int         nvec = 0;
    float      *X;
    float      *S;
    float      *popular;
    int32      *top_idx;
    float      *top_score;
    int32      *cand;
    int64       p;
    char       *domain;
    char       *context;
    int         c;
    int         d;
    ItModel    *full;
    int         nsegments;

    ItSetSchema(fcinfo);
    model = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
    if (PG_ARGISNULL(1))
        ItNullArgument("test", "Give a table name or a query with the columns user_id and item_id.");
    test = text_to_cstring(PG_GETARG_TEXT_PP(1));
    if (PG_ARGISNULL(2))
        ItNullArgument("k", "Pass the length of the lists to measure, for example 10.");
    k = PG_GETARG_INT32(2);
    if (k <= 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("k must be positive, not %d", k),
                 errhint("Measure lists of at least one item, for example k => 10.")));
    if (k > IT_MAX_K)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("k must be at most %d, not %d", IT_MAX_K, k),
                 errhint("Measure shorter lists, for example k => 10.")));

    domain = (PG_NARGS() > 3 && !PG_ARGISNULL(3)) ? text_to_cstring(PG_GETARG_TEXT_PP(3)) : NULL;
    context = (PG_NARGS() > 4 && !PG_ARGISNULL(4)) ? text_to_cstring(PG_GETARG_TEXT_PP(4)) : NULL;

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    full = ItGetModel(model);
    d = ItDomainArgument(full, domain, true);
    /* NULL: the global vectors (not the context of the moment evaluate runs) */
    c = context == NULL ? -1 : ItContextArgument(full, context);
    /* within a domain: its items only, as recommend(..., domain) ranks them */
    m = d >= 0 ? DomainView(full, d) : full;
    /* cross_domain: with a domain, or with source models */
    nsegments = d >= 0 || full->opts.source_models != NULL ? NSEGMENTS : SEG_CROSS;

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    npairs = ReadTestSet(test, m->name, m->opts.positive_threshold, domain, &pairs);

    memset(segs, 0, sizeof(segs));
    for (int s = 0; s < NSEGMENTS; s++)
        segs[s].covered = palloc_extended(sizeof(bool) * Max(m->n_items, 1),
                                          MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

    /* Popularity as scores: rank order, so ties fall as recommend() breaks them. */
    popular = palloc_extended(sizeof(float) * Max(m->n_items, 1), MCXT_ALLOC_HUGE);
    for (int64 i = 0; i < m->n_items; i++)
        popular[m->pop_order[i]] = (float) (m->n_items - i);

    blocksize = (int) Max(1, Min((int64) IT_EVAL_MAX_BLOCK,
                                 IT_EVAL_BLOCK_FLOATS / Max(m->n_items, 1)));
    block = palloc0(sizeof(ItEvalUser) * blocksize);
    X = palloc(sizeof(float) * blocksize * m->k);
    S = palloc_extended(sizeof(float) * (Size) blocksize * Max(m->n_items, 1), MCXT_ALLOC_HUGE);
    top_idx = palloc(sizeof(int32) * k);
    top_score = palloc(sizeof(float) * k);
    cand = palloc_extended(sizeof(int32) * Max(m->n_items, 1), MCXT_ALLOC_HUGE);
    blockcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer evaluate block",
                                     ALLOCSET_DEFAULT_SIZES);

    p = 0;
    while (p < npairs)
    {
        int64       user_id = pairs[p].user_id;
        int64       end = p;
        ItEvalUser *u = &block[nblock];

        while (end < npairs && pairs[end].user_id == user_id)
            end++;

        oldcxt = MemoryContextSwitchTo(blockcxt);
        memset(u, 0, sizeof(ItEvalUser));
        u->user_id = user_id;
        ItUserInterestIn(full, user_id, c, &u->in);
        /* new to the domain and ranked by co-buyers, as recommend() ranks them */
        if (ItCrossDomainByNeighbours(full, &u->in, d))
        {
            u->nb = palloc_extended(sizeof(float) * Max(m->n_items, 1), MCXT_ALLOC_HUGE);
            CHECK_FOR_INTERRUPTS();
            ItCobuyerDomainScores(full, &u->in, true, user_id, d, u->nb);
        }
        if (d >= 0)
            InDomain(full, d, u);
        /* served from the source models alone: known there, not here */
        if (u->in.source == IT_SOURCE_DOMAIN)
            u->cross = true;
        u->pos = palloc(sizeof(int32) * (end - p));
        for (int64 q = p; q < end; q++)
        {
            int64       idx = d >= 0 ? ItItemIndex(full, d, pairs[q].item_id) : ItItemIndex(m, 0, pairs[q].item_id);

            if (idx >= 0 && d >= 0)
                idx -= full->domain_start[d];

            if (idx < 0)
                u->nunknown++;
            else
                u->pos[u->npos++] = (int32) idx;    /* item ids sorted: so are indexes */
        }
        MemoryContextSwitchTo(oldcxt);
        u->row = u->in.x != NULL && u->nb == NULL ? nvec++ : -1;
        nblock++;
        p = end;

        if (nblock == blocksize || p == npairs)
        {
            CHECK_FOR_INTERRUPTS();
            FlushBlock(m, block, nblock, nvec, k, X, S, popular, top_idx, top_score, cand, segs);
            nblock = 0;
            nvec = 0;
            MemoryContextReset(blockcxt);
        }
    }
    SPI_finish();

    for (int s = 0; s < nsegments; s++)
    {
        Datum       values[8];
        bool        nulls[8] = {false, false, false, false, false, false, false, false};
        ItSegment  *seg = &segs[s];
        double      nu = (double) seg->users;

        values[0] = CStringGetTextDatum(SegmentNames[s]);
        values[1] = Int64GetDatum(seg->users);
        if (seg->users == 0)
        {
            for (int c = 2; c < 8; c++)
                nulls[c] = true;
        }
        else
        {
            values[2] = Float8GetDatum(seg->precision / nu);
            values[3] = Float8GetDatum(seg->recall / nu);
            values[4] = Float8GetDatum(seg->ndcg / nu);
            values[5] = Float8GetDatum(seg->ap / nu);
            if (seg->auc_users > 0)
                values[6] = Float8GetDatum(seg->auc / (double) seg->auc_users);
            else
                nulls[6] = true;
            values[7] = Float8GetDatum(m->n_items > 0 ?
                                       (double) seg->ncovered / (double) m->n_items : 0.0);
        }
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    PG_RETURN_NULL();
}

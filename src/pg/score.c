/*
 * score.c
 *    recommend(), recommend_for(), score() and similar_items(): scoring
 *    with the deployed version of a model, from the backend's model cache
 *    (cache.c).
 *
 * Which interest serves a user is decided in one place (interest.c), so
 * every scoring function (and evaluate, refresh) answers the same way for
 * the same user; this file only ranks and reports.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/tuplestore.h"

#include "context.h"
#include "cross_domain.h"
#include "interest.h"

/* Is idx in the sorted list set[0..n)? */
static inline bool
InSorted(const int32 *set, int n, int32 idx)
{
    int         lo = 0,
                hi = n - 1;

    while (lo <= hi)
    {
        int         mid = lo + (hi - lo) / 2;

        if (set[mid] == idx)
            return true;
        if (set[mid] < idx)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return false;
}

/*
 * The k best of n items by exact(i), best first, ties by the lower index
 * (the lower item_id), skipping exclude[0..nexclude) (sorted), from
 * scores[] within tol(i) = tol_scale * norms[i] + tol_const of exact(i)
 * (it_topk_exact; the buffers grow when the near ties need it).  Returns
 * how many were written.
 */
static int
ExactTopK(const float *scores, int64 n, const int32 *exclude, int nexclude, int k,
          const float *norms, double tol_scale, double tol_const,
          ItExactScoreFn exact, const void *arg, int32 *out_idx, float *out_score)
{
    int64       cap = (int64) k + 64;
    int64       need;
    int         got;

    for (;;)
    {
        int32      *cand = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
        float      *cand_score = palloc_extended(sizeof(float) * cap, MCXT_ALLOC_HUGE);

        got = it_topk_exact(scores, n, exclude, nexclude, k, norms, tol_scale, tol_const,
                            exact, arg, cand, cand_score, cap, &need, out_idx, out_score);
        pfree(cand);
        pfree(cand_score);
        if (got >= 0)
            return got;
        cap = need;
    }
}

typedef struct ItScoreArg
{
    const ItModel *m;
    const ItInterest *in;
    int64       lo;             /* index 0 of the ranking is item lo */
    const int32 *map;           /* when not NULL, index i is item lo + map[i] */
} ItScoreArg;

static float
ExactItemScore(const void *arg, int64_t idx)
{
    const ItScoreArg *a = arg;

    return ItItemScore(a->m, a->in, a->lo + (a->map ? a->map[idx] : idx));
}

/*
 * RankVectorScores' ranking from a shortlist of the scores (see
 * it_q8_shortlist: block_max, the largest score of each block, and
 * norms_block, the largest norm of each): -1 when there is none, so that
 * all the scores are ranked.
 */
static int
RankShortlist(const ItModel *m, const ItInterest *in, int64 lo, int64 hi, float *scores, float *block_max,
              const int32 *exclude, int nexclude, int kk, const float *norms, const float *norms_block,
              double tol_scale, double tol_const, int32 *out_idx, float *out_score)
{
    int32      *top_idx = palloc(sizeof(int32) * kk);
    float      *top_score = palloc(sizeof(float) * kk);
    int64       cap = (int64) kk + 256;
    int32      *list = NULL;
    int64       n;
    int         got = -1;

    for (;;)
    {
        list = list ? repalloc_huge(list, sizeof(int32) * cap) : palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
        n = it_q8_shortlist(scores, NULL, block_max, lo, hi, exclude, nexclude, kk, norms, norms_block,
                            tol_scale, tol_const, top_idx, top_score, list, NULL, cap);
        if (n <= cap)
            break;
        cap = n;
    }
    if (n >= 0)
    {
        float      *sub_score = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);
        float      *sub_norm = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);
        ItScoreArg  arg = {m, in, lo, list};

        for (int64 i = 0; i < n; i++)
        {
            sub_score[i] = scores[list[i]];
            sub_norm[i] = norms[list[i]];
        }
        got = ExactTopK(sub_score, n, NULL, 0, kk, sub_norm, tol_scale, tol_const,
                        ExactItemScore, &arg, out_idx, out_score);
        for (int i = 0; i < got; i++)
            out_idx[i] = list[out_idx[i]];
        pfree(sub_score);
        pfree(sub_norm);
    }
    pfree(list);
    pfree(top_idx);
    pfree(top_score);
    return got;
}

/*
 * The entries of the sorted list set[0..n) within [lo, hi), shifted by
 * -lo, into out (room for n); returns how many.
 */
static int
ExcludeInRange(const int32 *set, int n, int64 lo, int64 hi, int32 *out)
{
    int         w = 0;

    for (int i = 0; i < n; i++)
        if (set[i] >= lo && set[i] < hi)
            out[w++] = (int32) (set[i] - lo);
    return w;
}

/*
 * exclude (sorted model indexes) for a ranking whose index 0 is item lo:
 * exclude itself when lo is 0, else a palloc'd list of its entries in
 * [lo, hi), shifted by -lo (*nexclude becomes their number).  Free it when
 * it is not exclude.
 */
static const int32 *
ExcludeFrom(const int32 *exclude, int *nexclude, int64 lo, int64 hi)
{
    int32      *shifted;

    if (lo == 0 || *nexclude == 0)
        return exclude;
    shifted = palloc(sizeof(int32) * *nexclude);
    *nexclude = ExcludeInRange(exclude, *nexclude, lo, hi, shifted);
    return shifted;
}

/* The items of domain d (-1: every item) are [*lo, *hi). */
static void
DomainRange(const ItModel *m, int d, int64 *lo, int64 *hi)
{
    *lo = d < 0 ? 0 : m->domain_start[d];
    *hi = d < 0 ? m->n_items : m->domain_start[d + 1];
}

/*
 * The kk best of domain d's items for a vector interest, from scores of
 * them (scores[i] for item lo + i; the popularity term is added here)
 * that are within tol_scale * norms[i] + scan_tol (plus the popularity
 * term's rounding) of the exact score ItItemScore: ranked by the exact score,
 * ties by the lower item_id, exclude (sorted, model indexes) skipped.
 * With block_max (it_q8_scores') and norms_block (the largest norm of
 * each block), only a shortlist is ranked.  Returns how many were written.
 */
static int
RankVectorScores(const ItModel *m, const ItInterest *in, int d, float *scores,
                 const int32 *exclude, int nexclude, int kk,
                 const float *norms, double tol_scale, double scan_tol,
                 float *block_max, const float *norms_block, int32 *out_idx, float *out_score)
{
    int64       lo;
    int64       hi;
    double      blas_scale;
    double      tol_const;
    const int32 *given = exclude;
    int         got;

    DomainRange(m, d, &lo, &hi);
    {
        ItScoreArg  arg = {m, in, lo, NULL};

        if (in->pop_blend > 0.0f)
            for (int64 i = 0; i < hi - lo; i++)
                scores[i] += in->pop_blend * m->pop_score[lo + i];
        exclude = ExcludeFrom(exclude, &nexclude, lo, hi);
        /* the popularity term's part of the tolerance */
        ItScoreTolerance(m, in, &blas_scale, &tol_const);
        tol_const += scan_tol;
        got = -1;
        /* block maxima of the scores as they are (no popularity term added) */
        if (block_max != NULL && !(in->pop_blend > 0.0f))
            got = RankShortlist(m, in, lo, hi, scores, block_max, exclude, nexclude, kk, norms, norms_block,
                                tol_scale, tol_const, out_idx, out_score);
        if (got < 0)
            got = ExactTopK(scores, hi - lo, exclude, nexclude, kk, norms, tol_scale, tol_const,
                            ExactItemScore, &arg, out_idx, out_score);
    }
    for (int i = 0; i < got; i++)
        out_idx[i] += (int32) lo;
    if (exclude != given)
        pfree((void *) exclude);
    return got;
}

/* The scale of the 8-bit scores' item tolerances (m->q8_tol) for in->x. */
static double
Q8ToleranceScale(const ItModel *m, const ItInterest *in)
{
    return ItVectorNorm(in->x, m->k) * (1.0 + 1e-5);
}

/*
 * RankVectorScores of domain d's scores from the 8-bit scan (it_q8_scores
 * or it_q8_scores_many, in->x quantised by it_q8_query, whose bound is
 * query_tol) and their block maxima.
 */
static int
RankQ8Scores(const ItModel *m, const ItInterest *in, int d, const int32 *exclude, int nexclude, int kk,
             double query_tol, float *scores, float *block_max, int32 *out_idx, float *out_score)
{
    int64       lo;
    int64       hi;

    DomainRange(m, d, &lo, &hi);
    return RankVectorScores(m, in, d, scores, exclude, nexclude, kk,
                            m->q8_tol + lo, Q8ToleranceScale(m, in), query_tol,
                            block_max, m->q8_tol_block, out_idx, out_score);
}

/*
 * The kk best of domain d's items for a vector interest without a
 * popularity term, from the 4-bit copy (an eighth of the float matrix's
 * bytes): its scan writes only the block maxima, the blocks that can hold
 * one of the kk best are scored again from the 8-bit copy
 * (it_q4_shortlist), and the few items its bounds leave are scored
 * exactly.  The same ranking as RankQ8Scores'.  Returns -1 when there is
 * no shortlist (rank with the 8-bit copy instead): m->block_max is then
 * overwritten.
 */
static int
RankQ4(ItModel *m, const ItInterest *in, int d, const int32 *exclude, int nexclude, int kk,
       int32 *out_idx, float *out_score)
{
    int64       lo;
    int64       hi;
    int8_t     *qx = palloc(it_q8_query_bytes(m->k));
    float       sx;
    double      tol4;
    double      tol8;
    double      blas_scale;
    double      pop_tol;
    double      tol_scale = Q8ToleranceScale(m, in);
    ItQ8Rescan  rescan;
    const int32 *given = exclude;
    int32      *top_idx = palloc(sizeof(int32) * kk);
    float      *top_score = palloc(sizeof(float) * kk);
    /* the 8-bit bounds leave about as many items as kk: room for far more */
    int64       cap = (int64) kk + 4096;
    int32      *list = palloc_extended(sizeof(int32) * cap, MCXT_ALLOC_HUGE);
    float      *list_score = palloc_extended(sizeof(float) * cap, MCXT_ALLOC_HUGE);
    int64       n;
    int         got = -1;

    DomainRange(m, d, &lo, &hi);
    exclude = ExcludeFrom(exclude, &nexclude, lo, hi);
    /* one 8-bit query for both copies (the same qx and sx): only the bounds differ */
    tol8 = it_q8_query(in->x, m->k, m->q8_norm_max, qx, &sx);
    tol4 = it_q8_query(in->x, m->k, m->q4_norm_max, qx, &sx);
    ItScoreTolerance(m, in, &blas_scale, &pop_tol);
    rescan = (ItQ8Rescan) {NULL, NULL, m->k, qx, sx, m->q4, m->q4_scale};
    n = it_q4_shortlist(&rescan, m->block_max, lo, hi, exclude, nexclude, kk, m->q4_tol_block,
                        tol_scale, tol4 + pop_tol, m->q8, m->q8_scale, m->q8_tol + lo, m->q8_tol_block,
                        tol8 + pop_tol, top_idx, top_score, m->block_list, m->scores, list, list_score, cap,
                        ItScanThreads(hi - lo, 4));
    if (n >= 0 && n <= cap)
    {
        float      *sub_norm = palloc_extended(sizeof(float) * Max(n, 1), MCXT_ALLOC_HUGE);
        ItScoreArg  arg = {m, in, lo, list};

        for (int64 i = 0; i < n; i++)
            sub_norm[i] = m->q8_tol[lo + list[i]];
        got = ExactTopK(list_score, n, NULL, 0, kk, sub_norm, tol_scale, tol8 + pop_tol,
                        ExactItemScore, &arg, out_idx, out_score);
        for (int i = 0; i < got; i++)
            out_idx[i] = (int32) (lo + list[out_idx[i]]);
        pfree(sub_norm);
    }
    pfree(list);
    pfree(list_score);
    pfree(top_idx);
    pfree(top_score);
    pfree(qx);
    if (exclude != given)
        pfree((void *) exclude);
    return got;
}

/*
 * The k best items of domain d (-1: of every item) for an interest, best
 * first: out_idx/out_score must hold min(k, m->n_items) entries.  With
 * exclude_seen, in->seen is skipped.  A vector ranks by x.y (ties by
 * lower item_id); popularity by popularity desc, then item_id, scored
 * popularity / max popularity.  Returns how many were written.
 */
static int
TopItems(ItModel *m, const ItInterest *in, bool has_user, int64 user_id, bool exclude_seen, int d,
         int k, int32 *out_idx, float *out_score)
{
    const int32 *exclude = exclude_seen ? in->seen : NULL;
    int         nexclude = exclude_seen ? in->nseen : 0;
    int64       lo;
    int64       hi;
    int         kk;
    int         written = 0;

    DomainRange(m, d, &lo, &hi);
    kk = (int) Min((int64) k, hi - lo);
    if (kk <= 0)
        return 0;

    /* a user new to the domain, ranked by co-buyers (cross_domain.c): exact scores */
    if (ItCrossDomainByNeighbours(m, in, d))
    {
        int         got;

        /* nothing below can reload the model: m->scores stays ours */
        ItCobuyerDomainScores(m, in, has_user, user_id, d, m->scores + lo);
        /* the user's seen items are all outside the domain: nothing to exclude */
        got = it_topk(m->scores + lo, hi - lo, NULL, 0, kk, out_idx, out_score);
        for (int i = 0; i < got; i++)
            out_idx[i] += (int32) lo;
        return got;
    }

    if (in->x != NULL)
    {
        /*
         * The 8-bit copy first (a quarter of the bytes to read), scored
         * against an 8-bit copy of x, then the items the two roundings'
         * bound cannot rule out scored exactly; over many items the 4-bit
         * copy before it (RankQ4).  Nothing below can reload the model:
         * m->scores and m->block_max stay ours.
         */
        int8_t     *qx;
        float      *block_max = m->block_max;
        float       sx;
        double      query_tol;
        int         got;

        if (!(in->pop_blend > 0.0f) && ItScanBits(hi - lo) == 4)
        {
            got = RankQ4(m, in, d, exclude, nexclude, kk, out_idx, out_score);
            if (got >= 0)
                return got;
        }
        qx = palloc(it_q8_query_bytes(m->k));
        query_tol = it_q8_query(in->x, m->k, m->q8_norm_max, qx, &sx);
        it_q8_scores_threads(m->q8, m->q8_scale, lo, hi, m->k, qx, sx, m->scores + lo, block_max,
                             ItScanThreads(hi - lo, 8));
        pfree(qx);
        return RankQ8Scores(m, in, d, exclude, nexclude, kk, query_tol, m->scores + lo, block_max,
                            out_idx, out_score);
    }

    /* Popularity: walk the precomputed order, skipping excluded items. */
    for (int64 i = 0; i < m->n_items && written < kk; i++)
    {
        int32       idx = m->pop_order[i];

        if (idx < lo || idx >= hi)
            continue;
        if (nexclude > 0 && InSorted(exclude, nexclude, idx))
            continue;
        out_idx[written] = idx;
        out_score[written] = m->pop_score[idx];
        written++;
    }
    return written;
}

/*
 * The k best of the candidate items (indexes, sorted, distinct; all of
 * domain d when d >= 0), scored as TopItems scores every item: the exact
 * score (ItItemScore), the co-buyers' score, or popularity; in->seen left
 * out with exclude_seen.  Returns how many were written.
 */
static int
TopCandidates(ItModel *m, const ItInterest *in, bool has_user, int64 user_id, bool exclude_seen, int d,
              const int32 *cand, int ncand, int k, int32 *out_idx, float *out_score)
{
    ItScoredItem *sc = palloc(sizeof(ItScoredItem) * Max(ncand, 1));
    float      *nb = NULL;
    int         n = 0;

    if (ItCrossDomainByNeighbours(m, in, d))
    {
        nb = palloc_extended(sizeof(float) * Max(m->domain_start[d + 1] - m->domain_start[d], 1), MCXT_ALLOC_HUGE);
        ItCobuyerDomainScores(m, in, has_user, user_id, d, nb);
    }
    for (int i = 0; i < ncand; i++)
    {
        int32       idx = cand[i];

        if (exclude_seen && in->nseen > 0 && InSorted(in->seen, in->nseen, idx))
            continue;
        sc[n].idx = idx;
        sc[n].score = nb ? nb[idx - m->domain_start[d]] : in->x ? ItItemScore(m, in, idx) : m->pop_score[idx];
        n++;
    }
    qsort(sc, n, sizeof(ItScoredItem), ItCompareScoredItems);
    n = Min(n, k);
    for (int i = 0; i < n; i++)
    {
        out_idx[i] = sc[i].idx;
        out_score[i] = sc[i].score;
    }
    pfree(sc);
    if (nb)
        pfree(nb);
    return n;
}

/*
 * The candidates argument: the model's indexes of those ids (of domain d;
 * unknown ids left out), sorted and distinct.
 */
static int32 *
CandidateIndexes(const ItModel *m, int d, ArrayType *arr, int *n)
{
    int         nids;
    int64      *ids = ItIdArray(arr, "candidates", &nids);
    int32      *idx = palloc(sizeof(int32) * Max(nids, 1));
    int         w = 0;

    for (int i = 0; i < nids; i++)
    {
        int64       j = ItItemIndex(m, Max(d, 0), ids[i]);

        if (j >= 0)
            idx[w++] = (int32) j;
    }
    qsort(idx, w, sizeof(int32), ItCompareInt32);
    {
        int         u = 0;

        for (int i = 0; i < w; i++)
            if (u == 0 || idx[i] != idx[u - 1])
                idx[u++] = idx[i];
        w = u;
    }
    pfree(ids);
    *n = w;
    return idx;
}

/* Argument argno as a list length: ERRORs when NULL, < 1 or > IT_MAX_K. */
static int
ArgK(FunctionCallInfo fcinfo, int argno)
{
    int32       k;

    if (PG_ARGISNULL(argno))
        ItNullArgument("k", "Pass the number of items wanted, for example 10.");
    k = PG_GETARG_INT32(argno);
    if (k <= 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("k must be positive, not %d", k),
                 errhint("Ask for at least one item.")));
    if (k > IT_MAX_K)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("k must be at most %d, not %d", IT_MAX_K, k),
                 errhint("Ask for fewer items; any k from the catalogue size up to %d returns every item.",
                         IT_MAX_K)));
    return k;
}

static char *
ModelArg(FunctionCallInfo fcinfo, int argno)
{
    return PG_ARGISNULL(argno) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * Appends recommend()'s rows (item_id, score, rank, source) for the k best
 * items of an interest to a materialized SRF's tuplestore
 * (InitMaterializedSRF with MAT_SRF_USE_EXPECTED_DESC).
 */
static void
PutTopItems(ReturnSetInfo *rsinfo, ItModel *m, const ItInterest *in, int d, bool user_column, int64 user_id,
            const int32 *top_idx, const float *top_score, int n)
{
    Datum       source = CStringGetTextDatum(ItInterestSourceLabel(m, in, d));

    for (int i = 0; i < n; i++)
    {
        Datum       values[5];
        bool        nulls[5] = {false, false, false, false, false};
        int         c = 0;

        /* recommend_batch's rows start with the user */
        if (user_column)
            values[c++] = Int64GetDatum(user_id);
        values[c++] = Int64GetDatum(m->item_ids[top_idx[i]]);
        values[c++] = Float4GetDatum(top_score[i]);
        values[c++] = Int32GetDatum(i + 1);
        values[c++] = source;
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    pfree(DatumGetPointer(source));
}

static void
ReturnTopItems(ReturnSetInfo *rsinfo, ItModel *m, const ItInterest *in, bool has_user, int64 user_id,
               bool exclude_seen, int d, int k, const int32 *cand, int ncand, bool user_column)
{
    int         n = (int) Min((int64) k, m->n_items);
    int32      *top_idx = palloc(sizeof(int32) * Max(n, 1));
    float      *top_score = palloc(sizeof(float) * Max(n, 1));

    if (cand != NULL)
        n = TopCandidates(m, in, has_user, user_id, exclude_seen, d, cand, ncand, n, top_idx, top_score);
    else
        n = TopItems(m, in, has_user, user_id, exclude_seen, d, k, top_idx, top_score);
    PutTopItems(rsinfo, m, in, d, user_column, user_id, top_idx, top_score, n);
    pfree(top_idx);
    pfree(top_score);
}

/*
 * The domain argument argno of a scoring function (NULL when absent: a
 * call through the definitions of an older release).
 */
static char *
DomainArg(FunctionCallInfo fcinfo, int argno)
{
    if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
        return NULL;
    return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/*
 * recommend(user_id bigint, k int DEFAULT 10, model text DEFAULT NULL,
 *           exclude_seen boolean DEFAULT true, domain text DEFAULT NULL)
 *   RETURNS TABLE (item_id bigint, score real, rank int, source text)
 *
 * A NULL user_id gives no rows (so a LATERAL join over a nullable column
 * simply drops those rows).  A model trained with domains needs a domain
 * and ranks that domain's items only; a user whose interactions are all
 * in other domains is served from the same vector, with source
 * 'domain:<those domains>'.
 */
PG_FUNCTION_INFO_V1(interest_transfer_recommend);
Datum
interest_transfer_recommend(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    int64       user_id;
    int         k;
    char       *model;
    bool        exclude_seen;
    char       *domain;
    int         d;
    int         c;
    ItModel    *m;
    ItInterest  in;
    int32      *cand = NULL;
    int         ncand = 0;

    ItSetSchema(fcinfo);
    k = ArgK(fcinfo, 1);
    model = ModelArg(fcinfo, 2);
    if (PG_ARGISNULL(3))
        ItNullArgument("exclude_seen", "Pass true to leave out the items the user already interacted with, false to keep them.");
    exclude_seen = PG_GETARG_BOOL(3);
    domain = DomainArg(fcinfo, 4);

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    m = ItGetModelForCall(fcinfo, model);
    d = ItDomainArgument(m, domain, true);
    c = ItContextArgument(m, DomainArg(fcinfo, 5));
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    user_id = PG_GETARG_INT64(0);

    ItUserInterestIn(m, user_id, c, &in);
    /* candidates: only those items (business filters), scored as all items are */
    if (PG_NARGS() > 6 && !PG_ARGISNULL(6))
        cand = CandidateIndexes(m, d, PG_GETARG_ARRAYTYPE_P(6), &ncand);
    ReturnTopItems(rsinfo, m, &in, true, user_id, exclude_seen, d, k, cand, ncand, false);
    PG_RETURN_NULL();
}

/* An id and where it was in its array. */
typedef struct PlacedId
{
    int64       id;
    int         pos;
} PlacedId;

static int
ComparePlacedIds(const void *a, const void *b)
{
    const PlacedId *x = a;
    const PlacedId *y = b;

    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Keeps the first occurrence of each id of ids[0..n), in order; returns how many are left. */
static int
FirstOccurrences(int64 *ids, int n)
{
    PlacedId   *p = palloc(sizeof(PlacedId) * Max(n, 1));
    bool       *keep = palloc0(sizeof(bool) * Max(n, 1));
    int         w = 0;

    for (int i = 0; i < n; i++)
    {
        p[i].id = ids[i];
        p[i].pos = i;
    }
    qsort(p, n, sizeof(PlacedId), ComparePlacedIds);
    for (int i = 0; i < n; i++)
        if (i == 0 || p[i].id != p[i - 1].id)
            keep[p[i].pos] = true;
    for (int i = 0; i < n; i++)
        if (keep[i])
            ids[w++] = ids[i];
    pfree(p);
    pfree(keep);
    return w;
}

/*
 * Users recommend_batch reads the rows of with one query and scores
 * together: as many as IT_BATCH_MAXIMA block maxima allow (at least one,
 * at most IT_BATCH_USERS).
 */
#define IT_BATCH_MAXIMA     (4 * 1024 * 1024)
#define IT_BATCH_USERS      256

/*
 * The rankings it_q8_scores_rank_many does for recommend_batch's users
 * scored by the scan (row[i] >= 0, their row of BM): rk[row] with room
 * for kk items (rk_idx/rk_score, kk per row); one the scratch is too
 * small for is ranked alone after (got -1: RankQ8Scores).  The bounds are
 * RankQ8Scores' own, so the rows are the ones recommend() gives.
 */
static void
PrepareRankings(const ItModel *m, const ItInterest *in, int n, const int *row, int d, bool exclude_seen,
                int kk, const double *query_tol, float *BM, ItQ8Ranking *rk, int32 *rk_idx,
                float *rk_score)
{
    int64       lo;
    int64       hi;
    int64       nb;

    DomainRange(m, d, &lo, &hi);
    nb = it_q8_blocks(lo, hi);
    for (int i = 0; i < n; i++)
    {
        ItQ8Ranking *r;
        double      blas_scale;
        double      tol_const;

        if (row[i] < 0)
            continue;
        r = &rk[row[i]];
        memset(r, 0, sizeof(*r));
        r->got = -1;
        r->out_idx = rk_idx + (size_t) row[i] * kk;
        r->out_score = rk_score + (size_t) row[i] * kk;
        r->scores = NULL;
        r->block_max = BM + (size_t) row[i] * nb;
        r->x = in[i].x;
        if (exclude_seen && in[i].nseen > 0)
        {
            int32      *shifted = palloc(sizeof(int32) * in[i].nseen);

            r->nexclude = ExcludeInRange(in[i].seen, in[i].nseen, lo, hi, shifted);
            r->exclude = shifted;
        }
        /* RankQ8Scores' bounds (RankVectorScores adds the same tol_const) */
        ItScoreTolerance(m, &in[i], &blas_scale, &tol_const);
        r->tol_scale = Q8ToleranceScale(m, &in[i]);
        r->tol_const = tol_const + query_tol[row[i]];
    }
}

/*
 * recommend_batch(user_ids bigint[], k int DEFAULT 10, model text DEFAULT NULL,
 *                 exclude_seen boolean DEFAULT true, domain text DEFAULT NULL,
 *                 context text DEFAULT NULL, candidates bigint[] DEFAULT NULL)
 *   RETURNS TABLE (user_id bigint, item_id bigint, score real, rank int, source text)
 *
 * recommend() for many users in one call: the same rows for each user as
 * recommend(user_id, ...) gives, the user first, users in the order given
 * (a repeated user answered once; a NULL array gives no rows, a NULL
 * element is refused as recommend()'s candidates are).  The users' rows
 * are read a batch at a time with one query, and the users served by a
 * vector are scored 16 at a time by one pass over the 8-bit item copy and
 * ranked right after, over the scan threads (it_q8_scores_rank_many: each
 * block read once for 16 users, the same scores recommend()'s scan gives
 * each alone, ranked exactly as recommend() ranks them: block maxima,
 * shortlist, exact rescoring).  The pass keeps only each block's
 * maximum, not every score: the few blocks a shortlist reads are scanned
 * again for that user, and a user the pass cannot rank (a shortlist past
 * the scratch) is scanned again alone.  Users ranked with a popularity
 * term (folded in) are served one by one.  A
 * float matrix product instead reads four times the bytes and ranks every
 * score, and was slower than one recommend() call per user.
 * Not an overload of recommend(): recommend(NULL, 10) must keep meaning
 * one unknown user.
 */
PG_FUNCTION_INFO_V1(interest_transfer_recommend_batch);
Datum
interest_transfer_recommend_batch(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    int64      *ids;
    int         nids;
    int         k;
    char       *model;
    bool        exclude_seen;
    int         d;
    int         c;
    ItModel    *m;
    int32      *volatile cand = NULL;  /* kept across PG_TRY */
    int         ncand = 0;
    int64       lo;
    int64       hi;
    int64       nb;
    int         kk;
    int         batch;
    size_t      qbytes;
    float      *BM;             /* the block maxima of a batch's vectors, nb each */
    ItInterest *in;
    int        *row;            /* the user's row of BM, or -1: ranked alone */
    int8_t     *qx;
    float      *sx;
    double     *query_tol;
    int32      *top_idx;
    float      *top_score;
    int         nthreads;
    ItQ8Ranking *rk;            /* the rankings of the users of S, by row */
    int32      *rk_idx;
    float      *rk_score;
    void       *scratch;
    MemoryContext batchcxt;
    MemoryContext oldcxt;

    ItSetSchema(fcinfo);
    k = ArgK(fcinfo, 1);
    model = ModelArg(fcinfo, 2);
    if (PG_ARGISNULL(3))
        ItNullArgument("exclude_seen", "Pass true to leave out the items the user already interacted with, false to keep them.");
    exclude_seen = PG_GETARG_BOOL(3);

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    m = ItGetModelForCall(fcinfo, model);
    d = ItDomainArgument(m, DomainArg(fcinfo, 4), true);
    c = ItContextArgument(m, DomainArg(fcinfo, 5));
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    ids = ItIdArray(PG_GETARG_ARRAYTYPE_P(0), "user_ids", &nids);
    nids = FirstOccurrences(ids, nids);
    if (!PG_ARGISNULL(6))
        cand = CandidateIndexes(m, d, PG_GETARG_ARRAYTYPE_P(6), &ncand);

    DomainRange(m, d, &lo, &hi);
    kk = (int) Min((int64) k, hi - lo);
    nb = it_q8_blocks(lo, hi);
    batch = (int) Max(1, Min((int64) IT_BATCH_USERS, IT_BATCH_MAXIMA / Max(nb, 1)));
    qbytes = it_q8_query_bytes(m->k);
    /* a batch's buffers: allocated once, so their pages are touched once */
    BM = palloc_extended(sizeof(float) * (Size) batch * (Size) Max(nb, 1), MCXT_ALLOC_HUGE);
    in = palloc(sizeof(ItInterest) * batch);
    row = palloc(sizeof(int) * batch);
    qx = palloc(qbytes * batch);
    sx = palloc(sizeof(float) * batch);
    query_tol = palloc(sizeof(double) * batch);
    top_idx = palloc(sizeof(int32) * Max(kk, 1));
    top_score = palloc(sizeof(float) * Max(kk, 1));
    nthreads = ItScanThreads((int64) batch * (hi - lo), 8);
    rk = palloc(sizeof(ItQ8Ranking) * batch);
    rk_idx = palloc(sizeof(int32) * Max(kk, 1) * batch);
    rk_score = palloc(sizeof(float) * Max(kk, 1) * batch);
    scratch = palloc(it_q8_rank_scratch_bytes(Max(kk, 1), nthreads));
    batchcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer recommend_batch",
                                     ALLOCSET_DEFAULT_SIZES);
    PG_TRY();
    {
        for (int b0 = 0; b0 < nids; b0 += batch)
        {
            int         n = Min(batch, nids - b0);
            int         nx;

            CHECK_FOR_INTERRUPTS();
            oldcxt = MemoryContextSwitchTo(batchcxt);

            /* who each user is (their rows read in one query each) */
            if (c >= 0 && m->context_weight != NULL && m->context_weight[c] > 0.0)
                ItPrefetchUsers(m, ids + b0, n, m->contexts[c]);
            ItPrefetchUsers(m, ids + b0, n, NULL);
            nx = 0;
            for (int i = 0; i < n; i++)
            {
                ItUserInterestIn(m, ids[b0 + i], c, &in[i]);
                row[i] = -1;
                /* a popularity term in the ranking: served alone, its scores all needed */
                if (cand == NULL && kk > 0 && in[i].x != NULL && !(in[i].pop_blend > 0.0f) &&
                    !ItCrossDomainByNeighbours(m, &in[i], d))
                {
                    query_tol[nx] = it_q8_query(in[i].x, m->k, m->q8_norm_max, qx + qbytes * nx, &sx[nx]);
                    row[i] = nx++;
                }
            }
            /*
             * the vectors' scores, the 8-bit copy read once for several
             * users, and their rankings
             */
            if (nx > 0)
            {
                PrepareRankings(m, in, n, row, d, exclude_seen, kk, query_tol, BM, rk, rk_idx, rk_score);
                it_q8_scores_rank_many(m->q8, m->q8_scale, m->Y, lo, hi, m->k, nx, qx, sx, NULL, BM, m->q8_tol,
                                       m->q8_tol_block, kk, rk, scratch, nthreads);
            }
            for (int i = 0; i < n; i++)
            {
                int         got;

                if (row[i] < 0)
                {
                    ReturnTopItems(rsinfo, m, &in[i], true, ids[b0 + i], exclude_seen, d, k, cand, ncand, true);
                    continue;
                }
                got = rk[row[i]].got;
                if (got >= 0)
                {
                    PutTopItems(rsinfo, m, &in[i], d, true, ids[b0 + i], rk[row[i]].out_idx,
                                rk[row[i]].out_score, got);
                    continue;
                }
                /* scanned again alone, as recommend() scans (m->scores is ours here) */
                it_q8_scores_threads(m->q8, m->q8_scale, lo, hi, m->k, qx + qbytes * row[i], sx[row[i]],
                                     m->scores + lo, BM + (size_t) row[i] * nb, ItScanThreads(hi - lo, 8));
                got = RankQ8Scores(m, &in[i], d, exclude_seen ? in[i].seen : NULL, exclude_seen ? in[i].nseen : 0,
                                   kk, query_tol[row[i]], m->scores + lo,
                                   BM + (size_t) row[i] * nb, top_idx, top_score);
                PutTopItems(rsinfo, m, &in[i], d, true, ids[b0 + i], top_idx, top_score, got);
            }
            MemoryContextSwitchTo(oldcxt);
            ItForgetPrefetchedUsers();
            MemoryContextReset(batchcxt);
        }
    }
    PG_FINALLY();
    {
        ItForgetPrefetchedUsers();
    }
    PG_END_TRY();
    MemoryContextDelete(batchcxt);
    PG_RETURN_NULL();
}

/*
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
 */
PG_FUNCTION_INFO_V1(interest_transfer_recommend_for);
Datum
interest_transfer_recommend_for(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    Jsonb      *features = NULL;
    int64      *ids = NULL;
    int         nids = 0;
    int         k;
    char       *model;
    ItModel    *m;
    ItInterest  in;

    ItSetSchema(fcinfo);
    k = ArgK(fcinfo, 2);
    model = ModelArg(fcinfo, 3);

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
        ids = ItIdArray(PG_GETARG_ARRAYTYPE_P(1), "items", &nids);

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    m = ItGetModelForCall(fcinfo, model);
    ItVisitorInterest(m, features, ids, nids, &in);
    /* the given items are left out of the list, whatever the path */
    ReturnTopItems(rsinfo, m, &in, false, 0, true, ItDomainArgument(m, NULL, true), k, NULL, 0, false);
    PG_RETURN_NULL();
}

/* The last user's interest, kept per call site of score(). */
typedef struct ItScoreCache
{
    bool        valid;
    uint64      epoch;          /* ItCallCache epoch it was read in */
    uint64      generation;     /* model it was read for */
    int64       user_id;
    int         context;        /* the context index it was decided in */
    ItInterest  interest;       /* allocated in fn_mcxt */
    int         nb_domain;      /* co-buyer scores of this domain's items, or -1 */
    float      *nb_scores;      /* allocated in fn_mcxt */
} ItScoreCache;

/*
 * score(user_id bigint, item_id bigint, model text DEFAULT NULL,
 *       domain text DEFAULT NULL) RETURNS real
 *
 * NULL when either id is NULL or the model does not know the item; for a
 * user served by popularity, the item's popularity / max popularity, the
 * same score recommend() gives.
 */
PG_FUNCTION_INFO_V1(interest_transfer_score);
Datum
interest_transfer_score(PG_FUNCTION_ARGS)
{
    int64       user_id;
    int64       item_id;
    char       *model;
    ItModel    *m;
    ItCallCache *cc;
    ItScoreCache *sc;
    int64       idx;
    int         d;
    int         c;

    if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
        PG_RETURN_NULL();
    user_id = PG_GETARG_INT64(0);
    item_id = PG_GETARG_INT64(1);
    model = ModelArg(fcinfo, 2);

    ItSetSchema(fcinfo);
    m = ItGetModelForCall(fcinfo, model);
    d = ItDomainArgument(m, DomainArg(fcinfo, 3), true);
    c = ItContextArgument(m, DomainArg(fcinfo, 4));
    idx = ItItemIndex(m, Max(d, 0), item_id);
    if (idx < 0)
        PG_RETURN_NULL();

    cc = ItGetCallCache(fcinfo);
    if (cc->extra == NULL)
        cc->extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ItScoreCache));
    sc = (ItScoreCache *) cc->extra;
    if (!sc->valid || sc->epoch != cc->epoch || sc->generation != m->generation ||
        sc->user_id != user_id || sc->context != c)
    {
        MemoryContext oldcxt;

        sc->valid = false;
        if (sc->interest.x)
            pfree(sc->interest.x);
        if (sc->interest.seen)
            pfree(sc->interest.seen);
        if (sc->nb_scores)
            pfree(sc->nb_scores);
        if (sc->interest.label)
            pfree((char *) sc->interest.label);
        sc->nb_scores = NULL;
        sc->nb_domain = -1;
        memset(&sc->interest, 0, sizeof(ItInterest));
        oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
        ItUserInterestIn(m, user_id, c, &sc->interest);
        MemoryContextSwitchTo(oldcxt);
        sc->context = c;
        sc->epoch = cc->epoch;
        sc->generation = m->generation;
        sc->user_id = user_id;
        sc->valid = true;
    }
    /* ranked by co-buyers in this domain: the score recommend() reports */
    if (ItCrossDomainByNeighbours(m, &sc->interest, d))
    {
        if (sc->nb_domain != d)
        {
            if (sc->nb_scores)
                pfree(sc->nb_scores);
            sc->nb_scores = MemoryContextAllocHuge(fcinfo->flinfo->fn_mcxt,
                                                   sizeof(float) * Max(m->domain_start[d + 1] - m->domain_start[d], 1));
            ItCobuyerDomainScores(m, &sc->interest, true, user_id, d, sc->nb_scores);
            sc->nb_domain = d;
        }
        PG_RETURN_FLOAT4(sc->nb_scores[idx - m->domain_start[d]]);
    }
    PG_RETURN_FLOAT4(ItItemScore(m, &sc->interest, idx));
}

typedef struct ItCosineArg
{
    const ItModel *m;
    int32       self;           /* item index */
    int64       lo;             /* index 0 of the ranking is item lo */
} ItCosineArg;

/* The cosine similar_items reports between item index self and item lo + idx. */
static float
ExactCosine(const void *arg, int64_t rel)
{
    const ItCosineArg *a = arg;
    const ItModel *m = a->m;
    int64       idx = a->lo + rel;
    float       d = m->item_norms[a->self] * m->item_norms[idx];
    float       dot = ItDot(m->Y + (size_t) a->self * m->k, m->Y + (size_t) idx * m->k, m->k);

    return d > 0.0f ? Max(-1.0f, Min(1.0f, dot / d)) : 0.0f;
}

/*
 * similar_items(item_id bigint, k int DEFAULT 10, model text DEFAULT NULL,
 *               domain text DEFAULT NULL)
 *   RETURNS TABLE (item_id bigint, score real, rank int)
 *
 * With domains, the item and the items returned are of the given domain.
 * Cosine similarity of the items' factors, the item itself left out; an
 * item with all-zero factors is similar to nothing (cosine 0).  A NULL
 * item_id gives no rows; an item the model does not know is an ERROR.
 */
PG_FUNCTION_INFO_V1(interest_transfer_similar_items);
Datum
interest_transfer_similar_items(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    int64       item_id;
    int         k;
    char       *model;
    ItModel    *m;
    int64       idx;
    float      *scores;
    float       norm;
    int32       self;
    int32      *top_idx;
    float      *top_score;
    int         n;
    int         d;
    int64       lo;
    int64       hi;

    ItSetSchema(fcinfo);
    k = ArgK(fcinfo, 1);
    model = ModelArg(fcinfo, 2);

    InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
    m = ItGetModelForCall(fcinfo, model);
    d = ItDomainArgument(m, DomainArg(fcinfo, 3), true);
    if (PG_ARGISNULL(0))
        PG_RETURN_NULL();
    item_id = PG_GETARG_INT64(0);

    idx = ItItemIndex(m, Max(d, 0), item_id);
    if (idx < 0)
    {
        if (d >= 0)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_OBJECT),
                     errmsg("item %lld of domain \"%s\" is not in model \"%s\"",
                            (long long) item_id, m->domains[d], m->name),
                     errhint("Only items in the training data of version %d have factors; retrain with train('%s') to add new items.",
                             m->version, m->name)));
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("item %lld is not in model \"%s\"", (long long) item_id, m->name),
                 errhint("Only items in the training data of version %d have factors; retrain with train('%s') to add new items.",
                         m->version, m->name)));
    }
    DomainRange(m, d, &lo, &hi);

    self = (int32) (idx - lo);
    n = (int) Min((int64) k, hi - lo - 1);
    top_idx = palloc(sizeof(int32) * Max(n, 1));
    top_score = palloc(sizeof(float) * Max(n, 1));

    scores = m->scores + lo;    /* no PostgreSQL call until it_topk is done */
    it_score_all(m->Y + (size_t) lo * m->k, hi - lo, m->k, m->Y + (size_t) idx * m->k, scores);
    norm = m->item_norms[idx];
    for (int64 i = 0; i < hi - lo; i++)
    {
        float       dn = norm * m->item_norms[lo + i];

        scores[i] = dn > 0.0f ? Max(-1.0f, Min(1.0f, scores[i] / dn)) : 0.0f;
    }
    if (n > 0)
    {
        ItCosineArg arg = {m, (int32) idx, lo};

        /*
         * Ranked by exact cosines, ties by the lower item_id: the sgemv's
         * dot is within k u |y_a| |y_b| of the exact one, so its cosine
         * within about (k + 2) u; (k + 4) FLT_EPSILON is twice that.
         */
        n = ExactTopK(scores, hi - lo, &self, 1, n, NULL, 0.0, (m->k + 4) * (double) FLT_EPSILON,
                      ExactCosine, &arg, top_idx, top_score);
    }
    for (int i = 0; i < n; i++)
    {
        Datum       values[3];
        bool        nulls[3] = {false, false, false};

        values[0] = Int64GetDatum(m->item_ids[lo + top_idx[i]]);
        values[1] = Float4GetDatum(top_score[i]);
        values[2] = Int32GetDatum(i + 1);
        tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
    }
    PG_RETURN_NULL();
}

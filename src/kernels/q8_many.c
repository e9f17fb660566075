/*
 * q8_many.c
 *    Many users' 8-bit scans and rankings over threads, for
 *    recommend_batch: the queries are cut into one part per thread, and
 *    each part, 16 queries at a time, scanned (it_q8_scores_many) and
 *    ranked (it_q8_shortlist, then it_topk_exact on exact scores) while
 *    the scores are in the cache, so every query gets the same scores and
 *    the same top k as it does alone.  Without scores the scan writes
 *    only the block maxima, and a ranking scans again the few blocks its
 *    shortlist reads.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "clones.h"

/* The most threads the many-query scan and ranking start. */
#define IT_Q8_MANY_MAX_THREADS 8

/* A ranking's shortlist past this many items beyond k: ranked by the caller. */
#define IT_Q8_RANK_SLACK 256

/* Its exact top k's candidates past this many beyond k: the same. */
#define IT_Q8_EXACT_SLACK 64

/* Parts of n queries for nthreads threads: at least min_each queries each. */
static int
PartCount(int n, int nthreads, int min_each)
{
    int         parts = nthreads < IT_Q8_MANY_MAX_THREADS ? nthreads : IT_Q8_MANY_MAX_THREADS;

    if (min_each < 1)
        min_each = 1;
    if (parts > n / min_each)
        parts = n / min_each;
    return parts < 1 ? 1 : parts;
}

/* One part's scratch. */
static size_t
RankPartBytes(int kk)
{
    size_t      list = (size_t) kk + IT_Q8_RANK_SLACK;
    size_t      cand = (size_t) kk + IT_Q8_EXACT_SLACK;

    /* list, its scores and tolerances; top_idx/top_score; cand/cand_score */
    return list * (sizeof(int32_t) + 2 * sizeof(float)) + (size_t) kk * (sizeof(int32_t) + sizeof(float)) +
        cand * (sizeof(int32_t) + sizeof(float)) + 64;
}

size_t
it_q8_rank_scratch_bytes(int kk, int nthreads)
{
    int         n = nthreads < 1 ? 1 : nthreads < IT_Q8_MANY_MAX_THREADS ? nthreads : IT_Q8_MANY_MAX_THREADS;

    return RankPartBytes(kk) * (size_t) n;
}

typedef struct ManyPart
{
    const int8_t *Q;
    const float *scale;
    const float *Y;
    int64_t     lo;
    int64_t     hi;
    int         k;
    int         nq;             /* this part's queries, */
    const int8_t *qx;           /* their 8-bit copies, */
    const float *sx;
    float      *scores;         /* scores, */
    float      *block_max;
    ItQ8Ranking *r;             /* and rankings */
    const float *tol;
    const float *tol_block;
    int         kk;
    char       *scratch;
} ManyPart;

typedef struct ExactArg
{
    const float *x;
    const float *Y;
    int         k;
    int64_t     lo;
    const int32_t *list;
} ExactArg;

/* x.y as the server reports it (ItDot): summed in double, in order. */
static float
ExactScore(const void *arg, int64_t i)
{
    const ExactArg *a = arg;
    const float *y = a->Y + (size_t) (a->lo + a->list[i]) * (size_t) a->k;
    double      s = 0.0;

    for (int j = 0; j < a->k; j++)
        s += (double) a->x[j] * (double) y[j];
    return (float) s;
}

static void
RankOne(const ManyPart *p, int u)
{
    ItQ8Ranking *r = &p->r[u];
    ItQ8Rescan  rescan = {p->Q, p->scale, p->k, p->qx + (size_t) u * it_q8_query_bytes(p->k), p->sx[u]};
    int64_t     cap = (int64_t) p->kk + IT_Q8_RANK_SLACK;
    int64_t     capc = (int64_t) p->kk + IT_Q8_EXACT_SLACK;
    int32_t    *list = (int32_t *) p->scratch;
    float      *sub_score = (float *) (list + cap);
    float      *sub_tol = sub_score + cap;
    int32_t    *top_idx = (int32_t *) (sub_tol + cap);
    float      *top_score = (float *) (top_idx + p->kk);
    int32_t    *cand = (int32_t *) (top_score + p->kk);
    float      *cand_score = (float *) (cand + capc);
    int64_t     n;
    int64_t     need;
    ExactArg    arg = {r->x, p->Y, p->k, p->lo, list};

    r->got = -1;
    if (r->x == NULL || p->kk <= 0)
        return;
    n = it_q8_shortlist(r->scores, &rescan, r->block_max, p->lo, p->hi, r->exclude, r->nexclude, p->kk,
                        p->tol + p->lo, p->tol_block, r->tol_scale, r->tol_const, top_idx, top_score, list,
                        sub_score, cap);
    if (n < 0 || n > cap)
        return;
    for (int64_t i = 0; i < n; i++)
        sub_tol[i] = p->tol[p->lo + list[i]];
    r->got = it_topk_exact(sub_score, n, NULL, 0, p->kk, sub_tol, r->tol_scale, r->tol_const,
                           ExactScore, &arg, cand, cand_score, capc, &need, r->out_idx, r->out_score);
    for (int i = 0; i < r->got; i++)
        r->out_idx[i] = (int32_t) (p->lo + list[r->out_idx[i]]);
}

/*
 * A part's queries, a tile of 16 at a time: scanned, then ranked while
 * their scores are still in the cache.
 */
static void *
ManyRun(void *arg)
{
    ManyPart   *p = arg;
    size_t      qbytes = it_q8_query_bytes(p->k);
    int64_t     nb = it_q8_blocks(p->lo, p->hi);

    for (int u0 = 0; u0 < p->nq; u0 += 16)
    {
        int         n = p->nq - u0 < 16 ? p->nq - u0 : 16;

        it_q8_scores_many(p->Q, p->scale, p->lo, p->hi, p->k, n, p->qx + (size_t) u0 * qbytes, p->sx + u0,
                          p->scores ? p->scores + (size_t) u0 * (size_t) (p->hi - p->lo) : NULL,
                          p->block_max + (size_t) u0 * (size_t) nb);
        if (p->r != NULL)
            for (int u = u0; u < u0 + n; u++)
                RankOne(p, u);
    }
    return NULL;
}

void
it_q8_scores_rank_many(const int8_t *Q, const float *scale, const float *Y, int64_t lo, int64_t hi, int k,
                       int nq, const int8_t *qx, const float *sx, float *scores, float *block_max,
                       const float *tol, const float *tol_block, int kk, ItQ8Ranking *r,
                       void *scratch, int nthreads)
{
    ManyPart    parts[IT_Q8_MANY_MAX_THREADS];
    void       *args[IT_Q8_MANY_MAX_THREADS];
    size_t      qbytes = it_q8_query_bytes(k);
    int64_t     nb = it_q8_blocks(lo, hi);
    size_t      each = RankPartBytes(kk);
    /* whole tiles of 16 queries per part, so no part scans a narrower tile */
    int         n = PartCount(nq, nthreads, 16);

    for (int t = 0; t < n; t++)
    {
        int         u0 = (int) ((int64_t) nq * t / n) / 16 * 16;
        int         u1 = t == n - 1 ? nq : (int) ((int64_t) nq * (t + 1) / n) / 16 * 16;

        parts[t] = (ManyPart) {Q, scale, Y, lo, hi, k, u1 - u0, qx + (size_t) u0 * qbytes, sx + u0,
            scores ? scores + (size_t) u0 * (size_t) (hi - lo) : NULL, block_max + (size_t) u0 * (size_t) nb,
            r != NULL ? r + u0 : NULL, tol, tol_block, kk, (char *) scratch + (size_t) t * each};
    }
    /* the scans are picked before any thread reads them (the rankings' rescans too) */
    if (n > 1)
    {
        it_q8_scores_many(Q, scale, lo, hi, k, 0, qx, sx, scores, block_max);
        it_scan_pick();
    }
    for (int t = 0; t < n; t++)
        args[t] = &parts[t];
    it_run_parts(ManyRun, args, n);
}

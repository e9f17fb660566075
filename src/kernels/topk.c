/*
 * topk.c
 *    Scoring every item, selecting the best k, and ranking the near ties
 *    at the k-th place by an exact score.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "clones.h"
#include "kernels.h"

/* (sa, ia) ranks below (sb, ib): lower score, or same score, higher index */
static inline int64_t
Min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

#define WORSE(sa, ia, sb, ib) ((sa) < (sb) || ((sa) == (sb) && (ia) > (ib)))

/* Restores the min-heap (worst at the root) below position i. */
static void
SiftDown(int32_t *idx, float *sc, int size, int i)
{
    int32_t     vi = idx[i];
    float       vs = sc[i];

    for (;;)
    {
        int         c = 2 * i + 1;

        if (c >= size)
            break;
        if (c + 1 < size && WORSE(sc[c + 1], idx[c + 1], sc[c], idx[c]))
            c++;
        if (!WORSE(sc[c], idx[c], vs, vi))
            break;
        idx[i] = idx[c];
        sc[i] = sc[c];
        i = c;
    }
    idx[i] = vi;
    sc[i] = vs;
}

static void
SiftUp(int32_t *idx, float *sc, int i)
{
    int32_t     vi = idx[i];
    float       vs = sc[i];

    while (i > 0)
    {
        int         parent = (i - 1) / 2;

        if (!WORSE(vs, vi, sc[parent], idx[parent]))
            break;
        idx[i] = idx[parent];
        sc[i] = sc[parent];
        i = parent;
    }
    idx[i] = vi;
    sc[i] = vs;
}

/* Heap sort of a full min-heap: the worst goes to the back, best ends up first. */
static void
HeapSort(int32_t *idx, float *sc, int size)
{
    for (int end = size - 1; end > 0; end--)
    {
        int32_t     ti = idx[0];
        float       ts = sc[0];

        idx[0] = idx[end];
        sc[0] = sc[end];
        idx[end] = ti;
        sc[end] = ts;
        SiftDown(idx, sc, end, 0);
    }
}

/*
 * The scan below is a filter: once the heap is full, a block of scores is
 * looked at one by one only when one of them beats the worst kept score.
 * The check of a block is a branch-free loop the compiler vectorises (for
 * the generic target, AVX2 and AVX-512, picked at load time as in als.c),
 * so most of the n scores cost a vector compare; one call checks blocks
 * until one has a candidate (a call per block cost as much as the
 * compares).  The answer is the one a plain scan gives, since a block is
 * skipped only when no score in it could enter the heap.
 */

#define IT_TOPK_BLOCK 64

/* The block checks at each vector width (topk_kernel.h), in the sets of clones.h. */
#if IT_WIDTH_SETS == 3
#define TOPK_W 4
#define TOPK_SUFFIX _w4
#define TOPK_TARGET
#include "topk_kernel.h"
#define TOPK_W 8
#define TOPK_SUFFIX _w8
#define TOPK_TARGET IT_TARGET_V3
#include "topk_kernel.h"
#define TOPK_W 16
#define TOPK_SUFFIX _w16
#define TOPK_TARGET IT_TARGET_V4
#include "topk_kernel.h"
#else
#define TOPK_W IT_ONE_WIDTH
#define TOPK_SUFFIX _w
#define TOPK_TARGET
#include "topk_kernel.h"
#endif

typedef struct TopkKernelSet
{
    int64_t     (*first_above) (const float *s, const float *pop, float blend, int64_t n,
                                float worst);
    int64_t     (*first_candidate_block) (const float *s, const float *norms, int64_t n,
                                          double tol_scale, double threshold);
    void        (*block_maxima) (const float *s, int64_t n, int64_t nb, float *bmax);
} TopkKernelSet;

#if IT_WIDTH_SETS == 3
static const TopkKernelSet topk_kernels[3] = {
    {FirstAbove_w4, FirstCandidateBlock_w4, BlockMaxima_w4},
    {FirstAbove_w8, FirstCandidateBlock_w8, BlockMaxima_w8},
    {FirstAbove_w16, FirstCandidateBlock_w16, BlockMaxima_w16},
};
#else
static const TopkKernelSet topk_kernels[1] = {
    {FirstAbove_w, FirstCandidateBlock_w, BlockMaxima_w},
};
#endif

/* index into topk_kernels (it_width_choice) */
static int  topk_choice = -1;

static const TopkKernelSet *
TopkKernels(void)
{
    return &topk_kernels[it_width_choice(&topk_choice)];
}

int
it_topk_vector_width(int width)
{
    return it_width_choose(&topk_choice, width);
}

/* The score of item i: scores[i], plus blend * pop[i] when pop is given. */
static inline float
ScoreAt(const float *scores, const float *pop, float blend, int64_t i)
{
    return pop == NULL ? scores[i] : scores[i] + blend * pop[i];
}

static int
TopK(const float *scores, const float *pop, float blend, int64_t n,
     const int32_t *exclude, int64_t nexclude,
     int k, int32_t *out_idx, float *out_score)
{
    int         size = 0;
    int64_t     i = 0;
    int64_t     e = 0;
    const TopkKernelSet *kern = TopkKernels();

    if (k <= 0 || n <= 0)
        return 0;
    if (n > INT32_MAX)
        n = INT32_MAX;          /* indexes are int32 */

    while (i < n)
    {
        int64_t     stop;

        /* the next excluded index at or after i bounds this run */
        while (e < nexclude && exclude[e] < i)
            e++;
        stop = (e < nexclude && exclude[e] < n) ? exclude[e] : n;

        /* filling: every non-NaN score goes in */
        for (; i < stop && size < k; i++)
        {
            float       s = ScoreAt(scores, pop, blend, i);

            if (s != s)
                continue;
            out_idx[size] = (int32_t) i;
            out_score[size] = s;
            SiftUp(out_idx, out_score, size);
            size++;
        }
        /* full: only scores above the worst kept one (NaN never is) */
        if (size == k)
        {
            float       worst = out_score[0];

            while (i < stop)
            {
                int64_t     bend;

                i += kern->first_above(scores + i, pop ? pop + i : NULL, blend, stop - i, worst);
                bend = Min64(stop, i + IT_TOPK_BLOCK);
                for (; i < bend; i++)
                {
                    float       s = ScoreAt(scores, pop, blend, i);

                    if (s > worst)
                    {
                        out_idx[0] = (int32_t) i;
                        out_score[0] = s;
                        SiftDown(out_idx, out_score, size, 0);
                        worst = out_score[0];
                    }
                }
            }
        }
        if (i == stop && stop < n)
            i++;                /* skip the excluded index */
    }

    HeapSort(out_idx, out_score, size);
    return size;
}

int
it_topk(const float *scores, int64_t n,
        const int32_t *exclude, int64_t nexclude,
        int k, int32_t *out_idx, float *out_score)
{
    return TopK(scores, NULL, 0.0f, n, exclude, nexclude, k, out_idx, out_score);
}

int
it_topk_blend(const float *scores, const float *pop, float blend, int64_t n,
              const int32_t *exclude, int64_t nexclude,
              int k, int32_t *out_idx, float *out_score)
{
    if (blend == 0.0f)
        pop = NULL;
    return TopK(scores, pop, blend, n, exclude, nexclude, k, out_idx, out_score);
}

/* ------------------------------------------------------------------------
 * Top k over items in order of popularity, with block bounds
 * ------------------------------------------------------------------------ */

int64_t
it_topk_bound_blocks(int64_t n)
{
    return n > 0 ? (n + IT_TOPK_BLOCK - 1) / IT_TOPK_BLOCK : 0;
}

void
it_topk_block_maxima(const float *scores, int64_t n, float *bmax, float *bsuffix)
{
    int64_t     nblk = it_topk_bound_blocks(n);
    float       run = -INFINITY;

    TopkKernels()->block_maxima(scores, n, nblk, bmax);
    for (int64_t b = nblk - 1; b >= 0; b--)
    {
        if (bmax[b] > run)
            run = bmax[b];
        bsuffix[b] = run;
    }
}

/*
 * Whether no item of a block (or of all the blocks from one on) can beat
 * worst: their scores are at most smax and their popularity at most p0,
 * so score + blend * pop is at most smax + blend * p0 (blend >= 0),
 * bounded here in double with a margin far above the rounding of the
 * float expression the scan computes.
 */
static inline int
BelowWorst(float smax, float blend, float p0, float worst)
{
    double      bound = (double) smax + (double) blend * (double) p0;

    if (smax == -INFINITY)
        return 1;               /* nothing but NaN */
    bound += fabs(bound) * 1e-6 + 1e-30;
    return bound < (double) worst;
}

int
it_topk_blend_sorted(const float *scores, const float *pop, float blend, int64_t n,
                     const int32_t *exclude, int64_t nexclude,
                     const float *bmax, const float *bsuffix,
                     int k, int32_t *out_idx, float *out_score)
{
    int64_t     nblk;
    int64_t     e = 0;
    int         size = 0;
    float       worst = -INFINITY;
    const TopkKernelSet *kern = TopkKernels();

    if (k <= 0 || n <= 0)
        return 0;
    if (n > INT32_MAX)
        n = INT32_MAX;          /* indexes are int32 */
    if (blend == 0.0f)
        pop = NULL;
    nblk = it_topk_bound_blocks(n);

    for (int64_t b = 0; b < nblk; b++)
    {
        int64_t     i0 = b * IT_TOPK_BLOCK;
        int64_t     i1 = Min64(n, i0 + IT_TOPK_BLOCK);
        float       p0 = pop ? pop[i0] : 0.0f;

        if (size == k)
        {
            /* the items from here on are at most as popular as item i0 */
            if (BelowWorst(bsuffix[b], blend, p0, worst))
                break;
            if (BelowWorst(bmax[b], blend, p0, worst) ||
                kern->first_above(scores + i0, pop ? pop + i0 : NULL, blend, i1 - i0, worst) == i1 - i0)
                continue;
        }
        for (int64_t i = i0; i < i1; i++)
        {
            float       s;

            while (e < nexclude && exclude[e] < i)
                e++;
            if (e < nexclude && exclude[e] == i)
                continue;
            s = ScoreAt(scores, pop, blend, i);
            if (s != s)
                continue;
            if (size < k)
            {
                out_idx[size] = (int32_t) i;
                out_score[size] = s;
                SiftUp(out_idx, out_score, size);
                size++;
            }
            else if (s > worst)
            {
                out_idx[0] = (int32_t) i;
                out_score[0] = s;
                SiftDown(out_idx, out_score, size, 0);
            }
            else
                continue;
            if (size == k)
                worst = out_score[0];
        }
    }

    HeapSort(out_idx, out_score, size);
    return size;
}

static int
CompareIndex(const void *a, const void *b)
{
    int32_t     x = *(const int32_t *) a;
    int32_t     y = *(const int32_t *) b;

    return (x > y) - (x < y);
}

int64_t
it_topk_candidates(const float *scores, int64_t n,
                   const int32_t *exclude, int64_t nexclude, int k,
                   const int32_t *top_idx, const float *top_score, int got,
                   const float *norms, double tol_scale, double tol_const,
                   int32_t *cand, int64_t cap)
{
    int64_t     total = 0;
    int64_t     e = 0;
    double      tol_s = 0.0;
    const TopkKernelSet *kern = TopkKernels();
    double      threshold;

    if (got <= 0)
        return 0;
    if (n > INT32_MAX)
        n = INT32_MAX;          /* indexes are int32 */

    if (got < k)
    {
        /* fewer than k items at all: every one is in the list */
        for (int i = 0; i < got && i < cap; i++)
            cand[i] = top_idx[i];
        if (got <= cap)
            qsort(cand, got, sizeof(int32_t), CompareIndex);
        return got;
    }

    if (norms == NULL)
        tol_scale = 0.0;
    for (int i = 0; i < got; i++)
    {
        double      t = tol_scale * (norms ? (double) norms[top_idx[i]] : 0.0);

        tol_s = tol_s > t ? tol_s : t;
    }
    /* scores[i] + tol_scale norms[i] >= threshold: a candidate */
    threshold = (double) top_score[got - 1] - tol_s - 2.0 * tol_const;
    if (isnan(threshold) || isnan(tol_scale))
        threshold = -INFINITY;  /* infinite scores or tolerances: all */

    for (int64_t i = 0; i < n; i++)
    {
        double      v;

        /* most blocks hold no candidate: on to the next that may */
        if (i % IT_TOPK_BLOCK == 0)
        {
            i += kern->first_candidate_block(scores + i, norms ? norms + i : NULL, n - i,
                                             tol_scale, threshold);
            if (i >= n)
                break;
        }
        v = (double) scores[i];
        if (norms)
            v += tol_scale * (double) norms[i];
        if (!(v >= threshold))
            continue;
        while (e < nexclude && exclude[e] < i)
            e++;
        if (e < nexclude && exclude[e] == i)
            continue;
        if (total < cap)
            cand[total] = (int32_t) i;
        total++;
    }
    return total;
}

int
it_topk_exact(const float *scores, int64_t n,
              const int32_t *exclude, int64_t nexclude, int k,
              const float *norms, double tol_scale, double tol_const,
              ItExactScoreFn exact, const void *arg,
              int32_t *cand, float *cand_score, int64_t cap, int64_t *need,
              int32_t *out_idx, float *out_score)
{
    int         got;
    int64_t     ncand;

    *need = 0;
    if (k <= 0 || n <= 0)
        return 0;
    if (cap < k)
    {
        *need = k;
        return -1;
    }
    got = it_topk(scores, n, exclude, nexclude, k, out_idx, out_score);
    ncand = it_topk_candidates(scores, n, exclude, nexclude, k, out_idx, out_score, got,
                               norms, tol_scale, tol_const, cand, cap);
    if (ncand > cap)
    {
        *need = ncand;
        return -1;
    }

    /* rank the candidates (ascending indexes) by exact(): ties by position */
    for (int64_t i = 0; i < ncand; i++)
        cand_score[i] = exact(arg, cand[i]);
    got = it_topk(cand_score, ncand, NULL, 0, k, out_idx, out_score);
    for (int i = 0; i < got; i++)
        out_idx[i] = cand[out_idx[i]];
    return got;
}

void
it_score_all(const float *Y, int64_t n, int k, const float *x, float *scores)
{
    const int64_t chunk = INT64_C(1) << 30;
    int64_t     done;

    for (done = 0; done < n; done += chunk)
    {
        int64_t     m = n - done < chunk ? n - done : chunk;

        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) m, k, 1.0f,
                    Y + (size_t) done * k, k, x, 1, 0.0f, scores + done, 1);
    }
}

void
it_score_many(const float *Y, int64_t n, int k, const float *X, int nx, float *S)
{
    const int64_t chunk = INT64_C(1) << 30;
    int64_t     done;

    if (nx <= 0 || n <= 0)
        return;
    /* S[:, done .. done + m) = X Y[done .. done + m)^T, row stride n */
    for (done = 0; done < n; done += chunk)
    {
        int64_t     m = n - done < chunk ? n - done : chunk;

        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nx, (int) m, k,
                    1.0f, X, k, Y + (size_t) done * k, k, 0.0f, S + done, (int) n);
    }
}

void
it_add_scaled(float *y, const float *x, int64_t n, float a)
{
    const int64_t chunk = INT64_C(1) << 30;
    int64_t     done;

    for (done = 0; done < n; done += chunk)
    {
        int64_t     m = n - done < chunk ? n - done : chunk;

        cblas_saxpy((int) m, a, x + done, 1, y + done, 1);
    }
}

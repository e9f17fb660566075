/*
 * topk.c
 *    Scoring every item and selecting the best k.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <limits.h>
#include <stdint.h>

#include <cblas.h>

#include "kernels.h"

/* (sa, ia) ranks below (sb, ib): lower score, or same score, higher index */
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

int
it_topk(const float *scores, int64_t n,
        const int32_t *exclude, int64_t nexclude,
        int k, int32_t *out_idx, float *out_score)
{
    int         size = 0;
    int64_t     i = 0;
    int64_t     e = 0;
    int         end;

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
            float       s = scores[i];

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

            for (; i < stop; i++)
            {
                if (scores[i] > worst)
                {
                    out_idx[0] = (int32_t) i;
                    out_score[0] = scores[i];
                    SiftDown(out_idx, out_score, size, 0);
                    worst = out_score[0];
                }
            }
        }
        if (i == stop && stop < n)
            i++;                /* skip the excluded index */
    }

    /* heap sort: the worst goes to the back, best ends up first */
    for (end = size - 1; end > 0; end--)
    {
        int32_t     ti = out_idx[0];
        float       ts = out_score[0];

        out_idx[0] = out_idx[end];
        out_score[0] = out_score[end];
        out_idx[end] = ti;
        out_score[end] = ts;
        SiftDown(out_idx, out_score, end, 0);
    }
    return size;
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

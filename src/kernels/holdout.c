/*
 * holdout.c
 *    A validation slice of the interactions, and the precision at k of a
 *    factor model on it: what train()'s deploy rule "if_better" compares.
 *    Plain C on caller-allocated buffers; no PostgreSQL headers.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* splitmix64: a well-mixed 64-bit hash of x */
static uint64_t
Mix(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

int64_t
it_holdout_split(const ItCsr *R, uint64_t seed, int64_t max_users, int64_t min_rows,
                 double fraction, float positive_threshold, ItCsr *train,
                 int32_t *held_users, int64_t *held_indptr, int32_t *held_items)
{
    int64_t     eligible = 0;
    int64_t     nheld = 0;
    int64_t     t = 0;
    uint64_t    threshold;

    if (fraction <= 0.0)
        fraction = 0.0;
    if (fraction >= 1.0)
        fraction = 1.0;
    threshold = fraction >= 1.0 ? UINT64_MAX : (uint64_t) (fraction * 18446744073709551616.0);

    for (int64_t u = 0; u < R->nrows; u++)
        if (R->indptr[u + 1] - R->indptr[u] >= min_rows)
            eligible++;

    train->nrows = R->nrows;
    train->ncols = R->ncols;
    train->indptr[0] = 0;
    held_indptr[0] = 0;
    for (int64_t u = 0; u < R->nrows; u++)
    {
        int64_t     b = R->indptr[u];
        int64_t     e = R->indptr[u + 1];
        int64_t     n = e - b;
        int         pick = 0;

        /* about max_users of the eligible users, chosen by the seed */
        if (n >= min_rows && n >= 2 && nheld < max_users && eligible > 0)
            pick = Mix(seed ^ Mix((uint64_t) u)) % (uint64_t) eligible < (uint64_t) max_users;
        if (!pick)
        {
            memcpy(train->indices + t, R->indices + b, sizeof(int32_t) * n);
            memcpy(train->data + t, R->data + b, sizeof(float) * n);
            t += n;
            train->indptr[u + 1] = t;
            continue;
        }

        {
            /* each row held out with probability fraction; at least one, never all */
            int64_t     h0 = held_indptr[nheld];
            int64_t     h = h0;
            int64_t     jmin = b;
            int64_t     jmax = b;
            uint64_t    kmin = UINT64_MAX;
            uint64_t    kmax = 0;

            for (int64_t j = b; j < e; j++)
            {
                uint64_t    key = Mix(seed ^ Mix(((uint64_t) u << 32) ^ (uint64_t) (j - b) ^ UINT64_C(0x5851F42D4C957F2D)));

                if (key < kmin)
                {
                    kmin = key;
                    jmin = j;
                }
                if (key >= kmax)
                {
                    kmax = key;
                    jmax = j;
                }
            }
            for (int64_t j = b; j < e; j++)
            {
                uint64_t    key = Mix(seed ^ Mix(((uint64_t) u << 32) ^ (uint64_t) (j - b) ^ UINT64_C(0x5851F42D4C957F2D)));
                int         out = key < threshold;

                if (j == jmin)
                    out = 1;    /* at least one held out */
                if (j == jmax && j != jmin)
                    out = 0;    /* at least one kept */
                if (R->data[j] < positive_threshold)
                    out = 0;    /* not a positive: a target it cannot be */
                if (out)
                    held_items[h++] = R->indices[j];
                else
                {
                    train->indices[t] = R->indices[j];
                    train->data[t] = R->data[j];
                    t++;
                }
            }
            held_users[nheld] = (int32_t) u;
            held_indptr[nheld + 1] = h;
            nheld++;
        }
        train->indptr[u + 1] = t;
    }
    train->nnz = t;
    return nheld;
}

double
it_holdout_precision(const float *X, const float *Y, int64_t nitems, int k,
                     const ItCsr *train, const int32_t *held_users,
                     const int64_t *held_indptr, const int32_t *held_items,
                     int64_t nheld, int topk, float *scores,
                     int32_t *top_idx, float *top_score, int64_t *counted)
{
    double      sum = 0.0;
    int64_t     n = 0;

    for (int64_t h = 0; h < nheld; h++)
    {
        int32_t     u = held_users[h];
        ItUserMetrics m;

        it_score_all(Y, nitems, k, X + (size_t) u * k, scores);
        if (it_rank_metrics(scores, nitems,
                            held_items + held_indptr[h], held_indptr[h + 1] - held_indptr[h],
                            train->indices + train->indptr[u], train->indptr[u + 1] - train->indptr[u],
                            topk, top_idx, top_score, &m) > 0)
        {
            sum += m.precision;
            n++;
        }
    }
    *counted = n;
    return n > 0 ? sum / (double) n : 0.0;
}

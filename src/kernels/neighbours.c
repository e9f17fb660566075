/*
 * neighbours.c
 *    Scoring items by the users who share a user's items (co-buyers):
 *    the cross-domain ranking of a user with no behaviour in the domain.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <stdint.h>

#include "kernels.h"

/* First entry of row r of a whose column is >= lo (columns are sorted). */
static int64_t
RowStart(const ItCsr *a, int64_t r, int64_t lo)
{
    int64_t     b = a->indptr[r];
    int64_t     e = a->indptr[r + 1];

    while (b < e)
    {
        int64_t     mid = b + (e - b) / 2;

        if (a->indices[mid] < lo)
            b = mid + 1;
        else
            e = mid;
    }
    return b;
}

int64_t
it_cobuyer_scores(const ItCsr *R, const ItCsr *Rt, const int32_t *items, int n,
                  int64_t exclude_user, int64_t lo, int64_t hi,
                  int32_t *counts, int64_t *touched, float *scores)
{
    int64_t     nt = 0;
    int64_t     work = 0;

    for (int i = 0; i < n; i++)
    {
        int64_t     it = items[i];

        if (it < 0 || it >= Rt->nrows)
            continue;
        for (int64_t p = Rt->indptr[it]; p < Rt->indptr[it + 1]; p++)
        {
            int32_t     u = Rt->indices[p];

            if (u == exclude_user)
                continue;
            if (counts[u] == 0)
                touched[nt++] = u;
            counts[u]++;
        }
        work += Rt->indptr[it + 1] - Rt->indptr[it];
    }
    for (int64_t t = 0; t < nt; t++)
    {
        int64_t     u = touched[t];
        float       c = (float) counts[u];

        for (int64_t p = RowStart(R, u, lo); p < R->indptr[u + 1] && R->indices[p] < hi; p++)
        {
            scores[R->indices[p] - lo] += c;
            work++;
        }
        counts[u] = 0;
    }
    return work + nt;
}

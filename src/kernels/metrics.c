/*
 * metrics.c
 *    Ranking metrics of one user: precision, recall, NDCG, AP at k and AUC.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contract.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* positives whose scores are sorted together for the AUC pass */
#define IT_AUC_BLOCK 256

/* Whether v is in sorted[0..n). */
static int
InSorted(const int32_t *sorted, int64_t n, int64_t v)
{
    int64_t     lo = 0;
    int64_t     hi = n;

    while (lo < hi)
    {
        int64_t     mid = lo + (hi - lo) / 2;

        if (sorted[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && sorted[lo] == v;
}

/* NaN ranks below everything, tied with other NaNs */
static inline float
AucScore(float s)
{
    return (s != s) ? -INFINITY : s;
}

/* Number of entries of sorted[0..n) that are <= s. */
static inline int
UpperBound(const float *sorted, int n, float s)
{
    int         lo = 0;
    int         len = n;

    while (len > 0)
    {
        int         half = len / 2;

        if (sorted[lo + half] <= s)
        {
            lo += half + 1;
            len -= half + 1;
        }
        else
            len = half;
    }
    return lo;
}

/*
 * For the positives' scores block[0..nb) (sorted ascending), the number of
 * (positive, negative) pairs ranked correctly, ties counting one half, over
 * every non-excluded item that is not a positive: one pass over the items,
 * a binary search each.
 */
static double
AucPairs(const float *scores, int64_t n,
         const int32_t *pos, int64_t npos,
         const int32_t *exclude, int64_t nexclude,
         const float *block, int nb, int64_t *nneg)
{
    double      correct = 0.0;
    int64_t     negatives = 0;
    int64_t     e = 0;
    int64_t     q = 0;
    int64_t     i;

    for (i = 0; i < n; i++)
    {
        float       s;
        int         ub;
        int         lb;

        while (e < nexclude && exclude[e] < i)
            e++;
        if (e < nexclude && exclude[e] == i)
            continue;
        while (q < npos && pos[q] < i)
            q++;
        if (q < npos && pos[q] == i)
            continue;
        negatives++;
        s = AucScore(scores[i]);
        ub = UpperBound(block, nb, s);
        lb = ub;
        while (lb > 0 && block[lb - 1] == s)
            lb--;
        correct += (double) (nb - ub) + 0.5 * (double) (ub - lb);
    }
    *nneg = negatives;
    return correct;
}

static void
SortFloats(float *a, int n)
{
    int         i;

    for (i = 1; i < n; i++)
    {
        float       v = a[i];
        int         j = i;

        while (j > 0 && a[j - 1] > v)
        {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

int64_t
it_rank_metrics(const float *scores, int64_t n,
                const int32_t *pos, int64_t npos,
                const int32_t *exclude, int64_t nexclude,
                int k, int32_t *top_idx, float *top_score,
                ItUserMetrics *out)
{
    float       block[IT_AUC_BLOCK];
    int64_t     npos_eff = 0;
    int64_t     e = 0;
    int64_t     j;
    int         ntop;
    int         nb = 0;
    int         r;
    int64_t     hits = 0;
    double      dcg = 0.0;
    double      idcg = 0.0;
    double      ap = 0.0;
    double      pairs = 0.0;
    int64_t     nneg = 0;
    int64_t     ideal;

    memset(out, 0, sizeof(*out));
    ntop = it_topk(scores, n, exclude, nexclude, k, top_idx, top_score);

    /*
     * Effective positives: in range, not excluded, counted once.  Their
     * scores are gathered in blocks for the AUC.
     */
    for (j = 0; j < npos; j++)
    {
        int32_t     v = pos[j];

        if (v < 0 || v >= n || (j > 0 && pos[j - 1] == v))
            continue;
        while (e < nexclude && exclude[e] < v)
            e++;
        if (e < nexclude && exclude[e] == v)
            continue;
        npos_eff++;
        block[nb++] = AucScore(scores[v]);
        if (nb == IT_AUC_BLOCK)
        {
            SortFloats(block, nb);
            pairs += AucPairs(scores, n, pos, npos, exclude, nexclude,
                              block, nb, &nneg);
            nb = 0;
        }
    }
    if (nb > 0)
    {
        SortFloats(block, nb);
        pairs += AucPairs(scores, n, pos, npos, exclude, nexclude,
                          block, nb, &nneg);
    }
    if (npos_eff == 0)
        return 0;

    /* top k: the list never holds an excluded item */
    for (r = 0; r < ntop; r++)
    {
        if (InSorted(pos, npos, top_idx[r]))
        {
            hits++;
            dcg += 1.0 / log2((double) r + 2.0);
            ap += (double) hits / (double) (r + 1);
        }
    }
    ideal = npos_eff < k ? npos_eff : k;
    for (r = 0; r < ideal; r++)
        idcg += 1.0 / log2((double) r + 2.0);

    if (k > 0)
    {
        out->precision = (double) hits / (double) k;
        out->recall = (double) hits / (double) npos_eff;
        out->ndcg = idcg > 0.0 ? dcg / idcg : 0.0;
        out->ap = ideal > 0 ? ap / (double) ideal : 0.0;
    }
    out->auc = nneg > 0 ? pairs / ((double) npos_eff * (double) nneg) : NAN;
    return npos_eff;
}

/*
 * sparse.c
 *    Id mapping and compressed sparse rows for interest_transfer.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Below this many elements the sorts switch to insertion sort. */
#define IT_INSERTION_SORT 24

static void
SiftDownInt64(int64_t *a, int64_t n, int64_t i)
{
    int64_t     v = a[i];

    for (;;)
    {
        int64_t     c = 2 * i + 1;

        if (c >= n)
            break;
        if (c + 1 < n && a[c + 1] > a[c])
            c++;
        if (a[c] <= v)
            break;
        a[i] = a[c];
        i = c;
    }
    a[i] = v;
}

static void
HeapSortInt64(int64_t *a, int64_t n)
{
    int64_t     i;

    for (i = n / 2 - 1; i >= 0; i--)
        SiftDownInt64(a, n, i);
    for (i = n - 1; i > 0; i--)
    {
        int64_t     t = a[0];

        a[0] = a[i];
        a[i] = t;
        SiftDownInt64(a, i, 0);
    }
}

static void
InsertionSortInt64(int64_t *a, int64_t n)
{
    int64_t     i;

    for (i = 1; i < n; i++)
    {
        int64_t     v = a[i];
        int64_t     j = i;

        while (j > 0 && a[j - 1] > v)
        {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = v;
    }
}

/*
 * Introsort: quicksort with a median-of-three pivot, insertion sort for
 * short ranges and heapsort once the recursion gets too deep, so the worst
 * case stays O(n log n).  Recurses on the smaller side only.
 */
static void
IntroSortInt64(int64_t *a, int64_t n, int depth)
{
    while (n > IT_INSERTION_SORT)
    {
        int64_t     mid = n / 2;
        int64_t     pivot;
        int64_t     i;
        int64_t     j;

        if (depth-- <= 0)
        {
            HeapSortInt64(a, n);
            return;
        }

        /* median of three into a[mid] */
        if (a[mid] < a[0])
        {
            int64_t     t = a[mid];

            a[mid] = a[0];
            a[0] = t;
        }
        if (a[n - 1] < a[mid])
        {
            int64_t     t = a[mid];

            a[mid] = a[n - 1];
            a[n - 1] = t;
            if (a[mid] < a[0])
            {
                t = a[mid];
                a[mid] = a[0];
                a[0] = t;
            }
        }
        pivot = a[mid];

        /* Hoare partition */
        i = -1;
        j = n;
        for (;;)
        {
            do
                i++;
            while (a[i] < pivot);
            do
                j--;
            while (a[j] > pivot);
            if (i >= j)
                break;
            {
                int64_t     t = a[i];

                a[i] = a[j];
                a[j] = t;
            }
        }
        /* [0, j] <= pivot <= [j + 1, n) */
        if (j + 1 < n - (j + 1))
        {
            IntroSortInt64(a, j + 1, depth);
            a += j + 1;
            n -= j + 1;
        }
        else
        {
            IntroSortInt64(a + j + 1, n - (j + 1), depth);
            n = j + 1;
        }
    }
    InsertionSortInt64(a, n);
}

static void
SortInt64(int64_t *a, int64_t n)
{
    int         depth = 0;
    int64_t     m;

    for (m = n; m > 1; m >>= 1)
        depth += 2;
    IntroSortInt64(a, n, depth);
}

int64_t
it_sort_unique_ids(int64_t *ids, int64_t n)
{
    int64_t     i;
    int64_t     m;

    if (n <= 0)
        return 0;
    SortInt64(ids, n);
    m = 1;
    for (i = 1; i < n; i++)
        if (ids[i] != ids[m - 1])
            ids[m++] = ids[i];
    return m;
}

/*
 * Item ids are often dense or evenly spread (1..n, or a step apart), and
 * a bisection of a large array misses the cache at most of its ~17
 * probes: a few interpolation probes first narrow the range (to the
 * answer itself when the ids are evenly spread), then bisection finishes.
 * Each probe keeps the answer inside [lo, hi), so a bad guess costs one
 * probe, never the answer.
 */
#define FIND_ID_GUESSES 3

int64_t
it_find_id(const int64_t *sorted, int64_t n, int64_t id)
{
    int64_t     lo = 0;
    int64_t     hi = n;

    for (int step = 0; step < FIND_ID_GUESSES && hi - lo > 8; step++)
    {
        int64_t     first = sorted[lo];
        int64_t     last = sorted[hi - 1];
        double      span = (double) last - (double) first;
        int64_t     g;

        if (id < first || id > last)
            return -1;
        if (!(span > 0.0))
            break;              /* ids too close for a double to tell apart */
        /* in double: id - first can overflow int64 */
        g = lo + (int64_t) (((double) id - (double) first) / span * (double) (hi - 1 - lo));
        g = g < lo ? lo : g > hi - 1 ? hi - 1 : g;
        if (sorted[g] == id)
            return g;
        if (sorted[g] < id)
            lo = g + 1;
        else
            hi = g;
    }
    while (lo < hi)
    {
        int64_t     mid = lo + (hi - lo) / 2;

        if (sorted[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (lo < n && sorted[lo] == id) ? lo : -1;
}

/*
 * Counting sort of the triples by row into work (as (col << 32 | i) keys,
 * so sorting a row's keys orders it by column and keeps the input order of
 * duplicates: their sum is the same whatever the row's length), then a sort
 * of each row's keys and one pass that sums duplicates and drops cells
 * that are not > 0.  Triples whose row or column is out of range are
 * ignored.
 */
int64_t
it_csr_from_coo(ItCsr *out, int64_t n, const int32_t *rows,
                const int32_t *cols, const float *vals, int64_t *work)
{
    int64_t     nrows = out->nrows;
    int64_t     ncols = out->ncols;
    int64_t    *indptr = out->indptr;
    int64_t     i;
    int64_t     r;
    int64_t     nnz;
    int64_t     start;

    /* the keys hold the input position in 32 bits */
    if (n > (int64_t) UINT32_MAX)
        return -1;
    memset(indptr, 0, sizeof(int64_t) * (nrows + 1));

    for (i = 0; i < n; i++)
    {
        if (rows[i] < 0 || rows[i] >= nrows || cols[i] < 0 || cols[i] >= ncols)
            continue;
        indptr[rows[i] + 1]++;
    }
    for (r = 0; r < nrows; r++)
        indptr[r + 1] += indptr[r];

    /* scatter: indptr[r] runs from the row's start to its end */
    for (i = 0; i < n; i++)
    {
        int32_t     row = rows[i];

        if (row < 0 || row >= nrows || cols[i] < 0 || cols[i] >= ncols)
            continue;
        work[indptr[row]++] = ((int64_t) cols[i] << 32) | (int64_t) (uint32_t) i;
    }
    /* now indptr[r] is the end of row r: row r starts at indptr[r - 1] */

    nnz = 0;
    start = 0;
    for (r = 0; r < nrows; r++)
    {
        int64_t     end = indptr[r];
        int64_t     j;

        SortInt64(work + start, end - start);
        indptr[r] = nnz;
        j = start;
        while (j < end)
        {
            int32_t     col = (int32_t) (work[j] >> 32);
            float       sum = 0.0f;

            while (j < end && (int32_t) (work[j] >> 32) == col)
            {
                sum += vals[(uint32_t) work[j]];
                j++;
            }
            if (sum > 0.0f)
            {
                out->indices[nnz] = col;
                out->data[nnz] = sum;
                nnz++;
            }
        }
        start = end;
    }
    indptr[nrows] = nnz;
    out->nnz = nnz;
    return nnz;
}

void
it_csr_transpose(const ItCsr *a, ItCsr *t)
{
    int64_t     nrows = a->nrows;
    int64_t     ncols = a->ncols;
    int64_t    *tp = t->indptr;
    int64_t     r;
    int64_t     c;
    int64_t     j;

    t->nrows = ncols;
    t->ncols = nrows;
    t->nnz = a->nnz;

    memset(tp, 0, sizeof(int64_t) * (ncols + 1));
    for (j = 0; j < a->nnz; j++)
        tp[a->indices[j] + 1]++;
    for (c = 0; c < ncols; c++)
        tp[c + 1] += tp[c];

    /* rows are visited in order, so each column's entries come out sorted */
    for (r = 0; r < nrows; r++)
    {
        for (j = a->indptr[r]; j < a->indptr[r + 1]; j++)
        {
            int64_t     dst = tp[a->indices[j]]++;

            t->indices[dst] = (int32_t) r;
            t->data[dst] = a->data[j];
        }
    }
    for (c = ncols; c > 0; c--)
        tp[c] = tp[c - 1];
    tp[0] = 0;
}

int64_t
it_csr_remap(const ItCsr *a, const int32_t *rowmap, const int32_t *colmap,
             ItCsr *out, const double *aux, double *aux_out, int64_t *dropped)
{
    int64_t     last = -1;
    int64_t     nnz = 0;
    int64_t     next = 0;       /* the first row of out whose start is not set */
    int64_t     r;
    int64_t     c;
    int64_t     j;

    /* both maps increasing and inside out */
    for (r = 0; r < a->nrows; r++)
    {
        if (rowmap[r] < 0)
            continue;
        if (rowmap[r] <= last || rowmap[r] >= out->nrows)
            return -1;
        last = rowmap[r];
    }
    last = -1;
    for (c = 0; c < a->ncols; c++)
    {
        if (colmap[c] < 0)
            continue;
        if (colmap[c] <= last || colmap[c] >= out->ncols)
            return -1;
        last = colmap[c];
    }
    if (dropped)
        dropped[0] = dropped[1] = 0;

    for (r = 0; r < a->nrows; r++)
    {
        int64_t     t = rowmap[r];

        if (t < 0)
        {
            if (dropped)
                dropped[0] += a->indptr[r + 1] - a->indptr[r];
            continue;
        }
        while (next <= t)
            out->indptr[next++] = nnz;
        for (j = a->indptr[r]; j < a->indptr[r + 1]; j++)
        {
            int32_t     col = colmap[a->indices[j]];

            if (col < 0)
            {
                if (dropped)
                    dropped[1]++;
                continue;
            }
            out->indices[nnz] = col;
            out->data[nnz] = a->data[j];
            if (aux)
                aux_out[nnz] = aux[j];
            nnz++;
        }
    }
    while (next <= out->nrows)
        out->indptr[next++] = nnz;
    out->nnz = nnz;
    return nnz;
}

void
it_csr_row_positives(const ItCsr *a, float threshold, int64_t *out)
{
    for (int64_t r = 0; r < a->nrows; r++)
    {
        int64_t     n = 0;

        if (threshold <= 0.0f)
            n = a->indptr[r + 1] - a->indptr[r];
        else
            for (int64_t p = a->indptr[r]; p < a->indptr[r + 1]; p++)
                n += a->data[p] >= threshold;
        out[r] = n;
    }
}

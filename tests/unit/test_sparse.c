/*
 * test_sparse.c
 *    Unit tests of the id mapping and CSR kernels (sparse.c).
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 12345
#include "unit.h"

static int
CmpInt64(const void *a, const void *b)
{
    int64_t     x = *(const int64_t *) a;
    int64_t     y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

TEST(sort_unique_matches_qsort)
{
    int         sizes[] = {0, 1, 2, 5, 24, 25, 100, 1000, 100000};
    int         t;

    for (t = 0; t < (int) (sizeof(sizes) / sizeof(sizes[0])); t++)
    {
        int         n = sizes[t];
        int64_t    *a = malloc(sizeof(int64_t) * (n + 1));
        int64_t    *b = malloc(sizeof(int64_t) * (n + 1));
        int64_t     m;
        int64_t     mref = 0;
        int         i;

        for (i = 0; i < n; i++)
        {
            /* duplicates, negatives and extremes */
            switch (Rand() % 4)
            {
                case 0:
                    a[i] = (int64_t) (Rand() % 50) - 25;
                    break;
                case 1:
                    a[i] = (int64_t) Rand();
                    break;
                case 2:
                    a[i] = (Rand() % 2) ? INT64_MAX : INT64_MIN;
                    break;
                default:
                    a[i] = (int64_t) (Rand() % 1000);
            }
            b[i] = a[i];
        }
        qsort(b, n, sizeof(int64_t), CmpInt64);
        for (i = 0; i < n; i++)
            if (i == 0 || b[i] != b[mref - 1])
                b[mref++] = b[i];
        m = it_sort_unique_ids(a, n);
        CHECK(m == mref, "n=%d: %lld distinct, expected %lld", n, (long long) m, (long long) mref);
        CHECK(memcmp(a, b, sizeof(int64_t) * mref) == 0, "n=%d: sorted ids differ", n);
        free(a);
        free(b);
    }
}

TEST(sort_unique_sorted_and_reversed_inputs)
{
    int         n = 50000;
    int64_t    *a = malloc(sizeof(int64_t) * n);
    int         i;
    int         ok = 1;

    for (i = 0; i < n; i++)
        a[i] = n - i;           /* reversed */
    CHECK(it_sort_unique_ids(a, n) == n, "reversed");
    for (i = 0; i < n; i++)
        ok &= a[i] == i + 1;
    CHECK(ok, "reversed input not sorted");
    for (i = 0; i < n; i++)
        a[i] = 7;               /* all equal */
    CHECK(it_sort_unique_ids(a, n) == 1 && a[0] == 7, "all equal");
    free(a);
}

TEST(find_id)
{
    int64_t     ids[] = {-5, 0, 3, 10, 11, 1000000000000LL};
    int         i;

    for (i = 0; i < 6; i++)
        CHECK(it_find_id(ids, 6, ids[i]) == i, "id %lld", (long long) ids[i]);
    CHECK(it_find_id(ids, 6, -6) == -1, "below");
    CHECK(it_find_id(ids, 6, 4) == -1, "gap");
    CHECK(it_find_id(ids, 6, 1000000000001LL) == -1, "above");
    CHECK(it_find_id(ids, 0, 3) == -1, "empty");
}

/* Linear search, the reference. */
static int64_t
FindLinear(const int64_t *ids, int64_t n, int64_t id)
{
    for (int64_t i = 0; i < n; i++)
        if (ids[i] == id)
            return i;
    return -1;
}

/*
 * Dense, evenly spread, clustered, random and extreme ids (the
 * interpolation's guesses far off or overflowing int64 differences):
 * every id found where it is, every other id absent.
 */
TEST(find_id_in_large_arrays_of_any_spread)
{
    int64_t     n = 5000;
    int64_t    *ids = malloc(sizeof(int64_t) * n);
    int         bad = 0;

    for (int shape = 0; shape < 5; shape++)
    {
        for (int64_t i = 0; i < n; i++)
        {
            if (shape == 0)
                ids[i] = i + 1;                 /* dense */
            else if (shape == 1)
                ids[i] = 1000 + 7 * i;          /* evenly spread */
            else if (shape == 2)
                ids[i] = i < 3 ? i : INT64_MAX - (n - i);  /* huge ids a double cannot tell apart */
            else if (shape == 3)
                ids[i] = (i == 0 ? INT64_MIN : i == n - 1 ? INT64_MAX : (int64_t) (i * i * 31));
            else
                ids[i] = (i > 0 ? ids[i - 1] : -1000000) + 1 + (int64_t) (Rand() % 1000);
        }
        for (int64_t i = 0; i < n; i++)
        {
            if (it_find_id(ids, n, ids[i]) != i)
                bad++;
            /* neighbours that may be absent */
            if (ids[i] < INT64_MAX && it_find_id(ids, n, ids[i] + 1) != FindLinear(ids, n, ids[i] + 1))
                bad++;
            if (ids[i] > INT64_MIN && it_find_id(ids, n, ids[i] - 1) != FindLinear(ids, n, ids[i] - 1))
                bad++;
        }
        CHECK(bad == 0, "shape %d: %d lookups wrong", shape, bad);
        CHECK(it_find_id(ids, n, ids[0]) == 0 && it_find_id(ids, n, ids[n - 1]) == n - 1, "shape %d: ends", shape);
    }
    free(ids);
}

TEST(csr_from_coo_sums_sorts_drops)
{
    /* row 0: (0,2) 1 + 2, (0,1) 5; row 1: (1,0) -1 + 1 = 0 dropped,
     * (1,3) -2 dropped; row 2 empty; row 3: (3,3) NaN dropped, (3,0) 0.5,
     * out-of-range triples ignored */
    int32_t     rows[] = {0, 1, 0, 1, 0, 3, 1, 3, 4, -1, 0};
    int32_t     cols[] = {2, 0, 1, 3, 2, 3, 0, 0, 0, 0, 4};
    float       vals[] = {1, -1, 5, -2, 2, NAN, 1, 0.5f, 9, 9, 9};
    int64_t     n = 11;
    int64_t     indptr[5];
    int32_t     indices[11];
    float       data[11];
    int64_t     work[11];
    ItCsr       m;
    int64_t     nnz;

    m.nrows = 4;
    m.ncols = 4;
    m.indptr = indptr;
    m.indices = indices;
    m.data = data;
    nnz = it_csr_from_coo(&m, n, rows, cols, vals, work);
    CHECK(nnz == 3 && m.nnz == 3, "nnz %lld", (long long) nnz);
    CHECK(indptr[0] == 0 && indptr[1] == 2 && indptr[2] == 2 && indptr[3] == 2 && indptr[4] == 3,
          "indptr %lld %lld %lld %lld %lld", (long long) indptr[0], (long long) indptr[1],
          (long long) indptr[2], (long long) indptr[3], (long long) indptr[4]);
    CHECK(indices[0] == 1 && data[0] == 5.0f, "(0,1) = %d %g", indices[0], data[0]);
    CHECK(indices[1] == 2 && data[1] == 3.0f, "(0,2) = %d %g", indices[1], data[1]);
    CHECK(indices[2] == 0 && data[2] == 0.5f, "(3,0) = %d %g", indices[2], data[2]);
}

/* random COO against a dense accumulation in input order */
TEST(csr_from_coo_random_against_dense)
{
    int         nrows = 37;
    int         ncols = 53;
    int64_t     n = 5000;
    int32_t    *rows = malloc(sizeof(int32_t) * n);
    int32_t    *cols = malloc(sizeof(int32_t) * n);
    float      *vals = malloc(sizeof(float) * n);
    float      *dense = calloc((size_t) nrows * ncols, sizeof(float));
    char       *seen = calloc((size_t) nrows * ncols, 1);
    int64_t    *indptr = malloc(sizeof(int64_t) * (nrows + 1));
    int32_t    *indices = malloc(sizeof(int32_t) * n);
    float      *data = malloc(sizeof(float) * n);
    int64_t    *work = malloc(sizeof(int64_t) * n);
    ItCsr       m;
    int64_t     i;
    int64_t     expect = 0;
    int         r;
    int         bad = 0;

    for (i = 0; i < n; i++)
    {
        rows[i] = Rand() % nrows;
        cols[i] = Rand() % ncols;
        vals[i] = (float) ((int) (Rand() % 9) - 2) * 0.37f;
        dense[rows[i] * ncols + cols[i]] += vals[i];
        seen[rows[i] * ncols + cols[i]] = 1;
    }
    for (i = 0; i < (int64_t) nrows * ncols; i++)
        expect += seen[i] && dense[i] > 0;
    m.nrows = nrows;
    m.ncols = ncols;
    m.indptr = indptr;
    m.indices = indices;
    m.data = data;
    CHECK(it_csr_from_coo(&m, n, rows, cols, vals, work) == expect, "nnz %lld vs %lld",
          (long long) m.nnz, (long long) expect);
    for (r = 0; r < nrows; r++)
    {
        int64_t     j;
        int         c = 0;

        for (j = indptr[r]; j < indptr[r + 1]; j++)
        {
            if (j > indptr[r] && indices[j] <= indices[j - 1])
                bad++;          /* not strictly increasing */
            if (data[j] != dense[r * ncols + indices[j]] || !(data[j] > 0))
                bad++;
        }
        for (c = 0; c < ncols; c++)
        {
            int         found = 0;

            for (j = indptr[r]; j < indptr[r + 1]; j++)
                found |= indices[j] == c;
            if (found != (seen[r * ncols + c] && dense[r * ncols + c] > 0))
                bad++;
        }
    }
    CHECK(bad == 0, "%d cells differ from the dense accumulation", bad);
    free(rows);
    free(cols);
    free(vals);
    free(dense);
    free(seen);
    free(indptr);
    free(indices);
    free(data);
    free(work);
}

TEST(csr_from_coo_empty)
{
    int64_t     indptr[4] = {9, 9, 9, 9};
    ItCsr       m;

    m.nrows = 3;
    m.ncols = 2;
    m.indptr = indptr;
    m.indices = NULL;
    m.data = NULL;
    CHECK(it_csr_from_coo(&m, 0, NULL, NULL, NULL, NULL) == 0, "nnz");
    CHECK(indptr[0] == 0 && indptr[3] == 0, "indptr zeroed");
}

TEST(row_positives_count_entries_at_the_threshold)
{
    /* rows: {5, 1, 4}, {}, {3.9, 4} */
    int64_t     indptr[4] = {0, 3, 3, 5};
    int32_t     indices[5] = {0, 1, 2, 0, 2};
    float       data[5] = {5.0f, 1.0f, 4.0f, 3.9f, 4.0f};
    ItCsr       a = {3, 3, 5, indptr, indices, data};
    int64_t     out[3];

    it_csr_row_positives(&a, 0.0f, out);
    CHECK(out[0] == 3 && out[1] == 0 && out[2] == 2, "every entry: %lld %lld %lld",
          (long long) out[0], (long long) out[1], (long long) out[2]);
    it_csr_row_positives(&a, 4.0f, out);
    CHECK(out[0] == 2 && out[1] == 0 && out[2] == 1, "at least 4: %lld %lld %lld",
          (long long) out[0], (long long) out[1], (long long) out[2]);
}

TEST(transpose_twice_is_identity)
{
    int         nrows = 101;
    int         ncols = 67;
    int64_t     n = 3000;
    int32_t    *rows = malloc(sizeof(int32_t) * n);
    int32_t    *cols = malloc(sizeof(int32_t) * n);
    float      *vals = malloc(sizeof(float) * n);
    int64_t    *work = malloc(sizeof(int64_t) * n);
    ItCsr       a;
    ItCsr       t;
    ItCsr       tt;
    int64_t     i;
    int         r;
    int         bad = 0;

    for (i = 0; i < n; i++)
    {
        rows[i] = Rand() % nrows;
        cols[i] = Rand() % ncols;
        vals[i] = (float) (1 + Rand() % 5);
    }
    a.nrows = nrows;
    a.ncols = ncols;
    a.indptr = malloc(sizeof(int64_t) * (nrows + 1));
    a.indices = malloc(sizeof(int32_t) * n);
    a.data = malloc(sizeof(float) * n);
    it_csr_from_coo(&a, n, rows, cols, vals, work);
    t.indptr = malloc(sizeof(int64_t) * (ncols + 1));
    t.indices = malloc(sizeof(int32_t) * a.nnz);
    t.data = malloc(sizeof(float) * a.nnz);
    tt.indptr = malloc(sizeof(int64_t) * (nrows + 1));
    tt.indices = malloc(sizeof(int32_t) * a.nnz);
    tt.data = malloc(sizeof(float) * a.nnz);

    it_csr_transpose(&a, &t);
    CHECK(t.nrows == ncols && t.ncols == nrows && t.nnz == a.nnz, "transposed sizes");
    /* every entry of a is in t at the mirrored place, columns sorted */
    for (r = 0; r < nrows; r++)
    {
        int64_t     j;

        for (j = a.indptr[r]; j < a.indptr[r + 1]; j++)
        {
            int         c = a.indices[j];
            int64_t     q;
            int         found = 0;

            for (q = t.indptr[c]; q < t.indptr[c + 1]; q++)
                if (t.indices[q] == r && t.data[q] == a.data[j])
                    found = 1;
            bad += !found;
        }
    }
    for (r = 0; r < ncols; r++)
    {
        int64_t     q;

        for (q = t.indptr[r] + 1; q < t.indptr[r + 1]; q++)
            bad += t.indices[q] <= t.indices[q - 1];
    }
    CHECK(bad == 0, "%d transposed entries wrong", bad);

    it_csr_transpose(&t, &tt);
    CHECK(tt.nrows == nrows && tt.ncols == ncols && tt.nnz == a.nnz, "sizes");
    CHECK(memcmp(tt.indptr, a.indptr, sizeof(int64_t) * (nrows + 1)) == 0, "indptr");
    CHECK(memcmp(tt.indices, a.indices, sizeof(int32_t) * a.nnz) == 0, "indices");
    CHECK(memcmp(tt.data, a.data, sizeof(float) * a.nnz) == 0, "data");
    free(rows);
    free(cols);
    free(vals);
    free(work);
    free(a.indptr);
    free(a.indices);
    free(a.data);
    free(t.indptr);
    free(t.indices);
    free(t.data);
    free(tt.indptr);
    free(tt.indices);
    free(tt.data);
}

/*
 * it_csr_remap against a dense reference: random sparse a, random
 * increasing maps onto a larger index space with some rows and columns
 * dropped; every kept entry lands at its mapped place with its value and
 * aux, nothing else is there, rows stay sorted, dropped entries counted.
 */
TEST(csr_remap_against_dense)
{
    int         nrows = 53;
    int         ncols = 41;
    int         orows = 80;
    int         ocols = 70;
    int64_t     n = 900;
    int32_t    *rows = malloc(sizeof(int32_t) * n);
    int32_t    *cols = malloc(sizeof(int32_t) * n);
    float      *vals = malloc(sizeof(float) * n);
    int64_t    *work = malloc(sizeof(int64_t) * n);
    int32_t     rowmap[53];
    int32_t     colmap[41];
    float      *dense = calloc((size_t) orows * ocols, sizeof(float));
    double     *dense_aux = calloc((size_t) orows * ocols, sizeof(double));
    double     *aux;
    double     *aux_out;
    int64_t     dropped[2];
    int64_t     want_dropped[2] = {0, 0};
    int64_t     want_nnz = 0;
    int64_t     got;
    ItCsr       a;
    ItCsr       o;
    int         next;
    int         bad = 0;

    for (int64_t i = 0; i < n; i++)
    {
        rows[i] = Rand() % nrows;
        cols[i] = Rand() % ncols;
        vals[i] = (float) (1 + Rand() % 7);
    }
    a.nrows = nrows;
    a.ncols = ncols;
    a.indptr = malloc(sizeof(int64_t) * (nrows + 1));
    a.indices = malloc(sizeof(int32_t) * n);
    a.data = malloc(sizeof(float) * n);
    it_csr_from_coo(&a, n, rows, cols, vals, work);
    aux = malloc(sizeof(double) * a.nnz);
    aux_out = malloc(sizeof(double) * a.nnz);
    for (int64_t j = 0; j < a.nnz; j++)
        aux[j] = 0.5 * (double) j;

    /* increasing maps with gaps; every fifth row and seventh column dropped */
    next = 0;
    for (int r = 0; r < nrows; r++)
    {
        next += 1 + (r % 2);
        rowmap[r] = r % 5 == 4 ? -1 : next - 1;
    }
    next = 0;
    for (int c = 0; c < ncols; c++)
    {
        next += 1 + (c % 3 == 0);
        colmap[c] = c % 7 == 3 ? -1 : next - 1;
    }
    for (int r = 0; r < nrows; r++)
        for (int64_t j = a.indptr[r]; j < a.indptr[r + 1]; j++)
        {
            int         c = a.indices[j];

            if (rowmap[r] < 0)
                want_dropped[0]++;
            else if (colmap[c] < 0)
                want_dropped[1]++;
            else
            {
                dense[rowmap[r] * ocols + colmap[c]] = a.data[j];
                dense_aux[rowmap[r] * ocols + colmap[c]] = aux[j];
                want_nnz++;
            }
        }

    o.nrows = orows;
    o.ncols = ocols;
    o.indptr = malloc(sizeof(int64_t) * (orows + 1));
    o.indices = malloc(sizeof(int32_t) * a.nnz);
    o.data = malloc(sizeof(float) * a.nnz);
    got = it_csr_remap(&a, rowmap, colmap, &o, aux, aux_out, dropped);
    CHECK(got == want_nnz && o.nnz == want_nnz, "nnz %lld, expected %lld", (long long) got, (long long) want_nnz);
    CHECK(dropped[0] == want_dropped[0] && dropped[1] == want_dropped[1],
          "dropped %lld/%lld, expected %lld/%lld", (long long) dropped[0], (long long) dropped[1],
          (long long) want_dropped[0], (long long) want_dropped[1]);
    CHECK(o.indptr[0] == 0 && o.indptr[orows] == o.nnz, "indptr ends");
    for (int r = 0; r < orows; r++)
    {
        if (o.indptr[r + 1] < o.indptr[r])
            bad++;
        for (int64_t j = o.indptr[r]; j < o.indptr[r + 1]; j++)
        {
            int         c = o.indices[j];

            if (j > o.indptr[r] && o.indices[j - 1] >= c)
                bad++;
            if (dense[r * ocols + c] != o.data[j] || dense_aux[r * ocols + c] != aux_out[j])
                bad++;
        }
    }
    CHECK(bad == 0, "%d misplaced or unsorted entries", bad);

    /* a map that is not increasing, or points outside out, is refused */
    rowmap[3] = rowmap[1];
    CHECK(it_csr_remap(&a, rowmap, colmap, &o, NULL, NULL, NULL) == -1, "decreasing row map refused");
    rowmap[3] = -1;
    colmap[ncols - 1] = ocols;
    CHECK(it_csr_remap(&a, rowmap, colmap, &o, NULL, NULL, NULL) == -1, "column map outside out refused");

    free(rows);
    free(cols);
    free(vals);
    free(work);
    free(dense);
    free(dense_aux);
    free(aux);
    free(aux_out);
    free(a.indptr);
    free(a.indices);
    free(a.data);
    free(o.indptr);
    free(o.indices);
    free(o.data);
}

int
main(void)
{
    RUN(sort_unique_matches_qsort);
    RUN(sort_unique_sorted_and_reversed_inputs);
    RUN(find_id);
    RUN(find_id_in_large_arrays_of_any_spread);
    RUN(csr_from_coo_sums_sorts_drops);
    RUN(csr_from_coo_random_against_dense);
    RUN(csr_from_coo_empty);
    RUN(row_positives_count_entries_at_the_threshold);
    RUN(transpose_twice_is_identity);
    RUN(csr_remap_against_dense);
    return unit_summary();
}

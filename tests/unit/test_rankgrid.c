/*
 * test_rankgrid.c
 *    Unit tests of the blended precision grid (rankgrid.c) against a
 *    reference that sorts every item.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "rankgrid.h"
#define UNIT_SEED 12345
#include "unit.h"

/* small integers, so that every score below is exact in float */
static float
SmallInt(int range)
{
    return (float) ((int) (Rand() % (2 * range + 1)) - range);
}

typedef struct Cand
{
    float       s;
    int32_t     i;
} Cand;

static int
CmpCand(const void *a, const void *b)
{
    const Cand *x = a;
    const Cand *y = b;

    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Reference precision of one row: sort all m scores, count positives in the top k. */
static double
RefPrecision(const float *u, int kdim, const float *Y, int m, const float *pop,
             float blend, const int32_t *pos, int npos, int k)
{
    Cand       *c = malloc(sizeof(Cand) * m);
    int         hits = 0;

    for (int i = 0; i < m; i++)
    {
        float       s = 0.0f;

        if (u)
            for (int d = 0; d < kdim; d++)
                s += u[d] * Y[i * kdim + d];
        c[i].s = s + (pop ? blend * pop[i] : 0.0f);
        c[i].i = i;
    }
    qsort(c, m, sizeof(Cand), CmpCand);
    for (int t = 0; t < k && t < m; t++)
        for (int e = 0; e < npos; e++)
            if (pos[e] == c[t].i)
            {
                hits++;
                break;
            }
    free(c);
    return (double) hits / k;
}

typedef struct Case
{
    int         n,
                m,
                kdim;
    float      *U,
               *Y,
               *pop;
    int64_t    *ptr;
    int32_t    *idx;
} Case;

static void
MakeCase(Case *c, int n, int m, int kdim, int empty_every)
{
    int64_t     nnz = 0;

    c->n = n;
    c->m = m;
    c->kdim = kdim;
    c->U = malloc(sizeof(float) * n * kdim);
    c->Y = malloc(sizeof(float) * m * kdim);
    c->pop = malloc(sizeof(float) * m);
    c->ptr = malloc(sizeof(int64_t) * (n + 1));
    c->idx = malloc(sizeof(int32_t) * n * 12);
    for (int i = 0; i < n * kdim; i++)
        c->U[i] = SmallInt(3);
    for (int i = 0; i < m * kdim; i++)
        c->Y[i] = SmallInt(2);
    for (int i = 0; i < m; i++)
        c->pop[i] = (float) (Rand() % 8);   /* many ties */
    c->ptr[0] = 0;
    for (int r = 0; r < n; r++)
    {
        int         np = (empty_every > 0 && r % empty_every == 0) ? 0 : 1 + (int) (Rand() % 10);

        for (int e = 0; e < np; e++)
            c->idx[nnz++] = (int32_t) (Rand() % m);     /* repeats allowed */
        c->ptr[r + 1] = nnz;
    }
}

static void
FreeCase(Case *c)
{
    free(c->U);
    free(c->Y);
    free(c->pop);
    free(c->ptr);
    free(c->idx);
}

/* Distinct positives of a row (the reference counts each item once). */
static int
Distinct(const int32_t *pos, int npos, int32_t *out)
{
    int         n = 0;

    for (int e = 0; e < npos; e++)
    {
        int         dup = 0;

        for (int f = 0; f < n; f++)
            dup |= out[f] == pos[e];
        if (!dup)
            out[n++] = pos[e];
    }
    return n;
}

TEST(matches_full_sort_per_row)
{
    Case        c;
    float       blends[4] = {0.0f, 0.5f, 2.0f, 100.0f};
    double      prec[4];
    double      ref[4] = {0, 0, 0, 0};
    int64_t     users = -1;
    int         counted = 0;
    int         k = 10;
    float      *ws;

    /* more rows than a block, several blocks, a partial last one */
    MakeCase(&c, 2 * IT_RANK_GRID_BLOCK + 17, 300, 5, 7);
    int32_t    *hits = malloc(sizeof(int32_t) * c.n * 4);

    ws = malloc(sizeof(float) * it_rank_grid_workspace_floats(c.m, k));
    CHECK(it_rank_grid_precision(c.U, 0, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4,
                                 c.ptr, c.idx, k, ws, prec, &users, hits) == 0, "returns 0");
    for (int r = 0; r < c.n; r++)
    {
        int32_t     d[16];
        int         np = Distinct(c.idx + c.ptr[r], (int) (c.ptr[r + 1] - c.ptr[r]), d);

        if (np == 0)
        {
            for (int j = 0; j < 4; j++)
                CHECK(hits[r * 4 + j] == -1, "row %d without positives has hits %d", r, hits[r * 4 + j]);
            continue;
        }
        counted++;
        for (int j = 0; j < 4; j++)
        {
            double      pr = RefPrecision(c.U + r * c.kdim, c.kdim, c.Y, c.m, c.pop, blends[j], d, np, k);

            ref[j] += pr;
            CHECK(hits[r * 4 + j] == (int) (pr * k + 0.5), "row %d blend %d: %d hits vs %g",
                  r, j, hits[r * 4 + j], pr * k);
        }
    }
    free(hits);
    CHECK(users == counted, "users %ld vs %d", (long) users, counted);
    for (int j = 0; j < 4; j++)
        CHECK_NEAR(prec[j], ref[j] / counted, 1e-12);
    /* the grid is not degenerate: the blends rank differently */
    CHECK(prec[0] != prec[3], "blend 0 and 100 give %g and %g", prec[0], prec[3]);
    free(ws);
    FreeCase(&c);
}

/*
 * Over threads the float path gives the hits and precisions of one call,
 * to the bit: more rows than two blocks (the products of one computed
 * while the rows of the one before are ranked), a partial last block,
 * rows without positives; and one block, and no row.
 */
TEST(float_path_over_threads_matches_one_call)
{
    Case        c;
    float       blends[3] = {0.0f, 1.0f, 4.0f};
    int         k = 10;
    float      *ws = NULL;
    int32_t    *h0 = NULL,
               *ht = NULL;

    MakeCase(&c, 3 * IT_RANK_GRID_BLOCK + 9, 200, 6, 5);
    ws = malloc(sizeof(float) * it_rank_grid_threads_workspace_floats(c.m, k, c.n, 3, 4));
    h0 = malloc(sizeof(int32_t) * c.n * 3);
    ht = malloc(sizeof(int32_t) * c.n * 3);
    for (int rows = 0; rows <= 2; rows++)
    {
        int64_t     n = rows == 0 ? c.n : rows == 1 ? IT_RANK_GRID_BLOCK / 2 : 0;

        for (int threads = 1; threads <= 4; threads += 3)
        {
            double      p0[3],
                        pt[3];
            int64_t     u0 = -1,
                        ut = -1;

            CHECK(it_rank_grid_precision(c.U, 0, n, c.kdim, c.Y, c.m, c.pop, blends, 3, c.ptr, c.idx, k,
                                         ws, p0, &u0, h0) == 0, "one call");
            memset(ht, 0x7f, sizeof(int32_t) * c.n * 3);
            CHECK(it_rank_grid_precision_threads(c.U, n, c.kdim, c.Y, c.m, c.pop, blends, 3, c.ptr, c.idx, k,
                                                 ws, threads, pt, &ut, threads == 1 ? ht : NULL) == 0,
                  "%ld rows, %d threads", (long) n, threads);
            CHECK(ut == u0, "%ld rows, %d threads: users %ld vs %ld", (long) n, threads, (long) ut, (long) u0);
            for (int j = 0; j < 3; j++)
                CHECK(pt[j] == p0[j], "%ld rows, %d threads, blend %d: %g vs %g", (long) n, threads, j, pt[j], p0[j]);
            if (threads == 1)
                CHECK(memcmp(ht, h0, sizeof(int32_t) * n * 3) == 0, "%ld rows: the same hits", (long) n);
        }
    }
    {
        double      p[3];
        int64_t     u;

        CHECK(it_rank_grid_precision_threads(c.U, c.n, c.kdim, c.Y, c.m, NULL, blends, 3, c.ptr, c.idx, k,
                                             ws, 2, p, &u, NULL) == -1, "a blend without popularity");
    }
    CHECK(it_rank_grid_threads_workspace_floats(0, k, 1, 1, 1) == 0 &&
          it_rank_grid_threads_workspace_floats(10, k, 1, 1, 0) == 0, "bad sizes: no workspace");
    free(ws);
    free(h0);
    free(ht);
    FreeCase(&c);
}

/*
 * The 8-bit path ranks like the float path where every score is exact
 * (small integers: many ties, broken by the lower index), with blends,
 * rows without positives and a row that is not finite; over three
 * threads it gives the same hits and precisions, to the bit, as over one.
 * More items than a few 8-bit blocks, not a whole number of them, and
 * more rows than a tile of scans.
 */
TEST(q8_path_matches_the_float_path)
{
    Case        c;
    float       blends[4] = {0.0f, 0.5f, 2.0f, 100.0f};
    double      pf[4],
                p1[4],
                p3[4];
    int64_t     uf,
                u1,
                u3;
    int         k = 10;
    float      *ws;
    void       *q1,
               *q3;
    int32_t    *hf,
               *h1,
               *h3;
    size_t      b1,
                b3;

    MakeCase(&c, 70, 300, 5, 7);
    for (int d = 0; d < c.kdim; d++)
        c.U[3 * c.kdim + d] = d == 2 ? NAN : 1.0f;      /* row 3: not finite */
    hf = malloc(sizeof(int32_t) * c.n * 4);
    h1 = malloc(sizeof(int32_t) * c.n * 4);
    h3 = malloc(sizeof(int32_t) * c.n * 4);
    ws = malloc(sizeof(float) * it_rank_grid_workspace_floats(c.m, k));
    b1 = it_rank_grid_q8_workspace_bytes(c.m, c.kdim, c.n, 4, k, 1);
    b3 = it_rank_grid_q8_workspace_bytes(c.m, c.kdim, c.n, 4, k, 3);
    CHECK(b1 > 0 && b3 > b1, "workspace %zu for one thread, %zu for three", b1, b3);
    q1 = malloc(b1);
    q3 = malloc(b3);
    CHECK(it_rank_grid_precision(c.U, 0, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4,
                                 c.ptr, c.idx, k, ws, pf, &uf, hf) == 0, "float path");
    CHECK(it_rank_grid_precision_q8(c.U, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4, c.ptr, c.idx, k,
                                    (char *) q1 + 1, 1, p1, &u1, h1) == 0, "8-bit path, one thread");
    CHECK(it_rank_grid_precision_q8(c.U, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4, c.ptr, c.idx, k,
                                    q3, 3, p3, &u3, h3) == 0, "8-bit path, three threads");
    for (int r = 0; r < c.n; r++)
        for (int j = 0; j < 4; j++)
            CHECK(h1[r * 4 + j] == hf[r * 4 + j], "row %d blend %d: %d hits, the float path %d",
                  r, j, h1[r * 4 + j], hf[r * 4 + j]);
    CHECK(h1[3 * 4] == 0, "the row that is not finite hits nothing: %d", h1[3 * 4]);
    CHECK(memcmp(h1, h3, sizeof(int32_t) * c.n * 4) == 0, "three threads: the same hits");
    CHECK(u1 == uf && u3 == uf && uf < c.n, "users %ld %ld, the float path %ld of %d",
          (long) u1, (long) u3, (long) uf, c.n);
    for (int j = 0; j < 4; j++)
        CHECK(p1[j] == pf[j] && p3[j] == pf[j], "blend %d: %g %g, the float path %g", j, p1[j], p3[j], pf[j]);
    {
        int         differ = 0;

        for (int r = 0; r < c.n; r++)
            differ += hf[r * 4] != hf[r * 4 + 3];
        CHECK(differ > 0, "blend 0 and 100 rank differently on some row");
    }

    /* without row_hits, and refusals */
    CHECK(it_rank_grid_precision_q8(c.U, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4, c.ptr, c.idx, k,
                                    q1, 1, p1, &u1, NULL) == 0 && p1[2] == pf[2], "without row hits");
    CHECK(it_rank_grid_precision_q8(c.U, c.n, c.kdim, c.Y, c.m, NULL, blends, 4, c.ptr, c.idx, k,
                                    q1, 1, p1, &u1, NULL) == -1, "a blend without popularity");
    CHECK(it_rank_grid_precision_q8(NULL, c.n, c.kdim, c.Y, c.m, c.pop, blends, 4, c.ptr, c.idx, k,
                                    q1, 1, p1, &u1, NULL) == -1, "no vectors");
    CHECK(it_rank_grid_q8_workspace_bytes(0, 5, 10, 1, 10, 1) == 0 &&
          it_rank_grid_q8_workspace_bytes(10, 5, 10, 1, 0, 1) == 0 &&
          it_rank_grid_q8_workspace_bytes(10, 5, 10, 1, 10, 0) == 0 &&
          it_rank_grid_q8_workspace_bytes((int64_t) 1 << 40, 5, 10, 1, 10, 1) == 0, "bad sizes: no workspace");
    free(hf);
    free(h1);
    free(h3);
    free(ws);
    free(q1);
    free(q3);
    FreeCase(&c);
}

TEST(shared_vector_equals_repeated_rows)
{
    Case        c;
    float       blends[3] = {0.0f, 1.0f, 3.0f};
    double      p_shared[3],
                p_rep[3];
    int64_t     u1,
                u2;
    float      *rep;
    float      *ws;
    int         k = 7;

    MakeCase(&c, 90, 150, 4, 0);
    rep = malloc(sizeof(float) * c.n * c.kdim);
    for (int r = 0; r < c.n; r++)
        memcpy(rep + r * c.kdim, c.U, sizeof(float) * c.kdim);
    ws = malloc(sizeof(float) * it_rank_grid_workspace_floats(c.m, k));
    int32_t    *h1 = malloc(sizeof(int32_t) * c.n * 3);
    int32_t    *h2 = malloc(sizeof(int32_t) * c.n * 3);

    CHECK(it_rank_grid_precision(c.U, 1, c.n, c.kdim, c.Y, c.m, c.pop, blends, 3,
                                 c.ptr, c.idx, k, ws, p_shared, &u1, h1) == 0, "shared");
    CHECK(it_rank_grid_precision(rep, 0, c.n, c.kdim, c.Y, c.m, c.pop, blends, 3,
                                 c.ptr, c.idx, k, ws, p_rep, &u2, h2) == 0, "repeated");
    CHECK(memcmp(h1, h2, sizeof(int32_t) * c.n * 3) == 0, "the same hits row by row");
    free(h1);
    free(h2);
    CHECK(u1 == c.n && u2 == c.n, "every row counted: %ld %ld", (long) u1, (long) u2);
    for (int j = 0; j < 3; j++)
        CHECK(p_shared[j] == p_rep[j], "blend %d: %g vs %g", j, p_shared[j], p_rep[j]);
    free(rep);
    free(ws);
    FreeCase(&c);
}

TEST(popularity_alone_ties_by_lower_index)
{
    /* 6 items, popularity 5 3 5 0 3 1: ranking 0 2 1 4 5 3 */
    float       pop[6] = {5, 3, 5, 0, 3, 1};
    float       one = 1.0f;
    int64_t     ptr[4] = {0, 2, 3, 5};
    int32_t     idx[5] = {1, 3,     /* row 0: item 1 (rank 3) and 3 (last) */
        4,                      /* row 1: item 4 (rank 4) */
    0, 2};                      /* row 2: the two best */
    double      prec;
    int64_t     users;
    float       ws[(IT_RANK_GRID_BLOCK + 2) * 6 + 2 * 3];

    CHECK(it_rank_grid_workspace_floats(6, 3) == sizeof(ws) / sizeof(float), "workspace size");
    int32_t     hits[3];

    CHECK(it_rank_grid_precision(NULL, 0, 3, 0, NULL, 6, pop, &one, 1, ptr, idx, 3,
                                 ws, &prec, &users, hits) == 0, "returns 0");
    CHECK(hits[0] == 1 && hits[1] == 0 && hits[2] == 2, "hits %d %d %d", hits[0], hits[1], hits[2]);
    /* top 3 = {0, 2, 1}: row 0 has 1 hit, row 1 none, row 2 two */
    CHECK(users == 3, "users %ld", (long) users);
    CHECK_NEAR(prec, (1.0 + 0.0 + 2.0) / 3.0 / 3.0, 1e-12);
}

TEST(blend_can_fix_a_ranking)
{
    /* the vector prefers item 0, the positive is the popular item 1 */
    float       U[1] = {1.0f};
    float       Y[2] = {1.0f, 0.5f};
    float       pop[2] = {0.0f, 1.0f};
    float       blends[3] = {0.0f, 0.4f, 0.6f};
    int64_t     ptr[2] = {0, 1};
    int32_t     idx[1] = {1};
    double      prec[3];
    int64_t     users;
    float       ws[(IT_RANK_GRID_BLOCK + 2) * 2 + 2];

    CHECK(it_rank_grid_precision(U, 0, 1, 1, Y, 2, pop, blends, 3, ptr, idx, 1,
                                 ws, prec, &users, NULL) == 0, "returns 0");
    CHECK(prec[0] == 0.0 && prec[1] == 0.0 && prec[2] == 1.0,
          "precision %g %g %g", prec[0], prec[1], prec[2]);
}

TEST(no_positive_no_user)
{
    float       U[2] = {1, 0};
    float       Y[4] = {1, 0, 0, 1};
    float       zero = 0.0f;
    int64_t     ptr[3] = {0, 0, 1};
    int32_t     idx[1] = {7};   /* out of range: ignored */
    double      prec = -1;
    int64_t     users = -1;
    float       ws[(IT_RANK_GRID_BLOCK + 2) * 2 + 2];

    int32_t     hits[2] = {5, 5};

    CHECK(it_rank_grid_precision(U, 1, 2, 2, Y, 2, NULL, &zero, 1, ptr, idx, 1,
                                 ws, &prec, &users, hits) == 0, "returns 0");
    CHECK(users == 0 && prec == 0.0, "users %ld precision %g", (long) users, prec);
    CHECK(hits[0] == -1 && hits[1] == -1, "hits %d %d", hits[0], hits[1]);
}

TEST(invalid_arguments)
{
    float       U[2] = {1, 0};
    float       Y[4] = {1, 0, 0, 1};
    float       b = 1.0f;
    int64_t     ptr[2] = {0, 1};
    int32_t     idx[1] = {0};
    double      prec;
    int64_t     users;
    float       ws[(IT_RANK_GRID_BLOCK + 2) * 2 + 2];

    CHECK(it_rank_grid_precision(U, 0, 1, 2, Y, 2, NULL, &b, 1, ptr, idx, 1, ws, &prec, &users, NULL) == -1,
          "a non-zero blend needs pop");
    CHECK(it_rank_grid_precision(U, 0, 1, 2, NULL, 2, Y, &b, 1, ptr, idx, 1, ws, &prec, &users, NULL) == -1,
          "a vector needs Y");
    CHECK(it_rank_grid_precision(U, 0, 1, 2, Y, 0, Y, &b, 1, ptr, idx, 1, ws, &prec, &users, NULL) == -1,
          "no items");
    CHECK(it_rank_grid_precision(U, 0, 1, 2, Y, 2, Y, &b, 1, ptr, idx, 0, ws, &prec, &users, NULL) == -1,
          "k 0");
    CHECK(it_rank_grid_precision(U, 0, 1, 2, Y, 2, Y, &b, 0, ptr, idx, 1, ws, &prec, &users, NULL) == -1,
          "no blend");
    CHECK(it_rank_grid_workspace_floats(0, 1) == 0 && it_rank_grid_workspace_floats(5, 0) == 0,
          "workspace of invalid sizes is 0");
}

TEST(row_losses_match_the_sum_over_every_item)
{
    enum {n = 5, m = 40, k = 3};
    float       U[n * k],
                Y[m * k],
                YtY[k * k],
                w[n * 6],
                ws[k];
    int64_t     ptr[n + 1];
    int32_t     idx[n * 6];
    double      out[n],
                shared_out[n];
    int64_t     nnz = 0;

    for (int i = 0; i < n * k; i++)
        U[i] = 0.25f * SmallInt(3);
    for (int i = 0; i < m * k; i++)
        Y[i] = 0.5f * SmallInt(2);
    for (int a = 0; a < k; a++)
        for (int b = 0; b < k; b++)
        {
            float       sum = 0.0f;

            for (int i = 0; i < m; i++)
                sum += Y[i * k + a] * Y[i * k + b];
            YtY[a * k + b] = sum;
        }
    ptr[0] = 0;
    for (int r = 0; r < n; r++)
    {
        /* distinct items, weights 1..5 */
        for (int e = 0; e < r + 1; e++)
        {
            idx[nnz] = (int32_t) (7 * r + 3 * e) % m;
            w[nnz] = (float) (1 + (r + e) % 5);
            nnz++;
        }
        ptr[r + 1] = nnz;
    }
    CHECK(it_als_row_losses(U, 0, n, k, Y, YtY, ptr, idx, w, 2.0f, 3.0f, ws, out) == 0, "returns 0");
    CHECK(it_als_row_losses(U, 1, n, k, Y, YtY, ptr, idx, w, 2.0f, 3.0f, ws, shared_out) == 0, "returns 0");
    for (int r = 0; r < n; r++)
    {
        double      ref = 0.0,
                    ref0 = 0.0;

        for (int i = 0; i < m; i++)
        {
            double      s = 0.0,
                        s0 = 0.0,
                        c = 1.0,
                        p = 0.0;

            for (int j = 0; j < k; j++)
            {
                s += (double) U[r * k + j] * Y[i * k + j];
                s0 += (double) U[j] * Y[i * k + j];
            }
            for (int64_t e = ptr[r]; e < ptr[r + 1]; e++)
                if (idx[e] == i && w[e] >= 3.0f)
                {
                    c = 1.0 + 2.0 * w[e];
                    p = 1.0;
                }
            ref += c * (p - s) * (p - s);
            ref0 += c * (p - s0) * (p - s0);
        }
        CHECK_NEAR(out[r], ref, 1e-6 * (1.0 + fabs(ref)));
        CHECK_NEAR(shared_out[r], ref0, 1e-6 * (1.0 + fabs(ref0)));
    }
    CHECK(it_als_row_losses(NULL, 0, n, k, Y, YtY, ptr, idx, w, 2.0f, 3.0f, ws, out) == -1, "U NULL");
}

/* Uniform in [-1, 1). */
static float
UniformSigned(void)
{
    return (float) ((double) (Rand() >> 11) / (double) (UINT64_C(1) << 53) * 2.0 - 1.0);
}

/*
 * Reference of one grid point: fold-in alone (it_fold_in), scores in
 * double, a full sort of the items that are not revealed, hits among the
 * positives that are not revealed.
 */
static int
RefFoldHits(const float *Y, int m, int kdim, const float *YtY, float alpha, const float *prior,
            const int32_t *rev, const float *w, int nrev, const int32_t *pos, int npos,
            float lambda, int k)
{
    float      *x = malloc(sizeof(float) * kdim);
    float      *scratch = malloc(sizeof(float) * (kdim * kdim + kdim));
    Cand       *c = malloc(sizeof(Cand) * m);
    int         nc = 0;
    int         hits = 0;

    if (it_fold_in(Y, kdim, YtY, rev, w, nrev, alpha, 0.0f, lambda, prior, x, scratch) != 0)
        hits = -100;
    for (int i = 0; i < m; i++)
    {
        double      sc = 0.0;
        int         is_rev = 0;

        for (int r = 0; r < nrev; r++)
            is_rev |= rev[r] == i;
        if (is_rev)
            continue;
        for (int d = 0; d < kdim; d++)
            sc += (double) x[d] * Y[i * kdim + d];
        c[nc].s = (float) sc;
        c[nc].i = i;
        nc++;
    }
    qsort(c, nc, sizeof(Cand), CmpCand);
    for (int t = 0; t < k && t < nc; t++)
        for (int e = 0; e < npos; e++)
            if (pos[e] == c[t].i)
            {
                hits++;
                break;
            }
    free(x);
    free(scratch);
    free(c);
    return hits;
}

TEST(fold_in_grid_matches_fold_in_and_a_full_sort)
{
    enum
    {
        M = 300, KD = 8, NG = 6, K = 10, NREV = 3
    };
    float      *Y = malloc(sizeof(float) * M * KD);
    float       YtY[KD * KD];
    float       prior[KD];
    float       lambdas[NG] = {0.01f, 0.1f, 1.0f, 10.0f, 100.0f, 1000.0f};
    float      *ws;
    size_t      wsf = it_fold_in_grid_workspace_floats(M, KD, NG, K);
    int         differ = 0;

    CHECK(wsf == (size_t) NG * KD + (size_t) NG * M + 2 * (KD * KD + KD) + M + 2 * K + 2 * (size_t) it_topk_bound_blocks(M),
          "workspace %zu", wsf);
    ws = malloc(sizeof(float) * wsf);
    for (int i = 0; i < M * KD; i++)
        Y[i] = UniformSigned();
    it_gram(Y, M, KD, YtY);
    for (int trial = 0; trial < 20; trial++)
    {
        int32_t     rev[NREV];
        float       w[NREV];
        int32_t     pos[40];
        int         npos = 5 + (int) (Rand() % 30);
        int32_t     hits[NG];
        int         first = -1;

        for (int d = 0; d < KD; d++)
            prior[d] = 0.3f * UniformSigned();
        /* distinct ascending revealed items, some of them positives too */
        rev[0] = (int32_t) (Rand() % 50);
        for (int r = 1; r < NREV; r++)
            rev[r] = rev[r - 1] + 1 + (int32_t) (Rand() % 50);
        for (int r = 0; r < NREV; r++)
            w[r] = 1.0f + (float) (Rand() % 4);
        for (int e = 0; e < npos; e++)
            pos[e] = e < 2 ? rev[e] : (int32_t) (Rand() % M);
        CHECK(it_fold_in_grid_hits(Y, M, KD, YtY, 2.0f, 0.0f, trial % 2 ? prior : NULL, rev, w, NREV,
                                   pos, npos, lambdas, NG, K, ws, hits) == 0, "returns 0");
        for (int j = 0; j < NG; j++)
        {
            int         ref = RefFoldHits(Y, M, KD, YtY, 2.0f, trial % 2 ? prior : NULL, rev, w, NREV,
                                          pos, npos, lambdas[j], K);

            CHECK(hits[j] == ref, "trial %d lambda %g: %d hits, reference %d", trial, lambdas[j], hits[j], ref);
            if (first < 0)
                first = hits[j];
            differ |= hits[j] != first;
        }
    }
    CHECK(differ, "the prior weight changes the rankings");
    free(Y);
    free(ws);
}

TEST(fold_in_grid_strong_prior_ranks_like_the_prior)
{
    /* with a huge weight the fold-in is the prior: its top items win */
    enum
    {
        M = 50, KD = 2, K = 3
    };
    float       Y[M * KD];
    float       YtY[KD * KD];
    float       prior[KD] = {1.0f, 0.0f};
    float       lambdas[2] = {1e-3f, 1e6f};
    int32_t     rev[1] = {0};
    float       w[1] = {5.0f};
    int32_t     pos[3] = {0, 1, 2};
    int32_t     hits[2];
    float       ws[2 * KD + 2 * M + 2 * (KD * KD + KD) + 2 * M + 2 * K];

    /* items 1 and 2 point along the prior; item 0 (revealed) and the
     * others along the second axis */
    for (int i = 0; i < M; i++)
    {
        Y[i * KD] = (i == 1 || i == 2) ? 1.0f : 0.0f;
        Y[i * KD + 1] = (i == 1 || i == 2) ? 0.0f : 1.0f - 0.001f * i;
    }
    it_gram(Y, M, KD, YtY);
    CHECK(it_fold_in_grid_hits(Y, M, KD, YtY, 1.0f, 0.0f, prior, rev, w, 1, pos, 3, lambdas, 2, K, ws, hits) == 0,
          "returns 0");
    CHECK(hits[1] == 2, "strong prior: items 1 and 2 in the top %d (hits %d)", K, hits[1]);
    CHECK(hits[0] == 0, "weak prior: the revealed item's direction wins (hits %d)", hits[0]);
}

TEST(fold_in_grid_popularity_blend)
{
    /*
     * Entry j * nblend + b ranks by x_j.y + blends[b] * pop: blend 0 is
     * the plain ranking, a huge blend the popularity order (revealed
     * items left out), blend NULL the plain grid.
     */
    enum
    {
        M = 200, KD = 6, NG = 3, NB = 3, K = 10, NREV = 2
    };
    float      *Y = malloc(sizeof(float) * M * KD);
    float       YtY[KD * KD];
    float       pop[M];
    float       lambdas[NG] = {0.1f, 1.0f, 10.0f};
    float       blends[NB] = {0.0f, 0.5f, 1e6f};
    float       bad[1] = {-1.0f};
    ItPopBlend  blend = {pop, blends, NB};
    ItPopBlend  negative = {pop, bad, 1};
    int32_t     rev[NREV] = {3, 17};
    float       w[NREV] = {2.0f, 4.0f};
    int32_t     pos[30];
    int32_t     hits[NG * NB];
    int32_t     plain[NG];
    int         pop_hits = 3;   /* the top 10 by popularity, 3 left out: 0..10 but 3 */
    float      *ws = malloc(sizeof(float) * it_fold_in_grid_workspace_floats(M, KD, NG, K));

    for (int i = 0; i < M * KD; i++)
        Y[i] = UniformSigned();
    it_gram(Y, M, KD, YtY);
    /* popularity falls with the index */
    for (int i = 0; i < M; i++)
        pop[i] = 1.0f - (float) i / M;
    /* the positives: 0, 1, 2 (popular) and 20 unpopular ones */
    for (int e = 0; e < 30; e++)
        pos[e] = e < 3 ? e : 100 + 3 * e;
    CHECK(it_fold_in_grid_hits_blend(Y, M, KD, YtY, 1.0f, 0.0f, NULL, &blend, rev, w, NREV, pos, 30,
                                     lambdas, NG, K, ws, hits) == 0, "returns 0");
    CHECK(it_fold_in_grid_hits(Y, M, KD, YtY, 1.0f, 0.0f, NULL, rev, w, NREV, pos, 30,
                               lambdas, NG, K, ws, plain) == 0, "plain returns 0");
    for (int j = 0; j < NG; j++)
    {
        CHECK(hits[j * NB] == plain[j], "weight %d, blend 0: %d hits, plain %d", j, hits[j * NB], plain[j]);
        CHECK(hits[j * NB + 2] == pop_hits, "weight %d, huge blend: %d hits, popularity %d",
              j, hits[j * NB + 2], pop_hits);
    }
    CHECK(it_fold_in_grid_hits_blend(Y, M, KD, YtY, 1.0f, 0.0f, NULL, &negative, rev, w, NREV, pos, 30,
                                     lambdas, NG, K, ws, hits) == -1, "a negative blend is refused");
    free(Y);
    free(ws);
}

TEST(fold_in_grid_no_positive_left)
{
    float       Y[4] = {1, 0, 0, 1};
    float       YtY[4] = {1, 0, 0, 1};
    float       lambda = 1.0f;
    int32_t     rev[1] = {1};
    float       w[1] = {1.0f};
    int32_t     pos[2] = {1, 9};   /* revealed, and out of range */
    int32_t     hits[1] = {7};
    float       ws[2 + 2 + 2 * (4 + 2) + 2 + 2 + 2];

    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, rev, w, 1, pos, 2, &lambda, 1, 1, ws, hits) == 0,
          "returns 0");
    CHECK(hits[0] == -1, "hits %d", hits[0]);
}

TEST(fold_in_grid_invalid_arguments)
{
    float       Y[4] = {1, 0, 0, 1};
    float       YtY[4] = {1, 0, 0, 1};
    float       lambdas[2] = {1.0f, 0.0f};
    int32_t     unsorted[2] = {1, 0};
    int32_t     outside[1] = {2};
    float       w[2] = {1.0f, 1.0f};
    int32_t     pos[1] = {0};
    int32_t     hits[2];
    float       ws[64];

    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, unsorted, w, 2, pos, 1, lambdas, 1, 1, ws, hits) == -1,
          "revealed items not ascending");
    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, outside, w, 1, pos, 1, lambdas, 1, 1, ws, hits) == -1,
          "a revealed item out of range");
    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, outside, w, 0, pos, 1, lambdas, 2, 1, ws, hits) == -1,
          "a prior weight of 0");
    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, outside, w, 0, pos, 1, lambdas, 0, 1, ws, hits) == -1,
          "an empty grid");
    CHECK(it_fold_in_grid_hits(Y, 2, 2, YtY, 1.0f, 0.0f, NULL, outside, w, 0, pos, 1, lambdas, 1, 0, ws, hits) == -1,
          "k 0");
    CHECK(it_fold_in_grid_workspace_floats(0, 2, 1, 1) == 0 && it_fold_in_grid_workspace_floats(2, 2, 0, 1) == 0,
          "workspace of invalid sizes is 0");
}

/*
 * The paired difference of precision, by hand: rows hit (a, b) = (3, 1),
 * (2, 2), (5, 1), (-1, 4) (not ranked by a: skipped), (4, 0) at k 10:
 * differences 0.2, 0, 0.4, 0.4, mean 0.25, sample variance
 * (0.0025 + 0.0625 + 0.0225 + 0.0225) / 3 = 0.11 / 3, standard error
 * sqrt(0.11 / 12), z = 0.25 / 0.0957427 = 2.61116.
 */
TEST(paired_hits_difference_by_hand)
{
    int32_t     a[5] = {3, 2, 5, -1, 4};
    int32_t     b[5 * 2] = {9, 1, 9, 2, 9, 1, 9, 4, 9, 0};   /* column 1 of 2 */
    double      mean,
                z;

    it_paired_hits_difference(a, 1, 0, b, 2, 1, 5, 10, &mean, &z);
    CHECK_NEAR(mean, 0.25, 1e-12);
    CHECK_NEAR(z, 0.25 / sqrt(0.11 / 12.0), 1e-9);
    /* the other way round: the same size, the other sign */
    {
        int32_t     bb[5] = {1, 2, 1, 4, 0};
        double      m2,
                    z2;

        it_paired_hits_difference(bb, 1, 0, a, 1, 0, 5, 10, &m2, &z2);
        CHECK(m2 == -mean && z2 == -z, "%g %g vs %g %g", m2, z2, mean, z);
    }
}

TEST(paired_hits_difference_edges)
{
    int32_t     a[3] = {4, 4, 4};
    int32_t     b[3] = {2, 2, 2};
    int32_t     none[3] = {-1, -1, -1};
    double      mean,
                z;

    /* every row better by the same amount: no spread, infinitely sure */
    it_paired_hits_difference(a, 1, 0, b, 1, 0, 3, 10, &mean, &z);
    CHECK_NEAR(mean, 0.2, 1e-12);
    CHECK(isinf(z) && z > 0, "z %g", z);
    it_paired_hits_difference(b, 1, 0, a, 1, 0, 3, 10, &mean, &z);
    CHECK(isinf(z) && z < 0, "z %g", z);
    /* no difference at all */
    it_paired_hits_difference(a, 1, 0, a, 1, 0, 3, 10, &mean, &z);
    CHECK(mean == 0.0 && z == 0.0, "%g %g", mean, z);
    /* no row ranked by both */
    it_paired_hits_difference(a, 1, 0, none, 1, 0, 3, 10, &mean, &z);
    CHECK(mean == 0.0 && z == 0.0, "%g %g", mean, z);
    /* one row: a mean, no spread */
    it_paired_hits_difference(a, 1, 0, b, 1, 0, 1, 5, &mean, &z);
    CHECK_NEAR(mean, 0.4, 1e-12);
    CHECK(isinf(z) && z > 0, "z %g", z);
}

/* Losses 10, 12, 9, 15 against 8, 9, 9, 10: differences 2, 3, 0, 5. */
TEST(mean_difference_by_hand)
{
    double      a[4] = {10, 12, 9, 15};
    double      b[4] = {8, 9, 9, 10};
    double      mean,
                z;
    double      var = ((2 - 2.5) * (2 - 2.5) + (3 - 2.5) * (3 - 2.5) + 2.5 * 2.5 +
                       (5 - 2.5) * (5 - 2.5)) / 3.0;

    it_mean_difference(a, b, 4, &mean, &z);
    CHECK_NEAR(mean, 2.5, 1e-12);
    CHECK_NEAR(z, 2.5 / sqrt(var / 4.0), 1e-9);
    it_mean_difference(a, b, 0, &mean, &z);
    CHECK(mean == 0.0 && z == 0.0, "no rows: %g %g", mean, z);
    it_mean_difference(a, a, 4, &mean, &z);
    CHECK(mean == 0.0 && z == 0.0, "equal: %g %g", mean, z);
}

int
main(void)
{
    RUN(matches_full_sort_per_row);
    RUN(float_path_over_threads_matches_one_call);
    RUN(q8_path_matches_the_float_path);
    RUN(shared_vector_equals_repeated_rows);
    RUN(popularity_alone_ties_by_lower_index);
    RUN(blend_can_fix_a_ranking);
    RUN(no_positive_no_user);
    RUN(invalid_arguments);
    RUN(row_losses_match_the_sum_over_every_item);
    RUN(fold_in_grid_matches_fold_in_and_a_full_sort);
    RUN(fold_in_grid_strong_prior_ranks_like_the_prior);
    RUN(fold_in_grid_popularity_blend);
    RUN(fold_in_grid_no_positive_left);
    RUN(fold_in_grid_invalid_arguments);
    RUN(paired_hits_difference_by_hand);
    RUN(paired_hits_difference_edges);
    RUN(mean_difference_by_hand);
    return unit_summary();
}

/*
 * test_als.c
 *    Unit tests of implicit ALS with conjugate gradient (als.c).
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 2024
#include "unit.h"

extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a,
                   const int *lda, float *b, const int *ldb, int *info);

/* A CSR matrix and its transpose, owning their buffers. */
typedef struct Pair
{
    ItCsr       R;
    ItCsr       Rt;
} Pair;

static void
BuildPair(Pair *p, int nrows, int ncols, int64_t n, const int32_t *rows,
          const int32_t *cols, const float *vals)
{
    int64_t    *work = malloc(sizeof(int64_t) * (n + 1));

    p->R.nrows = nrows;
    p->R.ncols = ncols;
    p->R.indptr = malloc(sizeof(int64_t) * (nrows + 1));
    p->R.indices = malloc(sizeof(int32_t) * (n + 1));
    p->R.data = malloc(sizeof(float) * (n + 1));
    it_csr_from_coo(&p->R, n, rows, cols, vals, work);
    p->Rt.indptr = malloc(sizeof(int64_t) * (ncols + 1));
    p->Rt.indices = malloc(sizeof(int32_t) * (p->R.nnz + 1));
    p->Rt.data = malloc(sizeof(float) * (p->R.nnz + 1));
    it_csr_transpose(&p->R, &p->Rt);
    free(work);
}

static void
FreePair(Pair *p)
{
    free(p->R.indptr);
    free(p->R.indices);
    free(p->R.data);
    free(p->Rt.indptr);
    free(p->Rt.indices);
    free(p->Rt.data);
}

/* Random sparse matrix: each cell present with probability density,
 * except that every row r with r % 17 == 5 is empty. */
static void
RandomPair(Pair *p, int nrows, int ncols, double density)
{
    int64_t     cap = (int64_t) nrows * ncols;
    int32_t    *rows = malloc(sizeof(int32_t) * cap);
    int32_t    *cols = malloc(sizeof(int32_t) * cap);
    float      *vals = malloc(sizeof(float) * cap);
    int64_t     n = 0;
    int         r;
    int         c;

    for (r = 0; r < nrows; r++)
        for (c = 0; c < ncols; c++)
            if (Uniform() < density && r % 17 != 5)
            {
                rows[n] = r;
                cols[n] = c;
                vals[n] = (float) (1 + Rand() % 4);
                n++;
            }
    BuildPair(p, nrows, ncols, n, rows, cols, vals);
    free(rows);
    free(cols);
    free(vals);
}

/*
 * Trains for iters iterations; losses (2 per iteration, after each
 * half-step) go to loss when not NULL.
 */
static void
Train(const Pair *p, float *X, float *Y, const ItAlsParams *prm, int iters,
      uint64_t seed, double *loss)
{
    int         k = prm->factors;
    float      *XtX = malloc(sizeof(float) * k * k);
    float      *YtY = malloc(sizeof(float) * k * k);
    float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, prm->threads));
    int         it;

    it_random_init(X, p->R.nrows, k, seed, 0.1f);
    it_random_init(Y, p->R.ncols, k, seed + 1, 0.1f);
    for (it = 0; it < iters; it++)
    {
        it_gram(Y, p->R.ncols, k, YtY);
        it_als_half_step(&p->R, Y, YtY, X, prm, 0, p->R.nrows, scratch);
        it_gram(X, p->R.nrows, k, XtX);
        if (loss)
            loss[2 * it] = it_als_loss_gram_mt(&p->R, X, Y, XtX, YtY, k,
                                               prm->regularization, prm->alpha,
                                               prm->positive_threshold, prm->threads);
        it_als_half_step(&p->Rt, X, XtX, Y, prm, 0, p->Rt.nrows, scratch);
        it_gram(Y, p->R.ncols, k, YtY);
        if (loss)
            loss[2 * it + 1] = it_als_loss(&p->R, X, Y, YtY, k,
                                           prm->regularization, prm->alpha,
                                           prm->positive_threshold);
    }
    free(XtX);
    free(YtY);
    free(scratch);
}

/*
 * Relative error of x against the exact solution of row u's ridge system,
 * solved directly: in double (Cholesky) when exact, else with LAPACK sposv
 * in float.
 */
static double
RowError(const ItCsr *R, const float *Y, const float *YtY, const float *x,
         int u, int k, float reg, float alpha, int exact)
{
    double     *A = malloc(sizeof(double) * k * k);
    double     *b = calloc(k, sizeof(double));
    float      *Af = malloc(sizeof(float) * k * k);
    float      *bf = malloc(sizeof(float) * k);
    int64_t     j;
    int         r;
    int         c;
    int         one = 1;
    int         info = 0;
    double      err = 0;
    double      norm = 0;

    for (r = 0; r < k * k; r++)
        A[r] = YtY[r];
    for (r = 0; r < k; r++)
        A[r * k + r] += reg;
    for (j = R->indptr[u]; j < R->indptr[u + 1]; j++)
    {
        const float *y = Y + (size_t) R->indices[j] * k;
        double      w = (double) alpha * R->data[j];

        for (r = 0; r < k; r++)
        {
            b[r] += (1.0 + w) * y[r];
            for (c = 0; c < k; c++)
                A[r * k + c] += w * y[r] * y[c];
        }
    }
    if (exact)
    {
        /* Cholesky A = L L^T in place (lower), then two triangular solves */
        for (c = 0; c < k && info == 0; c++)
        {
            double      d = A[c * k + c];

            for (j = 0; j < c; j++)
                d -= A[c * k + j] * A[c * k + j];
            if (d <= 0)
            {
                info = 1;
                break;
            }
            A[c * k + c] = sqrt(d);
            for (r = c + 1; r < k; r++)
            {
                double      v = A[r * k + c];

                for (j = 0; j < c; j++)
                    v -= A[r * k + j] * A[c * k + j];
                A[r * k + c] = v / A[c * k + c];
            }
        }
        for (r = 0; r < k && info == 0; r++)
        {
            for (j = 0; j < r; j++)
                b[r] -= A[r * k + j] * b[j];
            b[r] /= A[r * k + r];
        }
        for (r = k - 1; r >= 0 && info == 0; r--)
        {
            for (j = r + 1; j < k; j++)
                b[r] -= A[j * k + r] * b[j];
            b[r] /= A[r * k + r];
        }
    }
    else
    {
        for (r = 0; r < k * k; r++)
            Af[r] = (float) A[r];
        for (r = 0; r < k; r++)
            bf[r] = (float) b[r];
        sposv_("L", &k, &one, Af, &k, bf, &k, &info);
        for (r = 0; r < k; r++)
            b[r] = bf[r];
    }
    for (r = 0; r < k; r++)
    {
        err += ((double) x[r] - b[r]) * ((double) x[r] - b[r]);
        norm += b[r] * b[r];
    }
    free(A);
    free(b);
    free(Af);
    free(bf);
    if (info != 0)
        return 1e30;
    if (norm == 0)
        return sqrt(err);
    return sqrt(err / norm);
}

TEST(cg_agrees_with_direct_solve)
{
    int         ks[] = {1, 3, 8, 16, 37, 64, 128};
    int         t;

    for (t = 0; t < (int) (sizeof(ks) / sizeof(ks[0])); t++)
    {
        int         k = ks[t];
        int         nusers = 150;
        int         nitems = 2 * k + 40;
        Pair        p;
        float      *X = malloc(sizeof(float) * nusers * k);
        float      *Y = malloc(sizeof(float) * nitems * k);
        float      *YtY = malloc(sizeof(float) * k * k);
        ItAlsParams prm = {k, 0.5f, 4.0f, 3 * k + 10, 2};
        float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 2));
        double      worst = 0;
        double      worst_lapack = 0;
        int         u;
        int         empty = 0;

        RandomPair(&p, nusers, nitems, 0.08);
        it_random_init(X, nusers, k, 5, 1.0f);
        it_random_init(Y, nitems, k, 6, 1.0f);
        it_gram(Y, nitems, k, YtY);
        it_als_half_step(&p.R, Y, YtY, X, &prm, 0, nusers, scratch);
        for (u = 0; u < nusers; u++)
        {
            if (p.R.indptr[u] == p.R.indptr[u + 1])
            {
                int         c;

                empty++;
                for (c = 0; c < k; c++)
                    CHECK(X[u * k + c] == 0.0f, "empty row %d not zero", u);
                continue;
            }
            {
                double      e = RowError(&p.R, Y, YtY, X + u * k, u, k,
                                         prm.regularization, prm.alpha, 1);
                double      el = RowError(&p.R, Y, YtY, X + u * k, u, k,
                                          prm.regularization, prm.alpha, 0);

                if (e > worst)
                    worst = e;
                if (el > worst_lapack)
                    worst_lapack = el;
            }
        }
        CHECK(worst < 1e-4, "k %d: worst relative error %g", k, worst);
        CHECK(worst_lapack < 1e-4, "k %d: worst relative error against sposv %g", k, worst_lapack);
        CHECK(empty >= 9, "%d empty rows, expected at least 9", empty);
        free(X);
        free(Y);
        free(YtY);
        free(scratch);
        FreePair(&p);
    }
}

TEST(few_cg_steps_improve_but_do_not_solve)
{
    /* 2 steps from zero: closer than the start, not yet the solution */
    int         k = 24;
    Pair        p;
    float      *X = calloc(100 * k, sizeof(float));
    float      *Y = malloc(sizeof(float) * 80 * k);
    float      *YtY = malloc(sizeof(float) * k * k);
    ItAlsParams prm = {k, 0.1f, 10.0f, 2, 1};
    float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 1));
    double      sum = 0;
    int         u;
    int         rows = 0;

    RandomPair(&p, 100, 80, 0.2);
    it_random_init(Y, 80, k, 11, 1.0f);
    it_gram(Y, 80, k, YtY);
    it_als_half_step(&p.R, Y, YtY, X, &prm, 0, 100, scratch);
    for (u = 0; u < 100; u++)
        if (p.R.indptr[u + 1] > p.R.indptr[u])
        {
            sum += RowError(&p.R, Y, YtY, X + u * k, u, k, prm.regularization, prm.alpha, 1);
            rows++;
        }
    CHECK(sum / rows < 0.9 && sum / rows > 1e-3, "mean relative error %g", sum / rows);
    free(X);
    free(Y);
    free(YtY);
    free(scratch);
    FreePair(&p);
}

/* Planted low-rank preferences: a user sees an item when u.v is high. */
static void
PlantedPair(Pair *p, int nusers, int nitems, int rank)
{
    float      *U = malloc(sizeof(float) * nusers * rank);
    float      *V = malloc(sizeof(float) * nitems * rank);
    int64_t     cap = (int64_t) nusers * nitems;
    int32_t    *rows = malloc(sizeof(int32_t) * cap);
    int32_t    *cols = malloc(sizeof(int32_t) * cap);
    float      *vals = malloc(sizeof(float) * cap);
    int64_t     n = 0;
    int         u;
    int         i;
    int         c;

    for (i = 0; i < nusers * rank; i++)
        U[i] = (float) (Uniform() * 2 - 1);
    for (i = 0; i < nitems * rank; i++)
        V[i] = (float) (Uniform() * 2 - 1);
    for (u = 0; u < nusers; u++)
        for (i = 0; i < nitems; i++)
        {
            double      s = 0;

            for (c = 0; c < rank; c++)
                s += U[u * rank + c] * V[i * rank + c];
            if (s + 0.3 * (Uniform() - 0.5) > 0.8)
            {
                rows[n] = u;
                cols[n] = i;
                vals[n] = (float) (1 + Rand() % 3);
                n++;
            }
        }
    BuildPair(p, nusers, nitems, n, rows, cols, vals);
    free(U);
    free(V);
    free(rows);
    free(cols);
    free(vals);
}

TEST(loss_never_rises)
{
    int         k = 8;
    int         iters = 12;
    Pair        p;
    float      *X = malloc(sizeof(float) * 400 * k);
    float      *Y = malloc(sizeof(float) * 300 * k);
    ItAlsParams prm = {k, 0.1f, 5.0f, 3, 2};
    double      loss[24];
    int         i;
    int         rises = 0;

    PlantedPair(&p, 400, 300, 4);
    CHECK(p.R.nnz > 2000, "planted data too sparse: %lld", (long long) p.R.nnz);
    Train(&p, X, Y, &prm, iters, 3, loss);
    for (i = 1; i < 2 * iters; i++)
        if (loss[i] > loss[i - 1] * (1 + 1e-5))
        {
            rises++;
            fprintf(stderr, "loss rose at half-step %d: %.9g -> %.9g\n", i, loss[i - 1], loss[i]);
        }
    CHECK(rises == 0, "%d rises", rises);
    CHECK(loss[2 * iters - 1] < 0.5 * loss[0], "loss %g -> %g: no progress", loss[0], loss[2 * iters - 1]);
    free(X);
    free(Y);
    FreePair(&p);
}

TEST(loss_matches_brute_force)
{
    int         k = 5;
    int         nu = 30;
    int         ni = 20;
    Pair        p;
    float      *X = malloc(sizeof(float) * nu * k);
    float      *Y = malloc(sizeof(float) * ni * k);
    float       XtX[25];
    float       YtY[25];
    float       reg = 0.3f;
    float       alpha = 2.5f;
    double      ref = 0;
    double      got;
    double      got2;
    double      got3;
    double      got4;
    int         u;
    int         i;
    int         c;

    RandomPair(&p, nu, ni, 0.3);
    it_random_init(X, nu, k, 1, 1.0f);
    it_random_init(Y, ni, k, 2, 1.0f);
    it_gram(X, nu, k, XtX);
    it_gram(Y, ni, k, YtY);
    for (u = 0; u < nu; u++)
        for (i = 0; i < ni; i++)
        {
            double      s = 0;
            double      r = 0;
            int64_t     j;

            for (c = 0; c < k; c++)
                s += (double) X[u * k + c] * Y[i * k + c];
            for (j = p.R.indptr[u]; j < p.R.indptr[u + 1]; j++)
                if (p.R.indices[j] == i)
                    r = p.R.data[j];
            ref += (1 + alpha * r) * ((r > 0) - s) * ((r > 0) - s);
        }
    for (i = 0; i < nu * k; i++)
        ref += reg * (double) X[i] * X[i];
    for (i = 0; i < ni * k; i++)
        ref += reg * (double) Y[i] * Y[i];
    got = it_als_loss(&p.R, X, Y, YtY, k, reg, alpha, 0.0f);
    got2 = it_als_loss_gram(&p.R, X, Y, XtX, YtY, k, reg, alpha, 0.0f);
    got3 = it_als_loss_gram_mt(&p.R, X, Y, XtX, YtY, k, reg, alpha, 0.0f, 3);
    got4 = it_als_loss_gram_mt(&p.R, X, Y, NULL, YtY, k, reg, alpha, 0.0f, 2);
    CHECK(fabs(got - ref) <= 1e-5 * ref, "loss %.9g vs %.9g", got, ref);
    CHECK(fabs(got2 - ref) <= 1e-5 * ref, "loss with XtX %.9g vs %.9g", got2, ref);
    CHECK(got3 == got2, "3 threads: %.17g vs %.17g", got3, got2);
    CHECK(got4 == got, "2 threads, no XtX: %.17g vs %.17g", got4, got);
    free(X);
    free(Y);
    FreePair(&p);
}

/*
 * it_als_half_step_loss: the same vectors as it_als_half_step, and row
 * losses that add up, with the dense terms, to the objective of the X the
 * step started from; the same per row for 1 and 3 threads.  Row 0 holds
 * every item, longer than the pieces the calling thread serves requests
 * between; rows r % 17 == 5 are empty; weights below the threshold are
 * not positives.  k 64 takes the register path, k 5 the generic one.
 */
TEST(half_step_loss_is_starting_loss)
{
    const int   ks[] = {64, 5};

    for (int ki = 0; ki < 2; ki++)
    {
        int         k = ks[ki];
        int         nu = 400;
        int         ni = 1500;
        int64_t     cap = (int64_t) nu * ni;
        int32_t    *rows = malloc(sizeof(int32_t) * cap);
        int32_t    *cols = malloc(sizeof(int32_t) * cap);
        float      *vals = malloc(sizeof(float) * cap);
        int64_t     n = 0;
        Pair        p;
        float      *X0 = malloc(sizeof(float) * nu * k);
        float      *Y = malloc(sizeof(float) * ni * k);
        float      *Xa = malloc(sizeof(float) * nu * k);
        float      *Xb = malloc(sizeof(float) * nu * k);
        float      *Xc = malloc(sizeof(float) * nu * k);
        double     *la = malloc(sizeof(double) * nu);
        double     *lb = malloc(sizeof(double) * nu);
        float      *XtX = malloc(sizeof(float) * k * k);
        float      *YtY = malloc(sizeof(float) * k * k);
        float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 3));
        ItAlsParams prm = {0};
        double      ref;
        double      got;

        for (int r = 0; r < nu; r++)
            for (int c = 0; c < ni; c++)
                if (r % 17 != 5 && (r == 0 || Uniform() < 0.03))
                {
                    rows[n] = r;
                    cols[n] = c;
                    vals[n] = (float) (1 + Rand() % 4);
                    n++;
                }
        BuildPair(&p, nu, ni, n, rows, cols, vals);
        it_random_init(X0, nu, k, 7, 0.3f);
        it_random_init(Y, ni, k, 8, 0.3f);
        it_gram(X0, nu, k, XtX);
        it_gram(Y, ni, k, YtY);
        prm.factors = k;
        prm.regularization = 0.5f;
        prm.alpha = 2.0f;
        prm.cg_steps = 3;
        prm.positive_threshold = 2.0f;
        ref = it_als_loss_gram(&p.R, X0, Y, XtX, YtY, k, prm.regularization, prm.alpha,
                               prm.positive_threshold);

        memcpy(Xa, X0, sizeof(float) * nu * k);
        memcpy(Xb, X0, sizeof(float) * nu * k);
        memcpy(Xc, X0, sizeof(float) * nu * k);
        for (int u = 0; u < nu; u++)
            la[u] = lb[u] = -1.0;
        prm.threads = 1;
        it_als_half_step_loss(&p.R, Y, YtY, Xa, &prm, 0, nu, scratch, la);
        prm.threads = 3;
        it_als_half_step_loss(&p.R, Y, YtY, Xb, &prm, 0, nu, scratch, lb);
        it_als_half_step(&p.R, Y, YtY, Xc, &prm, 0, nu, scratch);

        CHECK(memcmp(Xb, Xc, sizeof(float) * nu * k) == 0, "k %d: the loss changed the vectors", k);
        CHECK(memcmp(Xa, Xb, sizeof(float) * nu * k) == 0, "k %d: 1 and 3 threads differ", k);
        got = it_als_loss_dense(XtX, YtY, k, prm.regularization);
        for (int u = 0; u < nu; u++)
        {
            CHECK(la[u] == lb[u], "k %d row %d: %.17g with 1 thread, %.17g with 3", k, u, la[u], lb[u]);
            if (u % 17 == 5)
                CHECK(la[u] == 0.0, "k %d: empty row %d has loss %g", k, u, la[u]);
            got += la[u];
        }
        CHECK(fabs(got - ref) <= 1e-5 * fabs(ref), "k %d: loss %.9g, objective %.9g", k, got, ref);

        FreePair(&p);
        free(rows);
        free(cols);
        free(vals);
        free(X0);
        free(Y);
        free(Xa);
        free(Xb);
        free(Xc);
        free(la);
        free(lb);
        free(XtX);
        free(YtY);
        free(scratch);
    }
}

TEST(same_seed_same_factors_any_threads)
{
    int         k = 16;
    int         nu = 1000;
    int         ni = 500;
    Pair        p;
    float      *X1 = malloc(sizeof(float) * nu * k);
    float      *Y1 = malloc(sizeof(float) * ni * k);
    float      *X2 = malloc(sizeof(float) * nu * k);
    float      *Y2 = malloc(sizeof(float) * ni * k);
    ItAlsParams prm = {k, 0.05f, 8.0f, 3, 1};
    int         t;

    RandomPair(&p, nu, ni, 0.02);
    Train(&p, X1, Y1, &prm, 4, 77, NULL);
    Train(&p, X2, Y2, &prm, 4, 77, NULL);
    CHECK(memcmp(X1, X2, sizeof(float) * nu * k) == 0, "same seed, X differs");
    CHECK(memcmp(Y1, Y2, sizeof(float) * ni * k) == 0, "same seed, Y differs");
    for (t = 2; t <= 3; t++)
    {
        prm.threads = t;
        Train(&p, X2, Y2, &prm, 4, 77, NULL);
        CHECK(memcmp(X1, X2, sizeof(float) * nu * k) == 0, "%d threads: X differs", t);
        CHECK(memcmp(Y1, Y2, sizeof(float) * ni * k) == 0, "%d threads: Y differs", t);
    }
    prm.threads = 1;
    Train(&p, X2, Y2, &prm, 4, 78, NULL);
    CHECK(memcmp(X1, X2, sizeof(float) * nu * k) != 0, "another seed gives the same X");
    free(X1);
    free(Y1);
    free(X2);
    free(Y2);
    FreePair(&p);
}

/*
 * Many concurrent blocks, at 64 and at 40 factors: the workers' dense
 * products are computed by the calling thread while they run (OpenBLAS
 * sgemm is not safe from two threads at once: this test fails now and then
 * when workers call it themselves).
 */
TEST(threads_identical_many_blocks)
{
    int         ks[] = {64, 40};
    int         t;

    for (t = 0; t < 2; t++)
    {
        int         k = ks[t];
        int         nu = 4000;
        int         ni = 400;
        Pair        p;
        float      *X1 = malloc(sizeof(float) * nu * k);
        float      *X2 = malloc(sizeof(float) * nu * k);
        float      *Y = malloc(sizeof(float) * ni * k);
        float      *YtY = malloc(sizeof(float) * k * k);
        ItAlsParams prm = {k, 0.1f, 3.0f, 3, 1};
        float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 3));
        int         rep;
        int         differ = 0;

        RandomPair(&p, nu, ni, 0.01);
        it_random_init(Y, ni, k, 10, 0.1f);
        it_gram(Y, ni, k, YtY);
        it_random_init(X1, nu, k, 9, 0.1f);
        it_als_half_step(&p.R, Y, YtY, X1, &prm, 0, nu, scratch);
        for (rep = 0; rep < 10; rep++)
        {
            prm.threads = 2 + rep % 2;
            it_random_init(X2, nu, k, 9, 0.1f);
            it_als_half_step(&p.R, Y, YtY, X2, &prm, 0, nu, scratch);
            differ += memcmp(X1, X2, sizeof(float) * nu * k) != 0;
        }
        CHECK(differ == 0, "k %d: %d of 10 threaded runs differ from the single-threaded one",
              k, differ);
        free(X1);
        free(X2);
        free(Y);
        free(YtY);
        free(scratch);
        FreePair(&p);
    }
}

/*
 * Rows heavier than a block's entry budget (popular items) are solved in
 * blocks of their own: still exact and identical for any thread count.
 */
TEST(heavy_rows_threads_and_chunks)
{
    int         k = 32;
    int         nrows = 300;
    int         ncols = 3000;
    Pair        p;
    int64_t     cap = 400000;
    int32_t    *rows = malloc(sizeof(int32_t) * cap);
    int32_t    *cols = malloc(sizeof(int32_t) * cap);
    float      *vals = malloc(sizeof(float) * cap);
    float      *Y = malloc(sizeof(float) * ncols * k);
    float      *YtY = malloc(sizeof(float) * k * k);
    float      *X1 = malloc(sizeof(float) * nrows * k);
    float      *X2 = malloc(sizeof(float) * nrows * k);
    float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 3));
    ItAlsParams prm = {k, 0.2f, 2.0f, 3, 1};
    int64_t     n = 0;
    int         r;
    int         c;
    int         t;
    double      worst = 0;

    /* rows 0..9 and 200..204 see 3000 * 0.9 items; the rest a few */
    for (r = 0; r < nrows; r++)
        for (c = 0; c < ncols; c++)
        {
            int         heavy = r < 10 || (r >= 200 && r < 205);

            if (Uniform() < (heavy ? 0.9 : 0.003) && n < cap)
            {
                rows[n] = r;
                cols[n] = c;
                vals[n] = (float) (1 + Rand() % 3);
                n++;
            }
        }
    BuildPair(&p, nrows, ncols, n, rows, cols, vals);
    it_random_init(Y, ncols, k, 3, 0.3f);
    it_gram(Y, ncols, k, YtY);
    it_random_init(X1, nrows, k, 4, 0.1f);
    it_als_half_step(&p.R, Y, YtY, X1, &prm, 0, nrows, scratch);
    for (t = 2; t <= 3; t++)
    {
        prm.threads = t;
        it_random_init(X2, nrows, k, 4, 0.1f);
        it_als_half_step(&p.R, Y, YtY, X2, &prm, 0, nrows, scratch);
        CHECK(memcmp(X1, X2, sizeof(float) * nrows * k) == 0, "%d threads differ", t);
    }
    it_random_init(X2, nrows, k, 4, 0.1f);
    for (r = 0; r < nrows; r += IT_ALS_BLOCK)
        it_als_half_step(&p.R, Y, YtY, X2, &prm, r,
                         r + IT_ALS_BLOCK < nrows ? r + IT_ALS_BLOCK : nrows, scratch);
    CHECK(memcmp(X1, X2, sizeof(float) * nrows * k) == 0, "chunked result differs");

    /* and many CG steps still solve the heavy rows */
    prm.cg_steps = 4 * k;
    it_als_half_step(&p.R, Y, YtY, X1, &prm, 0, nrows, scratch);
    for (r = 0; r < nrows; r++)
        if (p.R.indptr[r + 1] > p.R.indptr[r])
        {
            double      e = RowError(&p.R, Y, YtY, X1 + r * k, r, k, prm.regularization,
                                     prm.alpha, 1);

            if (e > worst)
                worst = e;
        }
    CHECK(worst < 1e-4, "worst relative error %g", worst);
    free(rows);
    free(cols);
    free(vals);
    free(Y);
    free(YtY);
    free(X1);
    free(X2);
    free(scratch);
    FreePair(&p);
}

TEST(chunked_half_step_equals_whole)
{
    int         k = 12;
    int         nu = 700;
    int         ni = 90;
    Pair        p;
    float      *X1 = malloc(sizeof(float) * nu * k);
    float      *X2 = malloc(sizeof(float) * nu * k);
    float      *Y = malloc(sizeof(float) * ni * k);
    float      *YtY = malloc(sizeof(float) * k * k);
    ItAlsParams prm = {k, 0.1f, 3.0f, 3, 2};
    float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 2));
    int64_t     b;

    RandomPair(&p, nu, ni, 0.05);
    it_random_init(X1, nu, k, 9, 0.1f);
    memcpy(X2, X1, sizeof(float) * nu * k);
    it_random_init(Y, ni, k, 10, 0.1f);
    it_gram(Y, ni, k, YtY);
    it_als_half_step(&p.R, Y, YtY, X1, &prm, 0, nu, scratch);
    for (b = 0; b < nu; b += 3 * IT_ALS_BLOCK)
        it_als_half_step(&p.R, Y, YtY, X2, &prm, b,
                         b + 3 * IT_ALS_BLOCK < nu ? b + 3 * IT_ALS_BLOCK : nu, scratch);
    CHECK(memcmp(X1, X2, sizeof(float) * nu * k) == 0, "chunked result differs");
    /* rows outside the range are left alone */
    memcpy(X2, X1, sizeof(float) * nu * k);
    it_als_half_step(&p.R, Y, YtY, X2, &prm, 100, 200, scratch);
    CHECK(memcmp(X1, X2, sizeof(float) * 100 * k) == 0 &&
          memcmp(X1 + 200 * k, X2 + 200 * k, sizeof(float) * (nu - 200) * k) == 0,
          "rows outside [100, 200) changed");
    free(X1);
    free(X2);
    free(Y);
    free(YtY);
    free(scratch);
    FreePair(&p);
}

TEST(random_init_range_and_reproducible)
{
    float       a[1000];
    float       b[1000];
    int         i;
    int         inrange = 1;
    double      mean = 0;

    it_random_init(a, 100, 10, 42, 0.5f);
    it_random_init(b, 100, 10, 42, 0.5f);
    CHECK(memcmp(a, b, sizeof(a)) == 0, "not reproducible");
    for (i = 0; i < 1000; i++)
    {
        inrange &= a[i] >= -0.5f && a[i] <= 0.5f;
        mean += a[i];
    }
    CHECK(inrange, "out of range");
    CHECK(fabs(mean / 1000) < 0.05, "mean %g", mean / 1000);
    it_random_init(b, 100, 10, 43, 0.5f);
    CHECK(memcmp(a, b, sizeof(a)) != 0, "seed ignored");
}

TEST(gram_matches_loop)
{
    int         n = 77;
    int         k = 9;
    float       A[77 * 9];
    float       G[81];
    int         i;
    int         r;
    int         c;
    double      maxerr = 0;

    for (i = 0; i < n * k; i++)
        A[i] = (float) (Uniform() - 0.5);
    it_gram(A, n, k, G);
    for (r = 0; r < k; r++)
        for (c = 0; c < k; c++)
        {
            double      s = 0;

            for (i = 0; i < n; i++)
                s += (double) A[i * k + r] * A[i * k + c];
            if (fabs(s - G[r * k + c]) > maxerr)
                maxerr = fabs(s - G[r * k + c]);
        }
    CHECK(maxerr < 1e-4, "max error %g", maxerr);
    it_gram(A, 0, k, G);
    CHECK(G[0] == 0 && G[80] == 0 && G[5] == 0, "empty gram not zero");
}

TEST(row_norms_match_pythagoras)
{
    /* 3-4-5 and 5-12-13 triangles: exact in float */
    float       A[3 * 2] = {3, 4, -5, 12, 0, 0};
    float       norms[3];
    int         n = 50;
    int         k = 7;
    float       B[50 * 7];
    float       nb[50];

    it_row_norms(A, 3, 2, norms);
    CHECK(norms[0] == 5.0f && norms[1] == 13.0f && norms[2] == 0.0f,
          "norms %g %g %g, not 5 13 0", norms[0], norms[1], norms[2]);
    for (int i = 0; i < n * k; i++)
        B[i] = (float) (Uniform() - 0.5);
    it_row_norms(B, n, k, nb);
    for (int i = 0; i < n; i++)
    {
        double      ss = 0;

        for (int j = 0; j < k; j++)
            ss += (double) B[i * k + j] * B[i * k + j];
        CHECK_NEAR(nb[i], sqrt(ss), 1e-6);
    }
}

/*
 * Planted blocks: 5 groups of users, each seeing a random 30% of its own
 * block of items (and a little noise elsewhere).  The top 10 of unseen
 * items must come from the user's block; chance would give 1 in 5.
 */
TEST(recovers_planted_blocks)
{
    int         groups = 5;
    int         per_users = 80;
    int         per_items = 40;
    int         nu = groups * per_users;
    int         ni = groups * per_items;
    int         k = 10;
    int64_t     cap = (int64_t) nu * ni;
    int32_t    *rows = malloc(sizeof(int32_t) * cap);
    int32_t    *cols = malloc(sizeof(int32_t) * cap);
    float      *vals = malloc(sizeof(float) * cap);
    float      *X = malloc(sizeof(float) * nu * k);
    float      *Y = malloc(sizeof(float) * ni * k);
    float      *scores = malloc(sizeof(float) * ni);
    ItAlsParams prm = {k, 0.1f, 10.0f, 3, 2};
    Pair        p;
    int64_t     n = 0;
    int         u;
    int         i;
    int64_t     inblock = 0;
    int64_t     total = 0;

    for (u = 0; u < nu; u++)
        for (i = 0; i < ni; i++)
        {
            int         same = (u / per_users) == (i / per_items);

            if (Uniform() < (same ? 0.3 : 0.01))
            {
                rows[n] = u;
                cols[n] = i;
                vals[n] = 1.0f;
                n++;
            }
        }
    BuildPair(&p, nu, ni, n, rows, cols, vals);
    Train(&p, X, Y, &prm, 15, 1, NULL);
    for (u = 0; u < nu; u++)
    {
        int32_t     top[10];
        float       ts[10];
        int         got;
        int         r;

        it_score_all(Y, ni, k, X + u * k, scores);
        got = it_topk(scores, ni, p.R.indices + p.R.indptr[u],
                      p.R.indptr[u + 1] - p.R.indptr[u], 10, top, ts);
        for (r = 0; r < got; r++)
            inblock += (top[r] / per_items) == (u / per_users);
        total += got;
    }
    CHECK(total == (int64_t) nu * 10, "top lists short: %lld", (long long) total);
    CHECK((double) inblock / total >= 0.9, "%.3f of the top 10 in the planted block",
          (double) inblock / total);
    free(rows);
    free(cols);
    free(vals);
    free(X);
    free(Y);
    free(scores);
    FreePair(&p);
}

/*
 * The positive threshold: users rate items 0-9 low (weight 1) and items
 * 10-19 high (weight 3).  Without a threshold every rating is a positive;
 * with threshold 2 the low ones are confident negatives and score far
 * below the high ones, and below what they scored as positives.  The loss
 * still falls (the half-steps minimise the thresholded objective).
 */
TEST(positive_threshold_makes_low_ratings_negatives)
{
    enum
    {
        nu = 60, ni = 30, k = 8, iters = 8
    };
    int32_t     rows[nu * 20];
    int32_t     cols[nu * 20];
    float       vals[nu * 20];
    int64_t     n = 0;
    Pair        p;
    float       X[nu * k];
    float       Y[ni * k];
    double      loss[2 * iters];
    double      low[2] = {0, 0};
    double      high[2] = {0, 0};

    for (int u = 0; u < nu; u++)
        for (int i = 0; i < 20; i++)
        {
            /* every user rates 14 of the 20: a different subset each */
            if ((u + 3 * i) % 10 < 3)
                continue;
            rows[n] = u;
            cols[n] = i;
            vals[n] = i < 10 ? 1.0f : 3.0f;
            n++;
        }
    BuildPair(&p, nu, ni, n, rows, cols, vals);
    for (int t = 0; t < 2; t++)
    {
        ItAlsParams prm = {k, 0.1f, 2.0f, 3, 1, t == 0 ? 0.0f : 2.0f};

        Train(&p, X, Y, &prm, iters, 11, loss);
        for (int it = 1; it < 2 * iters; it++)
            CHECK(loss[it] <= loss[it - 1] * (1 + 1e-4), "threshold %d: loss rose at %d", t, it);
        for (int u = 0; u < nu; u++)
            for (int i = 0; i < 20; i++)
            {
                double      sc = 0;

                for (int c = 0; c < k; c++)
                    sc += (double) X[u * k + c] * Y[i * k + c];
                if (i < 10)
                    low[t] += sc / (nu * 10);
                else
                    high[t] += sc / (nu * 10);
            }
    }
    CHECK(low[0] > 0.5 && high[0] > 0.5, "without a threshold both are liked: %g, %g", low[0], high[0]);
    CHECK(low[1] < 0.2 && high[1] > 0.5, "with threshold 2: low %g, high %g", low[1], high[1]);
    CHECK(low[1] < low[0] - 0.3, "low ratings fall: %g -> %g", low[0], low[1]);
    FreePair(&p);
}

/*
 * The sparse loops compiled for each vector width the machine runs give
 * the same half-step and loss: bit for bit between widths whose targets
 * both contract multiply-adds to FMA (8 and 16), to rounding against the
 * baseline's 4.  Covers k with a vector pass of its own (16, 64, 128) and
 * the loop for any k (40).
 */
TEST(vector_widths_agree)
{
    int         ks[] = {64, 40, 128, 16};
    int         widths[] = {4, 8, 16};
    int         runs = 0;

    CHECK(it_als_vector_width(0) >= 4, "the machine's widest width must run");
    CHECK(it_als_vector_width(3) == 0, "a width without kernels must be refused");
    for (int t = 0; t < 4; t++)
    {
        int         k = ks[t];
        int         nu = 700;
        int         ni = 300;
        Pair        p;
        float      *Y = malloc(sizeof(float) * ni * k);
        float      *YtY = malloc(sizeof(float) * k * k);
        float      *X[3];
        double     *rl[3];
        double      loss[3];
        int         ran[3] = {0, 0, 0};
        ItAlsParams prm = {k, 0.1f, 3.0f, 3, 2, 0.0f};
        float      *scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 2));

        RandomPair(&p, nu, ni, 0.05);
        it_random_init(Y, ni, k, 10, 0.1f);
        it_gram(Y, ni, k, YtY);
        for (int w = 0; w < 3; w++)
        {
            X[w] = malloc(sizeof(float) * nu * k);
            rl[w] = malloc(sizeof(double) * nu);
            if (it_als_vector_width(widths[w]) != widths[w])
                continue;
            ran[w] = 1;
            runs++;
            it_random_init(X[w], nu, k, 9, 0.1f);
            it_als_half_step_loss(&p.R, Y, YtY, X[w], &prm, 0, nu, scratch, rl[w]);
            loss[w] = it_als_loss_gram_mt(&p.R, X[w], Y, NULL, YtY, k, 0.1f, 3.0f, 0.0f, 2);
        }
        for (int w = 1; w < 3; w++)
        {
            double      maxabs = 0.0,
                        maxdiff = 0.0;

            if (!ran[w] || !ran[0])
                continue;
            for (int64_t i = 0; i < (int64_t) nu * k; i++)
            {
                maxabs = fmax(maxabs, fabs(X[0][i]));
                maxdiff = fmax(maxdiff, fabs(X[w][i] - X[0][i]));
            }
            CHECK(maxabs > 0.01 && maxdiff <= 1e-4 * maxabs,
                  "k %d: width %d differs from width 4 by %g (largest factor %g)",
                  k, widths[w], maxdiff, maxabs);
            CHECK(fabs(loss[w] - loss[0]) <= 1e-5 * fabs(loss[0]),
                  "k %d: loss at width %d %.9g, at width 4 %.9g", k, widths[w], loss[w], loss[0]);
        }
        for (int w = 0; w < 3; w++)
        {
            free(X[w]);
            free(rl[w]);
        }
        free(Y);
        free(YtY);
        free(scratch);
        FreePair(&p);
    }
    CHECK(runs >= 4, "only %d runs", runs);
    /* a dispatching build on x86-64 always has the baseline */
#if defined(__x86_64__) && !defined(IT_NO_TARGET_CLONES)
    CHECK(it_als_vector_width(4) == 4, "the baseline width must run");
#endif
    CHECK(it_als_vector_width(0) >= 4, "the machine's widest width");
}

int
main(void)
{
    RUN(cg_agrees_with_direct_solve);
    RUN(few_cg_steps_improve_but_do_not_solve);
    RUN(loss_never_rises);
    RUN(loss_matches_brute_force);
    RUN(half_step_loss_is_starting_loss);
    RUN(same_seed_same_factors_any_threads);
    RUN(threads_identical_many_blocks);
    RUN(heavy_rows_threads_and_chunks);
    RUN(chunked_half_step_equals_whole);
    RUN(random_init_range_and_reproducible);
    RUN(gram_matches_loop);
    RUN(row_norms_match_pythagoras);
    RUN(recovers_planted_blocks);
    RUN(positive_threshold_makes_low_ratings_negatives);
    RUN(vector_widths_agree);
    return unit_summary();
}

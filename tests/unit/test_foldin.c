/*
 * test_foldin.c
 *    Unit tests of fold-in with a prior (foldin.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 99
#include "unit.h"

/* Solves a x = b (n x n, row-major, doubles) by Gaussian elimination. */
static void
SolveDouble(double *a, double *b, int n)
{
    int         i;
    int         j;
    int         c;

    for (c = 0; c < n; c++)
    {
        int         piv = c;

        for (i = c + 1; i < n; i++)
            if (fabs(a[i * n + c]) > fabs(a[piv * n + c]))
                piv = i;
        for (j = 0; j < n; j++)
        {
            double      t = a[c * n + j];

            a[c * n + j] = a[piv * n + j];
            a[piv * n + j] = t;
        }
        {
            double      t = b[c];

            b[c] = b[piv];
            b[piv] = t;
        }
        for (i = c + 1; i < n; i++)
        {
            double      f = a[i * n + c] / a[c * n + c];

            for (j = c; j < n; j++)
                a[i * n + j] -= f * a[c * n + j];
            b[i] -= f * b[c];
        }
    }
    for (i = n - 1; i >= 0; i--)
    {
        double      s = b[i];

        for (j = i + 1; j < n; j++)
            s -= a[i * n + j] * b[j];
        b[i] = s / a[i * n + i];
    }
}

TEST(fold_in_without_items_is_the_prior)
{
    int         k = 6;
    int         nitems = 20;
    float      *Y = malloc(sizeof(float) * nitems * k);
    float      *YtY = malloc(sizeof(float) * k * k);
    float      *scratch = malloc(sizeof(float) * (k * k + k));
    float       prior[6] = {0.3f, -1.25f, 2.0f, 0.0f, 1e-3f, -7.5f};
    float       x[6] = {9, 9, 9, 9, 9, 9};
    int         i;

    for (i = 0; i < nitems * k; i++)
        Y[i] = (float) (Uniform() - 0.5);
    it_gram(Y, nitems, k, YtY);
    CHECK(it_fold_in(Y, k, YtY, NULL, NULL, 0, 10.0f, 0.0f, 0.5f, prior, x, scratch) == 0, "status");
    CHECK(memcmp(x, prior, sizeof(prior)) == 0, "x is not the prior");
    free(Y);
    free(YtY);
    free(scratch);
}

TEST(fold_in_equals_direct_formula)
{
    int         trial;

    for (trial = 0; trial < 20; trial++)
    {
        int         k = 1 + (trial * 7) % 40;
        int         nitems = 60;
        int         n = 1 + trial % 12;
        float       alpha = 3.0f + trial;
        float       lambda0 = 0.1f * (1 + trial % 5);
        float      *Y = malloc(sizeof(float) * nitems * k);
        float      *YtY = malloc(sizeof(float) * k * k);
        float      *scratch = malloc(sizeof(float) * (k * k + k));
        float      *prior = malloc(sizeof(float) * k);
        float      *x = malloc(sizeof(float) * k);
        int32_t     items[12];
        float       w[12];
        double     *A = malloc(sizeof(double) * k * k);
        double     *b = malloc(sizeof(double) * k);
        double      maxrel = 0;
        double      norm = 0;
        int         i;
        int         r;
        int         c;

        for (i = 0; i < nitems * k; i++)
            Y[i] = (float) (Uniform() - 0.5);
        for (i = 0; i < k; i++)
            prior[i] = (float) (Uniform() - 0.5);
        for (i = 0; i < n; i++)
        {
            items[i] = (int32_t) (Uniform() * nitems);
            w[i] = (float) (0.5 + 3 * Uniform());
        }
        it_gram(Y, nitems, k, YtY);
        CHECK(it_fold_in(Y, k, YtY, items, w, n, alpha, 0.0f, lambda0, prior, x, scratch) == 0,
              "status, k %d", k);

        /* direct: (sum over all items y y^T + sum (c-1) y y^T + l0 I) x = sum c y + l0 prior */
        for (r = 0; r < k; r++)
        {
            b[r] = lambda0 * (double) prior[r];
            for (c = 0; c < k; c++)
            {
                double      s = r == c ? lambda0 : 0.0;

                for (i = 0; i < nitems; i++)
                    s += (double) Y[i * k + r] * Y[i * k + c];
                A[r * k + c] = s;
            }
        }
        for (i = 0; i < n; i++)
        {
            const float *y = Y + items[i] * k;
            double      cw = 1.0 + (double) alpha * w[i];

            for (r = 0; r < k; r++)
            {
                b[r] += cw * y[r];
                for (c = 0; c < k; c++)
                    A[r * k + c] += (cw - 1.0) * y[r] * y[c];
            }
        }
        SolveDouble(A, b, k);
        for (r = 0; r < k; r++)
            norm += b[r] * b[r];
        norm = sqrt(norm);
        for (r = 0; r < k; r++)
            if (fabs(x[r] - b[r]) / norm > maxrel)
                maxrel = fabs(x[r] - b[r]) / norm;
        CHECK(maxrel < 1e-4, "k %d: relative error %g", k, maxrel);
        free(Y);
        free(YtY);
        free(scratch);
        free(prior);
        free(x);
        free(A);
        free(b);
    }
}

TEST(fold_in_prior_weight_pulls)
{
    /* a huge lambda0 keeps x at the prior; a tiny one follows the items */
    int         k = 4;
    float       Y[3 * 4] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0};
    float       YtY[16];
    float       scratch[20];
    float       prior[4] = {0, 0, 0, 1};
    int32_t     items[1] = {0};
    float       w[1] = {1};
    float       x[4];

    it_gram(Y, 3, k, YtY);
    CHECK(it_fold_in(Y, k, YtY, items, w, 1, 1.0f, 0.0f, 1e6f, prior, x, scratch) == 0, "status");
    CHECK(fabs(x[3] - 1) < 1e-3 && fabs(x[0]) < 1e-3, "x %g %g", x[0], x[3]);
    CHECK(it_fold_in(Y, k, YtY, items, w, 1, 1.0f, 0.0f, 1e-6f, prior, x, scratch) == 0, "status");
    /* (1 + alpha) x0 = 1 + alpha -> x0 = 1; items 1, 2 unseen -> 0; no
     * item spans the last direction, so it keeps the prior */
    CHECK(fabs(x[0] - 1) < 1e-3 && fabs(x[1]) < 1e-3 && fabs(x[3] - 1) < 1e-3,
          "x %g %g %g", x[0], x[1], x[3]);
}

TEST(fold_in_not_positive_definite)
{
    int         k = 3;
    float       Y[3] = {0, 0, 0};
    float       YtY[9] = {0};
    float       scratch[12];
    float       x[3] = {4, 5, 6};
    int32_t     items[1] = {0};
    float       w[1] = {1};

    /* YtY = 0 and lambda0 = 0: singular */
    CHECK(it_fold_in(Y, k, YtY, items, w, 1, 1.0f, 0.0f, 0.0f, NULL, x, scratch) != 0, "singular accepted");
    CHECK(x[0] == 4 && x[1] == 5 && x[2] == 6, "x changed");
}

/*
 * An item weighted below the positive threshold is a confident negative:
 * folded in, its score ends far below the score it gets as a positive,
 * and lower still when its weight (its confidence) is larger.
 */
TEST(fold_in_negative_below_threshold)
{
    enum
    {
        k = 8, nitems = 50
    };
    float       Y[nitems * k];
    float       YtY[k * k];
    float       scratch[k * k + k];
    float       prior[k];
    float       xpos[k];
    float       xneg[k];
    float       xneg2[k];
    int32_t     item = 7;
    float       w = 2.0f;
    float       w2 = 2.9f;
    double      sp = 0;
    double      sn = 0;
    double      sn2 = 0;

    for (int i = 0; i < nitems * k; i++)
        Y[i] = (float) (Uniform() - 0.5);
    for (int i = 0; i < k; i++)
        prior[i] = Y[item * k + i];     /* a prior that already likes the item */
    it_gram(Y, nitems, k, YtY);
    CHECK(it_fold_in(Y, k, YtY, &item, &w, 1, 4.0f, 0.0f, 1.0f, prior, xpos, scratch) == 0, "status");
    CHECK(it_fold_in(Y, k, YtY, &item, &w, 1, 4.0f, 3.0f, 1.0f, prior, xneg, scratch) == 0, "status");
    CHECK(it_fold_in(Y, k, YtY, &item, &w2, 1, 4.0f, 3.0f, 1.0f, prior, xneg2, scratch) == 0, "status");
    for (int i = 0; i < k; i++)
    {
        sp += (double) xpos[i] * Y[item * k + i];
        sn += (double) xneg[i] * Y[item * k + i];
        sn2 += (double) xneg2[i] * Y[item * k + i];
    }
    CHECK(sn < 0.5 * sp, "scores: negative %g, positive %g", sn, sp);
    CHECK(sn2 < sn, "a more confident negative scores lower: %g, %g", sn2, sn);
}

/*
 * it_fold_in_grid gives each weight what it_fold_in gives it alone (the
 * evidence formed once, to rounding), a below-threshold item included;
 * without items, every positive weight gets the prior; a singular weight
 * (0 with YtY = 0) fails.
 */
TEST(fold_in_grid_equals_one_weight_at_a_time)
{
    enum
    {
        k = 16, nitems = 40, n = 7, ngrid = 5
    };
    float       Y[nitems * k];
    float       YtY[k * k];
    float       scratch1[k * k + k];
    float       scratch2[2 * (k * k + k)];
    float       prior[k];
    float       lambdas[ngrid] = {0.01f, 0.3f, 1.0f, 30.0f, 1000.0f};
    float       X[ngrid * k];
    float       x[k];
    int32_t     items[n] = {3, 9, 9, 14, 22, 30, 39};
    float       w[n] = {1.0f, 2.5f, 0.5f, 4.0f, 0.2f, 1.0f, 7.0f};
    double      worst = 0;

    for (int i = 0; i < nitems * k; i++)
        Y[i] = (float) (Uniform() - 0.5);
    for (int i = 0; i < k; i++)
        prior[i] = (float) (Uniform() - 0.5);
    it_gram(Y, nitems, k, YtY);
    for (int pass = 0; pass < 2; pass++)
    {
        const float *pr = pass == 0 ? prior : NULL;

        CHECK(it_fold_in_grid(Y, k, YtY, items, w, n, 3.0f, 0.4f, lambdas, ngrid, pr, X, scratch2) == 0,
              "status");
        for (int j = 0; j < ngrid; j++)
        {
            double      norm = 0;

            CHECK(it_fold_in(Y, k, YtY, items, w, n, 3.0f, 0.4f, lambdas[j], pr, x, scratch1) == 0, "status");
            for (int i = 0; i < k; i++)
                norm = fmax(norm, fabs(x[i]));
            for (int i = 0; i < k; i++)
                worst = fmax(worst, fabs(X[j * k + i] - x[i]) / fmax(norm, 1e-6));
        }
    }
    CHECK(worst < 1e-4, "grid differs from one weight at a time by %g", worst);

    /* no items: the prior at every positive weight */
    CHECK(it_fold_in_grid(Y, k, YtY, NULL, NULL, 0, 3.0f, 0.0f, lambdas, ngrid, prior, X, scratch2) == 0,
          "status");
    for (int j = 0; j < ngrid; j++)
        CHECK(memcmp(X + j * k, prior, sizeof(prior)) == 0, "weight %d is not the prior", j);

    /* YtY = 0 and weight 0: singular */
    {
        float       Z[3] = {0, 0, 0};
        float       ZtZ[9] = {0};
        float       zs[2 * (9 + 3)];
        float       lz[2] = {1.0f, 0.0f};
        float       xz[6];
        int32_t     it0 = 0;
        float       w0 = 1.0f;

        CHECK(it_fold_in_grid(Z, 3, ZtZ, &it0, &w0, 1, 1.0f, 0.0f, lz, 2, NULL, xz, zs) != 0,
              "singular accepted");
    }
}

/*
 * The grid in the eigenvector basis of YtY (Woodbury) solves the same
 * systems as one Cholesky per weight: with a prior and without, items
 * repeated, below the threshold and of weight zero, weights from far
 * below YtY's scale to far above it.
 */
TEST(fold_in_grid_in_the_basis_equals_one_weight_at_a_time)
{
    enum
    {
        k = 24, nitems = 60, n = 8, ngrid = 6
    };
    float       Y[nitems * k];
    float       YtY[k * k];
    float       scratch1[k * k + k];
    float       prior[k];
    float       lambdas[ngrid] = {0.003f, 0.1f, 1.0f, 10.0f, 300.0f, 1e4f};
    float       X[ngrid * k];
    float       x[k];
    int32_t     items[n] = {2, 5, 5, 11, 23, 31, 40, 59};
    float       w[n] = {1.0f, 2.5f, 0.5f, 4.0f, 0.0f, 1.0f, 7.0f, 0.3f};
    double     *mem = malloc(sizeof(double) * it_gram_basis_doubles(k, n, ngrid));
    ItGramBasis basis;
    double      worst = 0;

    for (int i = 0; i < nitems * k; i++)
        Y[i] = (float) (Uniform() - 0.5);
    for (int i = 0; i < k; i++)
        prior[i] = (float) (Uniform() - 0.5);
    it_gram(Y, nitems, k, YtY);
    CHECK(it_gram_basis_doubles(k, n, ngrid) > (size_t) k * k, "workspace");
    CHECK(it_gram_basis_doubles(0, n, ngrid) == 0 && it_gram_basis_doubles(k, 0, ngrid) == 0, "sizes refused");
    CHECK(it_gram_basis(YtY, k, n, ngrid, mem, &basis) == 0, "decomposed");
    for (int j = 1; j < k; j++)
        CHECK(basis.evals[j] >= basis.evals[j - 1], "eigenvalues ascend");
    for (int pass = 0; pass < 4; pass++)
    {
        const float *pr = pass % 2 == 0 ? prior : NULL;
        int         nn = pass < 2 ? n : 3;
        float       thr = pass < 2 ? 0.4f : 0.0f;

        CHECK(it_fold_in_grid_basis(Y, &basis, items, w, nn, 3.0f, thr, lambdas, ngrid, pr, X) == 0,
              "status, pass %d", pass);
        for (int j = 0; j < ngrid; j++)
        {
            double      norm = 0;

            CHECK(it_fold_in(Y, k, YtY, items, w, nn, 3.0f, thr, lambdas[j], pr, x, scratch1) == 0, "status");
            for (int i = 0; i < k; i++)
                norm = fmax(norm, fabs(x[i]));
            for (int i = 0; i < k; i++)
                worst = fmax(worst, fabs(X[j * k + i] - x[i]) / fmax(norm, 1e-6));
        }
    }
    CHECK(worst < 1e-4, "the basis differs from one weight at a time by %g", worst);

    /* alpha 0: no rank-one terms, only the right-hand side */
    CHECK(it_fold_in_grid_basis(Y, &basis, items, w, n, 0.0f, 0.4f, lambdas, ngrid, prior, X) == 0, "alpha 0");
    CHECK(it_fold_in(Y, k, YtY, items, w, n, 0.0f, 0.4f, lambdas[2], prior, x, scratch1) == 0, "alpha 0");
    for (int i = 0; i < k; i++)
        CHECK(fabs(X[2 * k + i] - x[i]) < 1e-3 * (1.0 + fabs(x[i])), "alpha 0, entry %d: %g vs %g", i,
              X[2 * k + i], x[i]);

    /* no items: the prior at every weight */
    CHECK(it_fold_in_grid_basis(Y, &basis, NULL, NULL, 0, 3.0f, 0.0f, lambdas, ngrid, prior, X) == 0, "status");
    for (int j = 0; j < ngrid; j++)
        CHECK(memcmp(X + j * k, prior, sizeof(prior)) == 0, "weight %d is not the prior", j);

    /* more items or weights than the workspace holds, a weight not positive */
    CHECK(it_fold_in_grid_basis(Y, &basis, items, w, n, 3.0f, 0.0f, lambdas, ngrid + 1, prior, X) == -1,
          "too many weights accepted");
    {
        float       bad[ngrid] = {1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f};
        int32_t     many[n + 1] = {0, 1, 2, 3, 4, 5, 6, 7, 8};
        float       wm[n + 1] = {1, 1, 1, 1, 1, 1, 1, 1, 1};

        CHECK(it_fold_in_grid_basis(Y, &basis, items, w, n, 3.0f, 0.0f, bad, ngrid, prior, X) == -1,
              "weight 0 accepted");
        CHECK(it_fold_in_grid_basis(Y, &basis, many, wm, n + 1, 3.0f, 0.0f, lambdas, ngrid, prior, X) == -1,
              "too many items accepted");
    }

    /* not a Gram matrix: YtY = -5 I, weight 1 is not positive definite */
    {
        float       neg[k * k];

        memset(neg, 0, sizeof(neg));
        for (int i = 0; i < k; i++)
            neg[i * k + i] = -5.0f;
        CHECK(it_gram_basis(neg, k, n, ngrid, mem, &basis) == 0, "decomposed");
        CHECK(it_fold_in_grid_basis(Y, &basis, items, w, n, 3.0f, 0.0f, lambdas, ngrid, prior, X) == 1,
              "not positive definite accepted");
        neg[1] = NAN;
        CHECK(it_gram_basis(neg, k, n, ngrid, mem, &basis) == -1, "a NaN decomposed");
    }
    free(mem);
}

int
main(void)
{
    RUN(fold_in_without_items_is_the_prior);
    RUN(fold_in_equals_direct_formula);
    RUN(fold_in_prior_weight_pulls);
    RUN(fold_in_not_positive_definite);
    RUN(fold_in_negative_below_threshold);
    RUN(fold_in_grid_equals_one_weight_at_a_time);
    RUN(fold_in_grid_in_the_basis_equals_one_weight_at_a_time);
    return unit_summary();
}

/*
 * foldin.c
 *    Fold-in of one user (or item) against fixed factors, with a prior.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contract.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "kernels.h"

/* LAPACK (Fortran): Cholesky factorisation and solve of an SPD system */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a,
                   const int *lda, float *b, const int *ldb, int *info);

/* No evidence: the prior itself (zero without one). */
static void
PriorOnly(const float *prior, int k, float *x)
{
    if (prior != NULL)
        memcpy(x, prior, sizeof(float) * k);
    else
        memset(x, 0, sizeof(float) * k);
}

/*
 * Adds the items' evidence: sum_i (c_i - 1) y_i y_i^T to A (its upper
 * triangle, row-major) and sum_i c_i p_i y_i to b.
 */
static void
AddEvidence(const float *Y, int k, const int32_t *items, const float *weights, int n,
            float alpha, float positive_threshold, float *A, float *b)
{
    for (int i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) items[i] * k;
        float       cm1 = alpha * weights[i];

        if (cm1 != 0.0f)
            cblas_ssyr(CblasRowMajor, CblasUpper, k, cm1, y, 1, A, k);
        /* p_i = [w_i >= positive_threshold]: below it, a confident negative */
        if (weights[i] >= positive_threshold)
            cblas_saxpy(k, 1.0f + cm1, y, 1, b, 1);
    }
}

/*
 * Solves A x = b (A's upper triangle, row-major: LAPACK sees the same
 * memory as column-major, i.e. as its lower triangle); A and b are
 * overwritten.  Returns 0, LAPACK's info, or -1 when x is not finite (x
 * is then left unchanged).
 */
static int
SolveInto(int k, float *A, float *b, float *x)
{
    const int   one = 1;
    int         info = 0;

    sposv_("L", &k, &one, A, &k, b, &k, &info);
    if (info != 0)
        return info;
    for (int i = 0; i < k; i++)
        if (!isfinite(b[i]))
            return -1;
    memcpy(x, b, sizeof(float) * k);
    return 0;
}

int
it_fold_in(const float *Y, int k, const float *YtY,
           const int32_t *items, const float *weights, int n,
           float alpha, float positive_threshold, float lambda0,
           const float *prior, float *x, float *scratch)
{
    float      *A = scratch;
    float      *b = scratch + (size_t) k * k;

    if (k < 1)
        return -1;
    if (n <= 0 && lambda0 > 0.0f)
    {
        PriorOnly(prior, k, x);
        return 0;
    }

    /* A = YtY + lambda0 I + the evidence, b = lambda0 prior + the evidence */
    memcpy(A, YtY, sizeof(float) * k * k);
    for (int i = 0; i < k; i++)
        A[(size_t) i * k + i] += lambda0;
    if (prior != NULL && lambda0 != 0.0f)
        for (int i = 0; i < k; i++)
            b[i] = lambda0 * prior[i];
    else
        memset(b, 0, sizeof(float) * k);
    AddEvidence(Y, k, items, weights, n, alpha, positive_threshold, A, b);
    return SolveInto(k, A, b, x);
}

int
it_fold_in_grid(const float *Y, int k, const float *YtY,
                const int32_t *items, const float *weights, int n,
                float alpha, float positive_threshold,
                const float *lambdas, int ngrid,
                const float *prior, float *X, float *scratch)
{
    float      *A0 = scratch;
    float      *b0 = A0 + (size_t) k * k;
    float      *A = b0 + k;
    float      *b = A + (size_t) k * k;

    if (k < 1 || ngrid < 1)
        return -1;

    /* the evidence, shared by every weight */
    memcpy(A0, YtY, sizeof(float) * k * k);
    memset(b0, 0, sizeof(float) * k);
    AddEvidence(Y, k, items, weights, n, alpha, positive_threshold, A0, b0);

    for (int j = 0; j < ngrid; j++)
    {
        float       lambda0 = lambdas[j];
        float      *x = X + (size_t) j * k;
        int         rc;

        if (n <= 0 && lambda0 > 0.0f)
        {
            PriorOnly(prior, k, x);
            continue;
        }
        memcpy(A, A0, sizeof(float) * k * k);
        for (int i = 0; i < k; i++)
            A[(size_t) i * k + i] += lambda0;
        for (int i = 0; i < k; i++)
            b[i] = b0[i] + (prior != NULL ? lambda0 * prior[i] : 0.0f);
        rc = SolveInto(k, A, b, x);
        if (rc != 0)
            return rc;
    }
    return 0;
}

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

int
it_fold_in(const float *Y, int k, const float *YtY,
           const int32_t *items, const float *weights, int n,
           float alpha, float positive_threshold, float lambda0,
           const float *prior, float *x, float *scratch)
{
    float      *A = scratch;
    float      *b = scratch + (size_t) k * k;
    const int   one = 1;
    int         info = 0;
    int         i;

    if (k < 1)
        return -1;

    if (n <= 0 && lambda0 > 0.0f)
    {
        /* no evidence: the prior itself */
        if (prior != NULL)
            memcpy(x, prior, sizeof(float) * k);
        else
            memset(x, 0, sizeof(float) * k);
        return 0;
    }

    /*
     * A = YtY + sum_i (c_i - 1) y_i y_i^T + lambda0 I, b = sum_i c_i y_i +
     * lambda0 prior.  Only the upper triangle (row-major) is formed; LAPACK
     * sees the same memory as column-major, i.e. as its lower triangle.
     */
    memcpy(A, YtY, sizeof(float) * k * k);
    for (i = 0; i < k; i++)
        A[(size_t) i * k + i] += lambda0;
    if (prior != NULL && lambda0 != 0.0f)
        for (i = 0; i < k; i++)
            b[i] = lambda0 * prior[i];
    else
        memset(b, 0, sizeof(float) * k);

    for (i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) items[i] * k;
        float       cm1 = alpha * weights[i];

        if (cm1 != 0.0f)
            cblas_ssyr(CblasRowMajor, CblasUpper, k, cm1, y, 1, A, k);
        /* p_i = [w_i >= positive_threshold]: below it, a confident negative */
        if (weights[i] >= positive_threshold)
            cblas_saxpy(k, 1.0f + cm1, y, 1, b, 1);
    }

    sposv_("L", &k, &one, A, &k, b, &k, &info);
    if (info != 0)
        return info;
    for (i = 0; i < k; i++)
        if (!isfinite(b[i]))
            return -1;
    memcpy(x, b, sizeof(float) * k);
    return 0;
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
    const int   one = 1;

    if (k < 1 || ngrid < 1)
        return -1;

    /* the evidence, shared by every weight: YtY + sum_i (c_i - 1) y_i y_i^T, sum_i c_i p_i y_i */
    memcpy(A0, YtY, sizeof(float) * k * k);
    memset(b0, 0, sizeof(float) * k);
    for (int i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) items[i] * k;
        float       cm1 = alpha * weights[i];

        if (cm1 != 0.0f)
            cblas_ssyr(CblasRowMajor, CblasUpper, k, cm1, y, 1, A0, k);
        if (weights[i] >= positive_threshold)
            cblas_saxpy(k, 1.0f + cm1, y, 1, b0, 1);
    }

    for (int j = 0; j < ngrid; j++)
    {
        float       lambda0 = lambdas[j];
        float      *x = X + (size_t) j * k;
        int         info = 0;

        if (n <= 0 && lambda0 > 0.0f)
        {
            if (prior != NULL)
                memcpy(x, prior, sizeof(float) * k);
            else
                memset(x, 0, sizeof(float) * k);
            continue;
        }
        memcpy(A, A0, sizeof(float) * k * k);
        for (int i = 0; i < k; i++)
            A[(size_t) i * k + i] += lambda0;
        for (int i = 0; i < k; i++)
            b[i] = b0[i] + (prior != NULL ? lambda0 * prior[i] : 0.0f);
        sposv_("L", &k, &one, A, &k, b, &k, &info);
        if (info != 0)
            return info;
        for (int i = 0; i < k; i++)
            if (!isfinite(b[i]))
                return -1;
        memcpy(x, b, sizeof(float) * k);
    }
    return 0;
}

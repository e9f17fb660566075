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

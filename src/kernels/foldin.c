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

/* LAPACK (Fortran): eigenvalues and eigenvectors of a symmetric matrix */
extern void dsyev_(const char *jobz, const char *uplo, const int *n, double *a,
                   const int *lda, double *w, double *work, const int *lwork, int *info);

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

/* ------------------------------------------------------------------------
 * Many fold-ins against one YtY: in its eigenvector basis
 * ------------------------------------------------------------------------ */

/* dsyev's workspace: more than its 3k - 1, room for its blocked reduction */
#define IT_BASIS_LWORK(k) ((size_t) 66 * (size_t) (k))

/* The doubles of one fold-in's work (see it_fold_in_grid_basis). */
static size_t
BasisQueryDoubles(size_t k, size_t r, size_t g)
{
    size_t      npair = r * (r + 1) / 2;

    return 2 * r * k + r + 4 * k + 5 * g * k + npair * k + npair * g + 2 * r * g + r * r;
}

size_t
it_gram_basis_doubles(int k, int maxrank, int maxgrid)
{
    size_t      q;

    /* small enough that none of the products below overflows */
    if (k < 1 || k > 65536 || maxrank < 1 || maxrank > 4096 || maxgrid < 1 || maxgrid > 4096)
        return 0;
    q = BasisQueryDoubles((size_t) k, (size_t) maxrank, (size_t) maxgrid);
    return (size_t) k * k + (size_t) k + (q > IT_BASIS_LWORK(k) ? q : IT_BASIS_LWORK(k));
}

int
it_gram_basis(const float *YtY, int k, int maxrank, int maxgrid, double *mem, ItGramBasis *basis)
{
    int         lwork;
    int         info = 0;
    double     *A = mem;

    if (YtY == NULL || mem == NULL || basis == NULL || it_gram_basis_doubles(k, maxrank, maxgrid) == 0 ||
        IT_BASIS_LWORK(k) > INT32_MAX)
        return -1;
    /* the upper triangle, both halves (symmetric: the layout does not matter) */
    for (int i = 0; i < k; i++)
        for (int j = i; j < k; j++)
        {
            double      v = YtY[(size_t) i * k + j];

            if (!isfinite(v))
                return -1;
            A[(size_t) i * k + j] = v;
            A[(size_t) j * k + i] = v;
        }
    basis->k = k;
    basis->maxrank = maxrank;
    basis->maxgrid = maxgrid;
    basis->Vt = A;
    basis->evals = A + (size_t) k * k;
    basis->work = basis->evals + k;
    lwork = (int) IT_BASIS_LWORK(k);
    /* column j of the column-major result, the j-th eigenvector, is row j of Vt */
    dsyev_("V", "U", &k, A, &k, basis->evals, basis->work, &lwork, &info);
    return info;
}

/*
 * Solves the n x n system M s = h in place (Gaussian elimination with
 * partial pivoting, M row-major, destroyed); s to h.  Returns 0, or 1
 * when M is singular.  n is at most the basis's rank: a few.
 */
static int
SolveSmall(int n, double *M, double *h)
{
    for (int c = 0; c < n; c++)
    {
        int         p = c;

        for (int r = c + 1; r < n; r++)
            if (fabs(M[(size_t) r * n + c]) > fabs(M[(size_t) p * n + c]))
                p = r;
        if (!(fabs(M[(size_t) p * n + c]) > 0.0))
            return 1;
        if (p != c)
        {
            double      t;

            for (int j = c; j < n; j++)
            {
                t = M[(size_t) c * n + j];
                M[(size_t) c * n + j] = M[(size_t) p * n + j];
                M[(size_t) p * n + j] = t;
            }
            t = h[c];
            h[c] = h[p];
            h[p] = t;
        }
        for (int r = c + 1; r < n; r++)
        {
            double      f = M[(size_t) r * n + c] / M[(size_t) c * n + c];

            for (int j = c; j < n; j++)
                M[(size_t) r * n + j] -= f * M[(size_t) c * n + j];
            h[r] -= f * h[c];
        }
    }
    for (int c = n - 1; c >= 0; c--)
    {
        double      v = h[c];

        for (int j = c + 1; j < n; j++)
            v -= M[(size_t) c * n + j] * h[j];
        h[c] = v / M[(size_t) c * n + c];
    }
    return 0;
}

/*
 * In the basis, YtY + lambda I is D^-1 = diag(evals + lambda) and the
 * items' terms are Ut^T C Ut (Ut = U Q, U the items' vectors as rows,
 * C = diag(alpha w_i)), so by Woodbury
 *   z = D t - D Ut^T (I + C G)^-1 C Ut t,  G = Ut D Ut^T,
 * with t = Q^T (b0 + lambda prior) and x = Q z.  The products over all
 * weights at once are cblas_dgemm calls; each weight solves only its
 * n x n system (I + C G) s = C Ut D t.
 */
int
it_fold_in_grid_basis(const float *Y, const ItGramBasis *basis,
                      const int32_t *items, const float *weights, int n,
                      float alpha, float positive_threshold,
                      const float *lambdas, int ngrid,
                      const float *prior, float *X)
{
    int         k;
    int         r = 0;
    int         npair;
    double     *U,
               *C,
               *B2,
               *CT,
               *Ut,
               *T,
               *D,
               *W,
               *Z,
               *Xd,
               *P,
               *G,
               *H,
               *S,
               *M;

    if (Y == NULL || basis == NULL || X == NULL || lambdas == NULL || ngrid < 1 ||
        ngrid > basis->maxgrid || n > basis->maxrank || (n > 0 && (items == NULL || weights == NULL)))
        return -1;
    for (int j = 0; j < ngrid; j++)
        if (!(lambdas[j] > 0.0f))
            return -1;
    k = basis->k;
    if (n <= 0)
    {
        for (int j = 0; j < ngrid; j++)
            PriorOnly(prior, k, X + (size_t) j * k);
        return 0;
    }

    U = basis->work;
    C = U + (size_t) n * k;
    B2 = C + n;
    CT = B2 + 2 * (size_t) k;
    Ut = CT + 2 * (size_t) k;
    T = Ut + (size_t) n * k;
    D = T + (size_t) ngrid * k;
    W = D + (size_t) ngrid * k;
    Z = W + (size_t) ngrid * k;
    Xd = Z + (size_t) ngrid * k;
    P = Xd + (size_t) ngrid * k;

    /* the evidence: the rows with c_i != 0 to U, the right-hand side to B2[0] */
    memset(B2, 0, sizeof(double) * 2 * (size_t) k);
    for (int i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) items[i] * k;
        double      cm1 = (double) (alpha * weights[i]);

        if (cm1 != 0.0)
        {
            for (int j = 0; j < k; j++)
                U[(size_t) r * k + j] = y[j];
            C[r++] = cm1;
        }
        if (weights[i] >= positive_threshold)
            for (int j = 0; j < k; j++)
                B2[j] += (1.0 + cm1) * y[j];
    }
    if (prior != NULL)
        for (int j = 0; j < k; j++)
            B2[k + j] = prior[j];
    npair = r * (r + 1) / 2;
    G = P + (size_t) npair * k;
    H = G + (size_t) npair * ngrid;
    S = H + (size_t) r * ngrid;
    M = S + (size_t) r * ngrid;

    /* into the basis: CT = [b0; prior] Q, Ut = U Q */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2, k, k, 1.0, B2, k, basis->Vt, k, 0.0, CT, k);
    if (r > 0)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, k, k, 1.0, U, k, basis->Vt, k, 0.0, Ut, k);

    /* each weight's diagonal D and D t */
    for (int g = 0; g < ngrid; g++)
    {
        double      lambda0 = lambdas[g];

        for (int j = 0; j < k; j++)
        {
            double      e = basis->evals[j] + lambda0;

            if (!(e > 0.0))
                return 1;
            D[(size_t) g * k + j] = 1.0 / e;
            T[(size_t) g * k + j] = (CT[j] + lambda0 * CT[k + j]) / e;
        }
    }
    if (r == 0)
        memcpy(Z, T, sizeof(double) * (size_t) ngrid * k);
    else
    {
        /* G: every pair's Ut_a Ut_b against every D; H = Ut (D t) */
        for (int a = 0, pr = 0; a < r; a++)
            for (int b = a; b < r; b++, pr++)
                for (int j = 0; j < k; j++)
                    P[(size_t) pr * k + j] = Ut[(size_t) a * k + j] * Ut[(size_t) b * k + j];
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, npair, ngrid, k, 1.0, P, k, D, k, 0.0, G, ngrid);
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r, ngrid, k, 1.0, Ut, k, T, k, 0.0, H, ngrid);
        for (int g = 0; g < ngrid; g++)
        {
            double     *s = S + (size_t) g * r;

            for (int a = 0, pr = 0; a < r; a++)
            {
                for (int b = a; b < r; b++, pr++)
                {
                    double      v = G[(size_t) pr * ngrid + g];

                    M[(size_t) a * r + b] = C[a] * v + (a == b ? 1.0 : 0.0);
                    M[(size_t) b * r + a] = C[b] * v + (a == b ? 1.0 : 0.0);
                }
                s[a] = C[a] * H[(size_t) a * ngrid + g];
            }
            if (SolveSmall(r, M, s) != 0)
                return 1;
        }
        /* z = D t - D Ut^T s */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ngrid, k, r, 1.0, S, r, Ut, k, 0.0, W, k);
        for (size_t i = 0; i < (size_t) ngrid * k; i++)
            Z[i] = T[i] - D[i] * W[i];
    }

    /* back: x = Q z */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, ngrid, k, k, 1.0, Z, k, basis->Vt, k, 0.0, Xd, k);
    for (size_t i = 0; i < (size_t) ngrid * k; i++)
    {
        if (!isfinite(Xd[i]))
            return -1;
        X[i] = (float) Xd[i];
    }
    return 0;
}

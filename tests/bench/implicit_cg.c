/*
 * implicit_cg.c
 *    The reference point of tests/bench/train_speed.sh: a pure-C stand-in
 *    for implicit's conjugate-gradient ALS fit (a program, not a test).
 *
 *    tests/bench/bin/implicit_cg [-f factors] [-i iterations] [-t threads]
 *                                [-r regularization] [-a alpha] [-c cg_steps]
 *                                [-n repetitions] [-l] [-g] FILE
 *    tests/bench/bin/implicit_cg [options] -G users,items,interactions
 *
 * implicit (https://github.com/benfred/implicit) is not installable here,
 * so this program does, in C, the work that its CPU fit does,
 *   implicit.cpu.als.AlternatingLeastSquares(factors=64, iterations=10,
 *       use_cg=True, num_threads=2).fit(user_items_csr)
 * re-implemented from the algorithm (Hu, Koren, Volinsky 2008; Takacs et
 * al. 2011), not from implicit's code:
 *   - the user x item matrix to CSR (float32), duplicates summed, its data
 *     turned into confidences c = 1 + alpha * weight (the confidence train()
 *     uses, so both do the same arithmetic), and its item x user transpose
 *     (scipy's .T.tocsr()): both inside the fit's time, as in implicit;
 *   - user and item factors uniform in [0, 1) * 0.01 (float32);
 *   - per iteration, users then items, each half-step: YtY = Y^T Y + lambda I
 *     (one ssyrk), then every row, in parallel (OpenMP, schedule guided),
 *     cg_steps steps of conjugate gradient from the previous x with
 *     level-1/2 BLAS calls (ssymv, sdot, saxpy, sscal); a row with no
 *     entries gets x = 0;
 *   - no loss (implicit's default calculate_training_loss=False).
 * Time runs from "(row, column, weight) arrays in memory" to "factors done";
 * mapping the file's ids to dense indexes is done before, untimed (implicit
 * is handed a CSR matrix its user built).  Each repetition starts from
 * fresh factors; the median of the repetitions is reported, with its parts:
 * COO -> CSR, transpose, init, the iterations (gram and solve).
 *
 * FILE holds one "user item weight" line per interaction (tab, comma or
 * space separated; ids are any 64-bit integers), as COPY ... TO writes it.
 * -G generates instead, in memory, the data of tests/bench/bench_als.c
 * (its generator, seed and Zipf exponent 1.0), so its seconds per iteration
 * can be read next to our kernel's.
 *
 * -l prints, after every iteration (untimed, on a separate run before the
 * timed ones), the training objective
 *   sum over all cells c_ui (p_ui - x_u.y_i)^2 + lambda (|X|^2 + |Y|^2)
 * (the "loss" train() reports), and implicit's normalisation of it (divided
 * by sum c over the entries + users * items - entries).
 *
 * -g, an experiment: YtY p by sgemv on the full matrix instead of ssymv.
 * OpenBLAS's ssymv takes a work buffer from its allocator at every call,
 * behind a mutex, and two threads calling it at once contend for it (perf,
 * 100k users x 20k items: about 30% of the time in mutex, futex and the
 * kernel; measured 0.73 s per iteration on 1 thread, 0.77 on 2); sgemv of
 * this size uses the stack (0.74 on 1 thread, 0.51 on 2).  implicit pays
 * the lock too where its OpenBLAS has it, so the default is ssymv; -g
 * shows the same fit without it, a stricter reference.
 *
 * BLAS: several threads call OpenBLAS at once here, as implicit's prange
 * does through scipy's BLAS.  Debian's serial OpenBLAS (what the extension
 * links) is not safe for that (its buffers are not locked, see
 * src/kernels/als.c), so this program links the pthreads build, the kind
 * scipy ships, and sets it to one BLAS thread per caller, as implicit asks
 * its users to (OPENBLAS_NUM_THREADS=1).
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "kernels.h"

/* a row whose squared residual is below this is solved */
#define CG_EPS 1e-20f

#define MAX_REPS 99

typedef struct Csr
{
    int64_t     nrows;
    int64_t     ncols;
    int64_t     nnz;
    int64_t    *indptr;         /* nrows + 1 */
    int32_t    *indices;        /* nnz, sorted within a row */
    float      *data;           /* nnz: confidences */
} Csr;

/* what the timed parts of one fit took, in seconds */
typedef struct Parts
{
    double      csr;
    double      transpose;
    double      init;
    double      gram;
    double      solve;
    double      per_iteration;  /* (gram + solve) / iterations */
    double      total;
} Parts;

static double
Now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
Alloc(size_t count, size_t size)
{
    void       *p;

    if (size != 0 && count > SIZE_MAX / size)
    {
        fprintf(stderr, "implicit_cg: allocation too large (%zu x %zu bytes)\n", count, size);
        exit(2);
    }
    p = malloc(count * size != 0 ? count * size : 1);
    if (p == NULL)
    {
        fprintf(stderr, "implicit_cg: out of memory (%zu bytes)\n", count * size);
        exit(2);
    }
    return p;
}

static int
CmpDouble(const void *a, const void *b)
{
    double      x = *(const double *) a;
    double      y = *(const double *) b;

    return (x > y) - (x < y);
}

static int
CmpInt64(const void *a, const void *b)
{
    int64_t     x = *(const int64_t *) a;
    int64_t     y = *(const int64_t *) b;

    return (x > y) - (x < y);
}

/* the median over p[0..n) of the field at byte offset off */
static double
PartMedian(const Parts *p, int n, size_t off)
{
    double      s[MAX_REPS];
    int         i;

    for (i = 0; i < n; i++)
        memcpy(&s[i], (const char *) &p[i] + off, sizeof(double));
    qsort(s, n, sizeof(double), CmpDouble);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

/* ---------------------------------------------------------------------
 * Input: a triplet file, ids mapped to dense indexes (untimed)
 * --------------------------------------------------------------------- */

typedef struct Coo
{
    int64_t     n;
    int64_t     nrows;
    int64_t     ncols;
    int32_t    *rows;
    int32_t    *cols;
    float      *vals;
} Coo;

/* sorts ids[0..n) and removes duplicates; returns how many are left */
static int64_t
SortUnique(int64_t *ids, int64_t n)
{
    int64_t     m = 0;
    int64_t     i;

    qsort(ids, n, sizeof(int64_t), CmpInt64);
    for (i = 0; i < n; i++)
        if (m == 0 || ids[i] != ids[m - 1])
            ids[m++] = ids[i];
    return m;
}

static int32_t
IndexOf(const int64_t *sorted, int64_t n, int64_t id)
{
    int64_t     lo = 0;
    int64_t     hi = n - 1;

    while (lo < hi)
    {
        int64_t     mid = lo + (hi - lo) / 2;

        if (sorted[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int32_t) lo;
}

static void
ReadTriplets(const char *path, Coo *coo)
{
    FILE       *f = fopen(path, "r");
    int64_t     cap = 1 << 20;
    int64_t     n = 0;
    int64_t    *uid = Alloc(cap, sizeof(int64_t));
    int64_t    *iid = Alloc(cap, sizeof(int64_t));
    float      *w = Alloc(cap, sizeof(float));
    int64_t    *us;
    int64_t    *is;
    int64_t     nu;
    int64_t     ni;
    int64_t     i;
    char        line[256];
    int64_t     lineno = 0;

    if (f == NULL)
    {
        fprintf(stderr, "implicit_cg: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    while (fgets(line, sizeof(line), f))
    {
        char       *p = line;
        char       *end;
        long long   u;
        long long   it;
        double      v;

        lineno++;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        errno = 0;
        u = strtoll(p, &end, 10);
        if (end == p)
            goto bad;
        p = end + strspn(end, " \t,");
        it = strtoll(p, &end, 10);
        if (end == p)
            goto bad;
        p = end + strspn(end, " \t,");
        v = strtod(p, &end);
        if (end == p || errno != 0 || !isfinite(v))
            goto bad;
        if (n == cap)
        {
            cap *= 2;
            uid = realloc(uid, sizeof(int64_t) * cap);
            iid = realloc(iid, sizeof(int64_t) * cap);
            w = realloc(w, sizeof(float) * cap);
            if (uid == NULL || iid == NULL || w == NULL)
            {
                fprintf(stderr, "implicit_cg: out of memory reading %s\n", path);
                exit(2);
            }
        }
        uid[n] = u;
        iid[n] = it;
        w[n] = (float) v;
        n++;
        continue;
bad:
        fprintf(stderr, "implicit_cg: %s line %lld: expected \"user item weight\"\n",
                path, (long long) lineno);
        exit(2);
    }
    fclose(f);
    if (n == 0)
    {
        fprintf(stderr, "implicit_cg: %s holds no interactions\n", path);
        exit(2);
    }

    us = Alloc(n, sizeof(int64_t));
    is = Alloc(n, sizeof(int64_t));
    memcpy(us, uid, sizeof(int64_t) * n);
    memcpy(is, iid, sizeof(int64_t) * n);
    nu = SortUnique(us, n);
    ni = SortUnique(is, n);
    if (nu > INT32_MAX || ni > INT32_MAX)
    {
        fprintf(stderr, "implicit_cg: too many distinct ids\n");
        exit(2);
    }
    coo->n = n;
    coo->nrows = nu;
    coo->ncols = ni;
    coo->rows = Alloc(n, sizeof(int32_t));
    coo->cols = Alloc(n, sizeof(int32_t));
    coo->vals = w;
    for (i = 0; i < n; i++)
    {
        coo->rows[i] = IndexOf(us, nu, uid[i]);
        coo->cols[i] = IndexOf(is, ni, iid[i]);
    }
    free(uid);
    free(iid);
    free(us);
    free(is);
}

/*
 * -G: the data of tests/bench/bench_als.c, by its generator (the same
 * xorshift seed, Zipf law and turns), so the shapes and cells match.
 */
static uint64_t rng_state = 0x1234567887654321ULL;

static uint64_t
Rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static double
Uniform(void)
{
    return (double) (Rand() >> 11) / 9007199254740992.0;
}

static void
Generate(int64_t nusers, int64_t nitems, int64_t ninter, Coo *coo)
{
    double     *cdf = Alloc(nitems, sizeof(double));
    double      acc = 0;
    int64_t     n = 0;
    int64_t     u;
    int64_t     i;

    if (ninter > nusers * nitems / 2)
        ninter = nusers * nitems / 2;
    for (i = 0; i < nitems; i++)
    {
        acc += 1.0 / pow(i + 1.0, 1.0);
        cdf[i] = acc;
    }
    for (i = 0; i < nitems; i++)
        cdf[i] /= acc;
    coo->rows = Alloc(ninter, sizeof(int32_t));
    coo->cols = Alloc(ninter, sizeof(int32_t));
    coo->vals = Alloc(ninter, sizeof(float));
    for (u = 0; n < ninter; u = (u + 1) % nusers)
    {
        int         want = 1 + (int) (Rand() % 39);
        int         got = 0;
        int         tries = 0;
        int32_t     mine[64];

        while (got < want && n < ninter && tries++ < 1000)
        {
            double      r = Uniform();
            int         lo = 0;
            int         hi = (int) nitems - 1;
            int         j;
            int         dup = 0;

            while (lo < hi)
            {
                int         mid = (lo + hi) / 2;

                if (cdf[mid] < r)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (j = 0; j < got; j++)
                dup |= mine[j] == lo;
            if (dup)
                continue;
            mine[got++] = lo;
            coo->rows[n] = (int32_t) u;
            coo->cols[n] = lo;
            coo->vals[n] = (float) (1 + Rand() % 3);
            n++;
        }
    }
    coo->n = n;
    coo->nrows = nusers;
    coo->ncols = nitems;
    free(cdf);
}

/* ---------------------------------------------------------------------
 * The fit (timed)
 * --------------------------------------------------------------------- */

typedef struct Cell
{
    int32_t     col;
    float       val;
} Cell;

static int
CmpCell(const void *a, const void *b)
{
    int32_t     x = ((const Cell *) a)->col;
    int32_t     y = ((const Cell *) b)->col;

    return (x > y) - (x < y);
}

/*
 * COO -> CSR as scipy's tocsr() does it: a counting sort by row (stable,
 * so a row keeps the input order), then each row not in column order is
 * sorted, and duplicates are summed (sum_duplicates); then the weights
 * become confidences 1 + alpha * w.
 */
static void
CooToCsr(const Coo *coo, float alpha, Csr *m)
{
    int64_t     n = coo->n;
    int64_t    *next = Alloc(coo->nrows + 1, sizeof(int64_t));
    int64_t     longest = 0;
    Cell       *cells;
    int64_t     r;
    int64_t     i;
    int64_t     out = 0;

    m->nrows = coo->nrows;
    m->ncols = coo->ncols;
    m->indptr = Alloc(coo->nrows + 1, sizeof(int64_t));
    m->indices = Alloc(n, sizeof(int32_t));
    m->data = Alloc(n, sizeof(float));
    memset(m->indptr, 0, sizeof(int64_t) * (coo->nrows + 1));
    for (i = 0; i < n; i++)
        m->indptr[coo->rows[i] + 1]++;
    for (r = 0; r < coo->nrows; r++)
    {
        if (m->indptr[r + 1] > longest)
            longest = m->indptr[r + 1];
        m->indptr[r + 1] += m->indptr[r];
    }
    memcpy(next, m->indptr, sizeof(int64_t) * (coo->nrows + 1));
    for (i = 0; i < n; i++)
    {
        int64_t     at = next[coo->rows[i]]++;

        m->indices[at] = coo->cols[i];
        m->data[at] = coo->vals[i];
    }
    /* canonical form: sorted columns, no duplicates (compacted in place) */
    cells = Alloc(longest, sizeof(Cell));
    for (r = 0; r < coo->nrows; r++)
    {
        int64_t     b = m->indptr[r];
        int64_t     e = m->indptr[r + 1];
        int64_t     j;

        for (j = b + 1; j < e && m->indices[j - 1] <= m->indices[j]; j++)
            ;
        if (j < e)
        {
            for (j = b; j < e; j++)
            {
                cells[j - b].col = m->indices[j];
                cells[j - b].val = m->data[j];
            }
            qsort(cells, e - b, sizeof(Cell), CmpCell);
            for (j = b; j < e; j++)
            {
                m->indices[j] = cells[j - b].col;
                m->data[j] = cells[j - b].val;
            }
        }
        m->indptr[r] = out;
        for (j = b; j < e; j++)
        {
            if (out > m->indptr[r] && m->indices[out - 1] == m->indices[j])
                m->data[out - 1] += m->data[j];
            else
            {
                m->indices[out] = m->indices[j];
                m->data[out] = m->data[j];
                out++;
            }
        }
    }
    m->indptr[coo->nrows] = out;
    m->nnz = out;
    for (i = 0; i < out; i++)
        m->data[i] = 1.0f + alpha * m->data[i];
    free(cells);
    free(next);
}

/* the transpose, by a counting sort over the columns (scipy's csr_tocsc) */
static void
Transpose(const Csr *a, Csr *t)
{
    int64_t    *next = Alloc(a->ncols + 1, sizeof(int64_t));
    int64_t     r;
    int64_t     j;

    t->nrows = a->ncols;
    t->ncols = a->nrows;
    t->nnz = a->nnz;
    t->indptr = Alloc(a->ncols + 1, sizeof(int64_t));
    t->indices = Alloc(a->nnz, sizeof(int32_t));
    t->data = Alloc(a->nnz, sizeof(float));
    memset(t->indptr, 0, sizeof(int64_t) * (a->ncols + 1));
    for (j = 0; j < a->nnz; j++)
        t->indptr[a->indices[j] + 1]++;
    for (r = 0; r < a->ncols; r++)
        t->indptr[r + 1] += t->indptr[r];
    memcpy(next, t->indptr, sizeof(int64_t) * (a->ncols + 1));
    for (r = 0; r < a->nrows; r++)
        for (j = a->indptr[r]; j < a->indptr[r + 1]; j++)
        {
            int64_t     at = next[a->indices[j]]++;

            t->indices[at] = (int32_t) r;
            t->data[at] = a->data[j];
        }
    free(next);
}

static void
FreeCsr(Csr *m)
{
    free(m->indptr);
    free(m->indices);
    free(m->data);
}

/* uniform in [0, 1) * 0.01, float32 (implicit's initial factors) */
static void
RandomFactors(float *X, int64_t n, int k, uint64_t seed)
{
    uint64_t    s = seed * UINT64_C(0x9E3779B97F4A7C15) + 1;
    int64_t     i;

    for (i = 0; i < n * k; i++)
    {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        X[i] = (float) ((s >> 40) * (1.0 / 16777216.0)) * 0.01f;
    }
}

/* G = A^T A (+ reg I when reg > 0): one ssyrk, mirrored to a full matrix */
static void
Gram(const float *A, int64_t n, int k, float reg, float *G)
{
    int         i;
    int         j;

    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int) n, 1.0f, A, k, 0.0f, G, k);
    for (i = 0; i < k; i++)
    {
        for (j = 0; j < i; j++)
            G[i * k + j] = G[j * k + i];
        G[i * k + i] += reg;
    }
}

/* y = a * S x for the symmetric S (full, mirrored): ssymv, as implicit
 * does, or with -g sgemv, which OpenBLAS runs without its buffer lock */
static int  use_gemv = 0;

static inline void
Symv(int k, float a, const float *S, const float *x, float *y)
{
    if (use_gemv)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, k, k, a, S, k, x, 1, 0.0f, y, 1);
    else
        cblas_ssymv(CblasRowMajor, CblasUpper, k, a, S, k, x, 1, 0.0f, y, 1);
}

/*
 * One half-step: for every row u of C, cg_steps CG steps on
 *   (YtY + sum_i (c_ui - 1) y_i y_i^T) x = sum_i c_ui y_i
 * (YtY with lambda on its diagonal) from the current X[u].
 */
static void
LeastSquaresCg(const Csr *C, float *X, const float *Y, const float *YtY,
               int k, int cg_steps, int threads)
{
#pragma omp parallel num_threads(threads)
    {
        float      *r = Alloc(k, sizeof(float));
        float      *p = Alloc(k, sizeof(float));
        float      *Ap = Alloc(k, sizeof(float));
        int64_t     u;

#pragma omp for schedule(guided)
        for (u = 0; u < C->nrows; u++)
        {
            float      *x = X + u * k;
            int64_t     b = C->indptr[u];
            int64_t     e = C->indptr[u + 1];
            int64_t     j;
            float       rsold;
            int         step;

            if (b == e)
            {
                memset(x, 0, sizeof(float) * k);
                continue;
            }
            /* r = b - A x = -YtY x + sum_i (c - (c - 1) y_i.x) y_i */
            Symv(k, -1.0f, YtY, x, r);
            for (j = b; j < e; j++)
            {
                const float *y = Y + (int64_t) C->indices[j] * k;
                float       c = C->data[j];

                cblas_saxpy(k, c - (c - 1.0f) * cblas_sdot(k, y, 1, x, 1), y, 1, r, 1);
            }
            memcpy(p, r, sizeof(float) * k);
            rsold = cblas_sdot(k, r, 1, r, 1);
            if (rsold < CG_EPS)
                continue;
            for (step = 0; step < cg_steps; step++)
            {
                float       a;
                float       rsnew;

                /* Ap = YtY p + sum_i (c - 1) (y_i.p) y_i */
                Symv(k, 1.0f, YtY, p, Ap);
                for (j = b; j < e; j++)
                {
                    const float *y = Y + (int64_t) C->indices[j] * k;

                    cblas_saxpy(k, (C->data[j] - 1.0f) * cblas_sdot(k, y, 1, p, 1), y, 1, Ap, 1);
                }
                a = rsold / cblas_sdot(k, p, 1, Ap, 1);
                cblas_saxpy(k, a, p, 1, x, 1);
                cblas_saxpy(k, -a, Ap, 1, r, 1);
                rsnew = cblas_sdot(k, r, 1, r, 1);
                if (rsnew < CG_EPS)
                    break;
                /* p = r + (rsnew / rsold) p */
                cblas_sscal(k, rsnew / rsold, p, 1);
                cblas_saxpy(k, 1.0f, r, 1, p, 1);
                rsold = rsnew;
            }
        }
        free(r);
        free(p);
        free(Ap);
    }
}

/*
 * The training objective (see the header comment), by the Gram trick:
 * sum over all cells of (x.y)^2 is sum_u x_u^T (Y^T Y) x_u; the entries
 * add (c - 1) s^2 - 2 c s + c with s = x_u.y_i.  Accumulated in double.
 * Returns the objective; *normalised gets implicit's normalisation.
 */
static double
Loss(const Csr *C, const float *X, const float *Y, int k, float reg,
     int threads, double *normalised)
{
    float      *YtY = Alloc((size_t) k * k, sizeof(float));
    double      loss = 0;
    double      total_c = 0;
    double      norms = 0;
    int64_t     u;

    Gram(Y, C->ncols, k, 0.0f, YtY);
#pragma omp parallel num_threads(threads) reduction(+:loss, total_c, norms)
    {
        float      *t = Alloc(k, sizeof(float));

#pragma omp for schedule(guided)
        for (u = 0; u < C->nrows; u++)
        {
            const float *x = X + u * k;
            int64_t     j;

            cblas_ssymv(CblasRowMajor, CblasUpper, k, 1.0f, YtY, k, x, 1, 0.0f, t, 1);
            loss += cblas_sdot(k, t, 1, x, 1);
            for (j = C->indptr[u]; j < C->indptr[u + 1]; j++)
            {
                double      c = C->data[j];
                double      s = cblas_sdot(k, Y + (int64_t) C->indices[j] * k, 1, x, 1);

                loss += (c - 1) * s * s - 2 * c * s + c;
                total_c += c;
            }
            norms += cblas_sdot(k, x, 1, x, 1);
        }
        free(t);
    }
    for (u = 0; u < C->ncols; u++)
        norms += cblas_sdot(k, Y + u * k, 1, Y + u * k, 1);
    loss += reg * norms;
    *normalised = loss / (total_c + (double) C->nrows * C->ncols - C->nnz);
    free(YtY);
    return loss;
}

typedef struct Settings
{
    int         k;
    int         iters;
    int         threads;
    int         cg_steps;
    float       reg;
    float       alpha;
    int         print_loss;
} Settings;

/* one whole fit from the COO arrays; the factors are left in *Xo, *Yo */
static void
Fit(const Coo *coo, const Settings *s, uint64_t seed, Parts *t, float **Xo, float **Yo)
{
    Csr         Cui;
    Csr         Ciu;
    float      *X;
    float      *Y;
    float      *G = Alloc((size_t) s->k * s->k, sizeof(float));
    double      t0 = Now();
    double      t1;
    double      pause = 0;
    int         it;

    memset(t, 0, sizeof(*t));
    CooToCsr(coo, s->alpha, &Cui);
    t1 = Now();
    t->csr = t1 - t0;
    Transpose(&Cui, &Ciu);
    t->transpose = Now() - t1;
    t1 = Now();
    X = Alloc((size_t) Cui.nrows * s->k, sizeof(float));
    Y = Alloc((size_t) Cui.ncols * s->k, sizeof(float));
    RandomFactors(X, Cui.nrows, s->k, seed * 2 + 1);
    RandomFactors(Y, Cui.ncols, s->k, seed * 2 + 2);
    t->init = Now() - t1;
    for (it = 0; it < s->iters; it++)
    {
        double      a = Now();
        double      b;
        double      c;
        double      d;

        Gram(Y, Cui.ncols, s->k, s->reg, G);
        b = Now();
        LeastSquaresCg(&Cui, X, Y, G, s->k, s->cg_steps, s->threads);
        c = Now();
        Gram(X, Cui.nrows, s->k, s->reg, G);
        d = Now();
        LeastSquaresCg(&Ciu, Y, X, G, s->k, s->cg_steps, s->threads);
        t->gram += (b - a) + (d - c);
        t->solve += (c - b) + (Now() - d);
        if (s->print_loss)
        {
            double      p0 = Now();
            double      norm;
            double      loss = Loss(&Cui, X, Y, s->k, s->reg, s->threads, &norm);

            printf("iteration %2d: loss %.6g (normalised as implicit does: %.6g)\n", it + 1, loss, norm);
            fflush(stdout);
            pause += Now() - p0;
        }
    }
    t->total = Now() - t0 - pause;
    t->per_iteration = (t->gram + t->solve) / s->iters;
    FreeCsr(&Cui);
    FreeCsr(&Ciu);
    free(G);
    *Xo = X;
    *Yo = Y;
}

static void
Usage(void)
{
    fprintf(stderr,
            "usage: implicit_cg [-f factors] [-i iterations] [-t threads] [-r regularization]\n"
            "                   [-a alpha] [-c cg_steps] [-n repetitions] [-l] [-g] FILE | -G users,items,interactions\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    Settings    s = {64, 10, 2, 3, 0.01f, 1.0f, 0};
    int         reps = 3;
    const char *path = NULL;
    const char *gen = NULL;
    const char *want;
    int         switched;
    Coo         coo;
    Parts       parts[MAX_REPS];
    double      t0;
    int         i;

    for (i = 1; i < argc; i++)
    {
        const char *a = argv[i];

        if (strcmp(a, "-l") == 0)
            s.print_loss = 1;
        else if (strcmp(a, "-g") == 0)
            use_gemv = 1;
        else if (a[0] == '-' && a[1] != '\0' && a[2] == '\0' && i + 1 < argc)
        {
            const char *v_ = argv[++i];

            switch (a[1])
            {
                case 'f': s.k = atoi(v_); break;
                case 'i': s.iters = atoi(v_); break;
                case 't': s.threads = atoi(v_); break;
                case 'c': s.cg_steps = atoi(v_); break;
                case 'r': s.reg = strtof(v_, NULL); break;
                case 'a': s.alpha = strtof(v_, NULL); break;
                case 'n': reps = atoi(v_); break;
                case 'G': gen = v_; break;
                default: Usage();
            }
        }
        else if (a[0] != '-' && path == NULL)
            path = a;
        else
            Usage();
    }
    if ((path == NULL) == (gen == NULL) || s.k < 1 || s.k > 4096 || s.iters < 1 ||
        s.threads < 1 || s.cg_steps < 1 || reps < 1 || reps > MAX_REPS ||
        !(s.reg >= 0) || !(s.alpha >= 0))
        Usage();

    /*
     * The kernels train() gets on this CPU (blas_core.c), for a fair race:
     * here by starting again with OPENBLAS_CORETYPE set, before the
     * library's thread pool has run anything.
     */
    want = it_blas_wanted_core();
    if (want != NULL)
    {
        setenv("OPENBLAS_CORETYPE", want, 1);
        setenv("IMPLICIT_CG_SWITCHED", "1", 1);
        execv("/proc/self/exe", argv);
        fprintf(stderr, "implicit_cg: could not start again with OPENBLAS_CORETYPE=%s: %s\n", want, strerror(errno));
        return 1;
    }
    switched = getenv("IMPLICIT_CG_SWITCHED") != NULL;
    /* one BLAS thread per caller: the rows are the parallel part */
    openblas_set_num_threads(1);

    t0 = Now();
    if (gen != NULL)
    {
        long long   nu;
        long long   ni;
        long long   nz;

        if (sscanf(gen, "%lld,%lld,%lld", &nu, &ni, &nz) != 3 || nu < 1 || ni < 1 || nz < 1 ||
            nu > INT32_MAX || ni > INT32_MAX)
            Usage();
        Generate(nu, ni, nz, &coo);
    }
    else
        ReadTriplets(path, &coo);
    printf("implicit_cg: a pure-C stand-in for implicit's CPU conjugate-gradient ALS fit "
           "(implicit itself is not installed here)\n");
    printf("data: %lld users, %lld items, %lld interactions (%s in %.2f s, untimed)\n",
           (long long) coo.nrows, (long long) coo.ncols, (long long) coo.n,
           gen ? "generated as tests/bench/bench_als.c does" : "read and ids mapped", Now() - t0);
    printf("fit: %d factors, %d iterations, %d CG steps, %d threads, regularization %g, "
           "confidence 1 + %g * weight, YtY p by %s\n", s.k, s.iters, s.cg_steps, s.threads, s.reg, s.alpha,
           use_gemv ? "sgemv (-g)" : "ssymv");
    printf("OpenBLAS kernels: %s%s\n", it_blas_core_name() ? it_blas_core_name() : "(not OpenBLAS)",
           switched ? ", loaded in place of the library's fallback for an unknown CPU, as train() does" : "");
    fflush(stdout);

    if (s.print_loss)
    {
        float      *X;
        float      *Y;
        Parts       p;

        printf("loss per iteration (a separate, untimed run):\n");
        Fit(&coo, &s, 0, &p, &X, &Y);
        free(X);
        free(Y);
        s.print_loss = 0;
    }

    for (i = 0; i < reps; i++)
    {
        float      *X;
        float      *Y;
        Parts      *p = &parts[i];

        Fit(&coo, &s, (uint64_t) i + 1, p, &X, &Y);
        printf("run %d: fit %.3f s (csr %.3f, transpose %.3f, init %.3f, gram %.3f, solve %.3f; "
               "%.3f s/iteration)\n", i + 1, p->total, p->csr, p->transpose, p->init,
               p->gram, p->solve, p->per_iteration);
        fflush(stdout);
        free(X);
        free(Y);
    }
    printf("median of %d: fit %.3f s; parts (medians): csr %.3f s, transpose %.3f s, init %.3f s, "
           "gram %.3f s, solve %.3f s; %.3f s/iteration\n",
           reps, PartMedian(parts, reps, offsetof(Parts, total)),
           PartMedian(parts, reps, offsetof(Parts, csr)),
           PartMedian(parts, reps, offsetof(Parts, transpose)),
           PartMedian(parts, reps, offsetof(Parts, init)),
           PartMedian(parts, reps, offsetof(Parts, gram)),
           PartMedian(parts, reps, offsetof(Parts, solve)),
           PartMedian(parts, reps, offsetof(Parts, per_iteration)));
    free(coo.rows);
    free(coo.cols);
    free(coo.vals);
    return 0;
}

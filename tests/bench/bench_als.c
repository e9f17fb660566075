/*
 * bench_als.c
 *    Benchmark of the ALS-CG kernels and of top-k scoring (not a test).
 *
 *    tests/bench/bin/bench_als [-i iterations] [-t "1 2"] [-u users]
 *                              [-n items] [-z interactions] [-f factors]
 *                              [-c cg_steps] [-s zipf exponent]
 *                              [-H 1: factors on huge pages, it_advise_hugepages]
 *
 * Generates, in memory, 2,000,000 interactions of 100,000 users with
 * 20,000 items whose popularity follows a Zipf law (every user sees each of
 * their items once), then trains 64 factors for 15 iterations with 1 and
 * with 2 threads, and prints seconds per iteration, the achieved GFLOP/s
 * and, measured in the same run, single-threaded OpenBLAS sgemm GFLOP/s on
 * 2048 x 2048 x 64.  Then times one user's top 10 (it_score_all + it_topk,
 * seen items excluded) over 20,000 and 100,000 items, p50/p99 of 1,000
 * calls, and one user's fold-in (it_fold_in).
 *
 * Flop count of one half-step (what "GFLOP/s" divides by), for each row
 * with m > 0 entries and k factors, with s = cg_steps:
 *   dense part  (s + 1) * 2 k^2   one k x k product per residual/CG step
 *   sparse part (s + 1) * 4 m k   per entry a dot product and an axpy
 *   vector ops  s * 10 k + 2 k    pAp, x, r, r.r, p updates; initial r.r
 * plus the Gram matrix of the fixed side, n k^2 (ssyrk, upper half).
 * The loss is not counted (it is timed apart).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cblas.h>

#include "kernels.h"

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

static double
Now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void *
Alloc(size_t bytes)
{
    void       *p = malloc(bytes ? bytes : 1);

    if (p == NULL)
    {
        fprintf(stderr, "out of memory (%zu bytes)\n", bytes);
        exit(2);
    }
    return p;
}

/* CPU seconds used by the whole process (every thread) */
static double
CpuNow(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int
CmpDouble(const void *a, const void *b)
{
    double      x = *(const double *) a;
    double      y = *(const double *) b;

    return (x > y) - (x < y);
}

/* factor matrices, on transparent huge pages with -H 1 */
static int  use_huge = 0;

/*
 * Asks the operating system to back the whole 2 MB pages inside
 * buf[0..bytes) with transparent huge pages (madvise MADV_HUGEPAGE, where
 * the system has it; otherwise nothing happens): random row reads in the
 * half-steps then miss the TLB less (measured 0 to 15% faster iterations at
 * 100k users x 20k items, 64 factors, 2 threads).  An experiment of the
 * benchmark; training does not do it.
 */
static void
AdviseHugepages(void *buf, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t) 2 << 20;
    uintptr_t   start = ((uintptr_t) buf + huge - 1) & ~(huge - 1);
    uintptr_t   end = ((uintptr_t) buf + bytes) & ~(huge - 1);

    /* only the whole huge pages inside the buffer; failure is harmless */
    if (end > start)
        (void) madvise((void *) start, end - start, MADV_HUGEPAGE);
#endif
}

static void *
AllocFactors(size_t bytes)
{
    void       *p = Alloc(bytes);

    if (use_huge)
        AdviseHugepages(p, bytes);
    return p;
}

static int
CmpInt32(const void *a, const void *b)
{
    int32_t     x = *(const int32_t *) a;
    int32_t     y = *(const int32_t *) b;

    return (x > y) - (x < y);
}

/* flops of one half-step over R (see the header comment) */
static double
HalfStepFlops(const ItCsr *R, int k, int s, int64_t nfixed)
{
    double      f = (double) nfixed * k * k;
    int64_t     u;

    for (u = 0; u < R->nrows; u++)
    {
        double      m = (double) (R->indptr[u + 1] - R->indptr[u]);

        if (m > 0)
            f += (s + 1) * (2.0 * k * k + 4.0 * m * k) + s * 10.0 * k + 2.0 * k;
    }
    return f;
}

static double
SgemmGflops(void)
{
    int         M = 2048;
    int         N = 2048;
    int         K = 64;
    float      *a = Alloc(sizeof(float) * M * K);
    float      *b = Alloc(sizeof(float) * K * N);
    float      *c = Alloc(sizeof(float) * M * N);
    double      best = 0;
    int         rep;
    int         i;

    for (i = 0; i < M * K; i++)
        a[i] = (float) Uniform();
    for (i = 0; i < K * N; i++)
        b[i] = (float) Uniform();
    for (rep = 0; rep < 5; rep++)
    {
        double      t = Now();
        int         it;

        for (it = 0; it < 10; it++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K,
                        1.0f, a, K, b, N, 0.0f, c, N);
        t = Now() - t;
        if (10 * 2.0 * M * N * K / t / 1e9 > best)
            best = 10 * 2.0 * M * N * K / t / 1e9;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static void
TopkLatency(int nitems, int k, const ItCsr *R)
{
    float      *Y = Alloc(sizeof(float) * (size_t) nitems * k);
    float      *X = Alloc(sizeof(float) * 1000 * k);
    float      *scores = Alloc(sizeof(float) * nitems);
    double     *lat = Alloc(sizeof(double) * 1000);
    int32_t     ex[256];
    int32_t     top[10];
    float       ts[10];
    int         call;
    double      checksum = 0;

    it_random_init(Y, nitems, k, 5, 1.0f);
    it_random_init(X, 1000, k, 6, 1.0f);
    for (call = 0; call < 1000; call++)
    {
        /* exclude the seen items of a user of the training data */
        int64_t     u = (int64_t) call * 97 % R->nrows;
        int64_t     m = R->indptr[u + 1] - R->indptr[u];
        int64_t     j;
        int64_t     nex = 0;
        double      t;

        for (j = 0; j < m && nex < 256; j++)
            if (R->indices[R->indptr[u] + j] < nitems)
                ex[nex++] = R->indices[R->indptr[u] + j];
        qsort(ex, nex, sizeof(int32_t), CmpInt32);
        t = Now();
        it_score_all(Y, nitems, k, X + (size_t) call * k, scores);
        it_topk(scores, nitems, ex, nex, 10, top, ts);
        lat[call] = Now() - t;
        checksum += ts[0];
    }
    qsort(lat, 1000, sizeof(double), CmpDouble);
    printf("top-10 over %6d items (score_all + topk, seen excluded): p50 %.3f ms  p99 %.3f ms  (checksum %.3f)\n",
           nitems, lat[499] * 1e3, lat[989] * 1e3, checksum);
    free(Y);
    free(X);
    free(scores);
    free(lat);
}

/* one user's fold-in (20 items, a prior) at k factors: p50 / p99 of 1000 */
static void
FoldInLatency(const float *Y, int64_t nitems, int k, const ItCsr *R)
{
    float      *YtY = Alloc(sizeof(float) * k * k);
    float      *scratch = Alloc(sizeof(float) * (k * k + k));
    float      *prior = Alloc(sizeof(float) * k);
    float      *x = Alloc(sizeof(float) * k);
    double     *lat = Alloc(sizeof(double) * 1000);
    float       w[256];
    int         call;
    int         i;
    int         failed = 0;

    it_gram(Y, nitems, k, YtY);
    for (i = 0; i < k; i++)
        prior[i] = 0.01f * (float) (i % 7);
    for (i = 0; i < 256; i++)
        w[i] = 1.0f;
    for (call = 0; call < 1000; call++)
    {
        int64_t     u = (int64_t) call * 89 % R->nrows;
        int64_t     m = R->indptr[u + 1] - R->indptr[u];
        double      t;

        if (m > 256)
            m = 256;
        t = Now();
        failed += it_fold_in(Y, k, YtY, R->indices + R->indptr[u], w, (int) m,
                             1.0f, 0.0f, 0.1f, prior, x, scratch) != 0;
        lat[call] = Now() - t;
    }
    qsort(lat, 1000, sizeof(double), CmpDouble);
    printf("fold-in of one user (%d factors, about 20 items): p50 %.3f ms  p99 %.3f ms%s\n",
           k, lat[499] * 1e3, lat[989] * 1e3, failed ? "  (SOME FAILED)" : "");
    free(YtY);
    free(scratch);
    free(prior);
    free(x);
    free(lat);
}

int
main(int argc, char **argv)
{
    int64_t     nusers = 100000;
    int64_t     nitems = 20000;
    int64_t     ninter = 2000000;
    int         k = 64;
    int         iters = 15;
    int         cg = 3;
    double      zipf = 1.0;
    char        threads_arg[64] = "1 2";
    double     *cdf;
    int32_t    *rows;
    int32_t    *cols;
    float      *vals;
    int64_t    *work;
    int64_t     n = 0;
    int64_t     u;
    ItCsr       R;
    ItCsr       Rt;
    float      *X;
    float      *Y;
    float      *XtX;
    float      *YtY;
    double      flops_iter;
    double      gemm;
    double      t0;
    int         i;
    char       *tok;
    char       *save;

    for (i = 1; i + 1 < argc; i += 2)
    {
        if (strcmp(argv[i], "-i") == 0)
            iters = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-t") == 0)
            snprintf(threads_arg, sizeof(threads_arg), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "-u") == 0)
            nusers = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0)
            nitems = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "-z") == 0)
            ninter = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "-f") == 0)
            k = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-c") == 0)
            cg = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-s") == 0)
            zipf = atof(argv[i + 1]);
        else if (strcmp(argv[i], "-H") == 0)
            use_huge = atoi(argv[i + 1]);
        else
        {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (ninter > nusers * nitems / 2)
        ninter = nusers * nitems / 2;
    /* the kernels the extension loads on this CPU */
    if (it_blas_prefer_core() != NULL)
        printf("OpenBLAS did not know this CPU: loaded its %s kernels, as the extension does\n",
               it_blas_core_name());

    /* Zipf item popularity: P(item i) ~ 1 / (i + 1)^zipf */
    cdf = Alloc(sizeof(double) * nitems);
    {
        double      acc = 0;

        for (i = 0; i < nitems; i++)
        {
            acc += 1.0 / pow(i + 1.0, zipf);
            cdf[i] = acc;
        }
        for (i = 0; i < nitems; i++)
            cdf[i] /= acc;
    }
    rows = Alloc(sizeof(int32_t) * ninter);
    cols = Alloc(sizeof(int32_t) * ninter);
    vals = Alloc(sizeof(float) * ninter);
    work = Alloc(sizeof(int64_t) * ninter);

    /* users take turns; a user never sees the same item twice */
    t0 = Now();
    for (u = 0; n < ninter; u = (u + 1) % nusers)
    {
        int         want = 1 + (int) (Rand() % 39);     /* mean 20 per turn */
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
            rows[n] = (int32_t) u;
            cols[n] = lo;
            vals[n] = (float) (1 + Rand() % 3);
            n++;
        }
    }
    R.nrows = nusers;
    R.ncols = nitems;
    R.indptr = Alloc(sizeof(int64_t) * (nusers + 1));
    R.indices = Alloc(sizeof(int32_t) * n);
    R.data = Alloc(sizeof(float) * n);
    it_csr_from_coo(&R, n, rows, cols, vals, work);
    Rt.indptr = Alloc(sizeof(int64_t) * (nitems + 1));
    Rt.indices = Alloc(sizeof(int32_t) * R.nnz);
    Rt.data = Alloc(sizeof(float) * R.nnz);
    it_csr_transpose(&R, &Rt);
    {
        int64_t     maxrow = 0;

        for (i = 0; i < nitems; i++)
            if (Rt.indptr[i + 1] - Rt.indptr[i] > maxrow)
                maxrow = Rt.indptr[i + 1] - Rt.indptr[i];
        printf("data: %lld users, %lld items, %lld interactions (%lld cells), zipf %.2f, "
               "most popular item %lld users; built in %.2f s\n",
               (long long) nusers, (long long) nitems, (long long) n, (long long) R.nnz, zipf,
               (long long) maxrow, Now() - t0);
    }
    free(rows);
    free(cols);
    free(vals);
    free(work);
    free(cdf);

    flops_iter = HalfStepFlops(&R, k, cg, nitems) + HalfStepFlops(&Rt, k, cg, nusers);
    gemm = SgemmGflops();
    printf("OpenBLAS sgemm 2048x2048x64, 1 thread: %.1f GFLOP/s\n", gemm);
    printf("ALS: %d factors, %d CG steps, %d iterations; %.2f GFLOP per iteration\n",
           k, cg, iters, flops_iter / 1e9);

    X = AllocFactors(sizeof(float) * nusers * k);
    Y = AllocFactors(sizeof(float) * nitems * k);
    XtX = Alloc(sizeof(float) * k * k);
    YtY = Alloc(sizeof(float) * k * k);

    for (tok = strtok_r(threads_arg, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save))
    {
        int         threads = atoi(tok);
        ItAlsParams prm = {k, 0.01f, 1.0f, cg, threads};
        float      *scratch = Alloc(sizeof(float) * it_als_scratch_floats(k, threads));
        double      total = 0;
        double      best = 1e30;
        double      cpu = CpuNow();
        double      phase[4] = {0, 0, 0, 0};
        double      phase_best[4] = {1e30, 1e30, 1e30, 1e30};
        double      tloss;
        double      loss;
        int         it;

        it_random_init(X, nusers, k, 1, 0.01f);
        it_random_init(Y, nitems, k, 2, 0.01f);
        for (it = 0; it < iters; it++)
        {
            double      t = Now();
            double      t1;
            double      t2;
            double      t3;

            it_gram(Y, nitems, k, YtY);
            t1 = Now();
            it_als_half_step(&R, Y, YtY, X, &prm, 0, nusers, scratch);
            t2 = Now();
            it_gram(X, nusers, k, XtX);
            t3 = Now();
            it_als_half_step(&Rt, X, XtX, Y, &prm, 0, nitems, scratch);
            {
                double      d[4];
                int         q;

                d[0] = t1 - t;
                d[1] = t2 - t1;
                d[2] = t3 - t2;
                d[3] = Now() - t3;
                for (q = 0; q < 4; q++)
                {
                    phase[q] += d[q];
                    if (d[q] < phase_best[q])
                        phase_best[q] = d[q];
                }
            }
            t = Now() - t;
            total += t;
            if (t < best)
                best = t;
        }
        cpu = CpuNow() - cpu;
        it_gram(Y, nitems, k, YtY);
        tloss = Now();
        loss = it_als_loss_gram_mt(&R, X, Y, XtX, YtY, k, prm.regularization, prm.alpha,
                                   prm.positive_threshold, threads);
        tloss = Now() - tloss;
        printf("threads %d: %.3f s/iteration (best %.3f; CPU %.3f s/iteration), "
               "%.1f GFLOP/s = %.2f x sgemm; loss %.6g (computed in %.3f s)\n",
               threads, total / iters, best, cpu / iters, flops_iter * iters / total / 1e9,
               flops_iter * iters / total / 1e9 / gemm, loss, tloss);
        printf("    per iteration, mean (best): gram(Y) %.3f (%.3f) s, users %.3f (%.3f) s, "
               "gram(X) %.3f (%.3f) s, items %.3f (%.3f) s\n",
               phase[0] / iters, phase_best[0], phase[1] / iters, phase_best[1],
               phase[2] / iters, phase_best[2], phase[3] / iters, phase_best[3]);
        fflush(stdout);
        free(scratch);
    }

    FoldInLatency(Y, nitems, k, &R);
    TopkLatency(20000, k, &R);
    TopkLatency(100000, k, &R);

    free(X);
    free(Y);
    free(XtX);
    free(YtY);
    return 0;
}

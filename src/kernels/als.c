/*
 * als.c
 *    Implicit alternating least squares with conjugate gradient.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 *
 * A half-step solves, for every row u of R, the ridge system
 *
 *     A_u x = b_u,   A_u = YtY + reg I + sum_i w_ui y_i y_i^T,
 *                    b_u = sum_i p_ui (1 + w_ui) y_i,   w_ui = alpha r_ui,
 *                    p_ui = [r_ui >= positive_threshold]
 *
 * approximately, by cg_steps steps of conjugate gradient started from the
 * current X[u] (Takacs et al. 2011).  The product A_u p has a dense part,
 * p (YtY + reg I), and a sparse part, sum_i w_ui (y_i . p) y_i.
 *
 * Rows are processed in blocks of up to IT_ALS_BLOCK rows, each solved
 * start to finish by one thread (so the rows of Y a block gathers stay in
 * cache over its CG steps).  For the residual and for each CG step, the
 * dense parts of a block are one cblas_sgemm (P_block * (YtY + reg I)),
 * and the sparse part of each row is one pass over the row's items with
 * short vector loops, each item's dot product followed at once by its
 * update.  Threads claim blocks from a shared cursor.  A worker thread does
 * not call BLAS: it posts its block's sgemm to the calling thread, computes
 * the sparse parts meanwhile, then waits for the product; the calling
 * thread runs the posted products between the rows (and every
 * IT_SERVE_ENTRIES entries) of its own blocks, and once its blocks are
 * done, until the workers finish.  A block's arithmetic (its sgemm calls
 * included) does not depend on which thread runs it, so the result is
 * bit-identical for any number of threads.
 *
 * Every matrix product goes through OpenBLAS, and only the calling thread
 * ever calls it: the serial OpenBLAS build is not safe for concurrent
 * level-3 calls (Debian's 0.3.21 returns wrong sgemm products now and then
 * when two threads call it at once: its buffers are not locked).  Worker
 * threads start with every signal blocked and never call anything but this
 * file's code and libc.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "clones.h"
#include "kernels.h"

/*
 * The sparse loops are in als_kernel.h, compiled for the baseline, AVX2
 * and AVX-512 with the vectors each holds in registers, and picked when
 * the first half-step runs (AlsKernels).
 */

#define IT_INLINE static inline __attribute__((always_inline))

/* entries after which a block of rows is cut short (see ClaimBlock) */
#define IT_ALS_BLOCK_NNZ 8192


/* residual norm below which a row counts as solved */
#define IT_CG_EPS 1e-20f

/* floats per cache line, for aligning the scratch buffers */
#define IT_LINE_FLOATS 16

IT_INLINE void
PrefetchRow(const float *row, int k)
{
    int         i;

    for (i = 0; i < k; i += IT_LINE_FLOATS)
        __builtin_prefetch(row + i, 0, 3);
}

/* how many items ahead the sparse loops prefetch */
#ifndef IT_PREFETCH_AHEAD
#define IT_PREFETCH_AHEAD 16
#endif

/* full unrolling of the loops over a row's vectors (GCC) */
#if defined(__GNUC__) && !defined(__clang__)
#define IT_UNROLL _Pragma("GCC unroll 8")
#else
#define IT_UNROLL
#endif

/*
 * SparsePass (als_kernel.h): one pass over a row's entries (items idx[0..m), raw weights r; the
 * items idx[m..mpf) that follow, in the next rows, are prefetched too):
 *
 *   residual pass (init):  out += sum_j (p_j (1 + w_j) - w_j (y_j . p)) y_j
 *   CG pass:               out += sum_j w_j (y_j . p) y_j
 *
 * with w_j = alpha r_j and p the current x (residual) or search direction.
 * With loss (residual pass only), *loss += sum_j c_j (p_j - s_j)^2 - s_j^2,
 * s_j = y_j . p as above, c_j = 1 + alpha r_j, in double: the row's
 * observed part of the objective at the x the solve starts from, which
 * costs the pass almost nothing (it_als_half_step_loss).
 * Each item's row is read once: its dot product is followed at once by its
 * update.  For k = 16 nv (the common sizes) p and the accumulators are
 * held in vectors.
 */

/* c (p - s)^2 - s^2 of one entry of raw weight r, s = x.y */
static inline double
RowLossTerm(float r, float alpha, float thr, float s)
{
    double      c = 1.0 + (double) alpha * r;
    double      pv = r >= thr ? 1.0 : 0.0;
    double      sv = s;

    return c * (pv - sv) * (pv - sv) - sv * sv;
}

/*
 * Starts n threads running fn(args[i]) with every signal blocked, so that
 * signals (query cancel, timeouts) keep going to the calling thread, whose
 * handlers expect to run there.  Returns how many started (they go to
 * tids[0..]); the caller does the rest of the work itself if fewer did.
 */
int
it_start_threads(void *(*fn) (void *), void **args, int n, pthread_t *tids)
{
    sigset_t    all;
    sigset_t    old;
    int         started = 0;
    int         i;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (i = 0; i < n; i++)
    {
        if (pthread_create(&tids[started], NULL, fn, args[i]) != 0)
            break;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/* The most threads it_run_parts starts; further parts run on the caller. */
#define IT_RUN_PARTS_MAX 64

/*
 * Runs fn(args[0..n)) to the end: args[0] on the calling thread, the
 * others on threads it_start_threads starts, any part no thread took on
 * the calling thread too; returns when every part is done.
 */
void
it_run_parts(void *(*fn) (void *), void **args, int n)
{
    pthread_t   tids[IT_RUN_PARTS_MAX];
    int         want = n - 1 < IT_RUN_PARTS_MAX ? n - 1 : IT_RUN_PARTS_MAX;
    int         started;

    if (n <= 0)
        return;
    started = want > 0 ? it_start_threads(fn, args + 1, want, tids) : 0;
    fn(args[0]);
    for (int t = 1 + started; t < n; t++)
        fn(args[t]);
    for (int t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
}

/*
 * A dense product asked of the calling thread by worker t: out = sign * P A
 * for nb rows.  One per worker, on its own cache lines.
 */
typedef struct AlsRequest
{
    const float *P;
    float      *out;
    int         nb;
    float       sign;
    int         state;          /* atomic: IT_REQ_IDLE, _POSTED or _DONE */
    char        pad[64 - 2 * sizeof(void *) - 3 * sizeof(int)];
} __attribute__((aligned(64))) AlsRequest;

#define IT_REQ_IDLE     0
#define IT_REQ_POSTED   1
#define IT_REQ_DONE     2

/* entries of a row's sparse pass between two looks at the requests */
#define IT_SERVE_ENTRIES 1024

typedef struct AlsShared
{
    const ItCsr *R;
    const float *Y;
    const float *A;             /* YtY + reg I, k * k */
    float      *X;
    int         k;
    int         cg_steps;
    float       alpha;
    float       thr;            /* positives: r >= thr */
    double     *row_loss;       /* NULL, or each row's loss term at the X it starts from */
    int64_t     row_begin;
    int64_t     row_end;
    pthread_mutex_t claim;      /* guards next */
    int64_t     next;           /* first row not yet claimed */
    int         workers;        /* worker threads running */
    int         finished;       /* atomic: workers done */
    float      *thread_scratch;
    size_t      thread_stride;
    AlsRequest  req[IT_ALS_MAX_THREADS];
    const struct AlsKernelSet *kernels; /* chosen by the calling thread */
} AlsShared;

/* n floats rounded up to whole cache lines */
static size_t
RoundLine(size_t n)
{
    return (n + IT_LINE_FLOATS - 1) / IT_LINE_FLOATS * IT_LINE_FLOATS;
}

/* per thread: the R, P, dense and sparse blocks, rs and the active flags */
static size_t
ThreadScratch(int k)
{
    return RoundLine(4 * (size_t) IT_ALS_BLOCK * k + 2 * (size_t) IT_ALS_BLOCK);
}

/*
 * Layout: one line of slack to align the start, YtY + reg I (k * k), then
 * one padded region per thread (no false sharing between threads).
 */
size_t
it_als_scratch_floats(int k, int threads)
{
    if (threads < 1)
        threads = 1;
    if (threads > IT_ALS_MAX_THREADS)
        threads = IT_ALS_MAX_THREADS;
    return IT_LINE_FLOATS + RoundLine((size_t) k * k) +
        (size_t) threads * ThreadScratch(k);
}

/* out = sign * P (YtY + reg I) for nb rows: calling thread only */
static void
DenseProduct(const AlsShared *s, const float *P, float *out, int nb, float sign)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, s->k, s->k,
                sign, P, s->k, s->A, s->k, 0.0f, out, s->k);
}

/* the calling thread computes the products the workers have asked for */
static void
Serve(AlsShared *s)
{
    int         t;

    for (t = 1; t <= s->workers; t++)
    {
        AlsRequest *q = &s->req[t];

        if (__atomic_load_n(&q->state, __ATOMIC_ACQUIRE) == IT_REQ_POSTED)
        {
            DenseProduct(s, q->P, q->out, q->nb, q->sign);
            __atomic_store_n(&q->state, IT_REQ_DONE, __ATOMIC_RELEASE);
        }
    }
}

/*
 * Dense part of a block for thread t: the calling thread (t = 0) computes
 * it at once; a worker posts it to the calling thread and collects it with
 * WaitDense after its sparse pass.
 */
static void
AskDense(AlsShared *s, int t, const float *P, float *out, int nb, float sign)
{
    AlsRequest *q = &s->req[t];

    if (t == 0)
    {
        DenseProduct(s, P, out, nb, sign);
        return;
    }
    q->P = P;
    q->out = out;
    q->nb = nb;
    q->sign = sign;
    __atomic_store_n(&q->state, IT_REQ_POSTED, __ATOMIC_RELEASE);
}

static void
WaitDense(AlsShared *s, int t)
{
    AlsRequest *q = &s->req[t];
    unsigned    spins = 0;

    if (t == 0)
        return;
    while (__atomic_load_n(&q->state, __ATOMIC_ACQUIRE) != IT_REQ_DONE)
    {
        /* the calling thread may be descheduled: let it run */
        if (++spins % 4096 == 0)
            sched_yield();
        else
            it_cpu_relax();
    }
    __atomic_store_n(&q->state, IT_REQ_IDLE, __ATOMIC_RELAXED);
}

/*
 * The kernels of each vector width (als_kernel.h), in the sets of
 * clones.h, the widest the machine runs chosen by AlsKernels.
 */
#if IT_WIDTH_SETS == 3
#define ALS_W 4
#define ALS_SUFFIX _w4
#define ALS_TARGET
#include "als_kernel.h"
#define ALS_W 8
#define ALS_SUFFIX _w8
#define ALS_TARGET IT_TARGET_V3
#include "als_kernel.h"
#define ALS_W 16
#define ALS_SUFFIX _w16
#define ALS_TARGET IT_TARGET_V4
#include "als_kernel.h"
#else
#define ALS_W IT_ONE_WIDTH
#define ALS_SUFFIX _w
#define ALS_TARGET
#include "als_kernel.h"
#endif

struct AlsKernelSet
{
    void        (*block) (AlsShared *s, int t, int64_t b0, int64_t b1, float *scratch);
    void        (*loss_rows) (const ItCsr *R, const float *X, const float *Y, int k,
                              float alpha, float thr, int want_quad, int64_t u0,
                              int64_t u1, double *sums);
};
typedef struct AlsKernelSet AlsKernelSet;

#if IT_WIDTH_SETS == 3
static const AlsKernelSet als_kernels[3] = {
    {AlsBlock_w4, LossRows_w4},
    {AlsBlock_w8, LossRows_w8},
    {AlsBlock_w16, LossRows_w16},
};
#else
static const AlsKernelSet als_kernels[1] = {{AlsBlock_w, LossRows_w}};
#endif

/* index into als_kernels (it_width_choice) */
static int  als_choice = -1;

static const AlsKernelSet *
AlsKernels(void)
{
    return &als_kernels[it_width_choice(&als_choice)];
}

int
it_als_vector_width(int width)
{
    return it_width_choose(&als_choice, width);
}

/*
 * Claims the next block of rows: from the first unclaimed row up to
 * IT_ALS_BLOCK rows, never across a multiple of IT_ALS_BLOCK, and cut
 * short once the block holds IT_ALS_BLOCK_NNZ entries, so that a few
 * heavy rows (popular items) do not make one thread's share.  The blocks
 * depend only on the data and on the range, never on the threads.
 */
static int
ClaimBlock(AlsShared *s, int64_t *b0, int64_t *b1)
{
    const int64_t *indptr = s->R->indptr;
    int64_t     start;
    int64_t     limit;
    int64_t     end;

    pthread_mutex_lock(&s->claim);
    start = s->next;
    if (start >= s->row_end)
    {
        pthread_mutex_unlock(&s->claim);
        return 0;
    }
    limit = (start / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK;
    if (limit > s->row_end)
        limit = s->row_end;
    end = start + 1;
    while (end < limit && indptr[end + 1] - indptr[start] <= IT_ALS_BLOCK_NNZ)
        end++;
    s->next = end;
    pthread_mutex_unlock(&s->claim);
    *b0 = start;
    *b1 = end;
    return 1;
}

/* thread t: solves blocks until none is left */
static void
AlsRun(AlsShared *s, int t)
{
    float      *scratch = s->thread_scratch + (size_t) t * s->thread_stride;
    int64_t     b0;
    int64_t     b1;

    while (ClaimBlock(s, &b0, &b1))
    {
        s->kernels->block(s, t, b0, b1, scratch);
        if (t == 0 && s->workers > 0)
            Serve(s);
    }
}

typedef struct AlsWorkerArg
{
    AlsShared  *s;
    int         t;
} AlsWorkerArg;

static void *
AlsWorker(void *arg)
{
    AlsWorkerArg *a = arg;

    AlsRun(a->s, a->t);
    __atomic_add_fetch(&a->s->finished, 1, __ATOMIC_RELEASE);
    return NULL;
}

void
it_als_half_step(const ItCsr *R, const float *Y, const float *YtY,
                 float *X, const ItAlsParams *p,
                 int64_t row_begin, int64_t row_end, float *scratch)
{
    it_als_half_step_loss(R, Y, YtY, X, p, row_begin, row_end, scratch, NULL);
}

void
it_als_half_step_loss(const ItCsr *R, const float *Y, const float *YtY,
                      float *X, const ItAlsParams *p,
                      int64_t row_begin, int64_t row_end, float *scratch,
                      double *row_loss)
{
    AlsShared   s;
    int         k = p->factors;
    int         threads = p->threads < 1 ? 1 : p->threads;
    float      *base;
    float      *A;
    AlsWorkerArg args[IT_ALS_MAX_THREADS];
    void       *argp[IT_ALS_MAX_THREADS];
    pthread_t   tids[IT_ALS_MAX_THREADS];
    int         t;
    int         i;

    if (row_begin < 0)
        row_begin = 0;
    if (row_end > R->nrows)
        row_end = R->nrows;
    if (row_end <= row_begin || k < 1)
        return;

    /* align the scratch to a cache line */
    base = scratch;
    while (((uintptr_t) base) % (IT_LINE_FLOATS * sizeof(float)) != 0)
        base++;
    A = base;

    /* A = YtY + reg I */
    memcpy(A, YtY, sizeof(float) * k * k);
    for (i = 0; i < k; i++)
        A[(size_t) i * k + i] += p->regularization;

    s.R = R;
    s.Y = Y;
    s.A = A;
    s.X = X;
    s.k = k;
    s.cg_steps = p->cg_steps;
    s.alpha = p->alpha;
    s.thr = p->positive_threshold;
    s.row_loss = row_loss;
    s.row_begin = row_begin;
    s.row_end = row_end;
    s.next = row_begin;
    s.workers = 0;
    s.finished = 0;
    s.thread_scratch = base + RoundLine((size_t) k * k);
    s.thread_stride = ThreadScratch(k);
    s.kernels = AlsKernels();

    if (threads > IT_ALS_MAX_THREADS)
        threads = IT_ALS_MAX_THREADS;
    if (threads > (row_end - row_begin + IT_ALS_BLOCK - 1) / IT_ALS_BLOCK)
        threads = (int) ((row_end - row_begin + IT_ALS_BLOCK - 1) / IT_ALS_BLOCK);
    pthread_mutex_init(&s.claim, NULL);
    for (t = 0; t < threads; t++)
    {
        s.req[t].state = IT_REQ_IDLE;
        args[t].s = &s;
        args[t].t = t;
        argp[t] = &args[t];
    }

    /*
     * The workers are threads 1..workers; s.workers is set before any can
     * post (a worker posts only into its own slot, and the calling thread
     * looks at the slots only after this).
     */
    s.workers = it_start_threads(AlsWorker, argp + 1, threads - 1, tids);
    AlsRun(&s, 0);
    /* serve the workers until they are done */
    while (__atomic_load_n(&s.finished, __ATOMIC_ACQUIRE) < s.workers)
    {
        Serve(&s);
        it_cpu_relax();
    }
    for (t = 0; t < s.workers; t++)
        pthread_join(tids[t], NULL);
    pthread_mutex_destroy(&s.claim);
}

void
it_random_init(float *X, int64_t n, int k, uint64_t seed, float scale)
{
    int64_t     total = n * (int64_t) k;
    int64_t     i;

    /* splitmix64 of (seed, position): reproducible, independent per entry */
    for (i = 0; i < total; i++)
    {
        uint64_t    z = seed + (uint64_t) (i + 1) * UINT64_C(0x9E3779B97F4A7C15);

        z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
        z ^= z >> 31;
        /* 24 random bits -> [0, 1) -> [-scale, scale) */
        X[i] = scale * (2.0f * ((float) (z >> 40) * (1.0f / 16777216.0f)) - 1.0f);
    }
}

void
it_gram(const float *A, int64_t n, int k, float *gram)
{
    const int64_t chunk = INT64_C(1) << 30;
    int64_t     done;
    int         i;
    int         j;

    memset(gram, 0, sizeof(float) * k * k);
    for (done = 0; done < n; done += chunk)
    {
        int64_t     m = n - done < chunk ? n - done : chunk;

        /* row-major upper triangle of A^T A */
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, k, (int) m,
                    1.0f, A + (size_t) done * k, k, 1.0f, gram, k);
    }
    for (i = 0; i < k; i++)
        for (j = 0; j < i; j++)
            gram[(size_t) i * k + j] = gram[(size_t) j * k + i];
}

void
it_row_norms(const float *A, int64_t n, int k, float *norms)
{
    for (int64_t i = 0; i < n; i++)
    {
        const float *a = A + (size_t) i * k;
        double      ss = 0.0;

        for (int j = 0; j < k; j++)
            ss += (double) a[j] * a[j];
        norms[i] = (float) sqrt(ss);
    }
}

/* rows of G per sgemv in QuadRows */
#define IT_QUAD_SLAB 64

/*
 * sum_u x_u^T G x_u over the rows [u0, u1), G x_u by cblas_sgemv in slabs
 * of IT_QUAD_SLAB rows of G.  Calling thread only (BLAS).
 */
static double
QuadRows(const float *X, const float *G, int k, int64_t u0, int64_t u1)
{
    double      q = 0.0;
    float       gx[IT_QUAD_SLAB];
    int64_t     u;

    for (u = u0; u < u1; u++)
    {
        const float *x = X + (size_t) u * k;
        int         c0;
        int         i;

        for (c0 = 0; c0 < k; c0 += IT_QUAD_SLAB)
        {
            int         n = k - c0 < IT_QUAD_SLAB ? k - c0 : IT_QUAD_SLAB;

            cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f,
                        G + (size_t) c0 * k, k, x, 1, 0.0f, gx, 1);
            for (i = 0; i < n; i++)
                q += (double) x[c0 + i] * gx[i];
        }
    }
    return q;
}

/* the rows are summed in this many fixed parts, combined in order */
#define IT_LOSS_PARTS 64

typedef struct LossShared
{
    const ItCsr *R;
    const float *X;
    const float *Y;
    int         k;
    float       alpha;
    float       thr;
    int         want_quad;
    int64_t     next;           /* atomic: next part */
    const AlsKernelSet *kernels;    /* chosen by the calling thread */
    double      sums[IT_LOSS_PARTS][3];
} LossShared;

static void *
LossWorker(void *arg)
{
    LossShared *s = arg;
    int64_t     part;

    while ((part = __atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED)) < IT_LOSS_PARTS)
    {
        int64_t     n = s->R->nrows;

        s->kernels->loss_rows(s->R, s->X, s->Y, s->k, s->alpha, s->thr, s->want_quad,
                              n * part / IT_LOSS_PARTS, n * (part + 1) / IT_LOSS_PARTS,
                              s->sums[part]);
    }
    return NULL;
}

double
it_als_loss_gram_mt(const ItCsr *R, const float *X, const float *Y,
                    const float *XtX, const float *YtY, int k, float reg,
                    float alpha, float positive_threshold, int threads)
{
    LossShared  s;
    void       *argp[IT_ALS_MAX_THREADS];
    pthread_t   tids[IT_ALS_MAX_THREADS];
    int         started = 0;
    double      observed = 0.0;
    double      quad = 0.0;
    double      xnorm = 0.0;
    double      ynorm = 0.0;
    int         t;
    int         i;

    s.R = R;
    s.X = X;
    s.Y = Y;
    s.k = k;
    s.alpha = alpha;
    s.thr = positive_threshold;
    s.want_quad = XtX == NULL;
    s.next = 0;
    s.kernels = AlsKernels();
    if (threads > IT_ALS_MAX_THREADS)
        threads = IT_ALS_MAX_THREADS;
    for (t = 1; t < threads; t++)
        argp[t - 1] = &s;
    started = it_start_threads(LossWorker, argp, threads - 1, tids);
    LossWorker(&s);
    for (t = 0; t < started; t++)
        pthread_join(tids[t], NULL);

    for (i = 0; i < IT_LOSS_PARTS; i++)
    {
        if (s.want_quad)
            s.sums[i][1] = QuadRows(X, YtY, k, R->nrows * i / IT_LOSS_PARTS,
                                    R->nrows * (i + 1) / IT_LOSS_PARTS);
        observed += s.sums[i][0];
        quad += s.sums[i][1];
        xnorm += s.sums[i][2];
    }
    if (XtX != NULL)
        return it_als_loss_dense(XtX, YtY, k, reg) + observed;
    for (i = 0; i < k; i++)
        ynorm += YtY[(size_t) i * k + i];
    return quad + observed + (double) reg * (xnorm + ynorm);
}

double
it_als_loss_dense(const float *XtX, const float *YtY, int k, float reg)
{
    double      quad = 0.0;
    double      xnorm = 0.0;
    double      ynorm = 0.0;

    /* sum_u x_u^T YtY x_u = trace(XtX YtY) = sum_ij XtX_ij YtY_ij */
    for (size_t e = 0; e < (size_t) k * k; e++)
        quad += (double) XtX[e] * YtY[e];
    for (int i = 0; i < k; i++)
    {
        xnorm += XtX[(size_t) i * k + i];
        ynorm += YtY[(size_t) i * k + i];
    }
    return quad + (double) reg * (xnorm + ynorm);
}

double
it_als_loss_gram(const ItCsr *R, const float *X, const float *Y,
                 const float *XtX, const float *YtY, int k, float reg,
                 float alpha, float positive_threshold)
{
    return it_als_loss_gram_mt(R, X, Y, XtX, YtY, k, reg, alpha, positive_threshold, 1);
}

double
it_als_loss(const ItCsr *R, const float *X, const float *Y,
            const float *YtY, int k, float reg, float alpha, float positive_threshold)
{
    return it_als_loss_gram_mt(R, X, Y, NULL, YtY, k, reg, alpha, positive_threshold, 1);
}

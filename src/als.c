/*
 * als.c
 *    Implicit alternating least squares with conjugate gradient.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 *
 * A half-step solves, for every row u of R, the ridge system
 *
 *     A_u x = b_u,   A_u = YtY + reg I + sum_i w_ui y_i y_i^T,
 *                    b_u = sum_i (1 + w_ui) y_i,   w_ui = alpha r_ui
 *
 * approximately, by cg_steps steps of conjugate gradient started from the
 * current X[u] (Takacs et al. 2011).  The product A_u p has a dense part,
 * p (YtY + reg I), and a sparse part, sum_i w_ui (y_i . p) y_i.
 *
 * The rows of a call are processed in panels of a fixed number of rows
 * (PanelRows: about IT_ALS_PANEL_FLOATS floats per buffer), all rows of a
 * panel in step: for the residual and for each CG step, the calling thread
 * computes the dense parts of the whole panel with cblas_sgemm (one call per
 * IT_ALS_BLOCK rows, see DensePanel) while the other threads, and then the
 * calling thread too, compute the sparse parts (short vector loops over
 * each row's items, one pass per step, each item's dot product followed at
 * once by its update); after a barrier every thread applies the CG updates
 * of the rows it claims, then a second barrier ends the step.  Each row's
 * arithmetic is the same whichever thread does it, so the result is
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
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include <cblas.h>

#include "kernels.h"

/*
 * The sparse loops are compiled for the generic target plus AVX2/FMA and
 * AVX-512, picked at load time by the dynamic linker (GCC function
 * multi-versioning), so a generic build still uses the machine's vector
 * units.  Define IT_NO_TARGET_CLONES to build the generic code only.
 */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__ELF__) && !defined(IT_NO_TARGET_CLONES)
#define IT_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#else
#define IT_CLONES
#endif

#define IT_INLINE static inline __attribute__((always_inline))

/* 16 floats; loads and stores go through memcpy (unaligned). */
typedef float ItV16 __attribute__((vector_size(64)));
typedef float ItV8 __attribute__((vector_size(32)));
typedef float ItV4 __attribute__((vector_size(16)));

/* entries after which a block of rows is cut short (see ClaimBlock) */
#define IT_ALS_BLOCK_NNZ 8192

/*
 * floats per panel buffer (four of them: R, P and the two parts of A P);
 * 2^18 floats are 4096 rows at 64 factors
 */
#ifndef IT_ALS_PANEL_FLOATS
#define IT_ALS_PANEL_FLOATS 262144
#endif

/* residual norm below which a row counts as solved */
#define IT_CG_EPS 1e-20f

/* floats per cache line, for aligning the scratch buffers */
#define IT_LINE_FLOATS 16

/*
 * Vector loads, stores and sums are macros: functions taking or returning
 * ItV16 would change the calling convention between the clones.
 */
#define LOADV(p) \
    __extension__ ({ ItV16 v_; memcpy(&v_, (p), sizeof(v_)); v_; })
#define STOREV(p, v) \
    do { ItV16 s_ = (v); memcpy((p), &s_, sizeof(s_)); } while (0)

/* sum of the 16 lanes of v, as a tree in a fixed order */
#define HSUMV(v, out) \
    do { \
        ItV8        h8_; \
        ItV8        g8_; \
        ItV4        h4_; \
        ItV4        g4_; \
        memcpy(&h8_, &(v), sizeof(h8_)); \
        memcpy(&g8_, (const char *) &(v) + sizeof(h8_), sizeof(g8_)); \
        h8_ += g8_; \
        memcpy(&h4_, &h8_, sizeof(h4_)); \
        memcpy(&g4_, (const char *) &h8_ + sizeof(h4_), sizeof(g4_)); \
        h4_ += g4_; \
        (out) = (h4_[0] + h4_[2]) + (h4_[1] + h4_[3]); \
    } while (0)

/* a . b, summed in a fixed order */
IT_INLINE float
Dot(const float *restrict a, const float *restrict b, int k)
{
    ItV16       s0 = {0};
    ItV16       s1 = {0};
    float       s;
    int         i = 0;

    for (; i + 32 <= k; i += 32)
    {
        s0 += LOADV(a + i) * LOADV(b + i);
        s1 += LOADV(a + i + 16) * LOADV(b + i + 16);
    }
    if (i + 16 <= k)
    {
        s0 += LOADV(a + i) * LOADV(b + i);
        i += 16;
    }
    s0 += s1;
    HSUMV(s0, s);
    for (; i < k; i++)
        s += a[i] * b[i];
    return s;
}

/* y += a x */
IT_INLINE void
Axpy(float *restrict y, float a, const float *restrict x, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += 16)
        STOREV(y + i, LOADV(y + i) + a * LOADV(x + i));
    for (; i < k; i++)
        y[i] += a * x[i];
}

/* y = a + b */
IT_INLINE void
Add(float *restrict y, const float *restrict a, const float *restrict b, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += 16)
        STOREV(y + i, LOADV(a + i) + LOADV(b + i));
    for (; i < k; i++)
        y[i] = a[i] + b[i];
}

/* y += x */
IT_INLINE void
AddTo(float *restrict y, const float *restrict x, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += 16)
        STOREV(y + i, LOADV(y + i) + LOADV(x + i));
    for (; i < k; i++)
        y[i] += x[i];
}

/* y = x + beta y */
IT_INLINE void
Xpby(float *restrict y, const float *restrict x, float beta, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += 16)
        STOREV(y + i, LOADV(x + i) + beta * LOADV(y + i));
    for (; i < k; i++)
        y[i] = x[i] + beta * y[i];
}

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
 * One pass over a row's entries (items idx[0..m), raw weights r; the
 * items idx[m..mpf) that follow, in the next rows, are prefetched too):
 *
 *   residual pass (init):  out += sum_j (1 + w_j - w_j (y_j . p)) y_j
 *   CG pass:               out += sum_j w_j (y_j . p) y_j
 *
 * with w_j = alpha r_j and p the current x (residual) or search direction.
 * Each item's row is read once: its dot product is followed at once by its
 * update.  This version is for k = 16 nv: p and the accumulators stay in
 * registers; SparsePass picks it for the common sizes.
 */
#define IT_DEFINE_SPARSE_PASS(NV) \
IT_INLINE void \
SparsePass##NV(const int32_t *restrict idx, const float *restrict r, \
               int64_t m, int64_t mpf, const float *restrict Y, float alpha, \
               const int init, const float *restrict p, float *restrict out) \
{ \
    const int   k = (NV) * 16; \
    ItV16       pv[NV]; \
    ItV16       acc[NV]; \
    int64_t     j; \
    int         c; \
 \
    IT_UNROLL \
    for (c = 0; c < (NV); c++) \
    { \
        pv[c] = LOADV(p + 16 * c); \
        acc[c] = LOADV(out + 16 * c); \
    } \
    for (j = 0; j < m; j++) \
    { \
        const float *y = Y + (size_t) idx[j] * k; \
        ItV16       yv[NV]; \
        ItV16       sv; \
        float       d; \
        float       w = alpha * r[j]; \
        float       coef; \
 \
        if (IT_PREFETCH_AHEAD > 0 && j + IT_PREFETCH_AHEAD < mpf) \
            PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k); \
        IT_UNROLL \
        for (c = 0; c < (NV); c++) \
            yv[c] = LOADV(y + 16 * c); \
        sv = yv[0] * pv[0]; \
        IT_UNROLL \
        for (c = 1; c < (NV); c++) \
            sv += yv[c] * pv[c]; \
        HSUMV(sv, d); \
        coef = init ? 1.0f + w - w * d : w * d; \
        IT_UNROLL \
        for (c = 0; c < (NV); c++) \
            acc[c] += coef * yv[c]; \
    } \
    IT_UNROLL \
    for (c = 0; c < (NV); c++) \
        STOREV(out + 16 * c, acc[c]); \
}

IT_DEFINE_SPARSE_PASS(1)
IT_DEFINE_SPARSE_PASS(2)
IT_DEFINE_SPARSE_PASS(3)
IT_DEFINE_SPARSE_PASS(4)
IT_DEFINE_SPARSE_PASS(6)
IT_DEFINE_SPARSE_PASS(8)

/* the same for any k */
IT_INLINE void
SparsePassAny(const int32_t *restrict idx, const float *restrict r,
              int64_t m, int64_t mpf, const float *restrict Y, int k, float alpha, int init,
              const float *restrict p, float *restrict out)
{
    int64_t     j;

    for (j = 0; j < m; j++)
    {
        const float *y = Y + (size_t) idx[j] * k;
        float       w = alpha * r[j];
        float       d;

        if (IT_PREFETCH_AHEAD > 0 && j + IT_PREFETCH_AHEAD < mpf)
            PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k);
        d = Dot(y, p, k);
        Axpy(out, init ? 1.0f + w - w * d : w * d, y, k);
    }
}

IT_INLINE void
SparsePass(const int32_t *restrict idx, const float *restrict r,
           int64_t m, int64_t mpf, const float *restrict Y, int k, float alpha, int init,
           const float *restrict p, float *restrict out)
{
    switch (k)
    {
        case 16:
            SparsePass1(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        case 32:
            SparsePass2(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        case 48:
            SparsePass3(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        case 64:
            SparsePass4(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        case 96:
            SparsePass6(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        case 128:
            SparsePass8(idx, r, m, mpf, Y, alpha, init, p, out);
            break;
        default:
            SparsePassAny(idx, r, m, mpf, Y, k, alpha, init, p, out);
            break;
    }
}

/*
 * Starts n threads running fn(args[i]) with every signal blocked, so that
 * signals (query cancel, timeouts) keep going to the calling thread, whose
 * handlers expect to run there.  Returns how many started (they go to
 * tids[0..]); the caller does the rest of the work itself if fewer did.
 */
static int
StartThreads(void *(*fn) (void *), void **args, int n, pthread_t *tids)
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

/*
 * A barrier whose number of parties can be lowered before anyone waits
 * (when fewer threads than asked for could be started).  Waiters spin a
 * little, the phases being short, then sleep on the condition variable.
 */
typedef struct AlsBarrier
{
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    int         parties;
    int         arrived;        /* atomic */
    unsigned    generation;     /* atomic */
} AlsBarrier;

#ifndef IT_BARRIER_SPINS
#define IT_BARRIER_SPINS 4000
#endif

static void
BarrierWait(AlsBarrier *b)
{
    unsigned    gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
    int         spin;

    if (__atomic_add_fetch(&b->arrived, 1, __ATOMIC_ACQ_REL) ==
        __atomic_load_n(&b->parties, __ATOMIC_ACQUIRE))
    {
        /* the last to arrive opens the next generation */
        __atomic_store_n(&b->arrived, 0, __ATOMIC_RELAXED);
        pthread_mutex_lock(&b->mutex);
        __atomic_store_n(&b->generation, gen + 1, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&b->cond);
        pthread_mutex_unlock(&b->mutex);
        return;
    }
    for (spin = 0; spin < IT_BARRIER_SPINS; spin++)
    {
        if (__atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) != gen)
            return;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&b->mutex);
    while (__atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == gen)
        pthread_cond_wait(&b->cond, &b->mutex);
    pthread_mutex_unlock(&b->mutex);
}

typedef struct AlsShared
{
    const ItCsr *R;
    const float *Y;
    const float *A;             /* YtY + reg I, k * k */
    float      *X;
    int         k;
    int         cg_steps;
    float       alpha;
    int64_t     row_begin;
    int64_t     row_end;
    int64_t     panel_rows;
    /* per panel row, panel_rows * k floats each */
    float      *Rp;             /* residual */
    float      *Pp;             /* search direction */
    float      *Dp;             /* dense part: -X A (residual) or P A */
    float      *Sp;             /* sparse part, then the whole of A_u p */
    float      *rs;             /* per panel row: r . r */
    float      *active;         /* per panel row: 1 while the row iterates */
    pthread_mutex_t claim;      /* guards next */
    int64_t     next[2];        /* first unclaimed row of the panel, per phase */
    int         any[3];         /* some row still iterates, per step mod 3 */
    AlsBarrier  barrier;
} AlsShared;

/* n floats rounded up to whole cache lines */
static size_t
RoundLine(size_t n)
{
    return (n + IT_LINE_FLOATS - 1) / IT_LINE_FLOATS * IT_LINE_FLOATS;
}

/* rows of a panel: about IT_ALS_PANEL_FLOATS floats per buffer */
static int64_t
PanelRows(int k)
{
    int64_t     rows = IT_ALS_PANEL_FLOATS / k / IT_ALS_BLOCK * IT_ALS_BLOCK;

    return rows < IT_ALS_BLOCK ? IT_ALS_BLOCK : rows;
}

/*
 * Layout: one line of slack to align the start, YtY + reg I (k * k), the
 * four panel buffers (R, P, dense and sparse part), rs and active.  The
 * threads share the panel, so the size does not depend on their number.
 */
size_t
it_als_scratch_floats(int k, int threads)
{
    size_t      rows = (size_t) PanelRows(k);

    return IT_LINE_FLOATS + RoundLine((size_t) k * k) +
        4 * RoundLine(rows * k) + 2 * RoundLine(rows);
}

/*
 * Claims the next block of rows of the panel [p0, p1) for phase ph: from
 * the first unclaimed row up to IT_ALS_BLOCK rows, never across a multiple
 * of IT_ALS_BLOCK, and cut short once the block holds IT_ALS_BLOCK_NNZ
 * entries, so that a few heavy rows (popular items) do not make one
 * thread's share.  Which thread gets a block does not change any result:
 * the phases treat every row on its own.
 */
static int
ClaimBlock(AlsShared *s, int ph, int64_t p0, int64_t p1, int64_t *b0, int64_t *b1)
{
    const int64_t *indptr = s->R->indptr;
    int64_t     start;
    int64_t     limit;
    int64_t     end;

    pthread_mutex_lock(&s->claim);
    start = p0 + s->next[ph];
    if (start >= p1)
    {
        pthread_mutex_unlock(&s->claim);
        return 0;
    }
    limit = (start / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK;
    if (limit > p1)
        limit = p1;
    end = start + 1;
    while (end < limit && indptr[end + 1] - indptr[start] <= IT_ALS_BLOCK_NNZ)
        end++;
    s->next[ph] = end - p0;
    pthread_mutex_unlock(&s->claim);
    *b0 = start;
    *b1 = end;
    return 1;
}

/*
 * Dense part of the panel [p0, p1) (calling thread only):
 *   step 0:  D = -X A     step > 0:  D = P A
 * one sgemm per block of rows between consecutive multiples of
 * IT_ALS_BLOCK.  OpenBLAS computes a row differently depending on where
 * it falls in the call (the rows past the kernel's last whole group of
 * rows take other code paths), so the calls must not depend on how the
 * caller chunks the rows: with chunks cut at multiples of IT_ALS_BLOCK
 * they are always the same calls.
 */
static void
DensePanel(const AlsShared *s, int64_t p0, int64_t p1, int step)
{
    const int   k = s->k;
    int64_t     j0;
    int64_t     j1;

    for (j0 = p0; j0 < p1; j0 = j1)
    {
        j1 = (j0 / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK;
        if (j1 > p1)
            j1 = p1;
        if (step == 0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                        (int) (j1 - j0), k, k, -1.0f, s->X + (size_t) j0 * k, k,
                        s->A, k, 0.0f, s->Dp + (size_t) (j0 - p0) * k, k);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                        (int) (j1 - j0), k, k, 1.0f, s->Pp + (size_t) (j0 - p0) * k, k,
                        s->A, k, 0.0f, s->Dp + (size_t) (j0 - p0) * k, k);
    }
}

/*
 * Sparse part of the rows [b0, b1) of the panel starting at p0, into S:
 *   step 0:  sum_j (1 + w_j - w_j y_j.x) y_j   (rows with entries)
 *   step > 0:  sum_j w_j (y_j . p) y_j          (rows still iterating)
 */
IT_CLONES static void
SparseBlock(const AlsShared *s, int64_t p0, int64_t b0, int64_t b1, int step)
{
    const ItCsr *Rm = s->R;
    const int   k = s->k;
    int64_t     u;

    for (u = b0; u < b1; u++)
    {
        int64_t     b = u - p0;
        int64_t     start = Rm->indptr[u];
        int64_t     m = Rm->indptr[u + 1] - start;
        float      *out = s->Sp + (size_t) b * k;

        if (m <= 0 || (step > 0 && s->active[b] == 0.0f))
            continue;
        memset(out, 0, sizeof(float) * k);
        if (step == 0)
            SparsePass(Rm->indices + start, Rm->data + start, m,
                       Rm->indptr[b1] - start, s->Y, k, s->alpha, 1,
                       s->X + (size_t) u * k, out);
        else
            SparsePass(Rm->indices + start, Rm->data + start, m, m,
                       s->Y, k, s->alpha, 0, s->Pp + (size_t) b * k, out);
    }
}

/*
 * The CG updates of the rows [b0, b1) of the panel starting at p0, once
 * both parts of step's product are in D and S.  Returns whether some row
 * iterates further.
 */
IT_CLONES static int
UpdateBlock(const AlsShared *s, int64_t p0, int64_t b0, int64_t b1, int step)
{
    const ItCsr *Rm = s->R;
    const int   k = s->k;
    const int   last = (step == s->cg_steps);
    int         any = 0;
    int64_t     u;

    for (u = b0; u < b1; u++)
    {
        int64_t     b = u - p0;
        float      *x = s->X + (size_t) u * k;
        float      *res = s->Rp + (size_t) b * k;
        float      *pv = s->Pp + (size_t) b * k;
        const float *dv = s->Dp + (size_t) b * k;
        float      *ap = s->Sp + (size_t) b * k;
        float       pap;
        float       a;
        float       rsnew;
        float       beta;

        if (step == 0)
        {
            if (Rm->indptr[u + 1] <= Rm->indptr[u])
            {
                memset(x, 0, sizeof(float) * k);
                memset(pv, 0, sizeof(float) * k);
                s->active[b] = 0.0f;
                continue;
            }
            /* r = b - A x */
            Add(res, dv, ap, k);
            s->rs[b] = Dot(res, res, k);
            if (!(s->rs[b] >= IT_CG_EPS) || last)
            {
                memset(pv, 0, sizeof(float) * k);
                s->active[b] = 0.0f;
                continue;
            }
            memcpy(pv, res, sizeof(float) * k);
            s->active[b] = 1.0f;
            any = 1;
            continue;
        }
        if (s->active[b] == 0.0f)
            continue;
        AddTo(ap, dv, k);
        pap = Dot(pv, ap, k);
        if (!(pap > 0.0f) || !isfinite(pap))
        {
            memset(pv, 0, sizeof(float) * k);
            s->active[b] = 0.0f;
            continue;
        }
        a = s->rs[b] / pap;
        Axpy(x, a, pv, k);
        if (last)
            continue;
        Axpy(res, -a, ap, k);
        rsnew = Dot(res, res, k);
        if (!(rsnew >= IT_CG_EPS))
        {
            memset(pv, 0, sizeof(float) * k);
            s->active[b] = 0.0f;
            continue;
        }
        beta = rsnew / s->rs[b];
        s->rs[b] = rsnew;
        Xpby(pv, res, beta, k);
        any = 1;
    }
    return any;
}

/*
 * Every thread runs this, the calling thread (main) included, in step
 * with the others: per panel and CG step, phase 0 (main: the dense
 * products; everyone: the sparse parts), barrier, phase 1 (the updates),
 * barrier.  Only main calls BLAS, and the others never do: OpenBLAS's
 * level-3 calls are never concurrent.
 */
static void
AlsRun(AlsShared *s, int is_main)
{
    int64_t     p0;
    int64_t     b0;
    int64_t     b1;
    unsigned    g = 0;          /* steps done, over all panels */

    for (p0 = s->row_begin; p0 < s->row_end; p0 += s->panel_rows)
    {
        int64_t     p1 = p0 + s->panel_rows < s->row_end ? p0 + s->panel_rows : s->row_end;
        int         step;

        for (step = 0; step <= s->cg_steps; step++, g++)
        {
            int         any = 0;

            if (is_main)
            {
                /* nobody uses these now (see below) */
                s->next[1] = 0;
                __atomic_store_n(&s->any[(g + 1) % 3], 0, __ATOMIC_RELAXED);
                DensePanel(s, p0, p1, step);
            }
            while (ClaimBlock(s, 0, p0, p1, &b0, &b1))
                SparseBlock(s, p0, b0, b1, step);
            BarrierWait(&s->barrier);

            if (is_main)
                s->next[0] = 0;
            while (ClaimBlock(s, 1, p0, p1, &b0, &b1))
                any |= UpdateBlock(s, p0, b0, b1, step);
            if (any)
                __atomic_store_n(&s->any[g % 3], 1, __ATOMIC_RELAXED);
            BarrierWait(&s->barrier);

            /*
             * Everyone reads the same flag: it is written only before the
             * barrier, and cleared again two steps later, after everyone
             * has passed the next barrier.
             */
            if (!__atomic_load_n(&s->any[g % 3], __ATOMIC_RELAXED))
            {
                g++;
                break;
            }
        }
    }
}

static void *
AlsWorker(void *arg)
{
    AlsRun((AlsShared *) arg, 0);
    return NULL;
}

void
it_als_half_step(const ItCsr *R, const float *Y, const float *YtY,
                 float *X, const ItAlsParams *p,
                 int64_t row_begin, int64_t row_end, float *scratch)
{
    AlsShared   s;
    int         k = p->factors;
    int         threads = p->threads < 1 ? 1 : p->threads;
    size_t      rows;
    size_t      buf;
    float      *base;
    float      *A;
    void       *argp[IT_ALS_MAX_THREADS];
    pthread_t   tids[IT_ALS_MAX_THREADS];
    int         started = 0;
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

    rows = (size_t) PanelRows(k);
    buf = RoundLine(rows * k);
    s.R = R;
    s.Y = Y;
    s.A = A;
    s.X = X;
    s.k = k;
    s.cg_steps = p->cg_steps < 0 ? 0 : p->cg_steps;
    s.alpha = p->alpha;
    s.row_begin = row_begin;
    s.row_end = row_end;
    s.panel_rows = (int64_t) rows;
    s.Rp = A + RoundLine((size_t) k * k);
    s.Pp = s.Rp + buf;
    s.Dp = s.Pp + buf;
    s.Sp = s.Dp + buf;
    s.rs = s.Sp + buf;
    s.active = s.rs + RoundLine(rows);
    s.next[0] = 0;
    s.next[1] = 0;
    s.any[0] = s.any[1] = s.any[2] = 0;

    if (threads > IT_ALS_MAX_THREADS)
        threads = IT_ALS_MAX_THREADS;
    if (threads > (row_end - row_begin + IT_ALS_BLOCK - 1) / IT_ALS_BLOCK)
        threads = (int) ((row_end - row_begin + IT_ALS_BLOCK - 1) / IT_ALS_BLOCK);
    pthread_mutex_init(&s.claim, NULL);
    pthread_mutex_init(&s.barrier.mutex, NULL);
    pthread_cond_init(&s.barrier.cond, NULL);
    s.barrier.parties = threads;
    s.barrier.arrived = 0;
    s.barrier.generation = 0;

    for (t = 1; t < threads; t++)
        argp[t - 1] = &s;
    started = StartThreads(AlsWorker, argp, threads - 1, tids);
    /*
     * fewer parties if some did not start: the calling thread has not
     * reached the barrier yet, so it cannot have opened
     */
    if (started < threads - 1)
        __atomic_store_n(&s.barrier.parties, started + 1, __ATOMIC_RELEASE);
    AlsRun(&s, 1);
    for (t = 0; t < started; t++)
        pthread_join(tids[t], NULL);
    pthread_cond_destroy(&s.barrier.cond);
    pthread_mutex_destroy(&s.barrier.mutex);
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

/*
 * Over the rows [u0, u1): sums[0] = sum_u sum_i [c_ui (1 - s)^2 - s^2],
 * s = x_u . y_i, the correction of the observed cells to the all-zero
 * target objective; when want_quad, sums[2] = sum_u |x_u|^2 (sums[1] is
 * QuadRows's, on the calling thread).
 */
IT_CLONES static void
LossRows(const ItCsr *R, const float *X, const float *Y,
         int k, float alpha, int want_quad, int64_t u0, int64_t u1,
         double *sums)
{
    double      obs = 0.0;
    double      xn = 0.0;
    int64_t     u;

    for (u = u0; u < u1; u++)
    {
        const float *x = X + (size_t) u * k;
        int64_t     start = R->indptr[u];
        int64_t     m = R->indptr[u + 1] - start;
        const int32_t *idx = R->indices + start;
        const float *r = R->data + start;
        double      row = 0.0;
        int64_t     j;

        for (j = 0; j < m; j++)
        {
            double      sv;
            double      c = 1.0 + (double) alpha * r[j];

            if (j + IT_PREFETCH_AHEAD < m)
                PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k);
            sv = Dot(x, Y + (size_t) idx[j] * k, k);
            row += c * (1.0 - sv) * (1.0 - sv) - sv * sv;
        }
        obs += row;
        if (want_quad)
            xn += Dot(x, x, k);
    }
    sums[0] = obs;
    sums[1] = 0.0;
    sums[2] = xn;
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
    int         want_quad;
    int64_t     next;           /* atomic: next part */
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

        LossRows(s->R, s->X, s->Y, s->k, s->alpha, s->want_quad,
                 n * part / IT_LOSS_PARTS, n * (part + 1) / IT_LOSS_PARTS,
                 s->sums[part]);
    }
    return NULL;
}

double
it_als_loss_gram_mt(const ItCsr *R, const float *X, const float *Y,
                    const float *XtX, const float *YtY, int k, float reg,
                    float alpha, int threads)
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
    s.want_quad = XtX == NULL;
    s.next = 0;
    if (threads > IT_ALS_MAX_THREADS)
        threads = IT_ALS_MAX_THREADS;
    for (t = 1; t < threads; t++)
        argp[t - 1] = &s;
    started = StartThreads(LossWorker, argp, threads - 1, tids);
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
    {
        /* sum_u x_u^T YtY x_u = trace(XtX YtY) = sum_ij XtX_ij YtY_ij */
        size_t      e;

        for (e = 0; e < (size_t) k * k; e++)
            quad += (double) XtX[e] * YtY[e];
        for (i = 0; i < k; i++)
            xnorm += XtX[(size_t) i * k + i];
    }
    for (i = 0; i < k; i++)
        ynorm += YtY[(size_t) i * k + i];
    return quad + observed + (double) reg * (xnorm + ynorm);
}

double
it_als_loss_gram(const ItCsr *R, const float *X, const float *Y,
                 const float *XtX, const float *YtY, int k, float reg,
                 float alpha)
{
    return it_als_loss_gram_mt(R, X, Y, XtX, YtY, k, reg, alpha, 1);
}

double
it_als_loss(const ItCsr *R, const float *X, const float *Y,
            const float *YtY, int k, float reg, float alpha)
{
    return it_als_loss_gram_mt(R, X, Y, NULL, YtY, k, reg, alpha, 1);
}

void
it_advise_hugepages(void *buf, size_t bytes)
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

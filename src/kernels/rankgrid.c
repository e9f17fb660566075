/*
 * rankgrid.c
 *    Checks of a features -> interest model on held-out rows: precision@k
 *    of rankings mixed with a popularity term over a grid of mixing
 *    weights, and the implicit-ALS loss row by row.  See rankgrid.h.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "kernels.h"
#include "rankgrid.h"
#include "clones.h"

/* a * b into *out; 0 on overflow */
static int
MulSize(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

static int
AddSize(size_t a, size_t b, size_t *out)
{
    if (b > SIZE_MAX - a)
        return 0;
    *out = a + b;
    return 1;
}

size_t
it_rank_grid_workspace_floats(int64_t m, int k)
{
    size_t      scores,
                total;

    if (m < 1 || m > INT32_MAX || k < 1)
        return 0;
    /* a block of base scores, one blended row, the flags of the positives
     * (m bytes, in m floats to keep it simple), the top k values and
     * indexes */
    if (!MulSize((size_t) IT_RANK_GRID_BLOCK + 2, (size_t) m, &scores) ||
        !AddSize(scores, 2 * (size_t) k, &total))
        return 0;
    return total;
}

/* Hits of top[0..ntop) among the flagged items. */
static int
CountHits(const int32_t *top, int ntop, const unsigned char *flags)
{
    int         hits = 0;

    for (int t = 0; t < ntop; t++)
        hits += flags[top[t]];
    return hits;
}

/* Flags the row's positives (value 1) or clears them (value 0); returns
 * how many distinct in-range positives there are when setting. */
static int64_t
MarkPositives(unsigned char *flags, int64_t m, const int32_t *pos, int64_t npos,
              unsigned char value)
{
    int64_t     count = 0;

    for (int64_t e = 0; e < npos; e++)
    {
        int32_t     i = pos[e];

        if (i < 0 || i >= m)
            continue;
        if (value && !flags[i])
            count++;
        flags[i] = value;
    }
    return count;
}

/* Whether the row has a positive in [0, m) (MarkPositives would count one). */
static bool
AnyPositive(const int32_t *pos, int64_t npos, int64_t m)
{
    for (int64_t e = 0; e < npos; e++)
        if (pos[e] >= 0 && pos[e] < m)
            return true;
    return false;
}

/* blended[i] = base[i] + blend * pop[i] (base NULL: 0) */
static void
Blend(const float *base, const float *pop, float blend, int64_t m, float *blended)
{
    if (blend == 0.0f || pop == NULL)
    {
        if (base)
            memcpy(blended, base, sizeof(float) * (size_t) m);
        else
            memset(blended, 0, sizeof(float) * (size_t) m);
        return;
    }
    if (base)
    {
        for (int64_t i = 0; i < m; i++)
            blended[i] = base[i] + blend * pop[i];
    }
    else
    {
        for (int64_t i = 0; i < m; i++)
            blended[i] = blend * pop[i];
    }
}

/*
 * One row's rankings from its float scores row[0..m), one per blend (the
 * blend computed on the fly, as Blend would write it): adds hits / k to
 * precision[j] when precision is not NULL, writes the hits to hr[j] when
 * hr is not NULL (-1 without a positive); returns 1 when the row has a
 * positive, else 0.  flags: m bytes, all clear (left so).
 */
static int
RankFloatRow(const float *row, int64_t m, const float *pop, const float *blends, int nblend,
             const int32_t *pos, int64_t npos, int k, unsigned char *flags,
             int32_t *top_idx, float *top_val, double *precision, int32_t *hr)
{
    int         has = MarkPositives(flags, m, pos, npos, 1) > 0;

    for (int j = 0; j < nblend; j++)
    {
        int         hits = -1;

        if (has)
        {
            int         ntop = it_topk_blend(row, pop, blends[j], m, NULL, 0, k, top_idx, top_val);

            hits = CountHits(top_idx, ntop, flags);
            if (precision)
                precision[j] += (double) hits / k;
        }
        if (hr)
            hr[j] = hits;
    }
    MarkPositives(flags, m, pos, npos, 0);
    return has;
}

int
it_rank_grid_precision(const float *U, int shared, int64_t n, int kdim,
                       const float *Y, int64_t m, const float *pop,
                       const float *blends, int nblend,
                       const int64_t *pos_ptr, const int32_t *pos_idx,
                       int k, float *workspace,
                       double *precision, int64_t *users,
                       int32_t *row_hits)
{
    float      *block,
               *blended,
               *top_val;
    int32_t    *top_idx;
    unsigned char *flags;
    int64_t     counted = 0;
    int         j;

    if (n < 0 || m < 1 || m > INT32_MAX || k < 1 || nblend < 1 ||
        blends == NULL || pos_ptr == NULL || (pos_idx == NULL && n > 0) ||
        workspace == NULL || precision == NULL || users == NULL)
        return -1;
    if (U != NULL && (Y == NULL || kdim < 1))
        return -1;
    for (j = 0; j < nblend; j++)
        if (blends[j] != 0.0f && pop == NULL)
            return -1;
    if (U == NULL)
        shared = 1;             /* the same (popularity) ranking for every row */

    block = workspace;
    blended = block + (size_t) IT_RANK_GRID_BLOCK * m;
    flags = (unsigned char *) (blended + m);
    top_val = blended + 2 * (size_t) m;
    top_idx = (int32_t *) (top_val + k);
    memset(flags, 0, (size_t) m);
    for (j = 0; j < nblend; j++)
        precision[j] = 0.0;

    if (shared)
    {
        /* one ranking per blend, the same for every row */
        if (U != NULL)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int) m, kdim, 1.0f, Y, kdim,
                        U, 1, 0.0f, block, 1);
        for (j = 0; j < nblend; j++)
        {
            int         ntop;

            Blend(U != NULL ? block : NULL, pop, blends[j], m, blended);
            ntop = it_topk(blended, m, NULL, 0, k, top_idx, top_val);
            counted = 0;
            for (int64_t r = 0; r < n; r++)
            {
                const int32_t *pos = pos_idx + pos_ptr[r];
                int64_t     npos = pos_ptr[r + 1] - pos_ptr[r];

                int         hits = -1;

                if (MarkPositives(flags, m, pos, npos, 1) > 0)
                {
                    hits = CountHits(top_idx, ntop, flags);
                    precision[j] += (double) hits / k;
                    counted++;
                }
                MarkPositives(flags, m, pos, npos, 0);
                if (row_hits)
                    row_hits[r * nblend + j] = hits;
            }
        }
    }
    else
    {
        for (int64_t r0 = 0; r0 < n; r0 += IT_RANK_GRID_BLOCK)
        {
            int         nb = (int) (n - r0 < IT_RANK_GRID_BLOCK ? n - r0 : IT_RANK_GRID_BLOCK);

            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int) m, kdim,
                        1.0f, U + (size_t) r0 * kdim, kdim, Y, kdim, 0.0f, block, (int) m);
            for (int b = 0; b < nb; b++)
                counted += RankFloatRow(block + (size_t) b * m, m, pop, blends, nblend,
                                        pos_idx + pos_ptr[r0 + b], pos_ptr[r0 + b + 1] - pos_ptr[r0 + b], k,
                                        flags, top_idx, top_val, precision,
                                        row_hits ? row_hits + (r0 + b) * nblend : NULL);
        }
    }

    for (j = 0; j < nblend; j++)
        precision[j] = counted > 0 ? precision[j] / (double) counted : 0.0;
    *users = counted;
    return 0;
}

/*
 * x . y in double over DOT_LANES partial sums in a fixed order (a single
 * running sum is a chain of dependent additions, and the compiler may not
 * reorder it): the same result on every machine with the same rounding.
 */
#define DOT_LANES 8

static inline double
DotDouble(const float *restrict x, const float *restrict y, int k)
{
    double      acc[DOT_LANES] = {0};
    double      s;
    int         j = 0,
                q;

    for (; j + DOT_LANES <= k; j += DOT_LANES)
        for (q = 0; q < DOT_LANES; q++)
            acc[q] += (double) x[j + q] * y[j + q];
    s = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
    for (; j < k; j++)
        s += (double) x[j] * y[j];
    return s;
}

int
it_als_row_losses(const float *U, int shared, int64_t n, int k,
                  const float *Y, const float *YtY,
                  const int64_t *ptr, const int32_t *idx, const float *w,
                  float alpha, float pos_min_weight,
                  float *workspace, double *out)
{
    if (U == NULL || Y == NULL || YtY == NULL || ptr == NULL || w == NULL ||
        (idx == NULL && n > 0) || workspace == NULL || out == NULL || n < 0 || k < 1)
        return -1;
    for (int64_t r = 0; r < n; r++)
    {
        const float *x = shared ? U : U + (size_t) r * k;
        double      l = 0.0;

        /* x'YtY x */
        if (r == 0 || !shared)
            cblas_sgemv(CblasRowMajor, CblasNoTrans, k, k, 1.0f, YtY, k, x, 1,
                        0.0f, workspace, 1);
        l = DotDouble(x, workspace, k);
        for (int64_t e = ptr[r]; e < ptr[r + 1]; e++)
        {
            const float *y = Y + (size_t) idx[e] * k;
            double      c = 1.0 + (double) alpha * w[e];
            double      sc;

            if (!(w[e] >= pos_min_weight))
                continue;
            sc = DotDouble(x, y, k);
            l += c * (1.0 - sc) * (1.0 - sc) - sc * sc;
        }
        out[r] = l;
    }
    return 0;
}

/*
 * precision[j] and *users from each row's hits (hits[r * nblend + j], -1
 * for a row without a positive), summed in row order as
 * it_rank_grid_precision sums them.
 */
static void
SumRowHits(const int32_t *hits, int64_t n, int nblend, int k, double *precision, int64_t *users)
{
    int64_t     counted = 0;

    for (int j = 0; j < nblend; j++)
        precision[j] = 0.0;
    for (int64_t r = 0; r < n; r++)
    {
        const int32_t *hr = hits + (size_t) r * nblend;

        if (hr[0] < 0)
            continue;
        counted++;
        for (int j = 0; j < nblend; j++)
            precision[j] += (double) hr[j] / k;
    }
    for (int j = 0; j < nblend; j++)
        precision[j] = counted > 0 ? precision[j] / (double) counted : 0.0;
    *users = counted;
}

/* ------------------------------------------------------------------------
 * it_rank_grid_precision over threads
 * ------------------------------------------------------------------------ */

/* The most threads it_rank_grid_precision_threads uses. */
#define IT_RANK_MAX_THREADS 8

/* A worker spins this many pauses for the next block before it sleeps. */
#define IT_RANK_SPINS (1u << 14)

static int
RankThreads(int nthreads)
{
    return nthreads < 1 ? 1 : nthreads < IT_RANK_MAX_THREADS ? nthreads : IT_RANK_MAX_THREADS;
}

/* Floats of a thread's scratch: the flags (m bytes, in floats), top k values and indexes. */
static size_t
RankThreadFloats(int64_t m, int k)
{
    return ((size_t) m + 3) / 4 + 2 * (size_t) k + 16;
}

size_t
it_rank_grid_threads_workspace_floats(int64_t m, int k, int64_t n, int nblend, int nthreads)
{
    size_t      blocks,
                per,
                hits,
                total;

    if (m < 1 || m > INT32_MAX || k < 1 || n < 0 || nblend < 1 || nthreads < 1)
        return 0;
    /* two blocks of scores, each thread's scratch, every row's hits */
    if (!MulSize(2 * (size_t) IT_RANK_GRID_BLOCK, (size_t) m, &blocks) ||
        !MulSize(RankThreadFloats(m, k), (size_t) RankThreads(nthreads), &per) ||
        !MulSize((size_t) n, (size_t) nblend, &hits) ||
        !AddSize(blocks, per, &total) || !AddSize(total, hits, &total))
        return 0;
    return total;
}

/* What both threaded paths rank: n rows of U against Y, and where each row's hits go. */
typedef struct RankRows
{
    const float *U;
    int         kdim;
    const float *Y;
    int64_t     m;
    const float *pop;
    const float *blends;
    int         nblend;
    const int64_t *pos_ptr;
    const int32_t *pos_idx;
    int         k;
    int32_t    *hits;
} RankRows;

typedef struct RankBlockJob
{
    RankRows    p;
    const float *S;             /* this block's scores, */
    int64_t     r0;             /* of rows r0 .. */
    int         nb;             /* r0 + nb, */
    int         claimed;        /* the next row to rank (atomic) */
    float      *Snext;          /* the next block's, which the calling thread computes first, */
    int64_t     next_r0;
    int         next_nb;        /* 0: none */
} RankBlockJob;

typedef struct RankBlockPart
{
    RankBlockJob *job;
    int         caller;
    unsigned char *flags;
    int32_t    *top_idx;
    float      *top_val;
} RankBlockPart;

static void
BlockScores(const RankBlockJob *j, int64_t r0, int nb, float *S)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int) j->p.m, j->p.kdim,
                1.0f, j->p.U + (size_t) r0 * j->p.kdim, j->p.kdim, j->p.Y, j->p.kdim, 0.0f, S, (int) j->p.m);
}

/*
 * The calling thread computes the next block's scores (BLAS stays on it),
 * then every thread ranks rows of this block as it claims them.
 */
static void *
RankBlockRun(void *arg)
{
    RankBlockPart *p = arg;
    RankBlockJob *j = p->job;

    if (p->caller && j->next_nb > 0)
        BlockScores(j, j->next_r0, j->next_nb, j->Snext);
    for (;;)
    {
        int         b = __atomic_fetch_add(&j->claimed, 1, __ATOMIC_RELAXED);
        int64_t     r;

        if (b >= j->nb)
            break;
        r = j->r0 + b;
        (void) RankFloatRow(j->S + (size_t) b * j->p.m, j->p.m, j->p.pop, j->p.blends, j->p.nblend,
                            j->p.pos_idx + j->p.pos_ptr[r], j->p.pos_ptr[r + 1] - j->p.pos_ptr[r], j->p.k,
                            p->flags, p->top_idx, p->top_val, NULL, j->p.hits + (size_t) r * j->p.nblend);
    }
    return NULL;
}

int
it_rank_grid_precision_threads(const float *U, int64_t n, int kdim, const float *Y, int64_t m,
                               const float *pop, const float *blends, int nblend,
                               const int64_t *pos_ptr, const int32_t *pos_idx, int k,
                               float *workspace, int nthreads,
                               double *precision, int64_t *users, int32_t *row_hits)
{
    int         nt = RankThreads(nthreads);
    RankBlockJob job;
    RankBlockPart parts[IT_RANK_MAX_THREADS];
    void       *args[IT_RANK_MAX_THREADS];
    float      *S[2];
    float      *scratch;
    ItTeam      team;
    bool        started;

    if (U == NULL || Y == NULL || kdim < 1 || blends == NULL || pos_ptr == NULL ||
        (pos_idx == NULL && n > 0) || workspace == NULL || precision == NULL || users == NULL ||
        it_rank_grid_threads_workspace_floats(m, k, n, nblend, nthreads) == 0)
        return -1;
    for (int j = 0; j < nblend; j++)
        if (blends[j] != 0.0f && pop == NULL)
            return -1;
    S[0] = workspace;
    S[1] = S[0] + (size_t) IT_RANK_GRID_BLOCK * m;
    scratch = S[1] + (size_t) IT_RANK_GRID_BLOCK * m;
    job = (RankBlockJob) {{U, kdim, Y, m, pop, blends, nblend, pos_ptr, pos_idx, k,
        row_hits != NULL ? row_hits : (int32_t *) (scratch + RankThreadFloats(m, k) * nt)}};
    for (int t = 0; t < nt; t++)
    {
        float      *mine = scratch + RankThreadFloats(m, k) * t;

        parts[t] = (RankBlockPart) {&job, t == 0, (unsigned char *) mine, NULL, NULL};
        parts[t].top_val = mine + ((size_t) m + 3) / 4;
        parts[t].top_idx = (int32_t *) (parts[t].top_val + k);
        memset(parts[t].flags, 0, (size_t) m);
        args[t] = &parts[t];
    }

    started = nt > 1 && it_team_start(&team, nt, IT_RANK_SPINS);
    if (n > 0)
        BlockScores(&job, 0, (int) (n < IT_RANK_GRID_BLOCK ? n : IT_RANK_GRID_BLOCK), S[0]);
    for (int64_t r0 = 0, blk = 0; r0 < n; r0 += IT_RANK_GRID_BLOCK, blk++)
    {
        int64_t     r1 = r0 + IT_RANK_GRID_BLOCK;

        job.S = S[blk & 1];
        job.r0 = r0;
        job.nb = (int) ((n - r0) < IT_RANK_GRID_BLOCK ? n - r0 : IT_RANK_GRID_BLOCK);
        job.claimed = 0;
        job.Snext = S[(blk + 1) & 1];
        job.next_r0 = r1;
        job.next_nb = r1 < n ? (int) (n - r1 < IT_RANK_GRID_BLOCK ? n - r1 : IT_RANK_GRID_BLOCK) : 0;
        if (started)
            it_team_run(&team, RankBlockRun, args, nt);
        else
            RankBlockRun(args[0]);
    }
    if (started)
        it_team_stop(&team);

    SumRowHits(job.p.hits, n, nblend, k, precision, users);
    return 0;
}

/* ------------------------------------------------------------------------
 * it_rank_grid_precision from an 8-bit first pass, over threads
 * ------------------------------------------------------------------------ */

/* The most threads it_rank_grid_precision_q8 starts. */
#define IT_RANK_Q8_MAX_THREADS 8

/* Room for candidates beyond k in an exact ranking (more: ranked exactly). */
#define IT_RANK_Q8_SLACK 256

/* The fewest rows a thread ranks. */
#define IT_RANK_Q8_MIN_ROWS 8

/* Rows scanned together. */
#define IT_RANK_Q8_TILE 16

static size_t
AlignUp(size_t v)
{
    return (v + 63) & ~(size_t) 63;
}

/* Byte offsets of the workspace's parts; 0 on overflow. */
typedef struct RankQ8Layout
{
    size_t      q,
                scale,
                tol,
                tol_block,
                hits,
                parts,          /* the threads' parts start here, */
                part;           /* each this long: */
    size_t      p_scores,
                p_blended,
                p_flags,
                p_cand,
                p_cand_score,
                p_top_idx,
                p_top_val,
                p_qx,
                p_bmax;
    size_t      total;
} RankQ8Layout;

static int
RankQ8Parts(int64_t n, int nthreads)
{
    int         parts = nthreads < IT_RANK_Q8_MAX_THREADS ? nthreads : IT_RANK_Q8_MAX_THREADS;

    if (parts > n / IT_RANK_Q8_MIN_ROWS)
        parts = (int) (n / IT_RANK_Q8_MIN_ROWS);
    return parts < 1 ? 1 : parts;
}

static int
RankQ8Sizes(int64_t m, int kdim, int64_t n, int nblend, int k, int nthreads, RankQ8Layout *l)
{
    size_t      padded,
                cap,
                v,
                off = 0;
    int         ok = 1;

    if (m < 1 || m > INT32_MAX || kdim < 1 || kdim > 65536 || n < 0 || nblend < 1 || k < 1 ||
        nthreads < 1)
        return 0;
    padded = (size_t) it_q8_padded(m);
    cap = (size_t) k + IT_RANK_Q8_SLACK;
#define SLOT(field, count, size) \
    do { \
        l->field = off; \
        ok = ok && MulSize((size_t) (count), (size_t) (size), &v) && AddSize(off, v, &off) && \
            AddSize(off, 63, &off); \
        off &= ~(size_t) 63; \
    } while (0)
    SLOT(q, padded, it_q8_kpad(kdim));
    SLOT(scale, padded, sizeof(float));
    SLOT(tol, padded, sizeof(float));
    SLOT(tol_block, padded / IT_Q8_BLOCK, sizeof(float));
    ok = ok && MulSize((size_t) n, (size_t) nblend, &v);
    SLOT(hits, ok ? v : 0, sizeof(int32_t));
    l->parts = off;
    off = 0;
    ok = ok && MulSize((size_t) m, IT_RANK_Q8_TILE, &v);
    SLOT(p_scores, ok ? v : 0, sizeof(float));
    SLOT(p_blended, m, sizeof(float));
    SLOT(p_flags, m, 1);
    SLOT(p_cand, cap, sizeof(int32_t));
    SLOT(p_cand_score, cap, sizeof(float));
    SLOT(p_top_idx, k, sizeof(int32_t));
    SLOT(p_top_val, k, sizeof(float));
    SLOT(p_qx, it_q8_query_bytes(kdim), IT_RANK_Q8_TILE);
    SLOT(p_bmax, it_q8_blocks(0, m), IT_RANK_Q8_TILE * sizeof(float));
#undef SLOT
    l->part = off;
    ok = ok && MulSize(l->part, (size_t) RankQ8Parts(n, nthreads), &v) && AddSize(l->parts, v, &l->total) &&
        AddSize(l->total, 64, &l->total);
    return ok;
}

size_t
it_rank_grid_q8_workspace_bytes(int64_t m, int kdim, int64_t n, int nblend, int k, int nthreads)
{
    RankQ8Layout l;

    return RankQ8Sizes(m, kdim, n, nblend, k, nthreads, &l) ? l.total : 0;
}

typedef struct RankQ8Shared
{
    RankRows    p;
    const int8_t *Q;
    const float *scale;
    const float *tol;
    float       qnorm;
    double      ymax;           /* the largest |y_i| */
    double      tmax;           /* the largest tol[i] */
    double      pmax;           /* the largest |pop[i]| */
} RankQ8Shared;

/* A part of the encoding: items [lo, hi), and their largest |y|, tol and |pop|. */
typedef struct RankQ8EncodePart
{
    const RankQ8Shared *sh;
    int64_t     lo,
                hi;
    int8_t     *Q;
    float      *scale,
               *tol,
               *tol_block;
    float       qnorm;
    double      ymax,
                tmax,
                pmax;
} RankQ8EncodePart;

/* A part of the ranking: rows [r0, r1), and its scratch. */
typedef struct RankQ8RowsPart
{
    const RankQ8Shared *sh;
    int64_t     r0,
                r1;
    char       *scratch;
    const RankQ8Layout *l;
} RankQ8RowsPart;

static void *
RankQ8Encode(void *arg)
{
    RankQ8EncodePart *p = arg;
    const RankQ8Shared *sh = p->sh;
    int         kdim = sh->p.kdim;

    it_q8_encode(sh->p.Y + (size_t) p->lo * kdim, p->hi - p->lo, kdim, p->Q, p->scale, p->tol, &p->qnorm,
                 p->tol_block);
    p->ymax = p->tmax = p->pmax = 0.0;
    for (int64_t i = p->lo; i < p->hi; i++)
    {
        double      yy = 0.0;

        for (int j = 0; j < kdim; j++)
            yy += (double) sh->p.Y[(size_t) i * kdim + j] * sh->p.Y[(size_t) i * kdim + j];
        p->ymax = sqrt(yy) > p->ymax ? sqrt(yy) : p->ymax;
        p->tmax = p->tol[i - p->lo] > p->tmax ? p->tol[i - p->lo] : p->tmax;
        if (sh->p.pop != NULL)
            p->pmax = fabs((double) sh->p.pop[i]) > p->pmax ? fabs((double) sh->p.pop[i]) : p->pmax;
    }
    return NULL;
}

typedef struct ExactBlendArg
{
    const float *x;
    const float *Y;
    int         kdim;
    const float *pop;
    float       blend;
} ExactBlendArg;

/* The exact score of item i: x.y_i summed in double, then the blend in float. */
static float
ExactBlend(const void *arg, int64_t i)
{
    const ExactBlendArg *a = arg;
    float       s = (float) DotDouble(a->x, a->Y + (size_t) i * a->kdim, a->kdim);

    return a->blend != 0.0f ? s + a->blend * a->pop[i] : s;
}

/* One row's rankings from its 8-bit scores (NULL: from its exact scores alone). */
static void
RankQ8Row(const RankQ8Shared *sh, const RankQ8Layout *l, char *scratch, int64_t r,
          const float *scores, double xn, double qtol)
{
    int64_t     m = sh->p.m;
    int64_t     cap = (int64_t) sh->p.k + IT_RANK_Q8_SLACK;
    float      *blended = (float *) (scratch + l->p_blended);
    unsigned char *flags = (unsigned char *) (scratch + l->p_flags);
    int32_t    *cand = (int32_t *) (scratch + l->p_cand);
    float      *cand_score = (float *) (scratch + l->p_cand_score);
    int32_t    *top_idx = (int32_t *) (scratch + l->p_top_idx);
    float      *top_val = (float *) (scratch + l->p_top_val);
    const int32_t *pos = sh->p.pos_idx + sh->p.pos_ptr[r];
    int64_t     npos = sh->p.pos_ptr[r + 1] - sh->p.pos_ptr[r];
    int32_t    *hr = sh->p.hits + (size_t) r * sh->p.nblend;

    MarkPositives(flags, m, pos, npos, 1);
    for (int j = 0; j < sh->p.nblend; j++)
    {
        float       b = sh->p.blends[j];
        ExactBlendArg ea = {sh->p.U + (size_t) r * sh->p.kdim, sh->p.Y, sh->p.kdim, sh->p.pop, b};
        const float *sc = scores;
        int64_t     need;
        int         got = -1;

        if (scores != NULL)
        {
            double      tc = qtol;

            if (b != 0.0f)
            {
                /* the blend adds the rounding of two float additions to the bound */
                for (int64_t i = 0; i < m; i++)
                    blended[i] = scores[i] + b * sh->p.pop[i];
                sc = blended;
                tc += 4.0 * FLT_EPSILON * (xn * (sh->ymax + sh->tmax) + qtol + fabs((double) b) * sh->pmax);
            }
            got = it_topk_exact(sc, m, NULL, 0, sh->p.k, sh->tol, xn, tc, ExactBlend, &ea, cand, cand_score,
                                cap, &need, top_idx, top_val);
        }
        if (got < 0)
        {
            for (int64_t i = 0; i < m; i++)
                blended[i] = ExactBlend(&ea, i);
            got = it_topk(blended, m, NULL, 0, sh->p.k, top_idx, top_val);
        }
        hr[j] = CountHits(top_idx, got, flags);
    }
    MarkPositives(flags, m, pos, npos, 0);
}

/*
 * A part's rows, IT_RANK_Q8_TILE at a time: the rows with a positive
 * scanned together (it_q8_scores_many reads each block of the copy once
 * for all of them), then ranked from their scores while they are in the
 * cache.
 */
static void *
RankQ8Rows(void *arg)
{
    RankQ8RowsPart *p = arg;
    const RankQ8Shared *sh = p->sh;
    const RankQ8Layout *l = p->l;
    int64_t     m = sh->p.m;
    int         kdim = sh->p.kdim;
    size_t      qbytes = it_q8_query_bytes(kdim);
    float      *scores = (float *) (p->scratch + l->p_scores);
    unsigned char *flags = (unsigned char *) (p->scratch + l->p_flags);
    int8_t     *qx = (int8_t *) (p->scratch + l->p_qx);
    float       sx[IT_RANK_Q8_TILE];
    double      xn[IT_RANK_Q8_TILE],
                qtol[IT_RANK_Q8_TILE];
    int64_t     row[IT_RANK_Q8_TILE];

    memset(flags, 0, (size_t) m);
    for (int64_t r0 = p->r0; r0 < p->r1; r0 += IT_RANK_Q8_TILE)
    {
        int64_t     r1 = r0 + IT_RANK_Q8_TILE < p->r1 ? r0 + IT_RANK_Q8_TILE : p->r1;
        int         nt = 0;

        for (int64_t r = r0; r < r1; r++)
        {
            const float *x = sh->p.U + (size_t) r * kdim;
            double      nn = 0.0;

            if (!AnyPositive(sh->p.pos_idx + sh->p.pos_ptr[r], sh->p.pos_ptr[r + 1] - sh->p.pos_ptr[r], m))
            {
                for (int j = 0; j < sh->p.nblend; j++)
                    sh->p.hits[(size_t) r * sh->p.nblend + j] = -1;
                continue;
            }
            for (int j = 0; j < kdim; j++)
                nn += (double) x[j] * x[j];
            nn = sqrt(nn);
            if (!isfinite(nn))
            {
                /* not finite: ranked from its exact scores, as its float ones would be */
                RankQ8Row(sh, l, p->scratch, r, NULL, 0.0, 0.0);
                continue;
            }
            xn[nt] = nn;
            qtol[nt] = it_q8_query(x, kdim, sh->qnorm, qx + qbytes * nt, &sx[nt]);
            row[nt++] = r;
        }
        if (nt == 0)
            continue;
        it_q8_scores_many(sh->Q, sh->scale, 0, m, kdim, nt, qx, sx, scores, (float *) (p->scratch + l->p_bmax));
        for (int u = 0; u < nt; u++)
            RankQ8Row(sh, l, p->scratch, row[u], scores + (size_t) u * m, xn[u], qtol[u]);
    }
    return NULL;
}

int
it_rank_grid_precision_q8(const float *U, int64_t n, int kdim, const float *Y, int64_t m,
                          const float *pop, const float *blends, int nblend,
                          const int64_t *pos_ptr, const int32_t *pos_idx, int k,
                          void *workspace, int nthreads,
                          double *precision, int64_t *users, int32_t *row_hits)
{
    RankQ8Layout l;
    RankQ8Shared sh;
    RankQ8EncodePart eparts[IT_RANK_Q8_MAX_THREADS];
    RankQ8RowsPart rparts[IT_RANK_Q8_MAX_THREADS];
    void       *args[IT_RANK_Q8_MAX_THREADS];
    char       *base;
    int64_t     nblocks = it_q8_padded(m) / IT_Q8_BLOCK;
    int         np,
                ne;

    if (U == NULL || Y == NULL || blends == NULL || pos_ptr == NULL || (pos_idx == NULL && n > 0) ||
        workspace == NULL || precision == NULL || users == NULL ||
        !RankQ8Sizes(m, kdim, n, nblend, k, nthreads, &l))
        return -1;
    for (int j = 0; j < nblend; j++)
        if (blends[j] != 0.0f && pop == NULL)
            return -1;
    base = (char *) AlignUp((uintptr_t) workspace);
    np = RankQ8Parts(n, nthreads);
    sh = (RankQ8Shared) {{U, kdim, Y, m, pop, blends, nblend, pos_ptr, pos_idx, k,
            row_hits != NULL ? row_hits : (int32_t *) (base + l.hits)},
        (const int8_t *) (base + l.q), (const float *) (base + l.scale), (const float *) (base + l.tol),
        0.0f, 0.0, 0.0, 0.0};

    /* the 8-bit copy, whole blocks of items a part */
    ne = (int) (nblocks < np ? nblocks : np);
    for (int t = 0; t < ne; t++)
    {
        int64_t     b0 = nblocks * t / ne,
                    b1 = nblocks * (t + 1) / ne;
        int64_t     lo = b0 * IT_Q8_BLOCK,
                    hi = b1 * IT_Q8_BLOCK < m ? b1 * IT_Q8_BLOCK : m;

        eparts[t] = (RankQ8EncodePart) {&sh, lo, hi, (int8_t *) (base + l.q) + (size_t) lo * it_q8_kpad(kdim),
            (float *) (base + l.scale) + lo, (float *) (base + l.tol) + lo,
            (float *) (base + l.tol_block) + b0};
        args[t] = &eparts[t];
    }
    it_run_parts(RankQ8Encode, args, ne);
    for (int t = 0; t < ne; t++)
    {
        sh.qnorm = eparts[t].qnorm > sh.qnorm ? eparts[t].qnorm : sh.qnorm;
        sh.ymax = eparts[t].ymax > sh.ymax ? eparts[t].ymax : sh.ymax;
        sh.tmax = eparts[t].tmax > sh.tmax ? eparts[t].tmax : sh.tmax;
        sh.pmax = eparts[t].pmax > sh.pmax ? eparts[t].pmax : sh.pmax;
    }

    /* the rows, cut between the threads; each row's hits in its own slots */
    it_scan_pick();
    for (int t = 0; t < np; t++)
    {
        rparts[t] = (RankQ8RowsPart) {&sh, n * t / np, n * (t + 1) / np, base + l.parts + (size_t) t * l.part, &l};
        args[t] = &rparts[t];
    }
    it_run_parts(RankQ8Rows, args, np);

    SumRowHits(sh.p.hits, n, nblend, k, precision, users);
    return 0;
}

/*
 * What each thread ranking a batch uses: the flags of the positives (m
 * bytes, in m floats), the top k values and indexes, a row's block
 * maxima and suffix maxima (it_topk_block_maxima).  m <= INT32_MAX.
 */
static size_t
GridThreadFloats(int64_t m, int k)
{
    return (size_t) m + 2 * (size_t) k + 2 * (size_t) it_topk_bound_blocks(m);
}

size_t
it_fold_in_grid_workspace_floats(int64_t m, int kdim, int ngrid, int k)
{
    size_t      rows,
                scores,
                solve,
                total;

    if (m < 1 || m > INT32_MAX || kdim < 1 || ngrid < 1 || k < 1)
        return 0;
    /* the grid's vectors and scores, the scratch of it_fold_in_grid, the
     * flags of the positives (m bytes, in m floats), the top k values and
     * indexes, the block bounds of a row (GridThreadFloats) */
    if (!MulSize((size_t) ngrid, (size_t) kdim, &rows) ||
        !MulSize((size_t) ngrid, (size_t) m, &scores) ||
        !MulSize((size_t) kdim + 1, 2 * (size_t) kdim, &solve) ||
        !AddSize(rows, scores, &total) ||
        !AddSize(total, solve, &total) ||
        !AddSize(total, GridThreadFloats(m, k), &total))
        return 0;
    return total;
}

int
it_fold_in_grid_hits(const float *Y, int64_t m, int kdim, const float *YtY,
                     float alpha, float positive_threshold, const float *prior,
                     const int32_t *revealed, const float *weights, int nrev,
                     const int32_t *pos, int64_t npos,
                     const float *lambdas, int ngrid, int k,
                     float *workspace, int32_t *hits)
{
    return it_fold_in_grid_hits_blend(Y, m, kdim, YtY, alpha, positive_threshold, prior, NULL,
                                      revealed, weights, nrev, pos, npos, lambdas, ngrid, k,
                                      workspace, hits);
}

int
it_fold_in_grid_hits_blend(const float *Y, int64_t m, int kdim, const float *YtY,
                           float alpha, float positive_threshold, const float *prior,
                           const ItPopBlend *blend,
                           const int32_t *revealed, const float *weights, int nrev,
                           const int32_t *pos, int64_t npos,
                           const float *lambdas, int ngrid, int k,
                           float *workspace, int32_t *hits)
{
    ItGridQuery q;

    q.revealed = revealed;
    q.weights = weights;
    q.nrev = nrev;
    q.pos = pos;
    q.npos = npos;
    q.prior = prior;
    return it_fold_in_grid_hits_batch(Y, m, kdim, YtY, NULL, 1, alpha, positive_threshold, blend, &q, 1,
                                      lambdas, ngrid, k, workspace, hits);
}

size_t
it_fold_in_grid_batch_workspace_floats(int64_t m, int kdim, int ngrid, int k, int nq, int threads)
{
    size_t      one = it_fold_in_grid_workspace_floats(m, kdim, ngrid, k);
    size_t      more;
    size_t      total;

    /*
     * the vectors and scores of the other nq - 1 queries; the flags and the
     * top k of each further thread
     */
    if (one == 0 || nq < 1 || threads < 1 || threads > IT_GRID_MAX_THREADS ||
        !MulSize((size_t) (nq - 1), (size_t) ngrid * ((size_t) kdim + (size_t) m), &more) ||
        !AddSize(one, more, &total) ||
        !MulSize((size_t) (threads - 1), GridThreadFloats(m, k), &more) ||
        !AddSize(total, more, &total))
        return 0;
    return total;
}

/* Whether query q's arguments are valid (revealed sorted, distinct, in range). */
static int
QueryValid(const ItGridQuery *q, int64_t m)
{
    if (q->nrev < 0 || (q->nrev > 0 && (q->revealed == NULL || q->weights == NULL)) ||
        q->npos < 0 || (q->npos > 0 && q->pos == NULL))
        return 0;
    for (int r = 0; r < q->nrev; r++)
        if (q->revealed[r] < 0 || q->revealed[r] >= m ||
            (r > 0 && q->revealed[r] <= q->revealed[r - 1]))
            return 0;
    return 1;
}

/*
 * Flags query q's positives that are left once its revealed items are
 * taken out (flags all clear before); returns how many.
 */
static int64_t
MarkLeft(unsigned char *flags, int64_t m, const ItGridQuery *q)
{
    int64_t     left = MarkPositives(flags, m, q->pos, q->npos, 1);

    for (int r = 0; r < q->nrev; r++)
    {
        left -= flags[q->revealed[r]];
        flags[q->revealed[r]] = 0;
    }
    return left;
}

/* The rankings of queries [q0, q1) of a batch, on one thread. */
typedef struct GridTopPart
{
    const float *S;             /* the batch's scores */
    const ItGridQuery *queries;
    int         q0,
                q1;
    int64_t     m;
    int         ngrid;
    const ItPopBlend *blend;
    int         k;
    unsigned char *flags;       /* m, all clear */
    float      *top_val;        /* k */
    int32_t    *top_idx;        /* k */
    float      *bmax;           /* it_topk_bound_blocks(m) */
    float      *bsuffix;        /* the same */
    int32_t    *hits;           /* the batch's */
} GridTopPart;

static void *
GridTopRun(void *arg)
{
    const GridTopPart *p = arg;
    const ItPopBlend *blend = p->blend;
    int         nb = blend ? blend->nblend : 1;
    int         entries = p->ngrid * nb;

    for (int q = p->q0; q < p->q1; q++)
    {
        const ItGridQuery *x = &p->queries[q];
        int32_t    *hq = p->hits + (size_t) q * entries;

        if (hq[0] == -1)
            continue;
        (void) MarkLeft(p->flags, p->m, x);
        for (int j = 0; j < p->ngrid; j++)
        {
            const float *row = p->S + ((size_t) q * p->ngrid + j) * p->m;

            /* one row's bounds serve all its blends */
            if (blend != NULL && blend->sorted)
                it_topk_block_maxima(row, p->m, p->bmax, p->bsuffix);
            for (int b = 0; b < nb; b++)
            {
                int         ntop;

                if (blend != NULL && blend->sorted)
                    ntop = it_topk_blend_sorted(row, blend->pop, blend->blends[b], p->m, x->revealed, x->nrev,
                                                p->bmax, p->bsuffix, p->k, p->top_idx, p->top_val);
                else if (blend != NULL)
                    ntop = it_topk_blend(row, blend->pop, blend->blends[b], p->m, x->revealed, x->nrev, p->k,
                                         p->top_idx, p->top_val);
                else
                    ntop = it_topk(row, p->m, x->revealed, x->nrev, p->k, p->top_idx, p->top_val);
                hq[j * nb + b] = CountHits(p->top_idx, ntop, p->flags);
            }
        }
        MarkPositives(p->flags, p->m, x->pos, x->npos, 0);
    }
    return NULL;
}

int
it_fold_in_grid_hits_batch(const float *Y, int64_t m, int kdim, const float *YtY,
                           const ItGramBasis *basis, int threads, float alpha, float positive_threshold, const ItPopBlend *blend,
                           const ItGridQuery *queries, int nq,
                           const float *lambdas, int ngrid, int k,
                           float *workspace, int32_t *hits)
{
    float      *V,
               *S,
               *scratch,
               *top_val;
    int32_t    *top_idx;
    unsigned char *flags;
    int         nb = blend ? blend->nblend : 1;
    int         entries = ngrid * nb;
    int         j;

    if (Y == NULL || YtY == NULL || m < 1 || m > INT32_MAX || kdim < 1 ||
        threads < 1 || threads > IT_GRID_MAX_THREADS ||
        queries == NULL || nq < 1 || lambdas == NULL || ngrid < 1 ||
        k < 1 || workspace == NULL || hits == NULL ||
        (size_t) nq * (size_t) ngrid > (size_t) INT32_MAX)
        return -1;
    if (blend != NULL)
    {
        if (blend->pop == NULL || blend->blends == NULL || blend->nblend < 1)
            return -1;
        if (blend->sorted)
            for (int64_t i = 1; i < m; i++)
                if (!(blend->pop[i] <= blend->pop[i - 1]))
                    return -1;
        for (int b = 0; b < blend->nblend; b++)
            if (!(blend->blends[b] >= 0.0f && isfinite(blend->blends[b])))
                return -1;
    }
    for (j = 0; j < ngrid; j++)
        if (!(lambdas[j] > 0.0f))
            return -1;
    for (int q = 0; q < nq; q++)
        if (!QueryValid(&queries[q], m))
            return -1;

    /* the layout of it_fold_in_grid_workspace_floats, with nq queries' vectors and scores */
    V = workspace;
    S = V + (size_t) nq * ngrid * kdim;
    scratch = S + (size_t) nq * ngrid * m;
    flags = (unsigned char *) (scratch + 2 * ((size_t) kdim * kdim + kdim));
    top_val = scratch + 2 * ((size_t) kdim * kdim + kdim) + m;
    top_idx = (int32_t *) (top_val + k);
    memset(flags, 0, (size_t) m);

    /* each query's grid of fold-ins; a query with no positive left gets -1 and zero vectors */
    for (int q = 0; q < nq; q++)
    {
        const ItGridQuery *x = &queries[q];
        float      *Vq = V + (size_t) q * ngrid * kdim;
        int64_t     left = MarkLeft(flags, m, x);

        MarkPositives(flags, m, x->pos, x->npos, 0);
        if (left <= 0)
        {
            for (j = 0; j < entries; j++)
                hits[(size_t) q * entries + j] = -1;
            memset(Vq, 0, sizeof(float) * (size_t) ngrid * kdim);
            continue;
        }
        /* ranked below; not -1, whatever the buffer held before */
        hits[(size_t) q * entries] = 0;
        if (basis != NULL && basis->k == kdim && x->nrev <= basis->maxrank && ngrid <= basis->maxgrid)
        {
            if (it_fold_in_grid_basis(Y, basis, x->revealed, x->weights, x->nrev, alpha, positive_threshold,
                                      lambdas, ngrid, x->prior, Vq) != 0)
                return 1;
        }
        else if (it_fold_in_grid(Y, kdim, YtY, x->revealed, x->weights, x->nrev, alpha, positive_threshold,
                                 lambdas, ngrid, x->prior, Vq, scratch) != 0)
            return 1;
    }

    /* the scores of every grid, one product */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq * ngrid, (int) m, kdim,
                1.0f, V, kdim, Y, kdim, 0.0f, S, (int) m);

    /* the rankings, the queries split between the threads */
    {
        GridTopPart parts[IT_GRID_MAX_THREADS];
        void       *args[IT_GRID_MAX_THREADS];
        int         nparts = threads < nq ? threads : nq;
        float      *bounds = top_val + 2 * (size_t) k;    /* the first thread's */
        size_t      nblk = (size_t) it_topk_bound_blocks(m);
        float      *more = bounds + 2 * nblk;

        for (int t = 0; t < nparts; t++)
        {
            GridTopPart *p = &parts[t];

            p->S = S;
            p->queries = queries;
            p->q0 = (int) ((int64_t) nq * t / nparts);
            p->q1 = (int) ((int64_t) nq * (t + 1) / nparts);
            p->m = m;
            p->ngrid = ngrid;
            p->blend = blend;
            p->k = k;
            p->hits = hits;
            if (t == 0)
            {
                p->flags = flags;
                p->top_val = top_val;
                p->top_idx = top_idx;
                p->bmax = bounds;
            }
            else
            {
                /* thread t's m flags (in m floats), top k and bounds, after the first's */
                p->flags = (unsigned char *) more;
                p->top_val = more + m;
                p->top_idx = (int32_t *) (p->top_val + k);
                p->bmax = p->top_val + 2 * (size_t) k;
                memset(p->flags, 0, (size_t) m);
                more += GridThreadFloats(m, k);
            }
            p->bsuffix = p->bmax + nblk;
            args[t] = p;
        }
        it_run_parts(GridTopRun, args, nparts);
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Paired comparisons
 * ------------------------------------------------------------------------ */

/* The mean of n differences from their sums, and its standard errors. */
static void
MeanAndZ(double sum, double sum2, int64_t n, double *mean, double *z)
{
    double      var;

    *mean = n > 0 ? sum / n : 0.0;
    var = n > 1 ? (sum2 - sum * sum / n) / (n - 1) : 0.0;
    if (var > 0.0)
        *z = *mean / sqrt(var / n);
    else
        *z = *mean > 0 ? INFINITY : (*mean < 0 ? -INFINITY : 0.0);
}

void
it_paired_hits_difference(const int32_t *a, int astride, int aj,
                          const int32_t *b, int bstride, int bj,
                          int64_t n, int k, double *mean, double *z)
{
    double      sum = 0.0;
    double      sum2 = 0.0;
    int64_t     cnt = 0;

    for (int64_t r = 0; r < n; r++)
    {
        int32_t     ha = a[r * astride + aj];
        int32_t     hb = b[r * bstride + bj];
        double      d;

        if (ha < 0 || hb < 0)
            continue;
        d = (double) (ha - hb) / k;
        sum += d;
        sum2 += d * d;
        cnt++;
    }
    if (cnt == 0)
    {
        *mean = 0.0;
        *z = 0.0;
        return;
    }
    MeanAndZ(sum, sum2, cnt, mean, z);
}

void
it_mean_difference(const double *a, const double *b, int64_t n, double *mean, double *z)
{
    double      sum = 0.0;
    double      sum2 = 0.0;

    for (int64_t i = 0; i < n; i++)
    {
        double      d = a[i] - b[i];

        sum += d;
        sum2 += d * d;
    }
    MeanAndZ(sum, sum2, n, mean, z);
}

/*
 * mlp.c
 *    Features -> interest: forward pass, backpropagation, minibatch AdamW
 *    training against the model's vectors and/or the interactions, and the
 *    best constant vector.  See mlp.h.
 *
 * Plain C, no PostgreSQL headers, no allocation: every buffer comes from
 * the caller.  Matrix products are cblas_sgemm / cblas_sgemv (serial
 * OpenBLAS); the sparse parts (one dot product per positive) are loops.
 * Top-k selection is it_topk (topk.c).
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>

#include "clones.h"
#include "kernels.h"
#include "mlp.h"

#define ALIGN_BYTES 64

/* ------------------------------------------------------------------------
 * Random numbers (splitmix64): reproducible on every platform
 * ------------------------------------------------------------------------ */

static uint64_t
NextRandom(uint64_t *state)
{
    uint64_t    z;

    *state += UINT64_C(0x9E3779B97F4A7C15);
    z = *state;
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double
UniformOpen(uint64_t *state)
{
    return ((double) (NextRandom(state) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

/* Uniform integer in [0, n), n >= 1 (rejection, no modulo bias). */
static uint64_t
UniformBelow(uint64_t *state, uint64_t n)
{
    uint64_t    limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t    r;

    do
        r = NextRandom(state);
    while (r >= limit);
    return r % n;
}

static double
Gaussian(uint64_t *state)
{
    double      u1 = UniformOpen(state);
    double      u2 = UniformOpen(state);

    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ------------------------------------------------------------------------
 * Layout and sizes
 * ------------------------------------------------------------------------ */

int
it_mlp_check_layout(const ItMlpLayout *layout)
{
    int         l;

    if (layout == NULL)
        return IT_MLP_EINVAL;
    if (layout->input < 1 || layout->input > IT_MLP_MAX_UNITS)
        return IT_MLP_EINVAL;
    if (layout->output < 1 || layout->output > IT_MLP_MAX_UNITS)
        return IT_MLP_EINVAL;
    if (layout->nhidden < 0 || layout->nhidden > IT_MLP_MAX_HIDDEN)
        return IT_MLP_EINVAL;
    for (l = 0; l < layout->nhidden; l++)
        if (layout->hidden[l] < 1 || layout->hidden[l] > IT_MLP_MAX_UNITS)
            return IT_MLP_EINVAL;
    return IT_MLP_OK;
}

/* Inputs and outputs of layer l (0 .. nhidden). */
static int
LayerIn(const ItMlpLayout *layout, int l)
{
    return l == 0 ? layout->input : layout->hidden[l - 1];
}

static int
LayerOut(const ItMlpLayout *layout, int l)
{
    return l == layout->nhidden ? layout->output : layout->hidden[l];
}

/* Widest hidden layer (0 when there is none). */
static int
MaxHidden(const ItMlpLayout *layout)
{
    int         l,
                w = 0;

    for (l = 0; l < layout->nhidden; l++)
        if (layout->hidden[l] > w)
            w = layout->hidden[l];
    return w;
}

static int
SumHidden(const ItMlpLayout *layout)
{
    int         l,
                s = 0;

    for (l = 0; l < layout->nhidden; l++)
        s += layout->hidden[l];
    return s;
}

/* Overflow-checked size arithmetic: *ok becomes 0 on overflow. */
static size_t
SizeMul(size_t a, size_t b, int *ok)
{
    if (a != 0 && b > SIZE_MAX / a)
    {
        *ok = 0;
        return 0;
    }
    return a * b;
}

static size_t
SizeAdd(size_t a, size_t b, int *ok)
{
    if (b > SIZE_MAX - a)
    {
        *ok = 0;
        return 0;
    }
    return a + b;
}

size_t
it_mlp_param_count(const ItMlpLayout *layout)
{
    size_t      total = 0;
    int         ok = 1;
    int         l;

    if (it_mlp_check_layout(layout) != IT_MLP_OK)
        return 0;
    for (l = 0; l <= layout->nhidden; l++)
    {
        size_t      nin = (size_t) LayerIn(layout, l);
        size_t      nout = (size_t) LayerOut(layout, l);

        total = SizeAdd(total, SizeMul(nout, nin + 1, &ok), &ok);
    }
    return ok ? total : 0;
}

/* Offsets of W_l and b_l in the parameter vector. */
static void
LayerParams(const ItMlpLayout *layout, int l, size_t *w_off, size_t *b_off)
{
    size_t      off = 0;
    int         j;

    for (j = 0; j < l; j++)
        off += (size_t) LayerOut(layout, j) * (size_t) (LayerIn(layout, j) + 1);
    *w_off = off;
    *b_off = off + (size_t) LayerOut(layout, l) * (size_t) LayerIn(layout, l);
}

void
it_mlp_init(float *params, const ItMlpLayout *layout, uint64_t seed)
{
    uint64_t    state = seed ^ UINT64_C(0x6A09E667F3BCC908);
    int         l;

    if (it_mlp_check_layout(layout) != IT_MLP_OK || params == NULL)
        return;
    for (l = 0; l <= layout->nhidden; l++)
    {
        int         nin = LayerIn(layout, l);
        int         nout = LayerOut(layout, l);
        double      sd = sqrt((l < layout->nhidden ? 2.0 : 1.0) / (double) nin);
        size_t      w_off,
                    b_off,
                    i;

        LayerParams(layout, l, &w_off, &b_off);
        for (i = 0; i < (size_t) nout * (size_t) nin; i++)
            params[w_off + i] = (float) (sd * Gaussian(&state));
        for (i = 0; i < (size_t) nout; i++)
            params[b_off + i] = 0.0f;
    }
}

/* ------------------------------------------------------------------------
 * Forward and backward passes over a block of rows
 * ------------------------------------------------------------------------ */

/*
 * Forward pass of nb rows of x (row stride layout->input).  acts receives
 * the hidden activations, layer after layer (nb * hidden[l] floats each);
 * out receives nb * k floats.
 */
static void
ForwardBlock(const float *params, const ItMlpLayout *layout,
             const float *x, int nb, float *acts, float *out)
{
    const float *in = x;
    float      *act = acts;
    int         l;

    for (l = 0; l <= layout->nhidden; l++)
    {
        int         nin = LayerIn(layout, l);
        int         nout = LayerOut(layout, l);
        float      *dst = (l == layout->nhidden) ? out : act;
        size_t      w_off,
                    b_off;
        int         r;

        LayerParams(layout, l, &w_off, &b_off);
        for (r = 0; r < nb; r++)
            memcpy(dst + (size_t) r * nout, params + b_off, sizeof(float) * nout);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, nout, nin,
                    1.0f, in, nin, params + w_off, nin, 1.0f, dst, nout);
        if (l < layout->nhidden)
        {
            size_t      cnt = (size_t) nb * nout;
            size_t      i;

            /* a select, not a conditional store, so that it vectorises */
            for (i = 0; i < cnt; i++)
                dst[i] = dst[i] > 0.0f ? dst[i] : 0.0f;
            in = dst;
            act += cnt;
        }
    }
}

/*
 * Backward pass: given dout = dObjective/dout (nb * k), adds the gradient
 * with respect to every parameter to grad.  dout is overwritten; delta
 * must hold 2 * nb * MaxHidden floats.
 */
static void
BackwardBlock(const float *params, const ItMlpLayout *layout,
              const float *x, int nb, const float *acts, float *dout,
              float *grad, float *delta)
{
    const float *hidden_act[IT_MLP_MAX_HIDDEN];
    size_t      maxh = (size_t) MaxHidden(layout);
    float      *dz = dout;
    const float *a = acts;
    int         l;

    for (l = 0; l < layout->nhidden; l++)
    {
        hidden_act[l] = a;
        a += (size_t) nb * layout->hidden[l];
    }

    for (l = layout->nhidden; l >= 0; l--)
    {
        int         nin = LayerIn(layout, l);
        int         nout = LayerOut(layout, l);
        const float *in = (l == 0) ? x : hidden_act[l - 1];
        size_t      w_off,
                    b_off;
        int         r,
                    j;

        LayerParams(layout, l, &w_off, &b_off);
        /* dW += dz' in ; db += column sums of dz */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, nout, nin, nb,
                    1.0f, dz, nout, in, nin, 1.0f, grad + w_off, nin);
        for (r = 0; r < nb; r++)
        {
            const float *row = dz + (size_t) r * nout;

            for (j = 0; j < nout; j++)
                grad[b_off + j] += row[j];
        }
        if (l > 0)
        {
            float      *next = delta + ((l & 1) ? 0 : (size_t) nb * maxh);
            size_t      cnt = (size_t) nb * nin;
            size_t      i;

            /* dA = dz W ; dZ of the layer below = dA where its ReLU was active */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, nin, nout,
                        1.0f, dz, nout, params + w_off, nin, 0.0f, next, nin);
            for (i = 0; i < cnt; i++)
                next[i] = in[i] > 0.0f ? next[i] : 0.0f;
            dz = next;
        }
    }
}

size_t
it_mlp_workspace_floats(const ItMlpLayout *layout, int64_t n)
{
    size_t      rows;
    int         ok = 1;
    size_t      total;

    if (it_mlp_check_layout(layout) != IT_MLP_OK || n < 0)
        return 0;
    rows = (size_t) (n < IT_MLP_CHUNK ? n : IT_MLP_CHUNK);
    total = SizeMul(rows, (size_t) SumHidden(layout), &ok);
    return ok ? total : 0;
}

void
it_mlp_forward(const float *params, const ItMlpLayout *layout,
               const float *X, int64_t n, float *out, float *workspace)
{
    int64_t     r0;
    size_t      d,
                k;

    if (it_mlp_check_layout(layout) != IT_MLP_OK || n <= 0)
        return;
    d = (size_t) layout->input;
    k = (size_t) layout->output;
    for (r0 = 0; r0 < n; r0 += IT_MLP_CHUNK)
    {
        int         nb = (int) (n - r0 < IT_MLP_CHUNK ? n - r0 : IT_MLP_CHUNK);

        ForwardBlock(params, layout, X + (size_t) r0 * d, nb, workspace,
                     out + (size_t) r0 * k);
    }
}

/* ------------------------------------------------------------------------
 * Training workspace
 * ------------------------------------------------------------------------ */

typedef struct MlpWork
{
    float      *grad;           /* P */
    float      *adam_m;         /* P */
    float      *adam_v;         /* P */
    float      *best;           /* P */
    float      *xb;             /* B * d, gathered inputs */
    float      *acts;           /* B * sum(hidden) */
    float      *out;            /* B * k */
    float      *dout;           /* B * k */
    float      *delta;          /* 2 * B * maxhidden */
    float      *gx;             /* B * k, out YtY */
    float      *scores;         /* B * m (when m > 0) */
    float      *top_val;        /* eval_k */
    int32_t    *top_idx;        /* eval_k */
    int32_t    *order;          /* n: validation rows, then training rows */
    unsigned char *flags;       /* n */
    float      *sys;            /* k * k + k: normal equations of the output bias */
    float      *item_acc;       /* 2 * m: per-item sums for them */
    double     *lrow;           /* B: each row's interaction loss */
} MlpWork;

/*
 * Carves the workspace (base may be NULL to only compute the size).
 * Returns the number of bytes needed, 0 on overflow.
 */
static size_t
CarveWork(const ItMlpLayout *layout, int batch, int eval_k, int64_t n,
          int64_t m, void *base, MlpWork *w)
{
    size_t      P = it_mlp_param_count(layout);
    size_t      B = (size_t) batch;
    size_t      k = (size_t) layout->output;
    size_t      sizes[18];
    size_t      offs[18];
    size_t      off;
    int         ok = 1;
    int         i;

    if (P == 0 || n < 0 || m < 0 || batch < 1 || eval_k < 0)
        return 0;
    sizes[0] = SizeMul(P, sizeof(float), &ok);
    sizes[1] = sizes[0];
    sizes[2] = sizes[0];
    sizes[3] = sizes[0];
    sizes[4] = SizeMul(SizeMul(B, (size_t) layout->input, &ok), sizeof(float), &ok);
    sizes[5] = SizeMul(SizeMul(B, (size_t) SumHidden(layout), &ok), sizeof(float), &ok);
    sizes[6] = SizeMul(SizeMul(B, k, &ok), sizeof(float), &ok);
    sizes[7] = sizes[6];
    sizes[8] = SizeMul(SizeMul(2 * B, (size_t) MaxHidden(layout), &ok), sizeof(float), &ok);
    sizes[9] = sizes[6];
    sizes[10] = SizeMul(SizeMul(B, (size_t) m, &ok), sizeof(float), &ok);
    sizes[11] = SizeMul((size_t) eval_k, sizeof(float), &ok);
    sizes[12] = SizeMul((size_t) eval_k, sizeof(int32_t), &ok);
    sizes[13] = SizeMul((size_t) n, sizeof(int32_t), &ok);
    sizes[14] = (size_t) n;
    sizes[15] = SizeMul(SizeAdd(SizeMul(k, k, &ok), k, &ok), sizeof(float), &ok);
    sizes[16] = SizeMul(SizeMul(2, (size_t) m, &ok), sizeof(float), &ok);
    sizes[17] = SizeMul(B, sizeof(double), &ok);

    /* offsets, each slot aligned; room to align the base pointer itself */
    off = 0;
    for (i = 0; i < 18; i++)
    {
        offs[i] = off;
        off = SizeAdd(off, sizes[i], &ok);
        off = SizeAdd(off, ALIGN_BYTES - 1, &ok) & ~(size_t) (ALIGN_BYTES - 1);
        if (!ok)
            return 0;
    }
    off = SizeAdd(off, ALIGN_BYTES, &ok);
    if (!ok)
        return 0;
    if (base != NULL)
    {
        uintptr_t   b = (uintptr_t) base;
        char       *a = (char *) base +
            (((b + ALIGN_BYTES - 1) & ~(uintptr_t) (ALIGN_BYTES - 1)) - b);

        w->grad = (float *) (a + offs[0]);
        w->adam_m = (float *) (a + offs[1]);
        w->adam_v = (float *) (a + offs[2]);
        w->best = (float *) (a + offs[3]);
        w->xb = (float *) (a + offs[4]);
        w->acts = (float *) (a + offs[5]);
        w->out = (float *) (a + offs[6]);
        w->dout = (float *) (a + offs[7]);
        w->delta = (float *) (a + offs[8]);
        w->gx = (float *) (a + offs[9]);
        w->scores = (float *) (a + offs[10]);
        w->top_val = (float *) (a + offs[11]);
        w->top_idx = (int32_t *) (a + offs[12]);
        w->order = (int32_t *) (a + offs[13]);
        w->flags = (unsigned char *) (a + offs[14]);
        w->sys = (float *) (a + offs[15]);
        w->item_acc = (float *) (a + offs[16]);
        w->lrow = (double *) (a + offs[17]);
    }
    return off;
}

size_t
it_mlp_train_workspace_size(const ItMlpLayout *layout,
                            const ItMlpTrainParams *p, int64_t n, int64_t m)
{
    if (p == NULL || it_mlp_check_layout(layout) != IT_MLP_OK)
        return 0;
    if (n < 0 || n > INT32_MAX || m < 0 || m > INT32_MAX)
        return 0;
    return CarveWork(layout, p->batch, p->eval_k > 0 ? p->eval_k : 0, n, m,
                     NULL, NULL);
}

/* ------------------------------------------------------------------------
 * The objective
 * ------------------------------------------------------------------------ */

struct MlpPool;

typedef struct MlpCtx
{
    const ItMlpLayout *layout;
    const ItMlpData *data;
    const ItMlpTrainParams *p;
    MlpWork    *w;
    struct MlpPool *pool;       /* worker threads, or NULL */
    double      zvec;           /* loss of the zero predictor, vector part */
    double      zint;           /* ... interaction part */
    int         use_vec;
    int         use_int;
} MlpCtx;

static int
DataRow(const ItMlpData *data, int32_t r)
{
    return data->row_map ? data->row_map[r] : r;
}

/* Weight of CSR entry e (1 without weights). */
static inline float
EntryWeight(const ItMlpData *data, int64_t e)
{
    return data->weights ? data->weights[e] : 1.0f;
}

/* Sum over a row's positives of c_i = 1 + alpha w_i. */
static double
RowConfidence(const ItMlpData *data, int32_t row, const ItMlpTrainParams *p)
{
    int64_t     e;
    double      s = 0.0;

    for (e = data->indptr[row]; e < data->indptr[row + 1]; e++)
    {
        float       w = EntryWeight(data, e);

        if (w >= p->pos_min_weight)
            s += 1.0 + (double) p->alpha * w;
    }
    return s;
}

static void
ComputeNorms(MlpCtx *ctx, const int32_t *rows, int64_t nrows)
{
    const ItMlpData *data = ctx->data;
    const ItMlpTrainParams *p = ctx->p;
    int         k = ctx->layout->output;
    double      sv = 0.0,
                si = 0.0;
    int64_t     i;

    for (i = 0; i < nrows; i++)
    {
        int32_t     r = rows ? rows[i] : (int32_t) i;
        int32_t     row = DataRow(data, r);

        if (ctx->use_vec)
        {
            const float *t = data->targets + (size_t) row * k;
            int         j;

            for (j = 0; j < k; j++)
                sv += (double) t[j] * t[j];
        }
        if (ctx->use_int && !p->user_normalise)
            si += RowConfidence(data, row, p);
    }
    ctx->zvec = (nrows > 0 && sv > 0.0) ? sv / nrows : 1.0;
    if (p->user_normalise)
        ctx->zint = 1.0;
    else
        ctx->zint = (nrows > 0 && si > 0.0) ? si / nrows : 1.0;
}

/*
 * The per-positive loops of the interaction loss: k-long float loops over
 * IT_MLP_LANES independent partial sums, which the compiler turns into
 * vector instructions at -O2 (one item vector is read from memory, the
 * row's output stays in cache).  The order of the additions is fixed, so
 * results do not depend on the data's alignment.
 */
#define IT_MLP_LANES 16

static inline float
DotLanes(const float *restrict x, const float *restrict y, int k)
{
    float       acc[IT_MLP_LANES];
    const float *end = x + k;
    float       s;
    size_t      q;

    for (q = 0; q < IT_MLP_LANES; q++)
        acc[q] = 0.0f;
    for (; end - x >= IT_MLP_LANES; x += IT_MLP_LANES, y += IT_MLP_LANES)
        for (q = 0; q < IT_MLP_LANES; q++)
            acc[q] += x[q] * y[q];
    for (q = 0; q < IT_MLP_LANES / 2; q++)
        acc[q] += acc[q + IT_MLP_LANES / 2];
    for (q = 0; q < IT_MLP_LANES / 4; q++)
        acc[q] += acc[q + IT_MLP_LANES / 4];
    s = (acc[0] + acc[2]) + (acc[1] + acc[3]);
    for (; x < end; x++, y++)
        s += *x * *y;
    return s;
}

/* g += a y */
static inline void
AxpyLanes(float a, const float *restrict y, float *restrict g, int k)
{
    float      *end = g + k;
    size_t      q;

    for (; end - g >= IT_MLP_LANES; g += IT_MLP_LANES, y += IT_MLP_LANES)
        for (q = 0; q < IT_MLP_LANES; q++)
            g[q] += a * y[q];
    for (; g < end; g++, y++)
        *g += a * *y;
}

/* Positives ahead of the current one whose item vector is prefetched. */
#define IT_MLP_PREFETCH 6

/* Prefetches the item vectors of the first IT_MLP_PREFETCH entries of row. */
static inline void
PrefetchRowStart(const ItMlpData *data, int32_t row, int k)
{
    int64_t     start = data->indptr[row];
    int64_t     end = data->indptr[row + 1];
    int64_t     e;
    int         line;

    for (e = start; e < end && e < start + IT_MLP_PREFETCH; e++)
        for (line = 0; line < k; line += 16)
            __builtin_prefetch(data->Y + (size_t) data->indices[e] * k + line);
}

/*
 * Before row rows[b] of [b0, b1): the rows come in a shuffled order, so
 * each one's entry in row_map, its CSR offsets, its entries and its first
 * item vectors are all cache misses, each needing the one before.  They
 * are fetched in a pipeline: row_map 4 rows ahead, the offsets 3 ahead,
 * the entries 2 ahead, the item vectors of the next row.
 */
static inline void
PrefetchRowsAhead(const ItMlpData *data, const int32_t *rows, int b, int b1, int k)
{
    if (b + 4 < b1 && data->row_map)
        __builtin_prefetch(data->row_map + rows[b + 4]);
    if (b + 3 < b1)
        __builtin_prefetch(data->indptr + DataRow(data, rows[b + 3]));
    if (b + 2 < b1)
    {
        int64_t     e = data->indptr[DataRow(data, rows[b + 2])];

        __builtin_prefetch(data->indices + e);
        if (data->weights)
            __builtin_prefetch(data->weights + e);
    }
    if (b + 1 < b1)
        PrefetchRowStart(data, DataRow(data, rows[b + 1]), k);
}

/*
 * The positives' part of the interaction loss of one row with output x:
 * the sum over its positives of c (1 - s)^2 - s^2, s = x.y_i, and when g
 * is not NULL, gscale times its gradient added to g.  The item vectors
 * are read in the order of the row's entries, scattered over Y (for the
 * item side, the users' vectors: larger than the caches), so those of
 * the positives a few entries ahead are prefetched while the current one
 * is computed (the first ones were, by InteractionRows).  Compiled for the machine's vector units (clones.h); the
 * order of the additions is the same in every clone.
 */
IT_CLONES static double
RowPositives(const ItMlpData *data, int32_t row, const ItMlpTrainParams *p,
             const float *x, float *g, double gscale, int k)
{
    int64_t     start = data->indptr[row];
    int64_t     end = data->indptr[row + 1];
    double      l = 0.0;
    int64_t     e;
    int         line;

    for (e = start; e < end; e++)
    {
        const float *y = data->Y + (size_t) data->indices[e] * k;
        float       wt = EntryWeight(data, e);
        double      c = 1.0 + (double) p->alpha * wt;
        double      s;

        if (e + IT_MLP_PREFETCH < end)
            for (line = 0; line < k; line += 16)
                __builtin_prefetch(data->Y + (size_t) data->indices[e + IT_MLP_PREFETCH] * k + line);
        if (!(wt >= p->pos_min_weight))
            continue;           /* seen, not liked: like an unseen item */
        s = DotLanes(x, y, k);
        l += c * (1.0 - s) * (1.0 - s) - s * s;
        if (g)
            AxpyLanes((float) (gscale * (-2.0 * c * (1.0 - s) - 2.0 * s)), y, g, k);
    }
    return l;
}

/*
 * The interaction loss of rows rows[b0..b1) of a block, whose outputs are
 * in w->out and out YtY in w->gx, times f (per row over its sum of c with
 * user_normalise), into w->lrow[b]; when dout is not NULL, scale times its
 * gradient added to dout's rows.  Touches only those rows: the worker
 * threads run it on disjoint ranges (and call nothing else).
 */
IT_CLONES static void
InteractionRows(const MlpCtx *ctx, const int32_t *rows, int b0, int b1, double f,
                double scale, float *dout)
{
    const ItMlpData *data = ctx->data;
    const ItMlpTrainParams *p = ctx->p;
    MlpWork    *w = ctx->w;
    int         k = ctx->layout->output;
    int         b;

    for (b = b0; b < b1; b++)
    {
        const float *x = w->out + (size_t) b * k;
        const float *gx = w->gx + (size_t) b * k;
        float      *g = dout ? dout + (size_t) b * k : NULL;
        int32_t     row = DataRow(data, rows[b]);
        double      fu = f;
        double      l = 0.0;

        if (b == b0)
            PrefetchRowStart(data, row, k);     /* no row before fetched it */
        PrefetchRowsAhead(data, rows, b, b1, k);
        if (p->user_normalise)
        {
            double      cs = RowConfidence(data, row, p);

            if (cs > 0.0)
                fu = f / cs;
        }
        /* x'YtY x and its gradient, in the vectorised loops of the positives */
        l = DotLanes(x, gx, k);
        if (g)
            AxpyLanes((float) (scale * fu * 2.0), gx, g, k);
        l += RowPositives(data, row, p, x, g, scale * fu, k);
        w->lrow[b] = fu * l;
    }
}

/*
 * Worker threads for the interaction loss of a block (threads > 1): the
 * rows of a block are cut into ranges of about equal positives, the
 * calling thread takes the first, each worker one of the others; each
 * row's loss goes to its own slot and the calling thread sums them in
 * order, so the result does not depend on the threads.  They are started
 * and joined by it_mlp_train and call no BLAS and nothing outside this
 * file and libc.  A block of users takes some ten microseconds, about
 * what waking a thread from a condition variable costs on a virtual
 * machine: so between blocks a worker spins (IT_MLP_POOL_SPINS pauses,
 * a few hundred microseconds, longer than the calling thread's products
 * between two blocks) and only then sleeps on the condition variable, and
 * the calling thread waits for the workers spinning.  Blocks with fewer than
 * IT_MLP_POOL_MIN_POSITIVES positives stay on the calling thread.
 */
#define IT_MLP_POOL_MIN_POSITIVES 256
#define IT_MLP_POOL_SPINS       (1 << 14)

typedef struct MlpPart
{
    const MlpCtx *ctx;
    const int32_t *rows;
    int         from;
    int         to;
    double      f;
    double      scale;
    float      *dout;
} MlpPart;

typedef struct MlpPool
{
    ItTeam      team;
    MlpPart     parts[IT_TEAM_MAX];
    void       *args[IT_TEAM_MAX];
} MlpPool;

static void *
PoolPart(void *arg)
{
    const MlpPart *part = arg;

    InteractionRows(part->ctx, part->rows, part->from, part->to, part->f, part->scale, part->dout);
    return NULL;
}

/* Starts the workers; false (and nothing running) when none would start. */
static bool
PoolStart(MlpPool *pool, int threads)
{
    return it_team_start(&pool->team, threads, IT_MLP_POOL_SPINS);
}

static void
PoolStop(MlpPool *pool)
{
    it_team_stop(&pool->team);
}

/*
 * Runs InteractionRows on rows[0..nb) with the workers; false, having done
 * nothing, when the block has too few positives to share.
 */
static bool
PoolRun(MlpPool *pool, const MlpCtx *ctx, const int32_t *rows, int nb, double f,
        double scale, float *dout)
{
    const ItMlpData *data = ctx->data;
    int64_t     total = 0,
                acc = 0;
    int         nthreads = pool->team.nthreads;
    int         cut[IT_TEAM_MAX + 1];
    int         b,
                t = 1;

    for (b = 0; b < nb; b++)
    {
        int32_t     row = DataRow(data, rows[b]);

        total += data->indptr[row + 1] - data->indptr[row] + 1;
    }
    if (total < IT_MLP_POOL_MIN_POSITIVES)
        return false;
    /* cut where the positives (plus one a row) reach t / nthreads of them */
    cut[0] = 0;
    for (b = 0; b < nb && t < nthreads; b++)
    {
        int32_t     row = DataRow(data, rows[b]);

        acc += data->indptr[row + 1] - data->indptr[row] + 1;
        while (t < nthreads && acc * nthreads >= total * t)
            cut[t++] = b + 1;
    }
    while (t <= nthreads)
        cut[t++] = nb;

    for (t = 0; t < nthreads; t++)
    {
        pool->parts[t] = (MlpPart) {ctx, rows, cut[t], cut[t + 1], f, scale, dout};
        pool->args[t] = &pool->parts[t];
    }
    it_team_run(&pool->team, PoolPart, pool->args, nthreads);
    return true;
}

/*
 * Objective of nb rows rows[0..nb) whose outputs are in w->out; returns the
 * sum of their objectives, and when dout is not NULL writes
 * scale * dObjective/dout there.
 */
static double
BlockLoss(MlpCtx *ctx, const int32_t *rows, int nb, double scale, float *dout)
{
    const ItMlpData *data = ctx->data;
    const ItMlpTrainParams *p = ctx->p;
    MlpWork    *w = ctx->w;
    int         k = ctx->layout->output;
    double      vw = p->vector_weight;
    double      total = 0.0;
    int         b,
                j;

    if (dout)
        memset(dout, 0, sizeof(float) * (size_t) nb * k);

    if (ctx->use_vec)
    {
        double      f = vw / ctx->zvec;

        for (b = 0; b < nb; b++)
        {
            const float *x = w->out + (size_t) b * k;
            const float *t = data->targets + (size_t) DataRow(data, rows[b]) * k;
            double      s = 0.0;

            for (j = 0; j < k; j++)
            {
                double      diff = (double) x[j] - t[j];

                s += diff * diff;
                if (dout)
                    dout[(size_t) b * k + j] += (float) (scale * f * 2.0 * diff);
            }
            total += f * s;
        }
    }

    if (ctx->use_int)
    {
        double      f = (1.0 - vw) / ctx->zint;

        /* gx = out YtY (YtY symmetric) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nb, k, k,
                    1.0f, w->out, k, data->YtY, k, 0.0f, w->gx, k);
        if (ctx->pool == NULL || !PoolRun(ctx->pool, ctx, rows, nb, f, scale, dout))
            InteractionRows(ctx, rows, 0, nb, f, scale, dout);
        for (b = 0; b < nb; b++)
            total += w->lrow[b];
    }
    return total;
}

/* Copies the inputs of rows[0..nb) into w->xb. */
static void
GatherRows(const MlpCtx *ctx, const int32_t *rows, int nb)
{
    size_t      d = (size_t) ctx->layout->input;
    int         b;

    for (b = 0; b < nb; b++)
    {
        /* shuffled rows: fetch a few ahead (a row of inputs is short) */
        if (b + 4 < nb)
            __builtin_prefetch(ctx->data->X + (size_t) rows[b + 4] * d);
        memcpy(ctx->w->xb + (size_t) b * d, ctx->data->X + (size_t) rows[b] * d,
               sizeof(float) * d);
    }
}

/*
 * Mean objective over rows[0..nrows), processed in blocks of the batch
 * size; with grad, also its gradient (grad is overwritten).
 */
static double
Objective(MlpCtx *ctx, const float *params, const int32_t *rows,
          int64_t nrows, float *grad)
{
    const ItMlpLayout *layout = ctx->layout;
    MlpWork    *w = ctx->w;
    int         batch = ctx->p->batch;
    double      total = 0.0;
    double      scale;
    int64_t     r0;

    if (grad)
        memset(grad, 0, sizeof(float) * it_mlp_param_count(layout));
    if (nrows <= 0)
        return 0.0;
    scale = 1.0 / (double) nrows;
    for (r0 = 0; r0 < nrows; r0 += batch)
    {
        int         nb = (int) (nrows - r0 < batch ? nrows - r0 : batch);

        GatherRows(ctx, rows + r0, nb);
        ForwardBlock(params, layout, w->xb, nb, w->acts, w->out);
        total += BlockLoss(ctx, rows + r0, nb, scale, grad ? w->dout : NULL);
        if (grad)
            BackwardBlock(params, layout, w->xb, nb, w->acts, w->dout, grad,
                          w->delta);
    }
    return total / (double) nrows;
}

/* ------------------------------------------------------------------------
 * Top-k and precision
 * ------------------------------------------------------------------------ */

/* How many of top[0..ntop) are among items[0..nitems) (with weight >= min_w). */
static int
CountHits(const int32_t *top, int ntop, const int32_t *items,
          const float *weights, int64_t nitems, float min_w, int64_t *npos)
{
    int64_t     e;
    int         hits = 0,
                t;

    *npos = 0;
    for (e = 0; e < nitems; e++)
    {
        if (weights && !(weights[e] >= min_w))
            continue;
        (*npos)++;
        for (t = 0; t < ntop; t++)
            if (top[t] == items[e])
            {
                hits++;
                break;
            }
    }
    return hits;
}

/*
 * Mean precision@eval_k over rows[0..nrows) of the ranking of all items by
 * f(x).y_i against the rows' positives; NaN when no row has a positive.
 */
static double
Precision(MlpCtx *ctx, const float *params, const int32_t *rows, int64_t nrows,
          const float *baseline)
{
    const ItMlpData *data = ctx->data;
    const ItMlpTrainParams *p = ctx->p;
    MlpWork    *w = ctx->w;
    int         k = ctx->layout->output;
    int         batch = p->batch;
    int64_t     m = data->m;
    double      sum = 0.0;
    int64_t     users = 0;
    int64_t     r0;

    for (r0 = 0; r0 < nrows; r0 += batch)
    {
        int         nb = (int) (nrows - r0 < batch ? nrows - r0 : batch);
        int         b;

        if (baseline)
        {
            for (b = 0; b < nb; b++)
                memcpy(w->scores + (size_t) b * m, baseline, sizeof(float) * m);
        }
        else
        {
            GatherRows(ctx, rows + r0, nb);
            ForwardBlock(params, ctx->layout, w->xb, nb, w->acts, w->out);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nb, (int) m, k,
                        1.0f, w->out, k, data->Y, k, 0.0f, w->scores, (int) m);
        }
        for (b = 0; b < nb; b++)
        {
            int32_t     row = DataRow(data, rows[r0 + b]);
            int64_t     start = data->indptr[row];
            int64_t     npos;
            int         ntop,
                        hits;

            ntop = it_topk(w->scores + (size_t) b * m, m, NULL, 0, p->eval_k,
                           w->top_idx, w->top_val);
            hits = CountHits(w->top_idx, ntop, data->indices + start,
                             data->weights ? data->weights + start : NULL,
                             data->indptr[row + 1] - start,
                             p->pos_min_weight, &npos);
            if (npos == 0)
                continue;
            sum += (double) hits / p->eval_k;
            users++;
        }
    }
    return users > 0 ? sum / users : NAN;
}

/* ------------------------------------------------------------------------
 * Argument checks
 * ------------------------------------------------------------------------ */

static int
CheckTrainArgs(const ItMlpLayout *layout, const ItMlpData *data,
               const ItMlpTrainParams *p)
{
    int         use_vec,
                use_int;

    if (it_mlp_check_layout(layout) != IT_MLP_OK || data == NULL || p == NULL)
        return IT_MLP_EINVAL;
    if (data->n < 1 || data->n > INT32_MAX || data->X == NULL)
        return IT_MLP_EINVAL;
    if (!(p->vector_weight >= 0.0f && p->vector_weight <= 1.0f))
        return IT_MLP_EINVAL;
    if (!(p->lr > 0.0f) || !(p->beta1 >= 0.0f && p->beta1 < 1.0f) ||
        !(p->beta2 >= 0.0f && p->beta2 < 1.0f) || !(p->eps > 0.0f) ||
        !(p->weight_decay >= 0.0f) || !isfinite(p->lr) ||
        !isfinite(p->weight_decay) || !((double) p->lr * p->weight_decay < 1.0))
        return IT_MLP_EINVAL;
    if (p->epochs < 1 || p->batch < 1 || p->patience < 0 || p->eval_k < 0 ||
        p->eval_max_rows < 0 || p->threads < 1)
        return IT_MLP_EINVAL;
    if (p->converge_window < 0 || p->converge_window > IT_MLP_MAX_CONVERGE_WINDOW ||
        !(p->converge_tol >= 0.0f && p->converge_tol < 1.0f))
        return IT_MLP_EINVAL;
    if (!(p->val_fraction >= 0.0f && p->val_fraction <= 0.9f))
        return IT_MLP_EINVAL;
    if (!(p->alpha >= 0.0f) || !isfinite(p->alpha))
        return IT_MLP_EINVAL;
    use_vec = p->vector_weight > 0.0f;
    use_int = p->vector_weight < 1.0f;
    if (use_vec && data->targets == NULL)
        return IT_MLP_EINVAL;
    if (use_int)
    {
        if (data->indptr == NULL || data->indices == NULL || data->Y == NULL ||
            data->YtY == NULL || data->m < 1 || data->m > INT32_MAX)
            return IT_MLP_EINVAL;
    }
    if (data->val_rows != NULL && (data->nval < 0 || data->nval >= data->n))
        return IT_MLP_EINVAL;
    return IT_MLP_OK;
}

/* m as seen by the workspace: 0 when no item scores are needed. */
static int64_t
ScoresItems(const ItMlpData *data)
{
    return (data->Y != NULL && data->indptr != NULL) ? data->m : 0;
}

static void
InitCtx(MlpCtx *ctx, const ItMlpLayout *layout, const ItMlpData *data,
        const ItMlpTrainParams *p, MlpWork *w)
{
    ctx->layout = layout;
    ctx->data = data;
    ctx->p = p;
    ctx->w = w;
    ctx->pool = NULL;
    ctx->use_vec = p->vector_weight > 0.0f;
    ctx->use_int = p->vector_weight < 1.0f;
    ctx->zvec = 1.0;
    ctx->zint = 1.0;
}

double
it_mlp_objective(const float *params, const ItMlpLayout *layout,
                 const ItMlpData *data, const ItMlpTrainParams *p,
                 const int32_t *rows, int64_t nrows, float *grad,
                 void *workspace)
{
    MlpWork     w;
    MlpCtx      ctx;
    int64_t     i;

    if (CheckTrainArgs(layout, data, p) != IT_MLP_OK || params == NULL ||
        workspace == NULL)
        return NAN;
    if (rows == NULL)
        nrows = data->n;
    if (nrows < 1 || nrows > data->n)
        return NAN;
    if (rows != NULL)
        for (i = 0; i < nrows; i++)
            if (rows[i] < 0 || rows[i] >= data->n)
                return NAN;
    CarveWork(layout, p->batch, p->eval_k, data->n, ScoresItems(data),
              workspace, &w);
    if (rows == NULL)
    {
        for (i = 0; i < nrows; i++)
            w.order[i] = (int32_t) i;
        rows = w.order;
    }
    InitCtx(&ctx, layout, data, p, &w);
    ComputeNorms(&ctx, rows, nrows);
    return Objective(&ctx, params, rows, nrows, grad);
}

/* ------------------------------------------------------------------------
 * Training
 * ------------------------------------------------------------------------ */

void
it_mlp_default_params(ItMlpTrainParams *p)
{
    memset(p, 0, sizeof(*p));
    p->lr = 1e-3f;
    p->beta1 = 0.9f;
    p->beta2 = 0.999f;
    p->eps = 1e-8f;
    p->weight_decay = 3.0f;
    p->epochs = 200;
    p->batch = 64;
    p->patience = 20;
    p->seed = 42;
    p->val_fraction = 0.2f;
    p->vector_weight = 0.0f;
    p->alpha = 1.0f;
    p->user_normalise = 0;
    p->init_output_bias = 1;
    p->eval_k = 10;
    p->eval_max_rows = 2000;
    p->pos_min_weight = 0.0f;
    p->threads = 1;
    p->should_stop = NULL;
    p->should_stop_arg = NULL;
}

/*
 * Moments below this are set to zero.  A parameter whose gradient is zero
 * for a while (a feature no row of the minibatches has, a hidden unit
 * whose ReLU is off) has its first moment shrink by beta1 a step: within
 * some 800 steps it is subnormal, and rounding keeps it at the smallest
 * subnormal for ever.  Every multiply by a subnormal then takes a
 * microcode assist on x86 (about a hundred cycles): on 100k users the
 * updates took a third of the fit.  Such a moment moves its parameter by
 * at most lr * 1e-30 / eps, far below a float's precision.
 */
#define IT_MLP_TINY_MOMENT 1e-30f

static inline __attribute__((always_inline)) void
AdamOne(float *restrict params, const float *restrict grad, float *restrict m,
        float *restrict v, size_t i, float b1, float b2, float step, float eps,
        float decay)
{
    float       g = grad[i];
    float       pi = params[i];
    float       mi = b1 * m[i] + (1.0f - b1) * g;
    float       vi = b2 * v[i] + (1.0f - b2) * g * g;

    /* selects, not branches, so that the loop still vectorises */
    m[i] = fabsf(mi) < IT_MLP_TINY_MOMENT ? 0.0f : mi;
    v[i] = vi < IT_MLP_TINY_MOMENT ? 0.0f : vi;
    pi -= decay * pi;
    params[i] = pi - step * m[i] / (sqrtf(v[i]) + eps);
}

/*
 * One AdamW update of params[i0..i1) (decoupled decay when decay > 0).
 * The square roots go through the vector units: this file is compiled
 * with -fno-math-errno (Makefile), and the second moments are never
 * negative anyway.
 */
IT_CLONES static void
AdamRange(float *restrict params, const float *restrict grad, float *restrict m,
          float *restrict v, size_t i0, size_t i1, float b1, float b2, float step,
          float eps, float decay)
{
    size_t      i = i0,
                q;

    /* blocks of IT_MLP_LANES (a loop the compiler vectorises at -O2), then the rest */
    for (; i + IT_MLP_LANES <= i1; i += IT_MLP_LANES)
        for (q = 0; q < IT_MLP_LANES; q++)
            AdamOne(params, grad, m, v, i + q, b1, b2, step, eps, decay);
    for (; i < i1; i++)
        AdamOne(params, grad, m, v, i, b1, b2, step, eps, decay);
}

static void
AdamStep(float *params, const ItMlpLayout *layout, const ItMlpTrainParams *p,
         MlpWork *w, int64_t t)
{
    double      bc1 = 1.0 - pow((double) p->beta1, (double) t);
    double      bc2 = 1.0 - pow((double) p->beta2, (double) t);
    float       step = (float) (p->lr * sqrt(bc2) / bc1);
    float       eps = (float) (p->eps * sqrt(bc2));
    float       decay = p->lr * p->weight_decay;
    int         l;

    for (l = 0; l <= layout->nhidden; l++)
    {
        size_t      w_off,
                    b_off;

        LayerParams(layout, l, &w_off, &b_off);
        /* the weights decay, the biases do not */
        AdamRange(params, w->grad, w->adam_m, w->adam_v, w_off, b_off,
                  p->beta1, p->beta2, step, eps, decay);
        AdamRange(params, w->grad, w->adam_m, w->adam_v, b_off,
                  b_off + (size_t) LayerOut(layout, l),
                  p->beta1, p->beta2, step, eps, 0.0f);
    }
}

/* LAPACK (from the same OpenBLAS): Cholesky solve of a symmetric positive
 * definite system, column-major. */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a,
                   const int *lda, float *b, const int *ldb, int *info);

/*
 * The best constant prediction of the objective over rows[0..nrows), or
 * over rows 0 .. nrows - 1 when rows is NULL (the population's vector).  The objective is quadratic in a constant b:
 *
 *   [a1 I + a2 (W YtY + Y' diag(acc) Y)] b = a1 mean(t) + a2 Y' r
 *
 * with a1 = vw / Zvec, a2 = (1 - vw) / Zint, per row weights w_u (1, or
 * 1 / sum c_u when user_normalise), W = mean w_u, acc_i = mean over rows of
 * w_u (c_ui - 1), r_i = mean of w_u c_ui.  sys must hold k * k + k floats
 * and acc 2 * m; the answer is left in sys[k*k .. k*k + k).  Returns 0 on
 * success, -1 when the
 * system cannot be solved.
 */
static int
BestConstant(MlpCtx *ctx, const int32_t *rows, int64_t nrows, float *sys,
             float *item_acc)
{
    const ItMlpData *data = ctx->data;
    const ItMlpTrainParams *p = ctx->p;
    int         k = ctx->layout->output;
    int         use_als = ctx->use_int;
    double      a1 = ctx->use_vec ? p->vector_weight / ctx->zvec : 0.0;
    double      a2 = use_als ? (1.0 - p->vector_weight) / ctx->zint : 0.0;
    size_t      kk = (size_t) k * k,
                q;
    float      *M = sys;
    float      *rhs = sys + kk;
    double      wsum = 0.0,
                trace = 0.0;
    int64_t     i;
    int         j,
                info = 0,
                one = 1;

    if (nrows <= 0 || (a1 == 0.0 && a2 == 0.0))
        return -1;

    memset(rhs, 0, sizeof(float) * k);
    for (q = 0; q < kk; q++)
        M[q] = 0.0f;
    if (a1 > 0.0)
    {
        for (i = 0; i < nrows; i++)
        {
            int32_t     r = rows ? rows[i] : (int32_t) i;
            const float *t = data->targets + (size_t) DataRow(data, r) * k;

            for (j = 0; j < k; j++)
                rhs[j] += (float) (a1 * t[j] / (double) nrows);
        }
        for (j = 0; j < k; j++)
            M[(size_t) j * k + j] += (float) a1;
    }
    if (a2 > 0.0)
    {
        float      *acc = item_acc;
        float      *rr = item_acc + data->m;

        memset(item_acc, 0, sizeof(float) * 2 * (size_t) data->m);
        for (i = 0; i < nrows; i++)
        {
            int32_t     row = DataRow(data, rows ? rows[i] : (int32_t) i);
            double      wu = 1.0;
            int64_t     e;

            if (p->user_normalise)
            {
                double      cs = RowConfidence(data, row, p);

                if (cs > 0.0)
                    wu = 1.0 / cs;
            }
            wsum += wu;
            for (e = data->indptr[row]; e < data->indptr[row + 1]; e++)
            {
                float       wt = EntryWeight(data, e);

                if (!(wt >= p->pos_min_weight))
                    continue;
                acc[data->indices[e]] += (float) (wu * p->alpha * wt);
                rr[data->indices[e]] += (float) (wu * (1.0 + (double) p->alpha * wt));
            }
        }
        for (q = 0; q < kk; q++)
            M[q] += (float) (a2 * wsum / (double) nrows) * data->YtY[q];
        /*
         * One rank-one update per item.  Blocks of sgemm are faster (this
         * is 98k level-2 calls on the items' side of 100k users), but on
         * MovieLens 100k the system is so nearly singular that their
         * rounding makes it positive definite where these updates' does
         * not, and a population vector there changes the gate and the
         * fold-in weight chosen, for the worse on new users' first
         * clicks.  Kept until that choice no longer hangs on it.
         */
        for (i = 0; i < data->m; i++)
            if (acc[i] != 0.0f)
                cblas_ssyr(CblasRowMajor, CblasUpper, k,
                           (float) (a2 * acc[i] / (double) nrows),
                           data->Y + (size_t) i * k, 1, M, k);
        cblas_sgemv(CblasRowMajor, CblasTrans, (int) data->m, k,
                    (float) (a2 / (double) nrows), data->Y, k, rr, 1, 1.0f,
                    rhs, 1);
    }
    for (j = 0; j < k; j++)
        trace += M[(size_t) j * k + j];
    for (j = 0; j < k; j++)
        M[(size_t) j * k + j] += (float) (1e-6 * trace / k + 1e-30);
    /* row-major upper triangle = column-major lower triangle */
    sposv_("L", &k, &one, M, &k, rhs, &k, &info);
    if (info != 0)
        return -1;
    for (j = 0; j < k; j++)
        if (!isfinite(rhs[j]))
            return -1;
    return 0;
}

/*
 * Shifts the output bias so that the mean output over rows[0..nrows) is
 * the best constant prediction (BestConstant), which the features then
 * only have to correct, and copies that prediction to constant (k floats)
 * when it is not NULL.  Nothing changes, and false is returned, when
 * there is none.
 */
static bool
InitOutputBias(MlpCtx *ctx, float *params, const int32_t *rows, int64_t nrows,
               float *constant)
{
    const ItMlpLayout *layout = ctx->layout;
    const ItMlpTrainParams *p = ctx->p;
    MlpWork    *w = ctx->w;
    int         k = layout->output;
    float      *best = w->sys + (size_t) k * k;
    float      *mean = w->sys;
    int64_t     r0;
    int         j;
    size_t      w_off,
                b_off;

    if (BestConstant(ctx, rows, nrows, w->sys, w->item_acc) != 0)
        return false;
    if (constant)
        memcpy(constant, best, sizeof(float) * k);

    /* mean output of the current parameters over the rows */
    memset(mean, 0, sizeof(float) * k);
    for (r0 = 0; r0 < nrows; r0 += p->batch)
    {
        int         nb = (int) (nrows - r0 < p->batch ? nrows - r0 : p->batch);
        int         b;

        GatherRows(ctx, rows + r0, nb);
        ForwardBlock(params, layout, w->xb, nb, w->acts, w->out);
        for (b = 0; b < nb; b++)
            for (j = 0; j < k; j++)
                mean[j] += w->out[(size_t) b * k + j] / (float) nrows;
    }
    LayerParams(layout, layout->nhidden, &w_off, &b_off);
    for (j = 0; j < k; j++)
        params[b_off + j] += best[j] - mean[j];
    return true;
}

size_t
it_mlp_population_workspace_floats(int k, int64_t m)
{
    int         ok = 1;
    size_t      total;

    if (k < 1 || k > IT_MLP_MAX_UNITS || m < 0)
        return 0;
    total = SizeAdd(SizeMul((size_t) k, (size_t) k + 1, &ok),
                    SizeMul(2, (size_t) m, &ok), &ok);
    return ok ? total : 0;
}

int
it_mlp_population_vector(const ItMlpData *data, const ItMlpTrainParams *p,
                         int k, float *x, float *workspace)
{
    ItMlpLayout layout;
    MlpCtx      ctx;

    memset(&layout, 0, sizeof(layout));
    layout.input = 1;
    layout.output = k;
    if (x == NULL || workspace == NULL || data == NULL || p == NULL)
        return IT_MLP_EINVAL;
    /* the checks of training, without inputs */
    {
        ItMlpData   d2 = *data;
        static const float one = 1.0f;

        d2.X = &one;
        d2.val_rows = NULL;
        if (CheckTrainArgs(&layout, &d2, p) != IT_MLP_OK)
            return IT_MLP_EINVAL;
    }
    InitCtx(&ctx, &layout, data, p, NULL);
    ComputeNorms(&ctx, NULL, data->n);
    if (BestConstant(&ctx, NULL, data->n, workspace,
                     workspace + (size_t) k * k + k) != 0)
        return IT_MLP_ENONFINITE;
    memcpy(x, workspace + (size_t) k * k, sizeof(float) * k);
    return IT_MLP_OK;
}

/*
 * Whether the caller's should_stop asks to stop, before minibatch t.  The
 * callback may not return (a PostgreSQL error), so it is called only
 * while no worker runs: with workers, every IT_MLP_POOL_STOP_BATCHES
 * minibatches, between stopping them and starting them again.
 */
#define IT_MLP_POOL_STOP_BATCHES 64

static int
CheckStop(MlpCtx *ctx, MlpPool *pool, const ItMlpTrainParams *p, int64_t t)
{
    int         stop;

    if (p->should_stop == NULL)
        return 0;
    if (ctx->pool == NULL)
        return p->should_stop(p->should_stop_arg);
    if (t % IT_MLP_POOL_STOP_BATCHES != 0)
        return 0;
    PoolStop(ctx->pool);
    ctx->pool = NULL;
    stop = p->should_stop(p->should_stop_arg);
    if (!stop && PoolStart(pool, p->threads))
        ctx->pool = pool;
    return stop;
}

int
it_mlp_train(float *params, const ItMlpLayout *layout,
             const ItMlpData *data, const ItMlpTrainParams *p,
             void *workspace, ItMlpEpoch *history, ItMlpTrainResult *result)
{
    MlpWork     w;
    MlpCtx      ctx;
    MlpPool     pool;
    size_t      P;
    uint64_t    rng;
    int64_t     n,
                nval,
                neval,
                ntrain,
                i,
                t = 0;
    int32_t    *val,
               *train;
    int         epoch,
                best_epoch = -1,
                bad = 0,
                status = IT_MLP_OK,
                stop = IT_MLP_STOP_EPOCHS,
                have_constant = 0,
                can_rank;
    double      best_loss = INFINITY,
                best_prec = NAN,
                base_prec,
                first_loss = NAN;
    double      best_at[IT_MLP_MAX_CONVERGE_WINDOW + 1];  /* a ring */

    if (CheckTrainArgs(layout, data, p) != IT_MLP_OK || params == NULL ||
        workspace == NULL)
        return IT_MLP_EINVAL;
    n = data->n;
    if (data->val_rows != NULL)
    {
        for (i = 0; i < data->nval; i++)
            if (data->val_rows[i] < 0 || data->val_rows[i] >= n)
                return IT_MLP_EINVAL;
    }

    P = it_mlp_param_count(layout);
    CarveWork(layout, p->batch, p->eval_k, n, ScoresItems(data), workspace, &w);
    rng = p->seed ^ UINT64_C(0xBB67AE8584CAA73B);

    /* split: validation rows first, then training rows */
    if (data->val_rows != NULL)
    {
        int64_t     pos;

        memset(w.flags, 0, (size_t) n);
        nval = data->nval;
        for (i = 0; i < nval; i++)
        {
            if (w.flags[data->val_rows[i]])
                return IT_MLP_EINVAL;   /* duplicate */
            w.flags[data->val_rows[i]] = 1;
            w.order[i] = data->val_rows[i];
        }
        pos = nval;
        for (i = 0; i < n; i++)
            if (!w.flags[i])
                w.order[pos++] = (int32_t) i;
    }
    else
    {
        nval = (int64_t) floor((double) p->val_fraction * (double) n);
        if (nval >= n)
            nval = n - 1;
        for (i = 0; i < n; i++)
            w.order[i] = (int32_t) i;
        for (i = n - 1; i > 0; i--)
        {
            int64_t     j = (int64_t) UniformBelow(&rng, (uint64_t) i + 1);
            int32_t     tmp = w.order[i];

            w.order[i] = w.order[j];
            w.order[j] = tmp;
        }
    }
    val = w.order;
    train = w.order + nval;
    ntrain = n - nval;
    can_rank = data->Y != NULL && data->indptr != NULL && data->m > 0 &&
        p->eval_k > 0;

    InitCtx(&ctx, layout, data, p, &w);
    ComputeNorms(&ctx, train, ntrain);
    /* workers for the interaction loss, when a batch has positives to share */
    if (p->threads > 1 && ctx.use_int)
    {
        int64_t     npos = 0;

        for (i = 0; i < n; i++)
            npos += data->indptr[DataRow(data, (int32_t) i) + 1] - data->indptr[DataRow(data, (int32_t) i)];
        if ((double) npos / n * (p->batch < n ? p->batch : n) >= IT_MLP_POOL_MIN_POSITIVES &&
            PoolStart(&pool, p->threads))
            ctx.pool = &pool;
    }
    memset(w.adam_m, 0, sizeof(float) * P);
    memset(w.adam_v, 0, sizeof(float) * P);
    neval = nval;
    if (p->eval_max_rows > 0 && neval > p->eval_max_rows)
        neval = p->eval_max_rows;
    base_prec = NAN;
    if (can_rank && nval > 0 && data->baseline != NULL)
        base_prec = Precision(&ctx, params, val, neval, data->baseline);
    if (p->init_output_bias)
        have_constant = InitOutputBias(&ctx, params, train, ntrain, p->constant_out) &&
            p->constant_out != NULL;
    memcpy(w.best, params, sizeof(float) * P);

    for (epoch = 0; epoch < p->epochs; epoch++)
    {
        double      sum = 0.0,
                    vloss = NAN,
                    vprec = NAN;
        int64_t     r0;

        for (i = ntrain - 1; i > 0; i--)
        {
            int64_t     j = (int64_t) UniformBelow(&rng, (uint64_t) i + 1);
            int32_t     tmp = train[i];

            train[i] = train[j];
            train[j] = tmp;
        }
        for (r0 = 0; r0 < ntrain; r0 += p->batch)
        {
            int64_t     nb = ntrain - r0 < p->batch ? ntrain - r0 : p->batch;
            double      l;

            if (CheckStop(&ctx, &pool, p, t))
            {
                status = IT_MLP_ESTOPPED;
                break;
            }
            l = Objective(&ctx, params, train + r0, nb, w.grad);
            if (!isfinite(l))
            {
                status = IT_MLP_ENONFINITE;
                break;
            }
            sum += l * (double) nb;
            AdamStep(params, layout, p, &w, ++t);
        }
        if (status != IT_MLP_OK)
            break;

        if (nval > 0)
        {
            vloss = Objective(&ctx, params, val, nval, NULL);
            if (can_rank)
                vprec = Precision(&ctx, params, val, neval, NULL);
            if (!isfinite(vloss))
            {
                status = IT_MLP_ENONFINITE;
                break;
            }
        }
        if (history)
        {
            history[epoch].train_loss = sum / (double) ntrain;
            history[epoch].val_loss = vloss;
            history[epoch].val_precision = vprec;
        }
        if (nval > 0)
        {
            if (best_epoch < 0 || vloss < best_loss)
            {
                best_epoch = epoch;
                best_loss = vloss;
                best_prec = vprec;
                bad = 0;
                memcpy(w.best, params, sizeof(float) * P);
            }
            else if (p->patience > 0 && ++bad >= p->patience)
            {
                stop = IT_MLP_STOP_PATIENCE;
                epoch++;
                break;
            }
            if (epoch == 0)
                first_loss = vloss;
            if (p->converge_window > 0)
            {
                int         wnd = p->converge_window;

                best_at[epoch % (wnd + 1)] = best_loss;
                if (epoch >= wnd && first_loss > best_loss &&
                    best_at[(epoch - wnd) % (wnd + 1)] - best_loss <=
                    (double) p->converge_tol * (first_loss - best_loss))
                {
                    stop = IT_MLP_STOP_CONVERGED;
                    epoch++;
                    break;
                }
            }
        }
        else
        {
            /* without validation rows the last epoch is the best */
            best_epoch = epoch;
            memcpy(w.best, params, sizeof(float) * P);
        }
    }

    if (ctx.pool != NULL)
        PoolStop(ctx.pool);
    /* the best epoch's parameters (the initial ones if none finished) */
    memcpy(params, w.best, sizeof(float) * P);
    if (result)
    {
        result->epochs_run = epoch;
        result->best_epoch = best_epoch;
        result->ntrain = ntrain;
        result->nval = nval;
        result->best_val_loss = nval > 0 ? best_loss : NAN;
        result->best_val_precision = best_prec;
        result->base_val_precision = base_prec;
        result->stop = stop;
        result->have_constant = have_constant;
    }
    return status;
}

/*
 * als_kernel.h
 *    The vector loops of als.c, written once and compiled for several
 *    vector widths.  Internal to als.c, which includes it once per width
 *    with:
 *
 *      ALS_W       floats per vector: 4, 8 or 16
 *      ALS_SUFFIX  appended to every name defined here
 *      ALS_TARGET  a target attribute for the functions, or nothing
 *
 * and with AlsShared, Serve, AskDense and WaitDense defined before.
 *
 * GCC keeps a vector type wider than the target's registers in memory:
 * compiled for AVX2, the loops over 16-float vectors spent most of their
 * time storing and reloading the halves.  So each target gets vectors its
 * registers hold.  The arithmetic stays that of 16-float vectors whatever
 * ALS_W is: a chunk of 16 floats is 16 / ALS_W vectors, every lane sums in
 * the same order, and a horizontal sum is the same tree (HSUM16 below).  A
 * result depends on the width only through whether the target contracts a
 * multiply and an add to one FMA (it does on x86-64-v3 and v4, not on the
 * baseline).
 */

#define ALS_CAT2(a, b) a##b
#define ALS_CAT(a, b) ALS_CAT2(a, b)
#define ALS_NAME(n) ALS_CAT(n, ALS_SUFFIX)

/* vectors in a chunk of 16 floats */
#define ALS_P (16 / ALS_W)

#define ALS_FN static inline __attribute__((always_inline)) ALS_TARGET

typedef float ALS_NAME(AlsVec) __attribute__((vector_size(ALS_W * sizeof(float))));
typedef float ALS_NAME(AlsVec4) __attribute__((vector_size(4 * sizeof(float))));

#define AV ALS_NAME(AlsVec)
#define AV4 ALS_NAME(AlsVec4)

/* loads and stores go through memcpy (unaligned) */
#define AV_LOAD(p) \
    __extension__ ({ AV v_; memcpy(&v_, (p), sizeof(v_)); v_; })
#define AV_STORE(p, v) \
    do { AV s_ = (v); memcpy((p), &s_, sizeof(s_)); } while (0)

/*
 * The sum of the 16 lanes held in s[0..ALS_P), as the tree the 16-float
 * code used: lanes 0-7 plus lanes 8-15, then the halves of that, then
 * (l0 + l2) + (l1 + l3).  s is overwritten.
 */
ALS_FN float
ALS_NAME(Hsum16) (AV *s)
{
    AV4         h4;

#if ALS_W == 16
    typedef float AV8 __attribute__((vector_size(8 * sizeof(float))));
    AV8         lo = __builtin_shufflevector(s[0], s[0], 0, 1, 2, 3, 4, 5, 6, 7);
    AV8         hi = __builtin_shufflevector(s[0], s[0], 8, 9, 10, 11, 12, 13, 14, 15);
    AV8         h8 = lo + hi;

    h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
#elif ALS_W == 8
    AV          h8 = s[0] + s[1];

    h4 = __builtin_shufflevector(h8, h8, 0, 1, 2, 3) + __builtin_shufflevector(h8, h8, 4, 5, 6, 7);
#elif ALS_W == 4
    h4 = (s[0] + s[2]) + (s[1] + s[3]);
#else
#error "ALS_W must be 4, 8 or 16"
#endif
    return (h4[0] + h4[2]) + (h4[1] + h4[3]);
}

/* a . b, summed in a fixed order (two 16-lane accumulators) */
ALS_FN float
ALS_NAME(Dot) (const float *restrict a, const float *restrict b, int k)
{
    AV          s0[ALS_P];
    AV          s1[ALS_P];
    float       s;
    int         i = 0;
    int         q;

    for (q = 0; q < ALS_P; q++)
    {
        s0[q] = (AV) {0};
        s1[q] = (AV) {0};
    }
    for (; i + 32 <= k; i += 32)
        for (q = 0; q < ALS_P; q++)
        {
            s0[q] += AV_LOAD(a + i + ALS_W * q) * AV_LOAD(b + i + ALS_W * q);
            s1[q] += AV_LOAD(a + i + 16 + ALS_W * q) * AV_LOAD(b + i + 16 + ALS_W * q);
        }
    if (i + 16 <= k)
    {
        for (q = 0; q < ALS_P; q++)
            s0[q] += AV_LOAD(a + i + ALS_W * q) * AV_LOAD(b + i + ALS_W * q);
        i += 16;
    }
    for (q = 0; q < ALS_P; q++)
        s0[q] += s1[q];
    s = ALS_NAME(Hsum16) (s0);
    for (; i < k; i++)
        s += a[i] * b[i];
    return s;
}

/* y += a x */
ALS_FN void
ALS_NAME(Axpy) (float *restrict y, float a, const float *restrict x, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += ALS_W)
        AV_STORE(y + i, AV_LOAD(y + i) + a * AV_LOAD(x + i));
    for (; i < k; i++)
        y[i] += a * x[i];
}

/* y = a + b */
ALS_FN void
ALS_NAME(Add) (float *restrict y, const float *restrict a, const float *restrict b, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += ALS_W)
        AV_STORE(y + i, AV_LOAD(a + i) + AV_LOAD(b + i));
    for (; i < k; i++)
        y[i] = a[i] + b[i];
}

/* y += x */
ALS_FN void
ALS_NAME(AddTo) (float *restrict y, const float *restrict x, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += ALS_W)
        AV_STORE(y + i, AV_LOAD(y + i) + AV_LOAD(x + i));
    for (; i < k; i++)
        y[i] += x[i];
}

/* y = x + beta y */
ALS_FN void
ALS_NAME(Xpby) (float *restrict y, const float *restrict x, float beta, int k)
{
    int         i = 0;

    for (; i + 16 <= k; i += ALS_W)
        AV_STORE(y + i, AV_LOAD(x + i) + beta * AV_LOAD(y + i));
    for (; i < k; i++)
        y[i] = x[i] + beta * y[i];
}

/*
 * One pass over a row's entries for k = 16 NV (see SparsePass in als.c):
 * p and the accumulators are NV chunks of ALS_P vectors.
 */
#define ALS_DEFINE_SPARSE_PASS(NV) \
ALS_FN void \
ALS_NAME(SparsePass##NV) (const int32_t *restrict idx, const float *restrict r, \
                          int64_t m, int64_t mpf, const float *restrict Y, float alpha, float thr, \
                          const int init, const float *restrict p, float *restrict out, \
                          double *restrict loss) \
{ \
    const int   k = (NV) * 16; \
    AV          pv[(NV) * ALS_P]; \
    AV          acc[(NV) * ALS_P]; \
    double      lsum = loss ? *loss : 0.0; \
    int64_t     j; \
    int         c; \
    int         q; \
 \
    IT_UNROLL \
    for (c = 0; c < (NV) * ALS_P; c++) \
    { \
        pv[c] = AV_LOAD(p + ALS_W * c); \
        acc[c] = AV_LOAD(out + ALS_W * c); \
    } \
    for (j = 0; j < m; j++) \
    { \
        const float *y = Y + (size_t) idx[j] * k; \
        AV          yv[(NV) * ALS_P]; \
        AV          sv[ALS_P]; \
        float       d; \
        float       w = alpha * r[j]; \
        float       coef; \
 \
        if (IT_PREFETCH_AHEAD > 0 && j + IT_PREFETCH_AHEAD < mpf) \
            PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k); \
        IT_UNROLL \
        for (c = 0; c < (NV) * ALS_P; c++) \
            yv[c] = AV_LOAD(y + ALS_W * c); \
        IT_UNROLL \
        for (q = 0; q < ALS_P; q++) \
            sv[q] = yv[q] * pv[q]; \
        IT_UNROLL \
        for (c = 1; c < (NV); c++) \
            IT_UNROLL \
            for (q = 0; q < ALS_P; q++) \
                sv[q] += yv[c * ALS_P + q] * pv[c * ALS_P + q]; \
        d = ALS_NAME(Hsum16) (sv); \
        coef = init ? (r[j] >= thr ? 1.0f + w : 0.0f) - w * d : w * d; \
        if (init && loss) \
            lsum += RowLossTerm(r[j], alpha, thr, d); \
        IT_UNROLL \
        for (c = 0; c < (NV) * ALS_P; c++) \
            acc[c] += coef * yv[c]; \
    } \
    IT_UNROLL \
    for (c = 0; c < (NV) * ALS_P; c++) \
        AV_STORE(out + ALS_W * c, acc[c]); \
    if (loss) \
        *loss = lsum; \
}

ALS_DEFINE_SPARSE_PASS(1)
ALS_DEFINE_SPARSE_PASS(2)
ALS_DEFINE_SPARSE_PASS(3)
ALS_DEFINE_SPARSE_PASS(4)
ALS_DEFINE_SPARSE_PASS(6)
ALS_DEFINE_SPARSE_PASS(8)

/* the same for any k */
ALS_FN void
ALS_NAME(SparsePassAny) (const int32_t *restrict idx, const float *restrict r,
                         int64_t m, int64_t mpf, const float *restrict Y, int k, float alpha,
                         float thr, int init, const float *restrict p, float *restrict out,
                         double *restrict loss)
{
    double      lsum = loss ? *loss : 0.0;
    int64_t     j;

    for (j = 0; j < m; j++)
    {
        const float *y = Y + (size_t) idx[j] * k;
        float       w = alpha * r[j];
        float       d;

        if (IT_PREFETCH_AHEAD > 0 && j + IT_PREFETCH_AHEAD < mpf)
            PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k);
        d = ALS_NAME(Dot) (y, p, k);
        if (init && loss)
            lsum += RowLossTerm(r[j], alpha, thr, d);
        ALS_NAME(Axpy) (out, init ? (r[j] >= thr ? 1.0f + w : 0.0f) - w * d : w * d, y, k);
    }
    if (loss)
        *loss = lsum;
}

ALS_FN void
ALS_NAME(SparsePass) (const int32_t *restrict idx, const float *restrict r,
                      int64_t m, int64_t mpf, const float *restrict Y, int k, float alpha,
                      float thr, int init, const float *restrict p, float *restrict out,
                      double *restrict loss)
{
    switch (k)
    {
        case 16:
            ALS_NAME(SparsePass1) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        case 32:
            ALS_NAME(SparsePass2) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        case 48:
            ALS_NAME(SparsePass3) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        case 64:
            ALS_NAME(SparsePass4) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        case 96:
            ALS_NAME(SparsePass6) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        case 128:
            ALS_NAME(SparsePass8) (idx, r, m, mpf, Y, alpha, thr, init, p, out, loss);
            break;
        default:
            ALS_NAME(SparsePassAny) (idx, r, m, mpf, Y, k, alpha, thr, init, p, out, loss);
            break;
    }
}

/*
 * out = sparse part of one row (see SparsePass), starting from zero, and
 * *loss (when not NULL) its loss term; the calling thread, when workers
 * run, looks at their requests every IT_SERVE_ENTRIES entries (the pieces
 * add up to the same sums: the accumulators go through out and *loss
 * unchanged).
 */
ALS_FN void
ALS_NAME(SparseRow) (AlsShared *s, int serve, const int32_t *idx, const float *r,
                     int64_t m, int64_t mpf, int init, const float *p, float *out, double *loss)
{
    int64_t     j;

    memset(out, 0, sizeof(float) * s->k);
    if (loss)
        *loss = 0.0;
    if (!serve)
    {
        ALS_NAME(SparsePass) (idx, r, m, mpf, s->Y, s->k, s->alpha, s->thr, init, p, out, loss);
        return;
    }
    for (j = 0; j < m; j += IT_SERVE_ENTRIES)
    {
        int64_t     n = m - j < IT_SERVE_ENTRIES ? m - j : IT_SERVE_ENTRIES;

        ALS_NAME(SparsePass) (idx + j, r + j, n, mpf - j, s->Y, s->k, s->alpha, s->thr, init, p, out, loss);
        Serve(s);
    }
}

/*
 * The CG solve of the rows [b0, b1) of one block by thread t, with its
 * scratch R, P, D (dense part), S (sparse part, then A_u p), nb * k each,
 * and rs, active (nb floats each).  A row's arithmetic does not depend on
 * the thread: the dense parts are the same sgemm calls whoever runs the
 * block.
 */
ALS_TARGET static void
ALS_NAME(AlsBlock) (AlsShared *s, int t, int64_t b0, int64_t b1, float *scratch)
{
    const ItCsr *Rm = s->R;
    float      *X = s->X;
    const int   k = s->k;
    const int   nb = (int) (b1 - b0);
    const int   serve = (t == 0 && s->workers > 0);
    float      *Rb = scratch;
    float      *Pb = Rb + (size_t) IT_ALS_BLOCK * k;
    float      *Db = Pb + (size_t) IT_ALS_BLOCK * k;
    float      *Sb = Db + (size_t) IT_ALS_BLOCK * k;
    float      *rs = Sb + (size_t) IT_ALS_BLOCK * k;
    float      *active = rs + IT_ALS_BLOCK;
    int         any = 0;
    int         b;
    int         step;

    /* R = b - A x: the dense part -X (YtY + reg I), and the sparse part */
    AskDense(s, t, X + (size_t) b0 * k, Db, nb, -1.0f);
    for (b = 0; b < nb; b++)
    {
        int64_t     u = b0 + b;
        int64_t     start = Rm->indptr[u];
        int64_t     m = Rm->indptr[u + 1] - start;

        /* + sum_j (c_j - (c_j - 1) y_j.x) y_j, c_j = 1 + alpha r_j */
        if (m > 0)
            ALS_NAME(SparseRow) (s, serve, Rm->indices + start, Rm->data + start, m,
                                 Rm->indptr[b1] - start, 1, X + (size_t) u * k,
                                 Sb + (size_t) b * k, s->row_loss ? s->row_loss + u : NULL);
        else if (s->row_loss)
            s->row_loss[u] = 0.0;
    }
    WaitDense(s, t);
    for (b = 0; b < nb; b++)
    {
        int64_t     u = b0 + b;
        float      *res = Rb + (size_t) b * k;
        float      *pv = Pb + (size_t) b * k;

        if (Rm->indptr[u + 1] <= Rm->indptr[u])
        {
            memset(X + (size_t) u * k, 0, sizeof(float) * k);
            memset(pv, 0, sizeof(float) * k);
            active[b] = 0.0f;
            continue;
        }
        ALS_NAME(Add) (res, Db + (size_t) b * k, Sb + (size_t) b * k, k);
        memcpy(pv, res, sizeof(float) * k);
        rs[b] = ALS_NAME(Dot) (res, res, k);
        active[b] = (rs[b] >= IT_CG_EPS) ? 1.0f : 0.0f;
        any |= active[b] != 0.0f;
    }

    for (step = 0; step < s->cg_steps && any; step++)
    {
        int         last = (step == s->cg_steps - 1);

        /* A P: the dense part P (YtY + reg I) for the whole block ... */
        AskDense(s, t, Pb, Db, nb, 1.0f);
        /* ... and + sum_j alpha r_j (y_j . p) y_j */
        for (b = 0; b < nb; b++)
        {
            int64_t     u = b0 + b;
            int64_t     start = Rm->indptr[u];
            int64_t     m = Rm->indptr[u + 1] - start;

            if (active[b] != 0.0f)
                ALS_NAME(SparseRow) (s, serve, Rm->indices + start, Rm->data + start, m, m,
                                     0, Pb + (size_t) b * k, Sb + (size_t) b * k, NULL);
        }
        WaitDense(s, t);
        any = 0;
        for (b = 0; b < nb; b++)
        {
            float      *x = X + (size_t) (b0 + b) * k;
            float      *res = Rb + (size_t) b * k;
            float      *pv = Pb + (size_t) b * k;
            float      *ap = Sb + (size_t) b * k;
            float       pap;
            float       a;
            float       rsnew;
            float       beta;

            if (active[b] == 0.0f)
                continue;
            ALS_NAME(AddTo) (ap, Db + (size_t) b * k, k);
            pap = ALS_NAME(Dot) (pv, ap, k);
            if (!(pap > 0.0f) || !isfinite(pap))
            {
                memset(pv, 0, sizeof(float) * k);
                active[b] = 0.0f;
                continue;
            }
            a = rs[b] / pap;
            ALS_NAME(Axpy) (x, a, pv, k);
            if (last)
                continue;
            ALS_NAME(Axpy) (res, -a, ap, k);
            rsnew = ALS_NAME(Dot) (res, res, k);
            if (!(rsnew >= IT_CG_EPS))
            {
                memset(pv, 0, sizeof(float) * k);
                active[b] = 0.0f;
                continue;
            }
            beta = rsnew / rs[b];
            rs[b] = rsnew;
            ALS_NAME(Xpby) (pv, res, beta, k);
            any = 1;
        }
    }
}

/*
 * Over the rows [u0, u1): sums[0] = sum_u sum_i [c_ui (1 - s)^2 - s^2],
 * s = x_u . y_i, the correction of the observed cells to the all-zero
 * target objective; when want_quad, sums[2] = sum_u |x_u|^2 (sums[1] is
 * QuadRows's, on the calling thread).
 */
ALS_TARGET static void
ALS_NAME(LossRows) (const ItCsr *R, const float *X, const float *Y,
                    int k, float alpha, float thr, int want_quad, int64_t u0, int64_t u1,
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
            double      pv = r[j] >= thr ? 1.0 : 0.0;

            if (j + IT_PREFETCH_AHEAD < m)
                PrefetchRow(Y + (size_t) idx[j + IT_PREFETCH_AHEAD] * k, k);
            sv = ALS_NAME(Dot) (x, Y + (size_t) idx[j] * k, k);
            row += c * (pv - sv) * (pv - sv) - sv * sv;
        }
        obs += row;
        if (want_quad)
            xn += ALS_NAME(Dot) (x, x, k);
    }
    sums[0] = obs;
    sums[1] = 0.0;
    sums[2] = xn;
}

#undef ALS_DEFINE_SPARSE_PASS
#undef AV_LOAD
#undef AV_STORE
#undef AV
#undef AV4
#undef ALS_FN
#undef ALS_P
#undef ALS_NAME
#undef ALS_CAT
#undef ALS_CAT2
#undef ALS_W
#undef ALS_SUFFIX
#undef ALS_TARGET

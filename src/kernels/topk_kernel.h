/*
 * topk_kernel.h
 *    The block checks of topk.c, written once and compiled for several
 *    vector widths.  Internal to topk.c, which includes it once per width
 *    with:
 *
 *      TOPK_W       floats per vector: 4, 8 or 16
 *      TOPK_SUFFIX  appended to every name defined here
 *      TOPK_TARGET  a target attribute for the functions, or nothing
 *
 * and with IT_TOPK_BLOCK defined before.
 *
 * GCC lowers a compare of vectors wider than the target's registers to
 * one scalar compare and branch per lane: compiled for AVX2, a check of
 * 16-float vectors cost as much as the plain loop it was meant to skip.
 * So each target gets vectors its registers hold.  The answers are
 * compares, exact whatever the width.
 */

#define TOPK_CAT2(a, b) a##b
#define TOPK_CAT(a, b) TOPK_CAT2(a, b)
#define TOPK_NAME(n) TOPK_CAT(n, TOPK_SUFFIX)

/* doubles per vector: half as many as floats */
#define TOPK_DW (TOPK_W / 2)

typedef float TOPK_NAME(TopkV) __attribute__((vector_size(TOPK_W * sizeof(float))));
typedef int32_t TOPK_NAME(TopkI) __attribute__((vector_size(TOPK_W * sizeof(int32_t))));
typedef int64_t TOPK_NAME(TopkL) __attribute__((vector_size(TOPK_DW * sizeof(int64_t))));
typedef float TOPK_NAME(TopkHalf) __attribute__((vector_size(TOPK_DW * sizeof(float))));
typedef double TOPK_NAME(TopkD) __attribute__((vector_size(TOPK_DW * sizeof(double))));

#define TV TOPK_NAME(TopkV)
#define TI TOPK_NAME(TopkI)
#define TL TOPK_NAME(TopkL)
#define THALF TOPK_NAME(TopkHalf)
#define TD TOPK_NAME(TopkD)

/* Whether a lane of m (a compare's result, any lane width) is set. */
static inline TOPK_TARGET int
TOPK_NAME(AnyLane) (const void *m)
{
    TL          l;
    int64_t     r = 0;

    memcpy(&l, m, sizeof(l));
    for (int j = 0; j < TOPK_DW; j++)
        r |= l[j];
    return r != 0;
}

/*
 * Where the first block of IT_TOPK_BLOCK scores of [0, n) with a score
 * (plus blend * pop when pop is given) above worst starts, blocks counted
 * from 0 (the last one may be shorter); n when there is none.  One call
 * runs over all the blocks a heap skips, each checked as one vector
 * compare per TOPK_W scores and one test of the block's lanes.
 */
static TOPK_TARGET int64_t
TOPK_NAME(FirstAbove) (const float *restrict s, const float *restrict pop, float blend,
                       int64_t n, float worst)
{
    TV          w = worst - (TV) {0};
    TV          b = blend - (TV) {0};
    int64_t     i = 0;

    for (; i + IT_TOPK_BLOCK <= n; i += IT_TOPK_BLOCK)
    {
        TI          any = {0};

        if (pop == NULL)
            for (int j = 0; j < IT_TOPK_BLOCK; j += TOPK_W)
            {
                TV          v;

                memcpy(&v, s + i + j, sizeof(v));
                any |= v > w;
            }
        else
            for (int j = 0; j < IT_TOPK_BLOCK; j += TOPK_W)
            {
                TV          v,
                            p;

                memcpy(&v, s + i + j, sizeof(v));
                memcpy(&p, pop + i + j, sizeof(p));
                any |= v + b * p > w;
            }
        if (TOPK_NAME(AnyLane) (&any))
            return i;
    }
    /* the last, shorter block */
    for (int64_t j = i; j < n; j++)
        if (pop == NULL ? s[j] > worst : s[j] + blend * pop[j] > worst)
            return i;
    return n;
}

/*
 * Where the first whole block of IT_TOPK_BLOCK items of [0, n) starts in
 * which an item has (double) s + tol_scale * norm (norm 0 when norms is
 * NULL) >= threshold, TOPK_DW at a time, with a margin so that it says
 * yes whenever the scalar loop of it_topk_candidates would; where the
 * last, shorter block starts when no whole block has one.
 */
static TOPK_TARGET int64_t
TOPK_NAME(FirstCandidateBlock) (const float *restrict s, const float *restrict norms,
                                int64_t n, double tol_scale, double threshold)
{
    /* a hair lower: a fused multiply-add here must not skip what the scalar loop keeps */
    TD          th = (threshold - fabs(threshold) * 1e-12 - 1e-300) - (TD) {0};
    TD          ts = tol_scale - (TD) {0};
    int64_t     i = 0;

    for (; i + IT_TOPK_BLOCK <= n; i += IT_TOPK_BLOCK)
    {
        TL          any = {0};

        for (int j = 0; j < IT_TOPK_BLOCK; j += TOPK_DW)
        {
            THALF       a;
            TD          v;

            memcpy(&a, s + i + j, sizeof(a));
            v = __builtin_convertvector(a, TD);
            if (norms != NULL)
            {
                THALF       nb;

                memcpy(&nb, norms + i + j, sizeof(nb));
                v += ts * __builtin_convertvector(nb, TD);
            }
            any |= v >= th;
        }
        if (TOPK_NAME(AnyLane) (&any))
            return i;
    }
    return i;
}

/*
 * bmax[b] = the largest of block b's scores, NaN left out (-inf when
 * none), for the nb blocks of IT_TOPK_BLOCK scores of [0, n) (the last
 * may be shorter).
 */
static TOPK_TARGET void
TOPK_NAME(BlockMaxima) (const float *restrict s, int64_t n, int64_t nb, float *restrict bmax)
{
    for (int64_t blk = 0; blk < nb; blk++)
    {
        const float *p = s + blk * IT_TOPK_BLOCK;
        int64_t     len = n - blk * IT_TOPK_BLOCK;
        float       mx = -INFINITY;

        if (len >= IT_TOPK_BLOCK)
        {
            /* NaN to -inf, then a tree of maxima: no chain of dependent steps */
            TV          acc[IT_TOPK_BLOCK / TOPK_W];
            TV          ninf = -INFINITY - (TV) {0};
            float       lane[TOPK_W];

#pragma GCC unroll 16
            for (int j = 0; j < IT_TOPK_BLOCK / TOPK_W; j++)
            {
                TV          v;
                TI          ok;

                memcpy(&v, p + j * TOPK_W, sizeof(v));
                ok = v == v;
                acc[j] = (TV) ((ok & (TI) v) | (~ok & (TI) ninf));
            }
#pragma GCC unroll 4
            for (int h = IT_TOPK_BLOCK / TOPK_W / 2; h >= 1; h /= 2)
#pragma GCC unroll 8
                for (int j = 0; j < h; j++)
                {
                    TI          gt = acc[j] > acc[j + h];

                    acc[j] = (TV) ((gt & (TI) acc[j]) | (~gt & (TI) acc[j + h]));
                }
            memcpy(lane, &acc[0], sizeof(lane));
#pragma GCC unroll 4
            for (int h = TOPK_W / 2; h >= 1; h /= 2)
#pragma GCC unroll 8
                for (int j = 0; j < h; j++)
                    lane[j] = lane[j] > lane[j + h] ? lane[j] : lane[j + h];
            mx = lane[0];
        }
        else
            for (int64_t j = 0; j < len; j++)
                if (p[j] > mx)
                    mx = p[j];
        bmax[blk] = mx;
    }
}

#undef TV
#undef TI
#undef TL
#undef THALF
#undef TD
#undef TOPK_DW
#undef TOPK_W
#undef TOPK_SUFFIX
#undef TOPK_TARGET

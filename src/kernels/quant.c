/*
 * quant.c
 *    An 8-bit copy of the item matrix for a first pass over every item:
 *    a quarter of the bytes of the float matrix, scored against an 8-bit
 *    copy of the user's vector with integer dot products (exact), with a
 *    bound on each score's error so that the exact top k can be found from
 *    the approximate scores (it_topk_exact rescoring the few candidates).
 *
 * Layout: items in blocks of IT_Q8_BLOCK (16), dimensions in groups of
 * IT_Q8_GROUP (4), k padded with zero dimensions to kp = it_q8_kpad(k);
 * a block is kp / 4 runs of 64 bytes, run g holding dimensions 4g..4g+3 of
 * the block's 16 items, item by item:
 *   Q[((b * kp / 4 + g) * 16 + t) * 4 + d] = q[b * 16 + t][4 g + d]
 * which is the operand shape of one vpdpbusd (16 lanes of 4 byte products
 * summed into 32 bits) and of two 256-bit maddubs.  Item i is scale[i] *
 * q_i, q_i = round(y_i / scale[i]) in [-127, 127], scale[i] = max_j |y_ij|
 * / 127; the padding items of the last block are 0.  The user's vector is
 * quantised the same way, once per call (it_q8_query), and the score is
 * (float) (q_i . qx) * (scale[i] * sx): the integer sum is exact, so only
 * the two quantisations and three roundings are left to bound.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "clones.h"

/*
 * The scan is written three times: AVX-512 VNNI and AVX2 with intrinsics,
 * and plain C; the first call picks the best the CPU has.  Define
 * IT_NO_TARGET_CLONES to build the plain C only.
 */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(IT_NO_TARGET_CLONES)
#define IT_Q8_X86 1
#include <immintrin.h>
#endif

#define RUN_BYTES (IT_Q8_BLOCK * IT_Q8_GROUP)

int64_t
it_q8_padded(int64_t n)
{
    return (n + IT_Q8_BLOCK - 1) / IT_Q8_BLOCK * IT_Q8_BLOCK;
}

int
it_q8_kpad(int k)
{
    return (k + IT_Q8_GROUP - 1) / IT_Q8_GROUP * IT_Q8_GROUP;
}

size_t
it_q8_query_bytes(int k)
{
    return 4 * (size_t) it_q8_kpad(k);
}

/* The byte of dimension j of item i. */
static inline size_t
QIndex(int64_t i, int j, int kp)
{
    return (((size_t) (i / IT_Q8_BLOCK) * (kp / IT_Q8_GROUP) + j / IT_Q8_GROUP) * IT_Q8_BLOCK +
            i % IT_Q8_BLOCK) * IT_Q8_GROUP + j % IT_Q8_GROUP;
}

/*
 * v / s rounded and clamped to [-127, 127] (s > 0; v / s is at most about
 * 127 in magnitude, and a division cannot overflow where 1 / s could).
 */
static inline int8_t
Quantise(float v, float s)
{
    float       r = rintf(v / s);

    return (int8_t) (r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r);
}

void
it_q8_encode(const float *Y, int64_t n, int k, int8_t *Q, float *scale, float *tol, float *qnorm_max,
             float *tol_block)
{
    int64_t     padded = it_q8_padded(n);
    int         kp = it_q8_kpad(k);
    double      qmax = 0.0;

    memset(Q, 0, (size_t) padded * (size_t) kp);
    for (int64_t i = n; i < padded; i++)
        scale[i] = 0.0f;
    for (int64_t b = 0; b < padded / IT_Q8_BLOCK; b++)
        tol_block[b] = 0.0f;
    for (int64_t i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) i * k;
        float       mx = 0.0f;
        float       s;
        double      rr = 0.0;
        double      yy = 0.0;
        double      qq = 0.0;
        double      bound;

        for (int j = 0; j < k; j++)
        {
            float       a = fabsf(y[j]);

            mx = a > mx ? a : mx;   /* NaN never wins: the vectors are finite */
        }
        s = mx / 127.0f;
        for (int j = 0; j < k; j++)
        {
            /* any rounding will do: the bounds below are of the residual as it is */
            int8_t      v = s > 0.0f ? Quantise(y[j], s) : 0;
            double      sq = (double) s * v;
            double      d = (double) y[j] - sq;

            Q[QIndex(i, j, kp)] = v;
            rr += d * d;
            yy += (double) y[j] * y[j];
            qq += sq * sq;
        }
        scale[i] = s;

        /*
         * The item's part of the bound, |x| * tol[i]: with exact the float
         * dot product y.x (it_dot or a BLAS one, any order),
         *   |y.x - (s q).x| <= |y - s q| |x|           (the rounding to 8 bits)
         *   |exact - y.x|   <= (k + 2) eps |y| |x|
         * with 2 (k + 4) eps of slack.  The query's part is it_q8_query's.
         */
        bound = sqrt(rr) + (2.0 * k + 8.0) * (double) FLT_EPSILON * (sqrt(yy) + sqrt(rr));
        tol[i] = nextafterf((float) bound, INFINITY);
        if (tol[i] > tol_block[i / IT_Q8_BLOCK])
            tol_block[i / IT_Q8_BLOCK] = tol[i];
        qmax = sqrt(qq) > qmax ? sqrt(qq) : qmax;
    }
    *qnorm_max = n > 0 ? nextafterf((float) qmax, INFINITY) : 0.0f;
}

double
it_q8_query(const float *x, int k, float qnorm_max, int8_t *qx, float *sx)
{
    int         kp = it_q8_kpad(k);
    float       mx = 0.0f;
    float       s;
    double      rr = 0.0;
    double      xx = 0.0;
    double      rn;
    double      xn;

    for (int j = 0; j < k; j++)
    {
        float       a = fabsf(x[j]);

        mx = a > mx ? a : mx;
    }
    s = mx / 127.0f;
    for (int j = 0; j < kp; j++)
    {
        int8_t      v = (j < k && s > 0.0f) ? Quantise(x[j], s) : 0;

        qx[j] = v;
        /* the positive and negative parts, for vpdpbusd's unsigned operand */
        qx[kp + j] = (int8_t) (v > 0 ? v : 0);
        qx[2 * kp + j] = (int8_t) (v < 0 ? -v : 0);
        /* offset by 128, for the many-query scan's one unsigned product */
        qx[3 * kp + j] = (int8_t) (uint8_t) ((int) v + 128);
        if (j < k)
        {
            double      d = (double) x[j] - (double) s * v;

            rr += d * d;
            xx += (double) x[j] * x[j];
        }
    }
    *sx = s;
    rn = sqrt(rr);
    xn = sqrt(xx);

    /*
     * With z = sx qx (so |z| <= |x| + |rx|, rx = x - z) and w = s q the
     * item's 8-bit vector (|w| <= qnorm_max):
     *   |(s q).x - w.z| = |w.rx|                     <= qnorm_max |rx|
     *   the score, fl(fl(q.qx) fl(s sx)), is w.z within three roundings:
     *                                                <= 1.5 eps qnorm_max |z|
     * taken as 4 eps, and 1e-5 of slack for the double sums above.
     */
    return (double) qnorm_max * (rn + 4.0 * (double) FLT_EPSILON * (xn + rn)) * (1.0 + 1e-5);
}

/*
 * The items of block b in [lo, hi) get the block's scores acc
 * (IT_Q8_BLOCK floats) when scores is not NULL, and block_max (when not
 * NULL) their largest.
 */
static inline void
StoreBlock(const float *acc, int64_t b, int64_t lo, int64_t hi, float *scores, float *block_max)
{
    int64_t     first = b * IT_Q8_BLOCK;
    float       mx = -INFINITY;

    for (int t = 0; t < IT_Q8_BLOCK; t++)
        if (first + t >= lo && first + t < hi)
        {
            if (scores)
                scores[first + t - lo] = acc[t];
            mx = acc[t] > mx ? acc[t] : mx;
        }
    if (block_max)
        block_max[b - lo / IT_Q8_BLOCK] = mx;
}

static void
ScoresPlain(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
            const int8_t *qx, float sx, float *scores, float *block_max)
{
    const int8_t *Q = Qv;
    const float *scale = scalev;
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;

    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;
        int32_t     acc[IT_Q8_BLOCK] = {0};
        float       out[IT_Q8_BLOCK];

        for (int g = 0; g < groups; g++)
            for (int t = 0; t < IT_Q8_BLOCK; t++)
                for (int d = 0; d < IT_Q8_GROUP; d++)
                    acc[t] += (int32_t) q[(size_t) g * RUN_BYTES + t * IT_Q8_GROUP + d] *
                        qx[g * IT_Q8_GROUP + d];
        for (int t = 0; t < IT_Q8_BLOCK; t++)
            out[t] = (float) acc[t] * (scale[b * IT_Q8_BLOCK + t] * sx);
        StoreBlock(out, b, lo, hi, scores, block_max);
    }
}

#ifdef IT_Q8_X86
/* A block's 16 scores from a 512-bit scan: as StoreBlock stores them. */
__attribute__((target("avx512f")))
static inline void
StoreBlock512(__m512 acc, int64_t b, int64_t lo, int64_t hi, float *scores, float *block_max)
{
    if (b * IT_Q8_BLOCK >= lo && (b + 1) * IT_Q8_BLOCK <= hi)
    {
        if (scores)
            _mm512_storeu_ps(scores + b * IT_Q8_BLOCK - lo, acc);
        if (block_max)
            block_max[b - lo / IT_Q8_BLOCK] = _mm512_reduce_max_ps(acc);
    }
    else
    {
        float       out[IT_Q8_BLOCK];

        _mm512_storeu_ps(out, acc);
        StoreBlock(out, b, lo, hi, scores, block_max);
    }
}

/* The same from a 256-bit scan's two halves. */
__attribute__((target("avx2")))
static inline void
StoreBlock256(__m256 s0, __m256 s1, int64_t b, int64_t lo, int64_t hi, float *scores, float *block_max)
{
    if (b * IT_Q8_BLOCK >= lo && (b + 1) * IT_Q8_BLOCK <= hi)
    {
        if (scores)
        {
            _mm256_storeu_ps(scores + b * IT_Q8_BLOCK - lo, s0);
            _mm256_storeu_ps(scores + b * IT_Q8_BLOCK - lo + 8, s1);
        }
        if (block_max)
        {
            __m256      m8 = _mm256_max_ps(s0, s1);
            __m128      m4 = _mm_max_ps(_mm256_castps256_ps128(m8), _mm256_extractf128_ps(m8, 1));

            m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
            m4 = _mm_max_ss(m4, _mm_shuffle_ps(m4, m4, 1));
            block_max[b - lo / IT_Q8_BLOCK] = _mm_cvtss_f32(m4);
        }
    }
    else
    {
        float       out[IT_Q8_BLOCK];

        _mm256_storeu_ps(out, s0);
        _mm256_storeu_ps(out + 8, s1);
        StoreBlock(out, b, lo, hi, scores, block_max);
    }
}

/*
 * vpdpbusd multiplies unsigned by signed bytes: qx is split into its
 * positive and negative parts (both unsigned), two sums per block.
 */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void
ScoresAvx512(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
             const int8_t *qx, float sx, float *scores, float *block_max)
{
    const int8_t *Q = Qv;
    const float *scale = scalev;
    int         kp = it_q8_kpad(k);
    int         groups = kp / IT_Q8_GROUP;
    __m512      vsx = _mm512_set1_ps(sx);

    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;
        __m512i     pos = _mm512_setzero_si512();
        __m512i     neg = _mm512_setzero_si512();
        __m512      acc;

        for (int g = 0; g < groups; g++)
        {
            int32_t     wp;
            int32_t     wn;
            __m512i     v = _mm512_loadu_si512((const void *) (q + (size_t) g * RUN_BYTES));

            memcpy(&wp, qx + kp + g * IT_Q8_GROUP, sizeof(wp));
            memcpy(&wn, qx + 2 * kp + g * IT_Q8_GROUP, sizeof(wn));
            pos = _mm512_dpbusd_epi32(pos, _mm512_set1_epi32(wp), v);
            neg = _mm512_dpbusd_epi32(neg, _mm512_set1_epi32(wn), v);
        }
        acc = _mm512_cvtepi32_ps(_mm512_sub_epi32(pos, neg));
        acc = _mm512_mul_ps(acc, _mm512_mul_ps(_mm512_loadu_ps(scale + b * IT_Q8_BLOCK), vsx));
        StoreBlock512(acc, b, lo, hi, scores, block_max);
    }
}

/*
 * maddubs multiplies unsigned by signed bytes into saturating 16-bit
 * pairs: |qx| is the unsigned side and q takes qx's sign (sign_epi8), so
 * a pair is at most 2 * 127 * 127 < 32767 and never saturates.
 */
__attribute__((target("avx2")))
static void
ScoresAvx2(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
           const int8_t *qx, float sx, float *scores, float *block_max)
{
    const int8_t *Q = Qv;
    const float *scale = scalev;
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;
    __m256      vsx = _mm256_set1_ps(sx);
    __m256i     ones = _mm256_set1_epi16(1);

    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;
        __m256i     a0 = _mm256_setzero_si256();
        __m256i     a1 = _mm256_setzero_si256();
        __m256      s0;
        __m256      s1;

        for (int g = 0; g < groups; g++)
        {
            int32_t     w;
            __m256i     xv;
            __m256i     ax;
            __m256i     v0 = _mm256_loadu_si256((const __m256i *) (q + (size_t) g * RUN_BYTES));
            __m256i     v1 = _mm256_loadu_si256((const __m256i *) (q + (size_t) g * RUN_BYTES + 32));

            memcpy(&w, qx + g * IT_Q8_GROUP, sizeof(w));
            xv = _mm256_set1_epi32(w);
            ax = _mm256_abs_epi8(xv);
            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(v0, xv)), ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(v1, xv)), ones));
        }
        s0 = _mm256_mul_ps(_mm256_cvtepi32_ps(a0), _mm256_mul_ps(_mm256_loadu_ps(scale + b * IT_Q8_BLOCK), vsx));
        s1 = _mm256_mul_ps(_mm256_cvtepi32_ps(a1), _mm256_mul_ps(_mm256_loadu_ps(scale + b * IT_Q8_BLOCK + 8), vsx));
        StoreBlock256(s0, s1, b, lo, hi, scores, block_max);
    }
}
#endif

/* A scan of either copy (the 8-bit one's Q is int8_t, the 4-bit one's uint8_t). */
typedef void (*AnyScoresFn) (const void *Q, const void *scale, int64_t lo, int64_t hi, int k,
                             const int8_t *qx, float sx, float *scores, float *block_max);

/* A copy's scans by variant (IT_Q8_PLAIN, IT_Q8_AVX2, IT_Q8_AVX512). */
#ifdef IT_Q8_X86
#define X86_SCAN(fn) fn
#else
#define X86_SCAN(fn) NULL
#endif
static const AnyScoresFn Q8Scans[3] = {ScoresPlain, X86_SCAN(ScoresAvx2), X86_SCAN(ScoresAvx512)};

/* scans[variant] when this CPU runs it, else NULL. */
static AnyScoresFn
VariantOf(const AnyScoresFn *scans, int variant)
{
    if (variant == IT_Q8_PLAIN)
        return scans[IT_Q8_PLAIN];
#ifdef IT_Q8_X86
    __builtin_cpu_init();
    if (variant == IT_Q8_AVX2 && __builtin_cpu_supports("avx2"))
        return scans[IT_Q8_AVX2];
    if (variant == IT_Q8_AVX512 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
        return scans[IT_Q8_AVX512];
#endif
    return NULL;
}

/* The best of scans this CPU runs, picked at the first call (kept in *picked). */
static AnyScoresFn
BestOf(const AnyScoresFn *scans, AnyScoresFn *picked)
{
    if (*picked == NULL)
    {
        AnyScoresFn pick = NULL;

        for (int v = IT_Q8_AVX512; v >= IT_Q8_PLAIN && pick == NULL; v--)
            pick = VariantOf(scans, v);
        *picked = pick;
    }
    return *picked;
}

static AnyScoresFn Q8Best = NULL;

int
it_q8_scores_variant(int variant, const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                     const int8_t *qx, float sx, float *scores, float *block_max)
{
    AnyScoresFn fn = VariantOf(Q8Scans, variant);

    if (fn == NULL)
        return -1;
    fn(Q, scale, lo, hi, k, qx, sx, scores, block_max);
    return 0;
}

void
it_q8_scores(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
             const int8_t *qx, float sx, float *scores, float *block_max)
{
    BestOf(Q8Scans, &Q8Best)(Q, scale, lo, hi, k, qx, sx, scores, block_max);
}

/* ------------------------------------------------------------------------
 * The 4-bit copy: half the bytes of the 8-bit one, for the first pass
 * over large item sets.
 *
 * Layout: the 8-bit copy's blocks of 16 items and groups of 4 dimensions,
 * two groups to a 64-byte run: byte (b, r, t, d) holds dimension 8r + d
 * of item b * 16 + t in its low nibble and dimension 8r + 4 + d in its
 * high one, each as u = q + 8 with q = round(y / scale) in [-7, 7] (so u
 * is in [1, 15]; the padding dimensions and items are q = 0, u = 8):
 *   Q[((b * R + r) * 16 + t) * 4 + d],  R = it_q4_runs(k)
 * The 8-bit query qx (it_q8_query) is the signed operand: the score is
 * (float) (sum_j u_j qx_j - 8 sum_j qx_j) * (s_i * sx), the integer sum
 * exact, so the bound has the 8-bit copy's form.  The item's scale s_i is
 * (float) m * unit (ItQ4Scales: a byte an item, a float a block), 20
 * bytes a block beside its 512 of nibbles at 64 factors instead of 64.
 * ------------------------------------------------------------------------ */

int
it_q4_runs(int k)
{
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;

    return (groups + 1) / 2;
}

size_t
it_q4_bytes(int64_t n, int k)
{
    return (size_t) it_q8_padded(n) * (size_t) it_q4_runs(k) * IT_Q8_GROUP;
}

/* v / s rounded and clamped to [-7, 7] (s > 0). */
static inline int
Quantise4(float v, float s)
{
    float       r = rintf(v / s);

    return (int) (r > 7.0f ? 7.0f : r < -7.0f ? -7.0f : r);
}

void
it_q4_encode(const float *Y, int64_t n, int k, uint8_t *Q, ItQ4Scales *scale, float *tol, float *qnorm_max,
             float *tol_block)
{
    int64_t     padded = it_q8_padded(n);
    int         runs = it_q4_runs(k);
    double      qmax = 0.0;

    /* every nibble 8: q = 0 */
    memset(Q, 0x88, it_q4_bytes(n, k));
    memset(scale, 0, sizeof(ItQ4Scales) * (size_t) (padded / IT_Q8_BLOCK));
    for (int64_t b = 0; b < padded / IT_Q8_BLOCK; b++)
    {
        int64_t     end = (b + 1) * IT_Q8_BLOCK < n ? (b + 1) * IT_Q8_BLOCK : n;
        float       item_mx[IT_Q8_BLOCK] = {0};
        float       block_mx = 0.0f;
        float       unit;

        tol_block[b] = 0.0f;
        for (int64_t i = b * IT_Q8_BLOCK; i < end; i++)
        {
            for (int j = 0; j < k; j++)
            {
                float       a = fabsf(Y[(size_t) i * k + j]);

                item_mx[i % IT_Q8_BLOCK] = a > item_mx[i % IT_Q8_BLOCK] ? a : item_mx[i % IT_Q8_BLOCK];
            }
            block_mx = item_mx[i % IT_Q8_BLOCK] > block_mx ? item_mx[i % IT_Q8_BLOCK] : block_mx;
        }
        /*
         * Item i's scale (float) m * unit, m = ceil(max |y_i| / 7 / unit)
         * in [1, 255]: its own scale rounded up to a 255th of the
         * block's largest (an item far smaller than that gets 1).
         */
        unit = block_mx / 7.0f / 255.0f;
        scale[b].unit = unit;
        for (int64_t i = b * IT_Q8_BLOCK; i < end; i++)
        {
            float       want = item_mx[i % IT_Q8_BLOCK] / 7.0f;
            float       m = unit > 0.0f ? ceilf(want / unit) : 0.0f;

            if (!(want > 0.0f) || !(unit > 0.0f))
                m = 0.0f;
            else
                m = m < 1.0f ? 1.0f : m > 255.0f ? 255.0f : m;
            scale[b].m[i % IT_Q8_BLOCK] = (uint8_t) m;
        }
    }
    for (int64_t i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) i * k;
        float       s = it_q4_scale(scale, i);
        double      rr = 0.0;
        double      yy = 0.0;
        double      qq = 0.0;
        double      bound;

        for (int j = 0; j < k; j++)
        {
            int         v = s > 0.0f ? Quantise4(y[j], s) : 0;
            double      sq = (double) s * v;
            double      d = (double) y[j] - sq;
            int         r = j / (2 * IT_Q8_GROUP);
            int         high = (j / IT_Q8_GROUP) % 2;
            size_t      at = (((size_t) (i / IT_Q8_BLOCK) * runs + r) * IT_Q8_BLOCK + i % IT_Q8_BLOCK) *
                IT_Q8_GROUP + j % IT_Q8_GROUP;
            uint8_t     u = (uint8_t) (v + 8);

            Q[at] = high ? (uint8_t) ((Q[at] & 0x0F) | (u << 4)) : (uint8_t) ((Q[at] & 0xF0) | u);
            rr += d * d;
            yy += (double) y[j] * y[j];
            qq += sq * sq;
        }
        /* as it_q8_encode's: the rounding to 4 bits, and the float dot's */
        bound = sqrt(rr) + (2.0 * k + 8.0) * (double) FLT_EPSILON * (sqrt(yy) + sqrt(rr));
        tol[i] = nextafterf((float) bound, INFINITY);
        if (tol[i] > tol_block[i / IT_Q8_BLOCK])
            tol_block[i / IT_Q8_BLOCK] = tol[i];
        qmax = sqrt(qq) > qmax ? sqrt(qq) : qmax;
    }
    *qnorm_max = n > 0 ? nextafterf((float) qmax, INFINITY) : 0.0f;
}

/* 8 times the sum of the query's bytes: the offset of the nibbles taken off. */
static inline int32_t
Q4Offset(const int8_t *qx, int k)
{
    int32_t     sum = 0;
    int         kp = it_q8_kpad(k);

    for (int j = 0; j < kp; j++)
        sum += qx[j];
    return 8 * sum;
}

/* The 4 query bytes of group g (0 past the last group: the padding nibbles). */
static inline int32_t
Q4QueryWord(const int8_t *qx, int k, int g)
{
    int32_t     w = 0;

    if (g < (k + IT_Q8_GROUP - 1) / IT_Q8_GROUP)
        memcpy(&w, qx + g * IT_Q8_GROUP, sizeof(w));
    return w;
}

static void
Q4ScoresPlain(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
              const int8_t *qx, float sx, float *scores, float *block_max)
{
    const uint8_t *Q = Qv;
    const ItQ4Scales *scale = scalev;
    int         runs = it_q4_runs(k);
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;
    int32_t     off = Q4Offset(qx, k);

    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const uint8_t *q = Q + (size_t) b * runs * RUN_BYTES;
        int32_t     acc[IT_Q8_BLOCK] = {0};
        float       out[IT_Q8_BLOCK];

        for (int r = 0; r < runs; r++)
            for (int t = 0; t < IT_Q8_BLOCK; t++)
                for (int d = 0; d < IT_Q8_GROUP; d++)
                {
                    uint8_t     byte = q[(size_t) r * RUN_BYTES + t * IT_Q8_GROUP + d];

                    acc[t] += (int32_t) (byte & 0x0F) * qx[2 * r * IT_Q8_GROUP + d];
                    if (2 * r + 1 < groups)
                        acc[t] += (int32_t) (byte >> 4) * qx[(2 * r + 1) * IT_Q8_GROUP + d];
                }
        for (int t = 0; t < IT_Q8_BLOCK; t++)
            out[t] = (float) (acc[t] - off) * (((float) scale[b].m[t] * scale[b].unit) * sx);
        StoreBlock(out, b, lo, hi, scores, block_max);
    }
}

#ifdef IT_Q8_X86
/*
 * The SIMD scans broadcast the query's words from an array on the stack
 * (Q4Words), up to Q4_MAX_WORDS of them (k <= 1024); a longer query is
 * scanned by the plain loop, to the same bits.
 */
#define Q4_MAX_WORDS 256

/* The query's 4-byte words, two per run, 0 past the last group; false when they do not fit. */
static bool
Q4Words(const int8_t *qx, int k, int32_t *words)
{
    int         runs = it_q4_runs(k);

    if (2 * runs > Q4_MAX_WORDS)
        return false;
    for (int g = 0; g < 2 * runs; g++)
        words[g] = Q4QueryWord(qx, k, g);
    return true;
}

/* vpdpbusd: the nibbles are its unsigned operand, the query bytes the signed one. */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void
Q4ScoresAvx512(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
               const int8_t *qx, float sx, float *scores, float *block_max)
{
    const uint8_t *Q = Qv;
    const ItQ4Scales *scale = scalev;
    int         runs = it_q4_runs(k);
    int32_t     words[Q4_MAX_WORDS];
    __m512      vsx = _mm512_set1_ps(sx);
    __m512i     nib = _mm512_set1_epi8(0x0F);
    __m512i     voff;

    if (!Q4Words(qx, k, words))
    {
        Q4ScoresPlain(Qv, scalev, lo, hi, k, qx, sx, scores, block_max);
        return;
    }
    voff = _mm512_set1_epi32(Q4Offset(qx, k));
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const uint8_t *q = Q + (size_t) b * runs * RUN_BYTES;
        __m512i     a0 = _mm512_setzero_si512();
        __m512i     a1 = _mm512_setzero_si512();
        __m512      acc;
        __m512      ms;

        for (int r = 0; r < runs; r++)
        {
            __m512i     v = _mm512_loadu_si512((const void *) (q + (size_t) r * RUN_BYTES));

            a0 = _mm512_dpbusd_epi32(a0, _mm512_and_si512(v, nib), _mm512_set1_epi32(words[2 * r]));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib),
                                     _mm512_set1_epi32(words[2 * r + 1]));
        }
        acc = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_add_epi32(a0, a1), voff));
        ms = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) scale[b].m)));
        acc = _mm512_mul_ps(acc, _mm512_mul_ps(_mm512_mul_ps(ms, _mm512_set1_ps(scale[b].unit)), vsx));
        StoreBlock512(acc, b, lo, hi, scores, block_max);
    }
}

/*
 * maddubs: the nibbles unsigned, the query bytes signed; a 16-bit pair is
 * at most 2 * 15 * 128, two pairs added 7680: no saturation.
 */
__attribute__((target("avx2")))
static void
Q4ScoresAvx2(const void *Qv, const void *scalev, int64_t lo, int64_t hi, int k,
             const int8_t *qx, float sx, float *scores, float *block_max)
{
    const uint8_t *Q = Qv;
    const ItQ4Scales *scale = scalev;
    int         runs = it_q4_runs(k);
    int32_t     words[Q4_MAX_WORDS];
    __m256      vsx = _mm256_set1_ps(sx);
    __m256i     ones = _mm256_set1_epi16(1);
    __m256i     nib = _mm256_set1_epi8(0x0F);
    __m256i     voff;

    if (!Q4Words(qx, k, words))
    {
        Q4ScoresPlain(Qv, scalev, lo, hi, k, qx, sx, scores, block_max);
        return;
    }
    voff = _mm256_set1_epi32(Q4Offset(qx, k));
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const uint8_t *q = Q + (size_t) b * runs * RUN_BYTES;
        __m256i     a0 = _mm256_setzero_si256();
        __m256i     a1 = _mm256_setzero_si256();
        __m256      u;
        __m256      m0;
        __m256      m1;
        __m256      s0;
        __m256      s1;

        for (int r = 0; r < runs; r++)
        {
            __m256i     xl = _mm256_set1_epi32(words[2 * r]);
            __m256i     xh = _mm256_set1_epi32(words[2 * r + 1]);
            __m256i     v0 = _mm256_loadu_si256((const __m256i *) (q + (size_t) r * RUN_BYTES));
            __m256i     v1 = _mm256_loadu_si256((const __m256i *) (q + (size_t) r * RUN_BYTES + 32));
            __m256i     p0 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v0, nib), xl),
                                              _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v0, 4), nib), xh));
            __m256i     p1 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(v1, nib), xl),
                                              _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v1, 4), nib), xh));

            a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(p0, ones));
            a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(p1, ones));
        }
        u = _mm256_set1_ps(scale[b].unit);
        m0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) scale[b].m)));
        m1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (scale[b].m + 8))));
        s0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a0, voff)), _mm256_mul_ps(_mm256_mul_ps(m0, u), vsx));
        s1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(a1, voff)), _mm256_mul_ps(_mm256_mul_ps(m1, u), vsx));
        StoreBlock256(s0, s1, b, lo, hi, scores, block_max);
    }
}
#endif


static const AnyScoresFn Q4Scans[3] = {Q4ScoresPlain, X86_SCAN(Q4ScoresAvx2), X86_SCAN(Q4ScoresAvx512)};
static AnyScoresFn Q4Best = NULL;

int
it_q4_scores_variant(int variant, const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi, int k,
                     const int8_t *qx, float sx, float *scores, float *block_max)
{
    AnyScoresFn fn = VariantOf(Q4Scans, variant);

    if (fn == NULL)
        return -1;
    fn(Q, scale, lo, hi, k, qx, sx, scores, block_max);
    return 0;
}

void
it_q4_scores(const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi, int k,
             const int8_t *qx, float sx, float *scores, float *block_max)
{
    BestOf(Q4Scans, &Q4Best)(Q, scale, lo, hi, k, qx, sx, scores, block_max);
}

/*
 * A scan over threads: [lo, hi) cut at block boundaries into chunks (about
 * 8 per thread, at most SCAN_CHUNK_BLOCKS blocks each) that the caller and
 * the threads claim one at a time, so a thread that starts late takes
 * fewer; the threads are started for the call (it_run_parts,
 * it_start_threads: every signal blocked) or are the caller's team
 * (nthreads: its size).  Each item's score and each block's maximum is
 * computed as fn computes it alone, so the result depends neither on the
 * number of threads nor on who scanned which chunk.
 */
#define SCAN_CHUNK_BLOCKS 1024

typedef struct ScanJob
{
    AnyScoresFn fn;
    const void *Q;
    const void *scale;
    int64_t     lo;
    int64_t     hi;
    int         k;
    const int8_t *qx;
    float       sx;
    float      *scores;
    float      *block_max;
    int64_t     chunk;          /* blocks a chunk */
    int64_t     nchunks;
    int64_t     next;           /* atomic: the next chunk to claim */
} ScanJob;

static void *
ScanClaim(void *arg)
{
    ScanJob    *j = arg;
    int64_t     b0 = j->lo / IT_Q8_BLOCK;

    for (;;)
    {
        int64_t     c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        int64_t     from;
        int64_t     to;

        if (c >= j->nchunks)
            return NULL;
        from = c == 0 ? j->lo : (b0 + c * j->chunk) * IT_Q8_BLOCK;
        to = (b0 + (c + 1) * j->chunk) * IT_Q8_BLOCK;
        to = to < j->hi ? to : j->hi;
        j->fn(j->Q, j->scale, from, to, j->k, j->qx, j->sx, j->scores != NULL ? j->scores + (from - j->lo) : NULL,
              j->block_max != NULL ? j->block_max + c * j->chunk : NULL);
    }
}

static void
ScanThreads(AnyScoresFn fn, const void *Q, const void *scale, int64_t lo, int64_t hi, int k,
            const int8_t *qx, float sx, float *scores, float *block_max, int nthreads, ItTeam *team)
{
    void       *args[IT_Q8_MAX_SCAN_THREADS];
    int64_t     blocks = it_q8_blocks(lo, hi);
    ScanJob     job = {fn, Q, scale, lo, hi, k, qx, sx, scores, block_max};

    if (nthreads > IT_Q8_MAX_SCAN_THREADS)
        nthreads = IT_Q8_MAX_SCAN_THREADS;
    if (nthreads < 2 || blocks < 2 * nthreads)
    {
        fn(Q, scale, lo, hi, k, qx, sx, scores, block_max);
        return;
    }
    job.chunk = (blocks + 8 * nthreads - 1) / (8 * nthreads);
    job.chunk = job.chunk < SCAN_CHUNK_BLOCKS ? job.chunk : SCAN_CHUNK_BLOCKS;
    job.nchunks = (blocks + job.chunk - 1) / job.chunk;
    for (int t = 0; t < nthreads; t++)
        args[t] = &job;
    if (team != NULL)
        it_team_run(team, ScanClaim, args, nthreads);
    else
        it_run_parts(ScanClaim, args, nthreads);
}

static void
Q8Scores(const void *Q, const void *scale, int64_t lo, int64_t hi, int k,
         const int8_t *qx, float sx, float *scores, float *block_max)
{
    it_q8_scores(Q, scale, lo, hi, k, qx, sx, scores, block_max);
}

void
it_scan_pick(void)
{
    (void) BestOf(Q8Scans, &Q8Best);
    (void) BestOf(Q4Scans, &Q4Best);
}

void
it_q8_scores_threads(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                     const int8_t *qx, float sx, float *scores, float *block_max, int nthreads)
{
    /* picked before any thread reads it */
    it_scan_pick();
    ScanThreads(Q8Scores, Q, scale, lo, hi, k, qx, sx, scores, block_max, nthreads, NULL);
}

void
it_q4_scores_threads(const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi, int k,
                     const int8_t *qx, float sx, float *scores, float *block_max, int nthreads)
{
    ScanThreads(BestOf(Q4Scans, &Q4Best), Q, scale, lo, hi, k, qx, sx, scores, block_max, nthreads, NULL);
}

/*
 * Many queries at once: each item block is read from memory once for up
 * to 16 queries (the AVX-512 tiles, and ManyAvx2's chunks), so a batch of
 * users reads the 8-bit copy once per 16 users instead of once per user.
 * The integer sums are the same exact sums as it_q8_scores', and so are
 * the floats made of them.
 */

/* The most groups of dimensions the AVX-512 tiles pack on the stack. */
#define MANY_TILE_GROUPS 256

/* Query u's scores and block maxima (see it_q8_scores_many). */
#define MANY_SCORES(u)  (scores ? scores + (size_t) (u) * (size_t) (hi - lo) : NULL)
#define MANY_MAX(u)     (block_max + (size_t) (u) * (size_t) nb)

static void
ManyPlain(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int nq,
          const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;
    size_t      qbytes = it_q8_query_bytes(k);
    int64_t     nb = it_q8_blocks(lo, hi);

    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;

        for (int u = 0; u < nq; u++)
        {
            const int8_t *x = qx + (size_t) u * qbytes;
            int32_t     acc[IT_Q8_BLOCK] = {0};
            float       out[IT_Q8_BLOCK];

            for (int g = 0; g < groups; g++)
                for (int t = 0; t < IT_Q8_BLOCK; t++)
                    for (int d = 0; d < IT_Q8_GROUP; d++)
                        acc[t] += (int32_t) q[(size_t) g * RUN_BYTES + t * IT_Q8_GROUP + d] *
                            x[g * IT_Q8_GROUP + d];
            for (int t = 0; t < IT_Q8_BLOCK; t++)
                out[t] = (float) acc[t] * (scale[b * IT_Q8_BLOCK + t] * sx[u]);
            StoreBlock(out, b, lo, hi, MANY_SCORES(u), MANY_MAX(u));
        }
    }
}

#ifdef IT_Q8_X86
/*
 * With vpdpbusd's unsigned operand the query offset by 128 (its fourth
 * part, v + 128 per byte), and 128 times the item's sum of bytes taken
 * off again: one product per query and group, plus one per group for the
 * sums, instead of the single scan's two per query.  |sum| <= kp * 255 *
 * 127 fits.  A tile of U queries keeps its U sums in registers (U is a
 * constant at every call, so the loops over it unroll): each 64-byte run
 * of the item copy is loaded once for U products.
 */
__attribute__((target("avx2")))
static void ManyAvx2(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int nq,
                     const int8_t *qx, const float *sx, float *scores, float *block_max);

/*
 * acc += the products of w's unsigned and v's signed bytes, in place: GCC
 * copies each sum in and out of another register around the intrinsic,
 * which costs a tile of 16 sums more than the products themselves.
 */
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
static inline void
DpbusdTied(__m512i *acc, __m512i w, __m512i v)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(*acc) : "v"(w), "v"(v));
}

__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline))
static inline void
ManyTileAvx512(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int u0, const int U,
               const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    int         kp = it_q8_kpad(k);
    int         groups = kp / IT_Q8_GROUP;
    size_t      qbytes = it_q8_query_bytes(k);
    int64_t     nb = it_q8_blocks(lo, hi);
    int32_t     pk[MANY_TILE_GROUPS * 16];  /* group g of query u at pk[g * U + u] */
    __m512i     ones = _mm512_set1_epi8(1);

    for (int u = 0; u < U; u++)
        for (int g = 0; g < groups; g++)
            memcpy(&pk[g * U + u], qx + (size_t) (u0 + u) * qbytes + 3 * (size_t) kp + g * IT_Q8_GROUP,
                   sizeof(int32_t));
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;
        const int32_t *w = pk;
        __m512i     sum = _mm512_setzero_si512();
        __m512      sc = _mm512_loadu_ps(scale + b * IT_Q8_BLOCK);
        bool        whole = b * IT_Q8_BLOCK >= lo && (b + 1) * IT_Q8_BLOCK <= hi;
        __m512i     acc[16];

        /* named sums, not an array: GCC keeps them in registers */
#define TILE_SUMS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)
#define TILE_DECLARE(u) __m512i a##u = _mm512_setzero_si512();
#define TILE_STEP(u) if (U > u) DpbusdTied(&a##u, _mm512_set1_epi32(w[u]), v);
#define TILE_STORE(u) if (U > u) acc[u] = a##u;
        TILE_SUMS(TILE_DECLARE)
        for (int g = 0; g < groups; g++, w += U)
        {
            __m512i     v = _mm512_loadu_si512((const void *) (q + (size_t) g * RUN_BYTES));

            sum = _mm512_dpbusd_epi32(sum, ones, v);
            TILE_SUMS(TILE_STEP)
        }
        TILE_SUMS(TILE_STORE)
#undef TILE_SUMS
#undef TILE_DECLARE
#undef TILE_STEP
#undef TILE_STORE
        sum = _mm512_slli_epi32(sum, 7);
#pragma GCC unroll 16
        for (int u = 0; u < U; u++)
        {
            __m512      f = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[u], sum));

            f = _mm512_mul_ps(f, _mm512_mul_ps(sc, _mm512_set1_ps(sx[u0 + u])));
            if (whole)
            {
                if (scores != NULL)
                    _mm512_storeu_ps(MANY_SCORES(u0 + u) + b * IT_Q8_BLOCK - lo, f);
                MANY_MAX(u0 + u)[b - lo / IT_Q8_BLOCK] = _mm512_reduce_max_ps(f);
            }
            else
            {
                float       out[IT_Q8_BLOCK];

                _mm512_storeu_ps(out, f);
                StoreBlock(out, b, lo, hi, MANY_SCORES(u0 + u), MANY_MAX(u0 + u));
            }
        }
    }
}

/*
 * Tiles of 16 queries, the rest in tiles of 8, 4, 2 and 1; past
 * MANY_TILE_GROUPS groups (k > 1024) the AVX2 scan, whose sums and
 * floats are the same.
 */
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static void
ManyAvx512(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int nq,
           const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    int         u0 = 0;

    if (it_q8_kpad(k) / IT_Q8_GROUP > MANY_TILE_GROUPS)
    {
        ManyAvx2(Q, scale, lo, hi, k, nq, qx, sx, scores, block_max);
        return;
    }
    for (; nq - u0 >= 16; u0 += 16)
        ManyTileAvx512(Q, scale, lo, hi, k, u0, 16, qx, sx, scores, block_max);
    if (nq - u0 >= 8)
    {
        ManyTileAvx512(Q, scale, lo, hi, k, u0, 8, qx, sx, scores, block_max);
        u0 += 8;
    }
    if (nq - u0 >= 4)
    {
        ManyTileAvx512(Q, scale, lo, hi, k, u0, 4, qx, sx, scores, block_max);
        u0 += 4;
    }
    if (nq - u0 >= 2)
    {
        ManyTileAvx512(Q, scale, lo, hi, k, u0, 2, qx, sx, scores, block_max);
        u0 += 2;
    }
    if (nq - u0 >= 1)
        ManyTileAvx512(Q, scale, lo, hi, k, u0, 1, qx, sx, scores, block_max);
}

/* The most queries ManyAvx2 reads a chunk of blocks for, and the blocks of a chunk. */
#define MANY_AVX2_QUERIES 16
#define MANY_AVX2_CHUNK 16

/*
 * ManyAvx2's products for U queries (U is a constant at every call, so
 * the loop over it unrolls and its 2U sums stay in registers) over the
 * blocks [b0, b1): the single scan's sums (see ScoresAvx2) and floats.
 * pw and pa hold group g of query u, and its absolute bytes, at g * U + u.
 */
__attribute__((target("avx2"), always_inline))
static inline void
ManyTileAvx2(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int groups, int64_t b0, int64_t b1,
             const int U, const int32_t *pw, const int32_t *pa, const float *sx, float *const *scores,
             float *const *block_max)
{
    __m256i     ones = _mm256_set1_epi16(1);

    for (int64_t b = b0; b < b1; b++)
    {
        const int8_t *q = Q + (size_t) b * groups * RUN_BYTES;
        const int32_t *w = pw;
        const int32_t *a = pa;
        __m256      sc0 = _mm256_loadu_ps(scale + b * IT_Q8_BLOCK);
        __m256      sc1 = _mm256_loadu_ps(scale + b * IT_Q8_BLOCK + 8);

#define TILE_SUMS(X) X(0) X(1) X(2) X(3)
#define TILE_DECLARE(u) __m256i l##u = _mm256_setzero_si256(), h##u = _mm256_setzero_si256();
#define TILE_STEP(u) \
        if (U > u) \
        { \
            __m256i xv = _mm256_set1_epi32(w[u]); \
            __m256i ax = _mm256_set1_epi32(a[u]); \
            l##u = _mm256_add_epi32(l##u, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(v0, xv)), ones)); \
            h##u = _mm256_add_epi32(h##u, _mm256_madd_epi16(_mm256_maddubs_epi16(ax, _mm256_sign_epi8(v1, xv)), ones)); \
        }
#define TILE_STORE(u) \
        if (U > u) \
        { \
            __m256 vsx = _mm256_set1_ps(sx[u]); \
            StoreBlock256(_mm256_mul_ps(_mm256_cvtepi32_ps(l##u), _mm256_mul_ps(sc0, vsx)), \
                          _mm256_mul_ps(_mm256_cvtepi32_ps(h##u), _mm256_mul_ps(sc1, vsx)), \
                          b, lo, hi, scores[u], block_max[u]); \
        }
        TILE_SUMS(TILE_DECLARE)
        for (int g = 0; g < groups; g++, w += U, a += U)
        {
            __m256i     v0 = _mm256_loadu_si256((const __m256i *) (q + (size_t) g * RUN_BYTES));
            __m256i     v1 = _mm256_loadu_si256((const __m256i *) (q + (size_t) g * RUN_BYTES + 32));

            TILE_SUMS(TILE_STEP)
        }
        TILE_SUMS(TILE_STORE)
#undef TILE_SUMS
#undef TILE_DECLARE
#undef TILE_STEP
#undef TILE_STORE
    }
}

/*
 * The single scan's sums (see ScoresAvx2) for up to MANY_AVX2_QUERIES
 * queries at a time: a chunk of MANY_AVX2_CHUNK blocks (16 kB at 64
 * dimensions, in the first-level cache) is read from memory once and
 * then for each tile of 4 queries, the most whose 8 sums fit the 16
 * registers beside the item bytes.  Each query's broadcast words and
 * their absolute values are packed once per tile of queries.
 */
__attribute__((target("avx2")))
static void
ManyAvx2(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int nq,
         const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    int         groups = it_q8_kpad(k) / IT_Q8_GROUP;
    size_t      qbytes = it_q8_query_bytes(k);
    int64_t     nb = it_q8_blocks(lo, hi);
    int64_t     bfirst = lo / IT_Q8_BLOCK;
    int64_t     bend = hi > lo ? (hi - 1) / IT_Q8_BLOCK + 1 : bfirst;
    /* tile t's packed words (4 queries) at [t * MANY_TILE_GROUPS * 4 ..] */
    int32_t     pw[MANY_AVX2_QUERIES * MANY_TILE_GROUPS];
    int32_t     pa[MANY_AVX2_QUERIES * MANY_TILE_GROUPS];

    if (groups > MANY_TILE_GROUPS)
    {
        /* past 1024 dimensions: one query at a time, as the single scan */
        for (int u = 0; u < nq; u++)
            ScoresAvx2(Q, scale, lo, hi, k, qx + (size_t) u * qbytes, sx[u], MANY_SCORES(u), MANY_MAX(u));
        return;
    }
    for (int u0 = 0; u0 < nq; u0 += MANY_AVX2_QUERIES)
    {
        int         n = nq - u0 < MANY_AVX2_QUERIES ? nq - u0 : MANY_AVX2_QUERIES;

        /* each query's words and their absolute bytes, once for all the chunks */
        for (int t0 = 0; t0 < n; t0 += 4)
        {
            int         U = n - t0 < 4 ? n - t0 : 4;
            int32_t    *tw = pw + (size_t) t0 * MANY_TILE_GROUPS;
            int32_t    *ta = pa + (size_t) t0 * MANY_TILE_GROUPS;

            for (int u = 0; u < U; u++)
            {
                const int8_t *x = qx + (size_t) (u0 + t0 + u) * qbytes;

                for (int g = 0; g < groups; g++)
                {
                    int8_t      ab[IT_Q8_GROUP];

                    /* as _mm256_abs_epi8 (-128 stays 0x80: the unsigned 128) */
                    for (int d = 0; d < IT_Q8_GROUP; d++)
                        ab[d] = (int8_t) (x[g * IT_Q8_GROUP + d] < 0 ? -x[g * IT_Q8_GROUP + d] : x[g * IT_Q8_GROUP + d]);
                    memcpy(&tw[g * U + u], x + g * IT_Q8_GROUP, sizeof(int32_t));
                    memcpy(&ta[g * U + u], ab, sizeof(int32_t));
                }
            }
        }
        for (int64_t c0 = bfirst; c0 < bend; c0 += MANY_AVX2_CHUNK)
        {
            int64_t     c1 = bend - c0 < MANY_AVX2_CHUNK ? bend : c0 + MANY_AVX2_CHUNK;

            for (int t0 = 0; t0 < n; t0 += 4)
            {
                int         U = n - t0 < 4 ? n - t0 : 4;
                const int32_t *tw = pw + (size_t) t0 * MANY_TILE_GROUPS;
                const int32_t *ta = pa + (size_t) t0 * MANY_TILE_GROUPS;
                float      *ts[4];
                float      *tm[4];
                int         u1 = u0 + t0;

                for (int u = 0; u < U; u++)
                {
                    ts[u] = scores ? MANY_SCORES(u1 + u) : NULL;
                    tm[u] = block_max ? MANY_MAX(u1 + u) : NULL;
                }
                if (U == 4)
                    ManyTileAvx2(Q, scale, lo, hi, groups, c0, c1, 4, tw, ta, sx + u1, ts, tm);
                else if (U == 3)
                    ManyTileAvx2(Q, scale, lo, hi, groups, c0, c1, 3, tw, ta, sx + u1, ts, tm);
                else if (U == 2)
                    ManyTileAvx2(Q, scale, lo, hi, groups, c0, c1, 2, tw, ta, sx + u1, ts, tm);
                else
                    ManyTileAvx2(Q, scale, lo, hi, groups, c0, c1, 1, tw, ta, sx + u1, ts, tm);
            }
        }
    }
}
#endif

typedef void (*ManyFn) (const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k, int nq,
                        const int8_t *qx, const float *sx, float *scores, float *block_max);

static ManyFn
ManyVariantFn(int variant)
{
    if (variant == IT_Q8_PLAIN)
        return ManyPlain;
#ifdef IT_Q8_X86
    __builtin_cpu_init();
    if (variant == IT_Q8_AVX2 && __builtin_cpu_supports("avx2"))
        return ManyAvx2;
    if (variant == IT_Q8_AVX512 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni"))
        return ManyAvx512;
#endif
    return NULL;
}

int
it_q8_scores_many_variant(int variant, const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                          int nq, const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    ManyFn      fn = ManyVariantFn(variant);

    if (fn == NULL)
        return -1;
    fn(Q, scale, lo, hi, k, nq, qx, sx, scores, block_max);
    return 0;
}

void
it_q8_scores_many(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                  int nq, const int8_t *qx, const float *sx, float *scores, float *block_max)
{
    static ManyFn fn = NULL;

    if (fn == NULL)
    {
        ManyFn      pick = NULL;

        for (int v = IT_Q8_AVX512; v >= IT_Q8_PLAIN && pick == NULL; v--)
            pick = ManyVariantFn(v);
        fn = pick;
    }
    fn(Q, scale, lo, hi, k, nq, qx, sx, scores, block_max);
}

int64_t
it_q8_blocks(int64_t lo, int64_t hi)
{
    return hi > lo ? (hi - 1) / IT_Q8_BLOCK - lo / IT_Q8_BLOCK + 1 : 0;
}

/*
 * The scores of block b's items in [lo, hi) at v[i - b * IT_Q8_BLOCK]
 * (-inf for the others): from scores, or when it is NULL scanned again
 * for this block alone (it_q8_scores: the same integer sums, so the same
 * floats, as the scan that gave the block maxima).
 */
static void
ShortlistBlock(const float *scores, const ItQ8Rescan *rescan, int64_t b, int64_t lo, int64_t hi,
               float v[IT_Q8_BLOCK])
{
    int64_t     first = b * IT_Q8_BLOCK;
    int64_t     blo = first > lo ? first : lo;
    int64_t     bhi = first + IT_Q8_BLOCK < hi ? first + IT_Q8_BLOCK : hi;

    for (int t = 0; t < IT_Q8_BLOCK; t++)
        v[t] = -INFINITY;
    if (scores != NULL)
        memcpy(v + (blo - first), scores + (blo - lo), sizeof(float) * (size_t) (bhi - blo));
    else if (rescan->Q4 != NULL)
        it_q4_scores(rescan->Q4, rescan->scale4, blo, bhi, rescan->k, rescan->qx, rescan->sx,
                     v + (blo - first), NULL);
    else
        it_q8_scores(rescan->Q, rescan->scale, blo, bhi, rescan->k, rescan->qx, rescan->sx,
                     v + (blo - first), NULL);
}

/* t lowered a little: a floor the roundings of the sums behind it cannot lift. */
static inline double
FloorSlack(double t)
{
    return t - (fabs(t) * 1e-6 + 1e-30);
}

/* A float at most bound (-inf when bound is NaN): one float compare against it rules a block out. */
static inline float
FloatBelow(double bound)
{
    float       f = (float) bound;

    if (!((double) f <= bound))
        f = nextafterf(f, -INFINITY);
    return f == f ? f : -INFINITY;
}

/*
 * The largest tolerance of the blocks whose maximum reaches t (*at: -inf
 * and NaN maxima do not) and of every block (*all), over blocks [0, nb)
 * (tolerances are not negative); one pass in vector lanes.
 */
IT_CLONES static void
BlockTolMax(const float *restrict block_max, const float *restrict tol_block, int64_t nb, float t,
            float *at, float *all)
{
    float       a8[8] = {0};
    float       m8[8] = {0};
    float       a = 0.0f;
    float       m = 0.0f;
    int64_t     b = 0;

    for (; b + 8 <= nb; b += 8)
        for (int j = 0; j < 8; j++)
        {
            float       tb = tol_block[b + j];

            a8[j] = (block_max[b + j] >= t) & (tb > a8[j]) ? tb : a8[j];
            m8[j] = tb > m8[j] ? tb : m8[j];
        }
    for (; b < nb; b++)
    {
        a = block_max[b] >= t && tol_block[b] > a ? tol_block[b] : a;
        m = tol_block[b] > m ? tol_block[b] : m;
    }
    for (int j = 0; j < 8; j++)
    {
        a = a8[j] > a ? a8[j] : a;
        m = m8[j] > m ? m8[j] : m;
    }
    *at = a;
    *all = m;
}

/* The first i in [from, n) with v[i] >= t (n when none): 16 compares a test. */
IT_CLONES static int64_t
FirstAtLeast(const float *restrict v, int64_t from, int64_t n, float t)
{
    int64_t     i = from;

    for (; i < n && (i & 15) != 0; i++)
        if (v[i] >= t)
            return i;
    for (; i + 16 <= n; i += 16)
    {
        int         any = 0;

        for (int j = 0; j < 16; j++)
            any |= v[i + j] >= t;
        if (any)
            break;
    }
    for (; i < n; i++)
        if (v[i] >= t)
            return i;
    return n;
}

/*
 * The k best blocks (by their largest score of a non-excluded item) hold
 * k distinct items scoring at least T, the k-th largest block maximum, so
 * the k-th best score w is at least T, and the k best items are in
 * blocks whose maximum is at least T: their largest tolerance tolS is at
 * most that of those blocks, tS.  An item it_topk_candidates keeps has
 * scores[i] + tol(i) >= w - tolS >= T - tS.  Only the blocks where some
 * item can reach that are read again.
 *
 * ShortlistFloor: that floor, T - tS, and thr, a float at most floor -
 * (tol_scale * the largest tolerance + tol_const): a block whose maximum
 * is below thr is below the floor whatever its own tolerance, one float
 * compare.  block_max gets the blocks of excluded items their maximum
 * without them.  False when there is no such bound.
 */
static bool
ShortlistFloor(const float *scores, const ItQ8Rescan *rescan, float *block_max, int64_t lo, int64_t hi,
               const int32_t *exclude, int64_t nexclude, int k, const float *tol_block,
               double tol_scale, double tol_const, int32_t *top_idx, float *top_score,
               double *floor_out, float *thr_out, double *tol_max_out)
{
    int64_t     nb = it_q8_blocks(lo, hi);
    int64_t     b0 = lo / IT_Q8_BLOCK;
    int         got;
    double      t_k;
    double      t_s = 0.0;
    double      floor_;
    float       thr;
    float       tmax;
    float       t_at;

    if (k <= 0 || nb == 0 || (scores == NULL && rescan == NULL))
        return false;
    /* the blocks of excluded items: their maximum over the others */
    for (int64_t x = 0; x < nexclude; x++)
    {
        int64_t     b;
        float       v[IT_Q8_BLOCK];

        if (exclude[x] < 0 || exclude[x] >= hi - lo)
            continue;
        b = (exclude[x] + lo) / IT_Q8_BLOCK;
        if (x > 0 && exclude[x - 1] >= 0 && (exclude[x - 1] + lo) / IT_Q8_BLOCK == b)
            continue;           /* done at the block's first excluded item */
        ShortlistBlock(scores, rescan, b, lo, hi, v);
        for (int t = 0; t < IT_Q8_BLOCK; t++)
            v[t] = v[t] == v[t] ? v[t] : -INFINITY;
        /* the block's excluded items follow x in exclude (sorted) */
        for (int64_t ex = x; ex < nexclude && (exclude[ex] + lo) / IT_Q8_BLOCK == b; ex++)
            v[exclude[ex] + lo - b * IT_Q8_BLOCK] = -INFINITY;
        /* a tree of maxima (no NaN left), not a chain */
        for (int w = IT_Q8_BLOCK / 2; w > 0; w /= 2)
            for (int t = 0; t < w; t++)
                v[t] = v[t + w] > v[t] ? v[t + w] : v[t];
        block_max[b - b0] = v[0];
    }
    got = it_topk(block_max, nb, NULL, 0, k, top_idx, top_score);
    if (got < k || !isfinite(top_score[k - 1]) || !(tol_scale >= 0.0) || isnan(tol_const))
        return false;
    t_k = (double) top_score[k - 1];
    BlockTolMax(block_max, tol_block + b0, nb, top_score[k - 1], &t_at, &tmax);
    /* the largest t = tol_scale * tol + tol_const is that of the largest tol (tol_scale >= 0) */
    {
        double      t = tol_scale * (double) t_at + tol_const;

        t_s = t > t_s ? t : t_s;
    }
    floor_ = FloorSlack(t_k - t_s);
    if (!isfinite(floor_))
        return false;
    thr = FloatBelow(floor_ - (tol_scale * (double) tmax + tol_const));
    *floor_out = floor_;
    *thr_out = thr;
    if (tol_max_out != NULL)
        *tol_max_out = tol_scale * (double) tmax + tol_const;
    return true;
}

int64_t
it_q8_shortlist(const float *scores, const ItQ8Rescan *rescan, float *block_max, int64_t lo, int64_t hi,
                const int32_t *exclude, int64_t nexclude, int k,
                const float *tol, const float *tol_block, double tol_scale, double tol_const,
                int32_t *top_idx, float *top_score, int32_t *list, float *list_score, int64_t cap)
{
    int64_t     nb = it_q8_blocks(lo, hi);
    int64_t     b0 = lo / IT_Q8_BLOCK;
    int64_t     total = 0;
    int64_t     e = 0;
    double      floor_;
    float       thr;

    if (!ShortlistFloor(scores, rescan, block_max, lo, hi, exclude, nexclude, k, tol_block, tol_scale, tol_const,
                        top_idx, top_score, &floor_, &thr, NULL))
        return -1;
    for (int64_t b = 0; b < nb; b++)
    {
        float       v[IT_Q8_BLOCK];

        if (block_max[b] < thr ||
            !((double) block_max[b] + tol_scale * (double) tol_block[b0 + b] + tol_const >= floor_))
            continue;
        ShortlistBlock(scores, rescan, b0 + b, lo, hi, v);
        for (int64_t i = (b0 + b) * IT_Q8_BLOCK; i < (b0 + b + 1) * IT_Q8_BLOCK; i++)
        {
            float       sc = v[i - (b0 + b) * IT_Q8_BLOCK];

            if (i < lo || i >= hi ||
                !((double) sc + tol_scale * (double) tol[i - lo] + tol_const >= floor_))
                continue;
            while (e < nexclude && exclude[e] < i - lo)
                e++;
            if (e < nexclude && exclude[e] == i - lo)
                continue;
            if (total < cap)
            {
                list[total] = (int32_t) (i - lo);
                if (list_score != NULL)
                    list_score[total] = sc;
            }
            total++;
        }
    }
    return total;
}

/*
 * The 8-bit scores of block b's items (absolute b) at v (-inf outside
 * [lo, hi) and for the excluded items: exclude sorted, relative to lo;
 * *e, the first entry not before the block, moves past it).  Returns the
 * block's largest score.
 */
static float
Q8BlockScores(const int8_t *Q8, const float *scale8, const ItQ8Rescan *q, int64_t b, int64_t lo, int64_t hi,
              const int32_t *exclude, int64_t nexclude, int64_t *e, float *v)
{
    int64_t     first = b * IT_Q8_BLOCK;
    int64_t     blo = first > lo ? first : lo;
    int64_t     bhi = first + IT_Q8_BLOCK < hi ? first + IT_Q8_BLOCK : hi;
    float       mx = -INFINITY;

    for (int t = 0; t < IT_Q8_BLOCK; t++)
        v[t] = -INFINITY;
    it_q8_scores(Q8, scale8, blo, bhi, q->k, q->qx, q->sx, v + (blo - first), NULL);
    while (*e < nexclude && exclude[*e] < blo - lo)
        (*e)++;
    for (; *e < nexclude && exclude[*e] < bhi - lo; (*e)++)
        v[exclude[*e] + lo - first] = -INFINITY;
    for (int t = 0; t < IT_Q8_BLOCK; t++)
        mx = v[t] > mx ? v[t] : mx;     /* the scan's scores are not NaN: x is finite */
    return mx;
}

/* The first entry of exclude (sorted) not below first. */
static int64_t
FirstExcluded(const int32_t *exclude, int64_t nexclude, int64_t first)
{
    int64_t     a = 0;
    int64_t     z = nexclude;

    while (a < z)
    {
        int64_t     mid = a + (z - a) / 2;

        if (exclude[mid] < first)
            a = mid + 1;
        else
            z = mid;
    }
    return a;
}

/* How many candidate blocks ahead it_q4_shortlist fetches. */
#define Q4_AHEAD 8

/* Candidate blocks a thread claims at a time. */
#define Q4_BLOCKS_CHUNK 32

/* Pauses a worker of it_q4_shortlist's team spins between its two jobs. */
#define Q4_TEAM_SPINS (1u << 14)

/*
 * Candidate blocks [0, nc) of it_q4_shortlist scored from the 8-bit copy,
 * in chunks the threads claim: their scores at block_scores[c *
 * IT_Q8_BLOCK ..] (-inf outside [lo, hi) and for the excluded items),
 * their maxima at block_max[c].  The blocks are scattered: each is
 * fetched a few blocks ahead of its scan, so that their reads overlap.
 */
typedef struct Q4Blocks
{
    const int8_t *Q8;
    const float *scale8;
    const ItQ8Rescan *q;
    int64_t     lo;
    int64_t     hi;
    const int32_t *exclude;
    int64_t     nexclude;
    const int32_t *blocks;
    float      *block_max;
    float      *block_scores;
    int64_t     nc;
    size_t      block_bytes;
    int64_t     next;           /* atomic: the next chunk to claim */
} Q4Blocks;

static void *
Q4BlocksRun(void *arg)
{
    Q4Blocks   *p = arg;

    for (;;)
    {
        int64_t     from = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED) * Q4_BLOCKS_CHUNK;
        int64_t     to = from + Q4_BLOCKS_CHUNK < p->nc ? from + Q4_BLOCKS_CHUNK : p->nc;
        int64_t     e;

        if (from >= p->nc)
            return NULL;
        /* the first excluded item not before block from */
        e = FirstExcluded(p->exclude, p->nexclude, (int64_t) p->blocks[from] * IT_Q8_BLOCK - p->lo);
        for (int64_t c = from; c < to; c++)
        {
            /* the chunk's first blocks at its start, then one block ahead each */
            for (int64_t a = c == from ? c : c + Q4_AHEAD; a <= c + Q4_AHEAD && a < to; a++)
            {
                const char *ahead = (const char *) p->Q8 + (size_t) p->blocks[a] * p->block_bytes;

                for (size_t off = 0; off < p->block_bytes; off += 64)
                    __builtin_prefetch(ahead + off);
            }
            p->block_max[c] = Q8BlockScores(p->Q8, p->scale8, p->q, p->blocks[c], p->lo, p->hi, p->exclude,
                                            p->nexclude, &e, p->block_scores + c * IT_Q8_BLOCK);
        }
    }
}

int64_t
it_q4_shortlist(const ItQ8Rescan *q4, float *block_max, int64_t lo, int64_t hi,
                const int32_t *exclude, int64_t nexclude, int k, const float *tol4_block,
                double tol_scale, double tol4_const, const int8_t *Q8, const float *scale8,
                const float *tol8, const float *tol8_block, double tol8_const,
                int32_t *top_idx, float *top_score, int32_t *blocks, float *block_scores,
                int32_t *list, float *list_score, int64_t cap, int nthreads)
{
    int64_t     nb = it_q8_blocks(lo, hi);
    int64_t     b0 = lo / IT_Q8_BLOCK;
    int64_t     nc = 0;
    int64_t     total = -1;
    double      floor_;
    float       thr;
    double      t_s = 0.0;
    double      tol4_max;
    int         got;
    size_t      block_bytes = (size_t) it_q8_kpad(q4 != NULL ? q4->k : 0) * IT_Q8_BLOCK;
    ItTeam      team;

    if (q4 == NULL || q4->Q4 == NULL)
        return -1;
    nthreads = nthreads > IT_Q8_MAX_SCAN_THREADS ? IT_Q8_MAX_SCAN_THREADS : nthreads;
    /* picked before any thread reads them */
    it_scan_pick();
    /*
     * One team for the call's two shared passes (the scan, the candidate
     * blocks): the workers are started once, and spin while the caller
     * finds the candidates in between.
     */
    (void) it_team_start(&team, nb >= 2 * (int64_t) nthreads ? nthreads : 1, Q4_TEAM_SPINS);
    ScanThreads(Q4Best, q4->Q4, q4->scale4, lo, hi, q4->k, q4->qx, q4->sx, NULL, block_max, team.nthreads, &team);
    if (!ShortlistFloor(NULL, q4, block_max, lo, hi, exclude, nexclude, k, tol4_block, tol_scale, tol4_const,
                        top_idx, top_score, &floor_, &thr, &tol4_max))
        goto done;

    /*
     * A higher floor from the k best 4-bit blocks scored from the 8-bit
     * copy: they hold k distinct items whose 8-bit scores are at least the
     * smallest of their maxima, T8, so the k-th best score is at least T8
     * - tS8 (their largest 8-bit tolerance), a bound far tighter than the
     * 4-bit one's T - tS.  The blocks of the k best items are the same.
     */
    {
        double      t8 = INFINITY;
        double      ts8 = 0.0;
        float       v[IT_Q8_BLOCK];

        for (int g = 0; g < k; g++)
        {
            int64_t     b = b0 + top_idx[g];
            int64_t     eg = FirstExcluded(exclude, nexclude, b * IT_Q8_BLOCK - lo);
            double      t = tol_scale * (double) tol8_block[b] + tol8_const;
            float       mx = Q8BlockScores(Q8, scale8, q4, b, lo, hi, exclude, nexclude, &eg, v);

            t8 = (double) mx < t8 ? (double) mx : t8;
            ts8 = t > ts8 ? t : ts8;
        }
        t8 = FloorSlack(t8 - ts8);
        if (isfinite(t8) && t8 > floor_)
        {
            floor_ = t8;
            thr = FloatBelow(t8 - tol4_max);
        }
    }

    /* the candidate blocks: one float compare rules most out, 16 at a time */
    for (int64_t b = FirstAtLeast(block_max, 0, nb, thr); b < nb; b = FirstAtLeast(block_max, b + 1, nb, thr))
        if ((double) block_max[b] + tol_scale * (double) tol4_block[b0 + b] + tol4_const >= floor_)
            blocks[nc++] = (int32_t) (b0 + b);

    /*
     * Scored from the 8-bit copy (Q4BlocksRun), by the team when there
     * are many: each block's scores are the same whoever scores it.
     */
    {
        Q4Blocks    job = {Q8, scale8, q4, lo, hi, exclude, nexclude, blocks, block_max, block_scores, nc,
                           block_bytes, 0};
        void       *args[IT_Q8_MAX_SCAN_THREADS];

        for (int t = 0; t < team.nthreads; t++)
            args[t] = &job;
        if (nc >= 2 * Q4_BLOCKS_CHUNK)
            it_team_run(&team, Q4BlocksRun, args, team.nthreads);
        else
            Q4BlocksRun(&job);
    }

    /* the 8-bit floor over the candidates, as ShortlistFloor's over all blocks */
    got = it_topk(block_max, nc, NULL, 0, k, top_idx, top_score);
    if (got < k || !isfinite(top_score[k - 1]) || isnan(tol8_const))
        goto done;
    for (int64_t c = 0; c < nc; c++)
        if (block_max[c] >= top_score[k - 1])
        {
            double      t = tol_scale * (double) tol8_block[blocks[c]] + tol8_const;

            t_s = t > t_s ? t : t_s;
        }
    floor_ = FloorSlack((double) top_score[k - 1] - t_s);
    if (!isfinite(floor_))
        goto done;
    total = 0;
    for (int64_t c = 0; c < nc; c++)
    {
        int64_t     first = (int64_t) blocks[c] * IT_Q8_BLOCK;

        if (!((double) block_max[c] + tol_scale * (double) tol8_block[blocks[c]] + tol8_const >= floor_))
            continue;
        for (int t = 0; t < IT_Q8_BLOCK; t++)
        {
            float       sc = block_scores[c * IT_Q8_BLOCK + t];

            /* -inf: outside the range or excluded */
            if (sc == -INFINITY ||
                !((double) sc + tol_scale * (double) tol8[first + t - lo] + tol8_const >= floor_))
                continue;
            if (total < cap)
            {
                list[total] = (int32_t) (first + t - lo);
                if (list_score != NULL)
                    list_score[total] = sc;
            }
            total++;
        }
    }
done:
    it_team_stop(&team);
    return total;
}

/*
 * quant.c
 *    An 8-bit copy of the item matrix for a first pass over every item:
 *    a quarter of the bytes of the float matrix, so a scan that is bound
 *    by memory bandwidth reads a quarter as much, with a bound on each
 *    score's error so that the exact top k can be found from the
 *    approximate scores (it_topk_exact rescoring the few candidates).
 *
 * Layout: items in blocks of IT_Q8_BLOCK, and within a block dimension
 * by dimension: Q[(b * k + j) * IT_Q8_BLOCK + t] is dimension j of item
 * b * IT_Q8_BLOCK + t, so that one pass over a block adds each dimension
 * of 16 items at once, with no horizontal sums.  Item i is
 * scale[i] * q_i, q_i = round(y_i / scale[i]) in [-127, 127], scale[i] =
 * max_j |y_ij| / 127; the padding items of the last block are 0.
 *
 * Plain C, no PostgreSQL headers: see kernels.h for the contracts.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/*
 * The scan is written three times: AVX-512 and AVX2 with intrinsics
 * (GCC does not vectorise the int8 to float conversion of a vector
 * extension), and plain C; the first call picks the best the CPU has.
 * Define IT_NO_TARGET_CLONES to build the plain C only.
 */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(IT_NO_TARGET_CLONES)
#define IT_Q8_X86 1
#include <immintrin.h>
#endif

int64_t
it_q8_padded(int64_t n)
{
    return (n + IT_Q8_BLOCK - 1) / IT_Q8_BLOCK * IT_Q8_BLOCK;
}

void
it_q8_encode(const float *Y, int64_t n, int k, int8_t *Q, float *scale, float *tol)
{
    int64_t     padded = it_q8_padded(n);

    memset(Q, 0, (size_t) padded * (size_t) k);
    for (int64_t i = n; i < padded; i++)
        scale[i] = 0.0f;
    for (int64_t i = 0; i < n; i++)
    {
        const float *y = Y + (size_t) i * k;
        int8_t     *q = Q + (size_t) (i / IT_Q8_BLOCK) * k * IT_Q8_BLOCK + i % IT_Q8_BLOCK;
        float       mx = 0.0f;
        float       s;
        float       inv;
        double      rr = 0.0;
        double      yy = 0.0;
        double      bound;

        for (int j = 0; j < k; j++)
        {
            float       a = fabsf(y[j]);

            mx = a > mx ? a : mx;   /* NaN never wins: the vectors are finite */
        }
        s = mx / 127.0f;
        inv = s > 0.0f ? 1.0f / s : 0.0f;
        for (int j = 0; j < k; j++)
        {
            /* any rounding will do: the bound below is of the residual as it is */
            float       v = rintf(y[j] * inv);
            double      d;

            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[(size_t) j * IT_Q8_BLOCK] = (int8_t) v;
            d = (double) y[j] - (double) s * (double) v;
            rr += d * d;
            yy += (double) y[j] * y[j];
        }
        scale[i] = s;

        /*
         * |approx - exact| <= |x| * tol[i], where approx is this scan's
         * score and exact the float dot product of y and x (it_dot or a
         * BLAS one, any order):
         *   |y.x - (s q).x|       <= |y - s q| |x|             (the rounding to 8 bits)
         *   the scan's float sums <= (k + 2) eps |s q| |x|     (k products and adds, the scale)
         *   the exact float dot   <= (k + 2) eps |y| |x|
         * with |s q| <= |y| + |y - s q|, and 4 more eps of slack.
         */
        bound = sqrt(rr) + (2.0 * k + 8.0) * (double) FLT_EPSILON * (sqrt(yy) + sqrt(rr));
        tol[i] = nextafterf((float) bound, INFINITY);
    }
}

/* The items of block b in [lo, hi) get the block's scores acc (IT_Q8_BLOCK floats). */
static inline void
StoreBlock(const float *acc, int64_t b, int64_t lo, int64_t hi, float *scores)
{
    int64_t     first = b * IT_Q8_BLOCK;

    for (int t = 0; t < IT_Q8_BLOCK; t++)
        if (first + t >= lo && first + t < hi)
            scores[first + t - lo] = acc[t];
}

static void
ScoresPlain(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
            const float *x, float *scores)
{
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * k * IT_Q8_BLOCK;
        float       acc[IT_Q8_BLOCK] = {0};

        for (int j = 0; j < k; j++)
            for (int t = 0; t < IT_Q8_BLOCK; t++)
                acc[t] += (float) q[(size_t) j * IT_Q8_BLOCK + t] * x[j];
        for (int t = 0; t < IT_Q8_BLOCK; t++)
            acc[t] *= scale[b * IT_Q8_BLOCK + t];
        StoreBlock(acc, b, lo, hi, scores);
    }
}

#ifdef IT_Q8_X86
__attribute__((target("avx512f")))
static void
ScoresAvx512(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
             const float *x, float *scores)
{
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * k * IT_Q8_BLOCK;
        __m512      part[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        __m512      acc;
        float       out[IT_Q8_BLOCK];

        /* four sums, so that the adds do not wait on each other */
        for (int j = 0; j < k; j++)
        {
            __m128i     v = _mm_loadu_si128((const __m128i *) (q + (size_t) j * IT_Q8_BLOCK));

            part[j & 3] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(v)), _mm512_set1_ps(x[j]),
                                          part[j & 3]);
        }
        acc = _mm512_add_ps(_mm512_add_ps(part[0], part[1]), _mm512_add_ps(part[2], part[3]));
        acc = _mm512_mul_ps(acc, _mm512_loadu_ps(scale + b * IT_Q8_BLOCK));
        if (b * IT_Q8_BLOCK >= lo && (b + 1) * IT_Q8_BLOCK <= hi)
            _mm512_storeu_ps(scores + b * IT_Q8_BLOCK - lo, acc);
        else
        {
            _mm512_storeu_ps(out, acc);
            StoreBlock(out, b, lo, hi, scores);
        }
    }
}

__attribute__((target("avx2,fma")))
static void
ScoresAvx2(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
           const float *x, float *scores)
{
    for (int64_t b = lo / IT_Q8_BLOCK; b * IT_Q8_BLOCK < hi; b++)
    {
        const int8_t *q = Q + (size_t) b * k * IT_Q8_BLOCK;
        __m256      p0[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256      p1[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
        __m256      a0;
        __m256      a1;
        float       out[IT_Q8_BLOCK];

        for (int j = 0; j < k; j++)
        {
            const int8_t *qj = q + (size_t) j * IT_Q8_BLOCK;
            __m256      xj = _mm256_set1_ps(x[j]);

            p0[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *) qj))),
                                        xj, p0[j & 1]);
            p1[j & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *) (qj + 8)))),
                                        xj, p1[j & 1]);
        }
        a0 = _mm256_add_ps(p0[0], p0[1]);
        a1 = _mm256_add_ps(p1[0], p1[1]);
        a0 = _mm256_mul_ps(a0, _mm256_loadu_ps(scale + b * IT_Q8_BLOCK));
        a1 = _mm256_mul_ps(a1, _mm256_loadu_ps(scale + b * IT_Q8_BLOCK + 8));
        _mm256_storeu_ps(out, a0);
        _mm256_storeu_ps(out + 8, a1);
        StoreBlock(out, b, lo, hi, scores);
    }
}
#endif

typedef void (*ScoresFn) (const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                          const float *x, float *scores);

int
it_q8_scores_variant(int variant, const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                     const float *x, float *scores)
{
    ScoresFn    fn = NULL;

    __builtin_cpu_init();
    if (variant == IT_Q8_PLAIN)
        fn = ScoresPlain;
#ifdef IT_Q8_X86
    else if (variant == IT_Q8_AVX2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        fn = ScoresAvx2;
    else if (variant == IT_Q8_AVX512 && __builtin_cpu_supports("avx512f"))
        fn = ScoresAvx512;
#endif
    if (fn == NULL)
        return -1;
    fn(Q, scale, lo, hi, k, x, scores);
    return 0;
}

void
it_q8_scores(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
             const float *x, float *scores)
{
    static ScoresFn fn = NULL;

    if (fn == NULL)
    {
        ScoresFn    pick = ScoresPlain;

#ifdef IT_Q8_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            pick = ScoresAvx512;
        else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            pick = ScoresAvx2;
#endif
        fn = pick;
    }
    fn(Q, scale, lo, hi, k, x, scores);
}

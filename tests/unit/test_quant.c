/*
 * test_quant.c
 *    Unit tests of the 8-bit item copy (quant.c): the error bound holds,
 *    is not loose, and the exact top k found from the 8-bit scores is the
 *    top k of the float scores.
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 99173
#include "unit.h"

/* Items of varied scales: some zero, some tiny, some large, one spike. */
static float *
MakeItems(int64_t n, int k)
{
    float      *Y = malloc(sizeof(float) * n * k);

    for (int64_t i = 0; i < n; i++)
    {
        double      scale = (i % 13 == 0) ? 0.0 : (i % 7 == 0) ? 1e-3 : (i % 5 == 0) ? 40.0 : 1.0;

        for (int j = 0; j < k; j++)
            Y[i * k + j] = (float) (scale * (Uniform() - 0.5));
        if (i % 11 == 0)
            Y[i * k + (i % k)] = (float) (scale * 30.0);
    }
    return Y;
}

static double
DotD(const float *a, const float *b, int k)
{
    double      s = 0.0;

    for (int j = 0; j < k; j++)
        s += (double) a[j] * b[j];
    return s;
}

TEST(scores_within_the_bound_and_the_bound_is_tight)
{
    int         ks[] = {1, 7, 16, 64, 200};

    for (int t = 0; t < 5; t++)
    {
        int         k = ks[t];
        int64_t     n = 1000 + t;
        int64_t     padded = it_q8_padded(n);
        float      *Y = MakeItems(n, k);
        int8_t     *Q = malloc((size_t) padded * k);
        float      *scale = malloc(sizeof(float) * padded);
        float      *tol = malloc(sizeof(float) * n);
        float      *x = malloc(sizeof(float) * k);
        float      *scores = malloc(sizeof(float) * n);
        double      xn;
        int64_t     outside = 0;
        double      rel = 0.0;
        int64_t     nrel = 0;

        CHECK(padded % IT_Q8_BLOCK == 0 && padded >= n && padded < n + IT_Q8_BLOCK, "padded %lld", (long long) padded);
        it_q8_encode(Y, n, k, Q, scale, tol);
        for (int trial = 0; trial < 20; trial++)
        {
            for (int j = 0; j < k; j++)
                x[j] = (float) ((trial % 3 == 0 ? 100.0 : 1.0) * (Uniform() - 0.5));
            xn = sqrt(DotD(x, x, k));
            /* every implementation this CPU runs, then the one it_q8_scores picks */
            for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512 + 1; v++)
            {
                if (v <= IT_Q8_AVX512)
                {
                    if (it_q8_scores_variant(v, Q, scale, 0, n, k, x, scores) != 0)
                        continue;
                }
                else
                    it_q8_scores(Q, scale, 0, n, k, x, scores);
                for (int64_t i = 0; i < n; i++)
                    if (fabs((double) scores[i] - DotD(Y + i * k, x, k)) > xn * tol[i])
                        outside++;
            }
            for (int64_t i = 0; i < n; i++)
            {
                double      yn = sqrt(DotD(Y + i * k, Y + i * k, k));

                if (yn > 0.0)
                {
                    rel += tol[i] / yn;
                    nrel++;
                }
            }
        }
        CHECK(outside == 0, "k %d: %lld scores outside their bound", k, (long long) outside);
        /* 8 bits: the bound is a few percent of |y| */
        CHECK(rel / nrel < 0.05, "k %d: mean bound %.4f |y|", k, rel / nrel);
        for (int64_t i = 0; i < n; i++)
            if (i % 13 == 0)
                CHECK(scale[i] == 0.0f && tol[i] >= 0.0f && tol[i] < 1e-30f, "zero item %lld: scale %g tol %g",
                      (long long) i, scale[i], tol[i]);
        free(Y);
        free(Q);
        free(scale);
        free(tol);
        free(x);
        free(scores);
    }
}

TEST(a_range_scores_its_items_only)
{
    int         k = 5;
    int64_t     n = 70;
    int64_t     padded = it_q8_padded(n);
    float      *Y = MakeItems(n, k);
    int8_t     *Q = malloc((size_t) padded * k);
    float      *scale = malloc(sizeof(float) * padded);
    float      *tol = malloc(sizeof(float) * n);
    float       x[5] = {0.3f, -1.0f, 2.0f, 0.5f, -0.25f};
    float       all[70];
    float       part[70];

    it_q8_encode(Y, n, k, Q, scale, tol);
    for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512; v++)
    {
        if (it_q8_scores_variant(v, Q, scale, 0, n, k, x, all) != 0)
            continue;
        for (int i = 0; i < 70; i++)
            part[i] = -12345.0f;
        it_q8_scores_variant(v, Q, scale, 19, 37, k, x, part);
        for (int i = 0; i < 70; i++)
        {
            if (i < 18)
                CHECK(part[i] == all[19 + i], "variant %d item %d: %g vs %g", v, 19 + i, part[i], all[19 + i]);
            else
                CHECK(part[i] == -12345.0f, "variant %d: entry %d written", v, i);
        }
    }
    free(Y);
    free(Q);
    free(scale);
    free(tol);
}

typedef struct ExactArg
{
    const float *Y;
    const float *x;
    int         k;
} ExactArg;

static float
ExactDot(const void *arg, int64_t idx)
{
    const ExactArg *a = arg;

    return (float) DotD(a->Y + idx * a->k, a->x, a->k);
}

/* The k best by ExactDot, ties by the lower index, by a full sort. */
static int
Reference(const float *Y, const float *x, int64_t n, int k, const int32_t *ex, int nex, int top,
          int32_t *out)
{
    ExactArg    a = {Y, x, k};
    float      *s = malloc(sizeof(float) * n);
    char       *taken = calloc(n, 1);
    int         got = 0;

    for (int64_t i = 0; i < n; i++)
        s[i] = ExactDot(&a, i);
    for (int e = 0; e < nex; e++)
        taken[ex[e]] = 1;
    for (; got < top; got++)
    {
        int64_t     best = -1;

        for (int64_t i = 0; i < n; i++)
            if (!taken[i] && (best < 0 || s[i] > s[best]))
                best = i;
        if (best < 0)
            break;
        taken[best] = 1;
        out[got] = (int32_t) best;
    }
    free(s);
    free(taken);
    return got;
}

TEST(exact_top_k_from_the_8_bit_scores)
{
    int         k = 32;
    int64_t     n = 5000;
    int64_t     padded = it_q8_padded(n);
    float      *Y = MakeItems(n, k);
    int8_t     *Q = malloc((size_t) padded * k);
    float      *scale = malloc(sizeof(float) * padded);
    float      *tol = malloc(sizeof(float) * n);
    float      *x = malloc(sizeof(float) * k);
    float      *scores = malloc(sizeof(float) * n);
    int32_t    *cand = malloc(sizeof(int32_t) * n);
    float      *cand_score = malloc(sizeof(float) * n);
    int32_t     ex[3] = {11, 22, 55};
    int32_t     out[20];
    float       out_score[20];
    int32_t     ref[20];
    int         bad = 0;

    /* ties: item 400 + i repeats item 300 + i */
    for (int i = 0; i < 20; i++)
        memcpy(Y + (400 + i) * k, Y + (300 + i) * k, sizeof(float) * k);
    it_q8_encode(Y, n, k, Q, scale, tol);
    for (int trial = 0; trial < 30; trial++)
    {
        ExactArg    a = {Y, x, k};
        int64_t     need;
        int         got;
        int         nref;

        for (int j = 0; j < k; j++)
            x[j] = (float) (Uniform() - 0.5);
        it_q8_scores(Q, scale, 0, n, k, x, scores);
        got = it_topk_exact(scores, n, ex, 3, 20, tol, sqrt(DotD(x, x, k)), 0.0,
                            ExactDot, &a, cand, cand_score, n, &need, out, out_score);
        nref = Reference(Y, x, n, k, ex, 3, 20, ref);
        if (got != nref || memcmp(out, ref, sizeof(int32_t) * nref) != 0)
            bad++;
    }
    CHECK(bad == 0, "%d of 30 top-20 lists differ from the exact ranking", bad);
    free(Y);
    free(Q);
    free(scale);
    free(tol);
    free(x);
    free(scores);
    free(cand);
    free(cand_score);
}

int
main(void)
{
    RUN(scores_within_the_bound_and_the_bound_is_tight);
    RUN(a_range_scores_its_items_only);
    RUN(exact_top_k_from_the_8_bit_scores);
    return unit_summary();
}

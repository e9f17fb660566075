/*
 * test_quant.c
 *    Unit tests of the 8-bit item copy (quant.c): every implementation the
 *    CPU runs gives the same scores, the error bound holds (random items and
 *    queries, zero vectors, large norms, saturating bytes, k not a multiple
 *    of the group or block) and is not loose, and the exact top k found
 *    from the 8-bit scores is the top k of a full sort of the float scores.
 *    The tests of a single query's scan run twice: for the 8-bit copy and
 *    for the 4-bit one (it_q4_*), whose contract is the same.
 */
#include <float.h>
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

/* The copy the single-query tests scan: 8 or 4 bits. */
static int  Bits = 8;

/* The 8-bit (or 4-bit: Q4) copy of n items, with room for every implementation's use. */
typedef struct Copy
{
    int64_t     n;
    int         k;
    int8_t     *Q;
    uint8_t    *Q4;
    float      *scale;          /* the 8-bit copy's */
    ItQ4Scales *scale4;         /* the 4-bit copy's */
    float      *tol;
    float       qmax;
    float      *tolb;
} Copy;

static Copy
Encode(const float *Y, int64_t n, int k)
{
    Copy        c = {.n = n, .k = k};
    int64_t     padded = it_q8_padded(n);

    c.Q = malloc((size_t) padded * it_q8_kpad(k));
    c.scale = malloc(sizeof(float) * padded);
    c.tol = malloc(sizeof(float) * (n > 0 ? n : 1));
    c.tolb = malloc(sizeof(float) * (padded / IT_Q8_BLOCK + 1));
    c.Q4 = Bits == 4 ? malloc(it_q4_bytes(n, k)) : NULL;
    c.scale4 = Bits == 4 ? malloc(sizeof(ItQ4Scales) * (size_t) (padded / IT_Q8_BLOCK + 1)) : NULL;
    if (Bits == 4)
        it_q4_encode(Y, n, k, c.Q4, c.scale4, c.tol, &c.qmax, c.tolb);
    else
        it_q8_encode(Y, n, k, c.Q, c.scale, c.tol, &c.qmax, c.tolb);
    return c;
}

static void
FreeCopy(Copy *c)
{
    free(c->Q);
    free(c->Q4);
    free(c->scale);
    free(c->scale4);
    free(c->tol);
    free(c->tolb);
}

/*
 * Scores of items [lo, hi) with implementation v (v > IT_Q8_AVX512: the
 * one it_q8_scores picks); false when this CPU cannot run v.  *bound: the
 * query's part of the error bound.
 */
static int
ScanMax(const Copy *c, int v, const float *x, int64_t lo, int64_t hi, float *scores, float *block_max,
        double *bound)
{
    int8_t     *qx = malloc(it_q8_query_bytes(c->k));
    float       sx;
    int         ok = 1;

    *bound = it_q8_query(x, c->k, c->qmax, qx, &sx);
    if (v <= IT_Q8_AVX512 && c->Q4)
        ok = it_q4_scores_variant(v, c->Q4, c->scale4, lo, hi, c->k, qx, sx, scores, block_max) == 0;
    else if (v <= IT_Q8_AVX512)
        ok = it_q8_scores_variant(v, c->Q, c->scale, lo, hi, c->k, qx, sx, scores, block_max) == 0;
    else if (c->Q4)
        it_q4_scores(c->Q4, c->scale4, lo, hi, c->k, qx, sx, scores, block_max);
    else
        it_q8_scores(c->Q, c->scale, lo, hi, c->k, qx, sx, scores, block_max);
    free(qx);
    return ok;
}

/* The copy's scan of a quantised query, on one thread or over nthreads (< 0: it_q*_scores). */
static void
ScanQuery(const Copy *c, const int8_t *qx, float sx, int64_t lo, int64_t hi, float *scores, float *block_max,
          int nthreads)
{
    if (c->Q4 && nthreads < 0)
        it_q4_scores(c->Q4, c->scale4, lo, hi, c->k, qx, sx, scores, block_max);
    else if (c->Q4)
        it_q4_scores_threads(c->Q4, c->scale4, lo, hi, c->k, qx, sx, scores, block_max, nthreads);
    else if (nthreads < 0)
        it_q8_scores(c->Q, c->scale, lo, hi, c->k, qx, sx, scores, block_max);
    else
        it_q8_scores_threads(c->Q, c->scale, lo, hi, c->k, qx, sx, scores, block_max, nthreads);
}

static int
Scan(const Copy *c, int v, const float *x, int64_t lo, int64_t hi, float *scores, double *bound)
{
    return ScanMax(c, v, x, lo, hi, scores, NULL, bound);
}

/* The number of items of c scored outside their bound by implementation v (-1: cannot run). */
static int64_t
Outside(const Copy *c, const float *Y, const float *x, int v, float *scores, const float *ref)
{
    double      xn = sqrt(DotD(x, x, c->k));
    double      qb;
    int64_t     outside = 0;

    if (!Scan(c, v, x, 0, c->n, scores, &qb))
        return -1;
    for (int64_t i = 0; i < c->n; i++)
    {
        double      err = fabs((double) scores[i] - DotD(Y + i * c->k, x, c->k));

        if (!(err <= xn * c->tol[i] + qb))
            outside++;
        /* every implementation: the same bits */
        if (ref != NULL && memcmp(&scores[i], &ref[i], sizeof(float)) != 0)
            outside++;
    }
    return outside;
}

TEST(scores_within_the_bound_and_the_bound_is_tight)
{
    int         ks[] = {1, 3, 7, 16, 33, 64, 200};
    int         ran[IT_Q8_AVX512 + 2] = {0};

    for (int t = 0; t < 7; t++)
    {
        int         k = ks[t];
        int64_t     n = 1000 + t;
        int64_t     padded = it_q8_padded(n);
        float      *Y = MakeItems(n, k);
        Copy        c;
        float      *x = malloc(sizeof(float) * k);
        float      *scores = malloc(sizeof(float) * n);
        float      *ref = malloc(sizeof(float) * n);
        int64_t     outside = 0;
        double      rel = 0.0;
        double      qrel = 0.0;
        int64_t     nrel = 0;

        CHECK(padded % IT_Q8_BLOCK == 0 && padded >= n && padded < n + IT_Q8_BLOCK, "padded %lld", (long long) padded);
        CHECK(it_q8_kpad(k) % IT_Q8_GROUP == 0 && it_q8_kpad(k) >= k && it_q8_kpad(k) < k + IT_Q8_GROUP,
              "kpad %d of %d", it_q8_kpad(k), k);
        c = Encode(Y, n, k);
        for (int trial = 0; trial < 24; trial++)
        {
            double      qb;

            /* large norms, a spike (most of x lost to rounding), a zero vector */
            for (int j = 0; j < k; j++)
                x[j] = (float) ((trial % 3 == 0 ? 1e6 : 1.0) * (Uniform() - 0.5));
            if (trial % 4 == 1)
                x[trial % k] = 50.0f;
            if (trial == 5)
                memset(x, 0, sizeof(float) * k);
            Scan(&c, IT_Q8_PLAIN, x, 0, n, ref, &qb);
            if (trial == 5)
                CHECK(qb == 0.0, "k %d: zero query, bound %g", k, qb);
            /* every implementation this CPU runs, then the one it_q8_scores picks */
            for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512 + 1; v++)
            {
                int64_t     o = Outside(&c, Y, x, v, scores, ref);

                if (o < 0)
                    continue;
                ran[v]++;
                outside += o;
            }
            if (trial % 3 != 0 && trial % 4 != 1 && trial != 5)
                for (int64_t i = 0; i < n; i++)
                {
                    double      yn = sqrt(DotD(Y + i * k, Y + i * k, k));

                    /*
                     * At 4 bits an item below a 255th of its block's
                     * largest has that step, not its own (checked below)
                     */
                    if (yn > 0.0 && (Bits == 8 || c.scale4[i / IT_Q8_BLOCK].m[i % IT_Q8_BLOCK] > 1))
                    {
                        rel += c.tol[i] / yn;
                        qrel += qb / (c.qmax * sqrt(DotD(x, x, k)));
                        nrel++;
                    }
                }
        }
        CHECK(outside == 0, "%d bits, k %d: %lld scores outside their bound or differing", Bits, k,
              (long long) outside);
        /*
         * Each part of the bound is a few percent of |y| |x|: the item's,
         * 1 / (2 * 127) of |y| for a uniform item at 8 bits, 1 / (2 * 7) at
         * 4 (the spikes lose more); the query is 8-bit in both.
         */
        CHECK(rel / nrel < (Bits == 8 ? 0.05 : 0.2), "%d bits, k %d: mean item bound %.4f |y|", Bits, k,
              rel / nrel);
        CHECK(qrel / nrel < 0.05, "k %d: mean query bound %.4f |x| max |y|", k, qrel / nrel);
        for (int64_t b = 0; b < padded / IT_Q8_BLOCK; b++)
        {
            float       mx = 0.0f;

            for (int64_t i = b * IT_Q8_BLOCK; i < (b + 1) * IT_Q8_BLOCK && i < n; i++)
                mx = c.tol[i] > mx ? c.tol[i] : mx;
            CHECK(c.tolb[b] == mx, "k %d block %lld: tol %g, the largest %g", k, (long long) b, c.tolb[b], mx);
        }
        /* 4 bits: within half a step of the item's scale in every dimension */
        for (int64_t i = 0; i < n && Bits == 4; i++)
        {
            double      si = it_q4_scale(c.scale4, i);
            double      yn = sqrt(DotD(Y + i * k, Y + i * k, k));

            CHECK(c.tol[i] <= si / 2.0 * sqrt(k) * (1.0 + 1e-5) + (2.0 * k + 9.0) * FLT_EPSILON * 2.0 * yn + 1e-30,
                  "k %d item %lld: bound %g, scale %g", k, (long long) i, c.tol[i], si);
        }
        for (int64_t i = 0; i < n; i++)
            if (i % 13 == 0)
            {
                float       si = Bits == 4 ? it_q4_scale(c.scale4, i) : c.scale[i];

                CHECK(si == 0.0f && c.tol[i] >= 0.0f && c.tol[i] < 1e-30f, "zero item %lld: scale %g tol %g",
                      (long long) i, si, c.tol[i]);
            }
        free(Y);
        FreeCopy(&c);
        free(x);
        free(scores);
        free(ref);
    }
    CHECK(ran[IT_Q8_PLAIN] > 0 && ran[IT_Q8_AVX512 + 1] > 0, "plain ran %d times, the picked one %d",
          ran[IT_Q8_PLAIN], ran[IT_Q8_AVX512 + 1]);
    printf("    implementations run: plain %d, avx2 %d, avx512-vnni %d\n",
           ran[IT_Q8_PLAIN], ran[IT_Q8_AVX2], ran[IT_Q8_AVX512]);
}

/*
 * Bytes at +-127 everywhere with the query's signs: the largest integer
 * sums there are (a 16-bit pair of maddubs at 2 * 127 * 127 must not
 * saturate), and the same at the opposite signs.
 */
TEST(full_scale_bytes_do_not_saturate)
{
    int         k = 130;
    int64_t     n = 40;
    float      *Y = malloc(sizeof(float) * n * k);
    float      *x = malloc(sizeof(float) * k);
    float      *scores = malloc(sizeof(float) * n);
    Copy        c;

    for (int j = 0; j < k; j++)
        x[j] = (j % 3 == 0) ? -2.0f : 2.0f;
    for (int64_t i = 0; i < n; i++)
        for (int j = 0; j < k; j++)
            Y[i * k + j] = (float) ((i % 2 == 0 ? 1.0 : -1.0) * (i + 1) * x[j]);
    c = Encode(Y, n, k);
    for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512 + 1; v++)
    {
        double      qb;

        if (!Scan(&c, v, x, 0, n, scores, &qb))
            continue;
        /* every byte is exact here, so is the score up to its roundings */
        for (int64_t i = 0; i < n; i++)
        {
            double      want = (i % 2 == 0 ? 1.0 : -1.0) * (i + 1) * 4.0 * k;

            CHECK(fabs(scores[i] - want) <= 1e-5 * fabs(want), "variant %d item %lld: %g, want %g",
                  v, (long long) i, scores[i], want);
        }
    }
    free(Y);
    FreeCopy(&c);
    free(x);
    free(scores);
}

TEST(a_range_scores_its_items_only)
{
    int         k = 5;
    int64_t     n = 70;
    float      *Y = MakeItems(n, k);
    Copy        c = Encode(Y, n, k);
    float       x[5] = {0.3f, -1.0f, 2.0f, 0.5f, -0.25f};
    float       all[70];
    float       part[70];
    double      qb;

    for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512; v++)
    {
        if (!Scan(&c, v, x, 0, n, all, &qb))
            continue;
        for (int i = 0; i < 70; i++)
            part[i] = -12345.0f;
        Scan(&c, v, x, 19, 37, part, &qb);
        for (int i = 0; i < 70; i++)
        {
            if (i < 18)
                CHECK(part[i] == all[19 + i], "variant %d item %d: %g vs %g", v, 19 + i, part[i], all[19 + i]);
            else
                CHECK(part[i] == -12345.0f, "variant %d: entry %d written", v, i);
        }
    }
    free(Y);
    FreeCopy(&c);
}

/* Block maxima of every implementation, over ranges that start and end inside blocks. */
TEST(block_maxima_of_a_range)
{
    int         k = 19;
    int64_t     n = 300;
    float      *Y = MakeItems(n, k);
    Copy        c = Encode(Y, n, k);
    float      *x = malloc(sizeof(float) * k);
    float       scores[300];
    float       bm[300 / IT_Q8_BLOCK + 2];
    int64_t     ranges[][2] = {{0, 300}, {5, 37}, {16, 32}, {17, 18}, {250, 300}, {31, 33}};
    int         bad = 0;

    for (int j = 0; j < k; j++)
        x[j] = (float) (Uniform() - 0.5);
    CHECK(it_q8_blocks(0, 300) == 19 && it_q8_blocks(5, 37) == 3 && it_q8_blocks(16, 32) == 1 &&
          it_q8_blocks(7, 7) == 0, "blocks %lld %lld %lld", (long long) it_q8_blocks(0, 300),
          (long long) it_q8_blocks(5, 37), (long long) it_q8_blocks(16, 32));
    for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512 + 1; v++)
        for (int r = 0; r < 6; r++)
        {
            int64_t     lo = ranges[r][0];
            int64_t     hi = ranges[r][1];
            double      qb;

            if (!ScanMax(&c, v, x, lo, hi, scores, bm, &qb))
                continue;
            for (int64_t b = 0; b < it_q8_blocks(lo, hi); b++)
            {
                float       mx = -INFINITY;

                for (int64_t i = (lo / IT_Q8_BLOCK + b) * IT_Q8_BLOCK; i < (lo / IT_Q8_BLOCK + b + 1) * IT_Q8_BLOCK; i++)
                    if (i >= lo && i < hi)
                        mx = scores[i - lo] > mx ? scores[i - lo] : mx;
                if (bm[b] != mx)
                    bad++;
            }
        }
    CHECK(bad == 0, "%d block maxima wrong", bad);
    free(Y);
    free(x);
    FreeCopy(&c);
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

/* n indexes sorted ascending in place (an exclusion list). */
static void
SortIndexes(int32_t *v, int n)
{
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (v[b] < v[a])
            {
                int32_t     t = v[a];

                v[a] = v[b];
                v[b] = t;
            }
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
    int         ks[] = {32, 61};

    for (int t = 0; t < 2; t++)
    {
        int         k = ks[t];
        int64_t     n = 5000;
        float      *Y = MakeItems(n, k);
        Copy        c;
        float      *x = malloc(sizeof(float) * k);
        float      *scores = malloc(sizeof(float) * n);
        int32_t    *cand = malloc(sizeof(int32_t) * n);
        float      *cand_score = malloc(sizeof(float) * n);
        int32_t     ex[3] = {11, 22, 55};
        int32_t     out[20];
        float       out_score[20];
        int32_t     ref[20];
        int         bad = 0;
        int         runs = 0;

        /* ties: item 400 + i repeats item 300 + i */
        for (int i = 0; i < 20; i++)
            memcpy(Y + (400 + i) * k, Y + (300 + i) * k, sizeof(float) * k);
        c = Encode(Y, n, k);
        for (int trial = 0; trial < 30; trial++)
        {
            ExactArg    a = {Y, x, k};
            int         nref;

            for (int j = 0; j < k; j++)
                x[j] = (float) (Uniform() - 0.5);
            if (trial % 5 == 0)
                x[trial % k] = 4.0f;
            nref = Reference(Y, x, n, k, ex, 3, 20, ref);
            for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512 + 1; v++)
            {
                double      qb;
                int64_t     need;
                int         got;

                if (!Scan(&c, v, x, 0, n, scores, &qb))
                    continue;
                got = it_topk_exact(scores, n, ex, 3, 20, c.tol, sqrt(DotD(x, x, k)), qb,
                                    ExactDot, &a, cand, cand_score, n, &need, out, out_score);
                runs++;
                if (got != nref || memcmp(out, ref, sizeof(int32_t) * nref) != 0)
                    bad++;
            }
        }
        CHECK(bad == 0, "k %d: %d of %d top-20 lists differ from the exact ranking", k, bad, runs);
        free(Y);
        FreeCopy(&c);
        free(x);
        free(scores);
        free(cand);
        free(cand_score);
    }
}

/*
 * The exact top k from the shortlist equals a full sort's, over ranges
 * not aligned to blocks, with excluded items (the best ones among them,
 * so that block maxima must be recomputed); the shortlist holds every
 * candidate it_topk_candidates finds and is a small part of the items.
 */
TEST(exact_top_k_from_the_shortlist)
{
    int         k = 24;
    int64_t     n = 6000;
    float      *Y = MakeItems(n, k);
    Copy        c;
    float      *x = malloc(sizeof(float) * k);
    float      *scores = malloc(sizeof(float) * n);
    float      *bm = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
    int32_t    *list = malloc(sizeof(int32_t) * n);
    int32_t    *cand = malloc(sizeof(int32_t) * n);
    float      *sub = malloc(sizeof(float) * n);
    float      *subtol = malloc(sizeof(float) * n);
    float      *cand_score = malloc(sizeof(float) * n);
    float      *ys = malloc(sizeof(float) * n * k);
    int32_t     top_idx[20];
    float       top_score[20];
    int32_t     out[20];
    float       out_score[20];
    int32_t     ref[20];
    int         bad = 0;
    int         missing = 0;
    int64_t     listed = 0;
    int         runs = 0;
    float      *list_score = malloc(sizeof(float) * n);
    int32_t    *list2 = malloc(sizeof(int32_t) * n);
    float      *list_score2 = malloc(sizeof(float) * n);
    float      *bm2 = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
    float      *rescores = malloc(sizeof(float) * n);
    int8_t     *qxr = malloc(it_q8_query_bytes(k));
    float       sxr = 0.0f;
    int         wrong_scores = 0;
    int         rescanned_differ = 0;

    for (int i = 0; i < 20; i++)
        memcpy(Y + (400 + i) * k, Y + (300 + i) * k, sizeof(float) * k);
    c = Encode(Y, n, k);
    for (int trial = 0; trial < 24; trial++)
    {
        int64_t     lo = trial % 3 == 0 ? 0 : 7 + trial;
        int64_t     hi = trial % 2 == 0 ? n : n - 5 - trial;
        int32_t     ex[8];
        int         nex = 0;
        double      qb;
        double      xn;
        int         nref;

        for (int j = 0; j < k; j++)
            x[j] = (float) (Uniform() - 0.5);
        xn = sqrt(DotD(x, x, k));
        ScanMax(&c, IT_Q8_AVX512 + 1, x, lo, hi, scores, bm, &qb);
        /* exclude the best 3 scores and a few others (sorted, relative to lo) */
        nref = it_topk(scores, hi - lo, NULL, 0, 3, top_idx, top_score);
        for (int e = 0; e < nref; e++)
            ex[nex++] = top_idx[e];
        ex[nex++] = 1;
        ex[nex++] = (int32_t) (hi - lo - 1);
        SortIndexes(ex, nex);
        {
            int64_t     nl = it_q8_shortlist(scores, NULL, bm, lo, hi, ex, nex, 20, c.tol + lo, c.tolb, xn, qb,
                                             top_idx, top_score, list, list_score, n);
            ExactArg    a = {Y + lo * k, x, k};
            int64_t     need;
            int64_t     nc;
            int         got;

            CHECK(nl >= 20 && nl < (hi - lo) / 4, "trial %d: shortlist of %lld", trial, (long long) nl);
            if (nl < 20)
                continue;
            listed += nl;
            runs++;
            /* the listed items' scores; without the scores, the same list from the maxima */
            for (int64_t i = 0; i < nl; i++)
                wrong_scores += memcmp(&list_score[i], &scores[list[i]], sizeof(float)) != 0;
            {
                ItQ8Rescan  rs;
                int64_t     nl2;

                it_q8_query(x, k, c.qmax, qxr, &sxr);
                rs = (ItQ8Rescan) {c.Q, c.scale, k, qxr, sxr, c.Q4, c.scale4};
                /* the 4-bit scan writes the maxima alone; the 8-bit one always writes scores */
                if (c.Q4)
                    it_q4_scores(c.Q4, c.scale4, lo, hi, k, qxr, sxr, NULL, bm2);
                else
                    it_q8_scores(c.Q, c.scale, lo, hi, k, qxr, sxr, rescores, bm2);
                nl2 = it_q8_shortlist(NULL, &rs, bm2, lo, hi, ex, nex, 20, c.tol + lo, c.tolb, xn, qb,
                                      top_idx, top_score, list2, list_score2, n);
                rescanned_differ += nl2 != nl || memcmp(list2, list, sizeof(int32_t) * (size_t) nl) != 0 ||
                    memcmp(list_score2, list_score, sizeof(float) * (size_t) nl) != 0;
            }
            /* every candidate of the whole range is listed */
            got = it_topk(scores, hi - lo, ex, nex, 20, top_idx, top_score);
            nc = it_topk_candidates(scores, hi - lo, ex, nex, 20, top_idx, top_score, got, c.tol + lo, xn, qb,
                                    cand, n);
            for (int64_t i = 0, j = 0; i < nc; i++)
            {
                while (j < nl && list[j] < cand[i])
                    j++;
                if (j == nl || list[j] != cand[i])
                    missing++;
            }
            /* the ranking of the listed items, mapped back */
            for (int64_t i = 0; i < nl; i++)
            {
                sub[i] = scores[list[i]];
                subtol[i] = c.tol[lo + list[i]];
                memcpy(ys + i * k, Y + (lo + list[i]) * k, sizeof(float) * k);
            }
            a.Y = ys;
            got = it_topk_exact(sub, nl, NULL, 0, 20, subtol, xn, qb, ExactDot, &a, cand, cand_score, n, &need,
                                out, out_score);
            for (int i = 0; i < got; i++)
                out[i] = list[out[i]];
            nref = Reference(Y + lo * k, x, hi - lo, k, ex, nex, 20, ref);
            if (got != nref || memcmp(out, ref, sizeof(int32_t) * nref) != 0)
                bad++;
        }
    }
    CHECK(bad == 0 && missing == 0, "%d of %d top-20 lists differ, %d candidates not listed", bad, runs, missing);
    CHECK(wrong_scores == 0, "%d listed scores are not the items' scores", wrong_scores);
    CHECK(rescanned_differ == 0, "%d of %d shortlists from scanned blocks differ", rescanned_differ, runs);
    printf("    shortlist: %.1f items of %lld on average\n", runs ? (double) listed / runs : 0.0, (long long) n);

    /* fewer blocks than k: no shortlist */
    ScanMax(&c, IT_Q8_AVX512 + 1, x, 0, 40, scores, bm, &(double) {0});
    CHECK(it_q8_shortlist(scores, NULL, bm, 0, 40, NULL, 0, 5, c.tol, c.tolb, 1.0, 0.0, top_idx, top_score, list,
                          NULL, n) == -1,
          "3 blocks, k 5: a shortlist");
    CHECK(it_q8_shortlist(NULL, NULL, bm, 0, n, NULL, 0, 5, c.tol, c.tolb, 1.0, 0.0, top_idx, top_score, list,
                          NULL, n) == -1,
          "neither scores nor a query to scan: a shortlist");
    free(Y);
    FreeCopy(&c);
    free(x);
    free(scores);
    free(bm);
    free(list);
    free(cand);
    free(sub);
    free(subtol);
    free(cand_score);
    free(list_score);
    free(list2);
    free(list_score2);
    free(bm2);
    free(rescores);
    free(qxr);
    free(ys);
}

/*
 * it_q4_shortlist: from the 4-bit scan's block maxima alone, the 8-bit
 * scores of the few items that can be among the k best; ranked exactly
 * (it_topk_exact on those scores and the 8-bit bounds), the top k of a
 * full sort, over ranges not aligned to blocks and with the best items
 * excluded; it lists every item of that top k with the 8-bit scan's
 * scores, and about as few items as the 8-bit scan's own shortlist.
 */
TEST(exact_top_k_from_the_4_bit_shortlist)
{
    int         ks[] = {24, 64, 7};
    int         saved = Bits;

    for (int kt = 0; kt < 3; kt++)
    {
        int         k = ks[kt];
        int64_t     n = 9000;
        float      *Y = MakeItems(n, k);
        Copy        c8;
        Copy        c4;
        float      *x = malloc(sizeof(float) * k);
        float      *scores = malloc(sizeof(float) * n);
        float      *bm = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
        float      *bm8 = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
        int32_t    *blocks = malloc(sizeof(int32_t) * (n / IT_Q8_BLOCK + 2));
        float      *block_scores = malloc(sizeof(float) * (it_q8_padded(n) + IT_Q8_BLOCK));
        int32_t    *list = malloc(sizeof(int32_t) * n);
        float      *list_score = malloc(sizeof(float) * n);
        int32_t    *list8 = malloc(sizeof(int32_t) * n);
        int32_t    *cand = malloc(sizeof(int32_t) * n);
        float      *cand_score = malloc(sizeof(float) * n);
        float      *subtol = malloc(sizeof(float) * n);
        float      *ys = malloc(sizeof(float) * n * k);
        int8_t     *qx = malloc(it_q8_query_bytes(k));
        int32_t     top_idx[20];
        float       top_score[20];
        int32_t     out[20];
        float       out_score[20];
        int32_t     ref[20];
        int         bad = 0;
        int         unlisted = 0;
        int         wrong_scores = 0;
        int64_t     listed = 0;
        int64_t     listed8 = 0;
        int         runs = 0;

        /* k 64: items of one scale, whose best scores are close together */
        if (k == 64)
            for (int64_t i = 0; i < n * k; i++)
                Y[i] = (float) (Uniform() - 0.5);
        for (int i = 0; i < 20; i++)
            memcpy(Y + (400 + i) * k, Y + (300 + i) * k, sizeof(float) * k);
        Bits = 8;
        c8 = Encode(Y, n, k);
        Bits = 4;
        c4 = Encode(Y, n, k);
        for (int trial = 0; trial < 20; trial++)
        {
            int64_t     lo = trial % 3 == 0 ? 0 : 9 + trial;
            int64_t     hi = trial % 2 == 0 ? n : n - 3 - trial;
            int32_t     ex[8];
            int         nex = 0;
            double      xn;
            double      tol4;
            double      tol8;
            float       sx;
            int         nref;
            ItQ8Rescan  rs;
            int64_t     nl;
            int64_t     nl8;
            int64_t     need;
            int         got;
            ExactArg    a;

            for (int j = 0; j < k; j++)
                x[j] = (float) (Uniform() - 0.5);
            if (trial % 5 == 1)
                x[trial % k] = 3.0f;
            xn = sqrt(DotD(x, x, k));
            tol8 = it_q8_query(x, k, c8.qmax, qx, &sx);
            tol4 = it_q8_query(x, k, c4.qmax, qx, &sx);
            /* exclude the 8-bit scan's best 3 and a few others (sorted, relative to lo) */
            it_q8_scores(c8.Q, c8.scale, lo, hi, k, qx, sx, scores, bm8);
            nref = it_topk(scores, hi - lo, NULL, 0, 3, top_idx, top_score);
            for (int e = 0; e < nref; e++)
                ex[nex++] = top_idx[e];
            ex[nex++] = 2;
            ex[nex++] = (int32_t) (hi - lo - 2);
            SortIndexes(ex, nex);
            /* the 8-bit shortlist, for the comparison */
            nl8 = it_q8_shortlist(scores, NULL, bm8, lo, hi, ex, nex, 20, c8.tol + lo, c8.tolb, xn, tol8,
                                  top_idx, top_score, list8, NULL, n);
            /* the shortlist scans the 4-bit copy for the block maxima itself */
            rs = (ItQ8Rescan) {NULL, NULL, k, qx, sx, c4.Q4, c4.scale4};
            nl = it_q4_shortlist(&rs, bm, lo, hi, ex, nex, 20, c4.tolb, xn, tol4, c8.Q, c8.scale, c8.tol + lo,
                                 c8.tolb, tol8, top_idx, top_score, blocks, block_scores, list, list_score, n,
                                 1 + trial % 3);
            CHECK(nl >= 20 && nl < (hi - lo) / 4, "k %d trial %d: 4-bit shortlist of %lld", k, trial, (long long) nl);
            if (nl < 20)
                continue;
            runs++;
            listed += nl;
            for (int64_t i = 0; i < nl; i++)
            {
                wrong_scores += memcmp(&list_score[i], &scores[list[i]], sizeof(float)) != 0;
                if (i > 0 && list[i] <= list[i - 1])
                    wrong_scores++;
                for (int e = 0; e < nex; e++)
                    wrong_scores += list[i] == ex[e];
            }
            /* every item of the exact top 20 is listed */
            nref = Reference(Y + lo * k, x, hi - lo, k, ex, nex, 20, ref);
            for (int r = 0; r < nref; r++)
            {
                int64_t     j = 0;

                while (j < nl && list[j] != ref[r])
                    j++;
                unlisted += j == nl;
            }
            listed8 += nl8;
            for (int64_t i = 0; i < nl; i++)
            {
                subtol[i] = c8.tol[lo + list[i]];
                memcpy(ys + i * k, Y + (lo + list[i]) * k, sizeof(float) * k);
            }
            a = (ExactArg) {ys, x, k};
            got = it_topk_exact(list_score, nl, NULL, 0, 20, subtol, xn, tol8, ExactDot, &a, cand, cand_score, n,
                                &need, out, out_score);
            for (int i = 0; i < got; i++)
                out[i] = list[out[i]];
            if (got != nref || memcmp(out, ref, sizeof(int32_t) * nref) != 0)
                bad++;
        }
        CHECK(bad == 0, "k %d: %d of %d top-20 lists differ from the exact ranking", k, bad, runs);
        CHECK(unlisted == 0, "k %d: %d items of the exact top 20 not listed", k, unlisted);
        /* its 8-bit floor is found among fewer blocks: a few more items than the 8-bit shortlist's */
        CHECK(listed <= 3 * listed8 + 20 * runs, "k %d: %lld items listed, the 8-bit shortlist %lld", k,
              (long long) listed, (long long) listed8);
        CHECK(wrong_scores == 0, "k %d: %d listed scores not the 8-bit ones, out of order or excluded", k,
              wrong_scores);
        printf("    k %d: 4-bit shortlist %.1f items of %lld on average (the 8-bit one %.1f)\n", k,
               runs ? (double) listed / runs : 0.0, (long long) n, runs ? (double) listed8 / runs : 0.0);

        /* fewer blocks than k: no shortlist */
        {
            ItQ8Rescan  rs = {NULL, NULL, k, qx, 1.0f, c4.Q4, c4.scale4};

            CHECK(it_q4_shortlist(&rs, bm, 0, 40, NULL, 0, 5, c4.tolb, 1.0, 0.0, c8.Q, c8.scale, c8.tol, c8.tolb,
                                  0.0, top_idx, top_score, blocks, block_scores, list, list_score, n, 1) == -1,
                  "k %d: 3 blocks, top 5: a shortlist", k);
            rs.Q4 = NULL;
            CHECK(it_q4_shortlist(&rs, bm, 0, n, NULL, 0, 5, c4.tolb, 1.0, 0.0, c8.Q, c8.scale, c8.tol, c8.tolb,
                                  0.0, top_idx, top_score, blocks, block_scores, list, list_score, n, 1) == -1,
                  "k %d: no 4-bit copy: a shortlist", k);
        }
        FreeCopy(&c8);
        FreeCopy(&c4);
        free(Y);
        free(x);
        free(scores);
        free(bm);
        free(bm8);
        free(blocks);
        free(block_scores);
        free(list);
        free(list_score);
        free(list8);
        free(cand);
        free(cand_score);
        free(subtol);
        free(ys);
        free(qx);
    }
    Bits = saved;
}

/*
 * it_q4_shortlist cut between threads (its scan, and many candidate
 * blocks: a long top list over many items) gives the list and scores of
 * one thread, with excluded items in several parts.
 */
TEST(four_bit_shortlist_over_threads_lists_as_one)
{
    int         k = 16;
    int64_t     n = 60000;
    int         kk = 1500;
    int         saved = Bits;
    float      *Y = malloc(sizeof(float) * n * k);
    Copy        c8;
    Copy        c4;
    float       x[16];
    int8_t     *qx = malloc(it_q8_query_bytes(k));
    float      *bm = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
    int32_t    *blocks = malloc(sizeof(int32_t) * (n / IT_Q8_BLOCK + 2));
    float      *block_scores = malloc(sizeof(float) * (it_q8_padded(n) + IT_Q8_BLOCK));
    int32_t    *top_idx = malloc(sizeof(int32_t) * kk);
    float      *top_score = malloc(sizeof(float) * kk);
    int32_t    *one = malloc(sizeof(int32_t) * n);
    float      *one_score = malloc(sizeof(float) * n);
    int32_t    *cut = malloc(sizeof(int32_t) * n);
    float      *cut_score = malloc(sizeof(float) * n);
    int32_t     ex[40];
    int64_t     lo = 5;
    int64_t     hi = n - 7;
    int64_t     n1;
    float       sx;
    double      xn;
    double      tol4;
    double      tol8;
    ItQ8Rescan  rs;

    for (int64_t i = 0; i < n * k; i++)
        Y[i] = (float) (Uniform() - 0.5);
    Bits = 8;
    c8 = Encode(Y, n, k);
    Bits = 4;
    c4 = Encode(Y, n, k);
    for (int j = 0; j < k; j++)
        x[j] = (float) (Uniform() - 0.5);
    xn = sqrt(DotD(x, x, k));
    tol8 = it_q8_query(x, k, c8.qmax, qx, &sx);
    tol4 = it_q8_query(x, k, c4.qmax, qx, &sx);
    /* the 40 best items excluded: they are spread over the blocks, and would all be listed */
    {
        float      *all = malloc(sizeof(float) * n);
        float       exs[40];

        it_q8_scores(c8.Q, c8.scale, lo, hi, k, qx, sx, all, NULL);
        it_topk(all, hi - lo, NULL, 0, 40, ex, exs);
        SortIndexes(ex, 40);
        free(all);
    }
    rs = (ItQ8Rescan) {NULL, NULL, k, qx, sx, c4.Q4, c4.scale4};
    /* block_max is scratch that the shortlist's own scan fills: start it with NaN */
    memset(bm, 0xFF, sizeof(float) * it_q8_blocks(lo, hi));
    n1 = it_q4_shortlist(&rs, bm, lo, hi, ex, 40, kk, c4.tolb, xn, tol4, c8.Q, c8.scale, c8.tol + lo, c8.tolb,
                         tol8, top_idx, top_score, blocks, block_scores, one, one_score, n, 1);
    CHECK(n1 >= kk, "one thread: a shortlist of %lld", (long long) n1);
    for (int t = 2; t <= 5; t += 3)
    {
        int64_t     nt;

        memset(bm, 0xFF, sizeof(float) * it_q8_blocks(lo, hi));
        nt = it_q4_shortlist(&rs, bm, lo, hi, ex, 40, kk, c4.tolb, xn, tol4, c8.Q, c8.scale, c8.tol + lo, c8.tolb,
                             tol8, top_idx, top_score, blocks, block_scores, cut, cut_score, n, t);
        CHECK(nt == n1 && memcmp(cut, one, sizeof(int32_t) * (size_t) n1) == 0 &&
              memcmp(cut_score, one_score, sizeof(float) * (size_t) n1) == 0,
              "%d threads: a list of %lld, one thread %lld, or other items or scores", t, (long long) nt,
              (long long) n1);
    }
    for (int64_t i = 0; i < n1; i++)
        for (int e = 0; e < 40; e++)
            CHECK(one[i] != ex[e], "excluded item %d listed", ex[e]);
    FreeCopy(&c8);
    FreeCopy(&c4);
    free(Y);
    free(qx);
    free(bm);
    free(blocks);
    free(block_scores);
    free(top_idx);
    free(top_score);
    free(one);
    free(one_score);
    free(cut);
    free(cut_score);
    Bits = saved;
}

/*
 * it_q8_scores_many gives every query the scores and block maxima
 * it_q8_scores gives it alone, to the bit, in every implementation: for
 * numbers of queries around the group of 8, ranges not on block bounds,
 * k not a multiple of the group, and full-scale bytes (the offset sums);
 * and with no scores asked for, the same block maxima alone.
 */
TEST(many_queries_score_as_each_alone)
{
    /* 1030: past the tiles' packed queries (the AVX2 sums instead) */
    const int   ks[] = {5, 64, 1030};
    const int   nqs[] = {1, 3, 8, 9, 17, 16, 39};

    for (int ki = 0; ki < 3; ki++)
    {
        int         k = ks[ki];
        int64_t     n = 203;
        float      *Y = MakeItems(n, k);
        Copy        c;
        size_t      qb = it_q8_query_bytes(k);

        /* a few items and a query at full scale in every byte */
        for (int j = 0; j < k; j++)
            Y[3 * k + j] = (j % 2) ? -2.0f : 2.0f;
        c = Encode(Y, n, k);
        for (int ni = 0; ni < 7; ni++)
        {
            int         nq = nqs[ni];
            float      *X = malloc(sizeof(float) * nq * k);
            int8_t     *qx = malloc(qb * nq);
            float      *sx = malloc(sizeof(float) * nq);
            int64_t     lo = 7,
                        hi = n - 5;
            int64_t     nb = it_q8_blocks(lo, hi);

            for (int u = 0; u < nq; u++)
            {
                for (int j = 0; j < k; j++)
                    X[u * k + j] = (float) (Uniform() - 0.5) * (u + 1);
                if (u == 1)
                    for (int j = 0; j < k; j++)
                        X[u * k + j] = (j % 3) ? -1.0f : 1.0f;
                it_q8_query(X + u * k, k, c.qmax, qx + qb * u, &sx[u]);
            }
            for (int v = IT_Q8_PLAIN; v <= IT_Q8_AVX512; v++)
            {
                float      *many = malloc(sizeof(float) * nq * (hi - lo));
                float      *many_max = malloc(sizeof(float) * nq * nb);
                float      *one = malloc(sizeof(float) * (hi - lo));
                float      *one_max = malloc(sizeof(float) * nb);
                int         bad = 0;

                if (it_q8_scores_many_variant(v, c.Q, c.scale, lo, hi, k, nq, qx, sx, many, many_max) != 0)
                {
                    free(many);
                    free(many_max);
                    free(one);
                    free(one_max);
                    continue;
                }
                for (int u = 0; u < nq; u++)
                {
                    CHECK(it_q8_scores_variant(v, c.Q, c.scale, lo, hi, k, qx + qb * u, sx[u], one, one_max) == 0,
                          "variant %d runs alone", v);
                    for (int64_t i = 0; i < hi - lo; i++)
                        bad += memcmp(&one[i], &many[u * (hi - lo) + i], sizeof(float)) != 0;
                    for (int64_t b = 0; b < nb; b++)
                        bad += memcmp(&one_max[b], &many_max[u * nb + b], sizeof(float)) != 0;
                }
                CHECK(bad == 0, "variant %d, k %d, %d queries: %d values differ from the single scan", v, k, nq, bad);
                {
                    float      *maxima = malloc(sizeof(float) * nq * nb);

                    CHECK(it_q8_scores_many_variant(v, c.Q, c.scale, lo, hi, k, nq, qx, sx, NULL, maxima) == 0 &&
                          memcmp(maxima, many_max, sizeof(float) * nq * nb) == 0,
                          "variant %d, k %d, %d queries: the maxima without the scores differ", v, k, nq);
                    free(maxima);
                }
                free(many);
                free(many_max);
                free(one);
                free(one_max);
            }
            free(X);
            free(qx);
            free(sx);
        }
        FreeCopy(&c);
        free(Y);
    }
}

/* The scan cut between threads gives every score and block maximum of the single scan. */
TEST(threaded_scan_scores_as_one)
{
    const int64_t ranges[][2] = {{0, 5000}, {7, 4093}, {33, 70}, {16, 48}, {0, 1}};
    int         k = 64;
    int64_t     n = 5000;
    float      *Y = MakeItems(n, k);
    Copy        c = Encode(Y, n, k);
    int8_t     *qx = malloc(it_q8_query_bytes(k));
    float      *X = malloc(sizeof(float) * k);
    float      *one = malloc(sizeof(float) * (n + 1));
    float      *cut = malloc(sizeof(float) * (n + 1));
    float      *one_max = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
    float      *cut_max = malloc(sizeof(float) * (n / IT_Q8_BLOCK + 2));
    float       sx;

    for (int j = 0; j < k; j++)
        X[j] = (float) (Uniform() - 0.5);
    it_q8_query(X, k, c.qmax, qx, &sx);
    for (int r = 0; r < 5; r++)
    {
        int64_t     lo = ranges[r][0],
                    hi = ranges[r][1];
        int64_t     nb = it_q8_blocks(lo, hi);

        ScanQuery(&c, qx, sx, lo, hi, one, one_max, -1);
        for (int t = 0; t <= IT_Q8_MAX_SCAN_THREADS + 1; t++)
        {
            int         bad = 0;

            memset(cut, 0xff, sizeof(float) * (n + 1));
            memset(cut_max, 0xff, sizeof(float) * (n / IT_Q8_BLOCK + 2));
            ScanQuery(&c, qx, sx, lo, hi, cut, cut_max, t);
            bad += memcmp(one, cut, sizeof(float) * (hi - lo)) != 0;
            bad += memcmp(one_max, cut_max, sizeof(float) * nb) != 0;
            /* nothing past the range written */
            bad += ((uint32_t *) cut)[hi - lo] != 0xffffffffu || ((uint32_t *) cut_max)[nb] != 0xffffffffu;
            CHECK(bad == 0, "[%lld, %lld) over %d threads differs from one scan",
                  (long long) lo, (long long) hi, t);
        }
    }
    /* without block maxima */
    ScanQuery(&c, qx, sx, 7, 4093, cut, NULL, 2);
    ScanQuery(&c, qx, sx, 7, 4093, one, NULL, -1);
    CHECK(memcmp(one, cut, sizeof(float) * (4093 - 7)) == 0, "scores without block maxima");
    free(qx);
    free(X);
    free(one);
    free(cut);
    free(one_max);
    free(cut_max);
    FreeCopy(&c);
    free(Y);
}

/* An item index and its exact score, for the reference ranking. */
typedef struct Ranked
{
    float       s;
    int32_t     i;
} Ranked;

static int
CompareRanked(const void *a, const void *b)
{
    const Ranked *x = a;
    const Ranked *y = b;

    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/*
 * Many queries scanned and ranked over threads: each query's scores are
 * the single scan's, and its top k the top k of a full sort of the exact
 * float scores (ties, from repeated items, by the lower index), its
 * excluded items left out, whatever the number of threads; without the
 * scores kept (block maxima only, blocks scanned again), the very same
 * rankings.
 */
TEST(scores_rank_many_ranks_as_a_full_sort)
{
    const int   ks[] = {7, 64};
    int64_t     n = 3000;
    int         nq = 37;
    int         kk = 10;
    int64_t     lo = 5,
                hi = 2990;

    for (int ki = 0; ki < 2; ki++)
    {
        int         k = ks[ki];
        float      *Y = MakeItems(n, k);
        Copy        c;
        size_t      qb = it_q8_query_bytes(k);
        int64_t     nb = it_q8_blocks(lo, hi);
        float      *X = malloc(sizeof(float) * nq * k);
        int8_t     *qx = malloc(qb * nq);
        float      *sx = malloc(sizeof(float) * nq);
        double     *qtol = malloc(sizeof(double) * nq);
        int32_t    *ex = malloc(sizeof(int32_t) * nq * 40);
        int        *nex = malloc(sizeof(int) * nq);
        float      *S = malloc(sizeof(float) * nq * (hi - lo));
        float      *BM = malloc(sizeof(float) * nq * nb);
        float      *one = malloc(sizeof(float) * (hi - lo));
        int32_t    *out_idx = malloc(sizeof(int32_t) * nq * kk);
        float      *out_score = malloc(sizeof(float) * nq * kk);
        Ranked     *all = malloc(sizeof(Ranked) * (hi - lo));
        ItQ8Ranking *r = malloc(sizeof(ItQ8Ranking) * nq);
        void       *scratch = malloc(it_q8_rank_scratch_bytes(kk, 3));
        int32_t    *kept_idx = malloc(sizeof(int32_t) * nq * kk);
        float      *kept_score = malloc(sizeof(float) * nq * kk);
        int        *kept_got = malloc(sizeof(int) * nq);

        /* exact ties: items repeated further on */
        for (int64_t i = 100; i < 200; i++)
            memcpy(Y + (i + 1000) * k, Y + i * k, sizeof(float) * k);
        c = Encode(Y, n, k);
        for (int u = 0; u < nq; u++)
        {
            for (int j = 0; j < k; j++)
                X[u * k + j] = (float) (Uniform() - 0.5);
            qtol[u] = it_q8_query(X + u * k, k, c.qmax, qx + qb * u, &sx[u]);
            /* excluded: ascending, some in one block, some far apart */
            nex[u] = u % 5 == 0 ? 0 : 40;
            for (int e = 0; e < nex[u]; e++)
                ex[u * 40 + e] = (int32_t) (e < 20 ? 16 * u + e : 600 + 61 * e + u);
        }
        for (int run = 0; run < 6; run++)
        {
            int         t = 1 + run % 3;
            int         keep = run % 2 == 0;    /* each thread count both ways */
            int         bad_scores = 0;
            int         bad_rank = 0;
            int         alone = 0;
            int         differ = 0;

            for (int u = 0; u < nq; u++)
                r[u] = (ItQ8Ranking) {
                    .x = u == 3 ? NULL : X + u * k, .scores = keep ? S + (size_t) u * (hi - lo) : NULL,
                    .block_max = BM + (size_t) u * nb, .exclude = ex + u * 40, .nexclude = nex[u],
                    .tol_scale = sqrt(DotD(X + u * k, X + u * k, k)) * (1.0 + 1e-5), .tol_const = qtol[u],
                    .out_idx = out_idx + u * kk, .out_score = out_score + u * kk, .got = 99};
            it_q8_scores_rank_many(c.Q, c.scale, Y, lo, hi, k, nq, qx, sx, keep ? S : NULL, BM, c.tol, c.tolb,
                                   kk, r, scratch, t);
            for (int u = 0; u < nq; u++)
            {
                int         w = 0;
                int         e = 0;

                if (keep)
                {
                    it_q8_scores(c.Q, c.scale, lo, hi, k, qx + qb * u, sx[u], one, NULL);
                    bad_scores += memcmp(one, S + (size_t) u * (hi - lo), sizeof(float) * (hi - lo)) != 0;
                    kept_got[u] = r[u].got;
                    if (r[u].got > 0)
                    {
                        memcpy(kept_idx + u * kk, out_idx + u * kk, sizeof(int32_t) * r[u].got);
                        memcpy(kept_score + u * kk, out_score + u * kk, sizeof(float) * r[u].got);
                    }
                }
                else
                    differ += r[u].got != kept_got[u] ||
                        (r[u].got > 0 && (memcmp(kept_idx + u * kk, out_idx + u * kk, sizeof(int32_t) * r[u].got) ||
                                          memcmp(kept_score + u * kk, out_score + u * kk,
                                                 sizeof(float) * r[u].got)));
                if (u == 3)
                {
                    CHECK(r[u].got == -1, "a query without x is left to the caller (got %d)", r[u].got);
                    continue;
                }
                for (int64_t i = 0; i < hi - lo; i++)
                {
                    while (e < nex[u] && ex[u * 40 + e] < i)
                        e++;
                    if (e < nex[u] && ex[u * 40 + e] == i)
                        continue;
                    all[w].s = (float) DotD(X + u * k, Y + (lo + i) * k, k);
                    all[w++].i = (int32_t) (lo + i);
                }
                qsort(all, w, sizeof(Ranked), CompareRanked);
                /* -1: more near ties than the scratch holds (the caller ranks it) */
                if (r[u].got == -1)
                {
                    alone++;
                    continue;
                }
                if (r[u].got != kk)
                {
                    bad_rank++;
                    continue;
                }
                for (int j = 0; j < kk; j++)
                    bad_rank += out_idx[u * kk + j] != all[j].i ||
                        memcmp(&out_score[u * kk + j], &all[j].s, sizeof(float)) != 0;
            }
            CHECK(bad_scores == 0, "k %d, %d threads: %d queries' scores differ from the single scan", k, t,
                  bad_scores);
            CHECK(bad_rank == 0, "k %d, %d threads: %d ranks differ from a full sort", k, t, bad_rank);
            CHECK(differ == 0, "k %d, %d threads: %d rankings without the scores differ from those with them",
                  k, t, differ);
            /* these items' norms span 40000x: a few loose bounds, not most */
            CHECK(alone <= nq / 8, "k %d, %d threads: %d of %d queries left to the caller", k, t, alone, nq);
        }
        free(Y);
        FreeCopy(&c);
        free(X);
        free(qx);
        free(sx);
        free(qtol);
        free(ex);
        free(nex);
        free(S);
        free(kept_idx);
        free(kept_score);
        free(kept_got);
        free(BM);
        free(one);
        free(out_idx);
        free(out_score);
        free(all);
        free(r);
        free(scratch);
    }
}

int
main(void)
{
    RUN(scores_within_the_bound_and_the_bound_is_tight);
    RUN(full_scale_bytes_do_not_saturate);
    RUN(a_range_scores_its_items_only);
    RUN(block_maxima_of_a_range);
    RUN(exact_top_k_from_the_8_bit_scores);
    RUN(exact_top_k_from_the_shortlist);
    RUN(many_queries_score_as_each_alone);
    RUN(threaded_scan_scores_as_one);
    RUN(scores_rank_many_ranks_as_a_full_sort);
    /* the single query's tests again, of the 4-bit copy */
    Bits = 4;
    printf("# the 4-bit copy\n");
    RUN(scores_within_the_bound_and_the_bound_is_tight);
    RUN(a_range_scores_its_items_only);
    RUN(block_maxima_of_a_range);
    RUN(exact_top_k_from_the_8_bit_scores);
    RUN(exact_top_k_from_the_shortlist);
    RUN(threaded_scan_scores_as_one);
    RUN(exact_top_k_from_the_4_bit_shortlist);
    RUN(four_bit_shortlist_over_threads_lists_as_one);
    return unit_summary();
}

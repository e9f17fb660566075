/*
 * test_topk_exact.c
 *    Unit tests of the exact ranking of near ties (topk.c:
 *    it_topk_candidates, it_topk_exact).
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 4242
#include "unit.h"

/* uniform in [-1, 1] */
static double
UniformSigned(void)
{
    return (double) (Rand() % 2000001) / 1000000.0 - 1.0;
}

typedef struct Exact
{
    const float *exact;
    int64_t     calls;
    int64_t     n;
    char       *asked;          /* n flags: exact() was called for it */
} Exact;

static float
ExactScore(const void *arg, int64_t idx)
{
    Exact      *e = (Exact *) arg;

    e->calls++;
    if (e->asked)
        e->asked[idx] = 1;
    return e->exact[idx];
}

static int
Excluded(const int32_t *ex, int nex, int64_t i)
{
    for (int e = 0; e < nex; e++)
        if (ex[e] == i)
            return 1;
    return 0;
}

/* Reference: the k best by exact score, ties by lower index (selection). */
static int
Reference(const float *exact, int n, const int32_t *ex, int nex, int k, int32_t *idx)
{
    char       *used = calloc(n, 1);
    int         got = 0;

    for (; got < k; got++)
    {
        int         best = -1;

        for (int i = 0; i < n; i++)
        {
            if (used[i] || Excluded(ex, nex, i) || exact[i] != exact[i])
                continue;
            if (best < 0 || exact[i] > exact[best])
                best = i;
        }
        if (best < 0)
            break;
        used[best] = 1;
        idx[got] = best;
    }
    free(used);
    return got;
}

/*
 * Exact scores with many exact ties (multiples of 1/16), approximations
 * off by up to the tolerance: the answer is the exact ranking, whatever
 * the noise.
 */
TEST(exact_ranking_ignores_noise_within_tolerance)
{
    enum { N = 3000, K = 25, NEX = 40 };
    float      *exact = malloc(sizeof(float) * N);
    float      *scores = malloc(sizeof(float) * N);
    float      *norms = malloc(sizeof(float) * N);
    int32_t     ex[NEX];
    int32_t     cand[N];
    float       cand_score[N];
    int32_t     out[K];
    float       out_score[K];
    int32_t     ref[K];
    const double tol_scale = 1e-3;
    const double tol_const = 5e-4;

    for (int round = 0; round < 20; round++)
    {
        Exact       e = {exact, 0, N, NULL};
        int64_t     need;
        int         got;
        int         nref;

        for (int i = 0; i < N; i++)
        {
            norms[i] = (float) (0.5 + (UniformSigned() + 1.0));
            exact[i] = (float) ((int) (UniformSigned() * 64) / 16.0);
            /* |noise| <= tol(i) */
            scores[i] = (float) (exact[i] + 0.99 * UniformSigned() * (tol_scale * norms[i] + tol_const));
        }
        for (int j = 0; j < NEX; j++)
            ex[j] = (int32_t) (j * (N / NEX) + round);  /* ascending */

        got = it_topk_exact(scores, N, ex, NEX, K, norms, tol_scale, tol_const,
                            ExactScore, &e, cand, cand_score, N, &need, out, out_score);
        nref = Reference(exact, N, ex, NEX, K, ref);
        CHECK(got == nref, "round %d: %d written, %d expected", round, got, nref);
        for (int i = 0; i < got && i < nref; i++)
        {
            CHECK(out[i] == ref[i], "round %d rank %d: item %d, expected %d", round, i,
                  (int) out[i], (int) ref[i]);
            CHECK(out_score[i] == exact[out[i]], "round %d rank %d: the exact score is reported",
                  round, i);
        }
        /* ties at 1/16 steps: far more than k items share the top values,
         * but exact() is asked only for the candidates, never all items */
        CHECK(e.calls >= K && e.calls < N, "round %d: %lld exact scores", round, (long long) e.calls);
    }
    free(exact);
    free(scores);
    free(norms);
}

/* Items clearly below the k-th score are never scored exactly. */
TEST(exact_scores_only_candidates)
{
    enum { N = 1000, K = 5 };
    float       exact[N];
    float       scores[N];
    char        asked[N];
    int32_t     cand[N];
    float       cand_score[N];
    int32_t     out[K];
    float       out_score[K];
    Exact       e = {exact, 0, N, asked};
    int64_t     need;
    int         got;

    memset(asked, 0, sizeof(asked));
    for (int i = 0; i < N; i++)
    {
        exact[i] = (float) (i % 100) / 100.0f;  /* ten items at each value */
        scores[i] = exact[i];
    }
    /* the 5 best are 5 of the ten at 0.99: every one of those ten is a
     * candidate, nothing at 0.98 or below (tol 0.001) */
    got = it_topk_exact(scores, N, NULL, 0, K, NULL, 0.0, 0.001,
                        ExactScore, &e, cand, cand_score, N, &need, out, out_score);
    CHECK(got == K, "%d written", got);
    CHECK(e.calls == 10, "%lld exact scores, expected the ten tied items", (long long) e.calls);
    for (int i = 0; i < N; i++)
        if (asked[i])
            CHECK(i % 100 == 99, "item %d (score %g) was scored exactly", i, exact[i]);
    for (int i = 0; i < got; i++)
        CHECK(out[i] == 99 + 100 * i, "rank %d: item %d, expected the lower indexes first", i, (int) out[i]);
}

/* A buffer too small: -1, the size needed, and the same answer with it. */
TEST(exact_reports_buffer_size)
{
    enum { N = 500, K = 3 };
    float       exact[N];
    float       scores[N];
    int32_t     cand[N];
    float       cand_score[N];
    int32_t     out[K];
    float       out_score[K];
    int32_t     ref[K];
    Exact       e = {exact, 0, N, NULL};
    int64_t     need = 0;
    int         got;

    for (int i = 0; i < N; i++)
    {
        exact[i] = 1.0f - (float) i / N;
        scores[i] = 1.0f;       /* the approximation cannot tell them apart */
    }
    got = it_topk_exact(scores, N, NULL, 0, K, NULL, 0.0, 1e-6,
                        ExactScore, &e, cand, cand_score, K + 4, &need, out, out_score);
    CHECK(got == -1, "%d written with a small buffer", got);
    CHECK(need == N, "need %lld, expected every item", (long long) need);
    CHECK(e.calls == 0, "exact() called %lld times before the candidates fit", (long long) e.calls);

    got = it_topk_exact(scores, N, NULL, 0, K, NULL, 0.0, 1e-6,
                        ExactScore, &e, cand, cand_score, need, &need, out, out_score);
    CHECK(got == K, "%d written with the buffer asked for", got);
    Reference(exact, N, NULL, 0, K, ref);
    for (int i = 0; i < K; i++)
        CHECK(out[i] == ref[i], "rank %d: item %d, expected %d", i, (int) out[i], (int) ref[i]);

    got = it_topk_exact(scores, N, NULL, 0, K, NULL, 0.0, 1e-6,
                        ExactScore, &e, cand, cand_score, K - 1, &need, out, out_score);
    CHECK(got == -1 && need == K, "cap below k: %d, need %lld", got, (long long) need);
}

/* Fewer items than k, NaN scores, exclusions: every other item, ranked. */
TEST(exact_fewer_items_than_k)
{
    float       exact[6] = {0.5f, 0.7f, NAN, 0.7f, 0.1f, 0.9f};
    float       scores[6] = {0.5f, 0.70001f, NAN, 0.69999f, 0.1f, 0.9f};
    int32_t     ex[1] = {5};
    int32_t     cand[16];
    float       cand_score[16];
    int32_t     out[10];
    float       out_score[10];
    int32_t     expect[4] = {1, 3, 0, 4};
    Exact       e = {exact, 0, 6, NULL};
    int64_t     need;
    int         got;

    got = it_topk_exact(scores, 6, ex, 1, 10, NULL, 0.0, 1e-3,
                        ExactScore, &e, cand, cand_score, 16, &need, out, out_score);
    CHECK(got == 4, "%d written", got);
    for (int i = 0; i < got && i < 4; i++)
        CHECK(out[i] == expect[i], "rank %d: item %d, expected %d", i, (int) out[i], (int) expect[i]);

    got = it_topk_exact(scores, 6, NULL, 0, 0, NULL, 0.0, 1e-3,
                        ExactScore, &e, cand, cand_score, 16, &need, out, out_score);
    CHECK(got == 0, "k = 0: %d written", got);
}

/* The candidate bound: scores[i] + tol(i) >= w - tolS, exclusions left out. */
TEST(candidates_bound)
{
    float       scores[6] = {1.0f, 0.9f, 0.8f, 0.85f, 0.5f, 0.79f};
    float       norms[6] = {1.0f, 1.0f, 1.0f, 1.0f, 100.0f, 1.0f};
    int32_t     top_idx[2];
    float       top_score[2];
    int32_t     ex[1] = {3};
    int32_t     cand[6];
    int         got;
    int64_t     n;

    got = it_topk(scores, 6, ex, 1, 2, top_idx, top_score);
    CHECK(got == 2 && top_idx[1] == 1, "k-th best: item %d", (int) top_idx[1]);
    /* w = 0.9, tolS = 0.01 (norm 1), bound 0.89 - 2 * 0 = 0.89:
     * item 2 (0.8 + 0.01) is out, item 4 (0.5 + 1.0) in, item 3 excluded */
    n = it_topk_candidates(scores, 6, ex, 1, 2, top_idx, top_score, got, norms, 0.01, 0.0, cand, 6);
    CHECK(n == 3, "%lld candidates", (long long) n);
    CHECK(n == 3 && cand[0] == 0 && cand[1] == 1 && cand[2] == 4,
          "candidates %d %d %d", (int) cand[0], (int) cand[1], (int) cand[2]);
    /* no norms: tol_const alone; 0.06 gives the bound 0.9 - 0.12 = 0.78,
     * which takes in 0.8 and 0.79 too, and no longer 0.5 */
    n = it_topk_candidates(scores, 6, ex, 1, 2, top_idx, top_score, got, NULL, 0.01, 0.06, cand, 6);
    CHECK(n == 4 && cand[2] == 2 && cand[3] == 5, "%lld candidates with tol_const", (long long) n);
    /* a NaN tolerance: every item with a score */
    n = it_topk_candidates(scores, 6, NULL, 0, 2, top_idx, top_score, got, NULL, 0.0, NAN, cand, 6);
    CHECK(n == 6, "%lld candidates with a NaN tolerance", (long long) n);
}

/*
 * Over many blocks: the candidates are exactly the non-excluded items
 * with (double) score + tol_scale * norm >= the bound, found by a plain
 * loop here (the kernel skips whole blocks with a vector check).
 */
TEST(candidates_over_blocks_match_a_plain_loop)
{
    enum
    {
        N = 1000, K = 10
    };
    float       scores[N];
    float       norms[N];
    int32_t     ex[40];
    int32_t     top_idx[K];
    float       top_score[K];
    int32_t     cand[N];
    int         bad = 0;

    for (int round = 0; round < 50; round++)
    {
        int         got;
        int64_t     n;
        int64_t     want = 0;
        double      tol_scale = round % 5 == 0 ? 0.0 : 0.001 * (round % 7);
        double      tol_s = 0.0;
        double      bound;
        int         e = 0;

        for (int i = 0; i < N; i++)
        {
            /* a trend, so most blocks are far below the bound */
            scores[i] = (float) (Rand() % 1000) / 1000.0f - (float) i / 100.0f;
            norms[i] = (float) (1 + Rand() % 100) / 10.0f;
        }
        if (round % 3 == 0)
            scores[Rand() % N] = NAN;
        if (round % 4 == 0)
            scores[500 + Rand() % 500] = 100.0f;    /* a late block holds the best */
        for (int j = 0; j < 40; j++)
            ex[j] = j * 25 + round % 25;
        got = it_topk(scores, N, ex, 40, K, top_idx, top_score);
        n = it_topk_candidates(scores, N, ex, 40, K, top_idx, top_score, got, norms, tol_scale, 0.0, cand, N);
        for (int i = 0; i < got; i++)
        {
            double      t = tol_scale * norms[top_idx[i]];

            tol_s = tol_s > t ? tol_s : t;
        }
        bound = (double) top_score[got - 1] - tol_s;
        for (int i = 0; i < N; i++)
        {
            double      v = (double) scores[i] + tol_scale * (double) norms[i];

            while (e < 40 && ex[e] < i)
                e++;
            if (!(v >= bound) || (e < 40 && ex[e] == i))
                continue;
            if (want >= n || cand[want] != i)
                bad++;
            want++;
        }
        if (want != n)
            bad++;
    }
    CHECK(bad == 0, "%d differences from the plain loop", bad);
}

int
main(void)
{
    RUN(exact_ranking_ignores_noise_within_tolerance);
    RUN(exact_scores_only_candidates);
    RUN(exact_reports_buffer_size);
    RUN(exact_fewer_items_than_k);
    /* the candidates' block checks at every width this machine runs */
    for (int w = 4; w <= 16; w *= 2)
    {
        if (it_topk_vector_width(w) != w)
            continue;
        printf("# block checks of %d floats\n", w);
        RUN(candidates_bound);
        RUN(candidates_over_blocks_match_a_plain_loop);
    }
    it_topk_vector_width(0);
    return unit_summary();
}

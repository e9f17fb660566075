/*
 * test_topk.c
 *    Unit tests of top-k selection and scoring (topk.c).
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 777
#include "unit.h"

typedef struct Cand
{
    float       s;
    int32_t     i;
} Cand;

/* best first: higher score, then lower index */
static int
CmpCand(const void *a, const void *b)
{
    const Cand *x = a;
    const Cand *y = b;

    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* Reference: full sort of the non-excluded, non-NaN scores. */
static int
FullSort(const float *scores, int n, const int32_t *ex, int nex, int k,
         int32_t *idx, float *sc)
{
    Cand       *c = malloc(sizeof(Cand) * (n + 1));
    int         m = 0;
    int         i;
    int         e = 0;

    for (i = 0; i < n; i++)
    {
        int         skip = 0;

        for (e = 0; e < nex; e++)
            skip |= ex[e] == i;
        if (skip || scores[i] != scores[i])
            continue;
        c[m].s = scores[i];
        c[m].i = i;
        m++;
    }
    qsort(c, m, sizeof(Cand), CmpCand);
    if (k < m)
        m = k;
    for (i = 0; i < m; i++)
    {
        idx[i] = c[i].i;
        sc[i] = c[i].s;
    }
    free(c);
    return m;
}

TEST(topk_equals_full_sort)
{
    int         trial;
    int         bad = 0;

    for (trial = 0; trial < 400; trial++)
    {
        /* some longer than the scan's blocks (64), most shorter */
        int         n = (trial % 4 == 3) ? 1 + Rand() % 3000 : 1 + Rand() % 300;
        int         nex = Rand() % (n / 2 + 1);
        int         ks[] = {1, 2, 3, 7, 10, 50, n - 1, n, n + 5, 1000};
        float      *scores = malloc(sizeof(float) * n);
        int32_t    *ex = malloc(sizeof(int32_t) * (nex + 1));
        int32_t    *idx = malloc(sizeof(int32_t) * (n + 1000));
        float      *sc = malloc(sizeof(float) * (n + 1000));
        int32_t    *ridx = malloc(sizeof(int32_t) * (n + 1000));
        float      *rsc = malloc(sizeof(float) * (n + 1000));
        int         i;
        int         t;

        for (i = 0; i < n; i++)
        {
            /* few distinct values: many ties */
            scores[i] = (trial % 2) ? (float) (Rand() % 5) : (float) ((int) (Rand() % 2001) - 1000) / 7.0f;
            if (Rand() % 40 == 0)
                scores[i] = NAN;
            if (Rand() % 60 == 0)
                scores[i] = (Rand() % 2) ? INFINITY : -INFINITY;
        }
        /* sorted exclusions, with duplicates and out-of-range entries */
        for (i = 0; i < nex; i++)
            ex[i] = (int32_t) (Rand() % (n + 3)) - 1;
        for (i = 1; i < nex; i++)
        {
            int32_t     v = ex[i];
            int         j = i;

            while (j > 0 && ex[j - 1] > v)
            {
                ex[j] = ex[j - 1];
                j--;
            }
            ex[j] = v;
        }
        for (t = 0; t < (int) (sizeof(ks) / sizeof(ks[0])); t++)
        {
            int         k = ks[t];
            int         got;
            int         want;

            if (k < 1)
                continue;
            got = it_topk(scores, n, ex, nex, k, idx, sc);
            want = FullSort(scores, n, ex, nex, k, ridx, rsc);
            if (got != want || memcmp(idx, ridx, sizeof(int32_t) * want) != 0 ||
                memcmp(sc, rsc, sizeof(float) * want) != 0)
            {
                if (bad < 5)
                    fprintf(stderr, "trial %d n %d k %d: got %d want %d\n", trial, n, k, got, want);
                bad++;
            }
        }
        free(scores);
        free(ex);
        free(idx);
        free(sc);
        free(ridx);
        free(rsc);
    }
    CHECK(bad == 0, "%d top-k lists differ from the full sort", bad);
}

/*
 * it_topk_blend ranks scores + blend * pop as it_topk ranks a buffer of
 * them.  Values are multiples of 1/16 and blends powers of two, so that
 * every sum is exact whether or not the compiler fuses it.
 */
/* nex random indexes of [0, n), sorted ascending (repeats allowed). */
static void
RandomExclusions(int32_t *ex, int nex, int n)
{
    for (int i = 0; i < nex; i++)
        ex[i] = (int32_t) (Rand() % n);
    for (int i = 1; i < nex; i++)
        for (int j = i; j > 0 && ex[j - 1] > ex[j]; j--)
        {
            int32_t     t = ex[j];

            ex[j] = ex[j - 1];
            ex[j - 1] = t;
        }
}

TEST(topk_blend_equals_blended_buffer)
{
    const float blends[] = {0.0f, 0.25f, 2.0f};
    int         bad = 0;

    for (int trial = 0; trial < 200; trial++)
    {
        int         n = 1 + Rand() % 2000;
        int         nex = Rand() % 20;
        int         k = 1 + Rand() % 30;
        float      *scores = malloc(sizeof(float) * n);
        float      *pop = malloc(sizeof(float) * n);
        float      *buf = malloc(sizeof(float) * n);
        int32_t    *ex = malloc(sizeof(int32_t) * (nex + 1));
        int32_t     idx[30],
                    ridx[30];
        float       sc[30],
                    rsc[30];

        for (int i = 0; i < n; i++)
        {
            scores[i] = (float) ((int) (Rand() % 201) - 100) / 16.0f;
            pop[i] = (float) (Rand() % 17) / 16.0f;
        }
        RandomExclusions(ex, nex, n);
        for (int b = 0; b < 3; b++)
        {
            int         got;
            int         want;

            for (int i = 0; i < n; i++)
                buf[i] = scores[i] + blends[b] * pop[i];
            got = it_topk_blend(scores, b == 0 ? NULL : pop, blends[b], n, ex, nex, k, idx, sc);
            want = it_topk(buf, n, ex, nex, k, ridx, rsc);
            if (got != want || memcmp(idx, ridx, sizeof(int32_t) * want) != 0 ||
                memcmp(sc, rsc, sizeof(float) * want) != 0)
                bad++;
        }
        free(scores);
        free(pop);
        free(buf);
        free(ex);
    }
    CHECK(bad == 0, "%d blended top-k lists differ from the buffer's", bad);
}

/*
 * it_topk_blend_sorted gives it_topk_blend's answer exactly when the
 * popularity is non-increasing: many ties (scores and popularity on a
 * coarse grid), NaN scores, exclusions, every length around the 64-item
 * blocks, blends from none to popularity alone, scores that fall with
 * popularity (the scan stops early) or not.
 */
TEST(topk_blend_sorted_equals_topk_blend)
{
    const float blends[] = {0.0f, 0.1f, 1.0f, 10.0f, 1000.0f};
    int         bad = 0;

    for (int trial = 0; trial < 300; trial++)
    {
        int         n = trial < 140 ? 1 + trial : 1 + Rand() % 5000;
        int         nex = Rand() % 12;
        int         k = 1 + Rand() % 40;
        int         falling = trial % 2;
        int64_t     nblk = it_topk_bound_blocks(n);
        float      *scores = malloc(sizeof(float) * n);
        float      *pop = malloc(sizeof(float) * n);
        float      *bmax = malloc(sizeof(float) * nblk);
        float      *bsuf = malloc(sizeof(float) * nblk);
        int32_t    *ex = malloc(sizeof(int32_t) * (nex + 1));
        int32_t     idx[40],
                    ridx[40];
        float       sc[40],
                    rsc[40];
        float       p = 1.0f;

        for (int i = 0; i < n; i++)
        {
            /* popularity falls in steps of 1/64, with runs of ties */
            if (Rand() % 3 == 0 && p > 0.0f)
                p -= 1.0f / 64.0f;
            pop[i] = p > 0.0f ? p : 0.0f;
            scores[i] = (float) ((int) (Rand() % 41) - 20) / 8.0f;
            if (falling)
                scores[i] += 4.0f * pop[i];
            if (Rand() % 97 == 0)
                scores[i] = NAN;
        }
        RandomExclusions(ex, nex, n);
        it_topk_block_maxima(scores, n, bmax, bsuf);
        for (int b = 0; b < (int) (sizeof(blends) / sizeof(blends[0])); b++)
        {
            int         got = it_topk_blend_sorted(scores, pop, blends[b], n, ex, nex, bmax, bsuf, k, idx, sc);
            int         want = it_topk_blend(scores, pop, blends[b], n, ex, nex, k, ridx, rsc);

            if (got != want)
                bad++;
            for (int i = 0; i < got && i < want; i++)
                if (idx[i] != ridx[i] || !(sc[i] == rsc[i]))
                {
                    bad++;
                    break;
                }
        }
        /* the maxima themselves */
        for (int64_t b = 0; b < nblk; b++)
        {
            float       mx = -INFINITY;

            for (int64_t i = b * 64; i < n && i < (b + 1) * 64; i++)
                if (scores[i] > mx)
                    mx = scores[i];
            if (!(bmax[b] == mx) || !(bsuf[b] >= bmax[b]) || (b + 1 < nblk && !(bsuf[b] >= bsuf[b + 1])))
                bad++;
        }
        free(scores);
        free(pop);
        free(bmax);
        free(bsuf);
        free(ex);
    }
    CHECK(bad == 0, "%d answers differ from it_topk_blend", bad);
}

TEST(topk_edge_cases)
{
    float       scores[5] = {3, 1, 4, 1, 5};
    int32_t     all[5] = {0, 1, 2, 3, 4};
    int32_t     idx[10];
    float       sc[10];
    float       nans[3] = {NAN, NAN, NAN};

    CHECK(it_topk(scores, 5, all, 5, 3, idx, sc) == 0, "everything excluded");
    CHECK(it_topk(scores, 5, NULL, 0, 0, idx, sc) == 0, "k = 0");
    CHECK(it_topk(scores, 0, NULL, 0, 3, idx, sc) == 0, "n = 0");
    CHECK(it_topk(nans, 3, NULL, 0, 3, idx, sc) == 0, "only NaN");
    CHECK(it_topk(scores, 5, NULL, 0, 10, idx, sc) == 5, "k > n");
    CHECK(idx[0] == 4 && idx[1] == 2 && idx[2] == 0 && idx[3] == 1 && idx[4] == 3,
          "order %d %d %d %d %d", idx[0], idx[1], idx[2], idx[3], idx[4]);
    CHECK(sc[0] == 5 && sc[4] == 1, "scores");
    CHECK(it_topk(scores, 5, all + 3, 2, 2, idx, sc) == 2 && idx[0] == 2 && idx[1] == 0,
          "exclusion of the best");
}

/*
 * Equal scores rank by the lower index, wherever the tied entries fall:
 * while the heap fills, when a later equal score meets a full heap (it must
 * not displace an earlier one), across the k-th place, around exclusions,
 * and for +0 and -0, which compare equal.
 */
TEST(topk_ties_by_lower_index)
{
    enum
    {
        N = 1000
    };
    float      *flat = malloc(sizeof(float) * N);
    int32_t     idx[N];
    float       sc[N];
    int         i;
    int         k;
    int         bad = 0;
    float       later[7] = {1, 1, 1, 2, 1, 1, 2};
    int32_t     later_want[5] = {3, 6, 0, 1, 2};
    float       zeros[4] = {-0.0f, 0.0f, -0.0f, 0.0f};
    int32_t     ex[3] = {0, 3, 998};
    float       block[12] = {5, 3, 3, 3, 9, 3, 3, 1, 3, 9, 3, 0};
    int32_t     block_want[8] = {4, 9, 0, 1, 2, 3, 5, 6};

    /* every score equal: the first k indexes, in order, for every k */
    for (i = 0; i < N; i++)
        flat[i] = 0.25f;
    for (k = 1; k <= N; k += (k < 20 ? 1 : 37))
    {
        int         got = it_topk(flat, N, NULL, 0, k, idx, sc);

        if (got != k)
            bad++;
        for (i = 0; i < got; i++)
            if (idx[i] != i)
            {
                bad++;
                break;
            }
    }
    CHECK(bad == 0, "%d lists of equal scores are not the lowest indexes in order", bad);

    /* the same with exclusions: 0, 3 and 998 are skipped, the rest in order */
    CHECK(it_topk(flat, N, ex, 3, 4, idx, sc) == 4 && idx[0] == 1 && idx[1] == 2 && idx[2] == 4 &&
          idx[3] == 5, "equal scores with exclusions: %d %d %d %d", idx[0], idx[1], idx[2], idx[3]);

    /* ties met after the heap is full */
    for (k = 1; k <= 5; k++)
    {
        int         got = it_topk(later, 7, NULL, 0, k, idx, sc);

        CHECK(got == k && memcmp(idx, later_want, sizeof(int32_t) * k) == 0,
              "k %d: got %d, first %d, last %d", k, got, idx[0], idx[got - 1]);
    }

    /* a tie across the k-th place keeps the lowest indexes of the tied group */
    for (k = 1; k <= 8; k++)
    {
        int         got = it_topk(block, 12, NULL, 0, k, idx, sc);

        CHECK(got == k && memcmp(idx, block_want, sizeof(int32_t) * k) == 0,
              "tie across place %d: got %d, last %d, want %d", k, got, idx[got - 1], block_want[k - 1]);
    }

    /* -0 and +0 are the same score */
    CHECK(it_topk(zeros, 4, NULL, 0, 3, idx, sc) == 3 && idx[0] == 0 && idx[1] == 1 && idx[2] == 2,
          "signed zeros: %d %d %d", idx[0], idx[1], idx[2]);
    free(flat);
}

TEST(score_all_matches_loop)
{
    int         n = 1000;
    int         k = 13;
    float      *Y = malloc(sizeof(float) * n * k);
    float       x[13];
    float      *s = malloc(sizeof(float) * n);
    int         i;
    int         c;
    double      maxerr = 0;

    for (i = 0; i < n * k; i++)
        Y[i] = (float) ((int) (Rand() % 1000) - 500) / 250.0f;
    for (c = 0; c < k; c++)
        x[c] = (float) ((int) (Rand() % 1000) - 500) / 250.0f;
    it_score_all(Y, n, k, x, s);
    for (i = 0; i < n; i++)
    {
        double      ref = 0;

        for (c = 0; c < k; c++)
            ref += (double) Y[i * k + c] * x[c];
        if (fabs(ref - s[i]) > maxerr)
            maxerr = fabs(ref - s[i]);
    }
    CHECK(maxerr < 1e-4, "max error %g", maxerr);
    free(Y);
    free(s);
}

TEST(score_many_matches_loop_and_add_scaled)
{
    int         n = 777;
    int         k = 9;
    int         nx = 5;
    float      *Y = malloc(sizeof(float) * n * k);
    float      *X = malloc(sizeof(float) * nx * k);
    float      *S = malloc(sizeof(float) * nx * n);
    float      *p = malloc(sizeof(float) * n);
    double      maxerr = 0;

    for (int i = 0; i < n * k; i++)
        Y[i] = (float) ((int) (Rand() % 1000) - 500) / 250.0f;
    for (int i = 0; i < nx * k; i++)
        X[i] = (float) ((int) (Rand() % 1000) - 500) / 250.0f;
    for (int i = 0; i < n; i++)
        p[i] = (float) (i % 7) / 7.0f;
    it_score_many(Y, n, k, X, nx, S);
    it_add_scaled(S + 2 * n, p, n, 0.5f);   /* row 2 only */
    for (int u = 0; u < nx; u++)
        for (int i = 0; i < n; i++)
        {
            double      ref = u == 2 ? 0.5 * p[i] : 0.0;

            for (int c = 0; c < k; c++)
                ref += (double) X[u * k + c] * Y[i * k + c];
            if (fabs(ref - S[(size_t) u * n + i]) > maxerr)
                maxerr = fabs(ref - S[(size_t) u * n + i]);
        }
    CHECK(maxerr < 1e-4, "max error %g", maxerr);
    it_score_many(Y, n, k, X, 0, S);        /* no users: nothing written, no crash */
    free(Y);
    free(X);
    free(S);
    free(p);
}

/*
 * The block checks' widths: the machine's widest runs, a width without
 * checks is refused, and in a build with every width the baseline's 4
 * always runs.
 */
TEST(topk_vector_width_choice)
{
    int         widest = it_topk_vector_width(0);

    CHECK(widest == 4 || widest == 8 || widest == 16, "widest width %d", widest);
    CHECK(it_topk_vector_width(3) == 0, "a width without checks must be refused");
    CHECK(it_topk_vector_width(0) == widest, "the choice back to the widest");
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(IT_NO_TARGET_CLONES)
    CHECK(it_topk_vector_width(4) == 4, "the baseline width must run");
    it_topk_vector_width(0);
#endif
}

int
main(void)
{
    const int   widths[] = {4, 8, 16};

    RUN(topk_vector_width_choice);
    /* the scans against their references at every width this machine runs */
    for (int w = 0; w < 3; w++)
    {
        if (it_topk_vector_width(widths[w]) != widths[w])
        {
            printf("# block checks of %d floats: not on this machine\n", widths[w]);
            continue;
        }
        printf("# block checks of %d floats\n", widths[w]);
        RUN(topk_equals_full_sort);
        RUN(topk_blend_equals_blended_buffer);
        RUN(topk_blend_sorted_equals_topk_blend);
    }
    it_topk_vector_width(0);
    RUN(topk_edge_cases);
    RUN(topk_ties_by_lower_index);
    RUN(score_all_matches_loop);
    RUN(score_many_matches_loop_and_add_scaled);
    return unit_summary();
}

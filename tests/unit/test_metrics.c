/*
 * test_metrics.c
 *    Unit tests of the ranking metrics (metrics.c) against hand-computed
 *    cases and a brute-force AUC.
 */
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 4242
#include "unit.h"

/* scores[i] = 1 - i / 10: the ranking is the index order */
static void
Descending(float *s, int n)
{
    int         i;

    for (i = 0; i < n; i++)
        s[i] = 1.0f - (float) i / 10.0f;
}

TEST(metrics_with_exclusion)
{
    float       s[10];
    int32_t     pos[] = {1, 4};
    int32_t     ex[] = {0};
    int32_t     top[3];
    float       ts[3];
    ItUserMetrics m;

    Descending(s, 10);
    CHECK(it_rank_metrics(s, 10, pos, 2, ex, 1, 3, top, ts, &m) == 2, "positives");
    CHECK(top[0] == 1 && top[1] == 2 && top[2] == 3, "top %d %d %d", top[0], top[1], top[2]);
    CHECK_NEAR(m.precision, 1.0 / 3.0, 1e-12);
    CHECK_NEAR(m.recall, 0.5, 1e-12);
    /* DCG 1, ideal 1 + 1/log2(3) */
    CHECK_NEAR(m.ndcg, 1.0 / (1.0 + 1.0 / log2(3.0)), 1e-12);
    CHECK_NEAR(m.ap, 0.5, 1e-12);
    /* 9 candidates, 7 negatives: 7 + 5 of 14 pairs */
    CHECK_NEAR(m.auc, 12.0 / 14.0, 1e-12);
}

TEST(metrics_two_hits)
{
    float       s[10];
    int32_t     pos[] = {0, 2, 7};
    int32_t     top[3];
    float       ts[3];
    ItUserMetrics m;

    Descending(s, 10);
    CHECK(it_rank_metrics(s, 10, pos, 3, NULL, 0, 3, top, ts, &m) == 3, "positives");
    CHECK_NEAR(m.precision, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.recall, 2.0 / 3.0, 1e-12);
    CHECK_NEAR(m.ndcg, 1.5 / (1.0 + 1.0 / log2(3.0) + 0.5), 1e-12);
    CHECK_NEAR(m.ap, (1.0 + 2.0 / 3.0) / 3.0, 1e-12);
    CHECK_NEAR(m.auc, 15.0 / 21.0, 1e-12);
}

TEST(metrics_k_larger_than_positives)
{
    float       s[10];
    int32_t     pos[] = {1};
    int32_t     top[5];
    float       ts[5];
    ItUserMetrics m;

    Descending(s, 10);
    /* one positive at rank 2 of 5 */
    CHECK(it_rank_metrics(s, 10, pos, 1, NULL, 0, 5, top, ts, &m) == 1, "positives");
    CHECK_NEAR(m.precision, 0.2, 1e-12);
    CHECK_NEAR(m.recall, 1.0, 1e-12);
    CHECK_NEAR(m.ndcg, 1.0 / log2(3.0), 1e-12);
    CHECK_NEAR(m.ap, 0.5, 1e-12);
    CHECK_NEAR(m.auc, 8.0 / 9.0, 1e-12);
}

TEST(metrics_ties_and_ignored_positives)
{
    float       s[6] = {2, 2, 2, 2, 2, 2};
    int32_t     pos[] = {1, 3, 3, 9};   /* 3 repeated, 9 out of range */
    int32_t     ex[] = {1};             /* positive 1 is excluded */
    int32_t     top[2];
    float       ts[2];
    ItUserMetrics m;

    CHECK(it_rank_metrics(s, 6, pos, 4, ex, 1, 2, top, ts, &m) == 1, "only 3 counts");
    /* ties by lower index: 0, 2 */
    CHECK(top[0] == 0 && top[1] == 2, "top %d %d", top[0], top[1]);
    CHECK_NEAR(m.precision, 0.0, 1e-12);
    CHECK_NEAR(m.auc, 0.5, 1e-12);

    /* every positive excluded: skipped */
    CHECK(it_rank_metrics(s, 6, pos, 1, ex, 1, 2, top, ts, &m) == 0, "skipped");
    CHECK(m.precision == 0 && m.auc == 0, "zeroed");
}

TEST(metrics_nan_scores_rank_last)
{
    float       s[4] = {NAN, 0.5f, NAN, 0.1f};
    int32_t     pos[] = {0, 3};
    int32_t     top[4];
    float       ts[4];
    ItUserMetrics m;

    /* positives: NaN (last, tied with the other NaN) and 0.1;
     * negatives: 0.5 and NaN. Pairs: (NaN,0.5) 0, (NaN,NaN) 1/2,
     * (0.1,0.5) 0, (0.1,NaN) 1 -> 1.5 / 4 */
    CHECK(it_rank_metrics(s, 4, pos, 2, NULL, 0, 4, top, ts, &m) == 2, "positives");
    CHECK_NEAR(m.auc, 1.5 / 4.0, 1e-12);
    CHECK_NEAR(m.precision, 0.25, 1e-12);       /* top: 1, 3 */
}

/* AUC against the O(n * npos) definition, across the 256-positive blocks */
TEST(auc_matches_brute_force)
{
    int         trial;

    for (trial = 0; trial < 30; trial++)
    {
        int         n = 50 + Rand() % 2000;
        float      *s = malloc(sizeof(float) * n);
        int32_t    *pos = malloc(sizeof(int32_t) * n);
        int32_t    *ex = malloc(sizeof(int32_t) * n);
        char       *isp = calloc(n, 1);
        char       *ise = calloc(n, 1);
        int32_t     top[10];
        float       ts[10];
        int         npos = 0;
        int         nex = 0;
        int         i;
        int         j;
        double      pairs = 0;
        double      np = 0;
        double      nn = 0;
        ItUserMetrics m;
        int64_t     got;

        for (i = 0; i < n; i++)
        {
            s[i] = (float) (Rand() % 50);   /* ties */
            if (Rand() % 3 == 0)
            {
                pos[npos++] = i;
                isp[i] = 1;
            }
            if (Rand() % 5 == 0)
            {
                ex[nex++] = i;
                ise[i] = 1;
            }
        }
        for (i = 0; i < n; i++)
        {
            if (!isp[i] || ise[i])
                continue;
            np++;
            for (j = 0; j < n; j++)
            {
                if (isp[j] || ise[j])
                    continue;
                pairs += s[i] > s[j] ? 1.0 : (s[i] == s[j] ? 0.5 : 0.0);
            }
        }
        for (j = 0; j < n; j++)
            nn += !isp[j] && !ise[j];
        got = it_rank_metrics(s, n, pos, npos, ex, nex, 10, top, ts, &m);
        CHECK(got == (int64_t) np, "positives %lld vs %g", (long long) got, np);
        CHECK_NEAR(m.auc, pairs / (np * nn), 1e-12);
        free(s);
        free(pos);
        free(ex);
        free(isp);
        free(ise);
    }
}

int
main(void)
{
    RUN(metrics_with_exclusion);
    RUN(metrics_two_hits);
    RUN(metrics_k_larger_than_positives);
    RUN(metrics_ties_and_ignored_positives);
    RUN(metrics_nan_scores_rank_last);
    RUN(auc_matches_brute_force);
    return unit_summary();
}

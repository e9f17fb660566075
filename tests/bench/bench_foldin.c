/*
 * bench_foldin.c
 *    Solve time of one fold-in (it_fold_in: Y'Y + a few rank-one updates,
 *    Cholesky) at k factors, next to one sgemv over the whole item matrix
 *    (the scoring step of every recommend() call), measured in the same run.
 *
 *    bench_foldin [-k FACTORS] [-m ITEMS] [-n INTERACTIONS] [-c CALLS]
 *
 * Prints p50 / p99 / mean in microseconds for each, and their ratio.  Plain
 * C on the kernels alone (no server), so it measures the solve without the
 * SPI reads; tests/bench/foldin_latency.sh measures recommend() end to end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

static double
now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int
cmp_double(const void *a, const void *b)
{
    double      x = *(const double *) a;
    double      y = *(const double *) b;

    return (x > y) - (x < y);
}

static void
report(const char *what, double *t, int n)
{
    double      s = 0;

    qsort(t, n, sizeof(double), cmp_double);
    for (int i = 0; i < n; i++)
        s += t[i];
    printf("%-34s p50 %8.2f us  p99 %8.2f us  mean %8.2f us\n", what,
           t[n / 2], t[(int) (n * 0.99)], s / n);
}

static double
median(double *t, int n)
{
    qsort(t, n, sizeof(double), cmp_double);
    return t[n / 2];
}

int
main(int argc, char **argv)
{
    int         k = 64;
    int64_t     m = 20000;
    int         nint = 3;
    int         calls = 1000;
    float      *Y;
    float      *YtY;
    float      *prior;
    float      *x;
    float      *scratch;
    float      *scores;
    int32_t    *items;
    float      *weights;
    double     *t_fold;
    double     *t_fold10;
    double     *t_gemv;
    uint64_t    seed = 42;
    double      checksum = 0;

    for (int i = 1; i + 1 < argc; i += 2)
    {
        if (strcmp(argv[i], "-k") == 0)
            k = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-m") == 0)
            m = atoll(argv[i + 1]);
        else if (strcmp(argv[i], "-n") == 0)
            nint = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-c") == 0)
            calls = atoi(argv[i + 1]);
        else
        {
            fprintf(stderr, "usage: %s [-k FACTORS] [-m ITEMS] [-n INTERACTIONS] [-c CALLS]\n", argv[0]);
            return 2;
        }
    }
    if (k < 1 || m < 1 || nint < 1 || calls < 1 || nint > m)
    {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    Y = malloc(sizeof(float) * m * k);
    YtY = malloc(sizeof(float) * k * k);
    prior = malloc(sizeof(float) * k);
    x = malloc(sizeof(float) * k);
    scratch = malloc(sizeof(float) * (k * k + k));
    scores = malloc(sizeof(float) * m);
    items = malloc(sizeof(int32_t) * (nint > 10 ? nint : 10));
    weights = malloc(sizeof(float) * (nint > 10 ? nint : 10));
    t_fold = malloc(sizeof(double) * calls);
    t_fold10 = malloc(sizeof(double) * calls);
    t_gemv = malloc(sizeof(double) * calls);
    if (!Y || !YtY || !prior || !x || !scratch || !scores || !items || !weights ||
        !t_fold || !t_fold10 || !t_gemv)
    {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    it_random_init(Y, m, k, seed, 0.3f);
    it_gram(Y, m, k, YtY);
    it_random_init(prior, 1, k, seed + 1, 0.3f);

    printf("fold-in kernel: %d factors, %lld items, %d calls\n", k, (long long) m, calls);
    for (int c = 0; c < calls; c++)
    {
        double      t0;
        int         rc;

        /* a different user each call: items spread over the catalogue */
        for (int i = 0; i < 10; i++)
        {
            items[i] = (int32_t) (((int64_t) (c + 1) * 7919 + (int64_t) i * 104729) % m);
            weights[i] = 1.0f + (float) ((c + i) % 4);
        }
        /* sorted, distinct (the serving code passes them so) */
        for (int i = 1; i < 10; i++)
            for (int j = i; j > 0 && items[j - 1] > items[j]; j--)
            {
                int32_t     tmp = items[j];

                items[j] = items[j - 1];
                items[j - 1] = tmp;
            }

        t0 = now_us();
        rc = it_fold_in(Y, k, YtY, items, weights, nint, 1.0f, 0.0f, 0.7f, prior, x, scratch);
        t_fold[c] = now_us() - t0;
        if (rc != 0)
        {
            fprintf(stderr, "fold-in failed: %d\n", rc);
            return 1;
        }
        checksum += x[0];

        t0 = now_us();
        rc = it_fold_in(Y, k, YtY, items, weights, 10, 1.0f, 0.0f, 0.7f, prior, x, scratch);
        t_fold10[c] = now_us() - t0;
        checksum += x[1];

        t0 = now_us();
        it_score_all(Y, m, k, x, scores);
        t_gemv[c] = now_us() - t0;
        checksum += scores[c % m];
    }

    {
        char        label[64];
        double      f;
        double      g;

        snprintf(label, sizeof(label), "fold-in, %d interactions", nint);
        report(label, t_fold, calls);
        report("fold-in, 10 interactions", t_fold10, calls);
        snprintf(label, sizeof(label), "baseline sgemv over %lld items", (long long) m);
        report(label, t_gemv, calls);
        f = median(t_fold, calls);
        g = median(t_gemv, calls);
        printf("ratio fold-in (%d interactions) / sgemv scoring (p50): %.2f\n", nint, f / g);
    }
    printf("(checksum %g)\n", checksum);
    return 0;
}

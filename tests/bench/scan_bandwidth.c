/*
 * scan_bandwidth.c
 *    The memory-bandwidth floor of recommend()'s first pass: reads a
 *    buffer of the 8-bit item copy's size with its scales
 *    (it_q8_padded(items) * (it_q8_kpad(factors) + 4) bytes), or with BITS
 *    4 of the 4-bit copy's (it_q4_bytes and an ItQ4Scales a block), again
 *    and again and reports the median pass, so that a scan's time can be
 *    compared with the time merely reading its bytes takes on this
 *    machine, in the same run.  With THREADS > 1 the buffer is cut into
 *    that many parts, read at once by the caller and threads started and
 *    joined for each pass, as a recommend() call starts its scan thread.
 *
 *    scan_bandwidth ITEMS FACTORS [PASSES] [BITS] [THREADS]
 *
 * A program, not a test: no PostgreSQL, the kernel library for the sizes.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2")))
static uint64_t
ReadAvx2(const uint8_t *buf, size_t bytes)
{
    __m256i     a[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    uint64_t    out[4];

    for (size_t i = 0; i + 128 <= bytes; i += 128)
        for (int u = 0; u < 4; u++)
            a[u] = _mm256_add_epi64(a[u], _mm256_load_si256((const __m256i *) (buf + i + 32 * u)));
    _mm256_storeu_si256((__m256i *) out, _mm256_add_epi64(_mm256_add_epi64(a[0], a[1]), _mm256_add_epi64(a[2], a[3])));
    return out[0] + out[1] + out[2] + out[3];
}
#endif

static uint64_t
ReadPlain(const uint8_t *buf, size_t bytes)
{
    uint64_t    a[4] = {0};

    for (size_t i = 0; i + 32 <= bytes; i += 32)
        for (int u = 0; u < 4; u++)
        {
            uint64_t    w;

            memcpy(&w, buf + i + 8 * u, sizeof(w));
            a[u] += w;
        }
    return a[0] + a[1] + a[2] + a[3];
}

/* the sums go here, so that the reads are not optimised away */
static volatile uint64_t Sink;

static double
Now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One thread's part of a pass. */
typedef struct ReadPart
{
    const uint8_t *buf;
    size_t      bytes;
    int         avx2;
    uint64_t    sum;
} ReadPart;

static void *
ReadRun(void *arg)
{
    ReadPart   *p = arg;

#if defined(__GNUC__) && defined(__x86_64__)
    p->sum = p->avx2 ? ReadAvx2(p->buf, p->bytes) : ReadPlain(p->buf, p->bytes);
#else
    p->sum = ReadPlain(p->buf, p->bytes);
#endif
    return NULL;
}

static int
CompareDoubles(const void *a, const void *b)
{
    double      x = *(const double *) a;
    double      y = *(const double *) b;

    return (x > y) - (x < y);
}

int
main(int argc, char **argv)
{
    int64_t     items = argc > 1 ? atoll(argv[1]) : 100000;
    int         factors = argc > 2 ? atoi(argv[2]) : 64;
    int         passes = argc > 3 ? atoi(argv[3]) : 200;
    int         bits = argc > 4 ? atoi(argv[4]) : 8;
    int         threads = argc > 5 ? atoi(argv[5]) : 1;
    size_t      bytes;
    ReadPart    parts[8];
    pthread_t   tids[8];
    uint8_t    *buf;
    double     *t;
    uint64_t    sink = 0;
    int         avx2 = 0;

    if (items <= 0 || factors <= 0 || passes <= 0 || (bits != 8 && bits != 4) || threads < 1 || threads > 8)
    {
        fprintf(stderr, "usage: scan_bandwidth ITEMS FACTORS [PASSES] [BITS (8 or 4)] [THREADS (1 to 8)]\n");
        return 2;
    }
    bytes = bits == 4 ? it_q4_bytes(items, factors) + sizeof(ItQ4Scales) * (size_t) (it_q8_padded(items) / IT_Q8_BLOCK) :
        (size_t) it_q8_padded(items) * (it_q8_kpad(factors) + sizeof(float));
    bytes = (bytes + 128 * threads - 1) / (128 * threads) * (128 * threads);
    buf = aligned_alloc(64, bytes);
    t = malloc(sizeof(double) * passes);
    if (buf == NULL || t == NULL)
    {
        fprintf(stderr, "scan_bandwidth: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < bytes; i++)
        buf[i] = (uint8_t) (i * 2654435761u >> 13);
#if defined(__GNUC__) && defined(__x86_64__)
    __builtin_cpu_init();
    avx2 = __builtin_cpu_supports("avx2");
#endif
    for (int p = -3; p < passes; p++)
    {
        double      t0 = Now();
        int         ok[8] = {0};

        for (int i = 0; i < threads; i++)
            parts[i] = (ReadPart) {buf + bytes / threads * i, bytes / threads, avx2, 0};
        for (int i = 1; i < threads; i++)
            ok[i] = pthread_create(&tids[i], NULL, ReadRun, &parts[i]) == 0;
        ReadRun(&parts[0]);
        for (int i = 1; i < threads; i++)
        {
            if (ok[i])
                pthread_join(tids[i], NULL);
            else
                ReadRun(&parts[i]);
        }
        for (int i = 0; i < threads; i++)
            sink += parts[i].sum;
        if (p >= 0)
            t[p] = Now() - t0;
    }
    qsort(t, passes, sizeof(double), CompareDoubles);
    if (threads == 1)
        printf("bandwidth reading %.1f MB (the %d-bit item copy and its scales) on one core %d times: median %.1f us "
               "(%.1f GB/s), fastest %.1f us: no one-thread scan of it is faster\n",
               bytes / 1e6, bits, passes, t[passes / 2] * 1e6, bytes / t[passes / 2] / 1e9, t[0] * 1e6);
    else
        printf("bandwidth reading %.1f MB (the %d-bit item copy and its scales) on %d threads (started and joined "
               "each time) %d times: median %.1f us (%.1f GB/s), fastest %.1f us: no scan of it over %d threads is "
               "faster\n",
               bytes / 1e6, bits, threads, passes, t[passes / 2] * 1e6, bytes / t[passes / 2] / 1e9, t[0] * 1e6,
               threads);
    Sink = sink;
    free(buf);
    free(t);
    return 0;
}

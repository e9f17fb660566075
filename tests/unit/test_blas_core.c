/*
 * test_blas_core.c
 *    OpenBLAS's fallback kernels replaced by what the CPU can run.
 */
#include <string.h>

#include <cblas.h>

#include "kernels.h"
#include "unit.h"

static int
Same(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

TEST(only_the_fallback_is_replaced)
{
    CHECK(Same(it_blas_core_for("Prescott", 1, 1, 1), "Cooperlake"), "AVX-512 with BF16");
    CHECK(Same(it_blas_core_for("Prescott", 1, 1, 0), "SkylakeX"), "AVX-512");
    CHECK(Same(it_blas_core_for("Prescott", 1, 0, 0), "Haswell"), "AVX2 and FMA");
    CHECK(Same(it_blas_core_for("Prescott", 0, 0, 0), NULL), "SSE only: kept");
    CHECK(Same(it_blas_core_for("SkylakeX", 1, 1, 1), NULL), "a core the library knew: kept");
    CHECK(Same(it_blas_core_for("Zen", 1, 0, 0), NULL), "a core the library knew: kept");
    CHECK(Same(it_blas_core_for(NULL, 1, 1, 1), NULL), "another BLAS: kept");
}

/* After the switch (whatever this CPU is) products are still right. */
TEST(products_after_the_switch)
{
    enum { M = 37, N = 29, K = 53 };
    static float a[M * K], b[K * N], c[M * N];
    const char *before = it_blas_core_name();
    const char *after = it_blas_prefer_core();
    double worst = 0;

    if (after != NULL)
    {
        CHECK(Same(before, "Prescott"), "only the fallback is switched, not %s", before ? before : "-");
        CHECK(!Same(after, "Prescott"), "the switch took effect");
        CHECK(Same(it_blas_core_name(), after), "the library runs the core reported");
    }
    for (int i = 0; i < M * K; i++)
        a[i] = (float) ((i * 7) % 13) - 6.0f;
    for (int i = 0; i < K * N; i++)
        b[i] = (float) ((i * 5) % 11) - 5.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
        {
            double s = 0;

            for (int l = 0; l < K; l++)
                s += (double) a[i * K + l] * b[l * N + j];
            if (fabs(s - c[i * N + j]) > worst)
                worst = fabs(s - c[i * N + j]);
        }
    /* small integers: every product and sum is exact in float */
    CHECK(worst == 0, "sgemm off by %g", worst);
}

int
main(void)
{
    RUN(only_the_fallback_is_replaced);
    RUN(products_after_the_switch);
    return unit_summary();
}

/*
 * blas_core.c
 *    OpenBLAS's kernels chosen by what the CPU can run, not by its model
 *    number alone.
 *
 * An OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels when it
 * is loaded, from the CPU's family and model number; a model newer than
 * the library (Debian 12's 0.3.21 on an Emerald Rapids Xeon, for one) gets
 * the generic "Prescott" SSE3 kernels, which run sgemm 4-5 times slower
 * than the AVX-512 ones the CPU supports.  it_blas_prefer_core() then
 * asks the library to load the kernels the CPU's features allow, through
 * the same OPENBLAS_CORETYPE switch a user can set, honoured again by the
 * library's own initialisation.  The library's functions are bound weakly:
 * another BLAS, or an OpenBLAS without DYNAMIC_ARCH, is left alone.
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

extern char *openblas_get_corename(void) __attribute__((weak));
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));

const char *
it_blas_core_for(const char *current, int avx2_fma, int avx512, int avx512_bf16)
{
    /* the library's fallback for a CPU it does not know */
    if (current == NULL || strcmp(current, "Prescott") != 0)
        return NULL;
    if (avx512)
        return avx512_bf16 ? "Cooperlake" : "SkylakeX";
    if (avx2_fma)
        return "Haswell";
    return NULL;
}

const char *
it_blas_core_name(void)
{
    return openblas_get_corename != NULL ? openblas_get_corename() : NULL;
}

const char *
it_blas_wanted_core(void)
{
    if (openblas_get_corename == NULL || gotoblas_dynamic_init == NULL || gotoblas_dynamic_quit == NULL)
        return NULL;
    /* a choice the user made stands */
    if (getenv("OPENBLAS_CORETYPE") != NULL)
        return NULL;
    __builtin_cpu_init();
    return it_blas_core_for(openblas_get_corename(),
                            __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                            __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"),
                            __builtin_cpu_supports("avx512bf16"));
}

const char *
it_blas_prefer_core(void)
{
    const char *want = it_blas_wanted_core();

    if (want == NULL)
        return NULL;
    if (setenv("OPENBLAS_CORETYPE", want, 1) != 0)
        return NULL;
    gotoblas_dynamic_quit();
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
    return openblas_get_corename();
}

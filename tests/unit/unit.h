/*
 * unit.h
 *    A minimal test harness for the kernel unit tests (no PostgreSQL).
 *
 *    TEST(name) { ... CHECK(cond, "fmt", ...); ... }
 *    int main(void) { RUN(name); ...; return unit_summary(); }
 *
 * Each failed CHECK prints its file, line and message; unit_summary prints
 * "N passed, N failed" and returns the exit status.
 */
#ifndef IT_UNIT_H
#define IT_UNIT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int  unit_passed = 0;
static int  unit_failed = 0;
static int  unit_current_failed = 0;

/*
 * A deterministic xorshift generator, seeded per file: define UNIT_SEED
 * before including this header.
 */
#ifndef UNIT_SEED
#define UNIT_SEED 1
#endif
static uint64_t rng_state = UNIT_SEED;

static inline uint64_t
Rand(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* uniform in [0, 1) */
static inline double
Uniform(void)
{
    return (double) (Rand() >> 11) / 9007199254740992.0;
}

#define TEST(name) static void name(void)

#define CHECK(cond, ...) \
    do { \
        if (!(cond)) { \
            unit_current_failed = 1; \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__); \
            fputc('\n', stderr); \
        } \
    } while (0)

#define CHECK_NEAR(a, b, tol) \
    CHECK(fabs((double) (a) - (double) (b)) <= (tol), "%g vs %g (tolerance %g)", \
          (double) (a), (double) (b), (double) (tol))

#define RUN(name) \
    do { \
        unit_current_failed = 0; \
        name(); \
        if (unit_current_failed) { unit_failed++; printf("not ok - %s\n", #name); } \
        else { unit_passed++; printf("ok - %s\n", #name); } \
    } while (0)

static inline int
unit_summary(void)
{
    printf("%d passed, %d failed\n", unit_passed, unit_failed);
    return unit_failed ? 1 : 0;
}

#endif

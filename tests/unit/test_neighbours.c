/*
 * test_neighbours.c
 *    Unit tests of the co-buyer scores (neighbours.c) against a dense
 *    brute force.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#define UNIT_SEED 777
#include "unit.h"

/* A random users x items 0/1 matrix, dense and as CSR (with its transpose). */
static void
RandomMatrix(int nu, int ni, double density, unsigned char *dense, ItCsr *R, ItCsr *Rt)
{
    int64_t     nnz = 0;

    for (int u = 0; u < nu; u++)
        for (int i = 0; i < ni; i++)
        {
            dense[u * ni + i] = (Rand() % 1000) < density * 1000;
            nnz += dense[u * ni + i];
        }
    R->nrows = nu;
    R->ncols = ni;
    R->indptr = malloc(sizeof(int64_t) * (nu + 1));
    R->indices = malloc(sizeof(int32_t) * (nnz + 1));
    R->data = malloc(sizeof(float) * (nnz + 1));
    nnz = 0;
    R->indptr[0] = 0;
    for (int u = 0; u < nu; u++)
    {
        for (int i = 0; i < ni; i++)
            if (dense[u * ni + i])
            {
                R->indices[nnz] = i;
                R->data[nnz] = 1.0f;
                nnz++;
            }
        R->indptr[u + 1] = nnz;
    }
    R->nnz = nnz;
    Rt->indptr = malloc(sizeof(int64_t) * (ni + 1));
    Rt->indices = malloc(sizeof(int32_t) * (nnz + 1));
    Rt->data = malloc(sizeof(float) * (nnz + 1));
    it_csr_transpose(R, Rt);
}

static void
FreeCsr(ItCsr *a)
{
    free(a->indptr);
    free(a->indices);
    free(a->data);
}

TEST(cobuyers_match_brute_force)
{
    int         nu = 60;
    int         ni = 40;
    unsigned char *dense = malloc(nu * ni);
    ItCsr       R;
    ItCsr       Rt;
    int32_t    *counts = calloc(nu, sizeof(int32_t));
    int64_t    *touched = malloc(sizeof(int64_t) * nu);
    float      *scores = malloc(sizeof(float) * ni);

    RandomMatrix(nu, ni, 0.15, dense, &R, &Rt);
    for (int trial = 0; trial < 30; trial++)
    {
        int32_t     items[8];
        int         n = 1 + (int) (Rand() % 8);
        int64_t     exclude = (int64_t) (Rand() % (nu + 1)) - 1;  /* -1: nobody */
        int64_t     lo = (int64_t) (Rand() % ni);
        int64_t     hi = lo + (int64_t) (Rand() % (ni - lo + 1));
        int         bad = 0;

        for (int i = 0; i < n; i++)
            items[i] = (int32_t) (Rand() % ni);
        memset(scores, 0, sizeof(float) * ni);
        (void) it_cobuyer_scores(&R, &Rt, items, n, exclude, lo, hi, counts, touched, scores);
        for (int64_t j = lo; j < hi; j++)
        {
            double      want = 0.0;

            for (int u = 0; u < nu; u++)
            {
                int         shared = 0;

                if (u == exclude || !dense[u * ni + j])
                    continue;
                for (int i = 0; i < n; i++)
                    shared += dense[u * ni + items[i]];
                want += shared;
            }
            if (scores[j - lo] != (float) want)
                bad++;
        }
        CHECK(bad == 0, "trial %d: %d scores differ from the brute force", trial, bad);
        for (int u = 0; u < nu; u++)
            CHECK(counts[u] == 0, "counts[%d] left at %d", u, counts[u]);
    }
    FreeCsr(&R);
    FreeCsr(&Rt);
    free(dense);
    free(counts);
    free(touched);
    free(scores);
}

TEST(cobuyers_ignore_out_of_range_items_and_the_user)
{
    /* users 0 and 1 share item 0; user 1 also took item 2; user 0 is excluded */
    int64_t     indptr[3] = {0, 2, 4};
    int32_t     indices[4] = {0, 2, 0, 2};
    float       data[4] = {1, 1, 1, 1};
    ItCsr       R = {2, 3, 4, indptr, indices, data};
    int64_t     tptr[4];
    int32_t     tind[4];
    float       tdat[4];
    ItCsr       Rt = {0, 0, 0, tptr, tind, tdat};
    int32_t     counts[2] = {0, 0};
    int64_t     touched[2];
    float       scores[3] = {0, 0, 0};
    int32_t     items[3] = {0, -1, 7};

    it_csr_transpose(&R, &Rt);
    (void) it_cobuyer_scores(&R, &Rt, items, 3, 0, 0, 3, counts, touched, scores);
    CHECK(scores[0] == 1.0f && scores[1] == 0.0f && scores[2] == 1.0f,
          "scores %g %g %g, expected 1 0 1", scores[0], scores[1], scores[2]);
}

int
main(void)
{
    RUN(cobuyers_match_brute_force);
    RUN(cobuyers_ignore_out_of_range_items_and_the_user);
    return unit_summary();
}

/*
 * test_foldin_choice.c
 *    Unit tests of the simulation that chooses the weight of a fold-in
 *    prior (foldin_choice.c): hashes, reveal order, the users simulated,
 *    the leave-out item vectors, one user's simulation and the choice.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "foldin_choice.h"
#include "kernels.h"
#include "rankgrid.h"
#define UNIT_SEED 4242
#include "unit.h"

/* A small trained-looking model: R (users x items) with its transpose, X, Y. */
typedef struct Model
{
    int64_t     nusers;
    int64_t     nitems;
    int         k;
    ItCsr       R;
    ItCsr       Rt;
    float      *X;
    float      *Y;
} Model;

/*
 * User u takes item i with probability 0.3 (weights 1 to 5), and item
 * `lonely` only from user 0, so that leaving user 0 out leaves it empty.
 */
static void
MakeModel(Model *md, int64_t nusers, int64_t nitems, int k, int lonely)
{
    int64_t     cap = nusers * nitems;
    int32_t    *rows = malloc(sizeof(int32_t) * cap);
    int32_t    *cols = malloc(sizeof(int32_t) * cap);
    float      *vals = malloc(sizeof(float) * cap);
    int64_t    *work = malloc(sizeof(int64_t) * cap);
    int64_t     n = 0;

    md->nusers = nusers;
    md->nitems = nitems;
    md->k = k;
    for (int64_t u = 0; u < nusers; u++)
        for (int64_t i = 0; i < nitems; i++)
        {
            if (i == lonely ? u != 0 : Uniform() >= 0.3)
                continue;
            rows[n] = (int32_t) u;
            cols[n] = (int32_t) i;
            vals[n] = (float) (1 + (int) (Uniform() * 5));
            n++;
        }
    md->R.nrows = nusers;
    md->R.ncols = nitems;
    md->R.indptr = malloc(sizeof(int64_t) * (nusers + 1));
    md->R.indices = malloc(sizeof(int32_t) * (n + 1));
    md->R.data = malloc(sizeof(float) * (n + 1));
    it_csr_from_coo(&md->R, n, rows, cols, vals, work);
    md->Rt.indptr = malloc(sizeof(int64_t) * (nitems + 1));
    md->Rt.indices = malloc(sizeof(int32_t) * (n + 1));
    md->Rt.data = malloc(sizeof(float) * (n + 1));
    it_csr_transpose(&md->R, &md->Rt);
    md->X = malloc(sizeof(float) * nusers * k);
    md->Y = malloc(sizeof(float) * nitems * k);
    it_random_init(md->X, nusers, k, 11, 0.5f);
    it_random_init(md->Y, nitems, k, 12, 0.5f);
    free(rows);
    free(cols);
    free(vals);
    free(work);
}

static void
FreeModel(Model *md)
{
    free(md->R.indptr);
    free(md->R.indices);
    free(md->R.data);
    free(md->Rt.indptr);
    free(md->Rt.indices);
    free(md->Rt.data);
    free(md->X);
    free(md->Y);
}

static void
AllocLeaveOut(const Model *md, const int64_t *rows, int64_t n, const ItAlsParams *p,
              ItLeaveOutBuffers *b)
{
    int64_t     kept = md->Rt.nnz - it_leave_out_removed(&md->R, rows, n);
    int         k = md->k;

    b->out = malloc(md->nusers);
    b->indptr = malloc(sizeof(int64_t) * (md->nitems + 1));
    b->indices = malloc(sizeof(int32_t) * (kept > 0 ? kept : 1));
    b->data = malloc(sizeof(float) * (kept > 0 ? kept : 1));
    b->Xs = malloc(sizeof(float) * (n > 0 ? n : 1) * k);
    b->G = malloc(sizeof(float) * k * k);
    b->XtX = malloc(sizeof(float) * k * k);
    b->scratch = malloc(sizeof(float) * it_als_scratch_floats(k, p->threads));
}

static void
FreeLeaveOut(ItLeaveOutBuffers *b)
{
    free(b->out);
    free(b->indptr);
    free(b->indices);
    free(b->data);
    free(b->Xs);
    free(b->G);
    free(b->XtX);
    free(b->scratch);
}

static void
AlsParams(ItAlsParams *p, int k)
{
    p->factors = k;
    p->regularization = 0.05f;
    p->alpha = 2.0f;
    p->cg_steps = 3;
    p->threads = 1;
    p->positive_threshold = 0.0f;
}

static int  stop_calls = 0;

static int
CountCalls(void *arg)
{
    stop_calls++;
    return arg != NULL && stop_calls >= *(const int *) arg;
}

/* ------------------------------------------------------------------------
 * Hashes and the reveal order
 * ------------------------------------------------------------------------ */

TEST(hashes)
{
    /* splitmix64's first output from state 0 */
    CHECK(it_mix64(0) == UINT64_C(0xE220A8397B1DCDAF), "mix64(0) = %llx",
          (unsigned long long) it_mix64(0));
    CHECK(it_mix64(1) != it_mix64(2), "different inputs, different hashes");
    CHECK(it_unit_hash(0) > 0.0 && it_unit_hash(0) < 1e-15, "smallest %g", it_unit_hash(0));
    CHECK(it_unit_hash(UINT64_MAX) == 1.0, "largest %g", it_unit_hash(UINT64_MAX));
    CHECK_NEAR(it_unit_hash(UINT64_C(1) << 63), 0.5, 1e-15);
}

TEST(reveal_order_is_a_seeded_permutation)
{
    Model       md;
    int64_t     row = 3;
    int64_t     len;
    ItRevealEntry *a,
               *b;
    int         same = 1;

    MakeModel(&md, 10, 60, 4, 59);
    len = md.R.indptr[row + 1] - md.R.indptr[row];
    CHECK(len >= 8, "row of %lld", (long long) len);
    a = malloc(sizeof(ItRevealEntry) * len);
    b = malloc(sizeof(ItRevealEntry) * len);
    it_fold_in_reveal_order(&md.R, NULL, row, 77, a);
    it_fold_in_reveal_order(&md.R, NULL, row, 77, b);
    CHECK(memcmp(a, b, sizeof(ItRevealEntry) * len) == 0, "same salt, same order");
    for (int64_t e = 0; e < len; e++)
    {
        int64_t     f;
        int         found = 0;

        if (e > 0)
            CHECK(a[e - 1].key < a[e].key, "ascending keys at %lld", (long long) e);
        CHECK(a[e].key > 0.0 && a[e].key <= 1.0, "key %g", a[e].key);
        /* each entry of the row once, with its weight */
        for (f = md.R.indptr[row]; f < md.R.indptr[row + 1]; f++)
            if (md.R.indices[f] == a[e].item)
            {
                found++;
                CHECK(md.R.data[f] == a[e].w, "weight of item %d", a[e].item);
            }
        CHECK(found == 1, "item %d found %d times", a[e].item, found);
    }
    it_fold_in_reveal_order(&md.R, NULL, row, 78, b);
    for (int64_t e = 0; e < len; e++)
        same &= a[e].item == b[e].item;
    CHECK(!same, "another salt, another order");
    free(a);
    free(b);
    FreeModel(&md);
}

/* With times, the order is the interactions' time order; equal times fall back to the salt's order. */
TEST(reveal_order_follows_times)
{
    Model       md;
    int64_t     row = 3;
    int64_t     b0;
    int64_t     len;
    double     *times;
    ItRevealEntry *a;
    ItRevealEntry *h;

    MakeModel(&md, 10, 60, 4, 59);
    b0 = md.R.indptr[row];
    len = md.R.indptr[row + 1] - b0;
    times = malloc(sizeof(double) * md.R.nnz);
    for (int64_t e = 0; e < md.R.nnz; e++)
        times[e] = 0.0;
    /* the row's entries get times in descending item order, the last two equal */
    for (int64_t e = 0; e < len; e++)
        times[b0 + e] = e >= len - 2 ? 1.0 : (double) (len - e);
    a = malloc(sizeof(ItRevealEntry) * len);
    h = malloc(sizeof(ItRevealEntry) * len);
    it_fold_in_reveal_order(&md.R, times, row, 77, a);
    it_fold_in_reveal_order(&md.R, NULL, row, 77, h);
    for (int64_t e = 2; e < len; e++)
        CHECK(a[e].item == md.R.indices[b0 + len - 1 - e], "position %lld: item %d, earliest first",
              (long long) e, a[e].item);
    /* the two at time 1 come first, in the order the salt gives them */
    {
        int32_t     x = md.R.indices[b0 + len - 2];
        int32_t     y = md.R.indices[b0 + len - 1];
        int         x_first = 0;

        for (int64_t e = 0; e < len; e++)
            if (h[e].item == x || h[e].item == y)
            {
                x_first = h[e].item == x;
                break;
            }
        CHECK(a[0].item == (x_first ? x : y) && a[1].item == (x_first ? y : x), "ties by the salt");
    }
    free(a);
    free(h);
    free(times);
    FreeModel(&md);
}

TEST(select_users_takes_the_first_with_enough_positives)
{
    /* rows: 0: 2 positives, 1: 5, 2: 4 (one below the weight), 3: 6, 4: 4 */
    int64_t     indptr[6] = {0, 2, 7, 12, 18, 22};
    int32_t     indices[22] = {0, 1, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3};
    float       data[22] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0.5f, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    ItCsr       R = {5, 6, 22, indptr, indices, data};
    int64_t     order[5] = {4, 0, 3, 2, 1};
    int64_t     sel[5],
                selrows[5],
                maxlen,
                n;

    n = it_fold_in_select_users(&R, order, 5, 1.0f, 4, 10, sel, selrows, &maxlen);
    CHECK(n == 4, "chose %lld", (long long) n);
    CHECK(sel[0] == 0 && sel[1] == 2 && sel[2] == 3 && sel[3] == 4,
          "indexes %lld %lld %lld %lld", (long long) sel[0], (long long) sel[1],
          (long long) sel[2], (long long) sel[3]);
    CHECK(selrows[0] == 4 && selrows[1] == 3 && selrows[2] == 2 && selrows[3] == 1, "rows");
    CHECK(maxlen == 6, "longest %lld", (long long) maxlen);
    /* the weight threshold: row 2 has only 4 positives of weight >= 1 */
    n = it_fold_in_select_users(&R, order, 5, 1.0f, 5, 10, sel, selrows, &maxlen);
    CHECK(n == 2 && selrows[0] == 3 && selrows[1] == 1, "5 positives: %lld", (long long) n);
    /* the cap */
    n = it_fold_in_select_users(&R, order, 5, 1.0f, 4, 2, sel, selrows, &maxlen);
    CHECK(n == 2 && selrows[1] == 3 && maxlen == 6, "cap 2: %lld", (long long) n);
}

/* ------------------------------------------------------------------------
 * Leave-out item vectors
 * ------------------------------------------------------------------------ */

TEST(leave_out_removes_the_users_and_matches_a_half_step)
{
    Model       md;
    ItAlsParams p;
    ItLeaveOutBuffers b;
    int64_t     out[3] = {0, 7, 4};
    int         k = 6;
    float      *Y1,
               *Y2,
               *YtY1,
               *YtY2,
               *XtX,
               *Xs,
               *scratch;
    ItCsr       ref;
    int64_t     nnz = 0;
    double      maxd = 0.0,
                norm_lonely = 0.0,
                norm_trained = 0.0;

    MakeModel(&md, 40, 30, k, 29);
    AlsParams(&p, k);
    AllocLeaveOut(&md, out, 3, &p, &b);
    Y1 = malloc(sizeof(float) * md.nitems * k);
    Y2 = malloc(sizeof(float) * md.nitems * k);
    YtY1 = malloc(sizeof(float) * k * k);
    YtY2 = malloc(sizeof(float) * k * k);
    CHECK(it_leave_out_items(&md.R, &md.Rt, md.X, md.Y, k, &p, out, 3, 1e12, &b, Y1, YtY1,
                             NULL, NULL) == IT_FOLD_OK, "leave-out");

    /* the interactions kept: every entry of Rt but those of the 3 users */
    for (int64_t i = 0; i < md.nitems; i++)
        for (int64_t e = md.Rt.indptr[i]; e < md.Rt.indptr[i + 1]; e++)
        {
            int32_t     u = md.Rt.indices[e];

            if (u == 0 || u == 7 || u == 4)
                continue;
            CHECK(b.indices[nnz] == u && b.data[nnz] == md.Rt.data[e], "entry %lld", (long long) nnz);
            nnz++;
        }
    CHECK(b.indptr[md.nitems] == nnz, "kept %lld of %lld", (long long) b.indptr[md.nitems],
          (long long) nnz);
    CHECK(nnz == md.Rt.nnz - it_leave_out_removed(&md.R, out, 3), "removed count");

    /* the same as one half-step on that matrix with X'X of the other users */
    ref.nrows = md.nitems;
    ref.ncols = md.nusers;
    ref.nnz = nnz;
    ref.indptr = b.indptr;
    ref.indices = b.indices;
    ref.data = b.data;
    XtX = calloc(k * k, sizeof(float));
    Xs = malloc(sizeof(float) * md.nusers * k);
    scratch = malloc(sizeof(float) * it_als_scratch_floats(k, 1));
    memcpy(Xs, md.X, sizeof(float) * md.nusers * k);
    memset(Xs + 0 * k, 0, sizeof(float) * k);
    memset(Xs + 7 * k, 0, sizeof(float) * k);
    memset(Xs + 4 * k, 0, sizeof(float) * k);
    it_gram(Xs, md.nusers, k, XtX);
    memcpy(Y2, md.Y, sizeof(float) * md.nitems * k);
    it_als_half_step(&ref, md.X, XtX, Y2, &p, 0, md.nitems, scratch);
    for (int64_t j = 0; j < md.nitems * k; j++)
        if (fabs((double) Y1[j] - Y2[j]) > maxd)
            maxd = fabs((double) Y1[j] - Y2[j]);
    CHECK(maxd < 1e-4, "vectors differ by %g", maxd);
    it_gram(Y1, md.nitems, k, YtY2);
    for (int j = 0; j < k * k; j++)
        CHECK_NEAR(YtY1[j], YtY2[j], 1e-4 * (1.0 + fabs(YtY2[j])));

    /* item 29 had user 0 alone: no interaction left, the zero vector */
    for (int j = 0; j < k; j++)
    {
        norm_lonely += fabs(Y1[29 * k + j]);
        norm_trained += fabs(md.Y[29 * k + j]);
    }
    CHECK(norm_trained > 0.0 && norm_lonely == 0.0, "item of the left-out user: %g (was %g)",
          norm_lonely, norm_trained);

    FreeLeaveOut(&b);
    free(Y1);
    free(Y2);
    free(YtY1);
    free(YtY2);
    free(XtX);
    free(Xs);
    free(scratch);
    FreeModel(&md);
}

TEST(leave_out_is_deterministic_and_chunked_alike)
{
    Model       md;
    ItAlsParams p;
    ItLeaveOutBuffers b;
    int64_t     out[2] = {5, 1};
    int         k = 8;
    float      *Y1,
               *Y2,
               *YtY1,
               *YtY2;
    int         stop_at = 3;
    int         rc;

    MakeModel(&md, 50, 300, k, 299);     /* 300 items: 5 blocks of IT_ALS_BLOCK */
    AlsParams(&p, k);
    AllocLeaveOut(&md, out, 2, &p, &b);
    Y1 = malloc(sizeof(float) * md.nitems * k);
    Y2 = malloc(sizeof(float) * md.nitems * k);
    YtY1 = malloc(sizeof(float) * k * k);
    YtY2 = malloc(sizeof(float) * k * k);

    /* one range, then one range per block (should_stop called before each) */
    stop_calls = 0;
    CHECK(it_leave_out_items(&md.R, &md.Rt, md.X, md.Y, k, &p, out, 2, 1e15, &b, Y1, YtY1,
                             CountCalls, NULL) == IT_FOLD_OK, "one range");
    CHECK(stop_calls == 3, "calls %d: after the matrix, after X'X, one range", stop_calls);
    stop_calls = 0;
    CHECK(it_leave_out_items(&md.R, &md.Rt, md.X, md.Y, k, &p, out, 2, 1.0, &b, Y2, YtY2,
                             CountCalls, NULL) == IT_FOLD_OK, "block by block");
    CHECK(stop_calls == 2 + 5, "calls %d: two, then one per block", stop_calls);
    CHECK(memcmp(Y1, Y2, sizeof(float) * md.nitems * k) == 0, "the same vectors, however chunked");
    CHECK(memcmp(YtY1, YtY2, sizeof(float) * k * k) == 0, "the same Y'Y");

    /* a stop request ends the call */
    stop_calls = 0;
    rc = it_leave_out_items(&md.R, &md.Rt, md.X, md.Y, k, &p, out, 2, 1.0, &b, Y2, YtY2,
                            CountCalls, &stop_at);
    CHECK(rc == IT_FOLD_ESTOPPED && stop_calls == 3, "stopped: %d after %d calls", rc, stop_calls);

    /* mismatched shapes */
    {
        ItCsr       bad = md.Rt;

        bad.ncols = md.nusers + 1;
        CHECK(it_leave_out_items(&md.R, &bad, md.X, md.Y, k, &p, out, 2, 1.0, &b, Y2, YtY2,
                                 NULL, NULL) == IT_FOLD_EINVAL, "transpose of another shape");
    }
    FreeLeaveOut(&b);
    free(Y1);
    free(Y2);
    free(YtY1);
    free(YtY2);
    FreeModel(&md);
}

/* ------------------------------------------------------------------------
 * The grid, one user, the choice
 * ------------------------------------------------------------------------ */

TEST(lambdas_follow_the_scale_of_the_items)
{
    /* Y = 2 I (2 x 2): diag(Y'Y) = 4, 4, mean 4 */
    float       Y[4] = {2, 0, 0, 2};
    float       YtY[4];
    float       lambdas[3];
    double      grid[3] = {0.01, 1, 123.456};
    float       zero[4] = {0, 0, 0, 0};

    CHECK(it_fold_in_lambdas(Y, 2, 2, grid, 3, YtY, lambdas) == IT_FOLD_OK, "grid");
    CHECK(YtY[0] == 4.0f && YtY[1] == 0.0f && YtY[3] == 4.0f, "Y'Y");
    CHECK(lambdas[0] == 0.04f && lambdas[1] == 4.0f, "%g %g", lambdas[0], lambdas[1]);
    CHECK(lambdas[2] == 494.0f, "3 significant digits: %g", lambdas[2]);
    CHECK(it_fold_in_lambdas(zero, 2, 2, grid, 3, YtY, lambdas) == IT_FOLD_ENONFINITE,
          "zero item vectors: no scale");
    CHECK(it_fold_in_lambdas(Y, 2, 2, grid, IT_FOLD_MAX_GRID + 1, YtY, lambdas) == IT_FOLD_EINVAL,
          "grid too long");
}

TEST(simulate_user_reveals_the_first_in_hash_order)
{
    Model       md;
    int         k = 5;
    int         reveal[2] = {3, 10};
    float       lambdas[3] = {0.1f, 1.0f, 10.0f};
    float      *YtY,
               *ws;
    float       prior[5] = {0.1f, -0.2f, 0.3f, 0.0f, 0.05f};
    ItRevealEntry *ent;
    int32_t    *pos,
                rev[10];
    float       revw[10];
    ItFoldInSums sums;
    int         solve;
    int64_t     row = -1;

    MakeModel(&md, 30, 20, k, 19);
    /* a user with 4 to 10 interactions: simulated with 3 revealed, not 10 */
    for (int64_t u = 1; u < md.nusers && row < 0; u++)
    {
        int64_t     len = md.R.indptr[u + 1] - md.R.indptr[u];

        if (len >= 4 && len <= 10)
            row = u;
    }
    CHECK(row > 0, "a short row");
    if (row < 0)
        return;
    YtY = malloc(sizeof(float) * k * k);
    it_gram(md.Y, md.nitems, k, YtY);
    ws = malloc(sizeof(float) * it_fold_in_grid_workspace_floats(md.nitems, k, 3, 10));
    ent = malloc(sizeof(ItRevealEntry) * md.nitems);
    pos = malloc(sizeof(int32_t) * md.nitems);
    memset(&sums, 0, sizeof(sums));
    sums.nreveal = 2;
    sums.ngrid = 3;
    CHECK(it_fold_in_simulate_user(&md.R, NULL, row, 99, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                   2.0f, prior, NULL, lambdas, 3, 10, ent, pos, rev, revw, ws,
                                   &sums, &solve) == IT_FOLD_OK, "simulate");
    CHECK(sums.users[0] == 1 && sums.users[1] == 0, "users %lld %lld",
          (long long) sums.users[0], (long long) sums.users[1]);

    /* the same hits as folding in from the first 3 of the reveal order */
    {
        ItRevealEntry *order = malloc(sizeof(ItRevealEntry) * md.nitems);
        int32_t     r3[3];
        float       w3[3];
        int32_t     allpos[80];
        int32_t     hits[3];
        int64_t     npos = 0;

        it_fold_in_reveal_order(&md.R, NULL, row, 99, order);
        for (int a = 0; a < 3; a++)
        {
            r3[a] = order[a].item;
            w3[a] = order[a].w;
        }
        /* ascending */
        for (int a = 0; a < 3; a++)
            for (int c = a + 1; c < 3; c++)
                if (r3[c] < r3[a])
                {
                    int32_t     ti = r3[a];
                    float       tw = w3[a];

                    r3[a] = r3[c];
                    w3[a] = w3[c];
                    r3[c] = ti;
                    w3[c] = tw;
                }
        for (int64_t e = md.R.indptr[row]; e < md.R.indptr[row + 1]; e++)
            allpos[npos++] = md.R.indices[e];
        CHECK(it_fold_in_grid_hits(md.Y, md.nitems, k, YtY, 2.0f, 0.0f, prior, r3, w3, 3, allpos, npos,
                                   lambdas, 3, 10, ws, hits) == 0, "reference fold-in");
        for (int g = 0; g < 3; g++)
            CHECK(sums.hitsum[g] == hits[g], "grid %d: %lld vs %d", g,
                  (long long) sums.hitsum[g], hits[g]);
        free(order);
    }

    /* with a popularity blend: entry g * 2 + 0 is weight g unblended, as above */
    {
        float      *pop = malloc(sizeof(float) * md.nitems);
        float       blends[2] = {0.0f, 1e6f};
        ItPopBlend  blend = {pop, blends, 2};
        ItFoldInSums bsums;

        for (int64_t i = 0; i < md.nitems; i++)
            pop[i] = 1.0f - (float) i / (float) md.nitems;
        memset(&bsums, 0, sizeof(bsums));
        bsums.nreveal = 2;
        bsums.ngrid = 6;
        CHECK(it_fold_in_simulate_user(&md.R, NULL, row, 99, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                       2.0f, prior, &blend, lambdas, 3, 10, ent, pos, rev, revw, ws,
                                       &bsums, &solve) == IT_FOLD_OK, "simulate, blended");
        for (int g = 0; g < 3; g++)
            CHECK(bsums.hitsum[g * 2] == sums.hitsum[g], "grid %d unblended: %lld vs %lld", g,
                  (long long) bsums.hitsum[g * 2], (long long) sums.hitsum[g]);
        /* a huge blend ranks by popularity whatever the weight */
        CHECK(bsums.hitsum[1] == bsums.hitsum[3] && bsums.hitsum[3] == bsums.hitsum[5],
              "popularity alone: %lld %lld %lld", (long long) bsums.hitsum[1],
              (long long) bsums.hitsum[3], (long long) bsums.hitsum[5]);
        bsums.ngrid = 5;
        CHECK(it_fold_in_simulate_user(&md.R, NULL, row, 99, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                       2.0f, prior, &blend, lambdas, 3, 10, ent, pos, rev, revw, ws,
                                       &bsums, &solve) == IT_FOLD_EINVAL, "more entries than the sums hold");
        free(pop);
    }

    /* with every interaction below the positive weight, nothing is simulated */
    memset(&sums, 0, sizeof(sums));
    sums.nreveal = 2;
    sums.ngrid = 3;
    CHECK(it_fold_in_simulate_user(&md.R, NULL, row, 99, 100.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                   2.0f, prior, NULL, lambdas, 3, 10, ent, pos, rev, revw, ws,
                                   &sums, &solve) == IT_FOLD_OK, "simulate, no positive");
    CHECK(sums.users[0] == 0 && sums.users[1] == 0 && sums.hitsum[0] == 0, "nothing counted");
    free(YtY);
    free(ws);
    free(ent);
    free(pos);
    FreeModel(&md);
}

/*
 * Simulating users a batch at a time gives the sums of simulating them one
 * by one (the products are summed in another order, so a near tie at the
 * k-th place may turn: allowed once per few hundred rankings), and so
 * does solving the grids in the basis of YtY.
 */
TEST(simulate_users_in_batches_sums_as_one_by_one)
{
    Model       md;
    int         k = 6;
    int         reveal[2] = {3, 10};
    float       lambdas[3] = {0.1f, 1.0f, 10.0f};
    float       blends[2] = {0.0f, 0.5f};
    float      *YtY;
    float      *pop;
    float      *prior = malloc(sizeof(float) * k);
    ItPopBlend  blend;
    ItFoldInSums one;
    ItFoldInSums batched;
    int         solve;
    int         B = 5;
    int         nq = B * 2;
    ItSimulateBuffers buf;
    int64_t     rows[5];
    const float *priors[5];
    float      *ws;
    int32_t     rev[10];
    float       revw[10];
    int64_t     total = 0;
    int64_t     diff = 0;
    int64_t     diffb = 0;
    ItFoldInSums inbasis;
    ItFoldInSums threaded;
    ItGramBasis basis;
    double     *bmem;

    MakeModel(&md, 60, 40, k, 7);
    YtY = malloc(sizeof(float) * k * k);
    it_gram(md.Y, md.nitems, k, YtY);
    pop = malloc(sizeof(float) * md.nitems);
    for (int64_t i = 0; i < md.nitems; i++)
        pop[i] = (float) ((i * 7) % 11) / 11.0f;
    for (int j = 0; j < k; j++)
        prior[j] = 0.1f * (float) (j + 1);
    memset(&blend, 0, sizeof(blend));
    memset(&buf, 0, sizeof(buf));
    blend.pop = pop;
    blend.blends = blends;
    blend.nblend = 2;
    ws = malloc(sizeof(float) * it_fold_in_grid_workspace_floats(md.nitems, k, 3, 10));
    buf.ent = malloc(sizeof(ItRevealEntry) * md.nitems);
    buf.pos = malloc(sizeof(int32_t) * md.nitems * B);
    buf.rev = malloc(sizeof(int32_t) * 10 * nq);
    buf.revw = malloc(sizeof(float) * 10 * nq);
    buf.queries = malloc(sizeof(ItGridQuery) * nq);
    buf.qreveal = malloc(sizeof(int) * nq);
    buf.hits = malloc(sizeof(int32_t) * nq * 6);
    buf.ws = malloc(sizeof(float) * it_fold_in_grid_batch_workspace_floats(md.nitems, k, 3, 10, nq, 3));
    buf.basis = NULL;
    buf.threads = 1;
    bmem = malloc(sizeof(double) * it_gram_basis_doubles(k, 10, 3));
    CHECK(it_gram_basis(YtY, k, 10, 3, bmem, &basis) == 0, "basis");
    CHECK(it_fold_in_grid_batch_workspace_floats(md.nitems, k, 3, 10, 1, 1) ==
          it_fold_in_grid_workspace_floats(md.nitems, k, 3, 10), "one query: the workspace of one");
    CHECK(it_fold_in_grid_batch_workspace_floats(md.nitems, k, 3, 10, 1, 0) == 0 &&
          it_fold_in_grid_batch_workspace_floats(md.nitems, k, 3, 10, 1, IT_GRID_MAX_THREADS + 1) == 0,
          "thread counts refused");
    memset(&one, 0, sizeof(one));
    memset(&batched, 0, sizeof(batched));
    one.nreveal = batched.nreveal = 2;
    one.ngrid = batched.ngrid = 6;
    inbasis = batched;
    threaded = batched;
    for (int64_t u0 = 0; u0 < md.nusers; u0 += B)
    {
        int         n = (int) (md.nusers - u0 < B ? md.nusers - u0 : B);

        for (int b = 0; b < n; b++)
        {
            rows[b] = u0 + b;
            /* every other user around the prior, the others around zero */
            priors[b] = (u0 + b) % 2 ? prior : NULL;
            CHECK(it_fold_in_simulate_user(&md.R, NULL, rows[b], 5, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                           2.0f, priors[b], &blend, lambdas, 3, 10, buf.ent, buf.pos, rev, revw,
                                           ws, &one, &solve) == IT_FOLD_OK, "one user");
        }
        /* whatever the buffer held before: a -1 of an earlier batch's user with nothing left */
        memset(buf.hits, 0xff, sizeof(int32_t) * nq * 6);
        CHECK(it_fold_in_simulate_users(&md.R, NULL, rows, n, 5, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                        2.0f, priors, &blend, lambdas, 3, 10, &buf, &batched,
                                        &solve) == IT_FOLD_OK, "a batch");
        buf.basis = &basis;
        CHECK(it_fold_in_simulate_users(&md.R, NULL, rows, n, 5, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                        2.0f, priors, &blend, lambdas, 3, 10, &buf, &inbasis,
                                        &solve) == IT_FOLD_OK, "a batch in the basis");
        /* the rankings on three threads: the same hits, exactly */
        buf.threads = 3;
        CHECK(it_fold_in_simulate_users(&md.R, NULL, rows, n, 5, 0.0f, reveal, 2, md.Y, md.nitems, k, YtY,
                                        2.0f, priors, &blend, lambdas, 3, 10, &buf, &threaded,
                                        &solve) == IT_FOLD_OK, "a batch on three threads");
        buf.basis = NULL;
        buf.threads = 1;
    }
    for (int r = 0; r < 2; r++)
    {
        CHECK(one.users[r] == batched.users[r], "reveal %d: %lld users one by one, %lld in batches", r,
              (long long) one.users[r], (long long) batched.users[r]);
        for (int g = 0; g < 6; g++)
        {
            int64_t     d = one.hitsum[r * 6 + g] - batched.hitsum[r * 6 + g];
            int64_t     e = one.hitsum[r * 6 + g] - inbasis.hitsum[r * 6 + g];

            total += one.hitsum[r * 6 + g];
            diff += d < 0 ? -d : d;
            diffb += e < 0 ? -e : e;
        }
        CHECK(one.users[r] == inbasis.users[r], "reveal %d: %lld users one by one, %lld in the basis", r,
              (long long) one.users[r], (long long) inbasis.users[r]);
    }
    CHECK(diffb <= 2, "hits in the basis differ by %lld", (long long) diffb);
    CHECK(memcmp(threaded.users, inbasis.users, sizeof(threaded.users)) == 0 &&
          memcmp(threaded.hitsum, inbasis.hitsum, sizeof(threaded.hitsum)) == 0,
          "three threads' sums differ from one thread's");
    CHECK(one.users[0] > 20 && one.users[1] > 5, "users simulated: %lld and %lld",
          (long long) one.users[0], (long long) one.users[1]);
    CHECK(total > 0 && diff <= 2, "hits %lld, differing by %lld", (long long) total, (long long) diff);
    free(YtY);
    free(pop);
    free(prior);
    free(ws);
    free(buf.ent);
    free(buf.pos);
    free(buf.rev);
    free(buf.revw);
    free(buf.queries);
    free(buf.qreveal);
    free(buf.hits);
    free(buf.ws);
    free(bmem);
    FreeModel(&md);
}

/* should_stop that asks to stop at its n-th call (n counted down in arg). */
static int
StopAtCall(void *arg)
{
    int        *left = arg;

    return --(*left) <= 0;
}

/*
 * A prior's simulations run whole (it_fold_in_run) sum as its steps one
 * after the other do, on the calling thread or on a thread of their own,
 * and stop when asked.
 */
TEST(fold_in_run_sums_as_its_steps_on_any_thread)
{
    Model       md;
    int         k = 6;
    int         reveal[2] = {3, 10};
    float       lambdas[3] = {0.1f, 1.0f, 10.0f};
    float       blends[2] = {0.0f, 0.5f};
    int64_t     rows[80];
    const float *priors[80];
    float      *prior = malloc(sizeof(float) * k);
    float      *pop;
    ItPopBlend  blend;
    ItFoldInRun run;
    ItFoldInSums ref;
    int         B = 5;
    int         nq = B * 2;
    int         left;
    int64_t     group = 20;
    ItGramBasis basis;

    MakeModel(&md, 80, 40, k, 7);
    pop = malloc(sizeof(float) * md.nitems);
    for (int64_t i = 0; i < md.nitems; i++)
        pop[i] = (float) ((i * 5) % 13) / 13.0f;
    for (int j = 0; j < k; j++)
        prior[j] = 0.05f * (float) (j + 1);
    for (int i = 0; i < 80; i++)
    {
        rows[i] = 79 - i;
        priors[i] = i % 3 ? prior : NULL;
    }
    memset(&blend, 0, sizeof(blend));
    blend.pop = pop;
    blend.blends = blends;
    blend.nblend = 2;

    memset(&run, 0, sizeof(run));
    run.R = &md.R;
    run.Rt = &md.Rt;
    run.X = md.X;
    run.Y = md.Y;
    run.k = k;
    AlsParams(&run.als, k);
    run.chunk_flops = 1e3;
    run.rows = rows;
    run.priors = priors;
    run.nsel = 80;
    run.group = group;
    run.batch = B;
    run.salt = 5;
    run.reveal = reveal;
    run.nreveal = 2;
    run.blend = &blend;
    run.lambdas = lambdas;
    run.ngrid = 3;
    run.eval_k = 10;
    AllocLeaveOut(&md, rows, 0, &run.als, &run.lo);
    free(run.lo.Xs);
    run.lo.Xs = malloc(sizeof(float) * group * k);
    run.Ylo = malloc(sizeof(float) * md.nitems * k);
    run.YtY = malloc(sizeof(float) * k * k);
    run.bmem = malloc(sizeof(double) * it_gram_basis_doubles(k, 10, 3));
    run.sim.ws = malloc(sizeof(float) * it_fold_in_grid_batch_workspace_floats(md.nitems, k, 3, 10, nq, 2));
    run.sim.ent = malloc(sizeof(ItRevealEntry) * md.nitems);
    run.sim.pos = malloc(sizeof(int32_t) * md.nitems * B);
    run.sim.rev = malloc(sizeof(int32_t) * 10 * nq);
    run.sim.revw = malloc(sizeof(float) * 10 * nq);
    run.sim.queries = malloc(sizeof(ItGridQuery) * nq);
    run.sim.qreveal = malloc(sizeof(int) * nq);
    run.sim.hits = malloc(sizeof(int32_t) * nq * 6);
    run.sim.threads = 2;
    run.sums.nreveal = 2;
    run.sums.ngrid = 6;

    /* the steps one after the other */
    memset(&ref, 0, sizeof(ref));
    ref.nreveal = 2;
    ref.ngrid = 6;
    for (int64_t g0 = 0; g0 < 80; g0 += group)
    {
        int         solve;

        CHECK(it_leave_out_items(&md.R, &md.Rt, md.X, md.Y, k, &run.als, rows + g0, group, 1e3, &run.lo,
                                 run.Ylo, run.YtY, NULL, NULL) == IT_FOLD_OK, "leave-out");
        CHECK(it_gram_basis(run.YtY, k, 10, 3, run.bmem, &basis) == 0, "basis");
        run.sim.basis = &basis;
        for (int64_t s0 = g0; s0 < g0 + group; s0 += B)
            CHECK(it_fold_in_simulate_users(&md.R, NULL, rows + s0, B, 5, 0.0f, reveal, 2, run.Ylo, md.nitems,
                                            k, run.YtY, run.als.alpha, priors + s0, &blend, lambdas, 3, 10,
                                            &run.sim, &ref, &solve) == IT_FOLD_OK, "simulate");
        run.sim.basis = NULL;
    }
    CHECK(ref.users[0] > 40 && ref.users[1] > 5, "users simulated: %lld and %lld",
          (long long) ref.users[0], (long long) ref.users[1]);

    /* here, twice (the sums start from zero each time), then on a thread */
    for (int pass = 0; pass < 3; pass++)
    {
        int         rc;

        if (pass < 2)
            rc = it_fold_in_run(&run);
        else
        {
            CHECK(it_fold_in_run_start(&run) == 1, "thread started");
            rc = it_fold_in_run_join(&run);
            CHECK(!run.started, "joined");
        }
        CHECK(rc == IT_FOLD_OK && run.status == IT_FOLD_OK, "pass %d: status %d", pass, rc);
        CHECK(run.groups == 4, "pass %d: %lld groups", pass, (long long) run.groups);
        CHECK(memcmp(run.sums.users, ref.users, sizeof(ref.users)) == 0 &&
              memcmp(run.sums.hitsum, ref.hitsum, sizeof(ref.hitsum)) == 0,
              "pass %d: the sums differ from the steps'", pass);
        CHECK(run.seconds >= 0.0, "seconds");
    }

    /* the items renumbered most popular first (ties: the lower item): the same sums */
    {
        int32_t    *order = malloc(sizeof(int32_t) * md.nitems);
        int32_t    *rank = malloc(sizeof(int32_t) * md.nitems);
        float      *spop = malloc(sizeof(float) * md.nitems);
        ItPopBlend  sorted = blend;

        /* insertion sort: most popular first, ties by the lower item */
        for (int i = 0; i < (int) md.nitems; i++)
        {
            int         c = i;

            while (c > 0 && pop[order[c - 1]] < pop[i])
            {
                order[c] = order[c - 1];
                c--;
            }
            order[c] = i;
        }
        for (int p = 0; p < (int) md.nitems; p++)
        {
            rank[order[p]] = p;
            spop[p] = pop[order[p]];
        }
        sorted.pop = spop;
        sorted.sorted = 1;
        run.blend = &sorted;
        run.order = order;
        run.rank = rank;
        run.Yp = malloc(sizeof(float) * md.nitems * k);
        CHECK(it_fold_in_run(&run) == IT_FOLD_OK, "renumbered: status %d stage %d detail %d", run.status, run.stage, run.detail);
        CHECK(memcmp(run.sums.users, ref.users, sizeof(ref.users)) == 0 &&
              memcmp(run.sums.hitsum, ref.hitsum, sizeof(ref.hitsum)) == 0,
              "renumbered: the sums differ from the steps'");
        /* a popularity said to be sorted that is not is refused */
        sorted.pop = pop;
        CHECK(it_fold_in_run(&run) == IT_FOLD_EINVAL, "unsorted popularity: status %d", run.status);
        run.blend = &blend;
        run.order = NULL;
        run.rank = NULL;
        free(run.Yp);
        run.Yp = NULL;
        run.sim.rank = NULL;
        free(order);
        free(rank);
        free(spop);
    }

    /* asked to stop at the first call and at a later one; here and on a thread */
    for (int at = 1; at <= 3; at += 2)
        for (int thread = 0; thread < 2; thread++)
        {
            left = at;
            run.should_stop = StopAtCall;
            run.should_stop_arg = &left;
            if (thread)
            {
                CHECK(it_fold_in_run_start(&run) == 1, "thread started");
                CHECK(it_fold_in_run_join(&run) == IT_FOLD_ESTOPPED, "stopped at call %d on a thread", at);
            }
            else
                CHECK(it_fold_in_run(&run) == IT_FOLD_ESTOPPED, "stopped at call %d", at);
        }
    run.should_stop = NULL;

    /* nothing to simulate */
    run.nsel = 0;
    CHECK(it_fold_in_run(&run) == IT_FOLD_EINVAL, "no users accepted");

    FreeLeaveOut(&run.lo);
    free(run.Ylo);
    free(run.YtY);
    free(run.bmem);
    free(run.sim.ws);
    free(run.sim.ent);
    free(run.sim.pos);
    free(run.sim.rev);
    free(run.sim.revw);
    free(run.sim.queries);
    free(run.sim.qreveal);
    free(run.sim.hits);
    free(pop);
    free(prior);
    FreeModel(&md);
}

TEST(choose_takes_the_best_mean_precision_and_the_larger_weight_on_ties)
{
    ItFoldInSums sums;
    ItFoldInChoice c;

    memset(&sums, 0, sizeof(sums));
    sums.nreveal = 2;
    sums.ngrid = 4;
    /* 3 revealed: 50 users; 10 revealed: 40 users; hits at k 10 */
    sums.users[0] = 50;
    sums.users[1] = 40;
    {
        int64_t     h0[4] = {100, 150, 200, 120};   /* precision 0.2 0.3 0.4 0.24 */
        int64_t     h1[4] = {80, 200, 120, 160};    /* precision 0.2 0.5 0.3 0.4 */

        for (int g = 0; g < 4; g++)
        {
            sums.hitsum[g] = h0[g];
            sums.hitsum[4 + g] = h1[g];
        }
    }
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.measured && c.counted[0] && c.counted[1], "both simulations count");
    CHECK_NEAR(c.precision[0][2], 0.4, 1e-12);
    CHECK_NEAR(c.precision[1][1], 0.5, 1e-12);
    CHECK_NEAR(c.criterion[0], 0.2, 1e-12);
    CHECK_NEAR(c.criterion[1], 0.4, 1e-12);
    CHECK_NEAR(c.criterion[2], 0.35, 1e-12);
    CHECK_NEAR(c.criterion[3], 0.32, 1e-12);
    CHECK(c.best == 1, "best %d", c.best);

    /* a simulation with too few users is left out of the criterion */
    sums.users[1] = 29;
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.measured && !c.counted[1], "10 revealed not counted");
    CHECK_NEAR(c.criterion[2], 0.4, 1e-12);
    CHECK(c.best == 2, "best %d", c.best);
    CHECK(c.precision[1][0] > 0.0, "its precision is still reported");

    /* ties: the larger weight */
    sums.users[1] = 40;
    for (int g = 0; g < 4; g++)
    {
        sums.hitsum[g] = 150;
        sums.hitsum[4 + g] = g == 0 ? 200 : 120;
    }
    sums.hitsum[4 + 3] = 200;       /* grid 0 and 3: 0.4, the others 0.3 */
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.criterion[0] == c.criterion[3] && c.best == 3, "tie between 0 and 3: best %d", c.best);

    /* too few users for the fewest revealed: nothing chosen */
    sums.users[0] = 29;
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(!c.measured && c.counted[1], "not measured");

    /* no users at all: precision 0, not NaN */
    memset(&sums, 0, sizeof(sums));
    sums.nreveal = 1;
    sums.ngrid = 2;
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(!c.measured && c.precision[0][0] == 0.0 && c.criterion[1] == 0.0 && c.best == 1,
          "empty: best %d", c.best);
}

/*
 * The one-standard-error rule: the weight chosen is the largest whose
 * criterion is within one standard error of the best.  One simulation of
 * 100 users at k 10: the best precision 0.4 has a binomial error of
 * sqrt(0.4 * 0.6 / 1000) = 0.0155.
 */
TEST(choose_takes_the_largest_weight_within_one_standard_error)
{
    ItFoldInSums sums;
    ItFoldInChoice c;
    /* precisions 0.30, 0.40, 0.39, 0.37, 0.20 */
    int64_t     hits[5] = {300, 400, 390, 370, 200};

    memset(&sums, 0, sizeof(sums));
    sums.nreveal = 1;
    sums.ngrid = 5;
    sums.users[0] = 100;
    for (int g = 0; g < 5; g++)
        sums.hitsum[g] = hits[g];
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.best == 1, "best %d", c.best);
    CHECK_NEAR(c.tolerance, sqrt(0.4 * 0.6 / 1000.0), 1e-12);
    CHECK(c.chosen == 2, "0.39 is within 0.0155 of 0.40, 0.37 is not: chosen %d", c.chosen);

    /* ten times the users: a tenth of the variance, only the best is within */
    sums.users[0] = 1000;
    for (int g = 0; g < 5; g++)
        sums.hitsum[g] = hits[g] * 10;
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.best == 1 && c.chosen == 1, "best %d chosen %d", c.best, c.chosen);

    /* a weaker weight within the error is never chosen over the best */
    sums.hitsum[0] = 3995;
    it_fold_in_choose(&sums, 10, 30, &c);
    CHECK(c.chosen >= c.best, "chosen %d, best %d", c.chosen, c.best);
}

int
main(void)
{
    RUN(hashes);
    RUN(reveal_order_is_a_seeded_permutation);
    RUN(reveal_order_follows_times);
    RUN(select_users_takes_the_first_with_enough_positives);
    RUN(leave_out_removes_the_users_and_matches_a_half_step);
    RUN(leave_out_is_deterministic_and_chunked_alike);
    RUN(lambdas_follow_the_scale_of_the_items);
    RUN(simulate_user_reveals_the_first_in_hash_order);
    RUN(simulate_users_in_batches_sums_as_one_by_one);
    RUN(fold_in_run_sums_as_its_steps_on_any_thread);
    RUN(choose_takes_the_best_mean_precision_and_the_larger_weight_on_ties);
    RUN(choose_takes_the_largest_weight_within_one_standard_error);
    return unit_summary();
}

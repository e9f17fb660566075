/*
 * test_holdout.c
 *    Unit tests of the validation slice (holdout.c): the split keeps every
 *    interaction on exactly one side, holds out at least one and never all
 *    of a chosen user's rows, depends only on the seed; precision counts
 *    hits among the held-out items and ignores the training items.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "unit.h"

/* nrows users; user u has 1 + u % 12 items u, u+1, ... (mod ncols), weights 1 */
static void
MakeCsr(ItCsr *R, int64_t nrows, int64_t ncols)
{
    int64_t     nnz = 0;

    R->nrows = nrows;
    R->ncols = ncols;
    R->indptr = malloc(sizeof(int64_t) * (nrows + 1));
    for (int64_t u = 0; u < nrows; u++)
        nnz += 1 + u % 12;
    R->indices = malloc(sizeof(int32_t) * nnz);
    R->data = malloc(sizeof(float) * nnz);
    R->indptr[0] = 0;
    nnz = 0;
    for (int64_t u = 0; u < nrows; u++)
    {
        int         n = 1 + u % 12;
        int32_t     cols[12];

        for (int j = 0; j < n; j++)
            cols[j] = (int32_t) ((u + j) % ncols);
        /* ascending within the row */
        for (int a = 1; a < n; a++)
            for (int b = a; b > 0 && cols[b - 1] > cols[b]; b--)
            {
                int32_t     tmp = cols[b];

                cols[b] = cols[b - 1];
                cols[b - 1] = tmp;
            }
        for (int j = 0; j < n; j++)
        {
            R->indices[nnz] = cols[j];
            R->data[nnz] = 1.0f + (float) j;
            nnz++;
        }
        R->indptr[u + 1] = nnz;
    }
    R->nnz = nnz;
}

typedef struct Split
{
    ItCsr       train;
    int32_t    *users;
    int64_t    *indptr;
    int32_t    *items;
    int64_t     n;
} Split;

static void
DoSplit(const ItCsr *R, uint64_t seed, int64_t max_users, int64_t min_rows, double fraction,
        float threshold, Split *s)
{
    s->train.indptr = malloc(sizeof(int64_t) * (R->nrows + 1));
    s->train.indices = malloc(sizeof(int32_t) * R->nnz);
    s->train.data = malloc(sizeof(float) * R->nnz);
    s->users = malloc(sizeof(int32_t) * max_users);
    s->indptr = malloc(sizeof(int64_t) * (max_users + 1));
    s->items = malloc(sizeof(int32_t) * R->nnz);
    s->n = it_holdout_split(R, seed, max_users, min_rows, fraction, threshold, &s->train,
                            s->users, s->indptr, s->items);
}

static void
FreeSplit(Split *s)
{
    free(s->train.indptr);
    free(s->train.indices);
    free(s->train.data);
    free(s->users);
    free(s->indptr);
    free(s->items);
}

TEST(split_partitions_every_row)
{
    ItCsr       R;
    Split       s;
    int64_t     h = 0;
    int64_t     held_total = 0;

    MakeCsr(&R, 2000, 300);
    DoSplit(&R, 7, 200, 5, 0.2, 0.0f, &s);
    CHECK(s.n > 120 && s.n <= 200, "held users %lld, asked for about 200", (long long) s.n);
    CHECK(s.train.nrows == R.nrows && s.train.ncols == R.ncols, "shape kept");
    for (int64_t u = 0; u < R.nrows; u++)
    {
        int64_t     n = R.indptr[u + 1] - R.indptr[u];
        int64_t     nt = s.train.indptr[u + 1] - s.train.indptr[u];
        int64_t     nh = 0;
        int64_t     a = s.train.indptr[u];
        int64_t     b = 0;

        if (h < s.n && s.users[h] == u)
        {
            CHECK(n >= 5, "user %lld has %lld rows, below min_rows", (long long) u, (long long) n);
            nh = s.indptr[h + 1] - s.indptr[h];
            CHECK(nh >= 1 && nt >= 1, "user %lld: %lld held, %lld kept", (long long) u, (long long) nh, (long long) nt);
            b = s.indptr[h];
            h++;
        }
        CHECK(nt + nh == n, "user %lld: %lld + %lld != %lld", (long long) u, (long long) nt, (long long) nh, (long long) n);
        held_total += nh;
        /* a merge of the two sorted sides gives R's row back, weights with the train side */
        for (int64_t j = R.indptr[u]; j < R.indptr[u + 1]; j++)
        {
            if (a < s.train.indptr[u + 1] && s.train.indices[a] == R.indices[j])
            {
                CHECK(s.train.data[a] == R.data[j], "weight kept");
                a++;
            }
            else if (nh > 0 && b < s.indptr[h] && s.items[b] == R.indices[j])
                b++;
            else
                CHECK(0, "user %lld item %d is on neither side", (long long) u, R.indices[j]);
        }
    }
    CHECK(s.train.nnz + held_total == R.nnz, "every interaction once");
    /* about a fifth of the chosen users' rows */
    {
        int64_t     chosen_rows = 0;

        for (int64_t i = 0; i < s.n; i++)
            chosen_rows += R.indptr[s.users[i] + 1] - R.indptr[s.users[i]];
        CHECK(held_total > 0.1 * chosen_rows && held_total < 0.35 * chosen_rows,
              "held %lld of %lld rows", (long long) held_total, (long long) chosen_rows);
    }
    FreeSplit(&s);
}

/* weights 1, 2, ... along each row: with a threshold of 4 only weights >= 4 are held out */
TEST(split_holds_out_positives_only)
{
    ItCsr       R;
    Split       all;
    Split       s;
    int64_t     held = 0;

    MakeCsr(&R, 2000, 300);
    DoSplit(&R, 7, 200, 5, 0.5, 0.0f, &all);
    DoSplit(&R, 7, 200, 5, 0.5, 4.0f, &s);
    CHECK(s.n == all.n, "the same users are chosen (%lld, %lld)", (long long) s.n, (long long) all.n);
    for (int64_t h = 0; h < s.n; h++)
    {
        int64_t     u = s.users[h];

        for (int64_t j = s.indptr[h]; j < s.indptr[h + 1]; j++)
        {
            /* the weight of the held item, from R's row */
            float       w = -1.0f;

            for (int64_t e = R.indptr[u]; e < R.indptr[u + 1]; e++)
                if (R.indices[e] == s.items[j])
                    w = R.data[e];
            CHECK(w >= 4.0f, "user %lld held out item %d of weight %g", (long long) u, s.items[j], w);
            held++;
        }
        CHECK((s.train.indptr[u + 1] - s.train.indptr[u]) + (s.indptr[h + 1] - s.indptr[h]) ==
              R.indptr[u + 1] - R.indptr[u], "user %lld: every row on one side", (long long) u);
    }
    CHECK(held > 0 && held < all.indptr[all.n], "held %lld positives, %lld without a threshold",
          (long long) held, (long long) all.indptr[all.n]);
    FreeSplit(&all);
    FreeSplit(&s);
}

TEST(split_depends_only_on_the_seed)
{
    ItCsr       R;
    Split       a;
    Split       b;
    Split       c;
    int         same;

    MakeCsr(&R, 1000, 100);
    DoSplit(&R, 11, 100, 3, 0.3, 0.0f, &a);
    DoSplit(&R, 11, 100, 3, 0.3, 0.0f, &b);
    DoSplit(&R, 12, 100, 3, 0.3, 0.0f, &c);
    CHECK(a.n == b.n && memcmp(a.users, b.users, sizeof(int32_t) * a.n) == 0 &&
          memcmp(a.indptr, b.indptr, sizeof(int64_t) * (a.n + 1)) == 0 &&
          memcmp(a.items, b.items, sizeof(int32_t) * a.indptr[a.n]) == 0, "same seed, same split");
    same = a.n == c.n && memcmp(a.users, c.users, sizeof(int32_t) * a.n) == 0;
    CHECK(!same, "another seed chooses other users");
    FreeSplit(&a);
    FreeSplit(&b);
    FreeSplit(&c);
}

TEST(precision_counts_held_hits_only)
{
    /* 2 users, 6 items, k = 2: user 0 likes items 0-2 (x = (1, 0)), user 1 items 3-5 */
    float       Y[12] = {3, 0, 2, 0, 1, 0, 0, 3, 0, 2, 0, 1};
    float       X[4] = {1, 0, 0, 1};
    int64_t     tptr[3] = {0, 1, 2};
    int32_t     tind[2] = {0, 5};      /* trained on item 0 (user 0) and item 5 (user 1) */
    float       tdat[2] = {1, 1};
    ItCsr       train = {2, 6, 2, tptr, tind, tdat};
    int32_t     users[2] = {0, 1};
    int64_t     hptr[3] = {0, 1, 2};
    int32_t     held[2] = {1, 0};       /* user 0 held item 1 (ranks first), user 1 item 0 (ranks low) */
    float       scores[6];
    int32_t     top[2];
    float       ts[2];
    int64_t     counted;
    double      p;

    p = it_holdout_precision(X, Y, 6, 2, &train, users, hptr, held, 2, 2, scores, top, ts, &counted);
    CHECK(counted == 2, "both users count, %lld", (long long) counted);
    /* user 0: top-2 without item 0 = items 1, 2 -> 1 hit: 0.5; user 1: items 3, 4 -> 0 */
    CHECK_NEAR(p, 0.25, 1e-12);

    /* a held item that is also a training item does not count */
    held[0] = 0;
    p = it_holdout_precision(X, Y, 6, 2, &train, users, hptr, held, 1, 2, scores, top, ts, &counted);
    CHECK(counted == 0 && p == 0.0, "no countable user: %lld, %g", (long long) counted, p);
}

int
main(void)
{
    RUN(split_partitions_every_row);
    RUN(split_holds_out_positives_only);
    RUN(split_depends_only_on_the_seed);
    RUN(precision_counts_held_hits_only);
    return unit_summary();
}

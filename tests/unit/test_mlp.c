/*
 * test_mlp.c
 *    Unit tests of the features -> interest MLP (src/kernels/mlp.c).
 */
#include <stdint.h>
#include <string.h>

#include "unit.h"
#include "mlp.h"
#include "rankgrid.h"

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

static uint64_t test_rng = 1;

static double
Rand01(void)
{
    test_rng = test_rng * UINT64_C(6364136223846793005) + UINT64_C(1442695040888963407);
    return (double) (test_rng >> 11) * (1.0 / 9007199254740992.0);
}

static double
RandNormal(void)
{
    double      u1 = Rand01() + 1e-12;
    double      u2 = Rand01();

    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void *
Alloc(size_t bytes)
{
    void       *p = calloc(1, bytes ? bytes : 1);

    if (p == NULL)
    {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return p;
}

/* gram[k*k] = Y'Y, in double then rounded */
static void
Gram(const float *Y, int m, int k, float *gram)
{
    int         a,
                b,
                i;

    for (a = 0; a < k; a++)
        for (b = 0; b < k; b++)
        {
            double      s = 0.0;

            for (i = 0; i < m; i++)
                s += (double) Y[i * k + a] * Y[i * k + b];
            gram[a * k + b] = (float) s;
        }
}

/* Solves A x = b for a small symmetric positive definite A (Cholesky, double). */
static void
SolveSpd(const double *A, const double *b, int k, double *x)
{
    double      L[64 * 64];
    double      z[64];
    int         i,
                j,
                t;

    for (i = 0; i < k; i++)
        for (j = 0; j <= i; j++)
        {
            double      s = A[i * k + j];

            for (t = 0; t < j; t++)
                s -= L[i * k + t] * L[j * k + t];
            L[i * k + j] = (i == j) ? sqrt(s) : s / L[j * k + j];
        }
    for (i = 0; i < k; i++)
    {
        double      s = b[i];

        for (t = 0; t < i; t++)
            s -= L[i * k + t] * z[t];
        z[i] = s / L[i * k + i];
    }
    for (i = k - 1; i >= 0; i--)
    {
        double      s = z[i];

        for (t = i + 1; t < k; t++)
            s -= L[t * k + i] * x[t];
        x[i] = s / L[i * k + i];
    }
}

/* Reference forward pass of one row in double. */
static void
NaiveForward(const float *params, const ItMlpLayout *lay, const float *x,
             double *out)
{
    double      a[2][512];
    int         cur = 0,
                l,
                i,
                j;
    size_t      off = 0;

    for (i = 0; i < lay->input; i++)
        a[0][i] = x[i];
    for (l = 0; l <= lay->nhidden; l++)
    {
        int         nin = l == 0 ? lay->input : lay->hidden[l - 1];
        int         nout = l == lay->nhidden ? lay->output : lay->hidden[l];
        const float *W = params + off;
        const float *b = W + (size_t) nout * nin;

        for (j = 0; j < nout; j++)
        {
            double      s = b[j];

            for (i = 0; i < nin; i++)
                s += (double) W[j * nin + i] * a[cur][i];
            if (l < lay->nhidden && s < 0.0)
                s = 0.0;
            a[1 - cur][j] = s;
        }
        cur = 1 - cur;
        off += (size_t) nout * (nin + 1);
    }
    for (j = 0; j < lay->output; j++)
        out[j] = a[cur][j];
}

/* ------------------------------------------------------------------------
 * A planted problem: users belong to one of 6 groups; their features are a
 * one-hot of the group (the right one 90% of the time, a random one
 * otherwise) plus noise columns.  Of 60 items, 10 belong to each group; a
 * user's 12 positives come 80% from the group's items and 20% from a
 * global Zipf popularity.  Item factors: the item's group, its popularity,
 * noise.
 * ------------------------------------------------------------------------ */

typedef struct Planted
{
    int         n;              /* users (training + held out) */
    int         m;
    int         d;
    int         k;
    int         G;
    float      *X;              /* n * d */
    int64_t    *indptr;         /* n + 1 */
    int32_t    *indices;
    float      *weights;
    float      *Y;              /* m * k */
    float      *YtY;
    float      *T;              /* n * k, least-squares user vectors */
    float      *popularity;     /* m, counts over the training users */
} Planted;

static void
MakePlanted(Planted *s, int n, int ntrain, uint64_t seed)
{
    int         G = 6,
                m = 60,
                d = 10,
                k = 8,
                per_user = 12;
    double      zipf[60];
    double      zsum = 0.0;
    int        *group = Alloc(sizeof(int) * n);
    unsigned char *taken = Alloc((size_t) m);
    int         u,
                i,
                j;
    int64_t     nnz = 0;

    test_rng = seed;
    s->n = n;
    s->m = m;
    s->d = d;
    s->k = k;
    s->G = G;
    s->X = Alloc(sizeof(float) * n * d);
    s->indptr = Alloc(sizeof(int64_t) * (n + 1));
    s->indices = Alloc(sizeof(int32_t) * n * per_user);
    s->weights = Alloc(sizeof(float) * n * per_user);
    s->Y = Alloc(sizeof(float) * m * k);
    s->YtY = Alloc(sizeof(float) * k * k);
    s->T = Alloc(sizeof(float) * n * k);
    s->popularity = Alloc(sizeof(float) * m);

    /* global popularity: Zipf over items in index order scrambled by 37 */
    for (i = 0; i < m; i++)
    {
        zipf[(i * 37) % m] = 1.0 / (1.0 + i);
        zsum += 1.0 / (1.0 + i);
    }

    /* item factors: the item's group, its popularity, noise */
    for (i = 0; i < m; i++)
    {
        for (j = 0; j < k; j++)
            s->Y[i * k + j] = (float) (0.05 * RandNormal());
        s->Y[i * k + (i % G)] += 0.8f;
        s->Y[i * k + G] += (float) (3.0 * zipf[i]);
    }
    Gram(s->Y, m, k, s->YtY);

    for (u = 0; u < n; u++)
    {
        int         g = (int) (Rand01() * G);
        int         shown = Rand01() < 0.9 ? g : (int) (Rand01() * G);

        group[u] = g;
        for (j = 0; j < d; j++)
            s->X[u * d + j] = (float) (0.3 * RandNormal());
        s->X[u * d + shown] += 1.0f;
        s->indptr[u] = nnz;
        memset(taken, 0, (size_t) m);
        for (j = 0; j < per_user; j++)
        {
            int         item;

            do
            {
                if (Rand01() < 0.8)
                    item = g + G * (int) (Rand01() * (m / G));
                else
                {
                    double      r = Rand01() * zsum;

                    for (item = 0; item < m - 1; item++)
                    {
                        r -= zipf[item];
                        if (r <= 0.0)
                            break;
                    }
                }
            } while (taken[item]);
            taken[item] = 1;
        }
        for (i = 0; i < m; i++)
            if (taken[i])
            {
                s->indices[nnz] = i;
                s->weights[nnz] = (float) (1 + (int) (Rand01() * 5));
                if (u < ntrain)
                    s->popularity[i] += 1.0f;
                nnz++;
            }
    }
    s->indptr[n] = nnz;

    /* targets: t_u = (Y'Y + I)^-1 Y' p_u, the least-squares user vectors */
    for (u = 0; u < n; u++)
    {
        double      A[64],
                    b[8],
                    x[8];
        int64_t     e;

        for (i = 0; i < k * k; i++)
            A[i] = s->YtY[i];
        for (i = 0; i < k; i++)
        {
            A[i * k + i] += 1.0;
            b[i] = 0.0;
        }
        for (e = s->indptr[u]; e < s->indptr[u + 1]; e++)
            for (i = 0; i < k; i++)
                b[i] += s->Y[s->indices[e] * k + i];
        SolveSpd(A, b, k, x);
        for (i = 0; i < k; i++)
            s->T[u * k + i] = (float) x[i];
    }
    free(group);
    free(taken);
}

static void
FreePlanted(Planted *s)
{
    free(s->X);
    free(s->indptr);
    free(s->indices);
    free(s->weights);
    free(s->Y);
    free(s->YtY);
    free(s->T);
    free(s->popularity);
}

static void
PlantedData(const Planted *s, int ntrain, ItMlpData *data)
{
    memset(data, 0, sizeof(*data));
    data->n = ntrain;
    data->X = s->X;
    data->targets = s->T;
    data->indptr = s->indptr;
    data->indices = s->indices;
    data->weights = s->weights;
    data->Y = s->Y;
    data->YtY = s->YtY;
    data->m = s->m;
}

/* Precision@10 of a ranking and of popularity's, over the users with a positive. */
typedef struct RankCheck
{
    int64_t     users;
    double      precision;      /* of U . y_i */
    double      base_precision; /* of popularity */
} RankCheck;

/*
 * Ranks every item for n users with vectors U (n * kdim) and by
 * popularity, against the positives ptr/idx (CSR), with the product's
 * ranking kernel (rankgrid.h).
 */
static void
RankPrecision(const float *U, int64_t n, int kdim, const float *Y, int64_t m,
              const float *popularity, const int64_t *ptr, const int32_t *idx,
              RankCheck *ev)
{
    float      *rw = Alloc(sizeof(float) * it_rank_grid_workspace_floats(m, 10));
    float       zero = 0.0f,
                one = 1.0f;
    int64_t     busers = 0;

    CHECK(it_rank_grid_precision(U, 0, n, kdim, Y, m, NULL, &zero, 1, ptr, idx, 10,
                                 rw, &ev->precision, &ev->users, NULL) == 0,
          "ranking the vectors failed");
    CHECK(it_rank_grid_precision(NULL, 0, n, 0, NULL, m, popularity, &one, 1, ptr, idx, 10,
                                 rw, &ev->base_precision, &busers, NULL) == 0,
          "ranking by popularity failed");
    CHECK(busers == ev->users, "users %lld vs %lld", (long long) busers,
          (long long) ev->users);
    free(rw);
}

/* Precision@10 of f (and of popularity) for users [from, to) of s. */
static void
HeldOutPrecision(const Planted *s, const float *params, const ItMlpLayout *lay,
                 int from, int to, RankCheck *ev)
{
    int         n = to - from;
    float      *U = Alloc(sizeof(float) * n * s->k);
    float      *fw = Alloc(sizeof(float) * (it_mlp_workspace_floats(lay, n) + 1));
    int64_t    *ptr = Alloc(sizeof(int64_t) * (n + 1));
    int         u;

    for (u = 0; u <= n; u++)
        ptr[u] = s->indptr[from + u] - s->indptr[from];
    it_mlp_forward(params, lay, s->X + (size_t) from * s->d, n, U, fw);
    RankPrecision(U, n, s->k, s->Y, s->m, s->popularity, ptr,
                  s->indices + s->indptr[from], ev);
    free(U);
    free(fw);
    free(ptr);
}

/* ------------------------------------------------------------------------
 * Tests
 * ------------------------------------------------------------------------ */

TEST(test_layout_sizes)
{
    ItMlpLayout lay = {5, 2, {7, 3, 0}, 4};
    ItMlpLayout lin = {5, 0, {0, 0, 0}, 4};
    ItMlpLayout bad;

    CHECK(it_mlp_param_count(&lay) == (size_t) (7 * 6 + 3 * 8 + 4 * 4),
          "got %zu", it_mlp_param_count(&lay));
    CHECK(it_mlp_param_count(&lin) == 24, "got %zu", it_mlp_param_count(&lin));
    CHECK(it_mlp_workspace_floats(&lay, 1000) == (size_t) IT_MLP_CHUNK * 10,
          "got %zu", it_mlp_workspace_floats(&lay, 1000));
    CHECK(it_mlp_workspace_floats(&lay, 3) == 30, "got %zu",
          it_mlp_workspace_floats(&lay, 3));
    CHECK(it_mlp_workspace_floats(&lin, 1000) == 0, "linear model needs no workspace");

    bad = lay;
    bad.nhidden = 4;
    CHECK(it_mlp_check_layout(&bad) == IT_MLP_EINVAL, "4 hidden layers");
    CHECK(it_mlp_param_count(&bad) == 0, "invalid layout has no size");
    bad = lay;
    bad.hidden[1] = 0;
    CHECK(it_mlp_check_layout(&bad) == IT_MLP_EINVAL, "empty hidden layer");
    bad = lay;
    bad.output = 0;
    CHECK(it_mlp_check_layout(&bad) == IT_MLP_EINVAL, "no output");
    bad = lay;
    bad.input = IT_MLP_MAX_UNITS + 1;
    CHECK(it_mlp_check_layout(&bad) == IT_MLP_EINVAL, "too wide");
    CHECK(it_mlp_check_layout(NULL) == IT_MLP_EINVAL, "NULL layout");
}

TEST(test_init_he)
{
    ItMlpLayout lay = {200, 1, {300, 0, 0}, 50};
    size_t      P = it_mlp_param_count(&lay);
    float      *p = Alloc(sizeof(float) * P);
    float      *q = Alloc(sizeof(float) * P);
    double      s1 = 0.0,
                s2 = 0.0;
    size_t      i,
                nw1 = 300 * 200;
    int         zero_bias = 1;

    it_mlp_init(p, &lay, 7);
    for (i = 0; i < nw1; i++)
    {
        s1 += p[i];
        s2 += (double) p[i] * p[i];
    }
    /* hidden layer variance 2 / fan_in = 0.01 */
    CHECK_NEAR(s2 / nw1, 0.01, 0.0005);
    CHECK_NEAR(s1 / nw1, 0.0, 0.001);
    for (i = nw1; i < nw1 + 300; i++)
        if (p[i] != 0.0f)
            zero_bias = 0;
    CHECK(zero_bias, "hidden biases start at zero");
    /* output layer variance 1 / fan_in */
    s2 = 0.0;
    for (i = nw1 + 300; i < nw1 + 300 + 50 * 300; i++)
        s2 += (double) p[i] * p[i];
    CHECK_NEAR(s2 / (50 * 300), 1.0 / 300, 0.0003);

    it_mlp_init(q, &lay, 7);
    CHECK(memcmp(p, q, sizeof(float) * P) == 0, "same seed, same parameters");
    it_mlp_init(q, &lay, 8);
    CHECK(memcmp(p, q, sizeof(float) * P) != 0, "another seed, other parameters");
    free(p);
    free(q);
}

TEST(test_forward_matches_reference)
{
    ItMlpLayout lays[3] = {
        {6, 0, {0, 0, 0}, 3},
        {6, 2, {9, 5, 0}, 3},
        {6, 3, {8, 7, 4}, 5},
    };
    int         t;

    for (t = 0; t < 3; t++)
    {
        ItMlpLayout *lay = &lays[t];
        int         n = 300;    /* more than one chunk */
        size_t      P = it_mlp_param_count(lay);
        float      *params = Alloc(sizeof(float) * P);
        float      *X = Alloc(sizeof(float) * n * lay->input);
        float      *out = Alloc(sizeof(float) * n * lay->output);
        float      *ws = Alloc(sizeof(float) * (it_mlp_workspace_floats(lay, n) + 1));
        double      ref[8];
        double      maxerr = 0.0;
        size_t      i;
        int         r,
                    j;

        test_rng = 11 + t;
        it_mlp_init(params, lay, 3);
        for (i = 0; i < P; i++)
            params[i] += (float) (0.1 * RandNormal());  /* non-zero biases too */
        for (i = 0; i < (size_t) n * lay->input; i++)
            X[i] = (float) RandNormal();
        it_mlp_forward(params, lay, X, n, out, it_mlp_workspace_floats(lay, n) ? ws : NULL);
        for (r = 0; r < n; r++)
        {
            NaiveForward(params, lay, X + (size_t) r * lay->input, ref);
            for (j = 0; j < lay->output; j++)
            {
                double      e = fabs(ref[j] - out[r * lay->output + j]);

                if (e > maxerr)
                    maxerr = e;
            }
        }
        CHECK(maxerr < 1e-4, "layout %d: max error %g", t, maxerr);
        free(params);
        free(X);
        free(out);
        free(ws);
    }
}

/*
 * Central finite differences (h = 1e-3) of the objective against the
 * analytic gradient, over every parameter of a network with up to two
 * hidden layers, for the vector loss, the interaction loss and a blend.
 */
static void
GradientCheck(float vector_weight, int user_normalise, int nhidden)
{
    ItMlpLayout lay = {5, nhidden, {6, 4, 0}, 3};
    int         n = 7,
                m = 9;
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *grad = Alloc(sizeof(float) * P);
    float      *X = Alloc(sizeof(float) * n * lay.input);
    float      *T = Alloc(sizeof(float) * n * lay.output);
    float      *Y = Alloc(sizeof(float) * m * lay.output);
    float       YtY[9];
    int64_t     indptr[8] = {0, 2, 5, 5, 7, 8, 11, 13};
    int32_t     indices[13] = {1, 4, 0, 2, 8, 3, 7, 5, 1, 2, 6, 0, 8};
    float       weights[13] = {1, 3, 2, 1, 5, 1, 2, 4, 1, 1, 3, 2, 1};
    ItMlpData   data;
    ItMlpTrainParams p;
    void       *ws;
    double      num = 0.0,
                den = 0.0,
                f0;
    size_t      i;

    test_rng = 99;
    it_mlp_init(params, &lay, 5);
    for (i = 0; i < P; i++)
        params[i] += (float) (0.2 * RandNormal());
    for (i = 0; i < (size_t) n * lay.input; i++)
        X[i] = (float) RandNormal();
    for (i = 0; i < (size_t) n * lay.output; i++)
        T[i] = (float) RandNormal();
    for (i = 0; i < (size_t) m * lay.output; i++)
        Y[i] = (float) (0.7 * RandNormal());
    Gram(Y, m, lay.output, YtY);

    memset(&data, 0, sizeof(data));
    data.n = n;
    data.X = X;
    data.targets = T;
    data.indptr = indptr;
    data.indices = indices;
    data.weights = weights;
    data.Y = Y;
    data.YtY = YtY;
    data.m = m;
    it_mlp_default_params(&p);
    p.batch = 3;                /* several blocks */
    p.vector_weight = vector_weight;
    p.user_normalise = user_normalise;
    p.alpha = 2.0f;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, n, m));

    f0 = it_mlp_objective(params, &lay, &data, &p, NULL, 0, grad, ws);
    CHECK(isfinite(f0) && f0 > 0.0, "objective %g", f0);
    for (i = 0; i < P; i++)
    {
        float       save = params[i];
        double      fp,
                    fm,
                    fd;

        params[i] = save + 1e-3f;
        fp = it_mlp_objective(params, &lay, &data, &p, NULL, 0, NULL, ws);
        params[i] = save - 1e-3f;
        fm = it_mlp_objective(params, &lay, &data, &p, NULL, 0, NULL, ws);
        params[i] = save;
        fd = (fp - fm) / ((double) (save + 1e-3f) - (double) (save - 1e-3f));
        num += (fd - grad[i]) * (fd - grad[i]);
        den += fd * fd;
    }
    printf("# gradient check: vector weight %.1f, normalise %d, %d hidden: relative error %.2e\n",
           vector_weight, user_normalise, nhidden, sqrt(num / den));
    CHECK(den > 1e-8, "gradient is not trivially zero");
    CHECK(sqrt(num / den) < 1e-2,
          "vector weight %g, normalise %d, hidden %d: relative error %g",
          vector_weight, user_normalise, nhidden, sqrt(num / den));
    free(params);
    free(grad);
    free(X);
    free(T);
    free(Y);
    free(ws);
}

TEST(test_gradient_vectors)
{
    GradientCheck(1.0f, 0, 2);
    GradientCheck(1.0f, 0, 0);
}

TEST(test_gradient_interactions_als)
{
    GradientCheck(0.0f, 0, 2);
    GradientCheck(0.0f, 1, 2);
    GradientCheck(0.0f, 0, 0);
}

TEST(test_gradient_blend)
{
    GradientCheck(0.3f, 0, 2);
    GradientCheck(0.6f, 0, 1);
}

/* The ALS loss equals sum over all items of c_i (p_i - x.y_i)^2 (brute force). */
TEST(test_als_loss_value)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {16, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *U = Alloc(sizeof(float) * 40 * 8);
    float      *fw = Alloc(sizeof(float) * it_mlp_workspace_floats(&lay, 40));
    ItMlpData   data;
    ItMlpTrainParams p;
    void       *ws;
    double      got,
                want = 0.0,
                zsum = 0.0;
    int         u,
                i,
                j;

    MakePlanted(&s, 40, 40, 5);
    PlantedData(&s, 40, &data);
    it_mlp_default_params(&p);
    p.alpha = 0.5f;
    it_mlp_init(params, &lay, 1);
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, 40, s.m));
    got = it_mlp_objective(params, &lay, &data, &p, NULL, 0, NULL, ws);
    it_mlp_forward(params, &lay, s.X, 40, U, fw);
    for (u = 0; u < 40; u++)
    {
        for (i = 0; i < s.m; i++)
        {
            double      c = 1.0,
                        pr = 0.0,
                        sc = 0.0;
            int64_t     e;

            for (e = s.indptr[u]; e < s.indptr[u + 1]; e++)
                if (s.indices[e] == i)
                {
                    c = 1.0 + 0.5 * s.weights[e];
                    pr = 1.0;
                    zsum += c;
                }
            for (j = 0; j < 8; j++)
                sc += (double) U[u * 8 + j] * s.Y[i * 8 + j];
            want += c * (pr - sc) * (pr - sc);
        }
    }
    /* mean over users, divided by the zero predictor's mean loss */
    want = (want / 40) / (zsum / 40);
    CHECK(fabs(got - want) < 1e-4 * want, "objective %g, brute force %g", got, want);
    FreePlanted(&s);
    free(params);
    free(U);
    free(fw);
    free(ws);
}

/* Training lowers the objective on a learnable problem: vectors, interactions, a blend. */
TEST(test_training_reduces_loss)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {32, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpEpoch  hist[60];
    ItMlpTrainResult res;
    int         variant;

    MakePlanted(&s, 400, 400, 21);
    PlantedData(&s, 400, &data);
    for (variant = 0; variant < 3; variant++)
    {
        void       *ws;
        double      before,
                    after;
        int         rc;

        it_mlp_default_params(&p);
        p.epochs = 60;
        p.patience = 0;
        p.lr = 3e-3f;
        p.weight_decay = 1e-2f;
        p.vector_weight = variant == 0 ? 1.0f : (variant == 1 ? 0.0f : 0.5f);
        ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
        it_mlp_init(params, &lay, 9);
        before = it_mlp_objective(params, &lay, &data, &p, NULL, 0, NULL, ws);
        rc = it_mlp_train(params, &lay, &data, &p, ws, hist, &res);
        CHECK(rc == IT_MLP_OK, "variant %d: status %d", variant, rc);
        after = it_mlp_objective(params, &lay, &data, &p, NULL, 0, NULL, ws);
        CHECK(res.epochs_run == 60, "variant %d: %d epochs", variant, res.epochs_run);
        CHECK(res.ntrain + res.nval == 400 && res.nval == 80,
              "variant %d: split %lld + %lld", variant,
              (long long) res.ntrain, (long long) res.nval);
        CHECK(after < 0.8 * before,
              "variant %d: objective %g -> %g", variant, before, after);
        CHECK(hist[res.epochs_run - 1].train_loss < 0.8 * hist[0].train_loss,
              "variant %d: training loss %g -> %g", variant, hist[0].train_loss,
              hist[res.epochs_run - 1].train_loss);
        CHECK(isfinite(hist[0].val_loss) && isfinite(hist[0].val_precision),
              "variant %d: validation measured", variant);
        free(ws);
    }
    FreePlanted(&s);
    free(params);
}

/*
 * The planted problem: f trained against the interactions (the ALS loss)
 * ranks the positives of users it never saw far better than
 * popularity, because their group is in their features.
 */
TEST(test_interactions_beat_popularity)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {32, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult res;
    RankCheck   ev;
    int         ntrain = 600,
                n = 800;

    MakePlanted(&s, n, ntrain, 77);
    PlantedData(&s, ntrain, &data);
    {
        void       *ws;
        int         rc;

        it_mlp_default_params(&p);
        p.vector_weight = 0.0f;
        ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
        it_mlp_init(params, &lay, 1);
        rc = it_mlp_train(params, &lay, &data, &p, ws, NULL, &res);
        CHECK(rc == IT_MLP_OK, "status %d", rc);
        HeldOutPrecision(&s, params, &lay, ntrain, n, &ev);
        CHECK(ev.users == n - ntrain, "users %lld", (long long) ev.users);
        printf("# held-out precision@10 %.3f, popularity %.3f (best epoch %d of %d)\n",
               ev.precision, ev.base_precision, res.best_epoch, res.epochs_run);
        CHECK(ev.precision >= 1.8 * ev.base_precision && ev.precision >= 0.5,
              "precision %g vs popularity %g", ev.precision, ev.base_precision);
        CHECK(res.best_val_precision >= 1.8 * ev.base_precision,
              "validation precision %g", res.best_val_precision);
        free(ws);
    }
    FreePlanted(&s);
    free(params);
}

/* A linear model (no hidden layer) learns too, and ranks above popularity. */
TEST(test_linear_model)
{
    Planted     s;
    ItMlpLayout lay = {10, 0, {0, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult res;
    RankCheck   ev;
    void       *ws;
    int         rc;

    MakePlanted(&s, 800, 600, 78);
    PlantedData(&s, 600, &data);
    it_mlp_default_params(&p);
    p.lr = 1e-2f;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
    it_mlp_init(params, &lay, 2);
    rc = it_mlp_train(params, &lay, &data, &p, ws, NULL, &res);
    CHECK(rc == IT_MLP_OK, "status %d", rc);
    HeldOutPrecision(&s, params, &lay, 600, 800, &ev);
    printf("# linear: held-out precision@10 %.3f, popularity %.3f\n",
           ev.precision, ev.base_precision);
    CHECK(ev.precision >= 1.8 * ev.base_precision,
          "precision %g vs popularity %g", ev.precision, ev.base_precision);
    FreePlanted(&s);
    free(params);
    free(ws);
}

/* Same seed, same bits; another seed, other parameters. */
TEST(test_deterministic)
{
    Planted     s;
    ItMlpLayout lay = {10, 2, {16, 12, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *a = Alloc(sizeof(float) * P);
    float      *b = Alloc(sizeof(float) * P);
    ItMlpEpoch  ha[15],
                hb[15];
    ItMlpData   data;
    ItMlpTrainParams p;
    void       *ws;

    MakePlanted(&s, 300, 300, 3);
    PlantedData(&s, 300, &data);
    it_mlp_default_params(&p);
    p.epochs = 15;
    p.vector_weight = 0.5f;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
    it_mlp_init(a, &lay, 4);
    it_mlp_init(b, &lay, 4);
    CHECK(it_mlp_train(a, &lay, &data, &p, ws, ha, NULL) == IT_MLP_OK, "train a");
    /* a dirty, misaligned workspace of exactly the size asked for */
    {
        size_t      sz = it_mlp_train_workspace_size(&lay, &p, data.n, s.m);
        char       *raw = Alloc(sz + 3);

        memset(raw, 0x5a, sz + 3);
        CHECK(it_mlp_train(b, &lay, &data, &p, raw + 3, hb, NULL) == IT_MLP_OK,
              "train b");
        free(raw);
    }
    CHECK(memcmp(a, b, sizeof(float) * P) == 0, "same seed, same parameters");
    CHECK(memcmp(ha, hb, sizeof(ha)) == 0, "same seed, same history");

    p.seed = 43;
    it_mlp_init(b, &lay, 4);
    CHECK(it_mlp_train(b, &lay, &data, &p, ws, hb, NULL) == IT_MLP_OK, "train c");
    CHECK(memcmp(a, b, sizeof(float) * P) != 0, "another seed shuffles differently");
    FreePlanted(&s);
    free(a);
    free(b);
    free(ws);
}

/*
 * Early stopping returns the best epoch's parameters: the epoch of the
 * lowest validation loss, whose validation precision in the history is
 * that of the returned parameters, measured again from outside.
 */
TEST(test_early_stopping_keeps_best)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {64, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    ItMlpEpoch  hist[300];
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult res;
    int32_t     val[40];
    int64_t    *ptr;
    float      *U,
               *fw,
               *Xv;
    RankCheck   ev;
    void       *ws;
    int         i,
                e,
                rc;
    double      best = INFINITY;

    /* few training rows: overfits, so the validation loss bottoms out early */
    MakePlanted(&s, 120, 120, 8);
    PlantedData(&s, 120, &data);
    for (i = 0; i < 40; i++)
        val[i] = 3 * i;
    data.val_rows = val;
    data.nval = 40;
    data.baseline = s.popularity;
    it_mlp_default_params(&p);
    p.epochs = 300;
    p.patience = 10;
    p.lr = 1e-2f;
    p.batch = 16;
    p.weight_decay = 0.0f;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
    it_mlp_init(params, &lay, 6);
    rc = it_mlp_train(params, &lay, &data, &p, ws, hist, &res);
    CHECK(rc == IT_MLP_OK, "status %d", rc);
    CHECK(res.nval == 40 && res.ntrain == 80, "split %lld/%lld",
          (long long) res.nval, (long long) res.ntrain);
    CHECK(res.epochs_run < 300, "stopped early (%d epochs)", res.epochs_run);
    CHECK(res.epochs_run >= res.best_epoch + 1 + p.patience,
          "ran patience epochs past the best (%d, best %d)", res.epochs_run,
          res.best_epoch);
    for (e = 0; e < res.epochs_run; e++)
        if (hist[e].val_loss < best)
            best = hist[e].val_loss;
    CHECK(hist[res.best_epoch].val_loss == best, "best epoch has the lowest validation loss");
    CHECK(res.best_val_loss == best, "result reports it");
    CHECK(res.best_val_precision == hist[res.best_epoch].val_precision,
          "and the precision of that epoch");
    best = hist[res.best_epoch].val_precision;

    /* measure the returned parameters on the validation rows ourselves */
    ptr = Alloc(sizeof(int64_t) * 41);
    U = Alloc(sizeof(float) * 40 * 8);
    Xv = Alloc(sizeof(float) * 40 * 10);
    fw = Alloc(sizeof(float) * it_mlp_workspace_floats(&lay, 40));
    {
        int32_t    *idx = Alloc(sizeof(int32_t) * 40 * 12);
        int64_t     nnz = 0,
                    j;

        for (i = 0; i < 40; i++)
        {
            ptr[i] = nnz;
            memcpy(Xv + i * 10, s.X + val[i] * 10, sizeof(float) * 10);
            for (j = s.indptr[val[i]]; j < s.indptr[val[i] + 1]; j++)
                idx[nnz++] = s.indices[j];
        }
        ptr[40] = nnz;
        it_mlp_forward(params, &lay, Xv, 40, U, fw);
        RankPrecision(U, 40, 8, s.Y, s.m, s.popularity, ptr, idx, &ev);
        CHECK(fabs(ev.precision - best) < 1e-9, "returned parameters: %g, best %g",
              ev.precision, best);
        CHECK(fabs(ev.base_precision - res.base_val_precision) < 1e-9,
              "baseline on the validation rows: %g, reported %g",
              ev.base_precision, res.base_val_precision);

        /* precision on the first 10 validation rows only */
        p.eval_max_rows = 10;
        p.epochs = 2;
        it_mlp_init(params, &lay, 6);
        CHECK(it_mlp_train(params, &lay, &data, &p, ws, hist, &res) == IT_MLP_OK,
              "train on 10 rows");
        it_mlp_forward(params, &lay, Xv, 10, U, fw);
        RankPrecision(U, 10, 8, s.Y, s.m, s.popularity, ptr, idx, &ev);
        CHECK(ev.users == 10, "users %lld", (long long) ev.users);
        CHECK(fabs(ev.precision - hist[res.best_epoch].val_precision) < 1e-9,
              "10 rows: %g, reported %g", ev.precision,
              hist[res.best_epoch].val_precision);
        CHECK(fabs(ev.base_precision - res.base_val_precision) < 1e-9,
              "10 rows baseline: %g, reported %g", ev.base_precision,
              res.base_val_precision);
        free(idx);
    }
    FreePlanted(&s);
    free(params);
    free(ptr);
    free(U);
    free(Xv);
    free(fw);
    free(ws);
}

/*
 * init_output_bias starts a constant model at the best constant: the
 * gradient of the objective with respect to the output bias vanishes there.
 */
static int
StopAtOnce(void *arg)
{
    (void) arg;
    return 1;
}

/*
 * The convergence stop ends a fit whose validation loss has flattened,
 * where patience (off here) would not: it stops before the epoch limit,
 * exactly where the rule holds first, keeps the best epoch, and ranks
 * about as well as the full run.  Without the window it runs every epoch
 * and says why it stopped.
 */
TEST(test_convergence_stop)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {32, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *full = Alloc(sizeof(float) * P);
    ItMlpEpoch  hist[120],
                hfull[120];
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult res,
                rfull;
    RankCheck   ev,
                evfull;
    void       *ws;
    int         ntrain = 600,
                n = 800,
                wnd = 3,
                e,
                rc;
    double      best[120],
                b = INFINITY;

    MakePlanted(&s, n, ntrain, 91);
    PlantedData(&s, ntrain, &data);
    it_mlp_default_params(&p);
    p.epochs = 120;
    p.patience = 0;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));

    it_mlp_init(params, &lay, 5);
    rc = it_mlp_train(params, &lay, &data, &p, ws, hfull, &rfull);
    CHECK(rc == IT_MLP_OK, "status %d", rc);
    CHECK(rfull.epochs_run == 120 && rfull.stop == IT_MLP_STOP_EPOCHS,
          "without a window every epoch runs (%d, stop %d)", rfull.epochs_run, rfull.stop);
    memcpy(full, params, sizeof(float) * P);

    p.converge_window = wnd;
    p.converge_tol = 0.005f;
    it_mlp_init(params, &lay, 5);
    rc = it_mlp_train(params, &lay, &data, &p, ws, hist, &res);
    CHECK(rc == IT_MLP_OK, "status %d", rc);
    printf("# convergence stop after %d of 120 epochs (best %d)\n", res.epochs_run,
           res.best_epoch + 1);
    CHECK(res.stop == IT_MLP_STOP_CONVERGED, "stopped converged (%d)", res.stop);
    CHECK(res.epochs_run > wnd && res.epochs_run < 120, "before the limit (%d)",
          res.epochs_run);
    /* the same epochs as the full run up to there, and the rule first holds at the last */
    for (e = 0; e < res.epochs_run; e++)
    {
        CHECK(hist[e].val_loss == hfull[e].val_loss, "epoch %d as in the full run", e);
        if (hist[e].val_loss < b)
            b = hist[e].val_loss;
        best[e] = b;
    }
    for (e = wnd; e < res.epochs_run; e++)
    {
        int         holds = best[e - wnd] - best[e] <= 0.005 * (hist[0].val_loss - best[e]);

        CHECK(holds == (e == res.epochs_run - 1), "rule at epoch %d: %d", e, holds);
    }
    CHECK(res.best_val_loss == best[res.epochs_run - 1] &&
          hist[res.best_epoch].val_loss == res.best_val_loss, "keeps the best epoch");
    CHECK(rfull.best_val_loss < res.best_val_loss, "the full run gets a little further");

    HeldOutPrecision(&s, params, &lay, ntrain, n, &ev);
    HeldOutPrecision(&s, full, &lay, ntrain, n, &evfull);
    printf("# held-out precision@10 %.3f stopped, %.3f full, popularity %.3f\n",
           ev.precision, evfull.precision, ev.base_precision);
    CHECK(ev.precision >= evfull.precision - 0.02 && ev.precision >= 1.8 * ev.base_precision,
          "ranks about as well (%g against %g)", ev.precision, evfull.precision);
    free(ws);
    FreePlanted(&s);
    free(params);
    free(full);
}

TEST(test_init_output_bias)
{
    Planted     s;
    ItMlpLayout lay = {10, 0, {0, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *grad = Alloc(sizeof(float) * P);
    ItMlpData   data;
    ItMlpTrainParams p;
    void       *ws;
    int         variant;

    MakePlanted(&s, 200, 200, 31);
    PlantedData(&s, 200, &data);
    for (variant = 0; variant < 4; variant++)
    {
        double      g0 = 0.0,
                    g1 = 0.0,
                    f0,
                    f1;
        int         j,
                    rc;

        it_mlp_default_params(&p);
        p.val_fraction = 0.0f;  /* every row trains: the same norms as below */
        p.should_stop = StopAtOnce;
        p.alpha = 0.7f;
        p.vector_weight = variant == 1 ? 0.5f : variant == 2 ? 1.0f : 0.0f;
        p.user_normalise = variant == 3;
        p.pos_min_weight = variant == 3 ? 3.0f : 0.0f;
        ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
        memset(params, 0, sizeof(float) * P);
        f0 = it_mlp_objective(params, &lay, &data, &p, NULL, 0, grad, ws);
        for (j = 0; j < 8; j++)
            g0 += (double) grad[P - 8 + j] * grad[P - 8 + j];
        rc = it_mlp_train(params, &lay, &data, &p, ws, NULL, NULL);
        CHECK(rc == IT_MLP_ESTOPPED, "status %d", rc);
        f1 = it_mlp_objective(params, &lay, &data, &p, NULL, 0, grad, ws);
        for (j = 0; j < 8; j++)
            g1 += (double) grad[P - 8 + j] * grad[P - 8 + j];
        CHECK(sqrt(g1) < 1e-3 * sqrt(g0), "variant %d: bias gradient %g, at zero %g",
              variant, sqrt(g1), sqrt(g0));
        CHECK(f1 < f0, "variant %d: objective %g -> %g", variant, f0, f1);

        /* the same vector, computed on its own */
        {
            float       x[8];
            float      *pw = Alloc(sizeof(float) *
                                   it_mlp_population_workspace_floats(8, s.m));
            double      maxd = 0.0;

            CHECK(it_mlp_population_vector(&data, &p, 8, x, pw) == IT_MLP_OK,
                  "population vector");
            for (j = 0; j < 8; j++)
                if (fabs((double) x[j] - params[P - 8 + j]) > maxd)
                    maxd = fabs((double) x[j] - params[P - 8 + j]);
            CHECK(maxd < 1e-5, "variant %d: differs by %g", variant, maxd);
            free(pw);
        }
        free(ws);
    }
    FreePlanted(&s);
    free(params);
    free(grad);
}

/*
 * constant_out receives the best constant vector of the training rows,
 * the one it_mlp_population_vector computes over them (validation rows
 * left out), and asking for it changes nothing in the fit; without
 * init_output_bias there is none.
 */
TEST(test_constant_out)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {12, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *plain = Alloc(sizeof(float) * P);
    float      *pw;
    float       c[8],
                x[8];
    int32_t     val[50];
    ItMlpData   data,
                d2;
    ItMlpTrainParams p;
    ItMlpTrainResult res;
    void       *ws;
    int         i,
                rc;
    double      maxd = 0.0,
                size = 0.0;

    MakePlanted(&s, 200, 200, 37);
    PlantedData(&s, 200, &data);
    for (i = 0; i < 50; i++)
        val[i] = 150 + i;       /* the training rows are then 0..149, in order */
    data.val_rows = val;
    data.nval = 50;
    it_mlp_default_params(&p);
    p.epochs = 3;
    p.alpha = 0.7f;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));

    it_mlp_init(plain, &lay, 3);
    rc = it_mlp_train(plain, &lay, &data, &p, ws, NULL, &res);
    CHECK(rc == IT_MLP_OK && !res.have_constant, "status %d, have_constant %d without constant_out",
          rc, res.have_constant);

    for (i = 0; i < 8; i++)
        c[i] = NAN;
    p.constant_out = c;
    it_mlp_init(params, &lay, 3);
    rc = it_mlp_train(params, &lay, &data, &p, ws, NULL, &res);
    CHECK(rc == IT_MLP_OK && res.have_constant, "status %d, have_constant %d", rc, res.have_constant);
    CHECK(memcmp(params, plain, sizeof(float) * P) == 0, "the same fit with constant_out");

    d2 = data;
    d2.n = 150;
    d2.val_rows = NULL;
    d2.nval = 0;
    pw = Alloc(sizeof(float) * it_mlp_population_workspace_floats(8, s.m));
    CHECK(it_mlp_population_vector(&d2, &p, 8, x, pw) == IT_MLP_OK, "population vector");
    for (i = 0; i < 8; i++)
    {
        CHECK(isfinite(c[i]), "constant_out[%d] written", i);
        maxd = fmax(maxd, fabs((double) c[i] - x[i]));
        size = fmax(size, fabs((double) x[i]));
    }
    CHECK(size > 0.0 && maxd <= 1e-6 * size, "constant_out differs from the population vector by %g (size %g)",
          maxd, size);

    p.init_output_bias = 0;
    it_mlp_init(params, &lay, 3);
    rc = it_mlp_train(params, &lay, &data, &p, ws, NULL, &res);
    CHECK(rc == IT_MLP_OK && !res.have_constant, "none without init_output_bias (%d)", res.have_constant);

    free(pw);
    free(ws);
    FreePlanted(&s);
    free(params);
    free(plain);
}

/* Entries below pos_min_weight count as unseen items. */
TEST(test_positive_threshold)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {12, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *g1 = Alloc(sizeof(float) * P);
    float      *g2 = Alloc(sizeof(float) * P);
    int64_t    *ptr;
    int32_t    *idx;
    float      *wt;
    ItMlpData   data,
                kept;
    ItMlpTrainParams p;
    void       *ws;
    int         u;
    int64_t     e,
                nnz = 0;

    MakePlanted(&s, 100, 100, 41);
    PlantedData(&s, 100, &data);
    ptr = Alloc(sizeof(int64_t) * 101);
    idx = Alloc(sizeof(int32_t) * s.indptr[100]);
    wt = Alloc(sizeof(float) * s.indptr[100]);
    for (u = 0; u < 100; u++)
    {
        ptr[u] = nnz;
        for (e = s.indptr[u]; e < s.indptr[u + 1]; e++)
            if (s.weights[e] >= 4.0f)
            {
                idx[nnz] = s.indices[e];
                wt[nnz++] = s.weights[e];
            }
    }
    ptr[100] = nnz;
    CHECK(nnz > 0 && nnz < s.indptr[100] / 2, "%lld of %lld kept", (long long) nnz,
          (long long) s.indptr[100]);
    kept = data;
    kept.indptr = ptr;
    kept.indices = idx;
    kept.weights = wt;
    it_mlp_init(params, &lay, 3);
    {
        double      a,
                    b,
                    c;
        size_t      i;
        double      maxd = 0.0,
                    gall = 0.0,
                    gdiff = 0.0;
        float      *gall_g = Alloc(sizeof(float) * P);

        it_mlp_default_params(&p);
        ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
        c = it_mlp_objective(params, &lay, &data, &p, NULL, 0, g2, ws);
        for (i = 0; i < P; i++)
            gall += (double) g2[i] * g2[i];
        memcpy(gall_g, g2, sizeof(float) * P);
        p.pos_min_weight = 4.0f;
        a = it_mlp_objective(params, &lay, &data, &p, NULL, 0, g1, ws);
        b = it_mlp_objective(params, &lay, &kept, &p, NULL, 0, g2, ws);
        for (i = 0; i < P; i++)
        {
            if (fabs((double) g1[i] - g2[i]) > maxd)
                maxd = fabs((double) g1[i] - g2[i]);
            gdiff += ((double) g1[i] - gall_g[i]) * ((double) g1[i] - gall_g[i]);
        }
        CHECK(fabs(a - b) < 1e-6 * fabs(b), "%g vs %g", a, b);
        CHECK(maxd < 1e-6, "gradients differ by %g", maxd);
        CHECK(sqrt(gdiff) > 0.02 * sqrt(gall), "the threshold matters (%g vs %g)",
              sqrt(gdiff), sqrt(gall));
        (void) c;
        free(gall_g);
        free(ws);
    }
    FreePlanted(&s);
    free(params);
    free(g1);
    free(g2);
    free(ptr);
    free(idx);
    free(wt);
}

static int  stop_calls = 0;

static int
StopAfter(void *arg)
{
    return ++stop_calls > *(int *) arg;
}

/*
 * Worker threads share the interaction loss of batches with many
 * positives: the same parameters, losses and precisions as one thread, to
 * the bit; should_stop is then asked every 64 minibatches, while they are
 * stopped, and still stops training.
 */
TEST(test_threads_same_result)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {16, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *one = Alloc(sizeof(float) * P);
    float      *three = Alloc(sizeof(float) * P);
    ItMlpEpoch  h1[20],
                h3[20];
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult r1,
                r3;
    int32_t     val[100];
    int         never = 1 << 30,
                limit = 1,
                i,
                rc;
    void       *ws;

    MakePlanted(&s, 500, 500, 21);
    PlantedData(&s, 500, &data);
    for (i = 0; i < 100; i++)
        val[i] = 5 * i;
    data.val_rows = val;
    data.nval = 100;
    data.baseline = s.popularity;
    it_mlp_default_params(&p);
    p.epochs = 20;
    p.batch = 128;              /* 4 minibatches an epoch, 13 positives a row */
    p.patience = 0;
    p.should_stop = StopAfter;
    p.should_stop_arg = &never;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));

    stop_calls = 0;
    it_mlp_init(one, &lay, 5);
    rc = it_mlp_train(one, &lay, &data, &p, ws, h1, &r1);
    CHECK(rc == IT_MLP_OK && stop_calls == 80, "one thread: status %d, asked %d times", rc, stop_calls);

    p.threads = 3;
    stop_calls = 0;
    it_mlp_init(three, &lay, 5);
    rc = it_mlp_train(three, &lay, &data, &p, ws, h3, &r3);
    CHECK(rc == IT_MLP_OK && stop_calls == 2, "three threads: status %d, asked %d times (the workers ran)",
          rc, stop_calls);
    CHECK(memcmp(one, three, sizeof(float) * P) == 0, "the same parameters");
    for (i = 0; i < 20; i++)
        CHECK(h1[i].train_loss == h3[i].train_loss && h1[i].val_loss == h3[i].val_loss &&
              h1[i].val_precision == h3[i].val_precision, "epoch %d the same", i + 1);
    CHECK(r1.best_epoch == r3.best_epoch && r1.best_val_loss == r3.best_val_loss, "the same best epoch");

    /* stopping: asked before minibatch 64, training ends there */
    p.should_stop_arg = &limit;
    stop_calls = 0;
    it_mlp_init(three, &lay, 5);
    rc = it_mlp_train(three, &lay, &data, &p, ws, h3, &r3);
    CHECK(rc == IT_MLP_ESTOPPED && stop_calls == 2 && r3.epochs_run == 16,
          "stopped: status %d, asked %d times, %d epochs", rc, stop_calls, r3.epochs_run);

    /* a batch with few positives stays on the calling thread: asked every minibatch */
    p.batch = 16;
    p.should_stop_arg = &never;
    stop_calls = 0;
    it_mlp_init(three, &lay, 5);
    rc = it_mlp_train(three, &lay, &data, &p, ws, h3, &r3);
    CHECK(rc == IT_MLP_OK && stop_calls == 20 * 25, "batches of 16: asked %d times", stop_calls);
    FreePlanted(&s);
    free(one);
    free(three);
    free(ws);
}

/* should_stop ends training and leaves the initial parameters. */
TEST(test_should_stop)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {16, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *init = Alloc(sizeof(float) * P);
    ItMlpData   data;
    ItMlpTrainParams p;
    ItMlpTrainResult res;
    ItMlpEpoch  hist[50];
    void       *ws;
    int         limit = 3,
                rc;

    MakePlanted(&s, 300, 300, 12);
    PlantedData(&s, 300, &data);
    it_mlp_default_params(&p);
    p.epochs = 50;
    p.batch = 32;
    p.should_stop = StopAfter;
    p.should_stop_arg = &limit;
    p.init_output_bias = 0;
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
    it_mlp_init(params, &lay, 1);
    memcpy(init, params, sizeof(float) * P);
    stop_calls = 0;
    rc = it_mlp_train(params, &lay, &data, &p, ws, hist, &res);
    CHECK(rc == IT_MLP_ESTOPPED, "status %d", rc);
    CHECK(stop_calls == limit + 1, "called once per minibatch: %d", stop_calls);
    CHECK(res.epochs_run == 0 && res.best_epoch == -1, "no epoch finished");
    CHECK(memcmp(params, init, sizeof(float) * P) == 0, "initial parameters back");

    /* 240 training rows in batches of 32: 8 minibatches per epoch */
    limit = 8 * 3 + 2;
    stop_calls = 0;
    rc = it_mlp_train(params, &lay, &data, &p, ws, hist, &res);
    CHECK(rc == IT_MLP_ESTOPPED && res.epochs_run == 3,
          "status %d after %d epochs", rc, res.epochs_run);
    CHECK(memcmp(params, init, sizeof(float) * P) != 0, "best epoch kept");
    FreePlanted(&s);
    free(params);
    free(init);
    free(ws);
}

TEST(test_bad_arguments)
{
    Planted     s;
    ItMlpLayout lay = {10, 1, {16, 0, 0}, 8};
    size_t      P = it_mlp_param_count(&lay);
    float      *params = Alloc(sizeof(float) * P);
    float      *before = Alloc(sizeof(float) * P);
    ItMlpData   data,
                d2;
    ItMlpTrainParams p,
                p2;
    void       *ws;
    int32_t     dup[2] = {4, 4};
    int32_t     out_of_range[1] = {300};

    MakePlanted(&s, 200, 200, 13);
    PlantedData(&s, 200, &data);
    it_mlp_default_params(&p);
    ws = Alloc(it_mlp_train_workspace_size(&lay, &p, data.n, s.m));
    it_mlp_init(params, &lay, 1);
    memcpy(before, params, sizeof(float) * P);

#define EXPECT_EINVAL(dd, pp, what) \
    CHECK(it_mlp_train(params, &lay, &(dd), &(pp), ws, NULL, NULL) == IT_MLP_EINVAL, what)

    p2 = p; p2.lr = 0.0f;               EXPECT_EINVAL(data, p2, "lr 0");
    p2 = p; p2.lr = NAN;                EXPECT_EINVAL(data, p2, "lr NaN");
    p2 = p; p2.beta1 = 1.0f;            EXPECT_EINVAL(data, p2, "beta1 1");
    p2 = p; p2.epochs = 0;              EXPECT_EINVAL(data, p2, "0 epochs");
    p2 = p; p2.batch = 0;               EXPECT_EINVAL(data, p2, "batch 0");
    p2 = p; p2.vector_weight = 1.5f;    EXPECT_EINVAL(data, p2, "blend > 1");
    p2 = p; p2.val_fraction = 0.95f;    EXPECT_EINVAL(data, p2, "validation fraction");
    p2 = p; p2.weight_decay = -1.0f;    EXPECT_EINVAL(data, p2, "negative decay");
    p2 = p; p2.lr = 0.5f; p2.weight_decay = 2.0f;
    EXPECT_EINVAL(data, p2, "decay of the whole weight per step");
    p2 = p; p2.eval_k = -1;             EXPECT_EINVAL(data, p2, "precision at -1");
    p2 = p; p2.converge_window = -1;    EXPECT_EINVAL(data, p2, "negative window");
    p2 = p; p2.converge_window = IT_MLP_MAX_CONVERGE_WINDOW + 1;
    EXPECT_EINVAL(data, p2, "window past its ring");
    p2 = p; p2.converge_window = 3; p2.converge_tol = 1.0f;
    EXPECT_EINVAL(data, p2, "tolerance of the whole improvement");
    p2 = p; p2.converge_window = 3; p2.converge_tol = NAN;
    EXPECT_EINVAL(data, p2, "tolerance NaN");
    d2 = data; d2.YtY = NULL;           EXPECT_EINVAL(d2, p, "ALS loss without YtY");
    d2 = data; d2.targets = NULL; p2 = p; p2.vector_weight = 0.5f;
    EXPECT_EINVAL(d2, p2, "vector loss without targets");
    d2 = data; d2.n = 0;                EXPECT_EINVAL(d2, p, "no rows");
    d2 = data; d2.val_rows = dup; d2.nval = 2;
    EXPECT_EINVAL(d2, p, "duplicate validation rows");
    d2 = data; d2.val_rows = out_of_range; d2.nval = 1;
    EXPECT_EINVAL(d2, p, "validation row out of range");
    CHECK(memcmp(params, before, sizeof(float) * P) == 0, "parameters untouched");
    d2 = data;
    d2.n = 0;
    CHECK(isnan(it_mlp_objective(params, &lay, &d2, &p, NULL, 0, NULL, ws)),
          "objective of invalid data is NaN");
    CHECK(isnan(it_mlp_objective(params, &lay, &data, &p, out_of_range, 1, NULL, ws)),
          "objective of a row out of range is NaN");
#undef EXPECT_EINVAL
    {
        float       x[8];
        float      *pw = Alloc(sizeof(float) *
                               it_mlp_population_workspace_floats(8, s.m));

        d2 = data;
        d2.YtY = NULL;
        CHECK(it_mlp_population_vector(&d2, &p, 8, x, pw) == IT_MLP_EINVAL,
              "population vector without YtY");
        free(pw);
    }

    /* a diverging run reports it and keeps finite parameters */
    p2 = p;
    p2.lr = 1e30f;
    p2.weight_decay = 0.0f;
    {
        int         rc = it_mlp_train(params, &lay, &data, &p2, ws, NULL, NULL);
        size_t      i;
        int         finite = 1;

        for (i = 0; i < P; i++)
            if (!isfinite(params[i]))
                finite = 0;
        CHECK(rc == IT_MLP_ENONFINITE, "status %d", rc);
        CHECK(finite, "parameters restored to finite values");
    }
    FreePlanted(&s);
    free(params);
    free(before);
    free(ws);
}

int
main(void)
{
    RUN(test_layout_sizes);
    RUN(test_init_he);
    RUN(test_forward_matches_reference);
    RUN(test_gradient_vectors);
    RUN(test_gradient_interactions_als);
    RUN(test_gradient_blend);
    RUN(test_als_loss_value);
    RUN(test_training_reduces_loss);
    RUN(test_interactions_beat_popularity);
    RUN(test_linear_model);
    RUN(test_deterministic);
    RUN(test_early_stopping_keeps_best);
    RUN(test_convergence_stop);
    RUN(test_init_output_bias);
    RUN(test_constant_out);
    RUN(test_positive_threshold);
    RUN(test_should_stop);
    RUN(test_threads_same_result);
    RUN(test_bad_arguments);
    return unit_summary();
}

/*
 * transfer.c
 *    The features -> interest models trained with a model version: for
 *    users (from user_features) and for items (from item_features).
 *
 * For the user side, f maps a user's encoded features to a vector in the
 * space of the trained users' vectors.  It is not trained to imitate those
 * vectors (on MovieLens 100k that ranks worse than plain popularity) but
 * on what it is used for: the implicit-ALS loss of the user's own
 * interactions through the trained item factors (mlp.h), the objective of
 * fold-in, so that f(features) ranks the items a new user will take and
 * serves as the prior of fold-in.  The item side is the same with the
 * roles swapped: f maps an item's features to an item vector, trained on
 * the item's users through the trained user factors; items present only
 * in item_features get their vector from it (option new_items).
 *
 * A held-out slice of the trained rows (option prior_validation, drawn by
 * a hash of the id and the seed) stops training early and decides whether
 * the features are worth using at all: the features path of a side is
 * kept (metrics use_features) only when, on those rows, its precision@10
 * beats that of popularity (for items: of the users' activity), both
 * ranking every item with nothing excluded, and its loss is significantly
 * below that of the best constant vector (the same objective without
 * features; see IT_PRIOR_MIN_Z): a precision won by a hair, with a blend
 * chosen on the same rows, lets pure noise through one time in a few.  On
 * the user side the serving ranking is x.y_i + popularity_blend *
 * popularity_i / max popularity; popularity_blend is chosen on the same
 * rows from a small grid, 0 unless it helps.  When the features lose, a
 * NOTICE says so (kept in the metrics as well) and the serving side
 * ignores them.
 *
 * Then the weight lambda0 of fold-in around each prior serving uses is
 * chosen by simulation on trained users (see FoldInGrid): around the
 * features prior on the validation users (it_encoder metrics
 * fold_in_prior_weight of the user side), around the population mean on
 * any trained users, with or without features (it_model metrics
 * fold_in_prior_weight).
 *
 * Reading happens before anything is written, with the caller's
 * privileges, so an unreadable or unsupported source leaves no model.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "common/shortest_dec.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "interest_transfer.h"
#include "features_encoder.h"
#include "mlp.h"
#include "rankgrid.h"
#include "transfer.h"

/* Fewer trained rows with features than this: no model for the side. */
#define IT_PRIOR_MIN_ROWS       20

/* The check against the baselines: precision at this k. */
#define IT_PRIOR_EVAL_K         10

/*
 * Validation rows ranked in the final check: all of them, but at most
 * about this many multiply-adds (rows * items * (factors + blends)), and
 * never fewer than IT_PRIOR_EVAL_MIN_ROWS rows when there are that many.
 */
#define IT_PRIOR_EVAL_WORK      4.0e9
#define IT_PRIOR_EVAL_MIN_ROWS  500

/*
 * Precision in the per-epoch history: on at most this many multiply-adds
 * per epoch (rows * items * factors), at most 2000 rows, and not at all
 * when that leaves fewer than 50 rows.
 */
#define IT_PRIOR_EPOCH_EVAL_WORK 2.0e8

/*
 * A work budget keeps the features models from costing much more than the
 * model itself on large data: about IT_PRIOR_WORK_SHARE of the ALS work,
 * but at least IT_PRIOR_WORK_FLOOR, in multiply-adds, a row's positive
 * counting IT_PRIOR_NNZ_COST times k (scattered reads of the other side's
 * vectors, vectorised float loops) and its layers their weights.  It caps
 * the epochs (measured: on 100k users x 20k items, 2M interactions, 64
 * factors, the users' model reaches its precision within 2 to 4 epochs);
 * when fewer than IT_PRIOR_MIN_EPOCHS fit, the training rows are sampled.
 * Small data sets (the floor is about a second here) are not affected.
 */
#define IT_PRIOR_WORK_FLOOR     1.0e10
#define IT_PRIOR_WORK_SHARE     0.15
#define IT_PRIOR_NNZ_COST       6.0
#define IT_PRIOR_MIN_EPOCHS     4

/* Validation rows at most (their loss is computed every epoch). */
#define IT_PRIOR_MAX_VAL_ROWS   5000

/* Rows encoded or forwarded between interrupt checks. */
#define IT_PRIOR_CHUNK          8192

/* Rows per INSERT of new items, and bound on the floats it passes. */
#define IT_PRIOR_WRITE_ROWS     10000
#define IT_PRIOR_WRITE_VALUES   (1 << 21)

/*
 * The features are used only when their loss on the validation rows is
 * lower than that of the model without features by at least this many
 * standard errors of the mean per-row difference.  With pure-noise
 * features the statistic stayed within -3.3 .. 1.7 in 40 trainings on
 * generated data and was 0.7 on MovieLens 100k, where age, gender and
 * occupation gave 3.6 to 4.7; the generated users' demographics 8 to 36,
 * the generated items' features 3.9 to 4.7.
 */
#define IT_PRIOR_MIN_Z          2.5

/*
 * The weight lambda0 of a fold-in prior is chosen where it can be
 * measured: on trained users, by simulation.  Each simulated user reveals
 * FoldInReveal[r] of their interactions, is folded in from those alone
 * around the prior serving would use, against item vectors trained
 * without them (LeaveOutItems), and ranks every item but the revealed
 * ones; precision@10 counts their other positives (prior_min_weight, as
 * for the priors).  The revealed interactions are drawn by a seeded hash;
 * the fewer revealed are among the more.  lambda0 runs over FoldInGrid times
 * mean diag(Y'Y), which makes the grid follow the scale of the item
 * vectors.  The weight chosen maximises the mean precision of the
 * simulations (one per count) that have at least IT_FOLD_MIN_USERS users
 * (ties: the larger weight); with fewer for the fewest revealed, nothing
 * is chosen and serving keeps its formula.  Users simulated: at most
 * IT_FOLD_MAX_USERS, at most what IT_FOLD_WORK multiply-adds allow
 * (users * simulations * grid * items * (factors + IT_FOLD_TOPK_COST)),
 * but not fewer than IT_FOLD_FLOOR_USERS; they are left out of the item
 * vectors in groups of at most IT_FOLD_LEAVE_OUT of the trained users
 * (at most IT_FOLD_MAX_GROUPS groups, one item half-step of ALS each).
 * On MovieLens 100k (prior_min_weight 4), with 3 and 10 ratings of each
 * held-out user revealed at random, the weight chosen (0.874) gave those
 * users precision@10 0.416 and 0.433, against 0.385 and 0.358 with weight
 * 50, which is best when their first ratings in time are revealed
 * instead: those say less about the later ones than any random choice
 * (the simulation cannot see time; the chosen weight gets 0.310 and 0.266
 * there, the former rule, max(alpha, 0.2) / (2 prior_variance), 0.265 and
 * 0.232).
 */
static const int FoldInReveal[] = {3, 10};
static const double FoldInGrid[] = {0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300};

#define IT_FOLD_NREVEAL     ((int) lengthof(FoldInReveal))
#define IT_FOLD_NGRID       ((int) lengthof(FoldInGrid))
#define IT_FOLD_MAX_USERS   1000
#define IT_FOLD_FLOOR_USERS 200
#define IT_FOLD_MIN_USERS   30
#define IT_FOLD_WORK        1.5e10
#define IT_FOLD_TOPK_COST   8.0
#define IT_FOLD_LEAVE_OUT   0.1
#define IT_FOLD_MAX_GROUPS  5

/* Popularity blends tried, in units of the prior's typical top score. */
static const double BlendGrid[] = {0.0, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0};

#define IT_NBLEND ((int) lengthof(BlendGrid))

/* Options of the priors, read once. */
typedef struct PriorOptions
{
    int         hidden;
    int         epochs;
    double      learning_rate;
    double      weight_decay;
    int         batch;
    int         patience;
    double      validation;
    double      min_weight;
    bool        new_items;
    uint64      seed;
    int         factors;
    double      budget;         /* scale of the work budget */
    double      vector_weight;
    int         iterations;     /* of ALS, for the work budget */
    int         cg_steps;
    double      regularization; /* of ALS, for the leave-out item step */
    int         threads;
    ItEncoderOptions encoder;
} PriorOptions;

/*
 * The fold-in weight chosen for one prior (ChooseFoldInWeight).
 * Simulation r reveals FoldInReveal[r] interactions.
 */
typedef struct FoldInChoice
{
    bool        measured;       /* false: too few users to choose */
    int         best;           /* index into lambdas */
    int         groups;         /* left out of the item vectors in this many groups */
    float       lambdas[lengthof(FoldInGrid)];
    int64       users[IT_FOLD_NREVEAL];    /* users of each simulation */
    bool        counted[IT_FOLD_NREVEAL];  /* in the criterion */
    double      precision[IT_FOLD_NREVEAL][lengthof(FoldInGrid)];
    double      criterion[lengthof(FoldInGrid)];
    double      seconds;
} FoldInChoice;

/* One side ("user" or "item"). */
typedef struct PriorSide
{
    const char *side;           /* "user", "item" */
    const char *what;           /* "user_features", ... */
    const char *id_column;      /* "user_id", ... */
    const char *rows_name;      /* "users", "items" (trained rows of the side) */
    const char *new_rows;       /* what a side's rows are when new */
    ItEncoded  *enc;            /* NULL when the side has no features */

    /* after ItTransferFit */
    bool        use_features;
    double      popularity_blend;
    Jsonb      *layout_json;    /* NULL when no model was trained */
    float      *params;         /* NULL when none is kept */
    int64       nparams;
    StringInfoData metrics;     /* JSON object text */
    StringInfoData summary;     /* the same, short, for it_model.metrics */
    StringInfoData notices;     /* the NOTICEs given, as JSON strings */
    FoldInChoice fold;          /* user side: fold-in weight of the features prior */

    /* new items (item side) */
    int64       nnew;
    int64      *new_ids;
    float      *new_factors;    /* nnew * k */
} PriorSide;

struct ItTransferTrain
{
    MemoryContext cxt;
    PriorOptions o;
    int         k;              /* factors of the trained model */
    double      budget;         /* work budget of each side (multiply-adds) */
    PriorSide   user;
    PriorSide   item;
    FoldInChoice pop_fold;      /* fold-in weight of the population prior */
    const ItTrainedModel *tm;   /* during ItTransferFit */
};

/* What fitting one side needs from the trained model. */
typedef struct SideData
{
    const int64 *ids;           /* trained ids of the side, ascending */
    int64       nrows;
    const ItCsr *R;             /* nrows x m: the side's interactions */
    const float *F;             /* nrows * k: the side's trained vectors */
    const float *Y;             /* m * k: the other side's vectors */
    int64       m;
    const float *base;          /* m: the baseline ranking's scores */
    const char *base_name;      /* "popularity", "user activity" */
    bool        blend;          /* choose a popularity blend */
    float       alpha;
    int         k;
} SideData;

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* n elements of size bytes, checked, in memory that may exceed 1 GB. */
static void *
AllocChecked(int64 n, Size size, const char *what)
{
    if (n < 0 || (uint64) n > MaxAllocHugeSize / size)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s is too large: " INT64_FORMAT " elements of %zu bytes", what, n, size),
                 errhint("Train on a sample, or with fewer feature columns or factors.")));
    return MemoryContextAllocHuge(CurrentMemoryContext, Max(mul_size((Size) n, size), 1));
}

/* A JSON number, or null when not finite. */
static void
AppendNumber(StringInfo buf, double v)
{
    char        tmp[DOUBLE_SHORTEST_DECIMAL_LEN];

    if (!isfinite(v))
    {
        appendStringInfoString(buf, "null");
        return;
    }
    double_to_shortest_decimal_buf(v, tmp);
    appendStringInfoString(buf, tmp);
}

/* A number rounded to 6 significant digits (metrics meant for reading). */
static void
AppendRounded(StringInfo buf, double v)
{
    if (!isfinite(v))
    {
        appendStringInfoString(buf, "null");
        return;
    }
    AppendNumber(buf, strtod(psprintf("%.6g", v), NULL));
}

static void
AppendKeyNumber(StringInfo buf, const char *key, double v)
{
    appendStringInfo(buf, ", \"%s\": ", key);
    AppendRounded(buf, v);
}

static Jsonb *
JsonbFromText(const char *text)
{
    return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
}

/* splitmix64: a well-mixed 64-bit hash */
static uint64
Mix64(uint64 x)
{
    x += UINT64CONST(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64CONST(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64CONST(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

/*
 * Called by the MLP trainer once per minibatch: a cancel or terminate ends
 * the call right there (the trainer holds no resources, only buffers of
 * this memory context), and any other interrupt is served and training goes
 * on, so the result never depends on when signals arrive.
 */
static int
PriorCheckInterrupts(void *arg)
{
    CHECK_FOR_INTERRUPTS();
    return 0;
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

static void
ReadPriorOptions(Jsonb *options, PriorOptions *o)
{
    o->hidden = (int) ItOptionInt(options, "prior_hidden", 64);
    o->epochs = (int) ItOptionInt(options, "prior_epochs", 200);
    o->learning_rate = ItOptionFloat(options, "prior_learning_rate", 1e-3);
    o->weight_decay = ItOptionFloat(options, "prior_weight_decay", 3.0);
    o->batch = (int) ItOptionInt(options, "prior_batch", 64);
    o->patience = (int) ItOptionInt(options, "prior_patience", 20);
    o->validation = ItOptionFloat(options, "prior_validation", 0.2);
    o->min_weight = ItOptionFloat(options, "prior_min_weight", 0.0);
    o->new_items = ItOptionBool(options, "new_items", true);
    o->seed = (uint64) ItOptionInt(options, "seed", 42);
    o->factors = (int) ItOptionInt(options, "factors", 64);
    o->budget = ItOptionFloat(options, "prior_budget", 1.0);
    o->vector_weight = ItOptionFloat(options, "prior_vector_weight", 0.0);
    o->iterations = (int) ItOptionInt(options, "iterations", 15);
    o->cg_steps = (int) ItOptionInt(options, "cg_steps", 3);
    o->regularization = ItOptionFloat(options, "regularization", 0.05);
    o->threads = (int) ItOptionInt(options, "threads", 0);
    ItEncoderOptionsFrom(options, &o->encoder);

    /* the ranges are checked by ItResolveOptions; this one spans two options */
    if (!(o->learning_rate * o->weight_decay < 1.0))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"prior_learning_rate\" times option \"prior_weight_decay\" must be less than 1, not %g",
                        o->learning_rate * o->weight_decay),
                 errhint("Every step of the features model shrinks its weights by that product; lower one of the two.")));
}

static void
InitSide(PriorSide *s, const char *side, const char *what, const char *id_column,
         const char *rows_name, const char *new_rows)
{
    memset(s, 0, sizeof(*s));
    s->side = side;
    s->what = what;
    s->id_column = id_column;
    s->rows_name = rows_name;
    s->new_rows = new_rows;
    initStringInfo(&s->metrics);
    initStringInfo(&s->summary);
    initStringInfo(&s->notices);
}

static void
SideLayout(const PriorSide *s, const PriorOptions *o, int k, ItMlpLayout *layout)
{
    memset(layout, 0, sizeof(*layout));
    layout->input = s->enc->dims;
    layout->nhidden = o->hidden > 0 ? 1 : 0;
    layout->hidden[0] = o->hidden;
    layout->output = k;
}

/* The model of a side must fit in one real[] of its it_encoder row. */
static void
CheckModelSize(const PriorSide *s, const PriorOptions *o, int k)
{
    ItMlpLayout layout;
    size_t      nparams;

    SideLayout(s, o, k, &layout);
    nparams = it_mlp_check_layout(&layout) == IT_MLP_OK ? it_mlp_param_count(&layout) : 0;
    if (nparams == 0 || nparams > (MaxAllocSize - 1024) / sizeof(float))
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("the features model of %s would be too large: %d encoded features, %d hidden units, %d factors",
                        s->what, layout.input, o->hidden, k),
                 errhint("Use a smaller prior_hidden, fewer feature columns or a smaller max_categories.")));
}

/* ------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------ */

static ItEncoded *
ReadFeatures(const char *source, const char *what, const char *id_column,
             const char *model, const ItEncoderOptions *opts)
{
    ItSource    src;
    ItEncoderBuilder *b;
    ItEncoded  *enc;
    uint64      n;

    ItSourceOpen(&src, source, what, model, NULL, 0, NULL, NULL);
    b = ItEncoderBegin(src.tupdesc, id_column, what, opts);
    while ((n = ItSourceFetch(&src, IT_PRIOR_CHUNK)) > 0)
    {
        ItEncoderAddRows(b, src.batch, n);
        CHECK_FOR_INTERRUPTS();
    }
    enc = ItEncoderFinish(b);
    ItSourceClose(&src);
    return enc;
}

ItTransferTrain *
ItTransferRead(const char *model, const char *user_features,
               const char *item_features, Jsonb *options)
{
    PriorOptions o;
    MemoryContext cxt;
    MemoryContext old;
    ItTransferTrain *t;

    /*
     * The options are checked even when no features are given; the state
     * is made then too, for the fold-in weight of the population prior.
     */
    ReadPriorOptions(options, &o);

    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer priors",
                                ALLOCSET_DEFAULT_SIZES);
    old = MemoryContextSwitchTo(cxt);
    t = palloc0(sizeof(ItTransferTrain));
    t->cxt = cxt;
    t->o = o;
    t->k = o.factors;
    InitSide(&t->user, "user", "user_features", "user_id", "users", "new users");
    InitSide(&t->item, "item", "item_features", "item_id", "items", "new items");

    if (user_features != NULL)
    {
        t->user.enc = ReadFeatures(user_features, t->user.what, t->user.id_column, model, &o.encoder);
        CheckModelSize(&t->user, &o, t->k);
        CHECK_FOR_INTERRUPTS();
    }
    if (item_features != NULL)
    {
        t->item.enc = ReadFeatures(item_features, t->item.what, t->item.id_column, model, &o.encoder);
        CheckModelSize(&t->item, &o, t->k);
        CHECK_FOR_INTERRUPTS();
    }
    MemoryContextSwitchTo(old);
    return t;
}

/* ------------------------------------------------------------------------
 * Fitting one side
 * ------------------------------------------------------------------------ */

typedef struct HashedRow
{
    uint64      h;
    int32       row;
} HashedRow;

static int
CompareHashedRows(const void *a, const void *b)
{
    const HashedRow *x = a;
    const HashedRow *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

/* f of rows of X given by index (X row rows[i]), in chunks; out: n * k. */
static void
ForwardRows(const float *params, const ItMlpLayout *layout, const float *X,
            const int64 *rows, int64 n, float *out)
{
    int         d = layout->input;
    int64       chunk = Min(n, IT_PRIOR_CHUNK);
    float      *xb = AllocChecked(chunk * d, sizeof(float), "features prior input");
    size_t      wsf = it_mlp_workspace_floats(layout, chunk);
    float      *ws = wsf > 0 ? AllocChecked((int64) wsf, sizeof(float), "features prior workspace") : NULL;

    for (int64 r0 = 0; r0 < n; r0 += chunk)
    {
        int64       nb = Min(chunk, n - r0);

        CHECK_FOR_INTERRUPTS();
        for (int64 i = 0; i < nb; i++)
            memcpy(xb + i * d, X + rows[r0 + i] * d, sizeof(float) * d);
        it_mlp_forward(params, layout, xb, nb, out + r0 * layout->output, ws);
    }
    pfree(xb);
    if (ws)
        pfree(ws);
}

/* A NOTICE about a side, kept in its metrics ("notices") as well. */
static void
SideNotice(PriorSide *s, const char *hint, const char *msg)
{
    ereport(NOTICE,
            (errmsg("%s", msg),
             hint ? errhint("%s", hint) : 0));
    if (s->notices.len > 0)
        appendStringInfoString(&s->notices, ", ");
    escape_json(&s->notices, msg);
}

static const char *
BoolText(bool b)
{
    return b ? "true" : "false";
}

/* The metrics of a side without a trained model. */
static void
SkippedMetrics(PriorSide *s, const char *reason, int64 with_features, int64 trained,
               int64 used, int64 not_trained)
{
    appendStringInfoString(&s->metrics, "{\"use_features\": false, \"popularity_blend\": 0, \"skipped\": ");
    escape_json(&s->metrics, reason);
    AppendKeyNumber(&s->metrics, "rows_with_features", (double) with_features);
    AppendKeyNumber(&s->metrics, "rows_trained", (double) trained);
    AppendKeyNumber(&s->metrics, "rows_used", (double) used);
    AppendKeyNumber(&s->metrics, "rows_not_trained", (double) not_trained);
    if (strcmp(s->side, "item") == 0)
        appendStringInfoString(&s->metrics, ", \"new_items\": 0");
    appendStringInfo(&s->metrics, ", \"notices\": [%s]}", s->notices.data);

    appendStringInfoString(&s->summary, "{\"use_features\": false, \"popularity_blend\": 0, \"skipped\": ");
    escape_json(&s->summary, reason);
    if (strcmp(s->side, "item") == 0)
        appendStringInfoString(&s->summary, ", \"new_items\": 0");
    appendStringInfoChar(&s->summary, '}');
}

/*
 * New items: the rows of item_features that were not trained get f of
 * their features, when option new_items is on and the item side's
 * features are in use.
 */
static void
NewItems(ItTransferTrain *t, PriorSide *s, const ItMlpLayout *layout,
         const int64 *unmatched, int64 nun)
{
    if (nun == 0)
        return;
    if (!t->o.new_items)
    {
        SideNotice(s, NULL,
                   psprintf(INT64_FORMAT " items of item_features are not in the interactions and get no vector: option new_items is off",
                            nun));
        return;
    }
    if (!s->use_features)
    {
        SideNotice(s, NULL,
                   psprintf(INT64_FORMAT " items of item_features are not in the interactions and get no vector: the item features are not in use",
                            nun));
        return;
    }
    s->new_ids = AllocChecked(nun, sizeof(int64), "new items");
    s->new_factors = AllocChecked(nun * t->k, sizeof(float), "new item factors");
    for (int64 i = 0; i < nun; i++)
        s->new_ids[i] = s->enc->ids[unmatched[i]];
    ForwardRows(s->params, layout, s->enc->X, unmatched, nun, s->new_factors);
    for (int64 j = 0; j < nun * t->k; j++)
        if (!isfinite(s->new_factors[j]))
            elog(ERROR, "the features model of item_features gave a vector that is not finite");
    s->nnew = nun;
    SideNotice(s, NULL,
               psprintf(INT64_FORMAT " new items (in item_features, not in the interactions) got vectors from their features",
                        nun));
}

/*
 * The mean difference of precision between two rankings over the rows
 * both rank (hits >= 0), a[r * astride + aj] against b[r * bstride + bj],
 * and how many standard errors of that mean it is (+-infinity when every
 * row differs by the same amount, 0 when none differs).
 */
static void
PairedDifference(const int32 *a, int astride, int aj, const int32 *b, int bstride, int bj,
                 int64 n, double *mean, double *z)
{
    double      sum = 0.0;
    double      sum2 = 0.0;
    int64       cnt = 0;
    double      var;

    for (int64 r = 0; r < n; r++)
    {
        int32       ha = a[r * astride + aj];
        int32       hb = b[r * bstride + bj];
        double      d;

        if (ha < 0 || hb < 0)
            continue;
        d = (double) (ha - hb) / IT_PRIOR_EVAL_K;
        sum += d;
        sum2 += d * d;
        cnt++;
    }
    if (cnt == 0)
    {
        *mean = 0.0;
        *z = 0.0;
        return;
    }
    *mean = sum / cnt;
    var = cnt > 1 ? (sum2 - sum * sum / cnt) / (cnt - 1) : 0.0;
    if (var > 0.0)
        *z = *mean / sqrt(var / cnt);
    else
        *z = *mean > 0 ? INFINITY : (*mean < 0 ? -INFINITY : 0.0);
}

/* The mean of a[i] - b[i] and how many standard errors of it that is. */
static void
MeanDifference(const double *a, const double *b, int64 n, double *mean, double *z)
{
    double      sum = 0.0;
    double      sum2 = 0.0;
    double      var;

    for (int64 i = 0; i < n; i++)
    {
        double      d = a[i] - b[i];

        sum += d;
        sum2 += d * d;
    }
    *mean = n > 0 ? sum / n : 0.0;
    var = n > 1 ? (sum2 - sum * sum / n) / (n - 1) : 0.0;
    if (var > 0.0)
        *z = *mean / sqrt(var / n);
    else
        *z = *mean > 0 ? INFINITY : (*mean < 0 ? -INFINITY : 0.0);
}

/* ------------------------------------------------------------------------
 * The weight of a fold-in prior (see FoldInGrid)
 * ------------------------------------------------------------------------ */

/* An interaction of a simulated user, in the order of its hash. */
typedef struct RevealEntry
{
    double      key;
    int32       item;
    float       w;
} RevealEntry;

static int
CompareRevealKey(const void *a, const void *b)
{
    const RevealEntry *x = a;
    const RevealEntry *y = b;

    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

/* A hash as a number in (0, 1]. */
static double
UnitHash(uint64 h)
{
    return ((double) (h >> 11) + 1.0) / 9007199254740992.0;
}

/* Rows of the leave-out item step between interrupt checks: about this much work. */
#define IT_FOLD_CHUNK_FLOPS 4.0e7

/*
 * The item vectors as if the users rows[0..n) had not been trained on:
 * one item half-step of ALS (the training's options and CG steps, warm
 * from the trained Y, the users' vectors fixed) on the interactions
 * without theirs, with Y'Y of the result in YtY.  Against the trained Y,
 * fold-in from a few of a trained user's items finds the others because
 * Y was fitted to them: on MovieLens 100k the simulated precision of weak
 * priors was 0.1 above what new users then got, and the weight chosen 50
 * times too small.  About one iteration of ALS over the items.
 */
static float *
LeaveOutItems(ItTransferTrain *t, const int64 *rows, int64 n, float *YtY)
{
    const ItTrainedModel *tm = t->tm;
    int         k = tm->k;
    bool       *out = AllocChecked(tm->nusers, sizeof(bool), "fold-in users");
    ItCsr       Rt;
    int64       removed = 0;
    int64       nnz = 0;
    float      *Xs;
    float      *G;
    float      *XtX;
    float      *Y;
    float      *scratch;
    ItAlsParams p;
    int64       begin = 0;

    memset(out, 0, sizeof(bool) * tm->nusers);
    for (int64 i = 0; i < n; i++)
    {
        out[rows[i]] = true;
        removed += tm->R->indptr[rows[i] + 1] - tm->R->indptr[rows[i]];
    }

    /* the items' interactions without those users */
    Rt.nrows = tm->nitems;
    Rt.ncols = tm->nusers;
    Rt.indptr = AllocChecked(tm->nitems + 1, sizeof(int64), "leave-out interactions");
    Rt.indices = AllocChecked(Max(tm->Rt->nnz - removed, 1), sizeof(int32), "leave-out interactions");
    Rt.data = AllocChecked(Max(tm->Rt->nnz - removed, 1), sizeof(float), "leave-out interactions");
    Rt.indptr[0] = 0;
    for (int64 i = 0; i < tm->nitems; i++)
    {
        for (int64 e = tm->Rt->indptr[i]; e < tm->Rt->indptr[i + 1]; e++)
        {
            if (out[tm->Rt->indices[e]])
                continue;
            Rt.indices[nnz] = tm->Rt->indices[e];
            Rt.data[nnz] = tm->Rt->data[e];
            nnz++;
        }
        Rt.indptr[i + 1] = nnz;
    }
    Rt.nnz = nnz;
    CHECK_FOR_INTERRUPTS();

    /* X'X without those users */
    Xs = AllocChecked(Max(n, 1) * k, sizeof(float), "leave-out vectors");
    G = AllocChecked((int64) k * k, sizeof(float), "leave-out gram matrix");
    XtX = AllocChecked((int64) k * k, sizeof(float), "leave-out gram matrix");
    for (int64 i = 0; i < n; i++)
        memcpy(Xs + i * k, tm->X + rows[i] * k, sizeof(float) * k);
    it_gram(tm->X, tm->nusers, k, XtX);
    if (n > 0)
    {
        it_gram(Xs, n, k, G);
        for (int64 j = 0; j < (int64) k * k; j++)
            XtX[j] -= G[j];
    }
    CHECK_FOR_INTERRUPTS();

    p.factors = k;
    p.regularization = (float) t->o.regularization;
    p.alpha = tm->alpha;
    p.cg_steps = t->o.cg_steps;
    p.threads = ItThreads(t->o.threads);
    scratch = AllocChecked((int64) it_als_scratch_floats(k, p.threads), sizeof(float), "leave-out workspace");
    Y = AllocChecked(tm->nitems * k, sizeof(float), "leave-out item vectors");
    memcpy(Y, tm->Y, sizeof(float) * tm->nitems * k);
    while (begin < Rt.nrows)
    {
        double      work = 0.0;
        int64       end = begin;

        /* whole blocks, about IT_FOLD_CHUNK_FLOPS per thread */
        while (end < Rt.nrows && work < IT_FOLD_CHUNK_FLOPS * p.threads)
        {
            int64       stop = Min(Rt.nrows, (end / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK);

            work += 2.0 * k * k * (p.cg_steps + 1) * (stop - end) +
                2.0 * k * (2 * p.cg_steps + 2) * (Rt.indptr[stop] - Rt.indptr[end]);
            end = stop;
        }
        CHECK_FOR_INTERRUPTS();
        it_als_half_step(&Rt, tm->X, XtX, Y, &p, begin, end, scratch);
        begin = end;
    }
    for (int64 j = 0; j < tm->nitems * k; j++)
        if (!isfinite(Y[j]))
            elog(ERROR, "the leave-out item vectors are not finite");
    it_gram(Y, tm->nitems, k, YtY);

    pfree(out);
    pfree(Rt.indptr);
    pfree(Rt.indices);
    pfree(Rt.data);
    pfree(Xs);
    pfree(G);
    pfree(XtX);
    pfree(scratch);
    return Y;
}

/*
 * Chooses the fold-in weight of a prior by simulation on the first users
 * of rows[0..nrows) (rows of R, in this order) that have enough
 * positives, whose prior is priors + i * k (shared: priors for all).
 * Leaves out->measured false when too few users qualify.
 */
static void
ChooseFoldInWeight(ItTransferTrain *t, const int64 *rows, int64 nrows,
                   const float *priors, bool shared, FoldInChoice *out)
{
    const ItTrainedModel *tm = t->tm;
    const ItCsr *R = tm->R;
    int64       m = tm->nitems;
    int         k = tm->k;
    float       min_weight = (float) t->o.min_weight;
    instr_time  start;
    double      trace = 0.0;
    double      scale;
    double      cap_d;
    int64       cap;
    int64       group;
    int64       maxlen = 0;
    int64       nsel = 0;
    int64      *sel;            /* indexes into rows of the simulated users */
    int64      *selrows;
    float      *Y;
    float      *YtY;
    size_t      wsf;
    float      *ws;
    RevealEntry *ent;
    int32      *rev;
    float      *revw;
    int32      *pos;
    int32       hits[lengthof(FoldInGrid)];
    int64       hitsum[IT_FOLD_NREVEAL][lengthof(FoldInGrid)];
    uint64      salt = Mix64(t->o.seed ^ UINT64CONST(0x666f6c642d696e));

    memset(out, 0, sizeof(*out));
    memset(hitsum, 0, sizeof(hitsum));
    INSTR_TIME_SET_CURRENT(start);
    if (m < 1 || nrows < 1)
        return;

    /* the grid, in units of the mean of diag(Y'Y) of the trained items */
    YtY = AllocChecked((int64) k * k, sizeof(float), "fold-in gram matrix");
    it_gram(tm->Y, m, k, YtY);
    for (int j = 0; j < k; j++)
        trace += YtY[(int64) j * k + j];
    scale = trace / k;
    if (!(scale > 0.0) || !isfinite(scale))
        return;
    for (int g = 0; g < IT_FOLD_NGRID; g++)
    {
        out->lambdas[g] = (float) strtod(psprintf("%.3g", FoldInGrid[g] * scale), NULL);
        if (!(out->lambdas[g] > 0.0f) || !isfinite(out->lambdas[g]))
            return;
    }

    /*
     * The users: the first with enough positives, as many as the work
     * allows, and as IT_FOLD_MAX_GROUPS groups of at most
     * IT_FOLD_LEAVE_OUT of the trained users can hold.
     */
    cap_d = IT_FOLD_WORK / ((double) IT_FOLD_NREVEAL * IT_FOLD_NGRID * (double) m *
                            ((double) k + IT_FOLD_TOPK_COST));
    cap = (int64) Max(Min(cap_d, (double) IT_FOLD_MAX_USERS), (double) IT_FOLD_FLOOR_USERS);
    group = Max((int64) floor(IT_FOLD_LEAVE_OUT * (double) tm->nusers), 1);
    cap = Min(cap, group * IT_FOLD_MAX_GROUPS);
    sel = AllocChecked(Min(cap, nrows), sizeof(int64), "fold-in users");
    selrows = AllocChecked(Min(cap, nrows), sizeof(int64), "fold-in users");
    for (int64 i = 0; i < nrows && nsel < cap; i++)
    {
        int64       npos = 0;

        for (int64 e = R->indptr[rows[i]]; e < R->indptr[rows[i] + 1]; e++)
            npos += R->data[e] >= min_weight;
        if (npos < FoldInReveal[0] + 1)
            continue;
        sel[nsel] = i;
        selrows[nsel] = rows[i];
        maxlen = Max(maxlen, R->indptr[rows[i] + 1] - R->indptr[rows[i]]);
        nsel++;
    }
    CHECK_FOR_INTERRUPTS();
    if (nsel < IT_FOLD_MIN_USERS)
    {
        out->users[0] = nsel;
        return;
    }

    wsf = it_fold_in_grid_workspace_floats(m, k, IT_FOLD_NGRID, IT_PRIOR_EVAL_K);
    if (wsf == 0)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("too many items to choose the fold-in prior weight: " INT64_FORMAT, m)));
    ws = AllocChecked((int64) wsf, sizeof(float), "fold-in workspace");
    ent = AllocChecked(Max(maxlen, 1), sizeof(RevealEntry), "fold-in rows");
    pos = AllocChecked(Max(maxlen, 1), sizeof(int32), "fold-in rows");
    rev = AllocChecked(FoldInReveal[IT_FOLD_NREVEAL - 1], sizeof(int32), "fold-in rows");
    revw = AllocChecked(FoldInReveal[IT_FOLD_NREVEAL - 1], sizeof(float), "fold-in rows");

    for (int64 g0 = 0; g0 < nsel; g0 += group)
    {
        int64       g1 = Min(nsel, g0 + group);

        Y = LeaveOutItems(t, selrows + g0, g1 - g0, YtY);
        out->groups++;
        for (int64 s = g0; s < g1; s++)
        {
            int64       i = sel[s];
            int64       row = rows[i];
            int64       b = R->indptr[row];
            int64       len = R->indptr[row + 1] - b;
            int64       npos = 0;

            CHECK_FOR_INTERRUPTS();
            for (int64 e = 0; e < len; e++)
                if (R->data[b + e] >= min_weight)
                    pos[npos++] = R->indices[b + e];

            for (int64 e = 0; e < len; e++)
            {
                ent[e].item = R->indices[b + e];
                ent[e].w = R->data[b + e];
                ent[e].key = UnitHash(Mix64(((uint64) row << 32) ^ (uint64) (uint32) ent[e].item ^ salt));
            }
            qsort(ent, len, sizeof(RevealEntry), CompareRevealKey);

            for (int r = 0; r < IT_FOLD_NREVEAL; r++)
            {
                int         nrev = FoldInReveal[r];
                int         rc;

                if (npos < nrev + 1)
                    continue;
                /* the first nrev, in ascending item order */
                for (int a = 0; a < nrev; a++)
                {
                    int         c = a;

                    while (c > 0 && rev[c - 1] > ent[a].item)
                    {
                        rev[c] = rev[c - 1];
                        revw[c] = revw[c - 1];
                        c--;
                    }
                    rev[c] = ent[a].item;
                    revw[c] = ent[a].w;
                }
                rc = it_fold_in_grid_hits(Y, m, k, YtY, tm->alpha, shared ? priors : priors + i * k,
                                          rev, revw, nrev, pos, npos, out->lambdas, IT_FOLD_NGRID,
                                          IT_PRIOR_EVAL_K, ws, hits);
                if (rc != 0)
                    elog(ERROR, "could not fold in a trained user to choose the fold-in prior weight (status %d)", rc);
                if (hits[0] < 0)
                    continue;
                for (int g = 0; g < IT_FOLD_NGRID; g++)
                    hitsum[r][g] += hits[g];
                out->users[r]++;
            }
        }
        pfree(Y);
    }

    /* the criterion: the mean over the simulations with enough users */
    {
        int         ncounted = 0;

        for (int r = 0; r < IT_FOLD_NREVEAL; r++)
        {
            out->counted[r] = out->users[r] >= IT_FOLD_MIN_USERS;
            ncounted += out->counted[r];
            for (int g = 0; g < IT_FOLD_NGRID; g++)
                out->precision[r][g] = out->users[r] > 0 ?
                    (double) hitsum[r][g] / ((double) out->users[r] * IT_PRIOR_EVAL_K) : 0.0;
        }
        out->measured = out->counted[0];
        for (int g = 0; g < IT_FOLD_NGRID; g++)
        {
            out->criterion[g] = 0.0;
            for (int r = 0; r < IT_FOLD_NREVEAL; r++)
                if (out->counted[r])
                    out->criterion[g] += out->precision[r][g] / Max(ncounted, 1);
        }
        /* the best; on ties the larger weight */
        out->best = 0;
        for (int g = 1; g < IT_FOLD_NGRID; g++)
            if (out->criterion[g] >= out->criterion[out->best])
                out->best = g;
    }
    out->seconds = ItElapsedSeconds(start);
    pfree(sel);
    pfree(selrows);
    pfree(YtY);
    pfree(ws);
    pfree(ent);
    pfree(pos);
    pfree(rev);
    pfree(revw);
}

/* The keys of a fold-in choice, each preceded by ", " (fewer when not measured). */
static void
AppendFoldIn(StringInfo buf, const FoldInChoice *f, bool grid)
{
    AppendKeyNumber(buf, "fold_in_users", (double) f->users[0]);
    if (!f->measured)
        return;
    AppendKeyNumber(buf, "fold_in_prior_weight", f->lambdas[f->best]);
    if (!grid)
        return;
    for (int r = 1; r < IT_FOLD_NREVEAL; r++)
        AppendKeyNumber(buf, psprintf("fold_in_users_%d", FoldInReveal[r]), (double) f->users[r]);
    AppendKeyNumber(buf, "fold_in_groups", f->groups);
    AppendKeyNumber(buf, "fold_in_seconds", f->seconds);
    appendStringInfoString(buf, ", \"fold_in_grid\": [");
    for (int g = 0; g < IT_FOLD_NGRID; g++)
    {
        appendStringInfo(buf, "%s{\"prior_weight\": ", g > 0 ? ", " : "");
        AppendRounded(buf, f->lambdas[g]);
        AppendKeyNumber(buf, "precision", f->criterion[g]);
        for (int r = 0; r < IT_FOLD_NREVEAL; r++)
            AppendKeyNumber(buf, psprintf("precision_%d", FoldInReveal[r]),
                            f->users[r] > 0 ? f->precision[r][g] : NAN);
        appendStringInfoChar(buf, '}');
    }
    appendStringInfoChar(buf, ']');
}

/* The NOTICE of a fold-in choice (numbers of the fewest revealed). */
static char *
FoldInMessage(const FoldInChoice *f, const char *prior, const char *users)
{
    return psprintf("fold-in prior weight %g of the %s prior chosen on " INT64_FORMAT " %s "
                    "(precision@%d %.3f with %d revealed; weakest %.3f, strongest %.3f)",
                    (double) f->lambdas[f->best], prior, f->users[0], users, IT_PRIOR_EVAL_K,
                    f->precision[0][f->best], FoldInReveal[0], f->precision[0][0],
                    f->precision[0][IT_FOLD_NGRID - 1]);
}

static void
FitSide(ItTransferTrain *t, PriorSide *s, const SideData *sd)
{
    const PriorOptions *o = &t->o;
    ItEncoded  *enc = s->enc;
    int         dims = enc->dims;
    int         k = sd->k;
    int64       m = sd->m;
    int64       n = 0;
    int64       nun = 0;
    int32      *rowmap;         /* training row -> row of sd->R / sd->F */
    int64      *encrow;         /* training row -> row of enc->X */
    int64      *unmatched;      /* rows of enc->X that were not trained */
    float      *Xm;
    HashedRow  *order;
    int32      *val;
    int32      *trainmap;
    int32      *umap;
    int64       nused;
    int64       nnz_sum = 0;
    double      row_cost;
    int         epochs;
    int64       nval;
    int64       ntrain;
    float      *YtY;
    ItMlpLayout layout;
    ItMlpTrainParams p;
    ItMlpData   data;
    ItMlpEpoch *history;
    ItMlpTrainResult res;
    size_t      wsbytes;
    void       *ws;
    float      *params;
    size_t      nparams;
    int         status = IT_MLP_OK;
    int64       epoch_rows;
    instr_time  start;
    double      seconds;
    int64       neval;
    int64      *valrows;
    float      *Uval;
    double      var_sum = 0.0;
    int64      *pos_ptr;
    int32      *pos_idx;
    int64       npos_total;
    float      *cvec;
    bool        have_const;
    float      *pop;
    double      maxbase = 0.0;
    double      scale = 0.0;
    float       blends[IT_NBLEND];
    int         nblend;
    double      prec[IT_NBLEND];
    double      cprec[IT_NBLEND];
    double      pprec;
    int32      *hits;
    int32      *chits;
    int32      *phits;
    int         cbest = 0;
    double      d_pop;
    double      z_pop;
    double      d_const = NAN;
    double      z_const = NAN;
    bool        beats_pop;
    bool        informative;
    float      *pos_w;
    double     *loss_f;
    double     *loss_c;
    double      d_loss = 0.0;
    double      z_loss = NAN;
    double      d_rel = 0.0;
    double      z_rel = NAN;
    double     *rel_f;
    double     *rel_c;
    double      mean_loss_f = 0.0;
    double      mean_loss_c = 0.0;
    int64       users = 0;
    int64       cusers = 0;
    int64       pusers = 0;
    float      *rws;
    int         best = 0;
    double      p_feat;
    double      p_const = NAN;
    double      prior_variance;

    INSTR_TIME_SET_CURRENT(start);

    /* trained rows that have features (both id lists are ascending) */
    rowmap = AllocChecked(enc->n, sizeof(int32), "features prior rows");
    encrow = AllocChecked(enc->n, sizeof(int64), "features prior rows");
    unmatched = AllocChecked(enc->n, sizeof(int64), "features prior rows");
    {
        int64       i = 0;

        for (int64 r = 0; r < enc->n; r++)
        {
            while (i < sd->nrows && sd->ids[i] < enc->ids[r])
                i++;
            if (i < sd->nrows && sd->ids[i] == enc->ids[r])
            {
                rowmap[n] = (int32) i;
                encrow[n] = r;
                n++;
            }
            else
                unmatched[nun++] = r;
        }
    }

    if (n < IT_PRIOR_MIN_ROWS)
    {
        char       *reason = psprintf("only " INT64_FORMAT " trained %s have a row in %s; at least %d are needed",
                                      n, s->rows_name, s->what, IT_PRIOR_MIN_ROWS);

        SideNotice(s, NULL,
                   psprintf("%s: the %s features model is not trained, and %s get %s",
                            reason, s->side, s->new_rows,
                            strcmp(s->side, "user") == 0 ? "popular items" : "no vector"));
        SkippedMetrics(s, reason, enc->n, sd->nrows, n, nun);
        s->use_features = false;
        return;
    }

    /* a random order of the rows: by a hash of id and seed */
    order = AllocChecked(n, sizeof(HashedRow), "features prior rows");
    for (int64 r = 0; r < n; r++)
    {
        order[r].h = Mix64((uint64) enc->ids[encrow[r]] ^ Mix64(o->seed ^ (s->side[0] == 'u' ? 0x75 : 0x69)));
        order[r].row = (int32) r;
        nnz_sum += sd->R->indptr[rowmap[r] + 1] - sd->R->indptr[rowmap[r]];
    }
    qsort(order, n, sizeof(HashedRow), CompareHashedRows);

    /* the first are the validation rows, the next the training rows */
    nval = (int64) floor(o->validation * (double) n);
    nval = Max(1, Min(Min(nval, n - 1), IT_PRIOR_MAX_VAL_ROWS));
    ntrain = n - nval;

    /*
     * The work budget (see IT_PRIOR_WORK_FLOOR): the epochs it allows,
     * and when that is fewer than IT_PRIOR_MIN_EPOCHS, a sample of the
     * training rows for which IT_PRIOR_MIN_EPOCHS fit.
     */
    row_cost = (double) nnz_sum / n * k * IT_PRIOR_NNZ_COST +
        (o->hidden > 0 ? (double) dims * o->hidden + (double) o->hidden * k : (double) dims * k) +
        (double) k * k;
    epochs = (int) Min((double) o->epochs,
                       floor(t->budget / (row_cost * ((double) ntrain + nval / 3.0))));
    if (epochs < IT_PRIOR_MIN_EPOCHS)
    {
        double      fit = t->budget / (row_cost * IT_PRIOR_MIN_EPOCHS) - nval / 3.0;

        epochs = Min(o->epochs, IT_PRIOR_MIN_EPOCHS);
        ntrain = (int64) Min((double) ntrain, Max(fit, (double) IT_PRIOR_MIN_ROWS));
    }

    /* their features and rows of R, contiguous, validation rows first */
    nused = nval + ntrain;
    Xm = AllocChecked(nused * dims, sizeof(float), "features prior inputs");
    umap = AllocChecked(nused, sizeof(int32), "features prior rows");
    for (int64 i = 0; i < nused; i++)
    {
        int32       r = order[i].row;

        memcpy(Xm + i * dims, enc->X + encrow[r] * dims, sizeof(float) * dims);
        umap[i] = rowmap[r];
    }
    rowmap = umap;
    val = AllocChecked(nval, sizeof(int32), "features prior rows");
    for (int64 i = 0; i < nval; i++)
        val[i] = (int32) i;
    trainmap = umap + nval;
    CHECK_FOR_INTERRUPTS();

    YtY = AllocChecked((int64) k * k, sizeof(float), "features prior gram matrix");
    it_gram(sd->Y, m, k, YtY);
    CHECK_FOR_INTERRUPTS();

    SideLayout(s, o, k, &layout);
    if (it_mlp_check_layout(&layout) != IT_MLP_OK)
        elog(ERROR, "invalid features model layout");
    nparams = it_mlp_param_count(&layout);

    it_mlp_default_params(&p);
    p.lr = (float) o->learning_rate;
    p.weight_decay = (float) o->weight_decay;
    p.epochs = epochs;
    p.batch = o->batch;
    p.patience = o->patience;
    p.seed = o->seed;
    p.val_fraction = (float) o->validation;
    p.vector_weight = (float) o->vector_weight;
    p.loss = IT_MLP_LOSS_ALS;
    p.alpha = sd->alpha;
    p.init_output_bias = 1;
    p.stop = IT_MLP_STOP_LOSS;
    p.pos_min_weight = (float) o->min_weight;
    p.eval_k = IT_PRIOR_EVAL_K;
    epoch_rows = (int64) (IT_PRIOR_EPOCH_EVAL_WORK / ((double) m * k));
    if (epoch_rows < 50)
        p.eval_k = 0;           /* no per-epoch precision */
    else
        p.eval_max_rows = (int) Min(epoch_rows, 2000);
    p.should_stop = PriorCheckInterrupts;
    p.should_stop_arg = NULL;

    memset(&data, 0, sizeof(data));
    data.n = nused;
    data.X = Xm;
    data.row_map = rowmap;
    data.targets = sd->F;      /* through row_map, like the rows of R */
    data.indptr = sd->R->indptr;
    data.indices = sd->R->indices;
    data.weights = sd->R->data;
    data.Y = sd->Y;
    data.YtY = YtY;
    data.m = m;
    data.val_rows = val;
    data.nval = nval;
    data.baseline = sd->base;

    wsbytes = it_mlp_train_workspace_size(&layout, &p, nused, m);
    if (wsbytes == 0 || wsbytes > MaxAllocHugeSize)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("the features model of %s needs too much memory to train", s->what),
                 errhint("Use a smaller prior_batch or prior_hidden, or fewer feature columns.")));
    ws = MemoryContextAllocHuge(CurrentMemoryContext, wsbytes);
    params = AllocChecked((int64) nparams, sizeof(float), "features model");
    history = AllocChecked(epochs, sizeof(ItMlpEpoch), "features model history");
    memset(&res, 0, sizeof(res));

    CHECK_FOR_INTERRUPTS();
    it_mlp_init(params, &layout, o->seed);
    status = it_mlp_train(params, &layout, &data, &p, ws, history, &res);
    if (status == IT_MLP_EINVAL)
        elog(ERROR, "could not train the features model of %s: invalid arguments", s->what);
    pfree(ws);
    seconds = ItElapsedSeconds(start);

    {
        StringInfoData lj;

        initStringInfo(&lj);
        appendStringInfo(&lj, "{\"input\": %d, \"hidden\": [", layout.input);
        for (int l = 0; l < layout.nhidden; l++)
            appendStringInfo(&lj, "%s%d", l > 0 ? ", " : "", layout.hidden[l]);
        appendStringInfo(&lj, "], \"output\": %d}", layout.output);
        s->layout_json = JsonbFromText(lj.data);
    }

    if (status == IT_MLP_ENONFINITE)
    {
        char       *reason = psprintf("the loss of the %s features model became infinite or NaN", s->side);

        SideNotice(s, "Use a smaller prior_learning_rate, or scale the weights down.",
                   psprintf("%s; %s get %s", reason, s->new_rows,
                            strcmp(s->side, "user") == 0 ? "popular items" : "no vector"));
        SkippedMetrics(s, reason, enc->n, sd->nrows, n, nun);
        s->use_features = false;
        return;
    }
    for (size_t j = 0; j < nparams; j++)
        if (!isfinite(params[j]))
            elog(ERROR, "the features model of %s has a parameter that is not finite", s->what);
    s->params = params;
    s->nparams = (int64) nparams;
    CHECK_FOR_INTERRUPTS();

    /*
     * The check: the features prior, the best constant vector and the
     * baseline on the validation rows (at most a bounded amount of work),
     * against the positives of each row.
     */
    neval = (int64) (IT_PRIOR_EVAL_WORK / ((double) m * (k + IT_NBLEND)));
    neval = Min(nval, Max(neval, IT_PRIOR_EVAL_MIN_ROWS));
    valrows = AllocChecked(nval, sizeof(int64), "features prior rows");
    for (int64 i = 0; i < nval; i++)
        valrows[i] = val[i];   /* rows of Xm */
    Uval = AllocChecked(nval * k, sizeof(float), "features prior vectors");
    ForwardRows(params, &layout, Xm, valrows, nval, Uval);

    /* mean squared deviation of the trained vectors from the prior */
    for (int64 i = 0; i < nval; i++)
    {
        const float *f = sd->F + (int64) rowmap[val[i]] * k;
        const float *u = Uval + i * k;

        for (int j = 0; j < k; j++)
        {
            double      dlt = (double) f[j] - (double) u[j];

            var_sum += dlt * dlt;
        }
    }
    prior_variance = var_sum / ((double) nval * k);

    /* the positives of the validation rows (the first neval are ranked) */
    pos_ptr = AllocChecked(nval + 1, sizeof(int64), "validation positives");
    npos_total = 0;
    for (int64 i = 0; i < nval; i++)
    {
        int32       row = rowmap[val[i]];

        for (int64 e = sd->R->indptr[row]; e < sd->R->indptr[row + 1]; e++)
            if (sd->R->data[e] >= (float) o->min_weight)
                npos_total++;
    }
    pos_idx = AllocChecked(Max(npos_total, 1), sizeof(int32), "validation positives");
    pos_w = AllocChecked(Max(npos_total, 1), sizeof(float), "validation positives");
    npos_total = 0;
    pos_ptr[0] = 0;
    for (int64 i = 0; i < nval; i++)
    {
        int32       row = rowmap[val[i]];

        for (int64 e = sd->R->indptr[row]; e < sd->R->indptr[row + 1]; e++)
        {
            if (sd->R->data[e] >= (float) o->min_weight)
            {
                pos_idx[npos_total] = sd->R->indices[e];
                pos_w[npos_total] = sd->R->data[e];
                npos_total++;
            }
        }
        pos_ptr[i + 1] = npos_total;
    }

    /* the best constant vector on the training rows */
    cvec = AllocChecked(k, sizeof(float), "features prior");
    {
        ItMlpData   d2 = data;
        size_t      cwsf = it_mlp_population_workspace_floats(k, m);
        float      *cws = AllocChecked((int64) Max(cwsf, 1), sizeof(float), "features prior workspace");

        d2.n = ntrain;
        d2.row_map = trainmap;
        d2.val_rows = NULL;
        d2.nval = 0;
        have_const = cwsf > 0 && it_mlp_population_vector(&d2, &p, k, cvec, cws) == IT_MLP_OK;
        pfree(cws);
    }

    /* the loss of each validation row, with and without features */
    loss_f = AllocChecked(nval, sizeof(double), "validation losses");
    loss_c = AllocChecked(nval, sizeof(double), "validation losses");
    rel_f = AllocChecked(nval, sizeof(double), "validation losses");
    rel_c = AllocChecked(nval, sizeof(double), "validation losses");
    {
        float      *lws = AllocChecked(k, sizeof(float), "features prior workspace");

        if (it_als_row_losses(Uval, 0, nval, k, sd->Y, YtY, pos_ptr, pos_idx, pos_w,
                              sd->alpha, (float) o->min_weight, lws, loss_f) != 0 ||
            (have_const &&
             it_als_row_losses(cvec, 1, nval, k, sd->Y, YtY, pos_ptr, pos_idx, pos_w,
                               sd->alpha, (float) o->min_weight, lws, loss_c) != 0))
            elog(ERROR, "could not compute the validation losses of %s", s->what);
        pfree(lws);
    }
    if (have_const)
    {
        MeanDifference(loss_c, loss_f, nval, &d_loss, &z_loss);

        /*
         * Reported only: each row's difference relative to its own scale
         * (the loss of the zero vector, the sum of c over its positives).
         * It is not the test: on the item side the features model
         * predicts a tail item's few users with vectors that are costly
         * relative to its tiny scale, though it ranks them far better
         * than the constant does (100k users, 20k items: -45 standard
         * errors relative, precision@10 3x the constant's).
         */
        for (int64 i = 0; i < nval; i++)
        {
            double      zc = 0.0;

            for (int64 e = pos_ptr[i]; e < pos_ptr[i + 1]; e++)
                zc += 1.0 + sd->alpha * pos_w[e];
            rel_c[i] = zc > 0 ? loss_c[i] / zc : 0.0;
            rel_f[i] = zc > 0 ? loss_f[i] / zc : 0.0;
        }
        MeanDifference(rel_c, rel_f, nval, &d_rel, &z_rel);
        for (int64 i = 0; i < nval; i++)
        {
            mean_loss_f += loss_f[i] / nval;
            mean_loss_c += loss_c[i] / nval;
        }
    }
    CHECK_FOR_INTERRUPTS();

    /* popularity term: baseline / its maximum */
    pop = AllocChecked(m, sizeof(float), "features prior");
    for (int64 i = 0; i < m; i++)
        maxbase = Max(maxbase, (double) sd->base[i]);
    for (int64 i = 0; i < m; i++)
        pop[i] = maxbase > 0 ? (float) (sd->base[i] / maxbase) : 0.0f;

    /* blends in units of the typical top score: that of the constant vector */
    if (have_const)
    {
        for (int64 i = 0; i < m; i++)
        {
            double      sc = 0.0;

            for (int j = 0; j < k; j++)
                sc += (double) cvec[j] * sd->Y[i * k + j];
            scale = i == 0 ? sc : Max(scale, sc);
        }
    }
    if (!(scale > 0.0) || !isfinite(scale))
        scale = 1.0;
    nblend = sd->blend ? IT_NBLEND : 1;
    for (int j = 0; j < nblend; j++)
        blends[j] = (float) strtod(psprintf("%.3g", BlendGrid[j] * scale), NULL);

    rws = AllocChecked((int64) it_rank_grid_workspace_floats(m, IT_PRIOR_EVAL_K), sizeof(float),
                       "features prior workspace");
    CHECK_FOR_INTERRUPTS();
    hits = AllocChecked(neval * nblend, sizeof(int32), "validation hits");
    chits = AllocChecked(neval * nblend, sizeof(int32), "validation hits");
    phits = AllocChecked(neval, sizeof(int32), "validation hits");
    if (it_rank_grid_precision(Uval, 0, neval, k, sd->Y, m, pop, blends, nblend,
                               pos_ptr, pos_idx, IT_PRIOR_EVAL_K, rws, prec, &users, hits) != 0)
        elog(ERROR, "could not rank the validation rows of %s", s->what);
    CHECK_FOR_INTERRUPTS();
    if (have_const &&
        it_rank_grid_precision(cvec, 1, neval, k, sd->Y, m, pop, blends, nblend,
                               pos_ptr, pos_idx, IT_PRIOR_EVAL_K, rws, cprec, &cusers, chits) != 0)
        elog(ERROR, "could not rank the validation rows of %s", s->what);
    {
        float       one = 1.0f;

        if (it_rank_grid_precision(NULL, 0, neval, 0, NULL, m, pop, &one, 1,
                                   pos_ptr, pos_idx, IT_PRIOR_EVAL_K, rws, &pprec, &pusers, phits) != 0)
            elog(ERROR, "could not rank the validation rows of %s", s->what);
    }
    CHECK_FOR_INTERRUPTS();

    /* the blend: the best of the grid, the smallest on ties */
    for (int j = 1; j < nblend; j++)
    {
        if (prec[j] > prec[best])
            best = j;
        if (have_const && cprec[j] > cprec[cbest])
            cbest = j;
    }
    p_feat = prec[best];
    PairedDifference(hits, nblend, best, phits, 1, 0, neval, &d_pop, &z_pop);
    if (have_const)
    {
        p_const = cprec[cbest];
        PairedDifference(hits, nblend, best, chits, nblend, cbest, neval, &d_const, &z_const);
    }

    /*
     * The features are used when the served ranking beats the baseline's
     * precision (strictly), and their loss on the validation rows is
     * significantly below that of the model without features: precision
     * alone, chosen among blends on a few hundred rows, lets noise through.
     */
    beats_pop = users > 0 && p_feat > pprec;
    informative = !have_const || z_loss >= IT_PRIOR_MIN_Z;
    s->use_features = beats_pop && informative;
    s->popularity_blend = s->use_features ? blends[best] : 0.0;

    if (users == 0)
        SideNotice(s, "Lower prior_min_weight, or train on more data.",
                   psprintf("%s features could not be checked: none of the " INT64_FORMAT " validation %s has a positive; %s get %s",
                            s->side, nval, s->rows_name, s->new_rows,
                            strcmp(s->side, "user") == 0 ? "popular items" : "no vector"));
    else if (!beats_pop)
        SideNotice(s, NULL,
                   psprintf("%s features did not beat %s on " INT64_FORMAT " validation %s (precision@%d %.3f vs %.3f); %s",
                            s->side, sd->base_name, users, s->rows_name, IT_PRIOR_EVAL_K, p_feat, pprec,
                            strcmp(s->side, "user") == 0 ? "new users will get popular items" :
                            "items only in item_features get no vector"));
    else if (!informative)
        SideNotice(s, NULL,
                   psprintf("%s features did not beat the same model without features on " INT64_FORMAT " validation %s "
                            "(loss %.4g vs %.4g per row: %.1f standard errors of improvement, %.1f needed; "
                            "precision@%d %.3f vs %.3f for %s); %s",
                            s->side, nval, s->rows_name, mean_loss_f, mean_loss_c, z_loss, IT_PRIOR_MIN_Z,
                            IT_PRIOR_EVAL_K, p_feat, pprec, sd->base_name,
                            strcmp(s->side, "user") == 0 ? "new users will get popular items" :
                            "items only in item_features get no vector"));
    else
        SideNotice(s, NULL,
                   psprintf("%s features model: precision@%d %.3f on " INT64_FORMAT " validation %s, %s %.3f, without features %.3f%s (%d epochs, %.1f s%s)",
                            s->side, IT_PRIOR_EVAL_K, p_feat, users, s->rows_name, sd->base_name, pprec,
                            p_const, sd->blend ? psprintf(", popularity_blend %.3g", s->popularity_blend) : "",
                            res.epochs_run, seconds,
                            ntrain < n - nval ? psprintf("; trained on a sample of " INT64_FORMAT " of " INT64_FORMAT " %s",
                                                         ntrain, n - nval, s->rows_name) : ""));

    if (strcmp(s->side, "item") == 0)
        NewItems(t, s, &layout, unmatched, nun);

    /* the fold-in weight of the features prior, on the validation users */
    if (strcmp(s->side, "user") == 0 && s->use_features)
    {
        int64      *frows = AllocChecked(nval, sizeof(int64), "validation rows");

        for (int64 i = 0; i < nval; i++)
            frows[i] = rowmap[val[i]];
        ChooseFoldInWeight(t, frows, nval, Uval, false, &s->fold);
        if (s->fold.measured)
            SideNotice(s, NULL, FoldInMessage(&s->fold, "features", "validation users"));
        pfree(frows);
        CHECK_FOR_INTERRUPTS();
    }

    /* metrics of the it_encoder row */
    appendStringInfo(&s->metrics, "{\"use_features\": %s, \"popularity_blend\": ", BoolText(s->use_features));
    AppendRounded(&s->metrics, s->popularity_blend);
    AppendKeyNumber(&s->metrics, "prior_variance", prior_variance);
    appendStringInfo(&s->metrics, ", \"k\": %d, \"baseline\": ", IT_PRIOR_EVAL_K);
    escape_json(&s->metrics, sd->base_name);
    AppendKeyNumber(&s->metrics, "precision", p_feat);
    AppendKeyNumber(&s->metrics, "precision_unblended", prec[0]);
    AppendKeyNumber(&s->metrics, "baseline_precision", pprec);
    AppendKeyNumber(&s->metrics, "no_features_precision", p_const);
    AppendKeyNumber(&s->metrics, "validation_loss", mean_loss_f);
    AppendKeyNumber(&s->metrics, "no_features_validation_loss", have_const ? mean_loss_c : NAN);
    AppendKeyNumber(&s->metrics, "loss_z", z_loss);
    AppendKeyNumber(&s->metrics, "loss_z_relative", z_rel);
    AppendKeyNumber(&s->metrics, "precision_z_vs_baseline", z_pop);
    AppendKeyNumber(&s->metrics, "precision_z_vs_no_features", z_const);
    AppendKeyNumber(&s->metrics, "rows_with_features", (double) enc->n);
    AppendKeyNumber(&s->metrics, "rows_trained", (double) sd->nrows);
    AppendKeyNumber(&s->metrics, "rows_used", (double) n);
    AppendKeyNumber(&s->metrics, "rows_not_trained", (double) nun);
    AppendKeyNumber(&s->metrics, "validation_rows", (double) nval);
    AppendKeyNumber(&s->metrics, "evaluated_rows", (double) users);
    AppendKeyNumber(&s->metrics, "min_weight", o->min_weight);
    AppendKeyNumber(&s->metrics, "epochs_run", res.epochs_run);
    AppendKeyNumber(&s->metrics, "epochs_allowed", epochs);
    AppendKeyNumber(&s->metrics, "training_rows", (double) ntrain);
    AppendKeyNumber(&s->metrics, "best_epoch", res.best_epoch + 1);
    AppendKeyNumber(&s->metrics, "best_val_loss", res.best_val_loss);
    AppendKeyNumber(&s->metrics, "seconds", seconds);
    if (strcmp(s->side, "item") == 0)
        AppendKeyNumber(&s->metrics, "new_items", (double) s->nnew);
    if (strcmp(s->side, "user") == 0 && s->use_features)
        AppendFoldIn(&s->metrics, &s->fold, true);
    appendStringInfoString(&s->metrics, ", \"blend_grid\": [");
    for (int j = 0; j < nblend; j++)
    {
        appendStringInfo(&s->metrics, "%s{\"blend\": ", j > 0 ? ", " : "");
        AppendRounded(&s->metrics, blends[j]);
        AppendKeyNumber(&s->metrics, "precision", prec[j]);
        AppendKeyNumber(&s->metrics, "no_features_precision", have_const ? cprec[j] : NAN);
        appendStringInfoChar(&s->metrics, '}');
    }
    appendStringInfoString(&s->metrics, "], \"history\": [");
    for (int e = 0; e < res.epochs_run; e++)
    {
        appendStringInfo(&s->metrics, "%s{\"epoch\": %d", e > 0 ? ", " : "", e + 1);
        AppendKeyNumber(&s->metrics, "train_loss", history[e].train_loss);
        AppendKeyNumber(&s->metrics, "val_loss", history[e].val_loss);
        AppendKeyNumber(&s->metrics, "val_precision", history[e].val_precision);
        appendStringInfoChar(&s->metrics, '}');
    }
    appendStringInfo(&s->metrics, "], \"notices\": [%s]}", s->notices.data);

    /* and the summary for it_model.metrics */
    appendStringInfo(&s->summary, "{\"use_features\": %s, \"popularity_blend\": ", BoolText(s->use_features));
    AppendRounded(&s->summary, s->popularity_blend);
    AppendKeyNumber(&s->summary, "precision", p_feat);
    AppendKeyNumber(&s->summary, "baseline_precision", pprec);
    AppendKeyNumber(&s->summary, "no_features_precision", p_const);
    AppendKeyNumber(&s->summary, "evaluated_rows", (double) users);
    AppendKeyNumber(&s->summary, "seconds", seconds);
    if (strcmp(s->side, "item") == 0)
        AppendKeyNumber(&s->summary, "new_items", (double) s->nnew);
    if (strcmp(s->side, "user") == 0 && s->use_features)
        AppendFoldIn(&s->summary, &s->fold, false);
    appendStringInfoChar(&s->summary, '}');

    pfree(Xm);
    pfree(Uval);
    pfree(rws);
    pfree(YtY);
}

void
ItTransferFit(ItTransferTrain *t, const ItTrainedModel *tm)
{
    MemoryContext old;

    if (t == NULL)
        return;
    if (tm->k != t->k)
        elog(ERROR, "trained model has %d factors, options say %d", tm->k, t->k);
    old = MemoryContextSwitchTo(t->cxt);
    t->tm = tm;

    /* the budget of each side: a share of the ALS work, with a floor */
    {
        double      k = tm->k;
        double      cg = t->o.cg_steps;
        double      als = (double) t->o.iterations *
            (((double) tm->nusers + tm->nitems) * k * k * (cg + 1) +
             2.0 * tm->R->nnz * k * (2 * cg + 2));

        t->budget = t->o.budget * Max(IT_PRIOR_WORK_FLOOR, IT_PRIOR_WORK_SHARE * als);
    }

    if (t->user.enc != NULL)
    {
        SideData    sd;
        float      *pop = AllocChecked(tm->nitems, sizeof(float), "item popularity");

        /* popularity: distinct users of each item, as stored with the items */
        for (int64 i = 0; i < tm->nitems; i++)
            pop[i] = (float) (tm->Rt->indptr[i + 1] - tm->Rt->indptr[i]);
        memset(&sd, 0, sizeof(sd));
        sd.ids = tm->user_ids;
        sd.nrows = tm->nusers;
        sd.R = tm->R;
        sd.F = tm->X;
        sd.Y = tm->Y;
        sd.m = tm->nitems;
        sd.base = pop;
        sd.base_name = "popularity";
        sd.blend = true;
        sd.alpha = tm->alpha;
        sd.k = tm->k;
        FitSide(t, &t->user, &sd);
        pfree(pop);
        CHECK_FOR_INTERRUPTS();
    }
    if (t->item.enc != NULL)
    {
        SideData    sd;
        float      *act = AllocChecked(tm->nusers, sizeof(float), "user activity");

        /* activity: distinct items of each user */
        for (int64 u = 0; u < tm->nusers; u++)
            act[u] = (float) (tm->R->indptr[u + 1] - tm->R->indptr[u]);
        memset(&sd, 0, sizeof(sd));
        sd.ids = tm->item_ids;
        sd.nrows = tm->nitems;
        sd.R = tm->Rt;
        sd.F = tm->Y;
        sd.Y = tm->X;
        sd.m = tm->nusers;
        sd.base = act;
        sd.base_name = "user activity";
        sd.blend = false;       /* new items are ranked among the others by x.y */
        sd.alpha = tm->alpha;
        sd.k = tm->k;
        FitSide(t, &t->item, &sd);
        pfree(act);
        CHECK_FOR_INTERRUPTS();
    }

    /*
     * The fold-in weight of the population prior, which serves new users
     * without a features prior: the mean of the trained users' vectors,
     * summed as train() sums the it_model.user_mean it stores.  Simulated
     * on trained users in the order of a seeded hash of their ids.
     */
    if (tm->nusers > 0 && tm->nitems > 0)
    {
        int         k = tm->k;
        double     *sum = AllocChecked(k, sizeof(double), "population prior");
        float      *mean = AllocChecked(k, sizeof(float), "population prior");
        HashedRow  *order = AllocChecked(tm->nusers, sizeof(HashedRow), "fold-in users");
        int64      *rows;
        int64       n = 0;
        uint64      salt = Mix64(t->o.seed ^ UINT64CONST(0x706f70));

        memset(sum, 0, sizeof(double) * k);
        for (int64 u = 0; u < tm->nusers; u++)
            for (int j = 0; j < k; j++)
                sum[j] += tm->X[u * k + j];
        for (int j = 0; j < k; j++)
            mean[j] = (float) (sum[j] / tm->nusers);

        /* users with more interactions than the fewest revealed */
        for (int64 u = 0; u < tm->nusers; u++)
        {
            if (tm->R->indptr[u + 1] - tm->R->indptr[u] <= FoldInReveal[0])
                continue;
            order[n].h = Mix64((uint64) tm->user_ids[u] ^ salt);
            order[n].row = (int32) u;
            n++;
        }
        qsort(order, n, sizeof(HashedRow), CompareHashedRows);
        rows = AllocChecked(Max(n, 1), sizeof(int64), "fold-in users");
        for (int64 i = 0; i < n; i++)
            rows[i] = order[i].row;
        CHECK_FOR_INTERRUPTS();

        ChooseFoldInWeight(t, rows, n, mean, true, &t->pop_fold);
        if (t->pop_fold.measured)
            ereport(NOTICE,
                    (errmsg("%s", FoldInMessage(&t->pop_fold, "population", "trained users"))));
        pfree(sum);
        pfree(mean);
        pfree(order);
        pfree(rows);
        CHECK_FOR_INTERRUPTS();
    }
    t->tm = NULL;
    MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

static Datum
Int8ArrayDatum(const int64 *v, int64 n)
{
    Datum      *d = palloc(sizeof(Datum) * Max(n, 1));
    ArrayType  *a;

    for (int64 i = 0; i < n; i++)
        d[i] = Int64GetDatum(v[i]);
    a = construct_array(d, (int) n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
    pfree(d);
    return PointerGetDatum(a);
}

static void
WriteNewItems(ItTransferTrain *t, const char *model, int version)
{
    PriorSide  *s = &t->item;
    Oid         argtypes[5] = {TEXTOID, INT4OID, INT8ARRAYOID, FLOAT4ARRAYOID, INT4OID};
    Datum       values[5];
    SPIPlanPtr  plan;
    int64       maxrows = Min(IT_PRIOR_WRITE_ROWS, Max(1, IT_PRIOR_WRITE_VALUES / t->k));

    plan = SPI_prepare(psprintf("INSERT INTO %s (model, version, item_id, factors, popularity, source) "
                                "SELECT $1, $2, $3[i], $4[(i - 1) * $5 + 1 : i * $5], 0, 'features' "
                                "FROM generate_series(1, cardinality($3)) AS i",
                                ItTable("it_item_factors")),
                       5, argtypes);
    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[4] = Int32GetDatum(t->k);
    for (int64 begin = 0; begin < s->nnew; begin += maxrows)
    {
        int64       nb = Min(maxrows, s->nnew - begin);
        int         ret;

        CHECK_FOR_INTERRUPTS();
        values[2] = Int8ArrayDatum(s->new_ids + begin, nb);
        values[3] = ItFloatArrayDatum(s->new_factors + begin * t->k, (int) (nb * t->k));
        ret = SPI_execute_plan(plan, values, NULL, false, 0);
        if (ret != SPI_OK_INSERT || SPI_processed != (uint64) nb)
            elog(ERROR, "could not write the new items: %s", SPI_result_code_string(ret));
        pfree(DatumGetPointer(values[2]));
        pfree(DatumGetPointer(values[3]));
    }
    SPI_freeplan(plan);
}

void
ItTransferWrite(ItTransferTrain *t, const char *model, int version)
{
    MemoryContext old;
    PriorSide  *sides[2];
    StringInfoData summary;
    Oid         argtypes[3] = {TEXTOID, INT4OID, JSONBOID};
    Datum       values[3];
    int         ret;
    bool        first = true;

    if (t == NULL)
        return;
    old = MemoryContextSwitchTo(t->cxt);
    sides[0] = &t->user;
    sides[1] = &t->item;
    initStringInfo(&summary);
    appendStringInfoChar(&summary, '{');
    for (int i = 0; i < 2; i++)
    {
        PriorSide  *s = sides[i];

        if (s->enc == NULL)
            continue;
        if (s->metrics.len == 0)
            elog(ERROR, "features model of %s was not fitted", s->what);
        ItEncoderStore(model, version, s->side, s->enc->spec, s->enc->dims,
                       s->params, s->params ? s->nparams : 0, s->layout_json,
                       JsonbFromText(s->metrics.data));
        appendStringInfo(&summary, "%s\"%s_prior\": %s", first ? "" : ", ", s->side, s->summary.data);
        first = false;
        CHECK_FOR_INTERRUPTS();
    }
    /* the fold-in weight of the population prior: fold_in_prior_weight, ... */
    {
        StringInfoData fold;

        initStringInfo(&fold);
        AppendFoldIn(&fold, &t->pop_fold, true);
        /* each key comes after ", " */
        appendStringInfoString(&summary, first ? fold.data + 2 : fold.data);
    }
    appendStringInfoChar(&summary, '}');
    if (t->item.nnew > 0)
        WriteNewItems(t, model, version);

    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = JsonbPGetDatum(JsonbFromText(summary.data));
    ret = SPI_execute_with_args(psprintf("UPDATE %s SET metrics = metrics OPERATOR(pg_catalog.||) $3 "
                                         "WHERE model = $1 AND version = $2",
                                         ItTable("it_model")),
                                3, argtypes, values, NULL, false, 0);
    if (ret != SPI_OK_UPDATE || SPI_processed != 1)
        elog(ERROR, "could not store the metrics of the features models of model \"%s\"", model);
    MemoryContextSwitchTo(old);
}

void
ItTransferEnd(ItTransferTrain *t)
{
    if (t != NULL)
        MemoryContextDelete(t->cxt);
}

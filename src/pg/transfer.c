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
 * chosen on the same rows, lets pure noise through one time in a few.
 * When a slice is too small for that test (IT_PRIOR_GATE_ROWS), the side
 * is cross-fitted on further slices and the test pools them.  On
 * the user side the serving ranking is x.y_i + popularity_blend *
 * popularity_i / max popularity; popularity_blend is chosen on the same
 * rows from a small grid, 0 unless it helps.  When the features lose, a
 * NOTICE says so (kept in the metrics as well) and the serving side
 * ignores them.
 *
 * Then the weight lambda0 of fold-in around each prior serving uses is
 * chosen by simulation on trained users (see FoldInGrid): around the
 * features prior on the validation users (it_prior metrics
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
#include "storage/ipc.h"
#include "utils/memutils.h"

#include "foldin_choice.h"
#include "common.h"
#include "spi_read.h"
#include "features_encoder.h"
#include "mlp.h"
#include "rankgrid.h"
#include "options.h"
#include "store.h"
#include "social.h"
#include "source_models.h"
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

/* From this many rows, rankings without blends come from an 8-bit copy
 * (it_rank_grid_precision_q8; RankValidation). */
#define IT_PRIOR_Q8_ROWS        64

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

/*
 * When the budget caps the epochs, the fit also ends once it has
 * converged: when the best validation loss of the last
 * IT_PRIOR_CONVERGE_WINDOW epochs improved by at most IT_PRIOR_CONVERGE_TOL
 * of its improvement since the first epoch.  Measured on 1M interactions,
 * 100k users x 10k items, 64 factors: the items' model (category, price)
 * stops after 15 of the 24 epochs the budget allows, precision@10 0.1416
 * against 0.1418 after 24 (0.141 after 72); the users' model, still
 * improving, runs all of its 7.  A tolerance of 0.05 stopped the items
 * after 9 (0.140) but cost a planted test set 0.10 of precision.  Fits the
 * budget does not cap (small data: MovieLens 100k runs 70 epochs in
 * 0.2 s) keep only prior_patience: there the last epochs are cheap and
 * still move the precision.
 */
#define IT_PRIOR_CONVERGE_WINDOW 3
#define IT_PRIOR_CONVERGE_TOL   0.005

/* Validation rows at most (their loss is computed every epoch). */
#define IT_PRIOR_MAX_VAL_ROWS   5000

/*
 * The gate needs about this many validation rows to tell a small real
 * gain from noise.  With fewer (validation is prior_validation of the
 * rows), the side is cross-fitted: the features model is fitted again
 * with each other slice of that size held out, and the gate pools every
 * slice's rows; serving keeps the model of the first.  On MovieLens 100k
 * (755 users with features, 151 in a slice, positive_threshold 4)
 * demographics beat popularity by 0.386 to 0.375 on one slice, 1.5
 * standard errors, and the loss by 1.8 where 2.5 are needed.
 */
#define IT_PRIOR_GATE_ROWS      1000
#define IT_PRIOR_MAX_SLICES     5

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
 * ones; precision@10 counts their other positives (positive_threshold, as
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
 * On MovieLens 100k (positive_threshold 4), with 3 and 10 ratings of each
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

/*
 * Popularity blends of the fold-in ranking, x.y_i + blend * popularity_i
 * / max popularity, tried with every weight, in units of the prior's
 * typical top score (the mean over the simulated users of their prior's
 * largest x.y_i).  A user with no rows is served popularity (or the
 * features prior, blended); without a blend, the fold-in of a strong
 * prior tends to the prior's own ranking, which for the population mean
 * is not popularity: on MovieLens 100k (positive_threshold 4) it served
 * new users 0.344 after their first 3 ratings where popularity served
 * 0.353.  With the largest blend the ranking is popularity, the revealed
 * rows breaking its ties, so the choice can always stay there.
 */
static const double FoldInBlendGrid[] = {0.0, 0.1, 0.3, 1.0, 3.0, 10.0};

#define IT_FOLD_NREVEAL     ((int) lengthof(FoldInReveal))
#define IT_FOLD_NGRID       ((int) lengthof(FoldInGrid))
#define IT_FOLD_NBLEND      ((int) lengthof(FoldInBlendGrid))
#define IT_FOLD_NENTRIES    (IT_FOLD_NGRID * IT_FOLD_NBLEND)
#define IT_FOLD_MAX_USERS   1000
#define IT_FOLD_FLOOR_USERS 200
#define IT_FOLD_MIN_USERS   30
#define IT_FOLD_WORK        1.5e10
#define IT_FOLD_TOPK_COST   8.0
#define IT_FOLD_LEAVE_OUT   0.1
#define IT_FOLD_MAX_GROUPS  5
#define IT_FOLD_BATCH       8
#define IT_FOLD_BATCH_SCORES 4.0e6

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
    bool        source_user_map;    /* option source_user_map given */
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

StaticAssertDecl(IT_FOLD_NENTRIES <= IT_FOLD_MAX_GRID, "fold-in grid too long");
StaticAssertDecl(IT_FOLD_NREVEAL <= IT_FOLD_MAX_REVEAL, "too many fold-in simulations");

/*
 * The fold-in weight and popularity blend chosen for one prior
 * (ChooseFoldInWeight).  Simulation r reveals FoldInReveal[r]
 * interactions; grid entry e is weight lambdas[e % IT_FOLD_NGRID] with
 * blend blends[e / IT_FOLD_NGRID], so the one-standard-error rule's
 * "largest entry" is the largest blend, then the strongest weight: the
 * ranking nearest to popularity, which is what a new user without a
 * features prior is served before any row.
 */
typedef struct FoldInChoice
{
    ItFoldInChoice c;           /* measured, best, precision, criterion (per entry) */
    int         groups;         /* left out of the item vectors in this many groups */
    float       lambdas[IT_FOLD_NGRID];
    float       blends[IT_FOLD_NBLEND];
    int64       users[IT_FOLD_NREVEAL];    /* users of each simulation */
    double      seconds;
} FoldInChoice;

/* The two sides a features model is trained for. */
typedef enum PriorSideKind
{
    PRIOR_SIDE_USER,
    PRIOR_SIDE_ITEM
} PriorSideKind;

/* What tells the sides apart: names, message parts, the baseline. */
typedef struct PriorSideInfo
{
    PriorSideKind kind;
    const char *side;           /* "user", "item" (it_prior.kind without "_features") */
    const char *what;           /* "user_features", ... (the argument of train) */
    const char *id_column;      /* "user_id", ... */
    const char *rows_name;      /* "users", "items" (trained rows of the side) */
    const char *new_rows;       /* what a side's rows are when new */
    const char *fallback;       /* what new rows get without the features */
    const char *lost;           /* what happens when the features lose */
    const char *base_name;      /* the baseline ranking the check compares with */
    bool        blend;          /* choose a popularity blend */
    uint64      order_salt;     /* of the hash that orders the rows */
} PriorSideInfo;

static const PriorSideInfo UserSide = {
    .kind = PRIOR_SIDE_USER,
    .side = "user",
    .what = "user_features",
    .id_column = "user_id",
    .rows_name = "users",
    .new_rows = "new users",
    .fallback = "popular items",
    .lost = "new users will get popular items",
    .base_name = "popularity",
    .blend = true,
    .order_salt = 0x75,
};

static const PriorSideInfo ItemSide = {
    .kind = PRIOR_SIDE_ITEM,
    .side = "item",
    .what = "item_features",
    .id_column = "item_id",
    .rows_name = "items",
    .new_rows = "new items",
    .fallback = "no vector",
    .lost = "items only in item_features get no vector",
    .base_name = "user activity",
    .blend = false,             /* new items are ranked among the others by x.y */
    .order_salt = 0x69,
};

/*
 * The mapping from the source models' user vectors (option source_models):
 * a user side whose "features" are the user's vectors in the other models
 * (source_models.c), trained, checked against popularity and given a
 * fold-in weight exactly as the user features are, on the users present
 * in both.  The users known only in the sources get their prior from it
 * when this model is trained (MappedUsers), stored with the version.
 */
static const PriorSideInfo SourceSide = {
    .kind = PRIOR_SIDE_USER,
    .side = "source_models",
    .what = "source_models",
    .id_column = "user_id",
    .rows_name = "users",
    .new_rows = "users known only in the source models",
    .fallback = "what a new user gets",
    .lost = "users known only in the source models will get what a new user gets",
    .base_name = "popularity",
    .blend = true,
    .order_salt = 0x73,
};

/*
 * The social prior (train's user_links): a user side whose "features" are
 * the mean of the user's linked users' vectors, how many they are, and the
 * user's encoded features when there are user features (social.c).  It
 * is trained and checked as the user features are, on the trained users
 * with links, in the same hash order of rows (so their validation slices
 * are drawn alike, though over other users: those with links, those with
 * features), and kept only when its validation precision also beats the
 * features prior's.
 * Served to new users from their links at query time (provider_social.c).
 */
static const PriorSideInfo SocialSide = {
    .kind = PRIOR_SIDE_USER,
    .side = "social",
    .what = "user_links",
    .id_column = "user_id",
    .rows_name = "users",
    .new_rows = "new users with links",
    .fallback = "what a new user without links gets",
    .lost = "new users with links will get what a new user without links gets",
    .base_name = "popularity",
    .blend = true,
    .order_salt = 0x75,
};

/* One side. */
typedef struct PriorSide
{
    const PriorSideInfo *info;
    const char *side;           /* info->side and info->what, for the writer */
    const char *what;
    ItEncoded  *enc;            /* NULL when the side has no features */

    /* after ItTransferFit */
    bool        use_features;
    double      popularity_blend;
    double      prior_variance; /* around the prior, per coordinate; 0: not measured */
    Jsonb      *layout_json;    /* NULL when no model was trained */
    float      *params;         /* NULL when none is kept */
    int64       nparams;
    StringInfoData metrics;     /* JSON object text */
    StringInfoData summary;     /* the same, short, for it_model.metrics */
    StringInfoData notices;     /* the NOTICEs given, as JSON strings */
    FoldInChoice fold;          /* user side: fold-in weight of the features prior */

    /* new items (item side), users known only in the source models */
    int64       nnew;
    int64      *new_ids;
    float      *new_factors;    /* nnew * k */
    uint8      *new_present;    /* source side: the sources each is in */
    double      precision;      /* on its validation rows, as the gate measured it */
} PriorSide;

struct ItTransferTrain
{
    MemoryContext cxt;
    PriorOptions o;
    int         k;              /* factors of the trained model */
    double      budget;         /* work budget of each side (multiply-adds) */
    PriorSide   user;
    PriorSide   item;
    PriorSide   source;         /* option source_models */
    ItSourceModels *sm;         /* NULL without it */
    PriorSide   social;         /* train's user_links */
    ItLinks    *links;          /* NULL without them */
    const char *model;
    FoldInChoice pop_fold;      /* fold-in weight of the population prior */
    double      pop_seconds;    /* the time its choice took */
    bool        pop_defer;      /* ItTransferDeferPopulation: run beside the writes */
    struct FoldInJob *pop_job;  /* prepared, not yet finished (pop_defer) */
    float      *pop_mean;       /* its prior, while pop_job lives */
    const ItTrainedModel *tm;   /* during ItTransferFit */
    float      *pop;            /* during ItTransferFit: items' popularity / its maximum */
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
    ItChargeMemory((double) n * (double) size, what);
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

/*
 * A number as the metrics show it (6 significant digits): what serving
 * reads in it_prior's typed columns is what the metrics report.
 */
static double
Rounded(double v)
{
    return isfinite(v) ? strtod(psprintf("%.6g", v), NULL) : 0.0;
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
    AppendNumber(buf, Rounded(v));
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

/* The options of the priors, in the units and types their code uses. */
static void
ReadPriorOptions(const ItOptions *opt, PriorOptions *o)
{
    o->hidden = (int) opt->prior_hidden;
    o->epochs = (int) opt->prior_epochs;
    o->learning_rate = opt->prior_learning_rate;
    o->weight_decay = opt->prior_weight_decay;
    o->batch = (int) opt->prior_batch;
    o->patience = (int) opt->prior_patience;
    o->validation = opt->prior_validation;
    o->min_weight = opt->positive_threshold;
    o->new_items = opt->new_items;
    o->source_user_map = opt->source_user_map != NULL;
    o->seed = (uint64) opt->seed;
    o->factors = (int) opt->factors;
    o->budget = opt->prior_budget;
    o->vector_weight = opt->prior_vector_weight;
    o->iterations = (int) opt->iterations;
    o->cg_steps = (int) opt->cg_steps;
    o->regularization = opt->regularization;
    o->threads = (int) opt->threads;
    ItEncoderOptionsFrom(opt, &o->encoder);

    /* the ranges are checked by ItResolveOptions; this one spans two options */
    if (!(o->learning_rate * o->weight_decay < 1.0))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"prior_learning_rate\" times option \"prior_weight_decay\" must be less than 1, not %g",
                        o->learning_rate * o->weight_decay),
                 errhint("Every step of the features model shrinks its weights by that product; lower one of the two.")));
}

static void
InitSide(PriorSide *s, const PriorSideInfo *info)
{
    memset(s, 0, sizeof(*s));
    s->info = info;
    s->side = info->side;
    s->what = info->what;
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

/* The model of a side must fit in one real[] of its it_prior row. */
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
               const char *item_features, const char *user_links, const ItOptions *options)
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
    InitSide(&t->user, &UserSide);
    InitSide(&t->item, &ItemSide);
    InitSide(&t->source, &SourceSide);
    InitSide(&t->social, &SocialSide);
    t->model = pstrdup(model);

    if (user_features != NULL)
    {
        t->user.enc = ReadFeatures(user_features, UserSide.what, UserSide.id_column, model, &o.encoder);
        CheckModelSize(&t->user, &o, t->k);
        CHECK_FOR_INTERRUPTS();
    }
    if (item_features != NULL)
    {
        t->item.enc = ReadFeatures(item_features, ItemSide.what, ItemSide.id_column, model, &o.encoder);
        CheckModelSize(&t->item, &o, t->k);
        CHECK_FOR_INTERRUPTS();
    }
    if (user_links != NULL)
    {
        t->links = ItReadLinks(user_links, model);
        CHECK_FOR_INTERRUPTS();
    }
    t->sm = ItReadSourceModels(model, options);
    if (t->sm != NULL)
    {
        t->source.enc = t->sm->enc;
        CheckModelSize(&t->source, &o, t->k);
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
    if (s->info->kind == PRIOR_SIDE_ITEM)
        appendStringInfoString(&s->metrics, ", \"new_items\": 0");
    appendStringInfo(&s->metrics, ", \"notices\": [%s]}", s->notices.data);

    appendStringInfoString(&s->summary, "{\"use_features\": false, \"popularity_blend\": 0, \"skipped\": ");
    escape_json(&s->summary, reason);
    if (s->info->kind == PRIOR_SIDE_ITEM)
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
 * Users known only in the source models (rows of the source side not
 * trained here) get their prior from the mapping when it is in use.
 */
static void
MappedUsers(ItTransferTrain *t, PriorSide *s, const ItMlpLayout *layout,
            const int64 *unmatched, int64 nun)
{
    if (nun == 0 || !s->use_features)
        return;
    s->new_ids = AllocChecked(nun, sizeof(int64), "mapped users");
    s->new_present = AllocChecked(nun, sizeof(uint8), "mapped users");
    s->new_factors = AllocChecked(nun * t->k, sizeof(float), "mapped user priors");
    for (int64 i = 0; i < nun; i++)
    {
        s->new_ids[i] = s->enc->ids[unmatched[i]];
        s->new_present[i] = t->sm->present[unmatched[i]];
    }
    ForwardRows(s->params, layout, s->enc->X, unmatched, nun, s->new_factors);
    for (int64 j = 0; j < nun * t->k; j++)
        if (!isfinite(s->new_factors[j]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("the mapping of source_models gave a vector that is not finite"),
                     errhint("Retrain the source models, or train with a larger prior_weight_decay.")));
    s->nnew = nun;
    SideNotice(s, NULL,
               psprintf(INT64_FORMAT " users known only in the source models got a prior from their vectors there",
                        nun));
}

/* ------------------------------------------------------------------------
 * The weight of a fold-in prior (see FoldInGrid)
 * ------------------------------------------------------------------------ */

/* Rows of the leave-out item step between interrupt checks: about this much work. */
#define IT_FOLD_CHUNK_FLOPS 4.0e7

/*
 * The blends of the fold-in grid: FoldInBlendGrid times the mean, over
 * the simulated users sel[0..n) (indexes into the priors), of their
 * prior's largest score against the trained items (1 when that is not
 * positive), to 3 significant digits.  scores: m floats.
 */
static void
FoldInBlends(const float *Y, int64 m, int k, const float *priors, bool shared,
             const int64 *sel, int64 n, float *scores, float *blends)
{
    double      sum = 0.0;
    double      scale;
    int64       nprior = shared ? 1 : n;

    for (int64 s = 0; s < nprior; s++)
    {
        float       top = -FLT_MAX;

        CHECK_FOR_INTERRUPTS();
        it_score_all(Y, m, k, shared ? priors : priors + sel[s] * k, scores);
        for (int64 i = 0; i < m; i++)
            top = Max(top, scores[i]);
        sum += top;
    }
    scale = nprior > 0 ? sum / nprior : 0.0;
    if (!(scale > 0.0 && isfinite(scale)))
        scale = 1.0;
    for (int b = 0; b < IT_FOLD_NBLEND; b++)
        blends[b] = (float) strtod(psprintf("%.3g", FoldInBlendGrid[b] * scale), NULL);
}

/*
 * A prior's simulations in flight: prepared on the calling thread
 * (FoldInPrepare), run there or on a thread of their own (it_fold_in_run,
 * it_fold_in_run_start), finished on the calling thread (FoldInFinish).
 * The simulated users' item vectors are left out of Y a group at a time
 * (it_leave_out_items: one item half-step of ALS with the training's
 * options and CG steps, warm from the trained Y, the users' vectors fixed,
 * on the interactions without theirs): against the trained Y, fold-in
 * from a few of a trained user's items finds the others because Y was
 * fitted to them: on MovieLens 100k the simulated precision of weak
 * priors was 0.1 above what new users then got, and the weight chosen 50
 * times too small.  About one iteration of ALS over the items per group.
 */
typedef struct FoldInJob
{
    ItFoldInRun run;
    ItPopBlend  blend;
    float      *pop_sorted;     /* blend.pop: the popularity, most popular first */
    instr_time  start;
    double      prepare_seconds;
    volatile sig_atomic_t abort;    /* set by the calling thread: stop soon */
} FoldInJob;


/*
 * should_stop of a run on its own thread: reads flags, nothing else (the
 * calling thread raises the interrupt itself, ItTransferFinishPopulation).
 */
static int
FoldInJobStop(void *arg)
{
    const FoldInJob *job = arg;

    return job->abort || QueryCancelPending || ProcDiePending;
}

/*
 * The simulations rank the items renumbered most popular first: a ranking
 * with a popularity blend then reads the first blocks of scores and
 * bounds the rest (it_topk_blend_sorted), instead of reading every score
 * once per blend.  The order, its inverse, the popularity in it and the
 * buffer of the vectors in it into job.
 */
static void
SortByPopularity(const float *pop, int64 m, int k, FoldInJob *job)
{
    ItScoredItem *items = AllocChecked(m, sizeof(ItScoredItem), "item order");
    int32      *order = AllocChecked(m, sizeof(int32), "item order");
    int32      *rank = AllocChecked(m, sizeof(int32), "item order");

    for (int64 i = 0; i < m; i++)
    {
        items[i].score = isfinite(pop[i]) ? pop[i] : 0.0f;
        items[i].idx = (int32) i;
    }
    /* most popular first; ties: the lower item */
    qsort(items, m, sizeof(ItScoredItem), ItCompareScoredItems);
    job->pop_sorted = AllocChecked(m, sizeof(float), "item order");
    for (int64 p = 0; p < m; p++)
    {
        order[p] = items[p].idx;
        rank[items[p].idx] = (int32) p;
        job->pop_sorted[p] = items[p].score;
    }
    pfree(items);
    job->run.order = order;
    job->run.rank = rank;
    job->run.Yp = AllocChecked(m * k, sizeof(float), "fold-in item vectors");
    job->blend.pop = job->pop_sorted;
    job->blend.sorted = 1;
}

/*
 * Prepares the simulations of a prior's fold-in weight on the first users
 * of rows[0..nrows) (rows of R, in this order) that have enough
 * positives, whose prior is priors + i * k (shared: priors for all), into
 * job (every buffer allocated here).  Returns false, with out->users[0]
 * the users found, when too few qualify or nothing can be chosen.
 */
static bool
FoldInPrepare(ItTransferTrain *t, const int64 *rows, int64 nrows,
              const float *priors, bool shared, FoldInJob *job, FoldInChoice *out)
{
    const ItTrainedModel *tm = t->tm;
    const ItCsr *R = tm->R;
    int64       m = tm->nitems;
    int         k = tm->k;
    float       min_weight = (float) t->o.min_weight;
    ItFoldInRun *run = &job->run;
    double      cap_d;
    int64       cap;
    int64       group;
    int64       maxlen = 0;
    int64       nsel;
    int64       removed_min = -1;
    int64      *sel;            /* indexes into rows of the simulated users */
    int64      *selrows;
    const float **spriors;
    size_t      wsf;
    float      *ws;
    int         batch;
    int         nq;
    int         threads = ItThreads(t->o.threads);

    memset(out, 0, sizeof(*out));
    memset(job, 0, sizeof(*job));
    INSTR_TIME_SET_CURRENT(job->start);
    if (m < 1 || nrows < 1)
        return false;

    /* the grid, in units of the mean of diag(Y'Y) of the trained items */
    run->YtY = AllocChecked((int64) k * k, sizeof(float), "fold-in gram matrix");
    if (it_fold_in_lambdas(tm->Y, m, k, FoldInGrid, IT_FOLD_NGRID, run->YtY, out->lambdas) != IT_FOLD_OK)
        return false;

    /*
     * The users: the first with enough positives, as many as the work
     * allows, and as IT_FOLD_MAX_GROUPS groups of at most
     * IT_FOLD_LEAVE_OUT of the trained users can hold.
     */
    cap_d = IT_FOLD_WORK / ((double) IT_FOLD_NREVEAL * (double) m *
                            ((double) IT_FOLD_NGRID * k + (double) IT_FOLD_NENTRIES * IT_FOLD_TOPK_COST));
    cap = (int64) Max(Min(cap_d, (double) IT_FOLD_MAX_USERS), (double) IT_FOLD_FLOOR_USERS);
    group = Max((int64) floor(IT_FOLD_LEAVE_OUT * (double) tm->nusers), 1);
    cap = Min(cap, group * IT_FOLD_MAX_GROUPS);
    sel = AllocChecked(Min(cap, nrows), sizeof(int64), "fold-in users");
    selrows = AllocChecked(Min(cap, nrows), sizeof(int64), "fold-in users");
    nsel = it_fold_in_select_users(R, rows, nrows, min_weight, FoldInReveal[0] + 1, cap,
                                   sel, selrows, &maxlen);
    CHECK_FOR_INTERRUPTS();
    if (nsel < IT_FOLD_MIN_USERS)
    {
        out->users[0] = nsel;
        return false;
    }
    spriors = AllocChecked(nsel, sizeof(float *), "fold-in users");
    for (int64 i = 0; i < nsel; i++)
        spriors[i] = shared ? priors : priors + sel[i] * k;

    wsf = it_fold_in_grid_workspace_floats(m, k, IT_FOLD_NGRID, IT_PRIOR_EVAL_K);
    if (wsf == 0)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("too many items to choose the fold-in prior weight: " INT64_FORMAT, m)));
    ws = AllocChecked((int64) wsf, sizeof(float), "fold-in workspace");
    FoldInBlends(tm->Y, m, k, priors, shared, sel, nsel, ws, out->blends);
    pfree(ws);
    job->blend.blends = out->blends;
    job->blend.nblend = IT_FOLD_NBLEND;
    if (t->pop != NULL)
        SortByPopularity(t->pop, m, k, job);

    /* the leave-out step's buffers, for the group that keeps the most interactions */
    for (int64 g0 = 0; g0 < nsel; g0 += group)
    {
        int64       removed = it_leave_out_removed(R, selrows + g0, Min(nsel, g0 + group) - g0);

        removed_min = removed_min < 0 ? removed : Min(removed_min, removed);
    }
    run->als.factors = k;
    run->als.regularization = (float) t->o.regularization;
    run->als.alpha = tm->alpha;
    run->als.cg_steps = t->o.cg_steps;
    run->als.threads = threads;
    run->als.positive_threshold = (float) t->o.min_weight;
    run->lo.out = AllocChecked(tm->nusers, sizeof(bool), "fold-in users");
    run->lo.indptr = AllocChecked(m + 1, sizeof(int64), "leave-out interactions");
    run->lo.indices = AllocChecked(Max(tm->Rt->nnz - removed_min, 1), sizeof(int32), "leave-out interactions");
    run->lo.data = AllocChecked(Max(tm->Rt->nnz - removed_min, 1), sizeof(float), "leave-out interactions");
    run->lo.Xs = AllocChecked(Min(group, nsel) * k, sizeof(float), "leave-out vectors");
    run->lo.G = AllocChecked((int64) k * k, sizeof(float), "leave-out gram matrix");
    run->lo.XtX = AllocChecked((int64) k * k, sizeof(float), "leave-out gram matrix");
    run->lo.scratch = AllocChecked((int64) it_als_scratch_floats(k, threads), sizeof(float),
                                   "leave-out workspace");
    run->Ylo = AllocChecked(m * k, sizeof(float), "leave-out item vectors");
    run->bmem = AllocChecked((int64) it_gram_basis_doubles(k, FoldInReveal[IT_FOLD_NREVEAL - 1], IT_FOLD_NGRID),
                             sizeof(double), "fold-in basis");

    /*
     * The users are simulated a batch at a time, so that the scores of all
     * their grids are one matrix product; batches hold at most
     * IT_FOLD_BATCH_SCORES scores.
     */
    batch = (int) Max(1, Min(IT_FOLD_BATCH, IT_FOLD_BATCH_SCORES / ((double) IT_FOLD_NREVEAL * IT_FOLD_NGRID * m)));
    nq = batch * IT_FOLD_NREVEAL;
    run->sim.threads = Min(threads, IT_GRID_MAX_THREADS);
    wsf = it_fold_in_grid_batch_workspace_floats(m, k, IT_FOLD_NGRID, IT_PRIOR_EVAL_K, nq, run->sim.threads);
    if (wsf == 0)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("too many items to choose the fold-in prior weight: " INT64_FORMAT, m)));
    run->sim.ws = AllocChecked((int64) wsf, sizeof(float), "fold-in workspace");
    run->sim.ent = AllocChecked(Max(maxlen, 1), sizeof(ItRevealEntry), "fold-in rows");
    run->sim.pos = AllocChecked(Max(maxlen, 1) * batch, sizeof(int32), "fold-in rows");
    run->sim.rev = AllocChecked((int64) FoldInReveal[IT_FOLD_NREVEAL - 1] * nq, sizeof(int32), "fold-in rows");
    run->sim.revw = AllocChecked((int64) FoldInReveal[IT_FOLD_NREVEAL - 1] * nq, sizeof(float), "fold-in rows");
    run->sim.queries = AllocChecked(nq, sizeof(ItGridQuery), "fold-in rows");
    run->sim.qreveal = AllocChecked(nq, sizeof(int), "fold-in rows");
    run->sim.hits = AllocChecked((int64) nq * IT_FOLD_NENTRIES, sizeof(int32), "fold-in rows");

    run->R = R;
    run->Rt = tm->Rt;
    run->X = tm->X;
    run->Y = tm->Y;
    run->times = tm->times;
    run->k = k;
    run->chunk_flops = IT_FOLD_CHUNK_FLOPS;
    run->rows = selrows;
    run->priors = spriors;
    run->nsel = nsel;
    run->group = group;
    run->batch = batch;
    run->salt = it_mix64(t->o.seed ^ UINT64CONST(0x666f6c642d696e));
    run->min_weight = min_weight;
    run->reveal = FoldInReveal;
    run->nreveal = IT_FOLD_NREVEAL;
    run->blend = &job->blend;
    run->lambdas = out->lambdas;
    run->ngrid = IT_FOLD_NGRID;
    run->eval_k = IT_PRIOR_EVAL_K;
    run->sums.nreveal = IT_FOLD_NREVEAL;
    run->sums.ngrid = IT_FOLD_NENTRIES;
    run->should_stop = PriorCheckInterrupts;
    run->should_stop_arg = NULL;
    pfree(sel);
    job->prepare_seconds = ItElapsedSeconds(job->start);
    return true;
}

/* Frees what FoldInPrepare allocated (the run is over). */
static void
FoldInFree(FoldInJob *job)
{
    ItFoldInRun *run = &job->run;
    void       *bufs[] = {run->YtY, (void *) run->rows, (void *) run->priors, run->lo.out, run->lo.indptr,
                          run->lo.indices, run->lo.data, run->lo.Xs, run->lo.G, run->lo.XtX, run->lo.scratch,
                          run->Ylo, run->bmem, run->sim.ws, run->sim.ent, run->sim.pos, run->sim.rev,
                          run->sim.revw, run->sim.queries, run->sim.qreveal, run->sim.hits,
                          (void *) run->order, (void *) run->rank, run->Yp, job->pop_sorted};

    for (int i = 0; i < (int) lengthof(bufs); i++)
        if (bufs[i] != NULL)
            pfree(bufs[i]);
}

/*
 * The choice from a run that is over: its errors raised, the criterion,
 * the users, the time (the preparation's and the run's own).
 */
static void
FoldInFinish(FoldInJob *job, FoldInChoice *out)
{
    ItFoldInRun *run = &job->run;

    CHECK_FOR_INTERRUPTS();
    if (run->status == IT_FOLD_ENONFINITE && run->stage == 1)
        elog(ERROR, "the leave-out item vectors are not finite");
    if (run->status != IT_FOLD_OK && run->stage == 1)
        elog(ERROR, "could not compute the leave-out item vectors (status %d)", run->status);
    if (run->status != IT_FOLD_OK && run->stage == 2)
        elog(ERROR, "could not decompose the leave-out gram matrix (status %d)", run->detail);
    if (run->status != IT_FOLD_OK)
        elog(ERROR, "could not fold in a trained user to choose the fold-in prior weight (status %d, %d)",
             run->status, run->detail);
    out->groups = (int) run->groups;

    /*
     * The criterion: the mean over the simulations with enough users.  The
     * kernel sums weight by weight, each over the blends; the choice sees
     * the entries blend by blend, each over the weights, so that its
     * "largest entry" is the most popularity, then the strongest weight.
     */
    {
        ItFoldInSums bysum = run->sums;

        for (int r = 0; r < IT_FOLD_NREVEAL; r++)
            for (int g = 0; g < IT_FOLD_NGRID; g++)
                for (int b = 0; b < IT_FOLD_NBLEND; b++)
                    bysum.hitsum[r * IT_FOLD_NENTRIES + b * IT_FOLD_NGRID + g] =
                        run->sums.hitsum[r * IT_FOLD_NENTRIES + g * IT_FOLD_NBLEND + b];
        it_fold_in_choose(&bysum, IT_PRIOR_EVAL_K, IT_FOLD_MIN_USERS, &out->c);
    }
    for (int r = 0; r < IT_FOLD_NREVEAL; r++)
        out->users[r] = run->sums.users[r];
    out->seconds = job->prepare_seconds + run->seconds;
    FoldInFree(job);
}

/*
 * Chooses the fold-in weight of a prior by simulation on the first users
 * of rows[0..nrows) (rows of R, in this order) that have enough
 * positives, whose prior is priors + i * k (shared: priors for all).
 * Leaves out->c.measured false when too few users qualify.
 */
static void
ChooseFoldInWeight(ItTransferTrain *t, const int64 *rows, int64 nrows,
                   const float *priors, bool shared, FoldInChoice *out)
{
    FoldInJob   job;

    if (!FoldInPrepare(t, rows, nrows, priors, shared, &job, out))
        return;
    (void) it_fold_in_run(&job.run);
    FoldInFinish(&job, out);
}

/* The weight and the blend of grid entry e of a fold-in choice. */
static double
EntryWeight(const FoldInChoice *f, int e)
{
    return f->lambdas[e % IT_FOLD_NGRID];
}

static double
EntryBlend(const FoldInChoice *f, int e)
{
    return f->blends[e / IT_FOLD_NGRID];
}

/* The keys of a fold-in choice, each preceded by ", " (fewer when not measured). */
static void
AppendFoldIn(StringInfo buf, const FoldInChoice *f, bool grid)
{
    AppendKeyNumber(buf, "fold_in_users", (double) f->users[0]);
    if (!f->c.measured)
        return;
    AppendKeyNumber(buf, "fold_in_prior_weight", EntryWeight(f, f->c.chosen));
    AppendKeyNumber(buf, "fold_in_popularity_blend", EntryBlend(f, f->c.chosen));
    if (!grid)
        return;
    AppendKeyNumber(buf, "fold_in_best_weight", EntryWeight(f, f->c.best));
    AppendKeyNumber(buf, "fold_in_best_popularity_blend", EntryBlend(f, f->c.best));
    AppendKeyNumber(buf, "fold_in_tolerance", f->c.tolerance);
    for (int r = 1; r < IT_FOLD_NREVEAL; r++)
        AppendKeyNumber(buf, psprintf("fold_in_users_%d", FoldInReveal[r]), (double) f->users[r]);
    AppendKeyNumber(buf, "fold_in_groups", f->groups);
    AppendKeyNumber(buf, "fold_in_seconds", f->seconds);
    appendStringInfoString(buf, ", \"fold_in_grid\": [");
    for (int g = 0; g < IT_FOLD_NENTRIES; g++)
    {
        appendStringInfo(buf, "%s{\"prior_weight\": ", g > 0 ? ", " : "");
        AppendRounded(buf, EntryWeight(f, g));
        AppendKeyNumber(buf, "popularity_blend", EntryBlend(f, g));
        AppendKeyNumber(buf, "precision", f->c.criterion[g]);
        for (int r = 0; r < IT_FOLD_NREVEAL; r++)
            AppendKeyNumber(buf, psprintf("precision_%d", FoldInReveal[r]),
                            f->users[r] > 0 ? f->c.precision[r][g] : NAN);
        appendStringInfoChar(buf, '}');
    }
    appendStringInfoChar(buf, ']');
}

/* The NOTICE of a fold-in choice (numbers of the fewest revealed). */
static char *
FoldInMessage(const FoldInChoice *f, const char *prior, const char *users)
{
    return psprintf("fold-in prior weight %g and popularity blend %g of the %s prior chosen on " INT64_FORMAT " %s "
                    "(precision@%d %.3f with %d revealed; weakest weight unblended %.3f, "
                    "strongest unblended %.3f, popularity alone %.3f)",
                    EntryWeight(f, f->c.chosen), EntryBlend(f, f->c.chosen), prior, f->users[0], users,
                    IT_PRIOR_EVAL_K, f->c.precision[0][f->c.chosen], FoldInReveal[0], f->c.precision[0][0],
                    f->c.precision[0][IT_FOLD_NGRID - 1],
                    f->c.precision[0][IT_FOLD_NENTRIES - 1]);
}

/*
 * The state of fitting one side, filled step by step by FitSide: the rows,
 * the features model, its check on the validation rows and the choices
 * made from it.
 */
typedef struct SideFit
{
    /* MatchSideRows: the trained rows that have features */
    int64       n;
    int32      *rowmap;         /* n: row of sd->R / sd->F */
    int64      *encrow;         /* n: row of enc->X */
    int64      *unmatched;      /* rows of enc->X that were not trained */
    int64       nun;

    /* SplitSideRows: validation rows first, then the training rows */
    int64       nval;
    int64       ntrain;
    int64       nused;
    int         epochs;         /* allowed by the work budget */
    float      *Xm;             /* nused * dims */
    int32      *umap;           /* nused: row of sd->R / sd->F */
    int32      *val;            /* nval: rows of Xm */
    float      *YtY;            /* k * k of sd->Y */

    /* TrainSideModel */
    ItMlpLayout layout;
    ItMlpTrainParams p;
    ItMlpData   data;
    ItMlpEpoch *history;
    ItMlpTrainResult res;
    float      *params;         /* the fitted model (the side's, for the first slice) */
    double      seconds;        /* matching the rows, splitting them, fitting */
    double      check_seconds;  /* the gate: validation, cross-fits, the blend */

    /* PredictValidation: the features prior of the validation rows */
    float      *Uval;           /* nval * k */
    double      prior_variance;
    int64      *pos_ptr;        /* their positives, CSR */
    int32      *pos_idx;
    float      *pos_w;
    int64       neval;          /* the first neval are ranked */

    /* the best constant vector of the training rows (the fit's, when res.have_constant) */
    float      *cvec;
    double      mean_loss_f;
    double      mean_loss_c;
    double      z_loss;
    double      z_rel;
    double     *loss_f;         /* nval: per-row losses, kept for pooling */
    double     *loss_c;
    int         folds;          /* cross-fitted slices pooled by the gate (1: none) */
    int64       gate_rows;      /* validation rows the loss test pooled */

    /* RankValidation and ChooseBlend */
    int         nblend;
    float       blends[IT_NBLEND];
    double      prec[IT_NBLEND];
    double      cprec[IT_NBLEND];
    double      pprec;
    int64       users;
    int32      *hits;
    int32      *chits;
    int32      *phits;
    int         best;
    int         cbest;
    double      p_feat;
    double      p_const;
    double      z_pop;
    double      z_const;
} SideFit;

/*
 * The trained rows of the side that have a row of features (both id lists
 * are ascending).  False when too few do: the side is then skipped.
 */
static bool
MatchSideRows(PriorSide *s, const SideData *sd, SideFit *f)
{
    ItEncoded  *enc = s->enc;
    int64       i = 0;

    f->rowmap = AllocChecked(enc->n, sizeof(int32), "features prior rows");
    f->encrow = AllocChecked(enc->n, sizeof(int64), "features prior rows");
    f->unmatched = AllocChecked(enc->n, sizeof(int64), "features prior rows");
    for (int64 r = 0; r < enc->n; r++)
    {
        while (i < sd->nrows && sd->ids[i] < enc->ids[r])
            i++;
        if (i < sd->nrows && sd->ids[i] == enc->ids[r])
        {
            f->rowmap[f->n] = (int32) i;
            f->encrow[f->n] = r;
            f->n++;
        }
        else
            f->unmatched[f->nun++] = r;
    }
    if (f->n >= IT_PRIOR_MIN_ROWS)
        return true;

    {
        char       *reason = psprintf("only " INT64_FORMAT " trained %s have a row in %s; at least %d are needed",
                                      f->n, s->info->rows_name, s->info->what, IT_PRIOR_MIN_ROWS);

        SideNotice(s, NULL,
                   psprintf("%s: the %s features model is not trained, and %s get %s",
                            reason, s->info->side, s->info->new_rows, s->info->fallback));
        SkippedMetrics(s, reason, enc->n, sd->nrows, f->n, f->nun);
        s->use_features = false;
    }
    return false;
}

/*
 * A random order of the matched rows (a hash of id and seed); the first
 * are the validation rows, the next the training rows, as many as the
 * work budget allows (see IT_PRIOR_WORK_FLOOR), copied contiguously.
 */
static void
SplitSideRows(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f, int fold)
{
    const PriorOptions *o = &t->o;
    ItEncoded  *enc = s->enc;
    int         dims = enc->dims;
    int         k = sd->k;
    int64       n = f->n;
    HashedRow  *order;
    int64       nnz_sum = 0;
    double      row_cost;

    order = AllocChecked(n, sizeof(HashedRow), "features prior rows");
    for (int64 r = 0; r < n; r++)
    {
        order[r].h = it_mix64((uint64) enc->ids[f->encrow[r]] ^ it_mix64(o->seed ^ s->info->order_salt));
        order[r].row = (int32) r;
        nnz_sum += sd->R->indptr[f->rowmap[r] + 1] - sd->R->indptr[f->rowmap[r]];
    }
    qsort(order, n, sizeof(HashedRow), CompareHashedRows);

    f->nval = (int64) floor(o->validation * (double) n);
    f->nval = Max(1, Min(Min(f->nval, n - 1), IT_PRIOR_MAX_VAL_ROWS));
    f->ntrain = n - f->nval;

    /*
     * The epochs the budget allows, and when that is fewer than
     * IT_PRIOR_MIN_EPOCHS, a sample of the training rows for which
     * IT_PRIOR_MIN_EPOCHS fit.
     */
    row_cost = (double) nnz_sum / n * k * IT_PRIOR_NNZ_COST +
        (o->hidden > 0 ? (double) dims * o->hidden + (double) o->hidden * k : (double) dims * k) +
        (double) k * k;
    f->epochs = (int) Min((double) o->epochs,
                          floor(t->budget / (row_cost * ((double) f->ntrain + f->nval / 3.0))));
    if (f->epochs < IT_PRIOR_MIN_EPOCHS)
    {
        double      fit = t->budget / (row_cost * IT_PRIOR_MIN_EPOCHS) - f->nval / 3.0;

        f->epochs = Min(o->epochs, IT_PRIOR_MIN_EPOCHS);
        f->ntrain = (int64) Min((double) f->ntrain, Max(fit, (double) IT_PRIOR_MIN_ROWS));
    }

    /* their features and rows of R, contiguous, validation rows first */
    f->nused = f->nval + f->ntrain;
    f->Xm = AllocChecked(f->nused * dims, sizeof(float), "features prior inputs");
    f->umap = AllocChecked(f->nused, sizeof(int32), "features prior rows");
    for (int64 i = 0; i < f->nused; i++)
    {
        /* slice `fold` of nval rows first: the order rotated by fold * nval */
        int32       r = order[(i + (int64) fold * f->nval) % n].row;

        memcpy(f->Xm + i * dims, enc->X + f->encrow[r] * dims, sizeof(float) * dims);
        f->umap[i] = f->rowmap[r];
    }
    f->val = AllocChecked(f->nval, sizeof(int32), "features prior rows");
    for (int64 i = 0; i < f->nval; i++)
        f->val[i] = (int32) i;
    CHECK_FOR_INTERRUPTS();

    f->YtY = AllocChecked((int64) k * k, sizeof(float), "features prior gram matrix");
    it_gram(sd->Y, sd->m, k, f->YtY);
    CHECK_FOR_INTERRUPTS();
}

/* The layout of the side's model as stored in its it_prior row. */
static Jsonb *
LayoutJson(const ItMlpLayout *layout)
{
    StringInfoData lj;

    initStringInfo(&lj);
    appendStringInfo(&lj, "{\"input\": %d, \"hidden\": [", layout->input);
    for (int l = 0; l < layout->nhidden; l++)
        appendStringInfo(&lj, "%s%d", l > 0 ? ", " : "", layout->hidden[l]);
    appendStringInfo(&lj, "], \"output\": %d}", layout->output);
    return JsonbFromText(lj.data);
}

/*
 * Fits the features model of f's rows: IT_MLP_OK with f->params set, or
 * IT_MLP_ENONFINITE when the loss diverged.  Touches nothing of the side
 * but reads its options.
 */
static int
FitFeaturesModel(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f)
{
    const PriorOptions *o = &t->o;
    ItMlpTrainParams *p = &f->p;
    size_t      nparams;
    size_t      wsbytes;
    void       *ws;
    float      *params;
    int64       epoch_rows;
    int         status;

    SideLayout(s, o, sd->k, &f->layout);
    if (it_mlp_check_layout(&f->layout) != IT_MLP_OK)
        elog(ERROR, "invalid features model layout");
    nparams = it_mlp_param_count(&f->layout);

    it_mlp_default_params(p);
    p->lr = (float) o->learning_rate;
    p->weight_decay = (float) o->weight_decay;
    p->epochs = f->epochs;
    p->batch = o->batch;
    p->patience = o->patience;
    if (f->epochs < o->epochs)
    {
        p->converge_window = IT_PRIOR_CONVERGE_WINDOW;
        p->converge_tol = (float) IT_PRIOR_CONVERGE_TOL;
    }
    p->seed = o->seed;
    p->val_fraction = (float) o->validation;
    p->vector_weight = (float) o->vector_weight;
    p->alpha = sd->alpha;
    p->init_output_bias = 1;
    p->pos_min_weight = (float) o->min_weight;
    p->eval_k = IT_PRIOR_EVAL_K;
    epoch_rows = (int64) (IT_PRIOR_EPOCH_EVAL_WORK / ((double) sd->m * sd->k));
    if (epoch_rows < 50)
        p->eval_k = 0;          /* no per-epoch precision */
    else
        p->eval_max_rows = (int) Min(epoch_rows, 2000);
    p->threads = ItThreads(o->threads);
    p->should_stop = PriorCheckInterrupts;
    p->should_stop_arg = NULL;
    /*
     * The model without features, which the gate compares it with: the
     * fit starts from it (init_output_bias) and keeps it, which saves
     * solving for it again (on the items of 100k users, one rank-one
     * update per user: 0.14 s).
     */
    f->cvec = AllocChecked(sd->k, sizeof(float), "features prior");
    p->constant_out = f->cvec;

    memset(&f->data, 0, sizeof(f->data));
    f->data.n = f->nused;
    f->data.X = f->Xm;
    f->data.row_map = f->umap;
    f->data.targets = sd->F;    /* through row_map, like the rows of R */
    f->data.indptr = sd->R->indptr;
    f->data.indices = sd->R->indices;
    f->data.weights = sd->R->data;
    f->data.Y = sd->Y;
    f->data.YtY = f->YtY;
    f->data.m = sd->m;
    f->data.val_rows = f->val;
    f->data.nval = f->nval;
    f->data.baseline = sd->base;

    wsbytes = it_mlp_train_workspace_size(&f->layout, p, f->nused, sd->m);
    if (wsbytes == 0 || wsbytes > MaxAllocHugeSize)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("the features model of %s needs too much memory to train", s->info->what),
                 errhint("Use a smaller prior_batch or prior_hidden, or fewer feature columns.")));
    ws = MemoryContextAllocHuge(CurrentMemoryContext, wsbytes);
    params = AllocChecked((int64) nparams, sizeof(float), "features model");
    f->history = AllocChecked(f->epochs, sizeof(ItMlpEpoch), "features model history");
    memset(&f->res, 0, sizeof(f->res));

    CHECK_FOR_INTERRUPTS();
    it_mlp_init(params, &f->layout, o->seed);
    status = it_mlp_train(params, &f->layout, &f->data, p, ws, f->history, &f->res);
    if (status == IT_MLP_EINVAL)
        elog(ERROR, "could not train the features model of %s: invalid arguments", s->info->what);
    pfree(ws);
    if (status == IT_MLP_ENONFINITE)
        return status;
    for (size_t j = 0; j < nparams; j++)
        if (!isfinite(params[j]))
            elog(ERROR, "the features model of %s has a parameter that is not finite", s->info->what);
    f->params = params;
    CHECK_FOR_INTERRUPTS();
    return IT_MLP_OK;
}

/*
 * Trains the features -> interest model of the side on the training
 * rows, stopping on the validation rows.  False when its loss became
 * infinite or NaN: the side is then skipped.
 */
static bool
TrainSideModel(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f,
               instr_time start)
{
    int         status = FitFeaturesModel(t, s, sd, f);

    f->seconds = ItElapsedSeconds(start);
    s->layout_json = LayoutJson(&f->layout);

    if (status == IT_MLP_ENONFINITE)
    {
        char       *reason = psprintf("the loss of the %s features model became infinite or NaN", s->info->side);

        SideNotice(s, "Use a smaller prior_learning_rate, or scale the weights down.",
                   psprintf("%s; %s get %s", reason, s->info->new_rows, s->info->fallback));
        SkippedMetrics(s, reason, s->enc->n, sd->nrows, f->n, f->nun);
        s->use_features = false;
        return false;
    }
    s->params = f->params;
    s->nparams = (int64) it_mlp_param_count(&f->layout);
    return true;
}

/*
 * The features prior of the validation rows, how far the trained vectors
 * are from it, and the rows' positives (the first neval are ranked, at
 * most a bounded amount of work).
 */
static void
PredictValidation(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f)
{
    float       min_weight = (float) t->o.min_weight;
    int         k = sd->k;
    int64       nval = f->nval;
    int64      *valrows;
    double      var_sum = 0.0;
    int64       npos_total = 0;

    f->neval = (int64) (IT_PRIOR_EVAL_WORK / ((double) sd->m * (k + IT_NBLEND)));
    f->neval = Min(nval, Max(f->neval, IT_PRIOR_EVAL_MIN_ROWS));
    valrows = AllocChecked(nval, sizeof(int64), "features prior rows");
    for (int64 i = 0; i < nval; i++)
        valrows[i] = f->val[i]; /* rows of Xm */
    f->Uval = AllocChecked(nval * k, sizeof(float), "features prior vectors");
    ForwardRows(f->params, &f->layout, f->Xm, valrows, nval, f->Uval);

    /* mean squared deviation of the trained vectors from the prior */
    for (int64 i = 0; i < nval; i++)
    {
        const float *tv = sd->F + (int64) f->umap[f->val[i]] * k;
        const float *u = f->Uval + i * k;

        for (int j = 0; j < k; j++)
        {
            double      dlt = (double) tv[j] - (double) u[j];

            var_sum += dlt * dlt;
        }
    }
    f->prior_variance = var_sum / ((double) nval * k);

    /* the positives of the validation rows */
    f->pos_ptr = AllocChecked(nval + 1, sizeof(int64), "validation positives");
    for (int64 i = 0; i < nval; i++)
    {
        int32       row = f->umap[f->val[i]];

        for (int64 e = sd->R->indptr[row]; e < sd->R->indptr[row + 1]; e++)
            if (sd->R->data[e] >= min_weight)
                npos_total++;
    }
    f->pos_idx = AllocChecked(Max(npos_total, 1), sizeof(int32), "validation positives");
    f->pos_w = AllocChecked(Max(npos_total, 1), sizeof(float), "validation positives");
    npos_total = 0;
    f->pos_ptr[0] = 0;
    for (int64 i = 0; i < nval; i++)
    {
        int32       row = f->umap[f->val[i]];

        for (int64 e = sd->R->indptr[row]; e < sd->R->indptr[row + 1]; e++)
        {
            if (sd->R->data[e] >= min_weight)
            {
                f->pos_idx[npos_total] = sd->R->indices[e];
                f->pos_w[npos_total] = sd->R->data[e];
                npos_total++;
            }
        }
        f->pos_ptr[i + 1] = npos_total;
    }
}

/*
 * The loss of each validation row with and without features (the model
 * without features being the fit's best constant vector of the training
 * rows): how many standard errors the features improve it by (the test,
 * IT_PRIOR_MIN_Z).
 */
static void
CompareWithoutFeatures(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f)
{
    float       min_weight = (float) t->o.min_weight;
    int         k = sd->k;
    int64       nval = f->nval;
    double      d_loss = 0.0;
    double      d_rel = 0.0;
    double     *loss_f;
    double     *loss_c;
    double     *rel_f;
    double     *rel_c;

    f->z_loss = NAN;
    f->z_rel = NAN;
    loss_f = AllocChecked(nval, sizeof(double), "validation losses");
    loss_c = AllocChecked(nval, sizeof(double), "validation losses");
    rel_f = AllocChecked(nval, sizeof(double), "validation losses");
    rel_c = AllocChecked(nval, sizeof(double), "validation losses");
    {
        float      *lws = AllocChecked(k, sizeof(float), "features prior workspace");

        if (it_als_row_losses(f->Uval, 0, nval, k, sd->Y, f->YtY, f->pos_ptr, f->pos_idx, f->pos_w,
                              sd->alpha, min_weight, lws, loss_f) != 0 ||
            (f->res.have_constant &&
             it_als_row_losses(f->cvec, 1, nval, k, sd->Y, f->YtY, f->pos_ptr, f->pos_idx, f->pos_w,
                               sd->alpha, min_weight, lws, loss_c) != 0))
            elog(ERROR, "could not compute the validation losses of %s", s->info->what);
        pfree(lws);
    }
    if (f->res.have_constant)
    {
        it_mean_difference(loss_c, loss_f, nval, &d_loss, &f->z_loss);
        f->gate_rows = nval;

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

            for (int64 e = f->pos_ptr[i]; e < f->pos_ptr[i + 1]; e++)
                zc += 1.0 + sd->alpha * f->pos_w[e];
            rel_c[i] = zc > 0 ? loss_c[i] / zc : 0.0;
            rel_f[i] = zc > 0 ? loss_f[i] / zc : 0.0;
        }
        it_mean_difference(rel_c, rel_f, nval, &d_rel, &f->z_rel);
        for (int64 i = 0; i < nval; i++)
        {
            f->mean_loss_f += loss_f[i] / nval;
            f->mean_loss_c += loss_c[i] / nval;
        }
    }
    f->loss_f = loss_f;
    f->loss_c = loss_c;
    CHECK_FOR_INTERRUPTS();
}

/*
 * The workspace of a threaded ranking: n elements of size bytes (n = 0:
 * the kernel found the sizes too large), charged to the training budget.
 */
static void *
RankWorkspace(const PriorSide *s, size_t n, Size size)
{
    if (n == 0 || n > (size_t) PG_INT64_MAX)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("ranking the validation rows of %s needs too much memory", s->info->what),
                 errhint("Train on a sample, or with fewer factors.")));
    return AllocChecked((int64) n, size, "the validation rankings");
}

/*
 * Precision@k on the first neval validation rows of the features prior
 * and of the constant vector, each over the blends of popularity tried
 * (users only: in units of the constant vector's top score), and of the
 * baseline alone.
 */
static void
RankValidation(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f)
{
    int64       m = sd->m;
    int         k = sd->k;
    double      maxbase = 0.0;
    double      scale = 0.0;
    float      *pop;
    float      *rws;
    int64       cusers = 0;
    int64       pusers = 0;

    /* popularity term: baseline / its maximum */
    pop = AllocChecked(m, sizeof(float), "features prior");
    for (int64 i = 0; i < m; i++)
        maxbase = Max(maxbase, (double) sd->base[i]);
    for (int64 i = 0; i < m; i++)
        pop[i] = maxbase > 0 ? (float) (sd->base[i] / maxbase) : 0.0f;

    /* blends in units of the typical top score: that of the constant vector */
    if (f->res.have_constant)
    {
        for (int64 i = 0; i < m; i++)
        {
            double      sc = 0.0;

            for (int j = 0; j < k; j++)
                sc += (double) f->cvec[j] * sd->Y[i * k + j];
            scale = i == 0 ? sc : Max(scale, sc);
        }
    }
    if (!(scale > 0.0) || !isfinite(scale))
        scale = 1.0;
    f->nblend = s->info->blend ? IT_NBLEND : 1;
    for (int j = 0; j < f->nblend; j++)
        f->blends[j] = (float) strtod(psprintf("%.3g", BlendGrid[j] * scale), NULL);

    rws = AllocChecked((int64) it_rank_grid_workspace_floats(m, IT_PRIOR_EVAL_K), sizeof(float),
                       "features prior workspace");
    CHECK_FOR_INTERRUPTS();
    f->hits = AllocChecked(f->neval * f->nblend, sizeof(int32), "validation hits");
    f->chits = AllocChecked(f->neval * f->nblend, sizeof(int32), "validation hits");
    f->phits = AllocChecked(f->neval, sizeof(int32), "validation hits");
    if (f->nblend == 1 && f->neval >= IT_PRIOR_Q8_ROWS)
    {
        /*
         * the rows' own vectors: from an 8-bit copy of the other side,
         * exact, over threads (items of 100k users: 0.150 -> 0.062 s).
         * Not with blends: each is then a pass that writes the blended
         * scores and two that rank them, where the float path ranks in
         * one (the users' ranking on 10k items, 7 blends: 0.127 -> 0.172 s).
         */
        int         threads = ItThreads(t->o.threads);
        void       *qws = RankWorkspace(s, it_rank_grid_q8_workspace_bytes(m, k, f->neval, f->nblend,
                                                                           IT_PRIOR_EVAL_K, threads), 1);

        if (it_rank_grid_precision_q8(f->Uval, f->neval, k, sd->Y, m, pop, f->blends, f->nblend,
                                      f->pos_ptr, f->pos_idx, IT_PRIOR_EVAL_K, qws, threads, f->prec,
                                      &f->users, f->hits) != 0)
            elog(ERROR, "could not rank the validation rows of %s", s->info->what);
        pfree(qws);
    }
    else
    {
        /*
         * from the float products, which stay on this thread, ranked over
         * the threads (the check of 100k users over 10k items, 7 blends:
         * 0.147 -> 0.099 s)
         */
        int         threads = ItThreads(t->o.threads);
        float      *tws = RankWorkspace(s, it_rank_grid_threads_workspace_floats(m, IT_PRIOR_EVAL_K, f->neval,
                                                                                 f->nblend, threads),
                                        sizeof(float));

        if (it_rank_grid_precision_threads(f->Uval, f->neval, k, sd->Y, m, pop, f->blends, f->nblend,
                                           f->pos_ptr, f->pos_idx, IT_PRIOR_EVAL_K, tws, threads,
                                           f->prec, &f->users, f->hits) != 0)
            elog(ERROR, "could not rank the validation rows of %s", s->info->what);
        pfree(tws);
    }
    CHECK_FOR_INTERRUPTS();
    if (f->res.have_constant &&
        it_rank_grid_precision(f->cvec, 1, f->neval, k, sd->Y, m, pop, f->blends, f->nblend,
                               f->pos_ptr, f->pos_idx, IT_PRIOR_EVAL_K, rws, f->cprec, &cusers,
                               f->chits) != 0)
        elog(ERROR, "could not rank the validation rows of %s", s->info->what);
    {
        float       one = 1.0f;

        if (it_rank_grid_precision(NULL, 0, f->neval, 0, NULL, m, pop, &one, 1,
                                   f->pos_ptr, f->pos_idx, IT_PRIOR_EVAL_K, rws, &f->pprec, &pusers,
                                   f->phits) != 0)
            elog(ERROR, "could not rank the validation rows of %s", s->info->what);
    }
    CHECK_FOR_INTERRUPTS();
    pfree(rws);
}

/*
 * The popularity blend: the best of the grid, the smallest on ties (for
 * the constant vector too); and how many standard errors of the paired
 * difference the blended features prior is above the baseline and the
 * constant vector.
 */
static void
ChooseBlend(SideFit *f)
{
    double      d_pop;
    double      d_const = NAN;

    f->best = 0;
    f->cbest = 0;
    for (int j = 1; j < f->nblend; j++)
    {
        if (f->prec[j] > f->prec[f->best])
            f->best = j;
        if (f->res.have_constant && f->cprec[j] > f->cprec[f->cbest])
            f->cbest = j;
    }
    f->p_feat = f->prec[f->best];
    it_paired_hits_difference(f->hits, f->nblend, f->best, f->phits, 1, 0, f->neval, IT_PRIOR_EVAL_K,
                              &d_pop, &f->z_pop);
    f->p_const = NAN;
    f->z_const = NAN;
    if (f->res.have_constant)
    {
        f->p_const = f->cprec[f->cbest];
        it_paired_hits_difference(f->hits, f->nblend, f->best, f->chits, f->nblend, f->cbest, f->neval,
                                  IT_PRIOR_EVAL_K, &d_const, &f->z_const);
    }
}

/*
 * Whether serving uses the features: when the served ranking beats the
 * baseline's precision (strictly), and their loss on the validation rows
 * is significantly below that of the model without features: precision
 * alone, chosen among blends on a few hundred rows, lets noise through.
 * The NOTICE says which.
 */
static void
DecideSide(PriorSide *s, SideFit *f)
{
    const PriorSideInfo *in = s->info;
    bool        beats_pop = f->users > 0 && f->p_feat > f->pprec;
    bool        informative = !f->res.have_constant || f->z_loss >= IT_PRIOR_MIN_Z;

    s->use_features = beats_pop && informative;
    s->precision = f->p_feat;
    s->popularity_blend = s->use_features ? f->blends[f->best] : 0.0;

    if (f->users == 0)
        SideNotice(s, "Lower positive_threshold, or train on more data.",
                   psprintf("%s features could not be checked: none of the " INT64_FORMAT " validation %s has a positive; %s get %s",
                            in->side, f->nval, in->rows_name, in->new_rows, in->fallback));
    else if (!beats_pop)
        SideNotice(s, NULL,
                   psprintf("%s features did not beat %s on " INT64_FORMAT " validation %s (precision@%d %.3f vs %.3f); %s",
                            in->side, in->base_name, f->users, in->rows_name, IT_PRIOR_EVAL_K,
                            f->p_feat, f->pprec, in->lost));
    else if (!informative)
        SideNotice(s, NULL,
                   psprintf("%s features did not beat the same model without features on " INT64_FORMAT " validation %s "
                            "(loss %.4g vs %.4g per row: %.1f standard errors of improvement, %.1f needed; "
                            "precision@%d %.3f vs %.3f for %s); %s",
                            in->side, f->gate_rows, in->rows_name, f->mean_loss_f, f->mean_loss_c, f->z_loss,
                            IT_PRIOR_MIN_Z, IT_PRIOR_EVAL_K, f->p_feat, f->pprec, in->base_name, in->lost));
    else
        SideNotice(s, NULL,
                   psprintf("%s features model: precision@%d %.3f on " INT64_FORMAT " validation %s, %s %.3f, without features %.3f%s (%d epochs, %.1f s%s)",
                            in->side, IT_PRIOR_EVAL_K, f->p_feat, f->users, in->rows_name, in->base_name,
                            f->pprec, f->p_const,
                            in->blend ? psprintf(", popularity_blend %.3g", s->popularity_blend) : "",
                            f->res.epochs_run, f->seconds,
                            f->ntrain < f->n - f->nval ?
                            psprintf("; trained on a sample of " INT64_FORMAT " of " INT64_FORMAT " %s",
                                     f->ntrain, f->n - f->nval, in->rows_name) : ""));
}

/* The fold-in weight of the features prior, on the validation users. */
static void
ChooseSideFoldIn(ItTransferTrain *t, PriorSide *s, SideFit *f)
{
    int64      *frows = AllocChecked(f->nval, sizeof(int64), "validation rows");

    for (int64 i = 0; i < f->nval; i++)
        frows[i] = f->umap[f->val[i]];
    ChooseFoldInWeight(t, frows, f->nval, f->Uval, false, &s->fold);
    if (s->fold.c.measured)
        SideNotice(s, NULL, FoldInMessage(&s->fold, "features", "validation users"));
    pfree(frows);
    CHECK_FOR_INTERRUPTS();
}

/* The metrics of the side's it_prior row, and their summary for it_model.metrics. */
static void
SideMetrics(ItTransferTrain *t, PriorSide *s, const SideData *sd, const SideFit *f)
{
    bool        item = s->info->kind == PRIOR_SIDE_ITEM;
    bool        fold = s->info->kind == PRIOR_SIDE_USER && s->use_features;
    StringInfo  b = &s->metrics;

    appendStringInfo(b, "{\"use_features\": %s, \"popularity_blend\": ", BoolText(s->use_features));
    AppendRounded(b, s->popularity_blend);
    AppendKeyNumber(b, "prior_variance", f->prior_variance);
    s->prior_variance = f->prior_variance;
    appendStringInfo(b, ", \"k\": %d, \"baseline\": ", IT_PRIOR_EVAL_K);
    escape_json(b, s->info->base_name);
    AppendKeyNumber(b, "precision", f->p_feat);
    AppendKeyNumber(b, "precision_unblended", f->prec[0]);
    AppendKeyNumber(b, "baseline_precision", f->pprec);
    AppendKeyNumber(b, "no_features_precision", f->p_const);
    AppendKeyNumber(b, "validation_loss", f->mean_loss_f);
    AppendKeyNumber(b, "no_features_validation_loss", f->res.have_constant ? f->mean_loss_c : NAN);
    AppendKeyNumber(b, "loss_z", f->z_loss);
    AppendKeyNumber(b, "loss_z_relative", f->z_rel);
    AppendKeyNumber(b, "precision_z_vs_baseline", f->z_pop);
    AppendKeyNumber(b, "precision_z_vs_no_features", f->z_const);
    AppendKeyNumber(b, "rows_with_features", (double) s->enc->n);
    AppendKeyNumber(b, "rows_trained", (double) sd->nrows);
    AppendKeyNumber(b, "rows_used", (double) f->n);
    AppendKeyNumber(b, "rows_not_trained", (double) f->nun);
    AppendKeyNumber(b, "validation_rows", (double) f->nval);
    AppendKeyNumber(b, "validation_slices", f->folds);
    AppendKeyNumber(b, "gate_rows", (double) f->gate_rows);
    AppendKeyNumber(b, "evaluated_rows", (double) f->users);
    AppendKeyNumber(b, "min_weight", t->o.min_weight);
    AppendKeyNumber(b, "epochs_run", f->res.epochs_run);
    AppendKeyNumber(b, "epochs_allowed", f->epochs);
    appendStringInfo(b, ", \"stopped\": \"%s\"",
                     f->res.stop == IT_MLP_STOP_CONVERGED ? "converged" :
                     f->res.stop == IT_MLP_STOP_PATIENCE ? "patience" : "epochs");
    AppendKeyNumber(b, "training_rows", (double) f->ntrain);
    AppendKeyNumber(b, "best_epoch", f->res.best_epoch + 1);
    AppendKeyNumber(b, "best_val_loss", f->res.best_val_loss);
    AppendKeyNumber(b, "seconds", f->seconds);
    AppendKeyNumber(b, "check_seconds", f->check_seconds);
    if (item)
        AppendKeyNumber(b, "new_items", (double) s->nnew);
    if (fold)
        AppendFoldIn(b, &s->fold, true);
    appendStringInfoString(b, ", \"blend_grid\": [");
    for (int j = 0; j < f->nblend; j++)
    {
        appendStringInfo(b, "%s{\"blend\": ", j > 0 ? ", " : "");
        AppendRounded(b, f->blends[j]);
        AppendKeyNumber(b, "precision", f->prec[j]);
        AppendKeyNumber(b, "no_features_precision", f->res.have_constant ? f->cprec[j] : NAN);
        appendStringInfoChar(b, '}');
    }
    appendStringInfoString(b, "], \"history\": [");
    for (int e = 0; e < f->res.epochs_run; e++)
    {
        appendStringInfo(b, "%s{\"epoch\": %d", e > 0 ? ", " : "", e + 1);
        AppendKeyNumber(b, "train_loss", f->history[e].train_loss);
        AppendKeyNumber(b, "val_loss", f->history[e].val_loss);
        AppendKeyNumber(b, "val_precision", f->history[e].val_precision);
        appendStringInfoChar(b, '}');
    }
    appendStringInfo(b, "], \"notices\": [%s]}", s->notices.data);

    b = &s->summary;
    appendStringInfo(b, "{\"use_features\": %s, \"popularity_blend\": ", BoolText(s->use_features));
    AppendRounded(b, s->popularity_blend);
    AppendKeyNumber(b, "precision", f->p_feat);
    AppendKeyNumber(b, "baseline_precision", f->pprec);
    AppendKeyNumber(b, "no_features_precision", f->p_const);
    AppendKeyNumber(b, "evaluated_rows", (double) f->users);
    AppendKeyNumber(b, "seconds", f->seconds);
    if (item)
        AppendKeyNumber(b, "new_items", (double) s->nnew);
    if (fold)
        AppendFoldIn(b, &s->fold, false);
    appendStringInfoChar(b, '}');
}

/*
 * How many slices the gate pools: 1, or enough for IT_PRIOR_GATE_ROWS
 * rows, at most IT_PRIOR_MAX_SLICES (each is a fit of its own within the
 * side's work budget).
 */
static int
GateFolds(const SideFit *f)
{
    int64       folds;

    if (f->nval <= 0 || f->nval >= IT_PRIOR_GATE_ROWS)
        return 1;
    folds = Min(f->n / f->nval, (IT_PRIOR_GATE_ROWS + f->nval - 1) / f->nval);
    return (int) Max(Min(folds, IT_PRIOR_MAX_SLICES), 1);
}

/* dst[0..na + nb) = a[0..na) then b[0..nb), elements of size bytes, in dst's context */
static void *
Concat(const void *a, int64 na, const void *b, int64 nb, size_t size)
{
    char       *dst = AllocChecked(Max(na + nb, 1), size, "validation rows");

    memcpy(dst, a, na * size);
    memcpy(dst + na * size, b, nb * size);
    return dst;
}

/*
 * Cross-fits slice `fold` (see IT_PRIOR_GATE_ROWS): fits the features
 * model with that slice held out and appends its rows' losses and hits to
 * f's, which the gate then reads.  The side keeps f's model.  A slice
 * whose fit diverges, or without a constant vector, adds nothing.
 */
static void
CrossFitSlice(ItTransferTrain *t, PriorSide *s, const SideData *sd, SideFit *f, int fold)
{
    MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "features prior slice",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    SideFit     g;

    memset(&g, 0, sizeof(g));
    g.n = f->n;
    g.rowmap = f->rowmap;
    g.encrow = f->encrow;
    SplitSideRows(t, s, sd, &g, fold);
    if (FitFeaturesModel(t, s, sd, &g) == IT_MLP_OK)
    {
        PredictValidation(t, s, sd, &g);
        CompareWithoutFeatures(t, s, sd, &g);
        if (g.res.have_constant)
        {
            RankValidation(t, s, sd, &g);
            MemoryContextSwitchTo(old);
            f->mean_loss_f = (f->mean_loss_f * f->gate_rows + g.mean_loss_f * g.nval) / (f->gate_rows + g.nval);
            f->mean_loss_c = (f->mean_loss_c * f->gate_rows + g.mean_loss_c * g.nval) / (f->gate_rows + g.nval);
            f->loss_f = Concat(f->loss_f, f->gate_rows, g.loss_f, g.nval, sizeof(double));
            f->loss_c = Concat(f->loss_c, f->gate_rows, g.loss_c, g.nval, sizeof(double));
            f->gate_rows += g.nval;
            /* precision: the means weighted by the rows that have a positive */
            for (int j = 0; j < f->nblend; j++)
            {
                f->prec[j] = (f->prec[j] * f->users + g.prec[j] * g.users) / Max(f->users + g.users, 1);
                f->cprec[j] = (f->cprec[j] * f->users + g.cprec[j] * g.users) / Max(f->users + g.users, 1);
            }
            f->pprec = (f->pprec * f->users + g.pprec * g.users) / Max(f->users + g.users, 1);
            f->hits = Concat(f->hits, f->neval * f->nblend, g.hits, g.neval * f->nblend, sizeof(int32));
            f->chits = Concat(f->chits, f->neval * f->nblend, g.chits, g.neval * f->nblend, sizeof(int32));
            f->phits = Concat(f->phits, f->neval, g.phits, g.neval, sizeof(int32));
            f->neval += g.neval;
            f->users += g.users;
            f->folds++;
        }
    }
    MemoryContextSwitchTo(old);
    MemoryContextDelete(cxt);
    CHECK_FOR_INTERRUPTS();
}

/*
 * Fits one side: its rows, its features model, the check against the
 * baseline and the model without features, the popularity blend, the new
 * items (item side) or the fold-in weight of the features prior (user
 * side), and the metrics.
 */
static void
FitSide(ItTransferTrain *t, PriorSide *s, const SideData *sd)
{
    SideFit     f;
    instr_time  start;

    memset(&f, 0, sizeof(f));
    INSTR_TIME_SET_CURRENT(start);
    if (!MatchSideRows(s, sd, &f))
        return;
    SplitSideRows(t, s, sd, &f, 0);
    if (!TrainSideModel(t, s, sd, &f, start))
        return;
    INSTR_TIME_SET_CURRENT(start);
    PredictValidation(t, s, sd, &f);
    CompareWithoutFeatures(t, s, sd, &f);
    RankValidation(t, s, sd, &f);
    f.folds = 1;
    if (f.res.have_constant)
        for (int fold = 1; fold < GateFolds(&f); fold++)
            CrossFitSlice(t, s, sd, &f, fold);
    if (f.folds > 1)
    {
        double      d_loss;

        it_mean_difference(f.loss_c, f.loss_f, f.gate_rows, &d_loss, &f.z_loss);
    }
    ChooseBlend(&f);
    DecideSide(s, &f);
    f.check_seconds = ItElapsedSeconds(start);

    if (s->info->kind == PRIOR_SIDE_ITEM)
        NewItems(t, s, &f.layout, f.unmatched, f.nun);
    if (s->info->kind == PRIOR_SIDE_USER && s->use_features)
        ChooseSideFoldIn(t, s, &f);
    if (s == &t->source)
        MappedUsers(t, s, &f.layout, f.unmatched, f.nun);

    SideMetrics(t, s, sd, &f);
    pfree(f.Xm);
    pfree(f.Uval);
    pfree(f.YtY);
}

/* The NOTICE of the population prior's choice, when it was measured. */
static void
PopulationNotice(ItTransferTrain *t)
{
    if (t->pop_fold.c.measured)
        ereport(NOTICE,
                (errmsg("%s", FoldInMessage(&t->pop_fold, "population", "trained users"))));
}

/*
 * The fold-in weight of the population prior, which serves new users
 * without a features prior: the mean of the trained users' vectors,
 * summed as train() sums the it_model.user_mean it stores.  Simulated
 * on trained users in the order of a seeded hash of their ids.
 */
static void
PopulationFoldIn(ItTransferTrain *t)
{
    const ItTrainedModel *tm = t->tm;
    int         k = tm->k;
    double     *sum = AllocChecked(k, sizeof(double), "population prior");
    float      *mean = AllocChecked(k, sizeof(float), "population prior");
    HashedRow  *order = AllocChecked(tm->nusers, sizeof(HashedRow), "fold-in users");
    int64      *rows;
    int64       n = 0;
    uint64      salt = it_mix64(t->o.seed ^ UINT64CONST(0x706f70));

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
        order[n].h = it_mix64((uint64) tm->user_ids[u] ^ salt);
        order[n].row = (int32) u;
        n++;
    }
    qsort(order, n, sizeof(HashedRow), CompareHashedRows);
    rows = AllocChecked(Max(n, 1), sizeof(int64), "fold-in users");
    for (int64 i = 0; i < n; i++)
        rows[i] = order[i].row;
    CHECK_FOR_INTERRUPTS();

    if (t->pop_defer)
    {
        /* run later, beside the writes (ItTransferStartPopulation) */
        FoldInJob  *job = AllocChecked(1, sizeof(FoldInJob), "fold-in simulations");

        if (FoldInPrepare(t, rows, n, mean, true, job, &t->pop_fold))
        {
            t->pop_job = job;
            t->pop_mean = mean;
            mean = NULL;
        }
        else
            pfree(job);
    }
    else
    {
        ChooseFoldInWeight(t, rows, n, mean, true, &t->pop_fold);
        PopulationNotice(t);
    }
    pfree(sum);
    if (mean != NULL)
        pfree(mean);
    pfree(order);
    pfree(rows);
    CHECK_FOR_INTERRUPTS();
}

void
ItTransferDeferPopulation(ItTransferTrain *t)
{
    if (t != NULL)
        t->pop_defer = true;
}

/*
 * The run on its own thread, while there is one: a FATAL error (the
 * backend terminated) leaves through proc_exit, not through the writes'
 * PG_CATCH, and the thread must be stopped and joined before the process
 * tears down what it uses (OpenBLAS's buffers among them).
 */
static FoldInJob *RunningJob = NULL;

/* Stops job's thread, if it runs, and waits for it; raises nothing. */
static void
AbortJob(FoldInJob *job)
{
    if (job != NULL && job->run.started)
    {
        job->abort = 1;
        (void) it_fold_in_run_join(&job->run);
    }
    RunningJob = NULL;
}

static void
StopRunningJob(int code, Datum arg)
{
    AbortJob(RunningJob);
}

void
ItTransferStartPopulation(ItTransferTrain *t)
{
    static bool registered = false;
    FoldInJob  *job = t != NULL ? t->pop_job : NULL;

    if (job == NULL || !ItStoreFactorsRunNoUserCode())
        return;
    if (!registered)
    {
        before_shmem_exit(StopRunningJob, (Datum) 0);
        registered = true;
    }
    job->run.should_stop = FoldInJobStop;
    job->run.should_stop_arg = job;
    /*
     * The leave-out half-step on one thread: beside the writer, a second
     * one mostly left the first spinning while it waited for a core (the
     * vectors are the same for any thread count).
     */
    job->run.als.threads = 1;
    if (it_fold_in_run_start(&job->run))
        RunningJob = job;
}

void
ItTransferStopPopulation(ItTransferTrain *t)
{
    FoldInJob  *job = t != NULL ? t->pop_job : NULL;

    if (job == NULL)
        return;
    AbortJob(job);
    t->pop_job = NULL;
}

bool
ItTransferFinishPopulation(ItTransferTrain *t)
{
    FoldInJob  *job = t != NULL ? t->pop_job : NULL;
    bool        beside;

    if (job == NULL)
        return false;
    beside = job->run.started;
    /* not started: here, on this thread, interruptible as ever */
    if (!job->run.started)
    {
        job->run.should_stop = PriorCheckInterrupts;
        job->run.should_stop_arg = NULL;
    }
    (void) it_fold_in_run_join(&job->run);
    RunningJob = NULL;
    if (job->run.status == IT_FOLD_ESTOPPED)
    {
        /* stopped for a cancel: raise it; for anything else, run again here */
        CHECK_FOR_INTERRUPTS();
        job->run.should_stop = PriorCheckInterrupts;
        job->run.should_stop_arg = NULL;
        (void) it_fold_in_run(&job->run);
    }
    t->pop_job = NULL;
    t->pop_seconds += job->run.seconds;
    FoldInFinish(job, &t->pop_fold);
    pfree(job);
    pfree(t->pop_mean);
    t->pop_mean = NULL;
    pfree(t->pop);
    t->pop = NULL;
    PopulationNotice(t);
    return beside;
}

/*
 * Fits one side: its rows (ids, interactions R, trained vectors F) against
 * the other side's (interactions Other, vectors Y); the baseline ranking is
 * the other side's rows by how many of this side's rows they are a
 * positive of (popularity for users, activity for items): counts, or
 * NULL to count them here.
 */
static void
FitSideOn(ItTransferTrain *t, PriorSide *s, const int64 *ids, const ItCsr *R, const float *F,
          const ItCsr *Other, const int64 *counts, const float *Y)
{
    SideData    sd;
    float      *base = AllocChecked(Other->nrows, sizeof(float), "baseline ranking");
    int64      *own = NULL;

    if (counts == NULL)
    {
        own = AllocChecked(Other->nrows, sizeof(int64), "baseline ranking");
        it_csr_row_positives(Other, (float) t->o.min_weight, own);
        counts = own;
    }
    for (int64 i = 0; i < Other->nrows; i++)
        base[i] = (float) counts[i];
    if (own != NULL)
        pfree(own);
    memset(&sd, 0, sizeof(sd));
    sd.ids = ids;
    sd.nrows = R->nrows;
    sd.R = R;
    sd.F = F;
    sd.Y = Y;
    sd.m = Other->nrows;
    sd.base = base;
    sd.alpha = t->tm->alpha;
    sd.k = t->tm->k;
    FitSide(t, s, &sd);
    pfree(base);
    CHECK_FOR_INTERRUPTS();
}

/*
 * The source models must share users with this model (else the mapping
 * has nothing to learn from, which is a wrong setup: other ids, or no map).
 */
static void
CheckSharedUsers(ItTransferTrain *t, const ItTrainedModel *tm)
{
    const ItEncoded *enc = t->source.enc;
    int64       i = 0;
    int64       shared = 0;

    for (int64 r = 0; r < enc->n; r++)
    {
        while (i < tm->nusers && tm->user_ids[i] < enc->ids[r])
            i++;
        if (i < tm->nusers && tm->user_ids[i] == enc->ids[r])
            shared++;
    }
    if (shared == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("the source models share no users with the interactions of this model"),
                 errdetail("The source models have " INT64_FORMAT " users%s, none of them among the " INT64_FORMAT " users trained here.",
                           enc->n, t->o.source_user_map ? " through source_user_map" : "", tm->nusers),
                 errhint(t->o.source_user_map ?
                         "Check that source_user_map has this model's ids in user_id and the source models' in source_user_id." :
                         "When the source models know the same people by other ids, give option source_user_map: "
                         "a table or query with columns user_id and source_user_id.")));
}

/*
 * The social side: its rows from the links and the trained vectors, then
 * fitted as the user features are; kept only when it beats them too.
 */
static void
FitSocial(ItTransferTrain *t, const ItTrainedModel *tm)
{
    PriorSide  *s = &t->social;
    int64       unknown;

    s->enc = ItSocialRows(t->links, tm->user_ids, tm->nusers, tm->X, tm->k,
                          t->user.enc, &unknown);
    if (t->links->self_links > 0 || unknown > 0 || t->links->zero_weight > 0)
        SideNotice(s, NULL,
                   psprintf("user_links of model \"%s\": " INT64_FORMAT " self-links, " INT64_FORMAT
                            " links of weight 0 and " INT64_FORMAT " links to users the model has no vector for were ignored",
                            t->model, t->links->self_links, t->links->zero_weight, unknown));
    CheckModelSize(s, &t->o, t->k);
    FitSideOn(t, s, tm->user_ids, tm->R, tm->X, tm->Rt, tm->popularity, tm->Y);
    if (s->use_features && t->user.use_features && !(s->precision > t->user.precision))
    {
        s->use_features = false;
        SideNotice(s, NULL,
                   psprintf("links did not beat the user features alone (precision@%d %.3f vs %.3f on the validation users); "
                            "new users with links will get the features prior",
                            IT_PRIOR_EVAL_K, s->precision, t->user.precision));
    }
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
    /* the options said "auto" or a number; training has resolved it */
    t->o.regularization = tm->regularization;

    /* the budget of each side: a share of the ALS work, with a floor */
    {
        double      k = tm->k;
        double      cg = t->o.cg_steps;
        double      als = (double) t->o.iterations *
            (((double) tm->nusers + tm->nitems) * k * k * (cg + 1) +
             2.0 * tm->R->nnz * k * (2 * cg + 2));

        t->budget = t->o.budget * Max(IT_PRIOR_WORK_FLOOR, IT_PRIOR_WORK_SHARE * als);
    }

    /* the popularity term of the fold-in rankings, as serving scores it */
    {
        int64       top = 0;

        for (int64 i = 0; i < tm->nitems; i++)
            top = Max(top, tm->popularity[i]);
        t->pop = AllocChecked(Max(tm->nitems, 1), sizeof(float), "item popularity");
        for (int64 i = 0; i < tm->nitems; i++)
            t->pop[i] = top > 0 ? (float) ((double) tm->popularity[i] / (double) top) : 0.0f;
    }

    /* users against item popularity, items against user activity */
    if (t->user.enc != NULL)
        FitSideOn(t, &t->user, tm->user_ids, tm->R, tm->X, tm->Rt, tm->popularity, tm->Y);
    if (t->item.enc != NULL)
        FitSideOn(t, &t->item, tm->item_ids, tm->Rt, tm->Y, tm->R, NULL, tm->X);
    if (t->source.enc != NULL)
    {
        CheckSharedUsers(t, tm);
        FitSideOn(t, &t->source, tm->user_ids, tm->R, tm->X, tm->Rt, tm->popularity, tm->Y);
    }
    if (t->links != NULL)
        FitSocial(t, tm);

    if (tm->nusers > 0 && tm->nitems > 0)
    {
        instr_time  start;

        INSTR_TIME_SET_CURRENT(start);
        PopulationFoldIn(t);
        t->pop_seconds = ItElapsedSeconds(start);
    }
    t->tm = NULL;
    /* a deferred choice still ranks with them */
    if (t->pop_job == NULL)
    {
        pfree(t->pop);
        t->pop = NULL;
    }
    MemoryContextSwitchTo(old);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */


static double
ChosenWeight(const FoldInChoice *f)
{
    return f->c.measured ? Rounded(EntryWeight(f, f->c.chosen)) : 0.0;
}

static double
ChosenBlend(const FoldInChoice *f)
{
    return f->c.measured ? Rounded(EntryBlend(f, f->c.chosen)) : 0.0;
}

/* The priors of the users known only in the source models, one batch per set of sources. */
static void
WriteMappedUsers(ItTransferTrain *t, const char *model, int version)
{
    PriorSide  *s = &t->source;
    int64      *zeros;

    if (s->nnew == 0)
        return;
    zeros = AllocChecked(s->nnew + 1, sizeof(int64), "mapped users");
    memset(zeros, 0, sizeof(int64) * (s->nnew + 1));
    for (int mask = 1; mask < (1 << t->sm->n); mask++)
    {
        ItFactorRows rows;
        int64       n = 0;
        int64      *ids = AllocChecked(s->nnew, sizeof(int64), "mapped users");
        float      *factors = AllocChecked(s->nnew * t->k, sizeof(float), "mapped users");

        for (int64 i = 0; i < s->nnew; i++)
        {
            if (s->new_present[i] != mask)
                continue;
            ids[n] = s->new_ids[i];
            memcpy(factors + n * t->k, s->new_factors + i * t->k, sizeof(float) * t->k);
            n++;
        }
        if (n > 0)
        {
            memset(&rows, 0, sizeof(rows));
            rows.users = true;
            rows.mode = IT_FACTORS_INSERT;
            rows.source = ItSourceModelsLabel(t->sm, (uint8) mask);
            rows.context = IT_CONTEXT_SOURCE_MODELS;
            rows.k = t->k;
            rows.n = n;
            rows.ids = ids;
            rows.factors = factors;
            rows.seen_ptr = zeros;
            rows.seen_ids = zeros;
            (void) ItStoreWriteFactors(model, version, &rows);
        }
        pfree(ids);
        pfree(factors);
        CHECK_FOR_INTERRUPTS();
    }
    pfree(zeros);
}

void
ItTransferWriteItems(ItTransferTrain *t, const char *model, int version)
{
    ItFactorRows rows;

    if (t == NULL)
        return;
    WriteMappedUsers(t, model, version);
    if (t->item.nnew == 0)
        return;
    memset(&rows, 0, sizeof(rows));
    rows.users = false;
    rows.mode = IT_FACTORS_INSERT;
    rows.source = "features";
    rows.k = t->k;
    rows.n = t->item.nnew;
    rows.ids = t->item.new_ids;
    rows.factors = t->item.new_factors;
    (void) ItStoreWriteFactors(model, version, &rows);
}

int64
ItTransferNewItems(const ItTransferTrain *t, const int64 **ids, const float **factors)
{
    *ids = NULL;
    *factors = NULL;
    if (t == NULL || t->item.nnew == 0)
        return 0;
    *ids = t->item.new_ids;
    *factors = t->item.new_factors;
    return t->item.nnew;
}

void
ItTransferWrite(ItTransferTrain *t, const char *model, int version)
{
    MemoryContext old;
    PriorSide  *sides[4];
    ItPriorRow  row;

    if (t == NULL)
        return;
    old = MemoryContextSwitchTo(t->cxt);
    sides[0] = &t->user;
    sides[1] = &t->item;
    sides[2] = &t->source;
    sides[3] = &t->social;
    for (int i = 0; i < 4; i++)
    {
        PriorSide  *s = sides[i];

        if (s->enc == NULL)
            continue;
        if (s->metrics.len == 0)
            elog(ERROR, "features model of %s was not fitted", s->what);
        memset(&row, 0, sizeof(row));
        row.kind = s == &t->source ? IT_PRIOR_SOURCE_MODELS : s == &t->social ? IT_PRIOR_SOCIAL :
            s->info->kind == PRIOR_SIDE_USER ? IT_PRIOR_USER_FEATURES : IT_PRIOR_ITEM_FEATURES;
        row.in_use = s->use_features;
        /* only users are folded in */
        row.fold_in_weight = s->info->kind == PRIOR_SIDE_USER ? ChosenWeight(&s->fold) : 0.0;
        row.prior_variance = Rounded(s->prior_variance);
        row.popularity_blend = (float) Rounded(s->popularity_blend);
        row.spec = s->enc->spec;
        row.dims = s->enc->dims;
        row.params = s->params;
        row.nparams = s->params ? s->nparams : 0;
        row.layout = s->layout_json;
        row.metrics = JsonbFromText(s->metrics.data);
        ItStorePrior(model, version, &row);
        CHECK_FOR_INTERRUPTS();
    }

    /* the population prior: its fold-in weight, when training measured one */
    memset(&row, 0, sizeof(row));
    row.kind = IT_PRIOR_POPULATION;
    row.in_use = true;
    row.fold_in_weight = ChosenWeight(&t->pop_fold);
    /* the population has no ranking of its own but that of its fold-in */
    row.popularity_blend = (float) ChosenBlend(&t->pop_fold);
    {
        StringInfoData fold;

        initStringInfo(&fold);
        AppendFoldIn(&fold, &t->pop_fold, true);
        /* each key comes after ", " */
        row.metrics = JsonbFromText(psprintf("{%s}", fold.data + 2));
    }
    ItStorePrior(model, version, &row);

    MemoryContextSwitchTo(old);
}

const char *
ItTransferSummary(ItTransferTrain *t)
{
    PriorSide  *sides[4];
    StringInfoData summary;
    StringInfoData fold;
    bool        first = true;

    if (t == NULL)
        return NULL;
    sides[0] = &t->user;
    sides[1] = &t->item;
    sides[2] = &t->source;
    sides[3] = &t->social;
    initStringInfo(&summary);
    appendStringInfoChar(&summary, '{');
    for (int i = 0; i < 4; i++)
    {
        PriorSide  *s = sides[i];

        if (s->enc == NULL)
            continue;
        appendStringInfo(&summary, "%s\"%s_prior\": %s", first ? "" : ", ", s->side, s->summary.data);
        first = false;
    }
    /* the fold-in weight of the population prior: fold_in_prior_weight, ... */
    initStringInfo(&fold);
    AppendFoldIn(&fold, &t->pop_fold, true);
    /* each key comes after ", " */
    appendStringInfoString(&summary, first ? fold.data + 2 : fold.data);
    appendStringInfoChar(&summary, '}');
    return summary.data;
}

/*
 * The time of every fold-in weight choice: the population prior's and
 * those of the features priors of users (the source's too), which run
 * inside ItTransferFit.
 */
double
ItTransferFoldInSeconds(const ItTransferTrain *t)
{
    if (t == NULL)
        return 0.0;
    return t->pop_seconds + t->user.fold.seconds + t->source.fold.seconds;
}

void
ItTransferEnd(ItTransferTrain *t)
{
    if (t != NULL)
        MemoryContextDelete(t->cxt);
}

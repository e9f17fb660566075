/*
 * import.c
 *    import_model(): a model version from factors trained elsewhere, such
 *    as Spark MLlib's ALS on data that outgrow one machine.
 *
 * The factors come as two sources (a table name or a query, the
 * convention of train()'s sources) with columns id (an integer) and
 * features (real[] or float8[]): the shape in which Spark writes
 * model.userFactors and model.itemFactors through JDBC.  Every row is
 * checked as it streams from the executor (NULL ids and arrays, arrays of
 * other lengths, empty or multidimensional arrays, NULL elements, NaN and
 * infinity); then the ids are sorted and checked for duplicates.
 *
 * Option "interactions" (user_id, item_id[, weight][, ts], as train()
 * reads it) is read onto the imported users and items
 * (ItReadInteractionMatrix, then it_csr_remap): it gives the users' seen
 * lists, the items' popularity, what the priors and the fold-in weight
 * of the population prior are fitted on, and the source serving folds new
 * users in from.  Rows of users without imported factors stay in the
 * source, for fold-in; rows of items without factors are left out.
 * Without it the version knows no interactions: nothing seen, popularity
 * 0, no fold-in (option fold_in false), no priors but the population's
 * with the fold-in weight of its formula.
 *
 * From there the version is made as train() makes one (ItBuildVersion,
 * train.c): the same priors, deploy rule, factor rows and it_model row,
 * with algorithm 'imported' and metrics key "imported" saying from where.
 * train(model) refuses to retrain it: there is no fit to repeat.
 *
 * Access is train()'s for a new definition: the caller must own the model
 * (or create it).  A trainer may not import, as a version's stored sources
 * are read with its owner's rights when it serves.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "common.h"
#include "context.h"
#include "interactions.h"
#include "options.h"
#include "spi_read.h"
#include "store.h"
#include "train.h"
#include "transfer.h"

/* Rows of a side allocated at first, then doubled. */
#define IT_IMPORT_FIRST_ROWS 4096

/* One side's factors as they are read (ItSourceStream). */
typedef struct ImportSide
{
    const char *what;           /* "user_factors", "item_factors" */
    const char *ids_what;       /* "users", "items" */
    MemoryContext cxt;          /* where ids and F grow */
    int         idcol;
    int         fcol;
    Oid         idtype;
    Oid         ftype;          /* FLOAT4ARRAYOID or FLOAT8ARRAYOID */
    int         k;              /* values per row: 0 until the first row */
    int64       n;
    int64       cap;
    int64      *ids;
    float      *F;              /* n * k, in the order read */
    bool        ascending;      /* ids strictly ascending so far */
} ImportSide;

static void
SideStartup(ItSource *src, void *arg)
{
    ImportSide *s = (ImportSide *) arg;

    s->idcol = ItSourceColumn(src, "id", IT_COLUMN_ID, true);
    s->fcol = ItSourceColumn(src, "features", IT_COLUMN_VECTOR, true);
    s->idtype = ItSourceColumnType(src, s->idcol);
    s->ftype = ItSourceColumnType(src, s->fcol);
}

/* Room for one more row (k is known). */
static void
GrowSide(ImportSide *s)
{
    int64       newcap = Max(s->cap * 2, IT_IMPORT_FIRST_ROWS);

    if (s->n >= IT_MAX_ROWS)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s has more than " INT64_FORMAT " rows; a model holds at most that many %s",
                        s->what, (int64) IT_MAX_ROWS, s->ids_what),
                 errhint("Import a sample, or split the catalogue into several models.")));
    newcap = Min(newcap, IT_MAX_ROWS);
    /* newcap <= 2^31 and k <= IT_MAX_FACTORS: the products fit an int64 */
    if ((uint64) newcap * s->k * sizeof(float) > MaxAllocHugeSize)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s is too large: " INT64_FORMAT " rows of %d factors", s->what, newcap, s->k),
                 errhint("Import a sample, or factors of fewer dimensions.")));
    if (s->ids == NULL)
    {
        s->ids = MemoryContextAllocHuge(s->cxt, newcap * sizeof(int64));
        s->F = MemoryContextAllocHuge(s->cxt, newcap * s->k * sizeof(float));
    }
    else
    {
        s->ids = repalloc_huge(s->ids, newcap * sizeof(int64));
        s->F = repalloc_huge(s->F, newcap * s->k * sizeof(float));
    }
    s->cap = newcap;
    CHECK_FOR_INTERRUPTS();
}

static void
NotFinite(ImportSide *s, int64 id, int element, double v)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("features of id " INT64_FORMAT " in %s has a value that is not a finite real (element %d is %g)",
                    id, s->what, element, v),
             errhint("Factors must be finite numbers: export them again from a model that converged, "
                     "or filter the rows with NaN or infinite values.")));
}

/* One row: checked, and its id and factors kept. */
static void
SideRow(ItSource *src, TupleTableSlot *slot, void *arg)
{
    ImportSide *s = (ImportSide *) arg;
    bool        isnull;
    Datum       d;
    int64       id;
    ArrayType  *arr;
    int         nvals;
    float      *dst;

    d = slot_getattr(slot, s->idcol + 1, &isnull);
    if (isnull)
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("id is NULL in row " INT64_FORMAT " of %s", src->rows, s->what),
                 errhint("Every row needs the id of its %s; filter the rows without one out in a query.",
                         s->ids_what[0] == 'u' ? "user" : "item")));
    id = ItDatumGetId(src, s->idcol, s->idtype, d, src->rows);

    d = slot_getattr(slot, s->fcol + 1, &isnull);
    if (isnull)
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("features of id " INT64_FORMAT " in %s is NULL", id, s->what),
                 errhint("Every row needs its factors; filter the rows without them out in a query.")));
    arr = DatumGetArrayTypeP(d);
    if (ARR_ELEMTYPE(arr) != (s->ftype == FLOAT4ARRAYOID ? FLOAT4OID : FLOAT8OID))
        elog(ERROR, "features of %s has elements of type %u", s->what, ARR_ELEMTYPE(arr));
    if (ARR_NDIM(arr) > 1)
        ereport(ERROR,
                (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                 errmsg("features of id " INT64_FORMAT " in %s is a %d-dimensional array", id, s->what,
                        ARR_NDIM(arr)),
                 errhint("Give each row's factors as a one-dimensional array, as Spark's userFactors and "
                         "itemFactors hold them.")));
    nvals = ARR_NDIM(arr) == 0 ? 0 : ARR_DIMS(arr)[0];
    if (nvals == 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("features of id " INT64_FORMAT " in %s is empty", id, s->what),
                 errhint("Every row needs its factors, as many as the model that made them has.")));
    if (s->k == 0)
    {
        if (nvals > IT_MAX_FACTORS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("features of id " INT64_FORMAT " in %s has %d values; a model holds at most %d factors",
                            id, s->what, nvals, IT_MAX_FACTORS),
                     errhint("Train the model elsewhere with at most %d factors (Spark: setRank).", IT_MAX_FACTORS)));
        s->k = nvals;
    }
    else if (nvals != s->k)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("features of id " INT64_FORMAT " in %s has %d values, and those of the rows before %d",
                        id, s->what, nvals, s->k),
                 errhint("Every row needs as many factors as the others: export both sides from one model.")));
    if (ARR_HASNULL(arr))
    {
        bits8      *bitmap = ARR_NULLBITMAP(arr);

        for (int j = 0; j < nvals; j++)
            if (!(bitmap[j / 8] & (1 << (j % 8))))
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("features of id " INT64_FORMAT " in %s has a NULL (element %d)",
                                id, s->what, j + 1),
                         errhint("Factors are numbers: export them again from the trained model, or filter the row.")));
    }

    if (s->n >= s->cap)
        GrowSide(s);
    if (s->n > 0 && id <= s->ids[s->n - 1])
        s->ascending = false;
    s->ids[s->n] = id;
    dst = s->F + s->n * s->k;
    if (s->ftype == FLOAT4ARRAYOID)
    {
        memcpy(dst, ARR_DATA_PTR(arr), sizeof(float) * nvals);
        for (int j = 0; j < nvals; j++)
            if (!isfinite(dst[j]))
                NotFinite(s, id, j + 1, dst[j]);
    }
    else
    {
        const float8 *v = (const float8 *) ARR_DATA_PTR(arr);

        for (int j = 0; j < nvals; j++)
        {
            /* a double beyond the range of a real would be infinite here */
            if (!isfinite(v[j]) || fabs(v[j]) > FLT_MAX)
                NotFinite(s, id, j + 1, v[j]);
            dst[j] = (float) v[j];
        }
    }
    s->n++;
}

/*
 * Reads one side with the caller's privileges into *s: ids ascending and
 * distinct, s->F their factors in that order.
 */
static void
ReadSide(ImportSide *s, const char *source, const char *what, const char *ids_what, const char *model)
{
    ItSource    src;

    memset(s, 0, sizeof(*s));
    s->what = what;
    s->ids_what = ids_what;
    s->cxt = CurrentMemoryContext;
    s->ascending = true;
    ItSourceStream(&src, source, what, model, NULL, 0, NULL, NULL, SideStartup, SideRow, s);
    if (s->n == 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("%s of model \"%s\" has no rows", what, model),
                 errhint("Give the table or query the factors were written to, with columns id and features.")));

    /* in id order, each id once (the factor rows and serving rely on it) */
    if (!s->ascending)
    {
        int32      *idx = ItAllocArray(s->n, sizeof(int32));
        int64      *sorted;
        int64       m = ItMapIds(s->ids, s->n, &sorted, idx, ids_what);
        float      *F;

        if (m < s->n)
        {
            bool       *seen = ItAllocArray(m, sizeof(bool));

            memset(seen, 0, sizeof(bool) * m);
            for (int64 j = 0; j < s->n; j++)
            {
                if (seen[idx[j]])
                    ereport(ERROR,
                            (errcode(ERRCODE_UNIQUE_VIOLATION),
                             errmsg("%s has more than one row for id " INT64_FORMAT, what, s->ids[j]),
                             errhint("Each id must appear once; deduplicate the rows in a query, for example "
                                     "SELECT DISTINCT ON (id) id, features FROM ... ORDER BY id.")));
                seen[idx[j]] = true;
            }
            elog(ERROR, "duplicate ids of %s not found", what);
        }
        F = ItAllocArray(m * s->k, sizeof(float));
        for (int64 j = 0; j < s->n; j++)
        {
            memcpy(F + (int64) idx[j] * s->k, s->F + j * s->k, sizeof(float) * s->k);
            if ((j & 0xFFFF) == 0xFFFF)
                CHECK_FOR_INTERRUPTS();
        }
        pfree(s->F);
        pfree(s->ids);
        pfree(idx);
        s->F = F;
        s->ids = sorted;
    }
    CHECK_FOR_INTERRUPTS();
}

/* ------------------------------------------------------------------------
 * The interactions, on the imported users and items
 * ------------------------------------------------------------------------ */

/* What the interactions had that the factors do not. */
typedef struct ImportLeftOut
{
    int64       users;          /* distinct users without factors (served by fold-in) */
    int64       items;          /* distinct items without factors (left out) */
    int64       user_pairs;     /* their user-item pairs */
    int64       item_pairs;     /* pairs of known users with those items */
} ImportLeftOut;

/* No interactions: every user's row and every item's column empty. */
static void
EmptyInteractions(ItTrainData *d)
{
    d->R.nrows = d->nusers;
    d->R.ncols = d->nitems;
    d->R.nnz = 0;
    d->R.indptr = ItAllocArray(d->nusers + 1, sizeof(int64));
    memset(d->R.indptr, 0, sizeof(int64) * (d->nusers + 1));
    d->R.indices = ItAllocArray(1, sizeof(int32));
    d->R.data = ItAllocArray(1, sizeof(float));
    d->Rt.nrows = d->nitems;
    d->Rt.ncols = d->nusers;
    d->Rt.nnz = 0;
    d->Rt.indptr = ItAllocArray(d->nitems + 1, sizeof(int64));
    memset(d->Rt.indptr, 0, sizeof(int64) * (d->nitems + 1));
    d->Rt.indices = ItAllocArray(1, sizeof(int32));
    d->Rt.data = ItAllocArray(1, sizeof(float));
}

/* map[i] = the index of ids[i] in sorted[0..m), -1 when absent; returns how many are absent. */
static int64
MapOnto(const int64 *ids, int64 n, const int64 *sorted, int64 m, int32 *map)
{
    int64       absent = 0;

    for (int64 i = 0; i < n; i++)
    {
        map[i] = (int32) it_find_id(sorted, m, ids[i]);
        if (map[i] < 0)
            absent++;
        if ((i & 0xFFFFF) == 0xFFFFF)
            CHECK_FOR_INTERRUPTS();
    }
    return absent;
}

/*
 * Reads the interactions (as train() does: duplicates summed, rows of
 * weight 0 left out, contexts) and moves them onto d's users and items
 * (set by the caller), which gives their rows and columns their order.
 */
static void
ImportInteractions(const char *source, const char *model, ItContextRule rule, struct pg_tz *tz,
                   ItTrainData *d, ImportLeftOut *out)
{
    ItTrainData raw;
    int32      *rowmap;
    int32      *colmap;
    int64       dropped[2];

    ItReadInteractionMatrix(source, model, rule, tz, &raw);
    if (raw.n_domains > 0)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("import_model() does not take interactions with a domain column"),
                 errhint("Select user_id, item_id, weight and ts only; to serve several catalogues, "
                         "import one model per domain.")));

    rowmap = ItAllocArray(raw.nusers, sizeof(int32));
    colmap = ItAllocArray(raw.nitems, sizeof(int32));
    out->users = MapOnto(raw.user_ids, raw.nusers, d->user_ids, d->nusers, rowmap);
    out->items = MapOnto(raw.item_ids, raw.nitems, d->item_ids, d->nitems, colmap);
    if (out->items == raw.nitems)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("none of the " INT64_FORMAT " items of interactions of model \"%s\" has imported factors",
                        raw.nitems, model),
                 errhint("Check that item_factors and interactions use the same item ids.")));

    d->R.nrows = d->nusers;
    d->R.ncols = d->nitems;
    d->R.indptr = ItAllocArray(d->nusers + 1, sizeof(int64));
    d->R.indices = ItAllocArray(Max(raw.R.nnz, 1), sizeof(int32));
    d->R.data = ItAllocArray(Max(raw.R.nnz, 1), sizeof(float));
    if (raw.times != NULL)
        d->times = ItAllocArray(Max(raw.R.nnz, 1), sizeof(double));
    if (it_csr_remap(&raw.R, rowmap, colmap, &d->R, raw.times, d->times, dropped) < 0)
        elog(ERROR, "could not map the interactions onto the imported users and items");
    out->user_pairs = dropped[0];
    out->item_pairs = dropped[1];
    CHECK_FOR_INTERRUPTS();

    /* the rows by context: row user * n_contexts + context, mapped alike */
    if (raw.n_contexts > 0)
    {
        int         nc = raw.n_contexts;
        int32      *cmap;

        if ((double) d->nusers * nc >= (double) PG_INT32_MAX)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("too many users times contexts (" INT64_FORMAT " x %d)", d->nusers, nc),
                     errhint("Use fewer contexts.")));
        cmap = ItAllocArray(raw.C.nrows, sizeof(int32));
        for (int64 u = 0; u < raw.nusers; u++)
            for (int c = 0; c < nc; c++)
                cmap[u * nc + c] = rowmap[u] < 0 ? -1 : rowmap[u] * nc + c;
        d->n_contexts = nc;
        d->contexts = raw.contexts;
        d->C.nrows = d->nusers * nc;
        d->C.ncols = d->nitems;
        d->C.indptr = ItAllocArray(d->C.nrows + 1, sizeof(int64));
        d->C.indices = ItAllocArray(Max(raw.C.nnz, 1), sizeof(int32));
        d->C.data = ItAllocArray(Max(raw.C.nnz, 1), sizeof(float));
        if (it_csr_remap(&raw.C, cmap, colmap, &d->C, NULL, NULL, NULL) < 0)
            elog(ERROR, "could not map the interactions by context onto the imported users and items");
        pfree(cmap);
        pfree(raw.C.indptr);
        pfree(raw.C.indices);
        pfree(raw.C.data);
    }

    d->Rt.indptr = ItAllocArray(d->nitems + 1, sizeof(int64));
    d->Rt.indices = ItAllocArray(Max(d->R.nnz, 1), sizeof(int32));
    d->Rt.data = ItAllocArray(Max(d->R.nnz, 1), sizeof(float));
    it_csr_transpose(&d->R, &d->Rt);
    d->rows_read = raw.rows_read;
    d->read_seconds = raw.read_seconds;

    pfree(rowmap);
    pfree(colmap);
    pfree(raw.R.indptr);
    pfree(raw.R.indices);
    pfree(raw.R.data);
    pfree(raw.Rt.indptr);
    pfree(raw.Rt.indices);
    pfree(raw.Rt.data);
    if (raw.times)
        pfree(raw.times);
    pfree(raw.user_ids);
    pfree(raw.item_ids);
    CHECK_FOR_INTERRUPTS();
}

/* ------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------ */

/*
 * A source given as an option (key), taken out of *given; NULL when not
 * given (or JSON null).
 */
static char *
TakeSourceOption(Jsonb **given, const char *key)
{
    JsonbValue  buf;
    JsonbValue *v;
    char       *source = NULL;

    if (*given == NULL || !JB_ROOT_IS_OBJECT(*given))
        return NULL;
    v = getKeyJsonValueFromContainer(&(*given)->root, key, strlen(key), &buf);
    if (v == NULL)
        return NULL;
    if (v->type == jbvString)
        source = pnstrdup(v->val.string.val, v->val.string.len);
    else if (v->type != jbvNull)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"%s\" of import_model() must be a string: a table name, a view name or a query", key),
                 errhint("For example '{\"%s\": \"%s\"}'.", key,
                         strcmp(key, "interactions") == 0 ? "events" :
                         strcmp(key, "user_links") == 0 ? "friends" :
                         strcmp(key, "user_features") == 0 ? "customers" : "products")));
    *given = DatumGetJsonbP(DirectFunctionCall2(jsonb_delete, JsonbPGetDatum(*given),
                                                CStringGetTextDatum(key)));
    return source;
}

/* Whether the caller's options name key (with a value other than null). */
static bool
OptionGiven(Jsonb *given, const char *key)
{
    JsonbValue  buf;
    JsonbValue *v;

    if (given == NULL || !JB_ROOT_IS_OBJECT(given))
        return false;
    v = getKeyJsonValueFromContainer(&given->root, key, strlen(key), &buf);
    return v != NULL && v->type != jbvNull;
}

/* An option that needs the interactions, without them. */
static void
NeedsInteractions(const char *option, const char *why)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("option \"%s\" %s, and option \"interactions\" is not given", option, why),
             errhint("Add option interactions, a table or query of user_id, item_id[, weight][, ts], "
                     "or leave option %s out.", option)));
}

/* Sets key to the JSON text value in *options. */
static void
SetOption(Jsonb **options, const char *key, const char *value)
{
    *options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*options),
                                                  DirectFunctionCall1(jsonb_in,
                                                                      CStringGetDatum(psprintf("{\"%s\": %s}", key, value)))));
}

/* ------------------------------------------------------------------------
 * import_model()
 * ------------------------------------------------------------------------ */

/* The it_model.metrics key "imported": from where, and what was left out. */
static char *
ImportedKey(const char *user_factors, const char *item_factors, const ImportSide *u,
            const ImportSide *i, const char *interactions, const ImportLeftOut *left)
{
    StringInfoData b;

    initStringInfo(&b);
    appendStringInfoString(&b, "\"imported\": {\"user_factors\": ");
    escape_json(&b, user_factors);
    appendStringInfoString(&b, ", \"item_factors\": ");
    escape_json(&b, item_factors);
    appendStringInfo(&b, ", \"factors\": %d, \"users\": " INT64_FORMAT ", \"items\": " INT64_FORMAT,
                     u->k, u->n, i->n);
    if (interactions == NULL)
        appendStringInfoString(&b, ", \"interactions\": false");
    else
        appendStringInfo(&b, ", \"interactions\": true, \"users_without_factors\": " INT64_FORMAT
                         ", \"items_without_factors\": " INT64_FORMAT
                         ", \"pairs_of_users_without_factors\": " INT64_FORMAT
                         ", \"pairs_of_items_without_factors\": " INT64_FORMAT,
                         left->users, left->items, left->user_pairs, left->item_pairs);
    appendStringInfoChar(&b, '}');
    return b.data;
}

/*
 * The whole of import_model(): check, read, fit the priors, write.  Opens
 * and closes its own SPI connection; everything it allocates is freed
 * before it returns.
 */
static void
ImportModel(const char *model, const char *user_factors, const char *item_factors, Jsonb *given,
            ItTrainResult *res)
{
    MemoryContext ctx;
    MemoryContext oldctx;
    ItWriteState st;
    ItDefinition def;
    Jsonb      *options;
    ItOptions   opts;
    ItContextRule rule;
    struct pg_tz *tz;
    ImportSide  us;
    ImportSide  is;
    ImportLeftOut left;
    ItTrainData d;
    ItVersionBuild b;
    int         k;
    float      *XtX;
    float      *YtY;
    char       *key;

    memset(&b, 0, sizeof(b));
    INSTR_TIME_SET_CURRENT(b.start);
    ItCheckModelName(model);
    ItRefuseReadOnly("import", model);

    /* the sources given as options, then the options train() knows */
    memset(&def, 0, sizeof(def));
    def.interactions = TakeSourceOption(&given, "interactions");
    def.user_features = TakeSourceOption(&given, "user_features");
    def.item_features = TakeSourceOption(&given, "item_features");
    def.user_links = TakeSourceOption(&given, "user_links");
    def.stored = false;
    def.search_path = ItDefinitionSearchPath();
    options = ItResolveOptions(given);
    ItReadOptions(options, NULL, &opts);
    if (strcmp(opts.deploy, "if_better") == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"deploy\" of import_model() must be always or never, not if_better"),
                 errhint("if_better refits the options on a validation slice, which imported factors have no fit for: "
                         "import with deploy never, compare the versions with evaluate(), then deploy(model, version).")));
    if (opts.timezone != NULL && opts.context == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"timezone\" is for contexts derived from ts, and option \"context\" is not given"),
                 errhint("Add option context (weekpart or daypart), or leave timezone out.")));
    if (def.interactions == NULL)
    {
        /* the priors and contexts are fitted on the interactions */
        if (def.user_features != NULL)
            NeedsInteractions("user_features", "trains the users' features prior on the interactions");
        if (def.item_features != NULL)
            NeedsInteractions("item_features", "trains the items' features prior on the interactions");
        if (def.user_links != NULL)
            NeedsInteractions("user_links", "trains the prior of linked users on the interactions");
        if (opts.source_models != NULL)
            NeedsInteractions("source_models", "maps the source models' users on the interactions");
        if (opts.context != NULL)
            NeedsInteractions("context", "derives contexts from the interactions' ts");
        /* no source to fold users in from */
        if (OptionGiven(given, "fold_in") && opts.fold_in)
            NeedsInteractions("fold_in", "folds users in from their rows in the interactions");
        opts.fold_in = false;
        SetOption(&options, "fold_in", "false");
    }
    rule = ItContextRuleOf(&opts, &options, &tz);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ctx = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer import",
                                ALLOCSET_DEFAULT_SIZES);
    oldctx = MemoryContextSwitchTo(ctx);
    /* counted against interest_transfer.train_memory, as train() is */
    ItMemoryBudgetBegin(model, ctx);

    /*
     * Fail before the work when the caller may not change this model: a
     * new definition needs its owner.  This also queues behind another
     * writer of it.
     */
    (void) ItBeginWrite(model, false, IT_PRIV_OWN, "import", &st);
    ItEndWrite(&st);

    /* the factors, with the caller's privileges */
    ReadSide(&us, user_factors, "user_factors", "users", model);
    ReadSide(&is, item_factors, "item_factors", "items", model);
    if (us.k != is.k)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("user_factors of model \"%s\" has %d factors per row and item_factors %d",
                        model, us.k, is.k),
                 errhint("Export both sides from one model: userFactors and itemFactors of the same fit.")));
    k = us.k;
    if (OptionGiven(given, "factors") && opts.factors != k)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"factors\" is %d, and the imported factors have %d", (int) opts.factors, k),
                 errhint("Leave option factors out: the imported arrays decide it.")));
    opts.factors = k;
    SetOption(&options, "factors", psprintf("%d", k));

    /* features read and encoded before anything is written (transfer.c) */
    ItCheckFeatureSource(def.user_features, "user_features", "user_id", model);
    ItCheckFeatureSource(def.item_features, "item_features", "item_id", model);
    b.transfer = ItTransferRead(model, def.user_features, def.item_features, def.user_links, &opts);

    memset(&d, 0, sizeof(d));
    d.nusers = us.n;
    d.user_ids = us.ids;
    d.nitems = is.n;
    d.item_ids = is.ids;
    memset(&left, 0, sizeof(left));
    if (def.interactions != NULL)
    {
        ImportInteractions(def.interactions, model, rule, tz, &d, &left);
        if (left.users > 0 || left.items > 0)
            ereport(NOTICE,
                    (errmsg("interactions of model \"%s\": " INT64_FORMAT " users without imported factors "
                            "(they are folded in from their rows when served) and " INT64_FORMAT
                            " items without imported factors (their rows are left out)",
                            model, left.users, left.items)));
    }
    else
        EmptyInteractions(&d);
    b.keys = ItPrepareInteractions(&d, &opts, &options, model, false);
    key = ImportedKey(user_factors, item_factors, &us, &is, def.interactions, &left);
    b.keys = b.keys ? psprintf("%s, %s", key, b.keys) : key;
    b.t_read = ItElapsedSeconds(b.start);

    /* the objective of training here, of the imported factors on these interactions */
    XtX = ItAllocArray((int64) k * k, sizeof(float));
    YtY = ItAllocArray((int64) k * k, sizeof(float));
    it_gram(us.F, d.nusers, k, XtX);
    it_gram(is.F, d.nitems, k, YtY);
    CHECK_FOR_INTERRUPTS();
    b.loss = it_als_loss_gram_mt(&d.R, us.F, is.F, XtX, YtY, k, (float) opts.regularization,
                                 (float) opts.alpha, (float) opts.positive_threshold,
                                 ItThreads((int) opts.threads));
    if (!isfinite(b.loss))
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("the imported factors of model \"%s\" are too large: their scores overflow", model),
                 errhint("Check the export: factors of a converged model are small numbers.")));
    pfree(XtX);
    pfree(YtY);
    b.t_factors = ItElapsedSeconds(b.start);

    b.model = model;
    b.def = &def;
    b.algorithm = "imported";
    b.action = "import";
    b.options = options;
    b.opts = &opts;
    b.d = &d;
    b.X = us.F;
    b.Y = is.F;
    b.history = "[]";
    ItBuildVersion(&b, res);
    ItTransferEnd(b.transfer);

    MemoryContextSwitchTo(oldctx);
    MemoryContextDelete(ctx);
    SPI_finish();
}

/*
 * import_model(model, user_factors, item_factors, options)
 */
PG_FUNCTION_INFO_V1(interest_transfer_import_model);
Datum
interest_transfer_import_model(PG_FUNCTION_ARGS)
{
    char       *model;
    char       *user_factors;
    char       *item_factors;
    Jsonb      *options = NULL;
    ItTrainResult res;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model, for example import_model('shop', 'user_factors', 'item_factors').");
    if (PG_ARGISNULL(1))
        ItNullArgument("user_factors", "Give a table or view name or a query returning id and features.");
    if (PG_ARGISNULL(2))
        ItNullArgument("item_factors", "Give a table or view name or a query returning id and features.");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));
    user_factors = text_to_cstring(PG_GETARG_TEXT_PP(1));
    item_factors = text_to_cstring(PG_GETARG_TEXT_PP(2));
    if (!PG_ARGISNULL(3))
        options = PG_GETARG_JSONB_P(3);

    ItSetSchema(fcinfo);
    InitMaterializedSRF(fcinfo, 0);
    ImportModel(model, user_factors, item_factors, options, &res);
    ItReturnTrainResult(fcinfo, model, &res);
    return (Datum) 0;
}

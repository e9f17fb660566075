/*
 * interactions.c
 *    The one reader of an interactions source: its columns, the checks of
 *    every row, duplicates and id mapping (see interactions.h).
 *
 * Training, refresh and serving read the same columns with the same
 * checks; they differ only in how a bad row is named (ItRowNaming): a
 * training source is the caller's own query, whose rows they can count,
 * while a stored source read while serving is named by the user and the
 * item at fault.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "pgtime.h"

#include "interactions.h"

void
ItFindInteractionColumns(ItSource *src, ItInteractionColumns *c)
{
    c->user = ItSourceColumn(src, "user_id", IT_COLUMN_ID, true);
    c->item = ItSourceColumn(src, "item_id", IT_COLUMN_ID, true);
    c->weight = ItSourceColumn(src, "weight", IT_COLUMN_WEIGHT, false);
    /* training orders its validations by ts; refresh finds changed users by it */
    c->ts = ItSourceColumn(src, "ts", IT_COLUMN_TIME, false);
    /* items of different domains are different items */
    c->domain = ItSourceColumn(src, "domain", IT_COLUMN_TEXT, false);
    /*
     * a user's taste in a context (context.c): a text column; a column of
     * that name of another type is not one (a source that had it before
     * contexts existed keeps working)
     */
    c->context = -1;
    {
        int         col = SPI_fnumber(src->tupdesc, "context");

        if (col > 0 && !TupleDescAttr(src->tupdesc, col - 1)->attisdropped)
        {
            Oid         t = getBaseType(TupleDescAttr(src->tupdesc, col - 1)->atttypid);

            if (t == TEXTOID || t == VARCHAROID || t == BPCHAROID)
                c->context = col - 1;
        }
    }
    c->user_type = ItSourceColumnType(src, c->user);
    c->item_type = ItSourceColumnType(src, c->item);
    c->weight_type = c->weight >= 0 ? ItSourceColumnType(src, c->weight) : InvalidOid;
    c->ts_type = c->ts >= 0 ? ItSourceColumnType(src, c->ts) : InvalidOid;
}

/* ------------------------------------------------------------------------
 * One row
 * ------------------------------------------------------------------------ */

/* A row's values, however it was fetched. */
typedef struct ItRawRow
{
    Datum       user;
    Datum       item;
    Datum       weight;
    Datum       domain;
    Datum       context;
    bool        context_null;
    bool        user_null;
    bool        item_null;
    bool        weight_null;
    bool        domain_null;
} ItRawRow;

static void
BadWeight(ItRowNaming naming, const char *problem, int64 row, int64 user_id, int64 item_id,
          const char *hint)
{
    if (naming == IT_ROWS_TRAIN)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("weight in row " INT64_FORMAT " of interactions is %s", row, problem),
                 errhint("%s", hint)));
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("weight of user " INT64_FORMAT " for item " INT64_FORMAT " in interactions is %s",
                    user_id, item_id, problem),
             errhint("%s", hint)));
}

/* The weight of a row: ERROR on NULL, NaN, infinite or negative. */
static double
RowWeight(const ItInteractionColumns *c, ItRowNaming naming, Datum d, bool isnull,
          int64 row, int64 user_id, int64 item_id)
{
    double      w;

    if (c->weight < 0)
        return 1.0;
    if (isnull)
    {
        if (naming == IT_ROWS_TRAIN)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("weight is NULL in row " INT64_FORMAT " of interactions", row),
                     errhint("Give every row a weight, for example coalesce(weight, 1) AS weight, or filter the rows.")));
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("weight of user " INT64_FORMAT " for item " INT64_FORMAT " in interactions is NULL",
                        user_id, item_id),
                 errhint("Give every row a weight, for example coalesce(weight, 1) AS weight, or filter the rows.")));
    }
    w = ItDatumGetWeight(d, c->weight_type);
    if (isnan(w))
        BadWeight(naming, "NaN", row, user_id, item_id,
                  "Use weight 0 for rows that should not count, or filter the rows.");
    if (isinf(w) || w > FLT_MAX)
        BadWeight(naming, w > 0 ? "infinite or too large" : "infinite", row, user_id, item_id,
                  "Use finite weights, scaled so that they fit in a real, or filter the rows.");
    if (w < 0)
        BadWeight(naming, "negative", row, user_id, item_id,
                  "Weights count positive evidence: use weight 0 for rows that should not count, or filter the rows.");
    return w;
}

/*
 * A domain or context name of interactions: ERROR when empty, too long,
 * or starting with '@' (kept for the extension's own rows).
 */
static const char *
CheckedName(const char *name, const char *what, int maxlen, const char *example)
{
    if (name[0] == '\0' || strlen(name) > (size_t) maxlen || name[0] == '@')
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s \"%s\" of interactions is %s", what, name,
                        name[0] == '\0' ? "empty" : name[0] == '@' ? "reserved (it starts with @)" :
                        psprintf("longer than %d bytes", maxlen)),
                 errhint("Name each %s with 1 to %d bytes, not starting with @, for example '%s'.",
                         what, maxlen, example)));
    return name;
}

/* The domain of a row: ERROR on NULL, an empty or too long name. */
static const char *
RowDomain(ItRowNaming naming, const ItRawRow *raw, int64 row, int64 user_id, int64 item_id)
{
    char       *name;

    if (raw->domain_null)
    {
        if (naming == IT_ROWS_TRAIN)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("domain is NULL in row " INT64_FORMAT " of interactions", row),
                     errhint("Give every row the domain of its item, for example coalesce(domain, 'shop') AS domain, or filter the rows.")));
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("domain of user " INT64_FORMAT " for item " INT64_FORMAT " in interactions is NULL",
                        user_id, item_id),
                 errhint("Give every row the domain of its item, or filter the rows.")));
    }
    name = TextDatumGetCString(raw->domain);
    return CheckedName(name, "domain", IT_DOMAIN_MAX_LEN, "books");
}

/*
 * Checks and parses one row into *out; false for a row of weight 0 (not a
 * positive).  With IT_ROWS_USER, out->user_id is set by the caller and the
 * user column is not read.
 */
static bool
ParseRow(ItSource *src, const ItInteractionColumns *c, const ItInteractionRead *how,
         const ItRawRow *raw, ItInteraction *out)
{
    int64       row = out->row;

    if (how->naming != IT_ROWS_USER)
    {
        if (raw->user_null)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("user_id is NULL in row " INT64_FORMAT " of interactions", row),
                     errhint("Filter out the rows without a user, for example WHERE user_id IS NOT NULL.")));
        if (how->naming == IT_ROWS_SCAN)
            out->user_id = ItDatumGetId(src, c->user, c->user_type, raw->user, row);
    }
    if (how->ids_only)
        return true;

    if (raw->item_null)
    {
        if (how->naming == IT_ROWS_USER)
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("item_id is NULL in a row of user " INT64_FORMAT " in interactions", out->user_id),
                     errhint("Filter out the rows without an item, for example WHERE item_id IS NOT NULL.")));
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("item_id is NULL in row " INT64_FORMAT " of interactions", row),
                 errhint("Filter out the rows without an item, for example WHERE item_id IS NOT NULL.")));
    }
    /* messages about the weight name the user and the item, except in training */
    if (how->naming != IT_ROWS_TRAIN)
        out->item_id = ItDatumGetId(src, c->item, c->item_type, raw->item, row);
    out->weight = RowWeight(c, how->naming, raw->weight, raw->weight_null, row,
                            out->user_id, out->item_id);
    if (out->weight == 0)
        return false;
    if (how->naming == IT_ROWS_TRAIN)
    {
        out->user_id = ItDatumGetId(src, c->user, c->user_type, raw->user, row);
        out->item_id = ItDatumGetId(src, c->item, c->item_type, raw->item, row);
    }
    if (c->domain >= 0)
        out->domain = RowDomain(how->naming, raw, row, out->user_id, out->item_id);
    /* only training reads contexts */
    if (how->naming == IT_ROWS_TRAIN && c->context >= 0 && !raw->context_null)
        out->context = CheckedName(TextDatumGetCString(raw->context), "context", IT_CONTEXT_MAX_LEN,
                                   "weekend");
    return true;
}

/* ------------------------------------------------------------------------
 * Streaming a whole source
 * ------------------------------------------------------------------------ */

typedef struct ItStreamState
{
    const ItInteractionRead *how;
    ItInteractionColumns cols;
    ItInteractionFn fn;
    void       *arg;
} ItStreamState;

static void
StreamStartup(ItSource *src, void *arg)
{
    ItStreamState *st = (ItStreamState *) arg;

    ItFindInteractionColumns(src, &st->cols);
}

static void
StreamRow(ItSource *src, TupleTableSlot *slot, void *arg)
{
    ItStreamState *st = (ItStreamState *) arg;
    const ItInteractionColumns *c = &st->cols;
    ItRawRow    raw;
    ItInteraction r;

    if ((src->rows & 0xFFFF) == 0)
        CHECK_FOR_INTERRUPTS();
    memset(&raw, 0, sizeof(raw));
    memset(&r, 0, sizeof(r));
    r.row = src->rows;
    r.ts_null = true;
    raw.context_null = true;
    raw.user = slot_getattr(slot, c->user + 1, &raw.user_null);
    if (!st->how->ids_only)
    {
        raw.item = slot_getattr(slot, c->item + 1, &raw.item_null);
        if (c->weight >= 0)
            raw.weight = slot_getattr(slot, c->weight + 1, &raw.weight_null);
        if (c->domain >= 0)
            raw.domain = slot_getattr(slot, c->domain + 1, &raw.domain_null);
        if (c->context >= 0)
            raw.context = slot_getattr(slot, c->context + 1, &raw.context_null);
    }
    if (!ParseRow(src, c, st->how, &raw, &r))
        return;
    if (st->how->with_ts && c->ts >= 0)
        r.ts = slot_getattr(slot, c->ts + 1, &r.ts_null);
    st->fn(c, &r, st->arg);
}

int64
ItStreamInteractions(const char *source, const char *model,
                     const ItInteractionRead *how, ItInteractionFn fn, void *arg)
{
    ItSource    src;
    ItStreamState st;

    memset(&st, 0, sizeof(st));
    st.how = how;
    st.fn = fn;
    st.arg = arg;
    ItSourceStream(&src, source, "interactions", model, NULL, 0, NULL, NULL,
                   StreamStartup, StreamRow, &st);
    return src.rows;
}

void
ItStoredInteractionColumns(ItModel *m, ItInteractionColumns *cols)
{
    ItSource    src;
    ItServeContext sc;

    ItServeContextPush(&sc, m, "interactions", false, 0);
    sc.running = true;
    ItSourceOpen(&src, m->interactions_source, "interactions", m->name, "false", 0, NULL, NULL);
    sc.running = false;
    ItFindInteractionColumns(&src, cols);
    ItSourceClose(&src);
    ItServeContextPop(&sc);
}

/* ------------------------------------------------------------------------
 * The training matrix
 * ------------------------------------------------------------------------ */

/* The rows kept for the matrix (ItInteractionFn of training). */
typedef struct ItTrainRows
{
    MemoryContext cxt;          /* where the arrays live */
    int64       cap;
    int64       n;              /* rows kept (non-zero weight) */
    int64      *uid;
    int64      *iid;
    float      *w;
    double     *ts;             /* with a ts column: seconds, +inf for NULL; else NULL */
    bool        has_ts;
    bool        has_domain;
    int16      *dom;            /* with a domain column: each row's domain, in order of appearance */
    HTAB       *domain_hash;    /* name -> NameEntry */
    int         n_domains;
    char      **domain_names;   /* in order of appearance */
    /* contexts: a context column's, or derived from ts by rule in tz */
    ItContextRule rule;
    struct pg_tz *tz;
    bool        has_context;
    int8       *ctx;            /* each row's context (-1: none), in order of appearance */
    HTAB       *context_hash;
    int         n_contexts;
    char      **context_names;
} ItTrainRows;

typedef struct NameEntry
{
    char        name[Max(IT_DOMAIN_MAX_LEN, IT_CONTEXT_MAX_LEN) + 1];
    int         index;
} NameEntry;

/* Room for one more row. */
static void
GrowTrainRows(ItTrainRows *st)
{
    int64       newcap = Max(st->cap * 2, 65536);

    /* it_csr_from_coo takes fewer than 2^32 triples */
    if (newcap >= (INT64CONST(1) << 32))
        newcap = (INT64CONST(1) << 32) - 1;
    if (st->n >= newcap)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("interactions has more than " INT64_FORMAT " rows of non-zero weight", newcap),
                 errhint("Train on a sample, or sum the weights per user and item first.")));
    /* newcap < 2^32: these sizes cannot overflow */
    ItChargeMemory((double) (newcap - st->cap) *
                   (sizeof(int64) * 2 + sizeof(float) + (st->has_ts ? sizeof(double) : 0) +
                    (st->has_domain ? sizeof(int16) : 0) + (st->has_context ? sizeof(int8) : 0)),
                   "the interactions read");
    if (st->uid == NULL)
    {
        st->uid = MemoryContextAllocHuge(st->cxt, newcap * sizeof(int64));
        st->iid = MemoryContextAllocHuge(st->cxt, newcap * sizeof(int64));
        st->w = MemoryContextAllocHuge(st->cxt, newcap * sizeof(float));
        if (st->has_ts)
            st->ts = MemoryContextAllocHuge(st->cxt, newcap * sizeof(double));
        if (st->has_domain)
            st->dom = MemoryContextAllocHuge(st->cxt, newcap * sizeof(int16));
        if (st->has_context)
            st->ctx = MemoryContextAllocHuge(st->cxt, newcap * sizeof(int8));
    }
    else
    {
        if (st->ctx)
            st->ctx = repalloc_huge(st->ctx, newcap * sizeof(int8));
        if (st->ts)
            st->ts = repalloc_huge(st->ts, newcap * sizeof(double));
        if (st->dom)
            st->dom = repalloc_huge(st->dom, newcap * sizeof(int16));
        st->uid = repalloc_huge(st->uid, newcap * sizeof(int64));
        st->iid = repalloc_huge(st->iid, newcap * sizeof(int64));
        st->w = repalloc_huge(st->w, newcap * sizeof(float));
    }
    st->cap = newcap;
    CHECK_FOR_INTERRUPTS();
}

/*
 * The index of a name among those seen so far in *hash (a new one is
 * added to names, at most max of them, else ERROR with hint).
 */
static int
NameIndex(MemoryContext cxt, HTAB **hash, int *n, char ***names, const char *name, int max,
          const char *what, const char *hint)
{
    NameEntry  *e;
    bool        found;

    if (*hash == NULL)
    {
        HASHCTL     ctl;

        memset(&ctl, 0, sizeof(ctl));
        ctl.keysize = sizeof(((NameEntry *) NULL)->name);
        ctl.entrysize = sizeof(NameEntry);
        ctl.hcxt = cxt;
        *hash = hash_create("interest_transfer names", 16, &ctl,
                            HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
    }
    e = hash_search(*hash, name, HASH_ENTER, &found);
    if (!found)
    {
        if (*n >= max)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("interactions has more than %d %s", max, what),
                     errhint("%s", hint)));
        if (*n % 16 == 0)
            *names = *names == NULL ?
                MemoryContextAlloc(cxt, sizeof(char *) * 16) :
                repalloc(*names, sizeof(char *) * (*n + 16));
        e->index = *n;
        (*names)[(*n)++] = MemoryContextStrdup(cxt, name);
    }
    return e->index;
}

/* The index of a domain name among those seen so far (a new one is added). */
static int16
TrainRowDomain(ItTrainRows *st, const char *name)
{
    return (int16) NameIndex(st->cxt, &st->domain_hash, &st->n_domains, &st->domain_names, name,
                             PG_INT16_MAX, "domains",
                             "A domain is a catalogue of items (a shop, a platform): put finer groupings in item features.");
}

/* The context of a row (-1: none): its context column's, else derived from ts. */
static int8
TrainRowContext(ItTrainRows *st, const ItInteractionColumns *cols, const ItInteraction *r)
{
    const char *name = r->context;

    if (st->rule != IT_CONTEXT_NONE && !r->ts_null)
        name = ItDeriveContextDatum(st->rule, st->tz, r->ts, cols->ts_type);
    if (name == NULL)
        return -1;
    return (int8) NameIndex(st->cxt, &st->context_hash, &st->n_contexts, &st->context_names, name,
                            IT_MAX_CONTEXTS, "contexts",
                            "A context is a situation of use (a device, a part of the week): a few values, not an id.");
}

/* The context of a broken-down local time. */
static const char *
ContextOfTm(ItContextRule rule, const struct pg_tm *tm)
{
    if (rule == IT_CONTEXT_WEEKPART)
    {
        int         dow = j2day(date2j(tm->tm_year, tm->tm_mon, tm->tm_mday));

        return dow == 0 || dow == 6 ? "weekend" : "weekday";
    }
    if (tm->tm_hour < 6)
        return "night";
    if (tm->tm_hour < 12)
        return "morning";
    if (tm->tm_hour < 18)
        return "afternoon";
    return "evening";
}

const char *
ItDeriveContext(ItContextRule rule, struct pg_tz *tz, TimestampTz t)
{
    struct pg_tm tm;
    fsec_t      fsec;
    int         tzoff;

    if (timestamp2tm(t, &tzoff, &tm, &fsec, NULL, tz) != 0)
        return NULL;
    return ContextOfTm(rule, &tm);
}

const char *
ItDeriveContextDatum(ItContextRule rule, struct pg_tz *tz, Datum d, Oid type)
{
    struct pg_tm tm;
    fsec_t      fsec;

    /* timestamp and date are wall-clock times already: no zone to apply */
    if (type == TIMESTAMPOID)
    {
        if (TIMESTAMP_NOT_FINITE(DatumGetTimestamp(d)) ||
            timestamp2tm(DatumGetTimestamp(d), NULL, &tm, &fsec, NULL, NULL) != 0)
            return NULL;
        return ContextOfTm(rule, &tm);
    }
    if (type == DATEOID)
    {
        if (DATE_NOT_FINITE(DatumGetDateADT(d)))
            return NULL;
        memset(&tm, 0, sizeof(tm));
        j2date(DatumGetDateADT(d) + POSTGRES_EPOCH_JDATE, &tm.tm_year, &tm.tm_mon, &tm.tm_mday);
        return ContextOfTm(rule, &tm);
    }
    if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(d)))
        return NULL;
    return ItDeriveContext(rule, tz, DatumGetTimestampTz(d));
}

static void
KeepTrainRow(const ItInteractionColumns *cols, const ItInteraction *r, void *arg)
{
    ItTrainRows *st = (ItTrainRows *) arg;

    if (st->n == 0 && st->cap == 0)
    {
        st->has_ts = cols->ts >= 0;
        st->has_domain = cols->domain >= 0;
        st->has_context = cols->context >= 0 || st->rule != IT_CONTEXT_NONE;
        if (cols->context >= 0 && st->rule != IT_CONTEXT_NONE)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"context\" derives contexts from ts, but the interactions have a context column"),
                     errhint("Leave the option out to use the context column, or rename the column.")));
        if (cols->ts >= 0 && cols->ts_type == DATEOID && st->rule == IT_CONTEXT_DAYPART)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"context\" daypart needs the time of day, but ts is a date"),
                     errhint("Give ts as a timestamp or timestamptz, or use context weekpart.")));
        if (cols->ts < 0 && st->rule != IT_CONTEXT_NONE)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"context\" derives contexts from ts, but the interactions have no ts column"),
                     errhint("Add the time of each interaction as a column named ts, or give a context column.")));
    }
    if (st->n >= st->cap)
        GrowTrainRows(st);
    if (st->dom)
        st->dom[st->n] = TrainRowDomain(st, r->domain);
    if (st->ctx)
        st->ctx[st->n] = TrainRowContext(st, cols, r);
    if (st->ts)
        st->ts[st->n] = r->ts_null ? HUGE_VAL :
            (double) ItTimeDatumValue(r->ts, cols->ts_type) / USECS_PER_SEC;
    st->uid[st->n] = r->user_id;
    st->iid[st->n] = r->item_id;
    /* a positive weight stays positive in float */
    st->w[st->n] = Max((float) r->weight, FLT_MIN);
    st->n++;
}

/*
 * Ids within a compact range go through a lookup table (linear time);
 * others are sorted (it_sort_unique_ids) and found by binary search
 * (it_find_id).  Both give the same answer.
 */
int64
ItMapIds(const int64 *ids, int64 n, int64 **sorted_out, int32 *idx, const char *what)
{
    int64       lo = ids[0];
    int64       hi = ids[0];
    uint64      span;
    int64      *sorted;
    int64       m;

    for (int64 j = 1; j < n; j++)
    {
        if (ids[j] < lo)
            lo = ids[j];
        if (ids[j] > hi)
            hi = ids[j];
    }
    span = (uint64) hi - (uint64) lo;   /* the range holds span + 1 ids */

    if (span < (uint64) Max(4 * n, 1 << 20) && span < (uint64) IT_MAX_ROWS)
    {
        int64       range = (int64) span + 1;
        int32      *table = ItAllocArray(range, sizeof(int32));

        memset(table, 0, range * sizeof(int32));
        for (int64 j = 0; j < n; j++)
            table[ids[j] - lo] = 1;
        m = 0;
        for (int64 r = 0; r < range; r++)
            if (table[r])
                m++;
        sorted = ItAllocArray(m, sizeof(int64));
        m = 0;
        for (int64 r = 0; r < range; r++)
        {
            if (table[r])
            {
                sorted[m] = lo + r;
                table[r] = (int32) m++;
            }
        }
        for (int64 j = 0; j < n; j++)
            idx[j] = table[ids[j] - lo];
        pfree(table);
    }
    else
    {
        sorted = ItAllocArray(n, sizeof(int64));
        memcpy(sorted, ids, n * sizeof(int64));
        m = it_sort_unique_ids(sorted, n);
        CHECK_FOR_INTERRUPTS();
        if (m > IT_MAX_ROWS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("interactions has " INT64_FORMAT " distinct %s; a model holds at most " INT64_FORMAT,
                            m, what, (int64) IT_MAX_ROWS),
                     errhint("Train on a sample.")));
        for (int64 j = 0; j < n; j++)
        {
            idx[j] = (int32) it_find_id(sorted, m, ids[j]);
            if ((j & 0xFFFFF) == 0xFFFFF)
                CHECK_FOR_INTERRUPTS();
        }
    }
    *sorted_out = sorted;
    CHECK_FOR_INTERRUPTS();
    return m;
}

/*
 * The time of each entry of R: the earliest of the rows summed into it
 * (rows, cols and ts: the n rows read, as mapped).
 */
static double *
PairTimes(const ItCsr *R, const int32 *rows, const int32 *cols, const double *ts, int64 n)
{
    double     *times = ItAllocArray(Max(R->nnz, 1), sizeof(double));

    for (int64 e = 0; e < R->nnz; e++)
        times[e] = HUGE_VAL;
    for (int64 j = 0; j < n; j++)
    {
        int64       lo = R->indptr[rows[j]];
        int64       hi = R->indptr[rows[j] + 1] - 1;

        if ((j & 0xFFFF) == 0)
            CHECK_FOR_INTERRUPTS();
        /* the row's items are ascending: binary search */
        while (lo < hi)
        {
            int64       mid = lo + (hi - lo) / 2;

            if (R->indices[mid] < cols[j])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo <= hi && R->indices[lo] == cols[j] && ts[j] < times[lo])
            times[lo] = ts[j];
    }
    return times;
}

static int
CompareDomainName(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/*
 * Items namespaced by domain: d->domains sorted by name, each domain's
 * item ids mapped on their own (ItMapIds) into consecutive ranges, so the
 * items are in (domain, id) order; cols[j] gets row j's item index.
 */
static void
MapDomainItems(ItTrainRows *st, ItInteractionMatrix *d, int32 *cols)
{
    int         nd = st->n_domains;
    int        *rank = palloc(sizeof(int) * nd);   /* appearance -> sorted index */
    int64      *count = palloc0(sizeof(int64) * (nd + 1));
    int64      *next;
    int64      *perm;
    int64      *ids;
    int32      *idx;
    int64       total = 0;

    d->n_domains = nd;
    d->domains = palloc(sizeof(char *) * nd);
    memcpy(d->domains, st->domain_names, sizeof(char *) * nd);
    qsort(d->domains, nd, sizeof(char *), CompareDomainName);
    for (int a = 0; a < nd; a++)
        for (int b = 0; b < nd; b++)
            if (d->domains[b] == st->domain_names[a])
                rank[a] = b;
    for (int64 j = 0; j < st->n; j++)
    {
        st->dom[j] = (int16) rank[st->dom[j]];
        count[st->dom[j] + 1]++;
    }
    /* the rows of each domain, in input order */
    for (int b = 0; b < nd; b++)
        count[b + 1] += count[b];
    next = palloc(sizeof(int64) * nd);
    memcpy(next, count, sizeof(int64) * nd);
    perm = ItAllocArray(st->n, sizeof(int64));
    for (int64 j = 0; j < st->n; j++)
        perm[next[st->dom[j]]++] = j;
    CHECK_FOR_INTERRUPTS();

    d->domain_start = palloc(sizeof(int64) * (nd + 1));
    ids = ItAllocArray(Max(st->n, 1), sizeof(int64));
    idx = ItAllocArray(Max(st->n, 1), sizeof(int32));
    d->item_ids = NULL;
    for (int b = 0; b < nd; b++)
    {
        int64       lo = count[b];
        int64       len = count[b + 1] - lo;
        int64      *sorted;
        int64       m;

        d->domain_start[b] = total;
        for (int64 j = 0; j < len; j++)
            ids[j] = st->iid[perm[lo + j]];
        m = ItMapIds(ids, len, &sorted, idx, "items");
        if (total + m > IT_MAX_ROWS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("interactions has more than " INT64_FORMAT " distinct items", (int64) IT_MAX_ROWS),
                     errhint("Train on a sample.")));
        for (int64 j = 0; j < len; j++)
            cols[perm[lo + j]] = (int32) (total + idx[j]);
        d->item_ids = d->item_ids == NULL ? ItAllocArray(st->n, sizeof(int64)) : d->item_ids;
        memcpy(d->item_ids + total, sorted, sizeof(int64) * m);
        pfree(sorted);
        total += m;
    }
    d->domain_start[nd] = total;
    d->nitems = total;
    d->item_domain = ItAllocArray(Max(total, 1), sizeof(int16));
    for (int b = 0; b < nd; b++)
        for (int64 i = d->domain_start[b]; i < d->domain_start[b + 1]; i++)
            d->item_domain[i] = (int16) b;
    pfree(ids);
    pfree(idx);
    pfree(perm);
    pfree(next);
    pfree(count);
    pfree(rank);
    pfree(st->dom);
    st->dom = NULL;
}

/*
 * The rows by context: d->contexts sorted by name, d->C with a row per
 * (user, context), user * n_contexts + context, of the rows with a
 * context, duplicates summed.
 */
static void
ContextMatrix(ItTrainRows *st, ItInteractionMatrix *d, const int32 *rows, const int32 *cols, int64 n)
{
    int         nc = st->n_contexts;
    int        *rank = palloc(sizeof(int) * nc);
    int32      *crow;
    int32      *ccol;
    float      *cw;
    int64      *work;
    int64       m = 0;

    if ((double) d->nusers * nc >= (double) PG_INT32_MAX)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("interactions has too many users times contexts (" INT64_FORMAT " x %d)", d->nusers, nc),
                 errhint("Use fewer contexts.")));
    d->n_contexts = nc;
    d->contexts = palloc(sizeof(char *) * nc);
    memcpy(d->contexts, st->context_names, sizeof(char *) * nc);
    qsort(d->contexts, nc, sizeof(char *), CompareDomainName);
    for (int a = 0; a < nc; a++)
        for (int b = 0; b < nc; b++)
            if (d->contexts[b] == st->context_names[a])
                rank[a] = b;
    crow = ItAllocArray(Max(n, 1), sizeof(int32));
    ccol = ItAllocArray(Max(n, 1), sizeof(int32));
    cw = ItAllocArray(Max(n, 1), sizeof(float));
    for (int64 j = 0; j < n; j++)
    {
        if (st->ctx[j] < 0)
            continue;
        crow[m] = rows[j] * nc + rank[st->ctx[j]];
        ccol[m] = cols[j];
        cw[m] = st->w[j];
        m++;
    }
    d->C.nrows = d->nusers * nc;
    d->C.ncols = d->nitems;
    d->C.indptr = ItAllocArray(d->C.nrows + 1, sizeof(int64));
    d->C.indices = ItAllocArray(Max(m, 1), sizeof(int32));
    d->C.data = ItAllocArray(Max(m, 1), sizeof(float));
    work = ItAllocArray(Max(m, 1), sizeof(int64));
    if (m > 0 && it_csr_from_coo(&d->C, m, crow, ccol, cw, work) < 0)
        elog(ERROR, "could not build the context matrix from " INT64_FORMAT " rows", m);
    if (m == 0)
    {
        d->C.nnz = 0;
        memset(d->C.indptr, 0, sizeof(int64) * (d->C.nrows + 1));
    }
    pfree(crow);
    pfree(ccol);
    pfree(cw);
    pfree(work);
    pfree(rank);
    pfree(st->ctx);
    st->ctx = NULL;
}

void
ItReadInteractionMatrix(const char *source, const char *model, ItContextRule rule, struct pg_tz *tz,
                        ItInteractionMatrix *d)
{
    ItInteractionRead how = {IT_ROWS_TRAIN, false, true};
    ItTrainRows st;
    int64       n;
    int32      *rows;
    int32      *cols;
    int64      *work;
    instr_time  start;

    memset(d, 0, sizeof(*d));
    INSTR_TIME_SET_CURRENT(start);
    memset(&st, 0, sizeof(st));
    st.cxt = CurrentMemoryContext;
    st.rule = rule;
    st.tz = tz;
    d->rows_read = ItStreamInteractions(source, model, &how, KeepTrainRow, &st);
    d->read_seconds = ItElapsedSeconds(start);
    n = st.n;

    if (n == 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 d->rows_read == 0 ?
                 errmsg("interactions of model \"%s\" has no rows", model) :
                 errmsg("every weight in interactions of model \"%s\" is 0", model),
                 errhint("Train from a table or query that returns user_id, item_id pairs with a positive weight.")));

    rows = ItAllocArray(n, sizeof(int32));
    cols = ItAllocArray(n, sizeof(int32));
    d->nusers = ItMapIds(st.uid, n, &d->user_ids, rows, "users");
    pfree(st.uid);
    if (st.dom)
        MapDomainItems(&st, d, cols);
    else
        d->nitems = ItMapIds(st.iid, n, &d->item_ids, cols, "items");
    pfree(st.iid);

    d->R.nrows = d->nusers;
    d->R.ncols = d->nitems;
    d->R.indptr = ItAllocArray(d->nusers + 1, sizeof(int64));
    d->R.indices = ItAllocArray(n, sizeof(int32));
    d->R.data = ItAllocArray(n, sizeof(float));
    work = ItAllocArray(n, sizeof(int64));
    if (it_csr_from_coo(&d->R, n, rows, cols, st.w, work) <= 0)
        elog(ERROR, "could not build the interaction matrix from " INT64_FORMAT " rows", n);
    pfree(work);
    if (st.ts)
        d->times = PairTimes(&d->R, rows, cols, st.ts, n);
    if (st.ctx && st.n_contexts > 0)
        ContextMatrix(&st, d, rows, cols, n);
    pfree(rows);
    pfree(cols);
    pfree(st.w);
    CHECK_FOR_INTERRUPTS();

    /* summed duplicates can overflow a real */
    for (int64 j = 0; j < d->R.nnz; j++)
    {
        if (!isfinite(d->R.data[j]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("the summed weight of a user and item in interactions is too large"),
                     errhint("Scale the weights down.")));
    }

    d->Rt.indptr = ItAllocArray(d->nitems + 1, sizeof(int64));
    d->Rt.indices = ItAllocArray(d->R.nnz, sizeof(int32));
    d->Rt.data = ItAllocArray(d->R.nnz, sizeof(float));
    it_csr_transpose(&d->R, &d->Rt);
}

/* ------------------------------------------------------------------------
 * One user's rows
 * ------------------------------------------------------------------------ */

typedef struct IdWeight
{
    int         dom;
    int64       id;
    double      w;
} IdWeight;

static int
CompareIdWeight(const void *a, const void *b)
{
    const IdWeight *x = (const IdWeight *) a;
    const IdWeight *y = (const IdWeight *) b;

    if (x->dom != y->dom)
        return (x->dom > y->dom) - (x->dom < y->dom);
    return (x->id > y->id) - (x->id < y->id);
}

int
ItFindDomain(const ItModel *m, const char *domain)
{
    for (int d = 0; d < m->n_domains; d++)
        if (strcmp(m->domains[d], domain) == 0)
            return d;
    return -1;
}

void
ItCollectUserRows(ItModel *m, const int64 *ids, const int *domains, const double *weights, int n,
                  MemoryContext mcxt, ItUserRows *out)
{
    IdWeight   *pairs;
    int         np = 0;
    int         nd = 0;

    memset(out, 0, sizeof(*out));
    if (n <= 0)
        return;
    pairs = palloc(sizeof(IdWeight) * n);
    for (int i = 0; i < n; i++)
    {
        if (!(weights[i] > 0))
            continue;           /* weight 0: not a positive */
        pairs[np].id = ids[i];
        pairs[np].dom = domains ? domains[i] : 0;
        pairs[np].w = weights[i];
        np++;
    }
    if (np == 0)
    {
        pfree(pairs);
        return;
    }
    qsort(pairs, np, sizeof(IdWeight), CompareIdWeight);
    /* sum duplicates, in id order */
    for (int i = 0; i < np; i++)
    {
        if (nd > 0 && pairs[nd - 1].id == pairs[i].id && pairs[nd - 1].dom == pairs[i].dom)
            pairs[nd - 1].w += pairs[i].w;
        else
            pairs[nd++] = pairs[i];
    }

    out->all_ids = MemoryContextAlloc(mcxt, sizeof(int64) * nd);
    out->items = MemoryContextAlloc(mcxt, sizeof(int32) * nd);
    out->weights = MemoryContextAlloc(mcxt, sizeof(float) * nd);
    for (int i = 0; i < nd; i++)
    {
        int64       idx = pairs[i].dom < 0 ? -1 : ItItemIndex(m, pairs[i].dom, pairs[i].id);

        out->all_ids[out->nall++] = pairs[i].id;
        if (idx < 0)
            continue;           /* an item the model does not know */
        out->items[out->n] = (int32) idx;   /* ids ascending: indexes too */
        /* a positive weight stays positive in float */
        out->weights[out->n] = Max((float) Min(pairs[i].w, (double) FLT_MAX), FLT_MIN);
        /* weighed as training weighed the domain's rows */
        if (m->domain_weight != NULL)
            out->weights[out->n] = ItDomainScaled(out->weights[out->n], m->domain_weight[pairs[i].dom],
                                                  (float) m->opts.positive_threshold);
        out->n++;
    }
    pfree(pairs);
}

void
ItReadUserRows(ItModel *m, ItTransfer *t, int64 user_id, MemoryContext mcxt, ItUserRows *out)
{
    ItReadUserRowsIn(m, t, user_id, NULL, mcxt, out);
}

/* Is the row of tup in context (the model's context column, or derived from its ts)? */
static bool
RowInContext(ItModel *m, const ItInteractionColumns *cols, HeapTuple tup, TupleDesc desc,
             const char *context)
{
    bool        isnull;
    Datum       v;

    /* derived from ts when the model was trained so, whatever columns came since */
    if (m->opts.context != NULL)
    {
        ItContextRule rule = strcmp(m->opts.context, "weekpart") == 0 ? IT_CONTEXT_WEEKPART : IT_CONTEXT_DAYPART;
        struct pg_tz *tz = m->opts.timezone ? pg_tzset(m->opts.timezone) : NULL;
        const char *name;

        if (cols->ts < 0)
            return false;
        v = SPI_getbinval(tup, desc, cols->ts + 1, &isnull);
        if (isnull)
            return false;
        name = ItDeriveContextDatum(rule, tz ? tz : session_timezone, v, cols->ts_type);
        return name != NULL && strcmp(name, context) == 0;
    }
    if (cols->context >= 0)
    {
        v = SPI_getbinval(tup, desc, cols->context + 1, &isnull);
        return !isnull && strcmp(TextDatumGetCString(v), context) == 0;
    }
    return false;
}

void
ItReadUserRowsIn(ItModel *m, ItTransfer *t, int64 user_id, const char *context, MemoryContext mcxt,
                 ItUserRows *out)
{
    ItInteractionRead how = {IT_ROWS_USER, false, false};
    ItServeContext sc;
    ItSource    src;
    ItInteractionColumns cols;
    SPITupleTable *tt;
    uint64      nrows;
    int64      *ids;
    int        *doms = NULL;
    double     *weights;

    /* a version imported without interactions knows no user's rows */
    if (m->interactions_source == NULL)
    {
        memset(out, 0, sizeof(*out));
        return;
    }
    ItServeContextPush(&sc, m, "interactions", true, user_id);
    ItRunIdPlan(&sc, &t->interactions, m->interactions_source, "user_id", user_id, 0);
    tt = SPI_tuptable;
    nrows = SPI_processed;

    /* columns by name, as training finds them (only the fields used) */
    memset(&src, 0, sizeof(src));
    src.tupdesc = tt->tupdesc;
    src.what = "interactions";
    src.model = m->name;
    ItFindInteractionColumns(&src, &cols);

    if (nrows > (uint64) (MaxAllocSize / sizeof(int64)) || nrows > (uint64) PG_INT32_MAX)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("user " INT64_FORMAT " has too many rows in interactions", user_id)));
    ids = palloc(sizeof(int64) * Max(nrows, 1));
    weights = palloc(sizeof(double) * Max(nrows, 1));
    if (cols.domain >= 0 || m->n_domains > 0)
        doms = palloc(sizeof(int) * Max(nrows, 1));
    if (m->n_domains > 0 && cols.domain < 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("interactions of model \"%s\" has no column named domain, and the model has domains", m->name),
                 errhint("Keep the domain column in the model's interactions source, or retrain the model.")));
    for (uint64 r = 0; r < nrows; r++)
    {
        HeapTuple   tup = tt->vals[r];
        ItRawRow    raw;
        ItInteraction row;

        memset(&raw, 0, sizeof(raw));
        memset(&row, 0, sizeof(row));
        raw.context_null = true;
        row.row = (int64) r + 1;
        row.user_id = user_id;
        raw.item = SPI_getbinval(tup, tt->tupdesc, cols.item + 1, &raw.item_null);
        if (cols.weight >= 0)
            raw.weight = SPI_getbinval(tup, tt->tupdesc, cols.weight + 1, &raw.weight_null);
        if (cols.domain >= 0)
            raw.domain = SPI_getbinval(tup, tt->tupdesc, cols.domain + 1, &raw.domain_null);
        /* rows of weight 0 are dropped with the others by ItCollectUserRows */
        if (!ParseRow(&src, &cols, &how, &raw, &row))
            row.weight = 0.0;
        /* only the rows of the context asked for */
        if (context != NULL && !RowInContext(m, &cols, tup, tt->tupdesc, context))
            row.weight = 0.0;
        ids[r] = row.item_id;
        weights[r] = row.weight;
        if (doms)
            /* a domain column the model did not have: domain 0 is its only one */
            doms[r] = row.weight == 0.0 ? 0 : m->n_domains == 0 ? 0 : ItFindDomain(m, row.domain);
    }
    ItServeContextPop(&sc);

    ItCollectUserRows(m, ids, doms, weights, (int) nrows, mcxt, out);
    pfree(ids);
    pfree(weights);
    SPI_freetuptable(tt);
}

/*
 * refresh.c
 *    refresh(model, users): fold in again the users whose interactions
 *    changed since the deployed version was trained (or last refreshed),
 *    or the given users, and store their vectors in that version, without
 *    retraining the items; add the items of the item_features source that
 *    the version does not have yet.
 *
 * Which users changed:
 *   - the interactions source has a ts column: users with a row whose ts
 *     is later than the version's refreshed_at (or trained_at before the
 *     first refresh), and users the version has no row for;
 *   - no ts column: the whole source is read once and every user's set of
 *     items (weight > 0) is compared with the seen array stored for them;
 *     users without a stored row count as changed.  A stored user without
 *     any row in the source is left as is.
 * Each such user is folded in from all their rows (it_fold_in) around a
 * prior: their stored vector when the version has
 * one (so a refresh moves a known user towards the new evidence), else
 * the features prior or the population mean, exactly as recommend() folds
 * in a user it was not trained on (interest.c decides both).  Their row is written (upserted) with
 * source 'fold_in', seen = every item of positive weight, and updated_at.
 * With contexts (context.c), their rows in each context the version kept
 * are folded in around that new vector with the context's weight, and
 * their context rows upserted (source 'context').
 *
 * New items: when the version has an item features model kept by its
 * validation (and the option new_items), each item of the item_features
 * source without a row gets one from its features, source 'features',
 * popularity 0.  Writing touches the version's it_model row (refreshed_at),
 * so every backend reloads the item matrix on its next call.
 *
 * Everything is read first: the stored sources with the privileges of the
 * model's owner, as a view reads (ItServeContextPush); the rows are
 * written afterwards as the tables' owner (ItBeginWrite), in the caller's
 * transaction.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "interactions.h"
#include "interest.h"
#include "provider.h"
#include "providers.h"
#include "store.h"

/* Rows fetched per round trip. */
#define IT_REFRESH_FETCH        1000

/* The refreshed users and new items, ready to write. */
typedef struct RefreshOut
{
    MemoryContext cxt;          /* where the arrays live */
    int64       nusers;
    int64       cap;
    int64      *user_ids;
    float      *X;              /* nusers * k */
    int64      *seen;           /* concatenated seen ids */
    int64       nseen;
    int64       seencap;
    int64      *seen_ptr;       /* nusers + 1: user u's seen ids are seen[seen_ptr[u] .. seen_ptr[u + 1]) */

    int64       nitems;
    int64      *item_ids;
    float      *Y;              /* nitems * k */

    /* with contexts: the refreshed users' vectors in each context kept */
    struct RefreshOut *contexts;    /* m->n_contexts, or NULL */
} RefreshOut;

/* (Re)allocates p to n elements; a new array goes to cxt. */
static void *
GrowArray(MemoryContext cxt, void *p, int64 n, Size elem)
{
    if (n < 0 || (Size) n > MaxAllocHugeSize / elem)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("refresh has too many rows to keep in memory")));
    if (p == NULL)
        return MemoryContextAllocHuge(cxt, Max((Size) n * elem, 1));
    return repalloc_huge(p, Max((Size) n * elem, 1));
}

static void
AddUser(RefreshOut *o, int k, int64 user_id, const float *x, const int64 *seen, int nseen)
{
    if (o->nusers == o->cap)
    {
        o->cap = Max(o->cap * 2, 256);
        o->user_ids = GrowArray(o->cxt, o->user_ids, o->cap, sizeof(int64));
        o->X = GrowArray(o->cxt, o->X, o->cap * k, sizeof(float));
        o->seen_ptr = GrowArray(o->cxt, o->seen_ptr, o->cap + 1, sizeof(int64));
        o->seen_ptr[0] = 0;
    }
    if (o->nseen + nseen > o->seencap)
    {
        o->seencap = Max(o->seencap * 2, o->nseen + nseen + 1024);
        o->seen = GrowArray(o->cxt, o->seen, o->seencap, sizeof(int64));
    }
    o->user_ids[o->nusers] = user_id;
    memcpy(o->X + o->nusers * k, x, sizeof(float) * k);
    if (nseen > 0)
        memcpy(o->seen + o->nseen, seen, sizeof(int64) * nseen);
    o->nseen += nseen;
    o->seen_ptr[o->nusers + 1] = o->nseen;
    o->nusers++;
}

/*
 * The user's vectors in the contexts the version kept (context.c): their
 * rows there folded in around their new global vector x, with the
 * context's weight; contexts where the user has no rows are left as they
 * are.
 */
static void
RefreshContexts(ItModel *m, int64 user_id, const float *x, const ItUserRows *rows, RefreshOut *o)
{
    ItTransfer *t;

    if (o->contexts == NULL)
        return;
    t = ItGetTransfer(m);
    for (int c = 0; c < m->n_contexts; c++)
    {
        ItUserRows  in;
        float      *xc;

        if (m->context_weight[c] <= 0.0)
            continue;
        ItReadUserRowsIn(m, t, user_id, m->contexts[c], CurrentMemoryContext, &in);
        if (in.n == 0)
            continue;
        xc = palloc(sizeof(float) * m->k);
        ItFoldIn(m, t, in.items, in.weights, in.n, x, (float) m->context_weight[c], xc);
        AddUser(&o->contexts[c], m->k, user_id, xc, rows->all_ids, rows->nall);
        pfree(xc);
    }
}

/*
 * Folds in one user from their rows and adds them to o: around their
 * stored vector, else the best prior (ItRefreshInterest).  Returns false
 * (adding nothing) for a user without a stored row and without usable
 * rows.
 */
static bool
RefreshUser(ItModel *m, int64 user_id, const ItUserRows *rows, RefreshOut *o)
{
    ItInterest  in;

    if (!ItRefreshInterest(m, user_id, rows, &in))
        return false;
    AddUser(o, m->k, user_id, in.x, rows->all_ids, rows->nall);
    RefreshContexts(m, user_id, in.x, rows, o);
    return true;
}

static int
CompareInt64(const void *a, const void *b)
{
    int64       x = *(const int64 *) a;
    int64       y = *(const int64 *) b;

    return (x > y) - (x < y);
}

static int64
SortUnique(int64 *v, int64 n)
{
    int64       w = 0;

    if (n == 0)
        return 0;
    qsort(v, n, sizeof(int64), CompareInt64);
    for (int64 i = 0; i < n; i++)
        if (w == 0 || v[i] != v[w - 1])
            v[w++] = v[i];
    return w;
}

/* Each of the given users, read one by one. */
static void
RefreshUsers(ItModel *m, ItTransfer *t, int64 *ids, int64 n, RefreshOut *o)
{
    MemoryContext usercxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer refresh user",
                                                  ALLOCSET_DEFAULT_SIZES);
    MemoryContext old;

    n = SortUnique(ids, n);
    for (int64 i = 0; i < n; i++)
    {
        ItUserRows  rows;

        CHECK_FOR_INTERRUPTS();
        old = MemoryContextSwitchTo(usercxt);
        ItReadUserRows(m, t, ids[i], usercxt, &rows);
        (void) RefreshUser(m, ids[i], &rows, o);
        MemoryContextSwitchTo(old);
        MemoryContextReset(usercxt);
    }
    MemoryContextDelete(usercxt);
}

/* ------------------------------------------------------------------------
 * Finding the changed users
 * ------------------------------------------------------------------------ */

/* Streaming state: every row of the source, or only the user ids. */
typedef struct RefreshScan
{
    bool        ids_only;
    bool        by_time;        /* also note rows with ts later than since */
    TimestampTz since;
    MemoryContext cxt;
    int64       n;
    int64       cap;
    int64      *uid;
    int64      *iid;            /* NULL with ids_only */
    double     *w;
    bool       *recent;         /* by_time: the row's ts is later than since */
} RefreshScan;

/* Keeps one row of the interactions source (ItInteractionFn). */
static void
ScanRow(const ItInteractionColumns *cols, const ItInteraction *row, void *arg)
{
    RefreshScan *st = (RefreshScan *) arg;

    if (st->n == st->cap)
    {
        MemoryContext old = MemoryContextSwitchTo(st->cxt);

        st->cap = Max(st->cap * 2, 65536);
        st->uid = GrowArray(st->cxt, st->uid, st->cap, sizeof(int64));
        if (st->by_time)
            st->recent = GrowArray(st->cxt, st->recent, st->cap, sizeof(bool));
        if (!st->ids_only)
        {
            st->iid = GrowArray(st->cxt, st->iid, st->cap, sizeof(int64));
            st->w = GrowArray(st->cxt, st->w, st->cap, sizeof(double));
        }
        MemoryContextSwitchTo(old);
    }
    st->uid[st->n] = row->user_id;
    if (st->by_time)
        st->recent[st->n] = !row->ts_null && ItTimeDatumAfter(row->ts, cols->ts_type, st->since);
    if (!st->ids_only)
    {
        st->iid[st->n] = row->item_id;
        st->w[st->n] = row->weight;
    }
    st->n++;
}

/* Streams the model's stored interactions source into st, as its owner. */
static void
ScanSource(ItModel *m, RefreshScan *st)
{
    ItInteractionRead how = {IT_ROWS_SCAN, st->ids_only, st->by_time};
    ItServeContext sc;

    ItServeContextPush(&sc, m, "interactions", false, 0);
    sc.running = true;
    (void) ItStreamInteractions(m->interactions_source, m->name, &how, ScanRow, st);
    ItServeContextPop(&sc);
}

/* The ids of the users the version stores, ascending (as the tables' owner). */
static int64 *
StoredUsers(ItModel *m, int64 *n)
{
    int64      *ids = NULL;
    int64       cap = 0;
    Portal      portal;
    ItRunAs     r;

    *n = 0;
    ItRunAsTablesOwner(&r);
    portal = ItStoreUserCursor(m->name, m->version, false);
    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        SPI_cursor_fetch(portal, true, 10000);
        if (SPI_processed == 0)
            break;
        if (*n + (int64) SPI_processed > cap)
        {
            cap = Max(cap * 2, *n + (int64) SPI_processed);
            ids = GrowArray(CurrentMemoryContext, ids, cap, sizeof(int64));
        }
        for (uint64 i = 0; i < SPI_processed; i++)
        {
            bool        isnull;

            ids[(*n)++] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
        }
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(portal);
    ItRunAsEnd(&r);
    return ids;
}

/*
 * Users with rows later than since, or without a stored row (ts given).
 * The source runs alone (as its owner), so it reads every user id with a
 * flag for recent rows; the stored users are read apart and merged.
 */
static void
RefreshByTime(ItModel *m, ItTransfer *t, TimestampTz since, RefreshOut *o)
{
    RefreshScan st;
    int64      *all;
    int64       nall;
    int64      *stored;
    int64       nstored;
    int64      *want;
    int64       nwant = 0;
    int64       j = 0;

    memset(&st, 0, sizeof(st));
    st.ids_only = true;
    st.by_time = true;
    st.since = since;
    st.cxt = CurrentMemoryContext;
    ScanSource(m, &st);

    /* every user of the source; those with recent rows go first in want */
    all = GrowArray(CurrentMemoryContext, NULL, Max(st.n, 1), sizeof(int64));
    want = GrowArray(CurrentMemoryContext, NULL, Max(st.n, 1), sizeof(int64));
    for (int64 i = 0; i < st.n; i++)
    {
        all[i] = st.uid[i];
        if (st.recent[i])
            want[nwant++] = st.uid[i];
    }
    nall = SortUnique(all, st.n);

    /* and users the version has no row for */
    stored = StoredUsers(m, &nstored);
    for (int64 i = 0; i < nall; i++)
    {
        while (j < nstored && stored[j] < all[i])
            j++;
        if (j >= nstored || stored[j] != all[i])
            want[nwant++] = all[i];
    }
    RefreshUsers(m, t, want, nwant, o);
}

typedef struct RowRef
{
    int64       uid;
    int64       iid;
    double      w;
} RowRef;

static int
CompareRowRef(const void *a, const void *b)
{
    const RowRef *x = a;
    const RowRef *y = b;

    if (x->uid != y->uid)
        return (x->uid > y->uid) - (x->uid < y->uid);
    return (x->iid > y->iid) - (x->iid < y->iid);
}

/*
 * A stored user's seen ids, sorted and unique (palloc'd), from a bigint[]
 * datum.
 */
static int64 *
StoredSeen(ItModel *m, int64 user_id, Datum d, int *n)
{
    ArrayType  *arr = DatumGetArrayTypeP(d);
    int64      *v;
    int         len;

    if (ARR_ELEMTYPE(arr) != INT8OID || ARR_NDIM(arr) > 1 || ARR_HASNULL(arr))
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("seen items of user " INT64_FORMAT " in model \"%s\" are not a bigint[] without NULLs",
                        user_id, m->name),
                 errhint("Retrain the model with train(model).")));
    len = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
    v = palloc(sizeof(int64) * Max(len, 1));
    if (len > 0)
        memcpy(v, ARR_DATA_PTR(arr), sizeof(int64) * len);
    *n = (int) SortUnique(v, len);
    return v;
}

/* Every user whose item set differs from the stored one (no ts). */
static void
RefreshByComparison(ItModel *m, ItTransfer *t, RefreshOut *o)
{
    RefreshScan st;
    RowRef     *rows;
    int64       nusers = 0;
    int64      *users;          /* distinct user ids, ascending */
    int64      *begin;          /* nusers + 1: their first row */
    bool       *changed;
    Portal      portal;
    int64       u = 0;
    MemoryContext usercxt;
    ItRunAs     r;

    memset(&st, 0, sizeof(st));
    st.ids_only = false;
    st.cxt = CurrentMemoryContext;
    ScanSource(m, &st);

    rows = GrowArray(CurrentMemoryContext, NULL, Max(st.n, 1), sizeof(RowRef));
    for (int64 i = 0; i < st.n; i++)
    {
        rows[i].uid = st.uid[i];
        rows[i].iid = st.iid[i];
        rows[i].w = st.w[i];
    }
    pfree(st.uid);
    pfree(st.iid);
    pfree(st.w);
    qsort(rows, st.n, sizeof(RowRef), CompareRowRef);
    CHECK_FOR_INTERRUPTS();

    users = GrowArray(CurrentMemoryContext, NULL, Max(st.n, 1), sizeof(int64));
    begin = GrowArray(CurrentMemoryContext, NULL, st.n + 1, sizeof(int64));
    for (int64 i = 0; i < st.n; i++)
    {
        if (nusers == 0 || rows[i].uid != users[nusers - 1])
        {
            users[nusers] = rows[i].uid;
            begin[nusers] = i;
            nusers++;
        }
    }
    begin[nusers] = st.n;
    changed = palloc0(sizeof(bool) * Max(nusers, 1));
    for (int64 i = 0; i < nusers; i++)
        changed[i] = true;      /* until a stored row says otherwise */

    /* the stored rows, in user order: a merge with the source's users */
    ItRunAsTablesOwner(&r);
    portal = ItStoreUserCursor(m->name, m->version, true);
    usercxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer refresh user",
                                    ALLOCSET_DEFAULT_SIZES);
    for (;;)
    {
        CHECK_FOR_INTERRUPTS();
        SPI_cursor_fetch(portal, true, 10000);
        if (SPI_processed == 0)
            break;
        for (uint64 r = 0; r < SPI_processed; r++)
        {
            HeapTuple   tup = SPI_tuptable->vals[r];
            bool        isnull;
            int64       user_id = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
            MemoryContext old;
            int64      *seen;
            int         nseen;
            int64       nitems = 0;

            while (u < nusers && users[u] < user_id)
                u++;
            if (u >= nusers || users[u] != user_id)
                continue;       /* no rows in the source: left as is */
            old = MemoryContextSwitchTo(usercxt);
            seen = StoredSeen(m, user_id, SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull), &nseen);
            /* the source's distinct items of the user (rows sorted by item) */
            changed[u] = false;
            for (int64 i = begin[u]; i < begin[u + 1]; i++)
            {
                if (i > begin[u] && rows[i].iid == rows[i - 1].iid)
                    continue;
                if (nitems >= nseen || seen[nitems] != rows[i].iid)
                {
                    changed[u] = true;
                    break;
                }
                nitems++;
            }
            if (nitems != nseen)
                changed[u] = true;
            MemoryContextSwitchTo(old);
            MemoryContextReset(usercxt);
        }
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(portal);
    ItRunAsEnd(&r);

    for (int64 i = 0; i < nusers; i++)
    {
        int64       nr = begin[i + 1] - begin[i];
        int64      *ids;
        double     *ws;
        ItUserRows  ur;
        MemoryContext old;

        if (!changed[i])
            continue;
        CHECK_FOR_INTERRUPTS();
        if (nr > PG_INT32_MAX)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("user " INT64_FORMAT " has too many rows in interactions", users[i])));
        old = MemoryContextSwitchTo(usercxt);
        ids = palloc(sizeof(int64) * nr);
        ws = palloc(sizeof(double) * nr);
        for (int64 j = 0; j < nr; j++)
        {
            ids[j] = rows[begin[i] + j].iid;
            ws[j] = rows[begin[i] + j].w;
        }
        ItCollectUserRows(m, ids, NULL, ws, (int) nr, usercxt, &ur);
        (void) RefreshUser(m, users[i], &ur, o);
        MemoryContextSwitchTo(old);
        MemoryContextReset(usercxt);
    }
    MemoryContextDelete(usercxt);
}

/* ------------------------------------------------------------------------
 * New items
 * ------------------------------------------------------------------------ */

static void
NewItems(ItModel *m, ItTransfer *t, RefreshOut *o)
{
    ItSource    src;
    ItServeContext sc;
    const char *idcol = ItEncoderIdColumn(t->item.encoder);
    int         col;
    Oid         type;
    int         dims = t->item.dims;
    int64       n = 0;
    int64       cap = 0;
    int64      *ids = NULL;
    float      *X = NULL;
    uint64      got;
    int64      *sorted;

    ItServeContextPush(&sc, m, "item_features", false, 0);
    sc.running = true;
    ItSourceOpen(&src, m->item_features_source, "item_features", m->name, NULL, 0, NULL, NULL);
    sc.running = false;
    col = ItSourceColumn(&src, idcol, IT_COLUMN_ID, true);
    type = ItSourceColumnType(&src, col);
    for (;;)
    {
        sc.running = true;
        got = ItSourceFetch(&src, IT_REFRESH_FETCH);
        sc.running = false;
        if (got == 0)
            break;
        CHECK_FOR_INTERRUPTS();
        for (uint64 r = 0; r < got; r++)
        {
            HeapTuple   tup = src.batch->vals[r];
            bool        isnull;
            Datum       d = SPI_getbinval(tup, src.batch->tupdesc, col + 1, &isnull);
            int64       row = src.rows - (int64) got + (int64) r + 1;
            int64       id;

            if (isnull)
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("%s is NULL in row " INT64_FORMAT " of item_features", idcol, row),
                         errhint("Filter out the rows without an id, for example WHERE %s IS NOT NULL.", idcol)));
            id = ItDatumGetId(&src, col, type, d, row);
            if (ItItemIndex(m, 0, id) >= 0)
                continue;       /* the version has it */
            if (n == cap)
            {
                cap = Max(cap * 2, 64);
                ids = GrowArray(CurrentMemoryContext, ids, cap, sizeof(int64));
                X = GrowArray(CurrentMemoryContext, X, cap * dims, sizeof(float));
            }
            ids[n] = id;
            ItEncodeTuple(t->item.encoder, tup, src.batch->tupdesc, X + n * dims);
            n++;
        }
    }
    ItSourceClose(&src);
    ItServeContextPop(&sc);

    if (n == 0)
        return;
    sorted = palloc(sizeof(int64) * n);
    memcpy(sorted, ids, sizeof(int64) * n);
    if (SortUnique(sorted, n) != n)
        ereport(ERROR,
                (errcode(ERRCODE_UNIQUE_VIOLATION),
                 errmsg("item_features of model \"%s\" has more than one row for an item", m->name),
                 errhint("Give each item one row of features, as when the model was trained.")));
    pfree(sorted);

    o->nitems = n;
    o->item_ids = ids;
    o->Y = GrowArray(CurrentMemoryContext, NULL, n * m->k, sizeof(float));
    ItSideForward(&t->item, X, n, o->Y);
    pfree(X);
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

/* The users' rows of o, global (context NULL) or of a context. */
static void
WriteUsers(ItModel *m, const RefreshOut *o, const char *context)
{
    ItFactorRows rows;

    memset(&rows, 0, sizeof(rows));
    rows.users = true;
    rows.mode = IT_FACTORS_UPSERT;
    rows.source = context ? "context" : "fold_in";
    rows.context = context;
    rows.k = m->k;
    rows.n = o->nusers;
    rows.ids = o->user_ids;
    rows.factors = o->X;
    rows.seen_ptr = o->seen_ptr;
    rows.seen_ids = o->seen;
    (void) ItStoreWriteFactors(m->name, m->version, &rows);
}

static int64
WriteItems(ItModel *m, const RefreshOut *o)
{
    ItFactorRows rows;

    memset(&rows, 0, sizeof(rows));
    rows.users = false;
    /* a refresh that committed since this statement's snapshot may have added some */
    rows.mode = IT_FACTORS_SKIP_EXISTING;
    rows.source = "features";
    rows.k = m->k;
    rows.n = o->nitems;
    rows.ids = o->item_ids;
    rows.factors = o->Y;
    return ItStoreWriteFactors(m->name, m->version, &rows);
}

/* When the deployed version was last refreshed, else trained. */
static TimestampTz
RefreshedSince(ItModel *m)
{
    TimestampTz t;
    ItRunAs     r;

    ItRunAsTablesOwner(&r);
    t = ItStoreRefreshedSince(m->name, m->version);
    ItRunAsEnd(&r);
    return t;
}

/*
 * The statement's snapshot may predate a train or deploy that committed
 * while this call queued on the model's lock (a nightly train and a refresh
 * scheduled for the same minute): refreshing the version it saw would write
 * rows into one that is no longer served.  Returns false then.
 */
static bool
StillDeployed(ItModel *m)
{
    ItRunAs     r;
    int         now = 0;

    ItRunAsTablesOwner(&r);
    if (!ItStoreDeployedVersion(m->name, &now, NULL))
        now = 0;
    ItRunAsEnd(&r);
    if (now == m->version)
        return true;
    ereport(NOTICE,
            (errmsg("model \"%s\" was trained or deployed by another transaction while refresh waited for it; "
                    "nothing was refreshed", m->name),
             errhint("The next refresh('%s') folds in what changed since.", m->name)));
    return false;
}

/*
 * refresh(model text, users bigint[] DEFAULT NULL) RETURNS bigint
 */
PG_FUNCTION_INFO_V1(interest_transfer_refresh);
Datum
interest_transfer_refresh(PG_FUNCTION_ARGS)
{
    char       *model;
    int64      *given = NULL;
    int         ngiven = 0;
    bool        auto_mode;
    ItWriteState st;
    ItModel    *m;
    ItTransfer *t;
    RefreshOut  o;
    int64       items_added = 0;

    if (PG_ARGISNULL(0))
        ItNullArgument("model", "Name the model to refresh, for example refresh('shop').");
    model = text_to_cstring(PG_GETARG_TEXT_PP(0));
    auto_mode = PG_ARGISNULL(1);
    if (!auto_mode)
    {
        given = ItIdArray(PG_GETARG_ARRAYTYPE_P(1), "users", &ngiven);
    }

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");

    /* fail before the work when the caller may not change this model */
    (void) ItBeginWrite(model, true, IT_PRIV_TRAIN, "refresh", &st);
    ItEndWrite(&st);

    m = ItGetModel(model);
    if (!StillDeployed(m))
    {
        SPI_finish();
        PG_RETURN_INT64(0);
    }
    if (m->n_domains > 0)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("refresh() does not yet fold in users of model \"%s\", whose items are of %d domains",
                        m->name, m->n_domains),
                 errhint("Retrain it with train('%s'); until then new interactions are folded in when the user is served.",
                         m->name)));
    if (m->interactions_source == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("version %d of model \"%s\" has no interactions source to refresh from", m->version, m->name),
                 errdetail("It was imported without option \"interactions\"."),
                 errhint("Import it again with options => '{\"interactions\": \"...\"}' to fold in users from their interactions.")));
    t = ItGetTransfer(m);
    memset(&o, 0, sizeof(o));
    o.cxt = CurrentMemoryContext;
    if (m->n_contexts > 0)
    {
        o.contexts = palloc0(sizeof(RefreshOut) * m->n_contexts);
        for (int c = 0; c < m->n_contexts; c++)
            o.contexts[c].cxt = CurrentMemoryContext;
    }

    /* read everything: the stored sources with their owner's privileges */
    if (!auto_mode)
        RefreshUsers(m, t, given, ngiven, &o);
    else
    {
        ItInteractionColumns cols;

        ItStoredInteractionColumns(m, &cols);
        if (cols.ts >= 0)
            RefreshByTime(m, t, RefreshedSince(m), &o);
        else
            RefreshByComparison(m, t, &o);
    }
    if (t->new_items && t->item.use_features && m->item_features_source != NULL)
        NewItems(m, t, &o);

    /* then write, as the tables' owner */
    if (o.nusers > 0 || o.nitems > 0)
    {
        (void) ItBeginWrite(model, true, IT_PRIV_TRAIN, "refresh", &st);
        if (o.nusers > 0)
            WriteUsers(m, &o, NULL);
        for (int c = 0; o.contexts != NULL && c < m->n_contexts; c++)
            if (o.contexts[c].nusers > 0)
                WriteUsers(m, &o.contexts[c], m->contexts[c]);
        if (o.nitems > 0)
            items_added = WriteItems(m, &o);
        /* the packs hold every item row of the version */
        if (items_added > 0)
            (void) ItStoreWriteItemPacks(m->name, m->version, m->k, true);
        if (auto_mode || items_added > 0)
            ItStoreTouchModel(m->name, m->version, auto_mode);
        ItEndWrite(&st);
    }
    if (items_added > 0)
        ereport(NOTICE,
                (errmsg("refresh added " INT64_FORMAT " new items to model \"%s\" version %d from item_features",
                        items_added, m->name, m->version)));
    SPI_finish();
    PG_RETURN_INT64(o.nusers);
}

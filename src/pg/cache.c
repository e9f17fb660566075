/*
 * cache.c
 *    The deployed version of each model, kept in backend memory.
 *
 * Each model name has one entry holding the version that was deployed the
 * last time it was asked for, in a memory context of its own under
 * CacheMemoryContext.  Every ItGetModel call asks which row of it_model is
 * deployed (one execution of a saved plan) and reloads only when that row
 * is not the one the entry was loaded from; ItGetModelForCall skips even
 * that check while the snapshot has not changed.  A version is identified
 * by its number, trained_at and the physical identity of the row (xmin,
 * ctid), so a version number reused after drop_model is not mistaken for
 * the old one; at worst a deploy() or VACUUM FULL causes one reload.
 *
 * A model handed out is pinned to the caller's memory context, so a reload
 * triggered from a nested call (a user's function inside a query we run)
 * cannot free it under the caller's feet: a replaced model is detached and
 * freed when its last pin goes.
 */
#include "postgres.h"

#include <math.h>
#include <sys/mman.h>

#include "access/detoast.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "common.h"
#include "cache.h"
#include "item_cache.h"
#include "store.h"

/* Rows fetched per round trip when loading item factors. */
#define IT_LOAD_BATCH 1000

typedef struct CacheEntry
{
    struct CacheEntry *next;
    char       *name;           /* in CacheContext */
    ItModel    *model;
} CacheEntry;

/* The deployed row of a model, as DeployedRow finds it. */
typedef struct DeployedStamp
{
    char       *name;
    int         version;
    TimestampTz trained_at;
    TransactionId xmin;
    ItemPointerData tid;
    ItModelAcl  acl;
} DeployedStamp;

static MemoryContext CacheContext = NULL;
static CacheEntry *CacheEntries = NULL;
static uint64 NextGeneration = 1;

const char *
ItInterestSourceName(ItInterestSource source)
{
    switch (source)
    {
        case IT_SOURCE_MODEL:
            return "model";
        case IT_SOURCE_FOLD_IN:
            return "fold_in";
        case IT_SOURCE_FEATURES:
            return "features";
        case IT_SOURCE_DOMAIN:
            return "domain";
        case IT_SOURCE_SOCIAL:
            return "social";
        case IT_SOURCE_POPULAR:
            return "popular";
    }
    elog(ERROR, "unknown interest source %d", (int) source);
    return NULL;                /* keep compiler quiet */
}

ItInterestSource
ItInterestSourceFromName(const char *name)
{
    if (strcmp(name, "model") == 0)
        return IT_SOURCE_MODEL;
    if (strcmp(name, "fold_in") == 0)
        return IT_SOURCE_FOLD_IN;
    if (strcmp(name, "features") == 0)
        return IT_SOURCE_FEATURES;
    if (strcmp(name, "popular") == 0)
        return IT_SOURCE_POPULAR;
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored interest source \"%s\" is not known", name),
             errhint("Retrain the model with train(model).")));
    return IT_SOURCE_MODEL;     /* keep compiler quiet */
}

static CacheEntry *
FindEntry(const char *name)
{
    CacheEntry *e;

    for (e = CacheEntries; e != NULL; e = e->next)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

/* Drops an entry's model: freed now, or when its last pin goes. */
static void
ReleaseModel(ItModel *m)
{
    if (m->pins > 0)
        m->detached = true;
    else
        MemoryContextDelete(m->cxt);
}

static void
Evict(const char *name)
{
    CacheEntry **prev;

    for (prev = &CacheEntries; *prev != NULL; prev = &(*prev)->next)
    {
        CacheEntry *e = *prev;

        if (strcmp(e->name, name) == 0)
        {
            *prev = e->next;
            ReleaseModel(e->model);
            pfree(e->name);
            pfree(e);
            return;
        }
    }
}

static void
Unpin(void *arg)
{
    ItModel    *m = (ItModel *) arg;

    Assert(m->pins > 0);
    m->pins--;
    if (m->pins == 0 && m->detached)
        MemoryContextDelete(m->cxt);
}

/* Keeps m alive until CurrentMemoryContext is reset or deleted. */
static void
Pin(ItModel *m)
{
    MemoryContextCallback *cb = MemoryContextAlloc(CurrentMemoryContext,
                                                   sizeof(MemoryContextCallback));

    cb->func = Unpin;
    cb->arg = m;
    m->pins++;
    MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
}

/* Reads row r of the last deployed-row query into st. */
static void
StampFromRow(SPITupleTable *tt, uint64 r, DeployedStamp *st)
{
    HeapTuple   tup = tt->vals[r];
    TupleDesc   desc = tt->tupdesc;
    bool        isnull;

    st->name = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
    st->version = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
    st->trained_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull));
    st->xmin = DatumGetTransactionId(SPI_getbinval(tup, desc, 4, &isnull));
    ItemPointerCopy((ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 5, &isnull)), &st->tid);
    ItAclFromDatums(SPI_getbinval(tup, desc, 6, &isnull), SPI_getbinval(tup, desc, 7, &isnull),
                    SPI_getbinval(tup, desc, 8, &isnull), &st->acl);
}

/* The error for a named model without a deployed row the caller may use. */
static void
NoDeployedRow(const char *model, bool from_guc, Oid caller)
{
    ItModelAcl  acl;
    const char *named = from_guc ? " (interest_transfer.default_model)" : "";

    if (!ItReadModelAcl(model, false, &acl))
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("model \"%s\"%s does not exist", model, named),
                 from_guc ?
                 errhint("Set interest_transfer.default_model to a model you may use, or name the model in the call.") :
                 errhint("Train it with train('%s', interactions), or list the models you may use with SELECT DISTINCT model FROM models.", model)));
    ItAclRequire(model, &acl, IT_PRIV_USE, caller);
    ereport(ERROR,
            (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
             errmsg("model \"%s\"%s has no deployed version", model, named),
             errhint("Deploy one with deploy('%s', version).", model)));
}

/*
 * The model a call means: its argument, else interest_transfer.default_model,
 * else NULL (the only deployed model the caller may use).
 */
static const char *
WantedModel(const char *model, bool *from_guc)
{
    *from_guc = false;
    if (model != NULL)
        return model;
    if (it_default_model != NULL && it_default_model[0] != '\0')
    {
        *from_guc = true;
        return it_default_model;
    }
    return NULL;
}

/*
 * The deployed row of a model, in the current SPI connection, as the
 * tables' owner; the caller must hold the use privilege on it.  model NULL:
 * interest_transfer.default_model, else the only deployed model the caller
 * may use.  ERRORs with a hint when there is none, several, or the caller
 * may not use it (evicting a cached entry of a named model first).
 */
static void
DeployedRow(const char *model, Oid caller, DeployedStamp *st)
{
    bool        from_guc;
    const char *want = WantedModel(model, &from_guc);

    if (want != NULL)
    {
        if (ItStoreDeployedRows(want) == 0)
        {
            Evict(want);
            NoDeployedRow(want, from_guc, caller);
        }
        if (SPI_processed > 1)
            elog(ERROR, "model \"%s\" has more than one deployed version", want);
        StampFromRow(SPI_tuptable, 0, st);
        ItAclRequire(st->name, &st->acl, IT_PRIV_USE, caller);
        return;
    }

    {
        uint64      nrows = ItStoreDeployedRows(NULL);
        SPITupleTable *tt = SPI_tuptable;
        StringInfoData names;
        int         usable = 0;

        initStringInfo(&names);
        for (uint64 r = 0; r < nrows; r++)
        {
            DeployedStamp cand;

            StampFromRow(tt, r, &cand);
            if (!ItAclAllows(&cand.acl, IT_PRIV_USE, caller))
                continue;
            if (usable++ == 0)
                *st = cand;
            appendStringInfo(&names, "%s%s", usable > 1 ? ", " : "", quote_identifier(cand.name));
        }
        if (usable == 0)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_OBJECT),
                     errmsg("no model has been deployed that you may use"),
                     errhint("Train one with train(model, interactions), or ask a model's owner to run "
                             "grant_model(model, role, 'use').")));
        if (usable > 1)
            ereport(ERROR,
                    (errcode(ERRCODE_AMBIGUOUS_PARAMETER),
                     errmsg("the call names no model, and several are deployed"),
                     errdetail("Deployed models you may use: %s.", names.data),
                     errhint("Name the model in the call, or set interest_transfer.default_model, for example "
                             "ALTER ROLE %s SET interest_transfer.default_model = '%s'.",
                             quote_identifier(GetUserNameFromId(caller, false)), st->name)));
    }
}

static bool
StampMatches(const ItModel *m, const DeployedStamp *st)
{
    return m->version == st->version &&
        m->trained_at == st->trained_at &&
        TransactionIdEquals(m->row_xmin, st->xmin) &&
        ItemPointerEquals((ItemPointer) &m->row_tid, (ItemPointer) &st->tid);
}

static char *
NullableText(HeapTuple tup, TupleDesc desc, int col)
{
    bool        isnull;
    Datum       d = SPI_getbinval(tup, desc, col, &isnull);

    return isnull ? NULL : TextDatumGetCString(d);
}

/* qsort comparator state for the popularity order */
static const int64 *SortPopularity;

static int
ComparePopularity(const void *a, const void *b)
{
    int32       ia = *(const int32 *) a;
    int32       ib = *(const int32 *) b;

    if (SortPopularity[ia] != SortPopularity[ib])
        return SortPopularity[ia] > SortPopularity[ib] ? -1 : 1;
    return (ia > ib) - (ia < ib);   /* item_ids are sorted: lower id first */
}

static void *
ModelAlloc(ItModel *m, Size elem, int64 n)
{
    Size        bytes;

    if (n < 0 || (n > 0 && (Size) n > SIZE_MAX / 2 / elem))
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("model \"%s\" is too large to load", m->name)));
    bytes = Max(elem * (Size) n, 1);
    return MemoryContextAllocExtended(m->cxt, bytes, MCXT_ALLOC_HUGE);
}

/*
 * ModelAlloc for a large array filled right away (the item factors): its
 * whole 2 MB pages are marked for transparent huge pages where the kernel
 * offers them on request, which saves the first touch of every 4 kB page
 * (a quarter of a first call's time at 100k items went to those faults).
 * Never freed on its own, only with the model's context.
 */
#define IT_HUGE_PAGE ((Size) 2 * 1024 * 1024)

static void *
ModelAllocFilled(ItModel *m, Size elem, int64 n)
{
#ifdef MADV_HUGEPAGE
    if (n > 0 && (Size) n <= SIZE_MAX / 4 / elem && elem * (Size) n >= 4 * IT_HUGE_PAGE)
    {
        Size        bytes = elem * (Size) n;
        char       *raw = ModelAlloc(m, 1, (int64) (bytes + IT_HUGE_PAGE));
        char       *p = (char *) TYPEALIGN(IT_HUGE_PAGE, raw);

        /* only a hint: without it the pages are ordinary ones */
        (void) madvise(p, TYPEALIGN_DOWN(IT_HUGE_PAGE, bytes), MADV_HUGEPAGE);
        return p;
    }
#endif
    return ModelAlloc(m, elem, n);
}

/*
 * m->domains from it_model.domains (column col): NULL is a model without
 * domains.  The table's check keeps it 1 to 32767 names without NULLs;
 * sorted and distinct is checked here.
 */
/*
 * The scale of each domain's weights, from the option domain_weights as
 * the version stores it: an object of every domain's number (train.c);
 * "none" (and "balanced", which a version with domains never keeps) is
 * 1 for all.
 */
static void
LoadDomainWeights(ItModel *m)
{
    Jsonb      *w = m->opts.domain_weights;

    m->domain_weight = NULL;
    if (w == NULL || !JB_ROOT_IS_OBJECT(w))
        return;
    m->domain_weight = ModelAlloc(m, sizeof(float), m->n_domains);
    for (int i = 0; i < m->n_domains; i++)
    {
        JsonbValue  buf;
        JsonbValue *v = getKeyJsonValueFromContainer(&w->root, m->domains[i], strlen(m->domains[i]), &buf);
        double      d = 1.0;

        if (v != NULL && v->type == jbvNumeric)
            d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
        if (v == NULL || v->type != jbvNumeric || !(d > 0.0 && d < 1e30))
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("stored option \"domain_weights\" of model \"%s\" has no number for domain \"%s\"",
                            m->name, m->domains[i]),
                     errhint("Retrain the model with train(model).")));
        m->domain_weight[i] = (float) d;
    }
}

static bool
IsNeighboursWord(const JsonbValue *v)
{
    return v != NULL && v->type == jbvString && v->val.string.len == 10 &&
        memcmp(v->val.string.val, "neighbours", 10) == 0;
}

/*
 * Which domains rank their cross-domain users by co-buyers, from the
 * option cross_domain_ranking as the version stores it (an object of
 * every domain's choice, train.c; a single word applies to all).
 */
static void
LoadCrossDomainRanking(ItModel *m)
{
    Jsonb      *r = m->opts.cross_domain_ranking;
    JsonbValue  v;

    m->domain_neighbours = NULL;
    m->cobuyers = NULL;
    if (r == NULL || m->n_domains == 0)
        return;
    m->domain_neighbours = ModelAlloc(m, sizeof(bool), m->n_domains);
    for (int i = 0; i < m->n_domains; i++)
    {
        if (JB_ROOT_IS_OBJECT(r))
        {
            JsonbValue  buf;

            m->domain_neighbours[i] =
                IsNeighboursWord(getKeyJsonValueFromContainer(&r->root, m->domains[i],
                                                              strlen(m->domains[i]), &buf));
        }
        else
            m->domain_neighbours[i] = JsonbExtractScalar(&r->root, &v) && IsNeighboursWord(&v);
    }
}

static void
ContextsCorrupt(const ItModel *m, const char *what)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("the contexts of version %d of model \"%s\" are invalid: %s", m->version, m->name, what),
             errhint("Retrain the model with train(model).")));
}

/* The contexts the version has user vectors in (it_model.contexts). */
static void
LoadContexts(ItModel *m, HeapTuple tup, TupleDesc desc, int col, int wcol)
{
    bool        isnull;
    bool        wnull;
    Datum       d = SPI_getbinval(tup, desc, col, &isnull);
    Datum       w = SPI_getbinval(tup, desc, wcol, &wnull);
    Datum      *elems;
    bool       *nulls;
    int         n;

    m->n_contexts = 0;
    m->contexts = NULL;
    m->context_weight = NULL;
    if (isnull)
        return;
    if (wnull)
        ContextsCorrupt(m, "they have no weights");
    deconstruct_array(DatumGetArrayTypeP(w), FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
                      &elems, &nulls, &n);
    m->context_weight = ModelAlloc(m, sizeof(double), n);
    for (int i = 0; i < n; i++)
    {
        double      v = nulls[i] ? -1.0 : DatumGetFloat8(elems[i]);

        if (!(v >= 0.0 && v < 1e30))
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("context_weights of version %d of model \"%s\" has an invalid weight", m->version, m->name),
                     errhint("Retrain the model with train(model).")));
        m->context_weight[i] = v;
    }
    deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    m->contexts = ModelAlloc(m, sizeof(char *), n);
    for (int i = 0; i < n; i++)
    {
        if (nulls[i])
            ContextsCorrupt(m, "one is NULL");
        m->contexts[i] = MemoryContextStrdup(m->cxt, TextDatumGetCString(elems[i]));
    }
    if (ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(w)), ARR_DIMS(DatumGetArrayTypeP(w))) != n)
        ContextsCorrupt(m, "their weights are not one per context");
    m->n_contexts = n;
}

static void
LoadDomains(ItModel *m, HeapTuple tup, TupleDesc desc, int col)
{
    bool        isnull;
    Datum       d = SPI_getbinval(tup, desc, col, &isnull);
    Datum      *elems;
    bool       *nulls;
    int         n;

    if (isnull)
    {
        m->n_domains = 0;
        m->domains = NULL;
        m->domain_start = ModelAlloc(m, sizeof(int64), 2);
        m->domain_start[0] = 0;
        return;
    }
    deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
    if (n < 1 || n > PG_INT16_MAX)
        elog(ERROR, "model \"%s\" has %d domains", m->name, n);
    m->n_domains = n;
    m->domains = ModelAlloc(m, sizeof(char *), n);
    m->domain_start = ModelAlloc(m, sizeof(int64), n + 1);
    m->domain_start[0] = 0;
    for (int i = 0; i < n; i++)
    {
        if (nulls[i])
            elog(ERROR, "model \"%s\" has a NULL domain", m->name);
        m->domains[i] = MemoryContextStrdup(m->cxt, TextDatumGetCString(elems[i]));
        if (i > 0 && strcmp(m->domains[i - 1], m->domains[i]) >= 0)
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("the domains of version %d of model \"%s\" are not sorted and distinct",
                            m->version, m->name),
                     errhint("Retrain the model with train(model).")));
    }
    LoadDomainWeights(m);
    LoadCrossDomainRanking(m);
}

/*
 * The items of a version without packs, row by row from it_item_factors
 * (a cursor), into arrays sized from the declared item count (it_model.items,
 * which leaves out items added after training: then they grow).
 */
static void
LoadItemRows(ItModel *m, int64 declared_items)
{
    MemoryContext batchcxt;
    MemoryContext oldcxt;
    bool        isnull;
    HeapTuple   tup;
    TupleDesc   desc;
    int64       capacity;
    int64       n = 0;
    int         cur_domain = 0;
    Portal      portal;

    capacity = Max(declared_items, 16);
    m->item_ids = ModelAlloc(m, sizeof(int64), capacity);
    m->popularity = ModelAlloc(m, sizeof(int64), capacity);
    m->Y = ModelAlloc(m, sizeof(float) * m->k, capacity);

    portal = ItStoreItemCursor(m->name, m->version);
    batchcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer load batch",
                                     ALLOCSET_DEFAULT_SIZES);
    for (;;)
    {
        uint64      i;

        CHECK_FOR_INTERRUPTS();
        SPI_cursor_fetch(portal, true, IT_LOAD_BATCH);
        if (SPI_processed == 0)
            break;
        desc = SPI_tuptable->tupdesc;
        if (n + (int64) SPI_processed > IT_MAX_ROWS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("model \"%s\" has more than %lld items", m->name, (long long) IT_MAX_ROWS)));
        if (n + (int64) SPI_processed > capacity)
        {
            int64       newcap = Max(capacity * 2, n + (int64) SPI_processed);

            newcap = Min(newcap, IT_MAX_ROWS);
            m->item_ids = repalloc_huge(m->item_ids, sizeof(int64) * newcap);
            m->popularity = repalloc_huge(m->popularity, sizeof(int64) * newcap);
            m->Y = repalloc_huge(m->Y, sizeof(float) * m->k * newcap);
            capacity = newcap;
        }
        oldcxt = MemoryContextSwitchTo(batchcxt);
        for (i = 0; i < SPI_processed; i++)
        {
            int64       id;
            int         dom;

            tup = SPI_tuptable->vals[i];
            id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
            dom = DatumGetInt16(SPI_getbinval(tup, desc, 4, &isnull));
            if (dom < 0 || dom >= Max(m->n_domains, 1))
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_CORRUPTED),
                         errmsg("item " INT64_FORMAT " of model \"%s\" has domain %d, which the model does not have",
                                id, m->name, dom),
                         errhint("Retrain the model with train(model).")));
            if (dom < cur_domain || (n > 0 && dom == cur_domain && id <= m->item_ids[n - 1]))
                elog(ERROR, "item factors of model \"%s\" are not in (domain, id) order", m->name);
            while (cur_domain < dom)
                m->domain_start[++cur_domain] = n;
            m->item_ids[n] = id;
            ItArrayToFloats(SPI_getbinval(tup, desc, 2, &isnull), m->Y + (size_t) n * m->k, m->k,
                            "item factors");
            m->popularity[n] = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
            n++;
        }
        MemoryContextSwitchTo(oldcxt);
        MemoryContextReset(batchcxt);
        SPI_freetuptable(SPI_tuptable);
    }
    SPI_cursor_close(portal);
    MemoryContextDelete(batchcxt);
    m->n_items = n;
    while (cur_domain < Max(m->n_domains, 1))
        m->domain_start[++cur_domain] = n;
    m->item_norms = ModelAlloc(m, sizeof(float), n);
    it_row_norms(m->Y, n, m->k, m->item_norms);
}

static void
PacksCorrupt(const ItModel *m, int32 chunk, const char *what)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("item pack %d of version %d of model \"%s\" is invalid: %s",
                    chunk, m->version, m->name, what),
             errhint("Retrain the model with train(model).")));
}

/* Bytes of a one-dimensional array without NULLs before its data, after the varlena header. */
#define PACK_ARRAY_HEADER   (ARR_OVERHEAD_NONULLS(1) - VARHDRSZ)

/*
 * Copies the n values (elemsize bytes of type elemtype each) of the array d,
 * a column of a pack, to dest.  A value stored out of line uncompressed
 * (the packs' columns are STORAGE EXTERNAL) is read from its TOAST chunks
 * straight into dest, not detoasted into a copy first: its header, then its
 * data.  Others are detoasted in the current context.
 */
static void
PackArrayInto(const ItModel *m, int32 chunk, Datum d, Oid elemtype, int elemsize,
              void *dest, int64 n, const char *column)
{
    struct varlena *v = (struct varlena *) DatumGetPointer(d);
    ArrayType  *a;
    Size        bytes = (Size) n * elemsize;

    if (VARATT_IS_EXTERNAL_ONDISK(v))
    {
        struct varatt_external ext;

        VARATT_EXTERNAL_GET_POINTER(ext, v);
        if (!VARATT_EXTERNAL_IS_COMPRESSED(ext) &&
            (Size) VARATT_EXTERNAL_GET_EXTSIZE(ext) == PACK_ARRAY_HEADER + bytes)
        {
            Relation    toastrel = table_open(ext.va_toastrelid, AccessShareLock);
            int32       size = (int32) VARATT_EXTERNAL_GET_EXTSIZE(ext);

            a = palloc(ARR_OVERHEAD_NONULLS(1));
            SET_VARSIZE(a, ARR_OVERHEAD_NONULLS(1));
            table_relation_fetch_toast_slice(toastrel, ext.va_valueid, size, 0, PACK_ARRAY_HEADER,
                                             (struct varlena *) a);
            if (ARR_ELEMTYPE(a) != elemtype || ARR_NDIM(a) != 1 || ARR_HASNULL(a) || ARR_DIMS(a)[0] != n)
                PacksCorrupt(m, chunk, psprintf("%s is not an array of " INT64_FORMAT " values without NULLs",
                                                column, n));
            /* the slice lands at VARDATA(result): the header before dest is not written */
            table_relation_fetch_toast_slice(toastrel, ext.va_valueid, size, PACK_ARRAY_HEADER, (int32) bytes,
                                             (struct varlena *) ((char *) dest - VARHDRSZ));
            table_close(toastrel, AccessShareLock);
            pfree(a);
            return;
        }
    }
    a = DatumGetArrayTypeP(d);
    if (ARR_ELEMTYPE(a) != elemtype || ARR_NDIM(a) != 1 || ARR_HASNULL(a) ||
        ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) != n)
        PacksCorrupt(m, chunk, psprintf("%s is not an array of " INT64_FORMAT " values without NULLs",
                                        column, n));
    memcpy(dest, ARR_DATA_PTR(a), bytes);
}

static void
PackFloatsFinite(const ItModel *m, int32 chunk, const float *v, int64 n, const char *column)
{
    for (int64 i = 0; i < n; i++)
        if (!isfinite(v[i]))
            PacksCorrupt(m, chunk, psprintf("%s has a value that is not finite", column));
}

/*
 * The items of a version from its npacks packs (rows of tt, in chunk
 * order): arrays sized from the packs' item counts, each pack's arrays
 * detoasted in a scratch context that is reset after each, so they reuse
 * its memory, and copied whole.
 */
static void
LoadItemPacks(ItModel *m, SPITupleTable *tt, uint64 npacks)
{
    TupleDesc   desc = tt->tupdesc;
    MemoryContext batchcxt;
    MemoryContext oldcxt;
    bool        isnull;
    int64       total = 0;
    int64       n = 0;
    int         cur_domain = 0;

    for (uint64 r = 0; r < npacks; r++)
    {
        int32       items = DatumGetInt32(SPI_getbinval(tt->vals[r], desc, 3, &isnull));

        if (items < 1)
            PacksCorrupt(m, DatumGetInt32(SPI_getbinval(tt->vals[r], desc, 1, &isnull)), "it has no items");
        if (items > IT_MAX_ROWS - total)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("model \"%s\" has more than %lld items", m->name, (long long) IT_MAX_ROWS)));
        total += items;
    }
    m->item_ids = ModelAlloc(m, sizeof(int64), total);
    m->popularity = ModelAlloc(m, sizeof(int64), total);
    m->Y = ModelAllocFilled(m, sizeof(float) * m->k, total);
    m->item_norms = ModelAlloc(m, sizeof(float), total);

    batchcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer load pack",
                                     ALLOCSET_DEFAULT_SIZES);
    for (uint64 r = 0; r < npacks; r++)
    {
        HeapTuple   tup = tt->vals[r];
        int32       chunk = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
        int         dom = DatumGetInt16(SPI_getbinval(tup, desc, 2, &isnull));
        int32       items = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
        int64      *ids;

        CHECK_FOR_INTERRUPTS();
        if (dom < 0 || dom >= Max(m->n_domains, 1))
            PacksCorrupt(m, chunk, psprintf("its domain %d is not one of the model's", dom));
        if (dom < cur_domain)
            PacksCorrupt(m, chunk, "its domain comes before the previous pack's");
        if ((int64) items * m->k > (int64) MaxArraySize)
            PacksCorrupt(m, chunk, "it has too many items");
        while (cur_domain < dom)
            m->domain_start[++cur_domain] = n;

        oldcxt = MemoryContextSwitchTo(batchcxt);
        ids = m->item_ids + n;
        PackArrayInto(m, chunk, SPI_getbinval(tup, desc, 4, &isnull), INT8OID, sizeof(int64),
                      ids, items, "item_ids");
        for (int32 i = 0; i < items; i++)
            if ((i > 0 && ids[i] <= ids[i - 1]) ||
                (i == 0 && n > m->domain_start[cur_domain] && ids[0] <= ids[-1]))
                PacksCorrupt(m, chunk, "its item ids are not ascending after the previous pack's");
        PackArrayInto(m, chunk, SPI_getbinval(tup, desc, 5, &isnull), INT8OID, sizeof(int64),
                      m->popularity + n, items, "popularity");
        PackArrayInto(m, chunk, SPI_getbinval(tup, desc, 6, &isnull), FLOAT4OID, sizeof(float),
                      m->Y + (size_t) n * m->k, (int64) items * m->k, "factors");
        PackFloatsFinite(m, chunk, m->Y + (size_t) n * m->k, (int64) items * m->k, "factors");
        PackArrayInto(m, chunk, SPI_getbinval(tup, desc, 7, &isnull), FLOAT4OID, sizeof(float),
                      m->item_norms + n, items, "norms");
        PackFloatsFinite(m, chunk, m->item_norms + n, items, "norms");
        MemoryContextSwitchTo(oldcxt);
        MemoryContextReset(batchcxt);
        n += items;
    }
    MemoryContextDelete(batchcxt);
    m->n_items = n;
    while (cur_domain < Max(m->n_domains, 1))
        m->domain_start[++cur_domain] = n;
}

/* The arrays derived from the items (after LoadItemPacks or LoadItemRows). */
static void
DeriveItemArrays(ItModel *m)
{
    int64       n = m->n_items;

    m->pop_score = ModelAlloc(m, sizeof(float), n);
    m->pop_order = ModelAlloc(m, sizeof(int32), n);
    m->YtY = ModelAlloc(m, sizeof(float) * m->k, m->k);
    m->max_popularity = 0;
    for (int64 i = 0; i < n; i++)
    {
        m->max_popularity = Max(m->max_popularity, m->popularity[i]);
        m->pop_order[i] = (int32) i;
    }
    for (int64 i = 0; i < n; i++)
        m->pop_score[i] = m->max_popularity > 0 ?
            (float) ((double) m->popularity[i] / (double) m->max_popularity) : 0.0f;
    SortPopularity = m->popularity;
    qsort(m->pop_order, n, sizeof(int32), ComparePopularity);
    SortPopularity = NULL;
    if (n > 0)
        it_gram(m->Y, n, m->k, m->YtY);
    else
        memset(m->YtY, 0, sizeof(float) * m->k * m->k);
    m->q8 = ModelAlloc(m, (Size) it_q8_kpad(m->k), it_q8_padded(n));
    m->q8_scale = ModelAlloc(m, sizeof(float), it_q8_padded(n));
    m->q8_tol = ModelAlloc(m, sizeof(float), n);
    m->q8_tol_block = ModelAlloc(m, sizeof(float), it_q8_padded(n) / IT_Q8_BLOCK);
    it_q8_encode(m->Y, n, m->k, m->q8, m->q8_scale, m->q8_tol, &m->q8_norm_max, m->q8_tol_block);
    m->q4 = ModelAlloc(m, 1, (int64) it_q4_bytes(n, m->k));
    m->q4_scale = ModelAlloc(m, sizeof(ItQ4Scales), it_q8_padded(n) / IT_Q8_BLOCK);
    m->q4_tol = ModelAlloc(m, sizeof(float), n);
    m->q4_tol_block = ModelAlloc(m, sizeof(float), it_q8_padded(n) / IT_Q8_BLOCK);
    it_q4_encode(m->Y, n, m->k, m->q4, m->q4_scale, m->q4_tol, &m->q4_norm_max, m->q4_tol_block);
}

/*
 * Loads the version described by st into a new context, a child of the
 * current one (SPI's), so an error frees it with the rest.  The caller
 * re-parents it into the cache.
 */
static ItModel *
LoadModel(const DeployedStamp *st)
{
    MemoryContext cxt;
    MemoryContext oldcxt;
    ItModel    *m;
    bool        isnull;
    HeapTuple   tup;
    TupleDesc   desc;
    Datum       d;
    int64       declared_items;
    int64       n;
    uint64      npacks;
    const char *from;

    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer model",
                                ALLOCSET_DEFAULT_SIZES);
    m = MemoryContextAllocZero(cxt, sizeof(ItModel));
    m->cxt = cxt;
    m->name = MemoryContextStrdup(cxt, st->name);
    MemoryContextSetIdentifier(cxt, m->name);
    m->version = st->version;
    m->trained_at = st->trained_at;
    m->row_xmin = st->xmin;
    ItemPointerCopy((ItemPointer) &st->tid, &m->row_tid);

    /* The definition. */
    ItStoreModelRow(st->name, st->version);
    tup = SPI_tuptable->vals[0];
    desc = SPI_tuptable->tupdesc;

    oldcxt = MemoryContextSwitchTo(cxt);
    m->algorithm = NullableText(tup, desc, 3);
    m->interactions_source = NullableText(tup, desc, 4);
    m->user_features_source = NullableText(tup, desc, 5);
    m->item_features_source = NullableText(tup, desc, 6);
    m->user_links_source = NullableText(tup, desc, 16);
    m->options = DatumGetJsonbPCopy(SPI_getbinval(tup, desc, 7, &isnull));
    ItReadOptions(m->options, m->name, &m->opts);
    m->search_path = NullableText(tup, desc, 12);
    MemoryContextSwitchTo(oldcxt);
    LoadDomains(m, tup, desc, 13);
    LoadContexts(m, tup, desc, 14, 15);
    m->k = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
    m->n_users = DatumGetInt64(SPI_getbinval(tup, desc, 9, &isnull));
    declared_items = DatumGetInt64(SPI_getbinval(tup, desc, 10, &isnull));
    if (m->k < 1 || m->k > IT_MAX_FACTORS || declared_items < 0 || declared_items > IT_MAX_ROWS)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("version %d of model \"%s\" has %d factors and %lld items",
                        st->version, st->name, m->k, (long long) declared_items),
                 errhint("Retrain the model with train(model).")));
    m->user_mean = ModelAlloc(m, sizeof(float), m->k);
    d = SPI_getbinval(tup, desc, 11, &isnull);
    ItArrayToFloats(d, m->user_mean, m->k, "user_mean of the model");
    SPI_freetuptable(SPI_tuptable);

    /*
     * The items, in (domain, id) order, with their derived arrays: from the
     * shared file another backend wrote for these packs, else from the packs
     * (then written to that file), else row by row (versions before packs).
     */
    npacks = ItStoreItemPacks(st->name, st->version);
    if (npacks > 0)
    {
        ItItemCacheKey key;

        ItItemCacheKeyFromPacks(&key, m, SPI_tuptable, npacks, 3, 8, 9);
        if (ItItemCacheRead(m, &key))
            from = "the shared item file";
        else
        {
            LoadItemPacks(m, SPI_tuptable, npacks);
            DeriveItemArrays(m);
            ItItemCacheWrite(m, &key);
            from = "its item packs";
        }
        SPI_freetuptable(SPI_tuptable);
    }
    else
    {
        SPI_freetuptable(SPI_tuptable);
        LoadItemRows(m, declared_items);
        DeriveItemArrays(m);
        from = "its item rows";
    }
    n = m->n_items;
    ereport(DEBUG1,
            (errmsg_internal("interest_transfer: loaded version %d of model \"%s\", " INT64_FORMAT " items, from %s",
                             m->version, m->name, n, from)));

    m->scores = ModelAlloc(m, sizeof(float), it_q8_padded(n));
    m->block_max = ModelAlloc(m, sizeof(float), it_q8_blocks(0, n) + 1);
    m->block_list = ModelAlloc(m, sizeof(int32), it_q8_blocks(0, n) + 1);
    m->generation = NextGeneration++;
    return m;
}


ItModel *
ItGetModel(const char *model)
{
    DeployedStamp st;
    CacheEntry *e;
    ItModel    *m;
    MemoryContext callercxt PG_USED_FOR_ASSERTS_ONLY = CurrentMemoryContext;
    Oid         caller = GetUserId();
    ItRunAs     r;

    if (CacheContext == NULL)
        CacheContext = AllocSetContextCreate(CacheMemoryContext, "interest_transfer model cache",
                                               ALLOCSET_SMALL_SIZES);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ItRunAsTablesOwnerForPlans(&r);
    DeployedRow(model, caller, &st);

    e = FindEntry(st.name);
    if (e == NULL || !StampMatches(e->model, &st))
    {
        ItModel    *loaded = LoadModel(&st);

        MemoryContextSetParent(loaded->cxt, CacheContext);
        if (e == NULL)
        {
            e = MemoryContextAllocZero(CacheContext, sizeof(CacheEntry));
            e->name = MemoryContextStrdup(CacheContext, st.name);
            e->next = CacheEntries;
            CacheEntries = e;
        }
        else
            ReleaseModel(e->model);
        e->model = loaded;
    }
    m = e->model;
    /* ownership can change without a new version */
    m->owner = st.acl.owner;
    ItRunAsEnd(&r);
    SPI_finish();

    Assert(CurrentMemoryContext == callercxt);
    Pin(m);
    return m;
}

ItCallCache *
ItGetCallCache(FunctionCallInfo fcinfo)
{
    if (fcinfo->flinfo->fn_extra == NULL)
        fcinfo->flinfo->fn_extra = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(ItCallCache));
    return (ItCallCache *) fcinfo->flinfo->fn_extra;
}

/*
 * Fills key's snapshot fields from the active snapshot; false when there is
 * none that can be compared.  Two MVCC snapshots of the same transaction
 * and subtransaction with the same xmin, xmax, in-progress xids and command
 * id see the same rows, so the deployed row checked under one is still the
 * deployed row under the other.  (A snapshot's completion count would be
 * cheaper, but copies of a snapshot, such as the active one, clear it.)
 */
static bool
SnapshotKey(ItCallCache *key)
{
    Snapshot    snap;
    int         nxids;

    if (!ActiveSnapshotSet())
        return false;
    snap = GetActiveSnapshot();
    if (snap->snapshot_type != SNAPSHOT_MVCC || snap->subxcnt < 0)
        return false;
    nxids = (int) snap->xcnt + snap->subxcnt;
    if (nxids > IT_SNAPSHOT_MAX_XIDS)
        return false;
    key->lxid = MyProc->lxid;
    key->subxid = GetCurrentSubTransactionId();
    key->snap_xmin = snap->xmin;
    key->snap_xmax = snap->xmax;
    key->snap_curcid = snap->curcid;
    key->snap_xcnt = snap->xcnt;
    key->snap_subxcnt = snap->subxcnt;
    key->snap_suboverflowed = snap->suboverflowed;
    key->snap_recovery = snap->takenDuringRecovery;
    if (snap->xcnt > 0)
        memcpy(key->snap_xids, snap->xip, sizeof(TransactionId) * snap->xcnt);
    if (snap->subxcnt > 0)
        memcpy(key->snap_xids + snap->xcnt, snap->subxip, sizeof(TransactionId) * snap->subxcnt);
    return true;
}

static bool
SnapshotKeyEqual(const ItCallCache *a, const ItCallCache *b)
{
    return a->lxid == b->lxid &&
        a->subxid == b->subxid &&
        TransactionIdEquals(a->snap_xmin, b->snap_xmin) &&
        TransactionIdEquals(a->snap_xmax, b->snap_xmax) &&
        a->snap_curcid == b->snap_curcid &&
        a->snap_xcnt == b->snap_xcnt &&
        a->snap_subxcnt == b->snap_subxcnt &&
        a->snap_suboverflowed == b->snap_suboverflowed &&
        a->snap_recovery == b->snap_recovery &&
        memcmp(a->snap_xids, b->snap_xids,
               sizeof(TransactionId) * (a->snap_xcnt + a->snap_subxcnt)) == 0;
}

ItModel *
ItGetModelForCall(FunctionCallInfo fcinfo, const char *model)
{
    ItCallCache *cc = ItGetCallCache(fcinfo);
    ItCallCache key;
    bool        havekey;
    ItModel    *m;

    bool        from_guc;
    /* the default model is a setting that may change between calls */
    const char *want = WantedModel(model, &from_guc);

    memset(&key, 0, offsetof(ItCallCache, snap_xids));
    havekey = SnapshotKey(&key);
    if (cc->valid && havekey && SnapshotKeyEqual(cc, &key) && cc->userid == GetUserId() &&
        ((want == NULL && cc->requested == NULL) ||
         (want != NULL && cc->requested != NULL && strcmp(want, cc->requested) == 0)))
    {
        CacheEntry *e = FindEntry(cc->name);

        if (e != NULL && e->model->generation == cc->generation)
        {
            Pin(e->model);
            return e->model;
        }
    }

    m = ItGetModel(model);

    cc->valid = false;
    if (cc->requested)
        pfree(cc->requested);
    if (cc->name)
        pfree(cc->name);
    cc->requested = want ? MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, want) : NULL;
    cc->name = MemoryContextStrdup(fcinfo->flinfo->fn_mcxt, m->name);
    cc->generation = m->generation;
    cc->userid = GetUserId();
    cc->lxid = key.lxid;
    cc->subxid = key.subxid;
    cc->snap_xmin = key.snap_xmin;
    cc->snap_xmax = key.snap_xmax;
    cc->snap_curcid = key.snap_curcid;
    cc->snap_xcnt = key.snap_xcnt;
    cc->snap_subxcnt = key.snap_subxcnt;
    cc->snap_suboverflowed = key.snap_suboverflowed;
    cc->snap_recovery = key.snap_recovery;
    memcpy(cc->snap_xids, key.snap_xids, sizeof(TransactionId) * (key.snap_xcnt + key.snap_subxcnt));
    cc->valid = havekey;
    cc->epoch++;
    return m;
}

int64
ItItemIndex(const ItModel *m, int d, int64 item_id)
{
    int64       lo = m->domain_start[d];
    int64       j = it_find_id(m->item_ids + lo, m->domain_start[d + 1] - lo, item_id);

    return j < 0 ? -1 : lo + j;
}

int
ItItemDomain(const ItModel *m, int64 idx)
{
    int         lo = 0;
    int         hi = Max(m->n_domains, 1) - 1;

    /* the last d with domain_start[d] <= idx */
    while (lo < hi)
    {
        int         mid = lo + (hi - lo + 1) / 2;

        if (m->domain_start[mid] <= idx)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

int
ItDomainArgument(const ItModel *m, const char *domain, bool required)
{
    StringInfoData names;

    if (domain == NULL)
    {
        if (required && m->n_domains > 0)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("model \"%s\" has items of %d domains, and no domain was given",
                            m->name, m->n_domains),
                     errhint("Pass domain => one of the domains of interactions' domain column, for example '%s'.",
                             m->domains[0])));
        return -1;
    }
    if (m->n_domains == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("model \"%s\" has no domains, and domain \"%s\" was given", m->name, domain),
                 errhint("Leave domain NULL, or train the model from interactions with a domain column.")));
    for (int d = 0; d < m->n_domains; d++)
        if (strcmp(m->domains[d], domain) == 0)
            return d;
    initStringInfo(&names);
    for (int d = 0; d < m->n_domains && d < 10; d++)
        appendStringInfo(&names, "%s%s", d > 0 ? ", " : "", quote_literal_cstr(m->domains[d]));
    if (m->n_domains > 10)
        appendStringInfoString(&names, ", ...");
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("model \"%s\" has no domain \"%s\"", m->name, domain),
             errhint("Its domains are %s.", names.data)));
    return -1;                  /* keep the compiler quiet */
}

int
ItCompareInt32(const void *a, const void *b)
{
    int32       x = *(const int32 *) a;
    int32       y = *(const int32 *) b;

    return (x > y) - (x < y);
}

/*
 * The domain of each of a stored user's nseen seen items (column col,
 * seen_domain): NULL for a model without domains.  ERRORs when it does not
 * match the model.
 */
const int16 *
ItSeenDomains(const ItModel *m, int64 user_id, HeapTuple tup, TupleDesc desc, int col, int nseen)
{
    bool        isnull;
    Datum       d = SPI_getbinval(tup, desc, col, &isnull);
    ArrayType  *a;
    const int16 *doms;

    if (m->n_domains == 0 && isnull)
        return NULL;
    if (m->n_domains == 0 || isnull)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("seen items of user " INT64_FORMAT " in model \"%s\" %s domains, the model %s",
                        user_id, m->name, isnull ? "have no" : "have", isnull ? "has" : "has none"),
                 errhint("Retrain the model with train(model).")));
    a = DatumGetArrayTypeP(d);
    if (ARR_ELEMTYPE(a) != INT2OID || ARR_NDIM(a) > 1 || ARR_HASNULL(a) ||
        ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) != nseen)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("seen_domain of user " INT64_FORMAT " in model \"%s\" is not a smallint[] as long as seen, without NULLs",
                        user_id, m->name),
                 errhint("Retrain the model with train(model).")));
    doms = (const int16 *) ARR_DATA_PTR(a);
    for (int i = 0; i < nseen; i++)
        if (doms[i] < 0 || doms[i] >= m->n_domains)
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("seen_domain of user " INT64_FORMAT " in model \"%s\" names domain %d, which the model does not have",
                            user_id, m->name, doms[i]),
                     errhint("Retrain the model with train(model).")));
    return doms;
}

bool
ItGetUserVector(ItModel *m, int64 user_id, float *x_out,
                int32 **seen_out, int *nseen, ItInterestSource *source_out)
{
    return ItGetUserVectorIn(m, user_id, NULL, x_out, seen_out, nseen, source_out);
}

/*
 * A user's stored row (columns factors, seen, source, seen_domain first):
 * x_out[m->k] the vector, *seen_out the model's indexes of the seen items
 * (sorted, distinct, palloc'd in cxt; NULL when none), *source_out the
 * stored source (a context's rows: the model).
 */
static void
UserRowVector(ItModel *m, int64 user_id, const char *context, HeapTuple tup, TupleDesc desc,
              MemoryContext cxt, float *x_out, int32 **seen_out, int *nseen, ItInterestSource *source_out)
{
    bool        isnull;
    ArrayType  *seen;
    int32      *idx = NULL;
    int         n = 0;

    ItArrayToFloats(SPI_getbinval(tup, desc, 1, &isnull), x_out, m->k, "user factors");
    /* a context's vector: trained with the model */
    *source_out = context != NULL ? IT_SOURCE_MODEL :
        ItInterestSourceFromName(TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull)));

    seen = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull));
    if (ARR_ELEMTYPE(seen) != INT8OID || ARR_NDIM(seen) > 1 || ARR_HASNULL(seen))
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("seen items of user %lld in model \"%s\" are not a bigint[] without NULLs",
                        (long long) user_id, m->name),
                 errhint("Retrain the model with train(model).")));
    {
        int         nitems = ArrayGetNItems(ARR_NDIM(seen), ARR_DIMS(seen));
        const int64 *ids = (const int64 *) ARR_DATA_PTR(seen);
        const int16 *doms = ItSeenDomains(m, user_id, tup, desc, 4, nitems);
        bool        sorted = true;

        if (nitems > 0)
        {
            idx = MemoryContextAlloc(cxt, sizeof(int32) * nitems);
            for (int i = 0; i < nitems; i++)
            {
                int64       j = ItItemIndex(m, doms ? doms[i] : 0, ids[i]);

                if (j < 0)
                    continue;
                if (n > 0 && (int32) j <= idx[n - 1])
                    sorted = false;
                idx[n++] = (int32) j;
            }
            if (!sorted)
            {
                int         w = 0;

                qsort(idx, n, sizeof(int32), ItCompareInt32);
                for (int i = 0; i < n; i++)
                    if (w == 0 || idx[i] != idx[w - 1])
                        idx[w++] = idx[i];
                n = w;
            }
            if (n == 0)
            {
                pfree(idx);
                idx = NULL;
            }
        }
    }
    *seen_out = idx;
    *nseen = n;
}

/*
 * Users' rows read ahead in one query (ItPrefetchUsers), for one model
 * load and context: ids sorted and distinct, row[i] the place of ids[i]'s
 * row, or -1 when the user has none.
 */
typedef struct UserPrefetch
{
    uint64      generation;     /* the model load they were read for */
    char       *context;        /* NULL: the global rows */
    int         n;
    int64      *ids;
    int        *row;
    float      *X;              /* rows * k */
    int32     **seen;
    int        *nseen;
    ItInterestSource *source;
} UserPrefetch;

#define IT_PREFETCH_SLOTS   2   /* a context's rows and the global ones */
static UserPrefetch *Prefetched[IT_PREFETCH_SLOTS];

static bool
SameContext(const char *a, const char *b)
{
    return a == NULL ? b == NULL : b != NULL && strcmp(a, b) == 0;
}

void
ItPrefetchUsers(ItModel *m, const int64 *user_ids, int n, const char *context)
{
    MemoryContext callercxt = CurrentMemoryContext;
    UserPrefetch *p;
    int         slot;
    ItRunAs     r;
    int         rows;

    for (slot = 0; slot < IT_PREFETCH_SLOTS && Prefetched[slot] != NULL; slot++)
        ;
    if (slot == IT_PREFETCH_SLOTS || n <= 0)
        return;                 /* read one at a time, as without */

    p = palloc0(sizeof(UserPrefetch));
    p->generation = m->generation;
    p->context = context ? pstrdup(context) : NULL;
    p->ids = palloc(sizeof(int64) * n);
    memcpy(p->ids, user_ids, sizeof(int64) * n);
    p->n = (int) it_sort_unique_ids(p->ids, n);
    p->row = palloc(sizeof(int) * p->n);
    for (int i = 0; i < p->n; i++)
        p->row[i] = -1;

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ItRunAsTablesOwnerForPlans(&r);
    ItStoreUserRows(m->name, m->version, p->ids, p->n, context);
    rows = (int) SPI_processed;
    /* what outlives SPI_finish goes in the caller's context */
    p->X = MemoryContextAlloc(callercxt, sizeof(float) * (Size) Max(rows, 1) * m->k);
    p->seen = MemoryContextAlloc(callercxt, sizeof(int32 *) * Max(rows, 1));
    p->nseen = MemoryContextAlloc(callercxt, sizeof(int) * Max(rows, 1));
    p->source = MemoryContextAlloc(callercxt, sizeof(ItInterestSource) * Max(rows, 1));
    for (int i = 0; i < rows; i++)
    {
        HeapTuple   tup = SPI_tuptable->vals[i];
        TupleDesc   desc = SPI_tuptable->tupdesc;
        bool        isnull;
        int64       user_id = DatumGetInt64(SPI_getbinval(tup, desc, 5, &isnull));
        int64       at = it_find_id(p->ids, p->n, user_id);

        if (at < 0 || p->row[at] >= 0)
            elog(ERROR, "user " INT64_FORMAT " of model \"%s\" read ahead twice or unasked",
                 user_id, m->name);
        UserRowVector(m, user_id, context, tup, desc, callercxt,
                      p->X + (size_t) i * m->k, &p->seen[i], &p->nseen[i], &p->source[i]);
        p->row[at] = i;
    }
    ItRunAsEnd(&r);
    SPI_finish();
    Prefetched[slot] = p;
}

void
ItForgetPrefetchedUsers(void)
{
    for (int slot = 0; slot < IT_PREFETCH_SLOTS; slot++)
        Prefetched[slot] = NULL;
}

/* A read-ahead row of the user: 1, none: 0, not read ahead: -1. */
static int
PrefetchedRow(ItModel *m, int64 user_id, const char *context, float *x_out,
              int32 **seen_out, int *nseen, ItInterestSource *source_out)
{
    for (int slot = 0; slot < IT_PREFETCH_SLOTS; slot++)
    {
        const UserPrefetch *p = Prefetched[slot];
        int64       at;
        int         r;

        if (p == NULL || p->generation != m->generation || !SameContext(p->context, context))
            continue;
        if ((at = it_find_id(p->ids, p->n, user_id)) < 0)
            continue;
        if ((r = p->row[at]) < 0)
            return 0;
        memcpy(x_out, p->X + (size_t) r * m->k, sizeof(float) * m->k);
        *seen_out = NULL;
        *nseen = p->nseen[r];
        if (p->nseen[r] > 0)
        {
            *seen_out = palloc(sizeof(int32) * p->nseen[r]);
            memcpy(*seen_out, p->seen[r], sizeof(int32) * p->nseen[r]);
        }
        if (source_out)
            *source_out = p->source[r];
        return 1;
    }
    return -1;
}

bool
ItGetUserVectorIn(ItModel *m, int64 user_id, const char *context, float *x_out,
                  int32 **seen_out, int *nseen, ItInterestSource *source_out)
{
    MemoryContext callercxt = CurrentMemoryContext;
    ItInterestSource source;
    ItRunAs     r;
    int         pre;

    if ((pre = PrefetchedRow(m, user_id, context, x_out, seen_out, nseen, source_out)) >= 0)
        return pre == 1;

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    ItRunAsTablesOwnerForPlans(&r);
    if (!ItStoreUserRow(m->name, m->version, user_id, context))
    {
        ItRunAsEnd(&r);
        SPI_finish();
        return false;
    }
    UserRowVector(m, user_id, context, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, callercxt,
                  x_out, seen_out, nseen, &source);
    ItRunAsEnd(&r);
    SPI_finish();
    if (source_out)
        *source_out = source;
    return true;
}

/*
 * common.c
 *    Module initialisation, GUCs and helpers shared by the SQL-facing files:
 *    where the model tables live, which version is deployed, and the switch
 *    to the tables' owner for writes.
 */
#include "postgres.h"

#include <math.h>
#include <sys/mman.h>
#include <unistd.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "common.h"
#include "item_cache.h"
#include "kernels.h"

PG_MODULE_MAGIC;

int         it_threads = 0;
char       *it_default_model = NULL;
int         it_train_memory_kb = 2 * 1024 * 1024;  /* 2 GB */
int         it_scan_threads = 0;
int         it_scan_bits = 0;

static const struct config_enum_entry it_scan_bits_options[] = {
    {"auto", 0, false},
    {"8", 8, false},
    {"4", 4, false},
    {NULL, 0, false}
};

/*
 * Items from which a scan is cut between two threads when automatic: the
 * 8-bit copy's, and the 4-bit copy's (half the bytes an item, so a scan
 * that pays for the thread's start and join only from more items).
 */
#define IT_SCAN_THREADS_FROM 65536
#define IT_SCAN_THREADS_4BIT_FROM 262144

/*
 * Items from which recommend() scans the 4-bit copy first when automatic:
 * measured on 64 factors, the same time as the 8-bit scan at 20,000
 * items, 30% less at 50,000 and 25% less at 100,000.
 */
#define IT_SCAN_4BIT_FROM 32768

/* The budget ItMemoryBudgetBegin set (NULL context: none). */
static MemoryContext it_budget_cxt = NULL;
static char it_budget_model[NAMEDATALEN * 2];

/* Schema of the extension for the current call (see ItSetSchema): its
 * name and its quoted form. */
static char *it_schema_name = NULL;
static char *it_schema = NULL;

void        _PG_init(void);

/*
 * Whether CheckExtensionVersion found the extension at the library's
 * version and nothing may have changed it since: DROP EXTENSION and
 * CREATE EXTENSION drop and create functions, and every upgrade script
 * replaces some (sql/interest_transfer--*--*.sql), each a pg_proc
 * invalidation that makes the next call check again.  (Not a relcache
 * callback: a backend has only 10 of those slots, and running out is
 * FATAL.)
 */
static bool it_version_checked = false;

static void
ForgetVersionCheck(Datum arg, int cacheid, uint32 hashvalue)
{
    it_version_checked = false;
}

void
_PG_init(void)
{
    const char *core;

    CacheRegisterSyscacheCallback(PROCOID, ForgetVersionCheck, (Datum) 0);

    /* before any BLAS call: the kernels this CPU can run */
    core = it_blas_prefer_core();
    if (core != NULL)
        elog(DEBUG1, "interest_transfer: OpenBLAS did not know this CPU; loaded its %s kernels", core);
    DefineCustomIntVariable("interest_transfer.threads",
                            gettext_noop("Worker threads used by training (0 = one per core, at most 8)."),
                            gettext_noop("Threads are created for each training step and joined before it returns."),
                            &it_threads,
                            0, 0, IT_MAX_THREADS,
                            PGC_USERSET, 0,
                            NULL, NULL, NULL);
    DefineCustomStringVariable("interest_transfer.default_model",
                               gettext_noop("Model used by recommend(), score() and the other scoring functions when the call names none."),
                               gettext_noop("Empty: the only deployed model the current user may use; an error when there are several."),
                               &it_default_model,
                               "",
                               PGC_USERSET, 0,
                               NULL, NULL, NULL);
    DefineCustomIntVariable("interest_transfer.train_memory",
                            gettext_noop("Memory train() may use for one model; more is refused before it is allocated."),
                            gettext_noop("Counts the interactions, the factors and the priors' buffers; raise it for large models."),
                            &it_train_memory_kb,
                            2 * 1024 * 1024, 1024, MAX_KILOBYTES,
                            PGC_USERSET, GUC_UNIT_KB,
                            NULL, NULL, NULL);
    DefineCustomIntVariable("interest_transfer.scan_threads",
                            gettext_noop("Threads one recommend() call scans the items' 8-bit copy with (0 = automatic)."),
                            gettext_noop("Automatic: 2 on a machine of 2 cores or more from 65,536 items scanned at 8 bits or 262,144 at 4 bits, else 1. The scan is bound by memory bandwidth, which one core does not use up."),
                            &it_scan_threads,
                            0, 0, IT_Q8_MAX_SCAN_THREADS,
                            PGC_USERSET, 0,
                            NULL, NULL, NULL);
    DefineCustomEnumVariable("interest_transfer.scan_bits",
                             gettext_noop("Bits of the item copy one recommend() call scans first (auto, 8 or 4)."),
                             gettext_noop("auto: 4 from 32,768 items, else 8. Either way the top k is exact: the items the copy's error bound cannot rule out are scored again with the full vectors, which at 4 bits are more of them."),
                             &it_scan_bits,
                             0, it_scan_bits_options,
                             PGC_USERSET, 0,
                             NULL, NULL, NULL);
    DefineCustomBoolVariable("interest_transfer.item_cache",
                             gettext_noop("Shares each deployed version's item arrays between backends through a file in the data directory."),
                             gettext_noop("The first backend that loads a version writes $PGDATA/interest_transfer/; the next ones map it instead of reading the packs."),
                             &it_item_cache,
                             true,
                             PGC_SUSET, 0,
                             NULL, NULL, NULL);
    MarkGUCPrefixReserved("interest_transfer");
}

int
ItScanBits(int64 n)
{
    if (it_scan_bits == 4 || it_scan_bits == 8)
        return it_scan_bits;
    return n >= IT_SCAN_4BIT_FROM ? 4 : 8;
}

int
ItThreads(int requested)
{
    long        ncpu;

    if (requested > 0)
        return Min(requested, IT_MAX_THREADS);
    if (it_threads > 0)
        return it_threads;
    ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1)
        ncpu = 1;
    return (int) Min(ncpu, 8);
}

int
ItScanThreads(int64 n, int bits)
{
    static long ncpu = 0;

    if (it_scan_threads > 0)
        return it_scan_threads;
    if (n < (bits == 4 ? IT_SCAN_THREADS_4BIT_FROM : IT_SCAN_THREADS_FROM))
        return 1;
    if (ncpu == 0)
        ncpu = Max(sysconf(_SC_NPROCESSORS_ONLN), 1);
    return ncpu >= 2 ? 2 : 1;
}

/*
 * The library works on the schema of its own release only: an older
 * extension version (the package was upgraded, ALTER EXTENSION not yet
 * run) gets a clear error instead of failing on a missing column.  Checked
 * again after any pg_proc invalidation, which creating, dropping or
 * updating the extension causes (it_version_checked), the version read
 * each time: the lookup by name cost about 12 us of every recommend()
 * call.
 */
static void
CheckExtensionVersion(void)
{
    Oid         ext;
    Relation    rel;
    ScanKeyData key;
    SysScanDesc scan;
    HeapTuple   tup;
    char       *version = NULL;

    /*
     * Invalidations another session committed while this transaction runs
     * are read only at the next lock taken; the lookup below took one, so
     * take them here (a look at a shared flag when there are none).
     */
    AcceptInvalidationMessages();
    if (it_version_checked)
        return;
    ext = get_extension_oid("interest_transfer", true);
    if (!OidIsValid(ext))
        return;
    rel = table_open(ExtensionRelationId, AccessShareLock);
    ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
    scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
    tup = systable_getnext(scan);
    if (HeapTupleIsValid(tup))
    {
        bool        isnull;
        Datum       d = heap_getattr(tup, Anum_pg_extension_extversion, RelationGetDescr(rel), &isnull);

        if (!isnull)
            version = text_to_cstring(DatumGetTextPP(d));
    }
    systable_endscan(scan);
    table_close(rel, AccessShareLock);
    if (version == NULL || strcmp(version, IT_VERSION) != 0)
        ereport(ERROR,
                (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                 errmsg("extension interest_transfer is at version %s, but its library is version %s",
                        version ? version : "?", IT_VERSION),
                 errhint("Run ALTER EXTENSION interest_transfer UPDATE.")));
    it_version_checked = true;
}

const char *
ItSchemaName(void)
{
    if (it_schema_name == NULL)
        elog(ERROR, "interest_transfer schema not set");
    return it_schema_name;
}

void
ItSetSchema(FunctionCallInfo fcinfo)
{
    Oid         nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
    char       *name = get_namespace_name(nsp);
    const char *quoted;

    if (name == NULL)
        elog(ERROR, "cache lookup failed for namespace %u", nsp);
    CheckExtensionVersion();
    if (it_schema_name == NULL || strcmp(it_schema_name, name) != 0)
    {
        quoted = quote_identifier(name);
        if (it_schema)
            pfree(it_schema);
        if (it_schema_name)
            pfree(it_schema_name);
        it_schema = MemoryContextStrdup(TopMemoryContext, quoted);
        it_schema_name = MemoryContextStrdup(TopMemoryContext, name);
    }
}

const char *
ItTable(const char *relname)
{
    if (it_schema == NULL)
        elog(ERROR, "interest_transfer schema not set");
    return psprintf("%s.%s", it_schema, quote_identifier(relname));
}

/* Owner of the extension's tables: the role that reads and writes models. */
Oid
ItTablesOwner(void)
{
    Oid         nsp = get_namespace_oid(it_schema_name, false);
    Oid         relid = get_relname_relid("it_model", nsp);
    HeapTuple   tup;
    Oid         owner;

    if (!OidIsValid(relid))
        elog(ERROR, "interest_transfer table it_model is missing");
    tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
    if (!HeapTupleIsValid(tup))
        elog(ERROR, "cache lookup failed for relation %u", relid);
    owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
    ReleaseSysCache(tup);
    return owner;
}

Oid
ItBeginWrite(const char *model, bool must_exist, ItPrivilege need, const char *action,
             ItWriteState *st)
{
    ItModelAcl  acl;
    bool        exists;
    Oid         owner;

    ItRefuseReadOnly(action, model);

    /*
     * Check, queue behind other writers of the model, check again in a
     * fresh snapshot: only roles that may change the model queue on its
     * lock, and what they may do is decided after the wait.
     */
    for (int pass = 0; pass < 2; pass++)
    {
        exists = ItReadModelAcl(model, pass == 1, &acl);
        if (!exists && must_exist)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_OBJECT),
                     errmsg("model \"%s\" does not exist", model),
                     strcmp(action, "train") == 0 ?
                     errhint("Train it first with train('%s', interactions), or list the models you may use "
                             "with SELECT DISTINCT model FROM models.", model) :
                     errhint("List the models you may use with SELECT DISTINCT model FROM models.")));
        if (exists)
            ItAclRequire(model, &acl, need, GetUserId());
        if (pass == 0)
            ItLockModel(model);
    }
    owner = exists ? acl.owner : GetUserId();
    ItRunAsTablesOwner(&st->runas);
    return owner;
}

void
ItEndWrite(ItWriteState *st)
{
    ItRunAsEnd(&st->runas);
}

int
ItExecuteLatest(const char *sql, int nargs, Oid *argtypes, Datum *values, long count)
{
    SPIPlanPtr  plan = SPI_prepare(sql, nargs, argtypes);
    int         ret;

    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    ret = SPI_execute_snapshot(plan, values, NULL, GetLatestSnapshot(), InvalidSnapshot,
                               false, false, count);
    SPI_freeplan(plan);
    return ret;
}

void
ItNullArgument(const char *name, const char *hint)
{
    ereport(ERROR,
            (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
             errmsg("%s must not be NULL", name),
             errhint("%s", hint)));
}

/* A one-dimensional array datum of n elements copied from data (no NULLs). */
Datum
ItFlatArray(const void *data, int64 n, Oid elemtype, int elemsize)
{
    Size        nbytes;
    ArrayType  *a;

    if (n == 0)
        return PointerGetDatum(construct_empty_array(elemtype));
    nbytes = add_size(ARR_OVERHEAD_NONULLS(1), mul_size((Size) n, elemsize));
    if (n > INT_MAX || !AllocSizeIsValid(nbytes))
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("array of " INT64_FORMAT " elements is too large", n)));
    a = (ArrayType *) palloc0(nbytes);
    SET_VARSIZE(a, nbytes);
    a->ndim = 1;
    a->dataoffset = 0;
    a->elemtype = elemtype;
    ARR_DIMS(a)[0] = (int) n;
    ARR_LBOUND(a)[0] = 1;
    memcpy(ARR_DATA_PTR(a), data, (Size) n * elemsize);
    return PointerGetDatum(a);
}

Datum
ItFloatArrayDatum(const float *v, int n)
{
    return ItFlatArray(v, n, FLOAT4OID, sizeof(float));
}

void
ItArrayToFloats(Datum d, float *v, int n, const char *what)
{
    ArrayType  *arr = DatumGetArrayTypeP(d);

    if (ARR_ELEMTYPE(arr) != FLOAT4OID || ARR_NDIM(arr) != 1 || ARR_HASNULL(arr) ||
        ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)) != n)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("%s is not a real[] of %d values", what, n),
                 errhint("Retrain the model with train(model).")));
    memcpy(v, ARR_DATA_PTR(arr), sizeof(float) * n);
    for (int i = 0; i < n; i++)
        if (!isfinite(v[i]))
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("%s has a value that is not finite (element %d)", what, i + 1),
                     errhint("Retrain the model with train(model).")));
}

double
ItElapsedSeconds(instr_time start)
{
    instr_time  now;

    INSTR_TIME_SET_CURRENT(now);
    INSTR_TIME_SUBTRACT(now, start);
    return INSTR_TIME_GET_DOUBLE(now);
}

int64 *
ItIdArray(ArrayType *arr, const char *what, int *n)
{
    Datum      *elems;
    bool       *nulls;
    int64      *ids;

    if (ARR_NDIM(arr) > 1)
        ereport(ERROR,
                (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                 errmsg("%s must be a one-dimensional array", what),
                 errhint("Pass the ids as a flat array, for example ARRAY[17, 42].")));
    deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &nulls, n);
    ids = palloc(sizeof(int64) * Max(*n, 1));
    for (int i = 0; i < *n; i++)
    {
        if (nulls[i])
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("%s must not contain NULL (element %d is NULL)", what, i + 1),
                     errhint("Leave the NULL elements out, for example with array_remove(%s, NULL).", what)));
        ids[i] = DatumGetInt64(elems[i]);
    }
    return ids;
}

static void
BudgetEnds(void *arg)
{
    if (it_budget_cxt == (MemoryContext) arg)
        it_budget_cxt = NULL;
}

void
ItMemoryBudgetBegin(const char *model, MemoryContext ctx)
{
    MemoryContextCallback *cb = MemoryContextAlloc(ctx, sizeof(MemoryContextCallback));

    cb->func = BudgetEnds;
    cb->arg = ctx;
    MemoryContextRegisterResetCallback(ctx, cb);
    strlcpy(it_budget_model, model, sizeof(it_budget_model));
    it_budget_cxt = ctx;
}

/* bytes as "12.3 MB" or "1.50 GB" */
static char *
PrettyBytes(double bytes)
{
    if (bytes >= 1024.0 * 1024 * 1024)
        return psprintf("%.2f GB", bytes / (1024.0 * 1024 * 1024));
    return psprintf("%.1f MB", bytes / (1024.0 * 1024));
}

void
ItChargeMemory(double bytes, const char *what)
{
    double      limit;
    double      used;

    if (it_budget_cxt == NULL)
        return;
    limit = (double) it_train_memory_kb * 1024.0;
    used = (double) MemoryContextMemAllocated(it_budget_cxt, true);
    if (used + bytes > limit)
    {
        /* a setting that would have let it through, in whole MB, with room to spare */
        double      want = ceil((used + bytes) * 1.5 / (1024.0 * 1024));

        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("training model \"%s\" needs more memory than interest_transfer.train_memory (%s): "
                        "%s in use and %s more for %s",
                        it_budget_model, PrettyBytes(limit), PrettyBytes(used), PrettyBytes(bytes), what),
                 errhint("Raise the budget for this session, for example SET interest_transfer.train_memory = '%.0fMB', "
                         "or train on a sample of the interactions or with fewer factors.", want)));
    }
}

/* palloc of n elements of size bytes for training, checked, in memory that may exceed 1 GB. */
void *
ItAllocArray(int64 n, Size size)
{
    if (n < 0 || (uint64) n > MaxAllocHugeSize / size)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("training data is too large: " INT64_FORMAT " elements of %zu bytes", n, size),
                 errhint("Train on a sample of the interactions, or with fewer factors.")));
    ItChargeMemory((double) n * (double) size, "training arrays");
    return MemoryContextAllocHuge(CurrentMemoryContext, Max(mul_size((Size) n, size), 1));
}

/*
 * ItAllocArray for a factor matrix, which training reads a row at a time
 * in scattered order (ALS gathers the other side's vectors, the features
 * models read them per positive): a matrix larger than the caches then
 * costs a TLB miss per row on 4 kB pages.  The 2 MB pages inside the
 * allocation are marked for transparent huge pages (Debian's default
 * mode serves them only where asked); the kernel may ignore the hint,
 * which changes nothing but the speed.
 */
#define IT_HUGE_PAGE ((uintptr_t) 2 * 1024 * 1024)

void *
ItAllocFactorArray(int64 n, Size size)
{
    void       *p = ItAllocArray(n, size);

#ifdef MADV_HUGEPAGE
    {
        uintptr_t   lo = ((uintptr_t) p + IT_HUGE_PAGE - 1) & ~(IT_HUGE_PAGE - 1);
        uintptr_t   hi = ((uintptr_t) p + (uintptr_t) n * size) & ~(IT_HUGE_PAGE - 1);

        if (hi > lo)
            (void) madvise((void *) lo, hi - lo, MADV_HUGEPAGE);
    }
#endif
    return p;
}

int
ItCompareScoredItems(const void *a, const void *b)
{
    const ItScoredItem *x = a;
    const ItScoredItem *y = b;

    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

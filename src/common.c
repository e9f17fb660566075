/*
 * common.c
 *    Module initialisation, GUCs and helpers shared by the SQL-facing files:
 *    where the model tables live, which version is deployed, and the switch
 *    to the tables' owner for writes.
 */
#include "postgres.h"

#include <math.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "interest_transfer.h"

PG_MODULE_MAGIC;

int         it_threads = 0;

/* Schema of the extension for the current call (see ItSetSchema): its
 * name and its quoted form. */
static char *it_schema_name = NULL;
static char *it_schema = NULL;

void        _PG_init(void);

void
_PG_init(void)
{
    DefineCustomIntVariable("interest_transfer.threads",
                            gettext_noop("Worker threads used by training (0 = one per core, at most 8)."),
                            gettext_noop("Threads are created for each training step and joined before it returns."),
                            &it_threads,
                            0, 0, IT_MAX_THREADS,
                            PGC_USERSET, 0,
                            NULL, NULL, NULL);
    MarkGUCPrefixReserved("interest_transfer");
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

void
ItSetSchema(FunctionCallInfo fcinfo)
{
    Oid         nsp = get_func_namespace(fcinfo->flinfo->fn_oid);
    char       *name = get_namespace_name(nsp);
    const char *quoted;

    if (name == NULL)
        elog(ERROR, "cache lookup failed for namespace %u", nsp);
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

void
ItResolveDeployed(const char *model, char **name_out, int *version_out)
{
    int         ret;
    bool        isnull;

    if (model != NULL)
    {
        Oid         argtypes[1] = {TEXTOID};
        Datum       values[1] = {CStringGetTextDatum(model)};

        ret = SPI_execute_with_args(psprintf("SELECT version, deployed FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                                             "ORDER BY deployed DESC LIMIT 1",
                                             ItTable("it_model")),
                                    1, argtypes, values, NULL, true, 1);
        if (ret != SPI_OK_SELECT)
            elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
        if (SPI_processed == 0)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_OBJECT),
                     errmsg("model \"%s\" does not exist", model),
                     errhint("Train it with train('%s', interactions), or list the models with SELECT * FROM models.", model)));
        if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
            ereport(ERROR,
                    (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
                     errmsg("model \"%s\" has no deployed version", model),
                     errhint("Deploy one with deploy('%s', version).", model)));
        *version_out = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        *name_out = pstrdup(model);
        return;
    }

    ret = SPI_execute(psprintf("SELECT model, version FROM %s WHERE deployed "
                               "ORDER BY deployed_at DESC NULLS LAST, model LIMIT 1",
                               ItTable("it_model")),
                      true, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("no model has been deployed"),
                 errhint("Train one with train(model, interactions), or name the model in the call.")));
    *name_out = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
    *version_out = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/* Owner of the extension's it_model table: the role that writes models. */
static Oid
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
ItBeginWrite(const char *model, bool must_exist, ItWriteState *st)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1];
    Oid         owner;
    int         ret;

    values[0] = CStringGetTextDatum(psprintf("interest_transfer:%s", model));

    /* One writer per model at a time, until the end of the transaction. */
    ret = SPI_execute_with_args("SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext($1))",
                                1, argtypes, values, NULL, false, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));

    values[0] = CStringGetTextDatum(model);
    /* pg_catalog's =: the caller's search_path must not decide who owns it */
    ret = SPI_execute_with_args(psprintf("SELECT owner FROM %s WHERE model OPERATOR(pg_catalog.=) $1 LIMIT 1",
                                         ItTable("it_model")),
                                1, argtypes, values, NULL, false, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
    {
        if (must_exist)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_OBJECT),
                     errmsg("model \"%s\" does not exist", model),
                     errhint("List the models with SELECT * FROM models.")));
        owner = GetUserId();
    }
    else
    {
        bool        isnull;

        owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
        if (!has_privs_of_role(GetUserId(), owner))
            ereport(ERROR,
                    (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                     errmsg("must be owner of model \"%s\"", model),
                     errhint("Ask its owner, role \"%s\", or a superuser to change it.",
                             GetUserNameFromId(owner, true) ? GetUserNameFromId(owner, true) : "?")));
    }

    GetUserIdAndSecContext(&st->saved_userid, &st->saved_sec_context);
    SetUserIdAndSecContext(ItTablesOwner(),
                           st->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
                           SECURITY_RESTRICTED_OPERATION);

    /*
     * The caller's search_path could put their own operators or functions
     * ahead of pg_catalog's; none may run as the tables' owner.
     */
    st->guc_nestlevel = NewGUCNestLevel();
    (void) set_config_option("search_path", "pg_catalog, pg_temp",
                             PGC_USERSET, PGC_S_SESSION,
                             GUC_ACTION_SAVE, true, 0, false);
    return owner;
}

void
ItEndWrite(ItWriteState *st)
{
    AtEOXact_GUC(true, st->guc_nestlevel);
    SetUserIdAndSecContext(st->saved_userid, st->saved_sec_context);
}

Datum
ItFloatArrayDatum(const float *v, int n)
{
    Datum      *elems = palloc(sizeof(Datum) * Max(n, 1));
    ArrayType  *arr;

    for (int i = 0; i < n; i++)
        elems[i] = Float4GetDatum(v[i]);
    arr = construct_array(elems, n, FLOAT4OID, sizeof(float4), true, TYPALIGN_INT);
    pfree(elems);
    return PointerGetDatum(arr);
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

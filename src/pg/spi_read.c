/*
 * spi_read.c
 *    Reading the user's own data: a table or view name, or a query, run
 *    read-only through SPI with the caller's privileges, through a cursor.
 *
 * A name is resolved like any relation name in a query (search_path,
 * quoting, schema qualification) and the query built from it uses the
 * quoted, schema-qualified name of what it resolved to.  A query is
 * wrapped as a subquery, so a second statement or a data-modifying one
 * cannot run; the executor checks the caller's SELECT privileges.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "executor/spi_priv.h"
#include "miscadmin.h"
#include "utils/plancache.h"
#include "nodes/params.h"
#include "utils/memutils.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "nodes/makefuncs.h"
#include "nodes/value.h"
#include "parser/scansup.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/varlena.h"

#include "common.h"
#include "spi_read.h"

/* Skips white space and SQL comments (nested block comments too). */
static const char *
SkipSpaceAndComments(const char *p)
{
    for (;;)
    {
        while (*p && scanner_isspace(*p))
            p++;
        if (p[0] == '-' && p[1] == '-')
        {
            while (*p && *p != '\n')
                p++;
        }
        else if (p[0] == '/' && p[1] == '*')
        {
            int         depth = 1;

            p += 2;
            while (*p && depth > 0)
            {
                if (p[0] == '/' && p[1] == '*')
                {
                    depth++;
                    p += 2;
                }
                else if (p[0] == '*' && p[1] == '/')
                {
                    depth--;
                    p += 2;
                }
                else
                    p++;
            }
        }
        else
            return p;
    }
}

bool
ItSourceIsQuery(const char *source)
{
    static const char *const starts[] = {"select", "with", "values", "table"};
    const char *p = SkipSpaceAndComments(source);
    int         len = 0;

    if (*p == '(')
        return true;
    while (isalnum((unsigned char) p[len]) || p[len] == '_' || p[len] == '$' ||
           IS_HIGHBIT_SET(p[len]))
        len++;
    for (int i = 0; i < lengthof(starts); i++)
    {
        if (len == (int) strlen(starts[i]) && pg_strncasecmp(p, starts[i], len) == 0)
            return true;
    }
    return false;
}

/* The source, shortened for messages. */
static char *
ShortText(const char *s)
{
    int         len = strlen(s);

    if (len <= 80)
        return pstrdup(s);
    return psprintf("%.*s...", pg_mbcliplen(s, len, 77), s);
}

static void
NotASource(const char *source, const char *what)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("%s must be a table name, a view name or a query", what),
             errdetail("\"%s\" is neither.", ShortText(source)),
             errhint("Give a table or view name, optionally schema-qualified, or a query "
                     "starting with SELECT, WITH, VALUES or TABLE.")));
}

char *
ItSourceSql(const char *source, const char *what, const char *where)
{
    StringInfoData sql;

    initStringInfo(&sql);
    if (*SkipSpaceAndComments(source) == '\0')
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s is empty", what),
                 errhint("Give a table or view name, or a query starting with SELECT, WITH, VALUES or TABLE.")));

    if (ItSourceIsQuery(source))
    {
        int         len = strlen(source);

        /* a trailing semicolon would end the subquery */
        while (len > 0 && (scanner_isspace(source[len - 1]) || source[len - 1] == ';'))
            len--;
        /* the line breaks keep a trailing -- comment from hiding the ")" */
        appendStringInfo(&sql, "SELECT * FROM (\n%.*s\n) AS s", len, source);
    }
    else
    {
        char       *copy = pstrdup(source);
        List       *parts = NIL;
        List       *names = NIL;
        ListCell   *lc;
        RangeVar   *rv;
        Oid         relid;
        char        relkind;

        if (!SplitIdentifierString(copy, '.', &parts) || parts == NIL || list_length(parts) > 3)
            NotASource(source, what);
        foreach(lc, parts)
        {
            if (((char *) lfirst(lc))[0] == '\0')
                NotASource(source, what);
            names = lappend(names, makeString(pstrdup((char *) lfirst(lc))));
        }
        rv = makeRangeVarFromNameList(names);
        relid = RangeVarGetRelid(rv, AccessShareLock, true);
        if (!OidIsValid(relid))
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_TABLE),
                     errmsg("relation \"%s\" given as %s does not exist", ShortText(source), what),
                     errhint("Give an existing table or view (schema-qualify it when it is not on "
                             "the search_path), or a query starting with SELECT, WITH, VALUES or TABLE.")));
        relkind = get_rel_relkind(relid);
        if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW &&
            relkind != RELKIND_MATVIEW && relkind != RELKIND_FOREIGN_TABLE &&
            relkind != RELKIND_PARTITIONED_TABLE)
            ereport(ERROR,
                    (errcode(ERRCODE_WRONG_OBJECT_TYPE),
                     errmsg("\"%s\" given as %s is not a table or view", ShortText(source), what),
                     errhint("Give a table, a view, a materialized view or a query.")));
        appendStringInfo(&sql, "SELECT * FROM %s AS s",
                         quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
                                                    get_rel_name(relid)));
    }
    if (where)
        appendStringInfo(&sql, " WHERE %s", where);
    return sql.data;
}

static void
SourceErrorCallback(void *arg)
{
    ItSource   *src = (ItSource *) arg;

    if (src->model)
        errcontext("while reading %s for model \"%s\"", src->what, src->model);
    else
        errcontext("while reading %s", src->what);
}

/*
 * The start of ItSourceOpen and ItSourceStream: src filled in, its error
 * context pushed, the source's query prepared (and, for a model's stored
 * source, checked for temporary relations).
 */
static void
SourcePrepare(ItSource *src, const char *source, const char *what, const char *model,
              const char *where, int nargs, Oid *argtypes)
{
    memset(src, 0, sizeof(*src));
    src->text = source;
    src->what = what;
    src->model = model;

    src->errcb.callback = SourceErrorCallback;
    src->errcb.arg = src;
    src->errcb.previous = error_context_stack;
    error_context_stack = &src->errcb;

    src->sql = ItSourceSql(source, what, where);
    src->plan = SPI_prepare(src->sql, nargs, argtypes);
    if (src->plan == NULL)
        elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    ItRefuseTempRelations(src->plan, what, model);
}

void
ItSourceOpen(ItSource *src, const char *source, const char *what,
             const char *model, const char *where,
             int nargs, Oid *argtypes, Datum *values)
{
    SourcePrepare(src, source, what, model, where, nargs, argtypes);

    /*
     * read_only: no command counter increment, and anything but a plain
     * query is refused.  ExecutorStart checks the caller's privileges.
     */
    src->portal = SPI_cursor_open(NULL, src->plan, values, NULL, true);
    src->tupdesc = src->portal->tupDesc;
    if (src->tupdesc == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s does not return rows", what),
                 errhint("Give a table or view name, or a query starting with SELECT, WITH, VALUES or TABLE.")));
}

uint64
ItSourceFetch(ItSource *src, long count)
{
    if (src->batch)
    {
        SPI_freetuptable(src->batch);
        src->batch = NULL;
    }
    SPI_cursor_fetch(src->portal, true, count);
    src->batch = SPI_tuptable;
    src->rows += SPI_processed;
    return SPI_processed;
}

void
ItSourceClose(ItSource *src)
{
    if (src->batch)
    {
        SPI_freetuptable(src->batch);
        src->batch = NULL;
    }
    if (src->portal)
    {
        SPI_cursor_close(src->portal);
        src->portal = NULL;
    }
    if (src->plan)
    {
        SPI_freeplan(src->plan);
        src->plan = NULL;
    }
    error_context_stack = src->errcb.previous;
}

/* ------------------------------------------------------------------------
 * Streaming: a DestReceiver that hands each row to the caller.
 * ------------------------------------------------------------------------ */

/* Rows between resets of the per-row memory context. */
#define IT_STREAM_RESET_ROWS 4096

typedef struct ItStreamReceiver
{
    DestReceiver pub;
    ItSource   *src;
    ItSourceStartup startup;
    ItSourceRow row;
    void       *arg;
    MemoryContext rowcxt;
    int         since_reset;
} ItStreamReceiver;

static void
StreamStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
    ItStreamReceiver *r = (ItStreamReceiver *) self;

    r->src->tupdesc = typeinfo;
    if (r->startup)
        r->startup(r->src, r->arg);
}

static bool
StreamReceive(TupleTableSlot *slot, DestReceiver *self)
{
    ItStreamReceiver *r = (ItStreamReceiver *) self;
    MemoryContext old;

    if (++r->since_reset >= IT_STREAM_RESET_ROWS)
    {
        MemoryContextReset(r->rowcxt);
        r->since_reset = 0;
    }
    r->src->rows++;
    old = MemoryContextSwitchTo(r->rowcxt);
    r->row(r->src, slot, r->arg);
    MemoryContextSwitchTo(old);
    return true;
}

static void
StreamShutdown(DestReceiver *self)
{
}

static void
StreamDestroy(DestReceiver *self)
{
}

void
ItSourceStream(ItSource *src, const char *source, const char *what,
               const char *model, const char *where,
               int nargs, Oid *argtypes, Datum *values,
               ItSourceStartup startup, ItSourceRow row, void *arg)
{
    ItStreamReceiver r;
    SPIExecuteOptions options;
    int         ret;

    SourcePrepare(src, source, what, model, where, nargs, argtypes);
    /* the subquery wrapping makes a second statement a syntax error; be sure */
    if (list_length(SPI_plan_get_plan_sources(src->plan)) != 1)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s must be a single query", what),
                 errhint("Remove the other statements.")));

    memset(&r, 0, sizeof(r));
    r.pub.receiveSlot = StreamReceive;
    r.pub.rStartup = StreamStartup;
    r.pub.rShutdown = StreamShutdown;
    r.pub.rDestroy = StreamDestroy;
    r.pub.mydest = DestNone;
    r.src = src;
    r.startup = startup;
    r.row = row;
    r.arg = arg;
    r.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer source row",
                                     ALLOCSET_DEFAULT_SIZES);

    memset(&options, 0, sizeof(options));
    if (nargs > 0)
    {
        options.params = makeParamList(nargs);
        for (int i = 0; i < nargs; i++)
        {
            ParamExternData *prm = &options.params->params[i];

            prm->value = values[i];
            prm->isnull = false;
            prm->pflags = PARAM_FLAG_CONST;
            prm->ptype = argtypes[i];
        }
    }
    /* read-only: anything but a plain query is refused */
    options.read_only = true;
    options.dest = (DestReceiver *) &r;

    ret = SPI_execute_plan_extended(src->plan, &options);
    if (ret < 0)
        elog(ERROR, "SPI_execute_plan_extended failed: %s", SPI_result_code_string(ret));
    if (src->tupdesc == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s does not return rows", what),
                 errhint("Give a table or view name, or a query starting with SELECT, WITH, VALUES or TABLE.")));

    MemoryContextDelete(r.rowcxt);
    SPI_freeplan(src->plan);
    src->plan = NULL;
    error_context_stack = src->errcb.previous;
}

static const char *
KindAccepts(ItColumnKind kind)
{
    switch (kind)
    {
        case IT_COLUMN_ID:
            return "smallint, integer, bigint or numeric";
        case IT_COLUMN_WEIGHT:
            return "smallint, integer, bigint, real, double precision or numeric";
        case IT_COLUMN_TIME:
            return "timestamp, timestamp with time zone or date";
        case IT_COLUMN_TEXT:
            return "text or varchar";
        case IT_COLUMN_VECTOR:
            return "real[] or double precision[]";
    }
    return "?";
}

static bool
KindAcceptsType(ItColumnKind kind, Oid type)
{
    switch (kind)
    {
        case IT_COLUMN_ID:
            return type == INT2OID || type == INT4OID || type == INT8OID || type == NUMERICOID;
        case IT_COLUMN_WEIGHT:
            return type == INT2OID || type == INT4OID || type == INT8OID ||
                type == FLOAT4OID || type == FLOAT8OID || type == NUMERICOID;
        case IT_COLUMN_TIME:
            return type == TIMESTAMPOID || type == TIMESTAMPTZOID || type == DATEOID;
        case IT_COLUMN_TEXT:
            return type == TEXTOID || type == VARCHAROID;
        case IT_COLUMN_VECTOR:
            return type == FLOAT4ARRAYOID || type == FLOAT8ARRAYOID;
    }
    return false;
}

int
ItSourceColumn(ItSource *src, const char *name, ItColumnKind kind, bool required)
{
    TupleDesc   desc = src->tupdesc;
    int         found = -1;
    Oid         type;

    for (int i = 0; i < desc->natts; i++)
    {
        Form_pg_attribute att = TupleDescAttr(desc, i);

        if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
            continue;
        if (found >= 0)
            ereport(ERROR,
                    (errcode(ERRCODE_AMBIGUOUS_COLUMN),
                     errmsg("%s has more than one column named %s", src->what, name),
                     errhint("Select the column %s only once, or rename the others.", name)));
        found = i;
    }

    if (found < 0)
    {
        StringInfoData cols;

        if (!required)
            return -1;
        initStringInfo(&cols);
        for (int i = 0; i < desc->natts; i++)
        {
            Form_pg_attribute att = TupleDescAttr(desc, i);

            if (att->attisdropped)
                continue;
            appendStringInfo(&cols, "%s%s", cols.len > 0 ? ", " : "",
                             quote_identifier(NameStr(att->attname)));
        }
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("%s has no column named %s", src->what, name),
                 errdetail("Its columns are: %s.", cols.len > 0 ? cols.data : "(none)"),
                 errhint("Name the column %s, for example with a query: SELECT customer AS %s, ... FROM ....",
                         name, name)));
    }

    type = getBaseType(TupleDescAttr(desc, found)->atttypid);
    if (!KindAcceptsType(kind, type))
        ereport(ERROR,
                (errcode(ERRCODE_DATATYPE_MISMATCH),
                 errmsg("column %s of %s has type %s", name, src->what,
                        format_type_be(TupleDescAttr(desc, found)->atttypid)),
                 errhint("%s must be of type %s; cast it in a query, for example SELECT %s::%s AS %s.",
                         name, KindAccepts(kind), name,
                         kind == IT_COLUMN_ID ? "bigint" :
                         kind == IT_COLUMN_WEIGHT ? "float8" :
                         kind == IT_COLUMN_TEXT ? "text" :
                         kind == IT_COLUMN_VECTOR ? "real[]" : "timestamptz",
                         name)));
    return found;
}

Oid
ItSourceColumnType(ItSource *src, int col)
{
    return getBaseType(TupleDescAttr(src->tupdesc, col)->atttypid);
}

/*
 * An id column's value (int2, int4, int8, or a whole-number numeric in the
 * range of bigint) as int64; false for a numeric that is not such a number.
 */
bool
ItIdDatumToInt64(Datum d, Oid type, int64 *out)
{
    Numeric     num;
    Numeric     trunc;

    switch (type)
    {
        case INT2OID:
            *out = DatumGetInt16(d);
            return true;
        case INT4OID:
            *out = DatumGetInt32(d);
            return true;
        case INT8OID:
            *out = DatumGetInt64(d);
            return true;
        case NUMERICOID:
            break;
        default:
            elog(ERROR, "unexpected id type %u", type);
    }
    num = DatumGetNumeric(d);
    if (numeric_is_nan(num) || numeric_is_inf(num))
        return false;
    trunc = DatumGetNumeric(DirectFunctionCall2(numeric_trunc, NumericGetDatum(num),
                                                Int32GetDatum(0)));
    if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(num),
                                          NumericGetDatum(trunc))) ||
        !DatumGetBool(DirectFunctionCall2(numeric_ge, NumericGetDatum(num),
                                          NumericGetDatum(int64_to_numeric(PG_INT64_MIN)))) ||
        !DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(num),
                                          NumericGetDatum(int64_to_numeric(PG_INT64_MAX)))))
        return false;
    *out = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(num)));
    return true;
}

int64
ItDatumGetId(ItSource *src, int col, Oid type, Datum d, int64 row)
{
    int64       id;

    if (!ItIdDatumToInt64(d, type, &id))
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("%s %s in row " INT64_FORMAT " of %s is not a bigint",
                        NameStr(TupleDescAttr(src->tupdesc, col)->attname),
                        DatumGetCString(DirectFunctionCall1(numeric_out, d)),
                        row, src->what),
                 errhint("Ids must be whole numbers in the range of bigint.")));
    return id;
}

double
ItDatumGetWeight(Datum d, Oid type)
{
    switch (type)
    {
        case INT2OID:
            return DatumGetInt16(d);
        case INT4OID:
            return DatumGetInt32(d);
        case INT8OID:
            return (double) DatumGetInt64(d);
        case FLOAT4OID:
            return DatumGetFloat4(d);
        case FLOAT8OID:
            return DatumGetFloat8(d);
        case NUMERICOID:
            return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow, d));
    }
    elog(ERROR, "unexpected weight type %u", type);
    return 0;                   /* keep compiler quiet */
}

bool
ItTimeDatumAfter(Datum d, Oid type, TimestampTz t)
{
    return ItTimeDatumValue(d, type) > t;
}

TimestampTz
ItTimeDatumValue(Datum d, Oid type)
{
    TimestampTz v;

    switch (type)
    {
        case TIMESTAMPTZOID:
            v = DatumGetTimestampTz(d);
            break;
        case TIMESTAMPOID:
            v = DatumGetTimestampTz(DirectFunctionCall1(timestamp_timestamptz, d));
            break;
        case DATEOID:
            v = DatumGetTimestampTz(DirectFunctionCall1(date_timestamptz, d));
            break;
        default:
            elog(ERROR, "unexpected time type %u", type);
            return 0;           /* keep compiler quiet */
    }
    return v;
}

void
ItRefuseTempRelations(SPIPlanPtr plan, const char *what, const char *model)
{
    CachedPlan *cp;
    ListCell   *lc;
    Oid         bad = InvalidOid;

    /* only statements run for a model's owner (ItRunAsModelOwner) */
    if (!InSecurityRestrictedOperation())
        return;
    /* revalidated now: the relations the statement reads if it runs next */
    cp = SPI_plan_get_cached_plan(plan);
    if (cp == NULL)
        elog(ERROR, "SPI_plan_get_cached_plan failed: %s", SPI_result_code_string(SPI_result));
    foreach(lc, cp->stmt_list)
    {
        PlannedStmt *ps = lfirst_node(PlannedStmt, lc);
        ListCell   *lo;

        foreach(lo, ps->relationOids)
        {
            Oid         relid = lfirst_oid(lo);

            if (isAnyTempNamespace(get_rel_namespace(relid)))
                bad = relid;
        }
    }
    ReleaseCachedPlan(cp, plan->saved ? CurrentResourceOwner : NULL);
    if (OidIsValid(bad))
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("the stored %s source of model \"%s\" reads a temporary relation, \"%s\"",
                        what, model ? model : "?", get_rel_name(bad)),
                 errhint("A model's stored sources run with its owner's rights and may not read temporary "
                         "tables or views, which belong to the session being served: give a permanent table, "
                         "view or query, or schema-qualify the names in the source.")));
}

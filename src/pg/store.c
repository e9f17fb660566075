/*
 * store.c
 *    Every statement on the extension's tables (see store.h).
 *
 * Statements name the tables through ItTable (schema-qualified, the
 * extension's schema) and compare with pg_catalog's operators where a
 * caller's search_path could otherwise choose an operator.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/relcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/timestamp.h"
#include "utils/snapmgr.h"

#include "common.h"
#include "store.h"

/* A batch of factor rows: at most this many rows and float / id values. */
#define IT_WRITE_ROWS       10000
#define IT_WRITE_VALUES     (1 << 21)
/* factor values per item pack (1 MB of floats); a pack holds at least one item */
#define IT_PACK_VALUES      (1 << 18)

/* A batch of the direct writer: at most this many rows and bytes of values. */
#define IT_DIRECT_ROWS      1000
#define IT_DIRECT_BYTES     (1 << 20)

static void
Check(int ret, int expected, const char *what)
{
    if (ret != expected)
        elog(ERROR, "%s failed: %s", what, SPI_result_code_string(ret));
}

static void
Execute(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
        bool read_only, long count, int expected)
{
    Check(SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, count),
          expected, "SPI_execute_with_args");
}

/* A statement whose parameters are $1, a model's name, and $2, one of its versions. */
static void
ExecuteVersion(const char *sql, const char *model, int version, bool read_only, long count, int expected)
{
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};

    Execute(sql, 2, argtypes, values, NULL, read_only, count, expected);
}

static bool
ColumnIsNull(int col)
{
    bool        isnull;

    (void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
    return isnull;
}

static Datum
Column(int col)
{
    bool        isnull;

    return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);
}

/* A text column of the first row, copied into mcxt; NULL for NULL. */
static char *
TextColumn(int col, MemoryContext mcxt)
{
    if (ColumnIsNull(col))
        return NULL;
    return MemoryContextStrdup(mcxt, TextDatumGetCString(Column(col)));
}

static Datum
TextOrNull(const char *s, char *null)
{
    *null = s ? ' ' : 'n';
    return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* A text[] of n names, or NULL (*null = 'n') when there are none. */
static Datum
TextArrayOrNull(char **names, int n, char *null)
{
    Datum      *d;

    *null = n > 0 ? ' ' : 'n';
    if (n == 0)
        return (Datum) 0;
    d = palloc(sizeof(Datum) * n);
    for (int i = 0; i < n; i++)
        d[i] = CStringGetTextDatum(names[i]);
    return PointerGetDatum(construct_array(d, n, TEXTOID, -1, false, TYPALIGN_INT));
}

static Datum
JsonbOrNull(Jsonb *j, char *null)
{
    *null = j ? ' ' : 'n';
    return j ? JsonbPGetDatum(j) : (Datum) 0;
}

static Datum
JsonText(const char *text)
{
    return DirectFunctionCall1(jsonb_in, CStringGetDatum(text ? text : "{}"));
}

/* ------------------------------------------------------------------------
 * Saved plans of the model cache
 * ------------------------------------------------------------------------ */

static char *PlansSchema = NULL;
static SPIPlanPtr PlanDeployedNamed = NULL;
static SPIPlanPtr PlanDeployedAll = NULL;
static SPIPlanPtr PlanModelRow = NULL;
static SPIPlanPtr PlanUserRow = NULL;
static SPIPlanPtr PlanUserRows = NULL;
static SPIPlanPtr PlanUserPriorRow = NULL;
static SPIPlanPtr PlanItemPacks = NULL;

static SPIPlanPtr
SavedPlan(const char *sql, int nargs, Oid *argtypes)
{
    SPIPlanPtr  plan = SPI_prepare(sql, nargs, argtypes);

    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    if (SPI_keepplan(plan) != 0)
        elog(ERROR, "SPI_keepplan failed");
    return plan;
}

static void
FreePlan(SPIPlanPtr *plan)
{
    if (*plan != NULL)
        SPI_freeplan(*plan);
    *plan = NULL;
}

/* Prepares the saved plans for the current schema (inside SPI_connect). */
static void
PreparePlans(void)
{
    const char *model_table = ItTable("it_model");
    const char *acl_table = ItTable("it_model_acl");
    Oid         named_types[1] = {TEXTOID};
    Oid         row_types[2] = {TEXTOID, INT4OID};
    Oid         user_types[3] = {TEXTOID, INT4OID, INT8OID};
    Oid         user_context_types[4] = {TEXTOID, INT4OID, INT8OID, TEXTOID};
    Oid         users_context_types[4] = {TEXTOID, INT4OID, INT8ARRAYOID, TEXTOID};

    if (PlansSchema != NULL && strcmp(PlansSchema, model_table) == 0)
        return;

    FreePlan(&PlanDeployedNamed);
    FreePlan(&PlanDeployedAll);
    FreePlan(&PlanModelRow);
    FreePlan(&PlanUserRow);
    FreePlan(&PlanUserRows);
    FreePlan(&PlanUserPriorRow);
    FreePlan(&PlanItemPacks);
    if (PlansSchema)
        pfree(PlansSchema);
    PlansSchema = NULL;

    PlanDeployedNamed =
        SavedPlan(psprintf("SELECT m.model, m.version, m.trained_at, m.xmin, m.ctid, a.owner, a.users, a.trainers "
                           "FROM %s m JOIN %s a ON a.model OPERATOR(pg_catalog.=) m.model "
                           "WHERE m.model OPERATOR(pg_catalog.=) $1 AND m.deployed",
                           model_table, acl_table),
                  1, named_types);
    PlanDeployedAll =
        SavedPlan(psprintf("SELECT m.model, m.version, m.trained_at, m.xmin, m.ctid, a.owner, a.users, a.trainers "
                           "FROM %s m JOIN %s a ON a.model OPERATOR(pg_catalog.=) m.model "
                           "WHERE m.deployed ORDER BY m.model",
                           model_table, acl_table),
                  0, NULL);
    PlanModelRow =
        SavedPlan(psprintf("SELECT xmin, ctid, algorithm, interactions_source, user_features_source, "
                           "item_features_source, options, factors, users, items, user_mean, search_path, domains, contexts, "
                           "context_weights, user_links_source "
                           "FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                           "AND version OPERATOR(pg_catalog.=) $2",
                           model_table),
                  2, row_types);
    PlanUserRow =
        SavedPlan(psprintf("SELECT factors, seen, source, seen_domain FROM %s "
                           "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                           "AND user_id OPERATOR(pg_catalog.=) $3 AND context OPERATOR(pg_catalog.=) $4",
                           ItTable("it_user_factors")),
                  4, user_context_types);
    PlanUserRows =
        SavedPlan(psprintf("SELECT factors, seen, source, seen_domain, user_id FROM %s "
                           "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                           "AND user_id OPERATOR(pg_catalog.=) ANY ($3) AND context OPERATOR(pg_catalog.=) $4",
                           ItTable("it_user_factors")),
                  4, users_context_types);
    PlanUserPriorRow =
        SavedPlan(psprintf("SELECT factors, source FROM %s "
                           "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                           "AND user_id OPERATOR(pg_catalog.=) $3 AND context OPERATOR(pg_catalog.=) %s",
                           ItTable("it_user_factors"), quote_literal_cstr(IT_CONTEXT_SOURCE_MODELS)),
                  3, user_types);
    PlanItemPacks =
        SavedPlan(psprintf("SELECT chunk, domain, items, item_ids, popularity, factors, norms, xmin, ctid FROM %s "
                           "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                           "ORDER BY chunk",
                           ItTable("it_item_packs")),
                  2, row_types);
    PlansSchema = MemoryContextStrdup(TopMemoryContext, model_table);
}

uint64
ItStoreDeployedRows(const char *model)
{
    PreparePlans();
    if (model != NULL)
    {
        Datum       values[1] = {CStringGetTextDatum(model)};

        Check(SPI_execute_plan(PlanDeployedNamed, values, NULL, true, 2), SPI_OK_SELECT, "SPI_execute_plan");
    }
    else
        Check(SPI_execute_plan(PlanDeployedAll, NULL, NULL, true, 0), SPI_OK_SELECT, "SPI_execute_plan");
    return SPI_processed;
}

void
ItStoreModelRow(const char *model, int version)
{
    Datum       values[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};

    PreparePlans();
    Check(SPI_execute_plan(PlanModelRow, values, NULL, true, 1), SPI_OK_SELECT, "SPI_execute_plan");
    if (SPI_processed != 1)
        elog(ERROR, "version %d of model \"%s\" vanished", version, model);
}

bool
ItStoreUserRow(const char *model, int version, int64 user_id, const char *context)
{
    Datum       values[4] = {CStringGetTextDatum(model), Int32GetDatum(version), Int64GetDatum(user_id),
    CStringGetTextDatum(context ? context : "")};

    PreparePlans();
    Check(SPI_execute_plan(PlanUserRow, values, NULL, true, 1), SPI_OK_SELECT, "SPI_execute_plan");
    return SPI_processed == 1;
}

void
ItStoreUserRows(const char *model, int version, const int64 *user_ids, int n, const char *context)
{
    Datum      *ids = palloc(sizeof(Datum) * Max(n, 1));
    Datum       values[4];

    for (int i = 0; i < n; i++)
        ids[i] = Int64GetDatum(user_ids[i]);
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = PointerGetDatum(construct_array(ids, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
    values[3] = CStringGetTextDatum(context ? context : "");
    PreparePlans();
    Check(SPI_execute_plan(PlanUserRows, values, NULL, true, 0), SPI_OK_SELECT, "SPI_execute_plan");
    pfree(ids);
}

bool
ItStoreUserPriorRow(const char *model, int version, int64 user_id)
{
    Datum       values[3] = {CStringGetTextDatum(model), Int32GetDatum(version), Int64GetDatum(user_id)};

    PreparePlans();
    Check(SPI_execute_plan(PlanUserPriorRow, values, NULL, true, 1), SPI_OK_SELECT, "SPI_execute_plan");
    return SPI_processed == 1;
}

static Portal
VersionCursor(const char *sql, const char *model, int version)
{
    Oid         argtypes[2] = {TEXTOID, INT4OID};
    Datum       values[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};

    return SPI_cursor_open_with_args(NULL, sql, 2, argtypes, values, NULL, true, CURSOR_OPT_NO_SCROLL);
}

static char *
ItemCursorSql(void)
{
    return psprintf("SELECT item_id, factors, popularity, domain FROM %s "
                    "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                    "ORDER BY domain, item_id",
                    ItTable("it_item_factors"));
}

Portal
ItStoreItemCursor(const char *model, int version)
{
    return VersionCursor(ItemCursorSql(), model, version);
}

uint64
ItStoreItemPacks(const char *model, int version)
{
    Datum       values[2] = {CStringGetTextDatum(model), Int32GetDatum(version)};

    PreparePlans();
    Check(SPI_execute_plan(PlanItemPacks, values, NULL, true, 0), SPI_OK_SELECT, "SPI_execute_plan");
    return SPI_processed;
}

Portal
ItStoreUserCursor(const char *model, int version, bool with_seen)
{
    return VersionCursor(psprintf("SELECT user_id%s FROM %s "
                                  "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                                  "AND context OPERATOR(pg_catalog.=) '' ORDER BY user_id",
                                  with_seen ? ", seen, seen_domain" : "", ItTable("it_user_factors")),
                         model, version);
}

void
ItStoreUserVectors(const char *model, int version, const int64 *ids, int n)
{
    Oid         argtypes[3] = {TEXTOID, INT4OID, INT8ARRAYOID};
    Datum       values[3] = {CStringGetTextDatum(model), Int32GetDatum(version),
    ItFlatArray(ids, n, INT8OID, sizeof(int64))};

    Execute(psprintf("SELECT user_id, factors FROM %s "
                     "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                     "AND context OPERATOR(pg_catalog.=) '' AND user_id OPERATOR(pg_catalog.=) ANY ($3)",
                     ItTable("it_user_factors")),
            3, argtypes, values, NULL, true, 0, SPI_OK_SELECT);
}

Portal
ItStoreUserFactorCursor(const char *model, int version)
{
    return VersionCursor(psprintf("SELECT user_id, factors FROM %s "
                                  "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                                  "AND context OPERATOR(pg_catalog.=) '' ORDER BY user_id",
                                  ItTable("it_user_factors")),
                         model, version);
}

void
ItStoreTrainedUserSample(const char *model, int version, int limit)
{
    ExecuteVersion(psprintf("SELECT factors FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                            "AND version OPERATOR(pg_catalog.=) $2 "
                            "AND source OPERATOR(pg_catalog.=) 'model' AND context OPERATOR(pg_catalog.=) '' "
                            "ORDER BY user_id LIMIT %d",
                            ItTable("it_user_factors"), limit),
                   model, version, true, 0, SPI_OK_SELECT);
}

/* ------------------------------------------------------------------------
 * Model rows
 * ------------------------------------------------------------------------ */

bool
ItStoreLatestDefinition(const char *model, MemoryContext mcxt, ItDefinition *def)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};
    MemoryContext old;

    /* a regularization or domain weights the version worked out ("auto", "balanced") are worked out again */
    Check(ItExecuteLatest(psprintf("SELECT m.interactions_source, m.user_features_source, "
                                   "m.item_features_source, "
                                   "m.options OPERATOR(pg_catalog.||) "
                                   "CASE WHEN m.metrics OPERATOR(pg_catalog.->) 'regularization' "
                                   "OPERATOR(pg_catalog.->>) 'rule' OPERATOR(pg_catalog.=) 'auto' "
                                   "THEN '{\"regularization\": \"auto\"}'::pg_catalog.jsonb "
                                   "ELSE '{}'::pg_catalog.jsonb END OPERATOR(pg_catalog.||) "
                                   "CASE WHEN m.metrics OPERATOR(pg_catalog.->) 'domain_weights' "
                                   "OPERATOR(pg_catalog.->>) 'rule' OPERATOR(pg_catalog.=) 'balanced' "
                                   "THEN '{\"domain_weights\": \"balanced\"}'::pg_catalog.jsonb "
                                   "ELSE '{}'::pg_catalog.jsonb END OPERATOR(pg_catalog.||) "
                                   "CASE WHEN m.metrics OPERATOR(pg_catalog.->) 'cross_domain_ranking' "
                                   "OPERATOR(pg_catalog.->>) 'rule' OPERATOR(pg_catalog.=) 'auto' "
                                   "THEN '{\"cross_domain_ranking\": \"auto\"}'::pg_catalog.jsonb "
                                   "ELSE '{}'::pg_catalog.jsonb END, m.search_path, a.owner, m.user_links_source, m.algorithm "
                                   "FROM %s m JOIN %s a ON a.model OPERATOR(pg_catalog.=) m.model "
                                   "WHERE m.model OPERATOR(pg_catalog.=) $1 "
                                   "ORDER BY m.deployed DESC, m.version DESC LIMIT 1",
                                   ItTable("it_model"), ItTable("it_model_acl")),
                          1, argtypes, values, 1),
          SPI_OK_SELECT, "SPI_execute_snapshot");
    if (SPI_processed == 0)
        return false;
    memset(def, 0, sizeof(*def));
    def->interactions = TextColumn(1, mcxt);
    def->user_features = TextColumn(2, mcxt);
    def->item_features = TextColumn(3, mcxt);
    old = MemoryContextSwitchTo(mcxt);
    def->options = DatumGetJsonbPCopy(Column(4));
    MemoryContextSwitchTo(old);
    def->search_path = TextColumn(5, mcxt);
    def->owner = DatumGetObjectId(Column(6));
    def->user_links = TextColumn(7, mcxt);
    def->algorithm = TextColumn(8, mcxt);
    def->stored = true;
    SPI_freetuptable(SPI_tuptable);
    return true;
}

bool
ItStoreDeployedVersion(const char *model, int *version, Jsonb **options)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};

    Check(ItExecuteLatest(psprintf("SELECT version, options FROM %s "
                                   "WHERE model OPERATOR(pg_catalog.=) $1 AND deployed",
                                   ItTable("it_model")),
                          1, argtypes, values, 1),
          SPI_OK_SELECT, "SPI_execute_snapshot");
    if (SPI_processed != 1)
        return false;
    *version = DatumGetInt32(Column(1));
    if (options != NULL)
        *options = DatumGetJsonbPCopy(Column(2));
    SPI_freetuptable(SPI_tuptable);
    return true;
}

bool
ItStoreVersionExists(const char *model, int version)
{
    ExecuteVersion(psprintf("SELECT 1 FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                            "AND version OPERATOR(pg_catalog.=) $2",
                            ItTable("it_model")),
                   model, version, false, 1, SPI_OK_SELECT);
    return SPI_processed == 1;
}

int
ItStoreNextVersion(const char *model)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};

    Execute(psprintf("SELECT COALESCE(pg_catalog.max(version), 0) OPERATOR(pg_catalog.+) 1 "
                     "FROM %s WHERE model OPERATOR(pg_catalog.=) $1",
                     ItTable("it_model")),
            1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
    if (SPI_processed != 1)
        elog(ERROR, "could not find the next version of model \"%s\"", model);
    return DatumGetInt32(Column(1));
}

bool
ItStoreCreateModel(const char *model, Oid owner)
{
    Oid         argtypes[2] = {TEXTOID, REGROLEOID};
    Datum       values[2] = {CStringGetTextDatum(model), ObjectIdGetDatum(owner)};

    Execute(psprintf("INSERT INTO %s (model, owner) VALUES ($1, $2) ON CONFLICT (model) DO NOTHING",
                     ItTable("it_model_acl")),
            2, argtypes, values, NULL, false, 0, SPI_OK_INSERT);
    return SPI_processed > 0;
}

static void
Undeploy(const char *model, int keep)
{
    ExecuteVersion(psprintf("UPDATE %s SET deployed = false WHERE model OPERATOR(pg_catalog.=) $1 AND deployed "
                            "AND version OPERATOR(pg_catalog.<>) $2",
                            ItTable("it_model")),
                   model, keep, false, 0, SPI_OK_UPDATE);
}

void
ItStoreInsertModel(const ItModelRow *row)
{
    Oid         argtypes[22] = {TEXTOID, INT4OID, TEXTOID, TEXTOID, TEXTOID, JSONBOID,
        INT4OID, INT8OID, INT8OID, INT8OID, FLOAT8OID, FLOAT8OID, JSONBOID, FLOAT4ARRAYOID,
    TEXTOID, JSONBOID, JSONBOID, TEXTARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, TEXTOID, TEXTOID};
    Datum       values[22];
    char        nulls[22];

    /* the unique index on deployed versions: the old one goes first */
    if (row->deployed)
        Undeploy(row->model, row->version);

    memset(nulls, ' ', sizeof(nulls));
    values[0] = CStringGetTextDatum(row->model);
    values[1] = Int32GetDatum(row->version);
    values[2] = TextOrNull(row->def->interactions, &nulls[2]);
    values[3] = TextOrNull(row->def->user_features, &nulls[3]);
    values[4] = TextOrNull(row->def->item_features, &nulls[4]);
    values[5] = JsonbPGetDatum(row->options);
    values[6] = Int32GetDatum(row->factors);
    values[7] = Int64GetDatum(row->users);
    values[8] = Int64GetDatum(row->items);
    values[9] = Int64GetDatum(row->interactions);
    values[10] = Float8GetDatum(row->seconds);
    values[11] = Float8GetDatum(row->loss);
    values[12] = JsonText(row->history);
    values[13] = ItFloatArrayDatum(row->user_mean, row->factors);
    values[14] = TextOrNull(row->def->search_path, &nulls[14]);
    values[15] = JsonText(row->deploy_decision);
    values[16] = JsonText(row->metrics);
    values[17] = TextArrayOrNull(row->domains, row->n_domains, &nulls[17]);
    values[18] = TextArrayOrNull(row->contexts, row->n_contexts, &nulls[18]);
    values[20] = TextOrNull(row->def->user_links, &nulls[20]);
    values[21] = CStringGetTextDatum(row->algorithm ? row->algorithm : "als");
    values[19] = (Datum) 0;
    nulls[19] = 'n';
    if (row->n_contexts > 0)
    {
        Datum      *w = palloc(sizeof(Datum) * row->n_contexts);

        for (int i = 0; i < row->n_contexts; i++)
            w[i] = Float8GetDatum(row->context_weights[i]);
        values[19] = PointerGetDatum(construct_array(w, row->n_contexts, FLOAT8OID, sizeof(float8),
                                                     FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
        nulls[19] = ' ';
    }

    Execute(psprintf("INSERT INTO %s (model, version, algorithm, "
                     "interactions_source, user_features_source, item_features_source, "
                     "options, factors, users, items, interactions, seconds, loss, "
                     "history, user_mean, search_path, deploy_decision, metrics, domains, contexts, "
                     "context_weights, user_links_source, deployed, deployed_at) "
                     "VALUES ($1, $2, $22, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                     "$12, $13, $14, $15, $16, $17, $18, $19, $20, $21, %s)",
                     ItTable("it_model"),
                     row->deployed ? "true, pg_catalog.clock_timestamp()" : "false, NULL"),
            22, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
}

void
ItStoreDeploy(const char *model, int version)
{
    Undeploy(model, version);
    ExecuteVersion(psprintf("UPDATE %s SET deployed = true, deployed_at = pg_catalog.clock_timestamp() "
                            "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
                            ItTable("it_model")),
                   model, version, false, 0, SPI_OK_UPDATE);
    if (SPI_processed != 1)
        elog(ERROR, "version %d of model \"%s\" vanished", version, model);
}

int64
ItStoreDropModel(const char *model)
{
    /* every table explicitly, so as not to depend on cascades */
    static const char *const tables[] = {"it_user_factors", "it_item_factors", "it_item_packs",
    "it_prior", "it_model", "it_model_acl"};
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};
    int64       versions = 0;

    for (int i = 0; i < lengthof(tables); i++)
    {
        Execute(psprintf("DELETE FROM %s WHERE model OPERATOR(pg_catalog.=) $1", ItTable(tables[i])),
                1, argtypes, values, NULL, false, 0, SPI_OK_DELETE);
        if (strcmp(tables[i], "it_model") == 0)
            versions = (int64) SPI_processed;
    }
    return versions;
}

void
ItStoreTouchModel(const char *model, int version, bool set_time)
{
    ExecuteVersion(psprintf("UPDATE %s SET refreshed_at = %s "
                            "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
                            ItTable("it_model"), set_time ? "pg_catalog.now()" : "refreshed_at"),
                   model, version, false, 0, SPI_OK_UPDATE);
}

TimestampTz
ItStoreRefreshedSince(const char *model, int version)
{
    TimestampTz t;

    ExecuteVersion(psprintf("SELECT COALESCE(refreshed_at, trained_at) FROM %s "
                            "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
                            ItTable("it_model")),
                   model, version, true, 1, SPI_OK_SELECT);
    if (SPI_processed != 1)
        elog(ERROR, "version %d of model \"%s\" vanished", version, model);
    t = DatumGetTimestampTz(Column(1));
    SPI_freetuptable(SPI_tuptable);
    return t;
}

/* ------------------------------------------------------------------------
 * Owners and grants
 * ------------------------------------------------------------------------ */

bool
ItStoreAclRow(const char *model, bool fresh)
{
    Oid         argtypes[1] = {TEXTOID};
    Datum       values[1] = {CStringGetTextDatum(model)};
    char       *sql = psprintf("SELECT owner, users, trainers FROM %s WHERE model OPERATOR(pg_catalog.=) $1",
                               ItTable("it_model_acl"));

    if (fresh)
        Check(ItExecuteLatest(sql, 1, argtypes, values, 1), SPI_OK_SELECT, "SPI_execute_snapshot");
    else
        Execute(sql, 1, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
    return SPI_processed == 1;
}

/* Rows of it_model_acl that name a role ($1), for a WHERE clause. */
#define NAMES_ROLE "owner OPERATOR(pg_catalog.=) $1 OR $1 OPERATOR(pg_catalog.=) ANY (users) " \
    "OR $1 OPERATOR(pg_catalog.=) ANY (trainers)"

bool
ItStoreRoleHasModels(Oid role)
{
    Oid         argtypes[1] = {REGROLEOID};
    Datum       values[1] = {ObjectIdGetDatum(role)};

    Execute(psprintf("SELECT 1 FROM %s WHERE " NAMES_ROLE " LIMIT 1", ItTable("it_model_acl")),
            1, argtypes, values, NULL, false, 1, SPI_OK_SELECT);
    return SPI_processed > 0;
}

void
ItStorePinRole(const char *rolename, bool pin)
{
    /* GRANT and REVOKE do nothing when there is nothing to do */
    Check(SPI_execute(psprintf("%s SELECT ON %s %s %s", pin ? "GRANT" : "REVOKE",
                               ItTable("it_role_pin"), pin ? "TO" : "FROM", quote_identifier(rolename)),
                      false, 0),
          SPI_OK_UTILITY, "SPI_execute");
}

void
ItStoreChangeGrant(const char *model, bool trainers, Oid role, bool grant)
{
    const char *column = trainers ? "trainers" : "users";
    Oid         argtypes[2] = {TEXTOID, REGROLEOID};
    Datum       values[2] = {CStringGetTextDatum(model), ObjectIdGetDatum(role)};

    if (grant)
        Execute(psprintf("UPDATE %s SET %s = %s OPERATOR(pg_catalog.||) $2 "
                         "WHERE model OPERATOR(pg_catalog.=) $1 AND NOT $2 OPERATOR(pg_catalog.=) ANY (%s)",
                         ItTable("it_model_acl"), column, column, column),
                2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
    else
        Execute(psprintf("UPDATE %s SET %s = pg_catalog.array_remove(%s, $2) "
                         "WHERE model OPERATOR(pg_catalog.=) $1",
                         ItTable("it_model_acl"), column, column),
                2, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
}

List *
ItStoreModelsOfRole(Oid role)
{
    Oid         argtypes[1] = {REGROLEOID};
    Datum       values[1] = {ObjectIdGetDatum(role)};
    List       *models = NIL;

    Execute(psprintf("SELECT model FROM %s WHERE " NAMES_ROLE " ORDER BY model", ItTable("it_model_acl")),
            1, argtypes, values, NULL, false, 0, SPI_OK_SELECT);
    for (uint64 i = 0; i < SPI_processed; i++)
        models = lappend(models, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
    return models;
}

int64
ItStoreReassign(const char *model, Oid old_role, Oid new_role, bool move_grants)
{
    Oid         argtypes[3] = {TEXTOID, REGROLEOID, REGROLEOID};
    Datum       values[3] = {CStringGetTextDatum(model), ObjectIdGetDatum(old_role),
    ObjectIdGetDatum(new_role)};

    Execute(psprintf("UPDATE %s SET "
                     "owner = CASE WHEN owner OPERATOR(pg_catalog.=) $2 THEN $3 ELSE owner END%s "
                     "WHERE model OPERATOR(pg_catalog.=) $1",
                     ItTable("it_model_acl"),
                     move_grants ?
                     ", users = coalesce((SELECT pg_catalog.array_agg(DISTINCT (CASE WHEN u OPERATOR(pg_catalog.=) $2 THEN $3 ELSE u END)::pg_catalog.oid)::pg_catalog.regrole[] "
                     "                    FROM pg_catalog.unnest(users) u), '{}'), "
                     "trainers = coalesce((SELECT pg_catalog.array_agg(DISTINCT (CASE WHEN t OPERATOR(pg_catalog.=) $2 THEN $3 ELSE t END)::pg_catalog.oid)::pg_catalog.regrole[] "
                     "                     FROM pg_catalog.unnest(trainers) t), '{}')" : ""),
            3, argtypes, values, NULL, false, 0, SPI_OK_UPDATE);
    return (int64) SPI_processed;
}

/* ------------------------------------------------------------------------
 * Factor rows
 * ------------------------------------------------------------------------ */

static SPIPlanPtr
FactorPlan(const ItFactorRows *rows)
{
    Oid         argtypes[9] = {TEXTOID, INT4OID, INT8ARRAYOID, FLOAT4ARRAYOID, INT4OID,
    INT8ARRAYOID, INT4ARRAYOID, TEXTOID, INT2ARRAYOID};
    const char *conflict = "";
    char       *sql;
    SPIPlanPtr  plan;

    if (rows->users)
    {
        if (rows->mode == IT_FACTORS_UPSERT)
            conflict = " ON CONFLICT (model, version, user_id, context) DO UPDATE "
                "SET factors = excluded.factors, seen = excluded.seen, "
                "source = excluded.source, updated_at = excluded.updated_at, seen_domain = excluded.seen_domain";
        else if (rows->mode == IT_FACTORS_SKIP_EXISTING)
            conflict = " ON CONFLICT (model, version, user_id, context) DO NOTHING";
        sql = psprintf("INSERT INTO %s (model, version, user_id, factors, seen, source, updated_at, context, seen_domain) "
                       "SELECT $1, $2, $3[i], $4[(i - 1) * $5 + 1 : i * $5], $6[$7[i] + 1 : $7[i + 1]], "
                       "$8, pg_catalog.now(), %s, "
                       "CASE WHEN $9 IS NOT NULL THEN coalesce($9[$7[i] + 1 : $7[i + 1]], '{}') END "
                       "FROM pg_catalog.generate_series(1, pg_catalog.cardinality($3)) AS i%s",
                       ItTable("it_user_factors"), quote_literal_cstr(rows->context ? rows->context : ""), conflict);
    }
    else
    {
        if (rows->mode == IT_FACTORS_UPSERT)
            conflict = " ON CONFLICT (model, version, domain, item_id) DO UPDATE "
                "SET factors = excluded.factors, popularity = excluded.popularity, source = excluded.source";
        else if (rows->mode == IT_FACTORS_SKIP_EXISTING)
            conflict = " ON CONFLICT (model, version, domain, item_id) DO NOTHING";
        sql = psprintf("INSERT INTO %s (model, version, item_id, factors, popularity, source, domain) "
                       "SELECT $1, $2, $3[i], $4[(i - 1) * $5 + 1 : i * $5], $6[i], $8, coalesce($9[i], 0) "
                       "FROM pg_catalog.generate_series(1, pg_catalog.cardinality($3)) AS i%s",
                       ItTable("it_item_factors"), conflict);
    }
    plan = SPI_prepare(sql, lengthof(argtypes), argtypes);
    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
    return plan;
}

static int64
SeenCount(const ItFactorRows *rows, int64 r)
{
    return rows->seen_ptr[r + 1] - rows->seen_ptr[r];
}

/*
 * The direct writer of new factor rows: the tuples built here and inserted
 * as COPY FROM does (table_multi_insert in batches with a BulkInsertState,
 * then each row's index entries through ExecInsertIndexTuples, its NOT NULL
 * and CHECK constraints through ExecConstraints), WAL-logged like any
 * insert.  It saves the executor's per-row work and the page-at-a-time
 * heap inserts of INSERT ... SELECT, most of the time of writing a model.
 * Only where it does exactly what the INSERT would: a plain table with the
 * install script's columns (every one given here), the current user
 * allowed to insert, no triggers (foreign keys, deferred unique checks),
 * rules, row security or generated columns; else false, and the caller
 * takes the SQL path, which also reports whatever is refused.
 */
static const char *const UserColumns[] = {"model", "version", "user_id", "factors", "seen",
"source", "updated_at", "context", "seen_domain"};
static const Oid UserColumnTypes[] = {TEXTOID, INT4OID, INT8OID, FLOAT4ARRAYOID, INT8ARRAYOID,
TEXTOID, TIMESTAMPTZOID, TEXTOID, INT2ARRAYOID};
static const char *const ItemColumns[] = {"model", "version", "item_id", "factors", "popularity",
"source", "domain"};
static const Oid ItemColumnTypes[] = {TEXTOID, INT4OID, INT8OID, FLOAT4ARRAYOID, INT8OID,
TEXTOID, INT2OID};

#define IT_FACTOR_COLUMNS 9

/* Whether the current role may insert into relid without row security (then rows may go in directly). */
static bool
DirectInsertable(Oid relid)
{
    return OidIsValid(relid) &&
        pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
        check_enable_rls(relid, InvalidOid, true) != RLS_ENABLED;
}

/* Whether rel is a plain table of exactly the columns names[0..n) of types; attnos: where each is. */
static bool
DirectWritable(Relation rel, const char *const *names, const Oid *types, int n, AttrNumber *attnos)
{
    TupleDesc   desc = RelationGetDescr(rel);
    int         live = 0;

    if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
        rel->trigdesc != NULL || rel->rd_rules != NULL ||
        (desc->constr && desc->constr->has_generated_stored))
        return false;
    for (int c = 0; c < n; c++)
        attnos[c] = InvalidAttrNumber;
    for (int a = 0; a < desc->natts; a++)
    {
        Form_pg_attribute att = TupleDescAttr(desc, a);
        int         c;

        if (att->attisdropped)
            continue;
        live++;
        for (c = 0; c < n; c++)
            if (strcmp(NameStr(att->attname), names[c]) == 0)
                break;
        if (c == n || att->atttypid != types[c])
            return false;
        attnos[c] = att->attnum;
    }
    return live == n;
}

/* The values of factor row r into slot (its datums in the current context); returns their bytes. */
static Size
FillFactorRow(TupleTableSlot *slot, const AttrNumber *attnos, const Datum *fixed,
              const ItFactorRows *rows, int64 r, int64 *buf, int16 *dbuf)
{
    Datum      *values = slot->tts_values;
    bool       *isnull = slot->tts_isnull;
    Size        bytes = sizeof(float) * rows->k;

#define SET(c, v) do { values[attnos[c] - 1] = (v); isnull[attnos[c] - 1] = false; } while (0)
    memset(isnull, true, sizeof(bool) * slot->tts_tupleDescriptor->natts);
    SET(0, fixed[0]);           /* model */
    SET(1, fixed[1]);           /* version */
    SET(2, Int64GetDatum(rows->ids[r]));
    SET(3, ItFlatArray(rows->factors + r * rows->k, rows->k, FLOAT4OID, sizeof(float)));
    SET(5, fixed[5]);           /* source */
    if (rows->users)
    {
        int64       j = 0;

        for (int64 p = rows->seen_ptr[r]; p < rows->seen_ptr[r + 1]; p++)
        {
            if (dbuf)
                dbuf[j] = rows->domains[rows->seen_index[p]];
            buf[j++] = rows->seen_index ? rows->seen_ids[rows->seen_index[p]] : rows->seen_ids[p];
        }
        SET(4, ItFlatArray(buf, j, INT8OID, sizeof(int64)));
        SET(6, fixed[6]);       /* updated_at */
        SET(7, fixed[7]);       /* context */
        if (dbuf)
            SET(8, ItFlatArray(dbuf, j, INT2OID, sizeof(int16)));
        bytes += j * (sizeof(int64) + (dbuf ? sizeof(int16) : 0));
    }
    else
    {
        SET(4, Int64GetDatum(rows->popularity ? rows->popularity[r] : 0));
        SET(6, Int16GetDatum(rows->domains ? rows->domains[r] : 0));
    }
#undef SET
    ExecStoreVirtualTuple(slot);
    return bytes;
}

static bool
WriteFactorsDirect(const char *model, int version, const ItFactorRows *rows, int64 maxseen)
{
    const char *relname = rows->users ? "it_user_factors" : "it_item_factors";
    int         ncols = rows->users ? lengthof(UserColumns) : lengthof(ItemColumns);
    Oid         relid = get_relname_relid(relname, get_namespace_oid(ItSchemaName(), false));
    AttrNumber  attnos[IT_FACTOR_COLUMNS];
    Datum       fixed[IT_FACTOR_COLUMNS] = {0};
    Relation    rel;
    RangeTblEntry *rte;
    EState     *estate;
    ResultRelInfo *rri;
    BulkInsertState bistate;
    TupleTableSlot *slots[IT_DIRECT_ROWS];
    MemoryContext batchcxt;
    MemoryContext old;
    CommandId   cid;
    int64      *buf = NULL;
    int16      *dbuf = NULL;
    int         nslots = 0;
    int         nbatch = 0;
    Size        bytes = 0;

    if (!DirectInsertable(relid))
        return false;
    rel = table_open(relid, RowExclusiveLock);
    if (!DirectWritable(rel, rows->users ? UserColumns : ItemColumns,
                        rows->users ? UserColumnTypes : ItemColumnTypes, ncols, attnos))
    {
        table_close(rel, NoLock);
        return false;
    }

    /* an executor state for the constraints and the indexes, as COPY FROM makes */
    estate = CreateExecutorState();
    rte = makeNode(RangeTblEntry);
    rte->rtekind = RTE_RELATION;
    rte->relid = relid;
    rte->relkind = rel->rd_rel->relkind;
    rte->rellockmode = RowExclusiveLock;
    rte->requiredPerms = ACL_INSERT;
    for (int c = 0; c < ncols; c++)
        rte->insertedCols = bms_add_member(rte->insertedCols, attnos[c] - FirstLowInvalidHeapAttributeNumber);
    ExecInitRangeTable(estate, list_make1(rte));
    rri = makeNode(ResultRelInfo);
    ExecInitResultRelation(estate, rri, 1);
    ExecOpenIndices(rri, false);
    cid = GetCurrentCommandId(true);
    estate->es_output_cid = cid;
    bistate = GetBulkInsertState();

    fixed[0] = CStringGetTextDatum(model);
    fixed[1] = Int32GetDatum(version);
    fixed[5] = CStringGetTextDatum(rows->source);
    if (rows->users)
    {
        fixed[6] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());  /* now() */
        fixed[7] = CStringGetTextDatum(rows->context ? rows->context : "");
        buf = palloc(sizeof(int64) * Max(maxseen, 1));
        if (rows->domains)
            dbuf = palloc(sizeof(int16) * Max(maxseen, 1));
    }
    batchcxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer factor rows",
                                     ALLOCSET_DEFAULT_SIZES);

    for (int64 r = 0; r < rows->n; r++)
    {
        TupleTableSlot *slot;

        if (nbatch == nslots)
            slots[nslots++] = table_slot_create(rel, NULL);
        slot = slots[nbatch++];
        old = MemoryContextSwitchTo(batchcxt);
        bytes += FillFactorRow(slot, attnos, fixed, rows, r, buf, dbuf);
        if (rel->rd_att->constr)
            ExecConstraints(rri, slot, estate);
        MemoryContextSwitchTo(old);

        if (nbatch == IT_DIRECT_ROWS || bytes >= IT_DIRECT_BYTES || r == rows->n - 1)
        {
            CHECK_FOR_INTERRUPTS();
            old = MemoryContextSwitchTo(batchcxt);
            table_multi_insert(rel, slots, nbatch, cid, 0, bistate);
            for (int i = 0; i < nbatch; i++)
            {
                List       *recheck = NIL;

                if (rri->ri_NumIndices > 0)
                    recheck = ExecInsertIndexTuples(rri, slots[i], estate, false, false, NULL, NIL);
                /* deferred checks come with a trigger, which DirectWritable refuses */
                if (recheck != NIL)
                    elog(ERROR, "unexpected deferred index check on %s", relname);
                ExecClearTuple(slots[i]);
            }
            MemoryContextSwitchTo(old);
            MemoryContextReset(batchcxt);
            ResetPerTupleExprContext(estate);
            nbatch = 0;
            bytes = 0;
        }
    }

    for (int i = 0; i < nslots; i++)
        ExecDropSingleTupleTableSlot(slots[i]);
    FreeBulkInsertState(bistate);
    table_finish_bulk_insert(rel, 0);
    ExecCloseResultRelations(estate);
    ExecCloseRangeTableRelations(estate);
    FreeExecutorState(estate);
    table_close(rel, NoLock);
    MemoryContextDelete(batchcxt);
    if (buf)
        pfree(buf);
    if (dbuf)
        pfree(dbuf);
    /* the statements after this one see the rows */
    CommandCounterIncrement();
    return true;
}

bool
ItStoreFactorsRunNoUserCode(void)
{
    for (int side = 0; side < 2; side++)
    {
        bool        users = side == 0;
        Oid         relid = get_relname_relid(users ? "it_user_factors" : "it_item_factors",
                                              get_namespace_oid(ItSchemaName(), false));
        AttrNumber  attnos[IT_FACTOR_COLUMNS];
        Relation    rel;
        bool        plain;

        if (!DirectInsertable(relid))
            return false;
        rel = table_open(relid, AccessShareLock);
        plain = DirectWritable(rel, users ? UserColumns : ItemColumns, users ? UserColumnTypes : ItemColumnTypes,
                               users ? lengthof(UserColumns) : lengthof(ItemColumns), attnos) &&
            (rel->rd_att->constr == NULL || rel->rd_att->constr->num_check == 0);
        if (plain)
        {
            List       *indexes = RelationGetIndexList(rel);
            ListCell   *lc;

            foreach(lc, indexes)
            {
                Relation    ind = index_open(lfirst_oid(lc), AccessShareLock);

                if (RelationGetIndexExpressions(ind) != NIL || RelationGetIndexPredicate(ind) != NIL)
                    plain = false;
                index_close(ind, AccessShareLock);
            }
            list_free(indexes);
        }
        table_close(rel, AccessShareLock);
        if (!plain)
            return false;
    }
    return true;
}

int64
ItStoreWriteFactors(const char *model, int version, const ItFactorRows *rows)
{
    Datum       values[9];
    char        nulls[9];
    SPIPlanPtr  plan;
    int64      *buf;
    int16      *dbuf = NULL;
    int32      *offsets;
    int64       bufcap;
    int64       maxrows = Min(IT_WRITE_ROWS, Max(1, IT_WRITE_VALUES / rows->k));
    int64       written = 0;
    int64       begin = 0;

    if (rows->n == 0)
        return 0;
    if (rows->users && rows->domains && rows->seen_index == NULL)
        elog(ERROR, "seen domains need seen indexes");
    if (rows->mode == IT_FACTORS_INSERT)
    {
        int64       maxseen = 0;

        if (rows->users)
            for (int64 r = 0; r < rows->n; r++)
                maxseen = Max(maxseen, SeenCount(rows, r));
        if ((Size) maxseen > MaxAllocSize / sizeof(int64))
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("a user of model \"%s\" has " INT64_FORMAT " items, too many to store",
                            model, maxseen),
                     errhint("Keep fewer interactions per user in the source, for instance the most recent ones.")));
        if (WriteFactorsDirect(model, version, rows, maxseen))
            return rows->n;
    }
    plan = FactorPlan(rows);
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[4] = Int32GetDatum(rows->k);
    values[7] = CStringGetTextDatum(rows->source);
    values[6] = PointerGetDatum(construct_empty_array(INT4OID));
    offsets = palloc(sizeof(int32) * (maxrows + 1));
    bufcap = rows->users ? 1024 : maxrows;
    buf = palloc(sizeof(int64) * bufcap);
    if (rows->domains)
        dbuf = palloc(sizeof(int16) * bufcap);
    memset(nulls, ' ', sizeof(nulls));
    if (rows->domains == NULL)
    {
        nulls[8] = 'n';
        values[8] = (Datum) 0;
    }

    while (begin < rows->n)
    {
        int64       end = begin;
        int64       nvalues = 0;

        CHECK_FOR_INTERRUPTS();
        /* the batch: bounded in rows, factor values and seen ids (at least one row) */
        while (end < rows->n && end - begin < maxrows)
        {
            int64       len = rows->users ? SeenCount(rows, end) : 0;

            if (end > begin && nvalues + len > IT_WRITE_VALUES)
                break;
            nvalues += len;
            end++;
        }
        if (nvalues > bufcap)
        {
            pfree(buf);
            bufcap = nvalues;
            if ((Size) bufcap > MaxAllocSize / sizeof(int64))
                ereport(ERROR,
                        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                         errmsg("a user of model \"%s\" has " INT64_FORMAT " items, too many to store",
                                model, nvalues)));
            buf = palloc(sizeof(int64) * bufcap);
            if (dbuf)
            {
                pfree(dbuf);
                dbuf = palloc(sizeof(int16) * bufcap);
            }
        }

        if (rows->users)
        {
            int64       j = 0;

            for (int64 r = begin; r < end; r++)
            {
                offsets[r - begin] = (int32) j;
                for (int64 p = rows->seen_ptr[r]; p < rows->seen_ptr[r + 1]; p++)
                {
                    if (dbuf)
                        dbuf[j] = rows->domains[rows->seen_index[p]];
                    buf[j++] = rows->seen_index ? rows->seen_ids[rows->seen_index[p]] : rows->seen_ids[p];
                }
            }
            offsets[end - begin] = (int32) j;
            values[5] = ItFlatArray(buf, j, INT8OID, sizeof(int64));
            values[6] = ItFlatArray(offsets, end - begin + 1, INT4OID, sizeof(int32));
            if (dbuf)
                values[8] = ItFlatArray(dbuf, j, INT2OID, sizeof(int16));
        }
        else
        {
            for (int64 r = begin; r < end; r++)
                buf[r - begin] = rows->popularity ? rows->popularity[r] : 0;
            values[5] = ItFlatArray(buf, end - begin, INT8OID, sizeof(int64));
            if (dbuf)
                values[8] = ItFlatArray(rows->domains + begin, end - begin, INT2OID, sizeof(int16));
        }
        values[2] = ItFlatArray(rows->ids + begin, end - begin, INT8OID, sizeof(int64));
        values[3] = ItFlatArray(rows->factors + begin * rows->k, (end - begin) * rows->k,
                                FLOAT4OID, sizeof(float));

        Check(SPI_execute_plan(plan, values, nulls, false, 0), SPI_OK_INSERT, "SPI_execute_plan");
        if (rows->mode != IT_FACTORS_SKIP_EXISTING && SPI_processed != (uint64) (end - begin))
            elog(ERROR, "expected " INT64_FORMAT " factor rows written, not " UINT64_FORMAT,
                 end - begin, SPI_processed);
        written += (int64) SPI_processed;

        pfree(DatumGetPointer(values[2]));
        pfree(DatumGetPointer(values[3]));
        pfree(DatumGetPointer(values[5]));
        if (rows->users)
            pfree(DatumGetPointer(values[6]));
        if (dbuf)
            pfree(DatumGetPointer(values[8]));
        begin = end;
    }
    SPI_freeplan(plan);
    pfree(buf);
    pfree(offsets);
    return written;
}

/* ------------------------------------------------------------------------
 * Item packs
 * ------------------------------------------------------------------------ */

/* The pack being filled: up to cap items of one domain. */
typedef struct PackBuffer
{
    SPIPlanPtr  plan;
    Datum       values[9];
    int         k;
    int64       cap;
    int64       n;
    int         domain;
    int32       chunk;
    int64      *ids;
    int64      *popularity;
    float      *factors;
    float      *norms;
} PackBuffer;

static void
FlushPack(PackBuffer *p)
{
    if (p->n == 0)
        return;
    it_row_norms(p->factors, p->n, p->k, p->norms);
    p->values[2] = Int32GetDatum(p->chunk);
    p->values[3] = Int16GetDatum((int16) p->domain);
    p->values[4] = Int32GetDatum((int32) p->n);
    p->values[5] = ItFlatArray(p->ids, p->n, INT8OID, sizeof(int64));
    p->values[6] = ItFlatArray(p->popularity, p->n, INT8OID, sizeof(int64));
    p->values[7] = ItFlatArray(p->factors, p->n * p->k, FLOAT4OID, sizeof(float));
    p->values[8] = ItFlatArray(p->norms, p->n, FLOAT4OID, sizeof(float));
    Check(SPI_execute_plan(p->plan, p->values, NULL, false, 0), SPI_OK_INSERT, "SPI_execute_plan");
    for (int i = 5; i <= 8; i++)
        pfree(DatumGetPointer(p->values[i]));
    if (p->chunk == PG_INT32_MAX)
        elog(ERROR, "too many item packs");
    p->chunk++;
    p->n = 0;
}

static void
StartPacks(PackBuffer *p, const char *model, int version, int k)
{
    Oid         argtypes[9] = {TEXTOID, INT4OID, INT4OID, INT2OID, INT4OID, INT8ARRAYOID, INT8ARRAYOID,
    FLOAT4ARRAYOID, FLOAT4ARRAYOID};

    if (k < 1 || k > IT_MAX_FACTORS)
        elog(ERROR, "cannot pack items of %d factors", k);
    memset(p, 0, sizeof(*p));
    p->k = k;
    p->cap = Max(1, IT_PACK_VALUES / k);
    p->ids = palloc(sizeof(int64) * p->cap);
    p->popularity = palloc(sizeof(int64) * p->cap);
    p->factors = palloc(sizeof(float) * k * p->cap);
    p->norms = palloc(sizeof(float) * p->cap);
    p->values[0] = CStringGetTextDatum(model);
    p->values[1] = Int32GetDatum(version);
    p->plan = SPI_prepare(psprintf("INSERT INTO %s (model, version, chunk, domain, items, item_ids, "
                                   "popularity, factors, norms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                                   ItTable("it_item_packs")),
                          lengthof(argtypes), argtypes);
    if (p->plan == NULL)
        elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
}

/* Adds an item; items come in (domain, id) order. */
static void
PackItem(PackBuffer *p, int domain, int64 id, const float *factors, int64 popularity)
{
    if (p->n == p->cap || (p->n > 0 && domain != p->domain))
        FlushPack(p);
    p->domain = domain;
    p->ids[p->n] = id;
    if (factors != NULL)
        memcpy(p->factors + p->n * p->k, factors, sizeof(float) * p->k);
    p->popularity[p->n] = popularity;
    p->n++;
}

int64
ItStoreWriteItemPacks(const char *model, int version, int k, bool replace)
{
    Oid         cursor_types[2] = {TEXTOID, INT4OID};
    PackBuffer  p;
    Portal      portal;
    MemoryContext cxt;
    MemoryContext oldcxt;
    int64       total = 0;

    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer item packs", ALLOCSET_DEFAULT_SIZES);
    oldcxt = MemoryContextSwitchTo(cxt);
    StartPacks(&p, model, version, k);
    if (replace)
    {
        Datum       values[2] = {p.values[0], p.values[1]};

        /* as committed now: writers of a model queue on its lock (ItBeginWrite) */
        Check(ItExecuteLatest(psprintf("DELETE FROM %s WHERE model OPERATOR(pg_catalog.=) $1 "
                                       "AND version OPERATOR(pg_catalog.=) $2",
                                       ItTable("it_item_packs")),
                              2, cursor_types, values, 0),
              SPI_OK_DELETE, "SPI_execute_snapshot");
    }

    /* the rows as committed now and as this transaction wrote them */
    CommandCounterIncrement();
    PushActiveSnapshot(GetLatestSnapshot());
    portal = SPI_cursor_open_with_args(NULL, ItemCursorSql(), 2, cursor_types, p.values, NULL, true,
                                       CURSOR_OPT_NO_SCROLL);
    PopActiveSnapshot();
    for (;;)
    {
        SPITupleTable *tt;
        uint64      nrows;

        CHECK_FOR_INTERRUPTS();
        SPI_cursor_fetch(portal, true, 1000);
        tt = SPI_tuptable;
        nrows = SPI_processed;
        if (nrows == 0)
            break;
        for (uint64 r = 0; r < nrows; r++)
        {
            HeapTuple   tup = tt->vals[r];
            bool        isnull;

            PackItem(&p, DatumGetInt16(SPI_getbinval(tup, tt->tupdesc, 4, &isnull)),
                     DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull)), NULL,
                     DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 3, &isnull)));
            ItArrayToFloats(SPI_getbinval(tup, tt->tupdesc, 2, &isnull), p.factors + (p.n - 1) * k, k,
                            "item factors");
            total++;
        }
        SPI_freetuptable(tt);
    }
    FlushPack(&p);
    SPI_cursor_close(portal);
    SPI_freeplan(p.plan);
    MemoryContextSwitchTo(oldcxt);
    MemoryContextDelete(cxt);
    return total;
}

int64
ItStoreWriteItemPacksFrom(const char *model, int version, int k, const ItItemSet *sets, int nsets)
{
    PackBuffer  p;
    MemoryContext cxt;
    MemoryContext oldcxt;
    int64       next[2] = {0, 0};
    int64       total = 0;
    int         last_domain = -1;
    int64       last_id = 0;

    if (nsets < 1 || nsets > lengthof(next))
        elog(ERROR, "cannot pack %d item sets", nsets);
    /* a set out of order: read the rows back instead */
    for (int j = 0; j < nsets; j++)
        for (int64 i = 1; i < sets[j].n; i++)
        {
            int         d0 = sets[j].domains ? sets[j].domains[i - 1] : 0;
            int         d1 = sets[j].domains ? sets[j].domains[i] : 0;

            if (d1 < d0 || (d1 == d0 && sets[j].ids[i] <= sets[j].ids[i - 1]))
                return ItStoreWriteItemPacks(model, version, k, false);
        }
    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer item packs", ALLOCSET_DEFAULT_SIZES);
    oldcxt = MemoryContextSwitchTo(cxt);
    StartPacks(&p, model, version, k);
    /* a merge of the sets, each in (domain, id) order */
    for (;;)
    {
        int         best = -1;
        int         best_domain = 0;
        int64       best_id = 0;
        const ItItemSet *s;
        int64       i;

        for (int j = 0; j < nsets; j++)
        {
            int         dom;
            int64       id;

            if (next[j] >= sets[j].n)
                continue;
            dom = sets[j].domains ? sets[j].domains[next[j]] : 0;
            id = sets[j].ids[next[j]];
            if (best < 0 || dom < best_domain || (dom == best_domain && id < best_id))
            {
                best = j;
                best_domain = dom;
                best_id = id;
            }
        }
        if (best < 0)
            break;
        if (best_domain < last_domain || (best_domain == last_domain && best_id <= last_id))
            elog(ERROR, "items to pack are not in (domain, id) order");
        s = &sets[best];
        i = next[best]++;
        if ((total & 1023) == 0)
            CHECK_FOR_INTERRUPTS();
        PackItem(&p, best_domain, best_id, s->factors + i * k, s->popularity ? s->popularity[i] : 0);
        last_domain = best_domain;
        last_id = best_id;
        total++;
    }
    FlushPack(&p);
    SPI_freeplan(p.plan);
    MemoryContextSwitchTo(oldcxt);
    MemoryContextDelete(cxt);
    return total;
}

/* ------------------------------------------------------------------------
 * Priors
 * ------------------------------------------------------------------------ */

static const char *const PriorKindNames[] = {"population", "user_features", "item_features", "source_models", "social"};

const char *
ItPriorKindName(ItPriorKind kind)
{
    if ((int) kind < 0 || (int) kind >= lengthof(PriorKindNames))
        elog(ERROR, "unknown prior kind %d", (int) kind);
    return PriorKindNames[kind];
}

void
ItStorePrior(const char *model, int version, const ItPriorRow *row)
{
    Oid         argtypes[12] = {TEXTOID, INT4OID, TEXTOID, BOOLOID, FLOAT8OID, FLOAT8OID,
    FLOAT4OID, JSONBOID, INT4OID, FLOAT4ARRAYOID, JSONBOID, JSONBOID};
    Datum       values[12];
    char        nulls[12];

    memset(nulls, ' ', sizeof(nulls));
    if (row->nparams < 0 || row->nparams > (int64) (MaxAllocSize / sizeof(float)) - 64)
        elog(ERROR, "prior has too many parameters (" INT64_FORMAT ")", row->nparams);
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(ItPriorKindName(row->kind));
    values[3] = BoolGetDatum(row->in_use);
    values[4] = Float8GetDatum(row->fold_in_weight);
    nulls[4] = row->fold_in_weight > 0.0 ? ' ' : 'n';
    values[5] = Float8GetDatum(row->prior_variance);
    nulls[5] = row->prior_variance > 0.0 ? ' ' : 'n';
    values[6] = Float4GetDatum(row->popularity_blend);
    values[7] = JsonbOrNull(row->spec, &nulls[7]);
    values[8] = Int32GetDatum(row->dims);
    nulls[8] = row->spec ? ' ' : 'n';
    if (row->params != NULL)
        values[9] = ItFlatArray(row->params, row->nparams, FLOAT4OID, sizeof(float));
    else
    {
        values[9] = (Datum) 0;
        nulls[9] = 'n';
    }
    values[10] = JsonbOrNull(row->layout, &nulls[10]);
    values[11] = row->metrics ? JsonbPGetDatum(row->metrics) : JsonText(NULL);

    Execute(psprintf("INSERT INTO %s (model, version, kind, in_use, fold_in_weight, prior_variance, "
                     "popularity_blend, spec, dims, params, layout, metrics) "
                     "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                     ItTable("it_prior")),
            12, argtypes, values, nulls, false, 0, SPI_OK_INSERT);
}

static void
PriorCorrupt(const char *model, int version, ItPriorKind kind, const char *detail)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored %s prior of model \"%s\" version %d is invalid",
                    ItPriorKindName(kind), model, version),
             errdetail("%s", detail),
             errhint("Train a new version with train('%s').", model)));
}

bool
ItLoadPrior(const char *model, int version, ItPriorKind kind, MemoryContext mcxt, ItPriorRow *out)
{
    Oid         argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
    Datum       values[3];
    MemoryContext old;

    memset(out, 0, sizeof(*out));
    out->kind = kind;
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(ItPriorKindName(kind));
    Execute(psprintf("SELECT in_use, fold_in_weight, prior_variance, popularity_blend, "
                     "spec, dims, params, layout, metrics FROM %s "
                     "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                     "AND kind OPERATOR(pg_catalog.=) $3",
                     ItTable("it_prior")),
            3, argtypes, values, NULL, true, 1, SPI_OK_SELECT);
    if (SPI_processed == 0)
        return false;

    out->in_use = DatumGetBool(Column(1));
    if (!ColumnIsNull(2))
        out->fold_in_weight = DatumGetFloat8(Column(2));
    if (!ColumnIsNull(3))
        out->prior_variance = DatumGetFloat8(Column(3));
    out->popularity_blend = DatumGetFloat4(Column(4));
    /* the table's checks keep these in range; a restored or edited row may not */
    if (!(out->fold_in_weight >= 0.0 && out->fold_in_weight <= FLT_MAX))
        PriorCorrupt(model, version, kind, "Its fold_in_weight is not a finite number > 0.");
    if (!(out->prior_variance >= 0.0 && out->prior_variance <= FLT_MAX))
        PriorCorrupt(model, version, kind, "Its prior_variance is not a finite number >= 0.");
    if (!(out->popularity_blend >= 0.0f && out->popularity_blend <= FLT_MAX))
        PriorCorrupt(model, version, kind, "Its popularity_blend is not a finite number >= 0.");

    old = MemoryContextSwitchTo(mcxt);
    if (!ColumnIsNull(5))
        out->spec = DatumGetJsonbPCopy(Column(5));
    if (!ColumnIsNull(6))
        out->dims = DatumGetInt32(Column(6));
    if (!ColumnIsNull(7))
    {
        ArrayType  *arr = DatumGetArrayTypeP(Column(7));
        int         n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

        out->nparams = n;
        out->params = palloc(sizeof(float) * Max(n, 1));
        ItArrayToFloats(PointerGetDatum(arr), out->params, n, "stored feature model");
    }
    if (!ColumnIsNull(8))
        out->layout = DatumGetJsonbPCopy(Column(8));
    out->metrics = DatumGetJsonbPCopy(Column(9));
    MemoryContextSwitchTo(old);
    /* the popularity blend of the fold-in ranking around it (transfer.c) */
    if (!JB_ROOT_IS_OBJECT(out->metrics))
        PriorCorrupt(model, version, kind, "Its metrics are not a jsonb object.");
    {
        JsonbValue  buf;
        JsonbValue *v = getKeyJsonValueFromContainer(&out->metrics->root, "fold_in_popularity_blend",
                                                     strlen("fold_in_popularity_blend"), &buf);

        if (v != NULL)
        {
            double      b = v->type == jbvNumeric ?
                DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric))) : NAN;

            if (!(b >= 0.0 && b <= FLT_MAX))
                PriorCorrupt(model, version, kind, "Its metrics fold_in_popularity_blend is not a finite number >= 0.");
            out->fold_in_blend = (float) b;
        }
    }
    SPI_freetuptable(SPI_tuptable);
    return true;
}

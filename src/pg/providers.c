/*
 * providers.c
 *    What the providers of interest share while serving a model version:
 *    its serving state (ItTransfer, created here and filled by
 *    interest.c), reading one id's rows of the model's stored sources
 *    through saved plans, with the rights of the model's owner and an
 *    error context that names the source, and fold-in.
 *
 * The sources are read like a view: with the rights of the model's owner,
 * whoever asks; when a stored source can no longer be read, the error
 * says so (never a silent fallback to popularity).  The plans are
 * prepared once per model version.
 */
#include "postgres.h"

#include "catalog/pg_proc.h"
#include "optimizer/clauses.h"
#include "utils/plancache.h"

#include <float.h>
#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "providers.h"
#include "spi_read.h"
#include "store.h"

/*
 * Saved plans belong to the model version they were prepared for.  When a
 * model is freed (possibly while a transaction aborts) its plans are only
 * queued here, and freed when the next serving state is created.
 */
typedef struct ItOrphanPlan
{
    struct ItOrphanPlan *next;
    SPIPlanPtr  plan;
} ItOrphanPlan;

static ItOrphanPlan *ItOrphans = NULL;

static void
FreeOrphanPlans(void)
{
    while (ItOrphans != NULL)
    {
        ItOrphanPlan *o = ItOrphans;

        ItOrphans = o->next;
        if (o->plan)
            SPI_freeplan(o->plan);
        pfree(o);
    }
}

static void
OrphanPlan(ItIdPlan *p)
{
    if (p->plan == NULL)
        return;
    p->orphan->plan = p->plan;
    p->orphan->next = ItOrphans;
    ItOrphans = p->orphan;
    p->plan = NULL;
    p->orphan = NULL;
}

/* Reset callback of a transfer state's context: queue its plans. */
static void
ReleaseTransferPlans(void *arg)
{
    ItTransfer *t = (ItTransfer *) arg;

    OrphanPlan(&t->interactions);
    OrphanPlan(&t->user_features);
}

ItTransfer *
ItNewTransfer(ItModel *m)
{
    MemoryContext cxt;
    ItTransfer *t;
    MemoryContextCallback *cb;

    FreeOrphanPlans();
    /* built under the caller's (SPI) context: an error frees it */
    cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer transfer",
                                ALLOCSET_SMALL_SIZES);
    t = MemoryContextAllocZero(cxt, sizeof(ItTransfer));
    t->cxt = cxt;
    t->scratch = MemoryContextAlloc(cxt, sizeof(float) * ((Size) m->k * m->k + m->k));

    cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
    cb->func = ReleaseTransferPlans;
    cb->arg = t;
    MemoryContextRegisterResetCallback(cxt, cb);
    return t;
}

/* ------------------------------------------------------------------------
 * Error context of reading a stored source while serving
 * ------------------------------------------------------------------------ */

/* Errors that are not about the source (cancel, out of memory, ...). */
static bool
IsSourceProblem(int code)
{
    int         cat = ERRCODE_TO_CATEGORY(code);

    return !(cat == ERRCODE_TO_CATEGORY(ERRCODE_SUCCESSFUL_COMPLETION) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_WARNING) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_NO_DATA) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_INSUFFICIENT_RESOURCES) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_OPERATOR_INTERVENTION) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_SYSTEM_ERROR) ||
             cat == ERRCODE_TO_CATEGORY(ERRCODE_INTERNAL_ERROR));
}

static void
ServeErrorCallback(void *arg)
{
    ItServeContext *sc = (ItServeContext *) arg;

    if (sc->has_id)
        errcontext("while reading %s of %s " INT64_FORMAT " for model \"%s\"",
                   sc->what, strcmp(sc->what, "item_features") == 0 ? "item" : "user",
                   sc->id, sc->model);
    else
        errcontext("while reading %s for model \"%s\"", sc->what, sc->model);
    if (sc->running && IsSourceProblem(geterrcode()))
        errhint("Model \"%s\" serves users and items it was not trained on from their rows in its "
                "stored %s source, read with the privileges of the model's owner: make that source "
                "readable again, or train a new version with sources that work.",
                sc->model, sc->what);
}

void
ItServeContextPush(ItServeContext *sc, ItModel *m, const char *what,
                   bool has_id, int64 id)
{
    /* a stored source runs as a view would: with its owner's rights */
    ItRunAsModelOwner(&sc->runas, m->name, m->owner, m->search_path);
    sc->model = m->name;
    sc->what = what;
    sc->has_id = has_id;
    sc->id = id;
    sc->running = false;
    sc->cb.callback = ServeErrorCallback;
    sc->cb.arg = sc;
    sc->cb.previous = error_context_stack;
    error_context_stack = &sc->cb;
}

void
ItServeContextPop(ItServeContext *sc)
{
    error_context_stack = sc->cb.previous;
    ItRunAsEnd(&sc->runas);
}

/* ------------------------------------------------------------------------
 * Reading one user's rows of a stored source
 * ------------------------------------------------------------------------ */

/*
 * The saved plan of "SELECT * FROM (<source>) s WHERE s.<idcol> = $1"
 * (pg_catalog's =, $1 bigint), prepared on first use.
 */
static SPIPlanPtr
IdPlan(ItIdPlan *p, const char *source, const char *what, const char *idcol)
{
    Oid         argtypes[1] = {INT8OID};
    char       *sql;
    SPIPlanPtr  plan;

    if (p->plan != NULL)
        return p->plan;
    sql = ItSourceSql(source, what,
                      psprintf("s.%s OPERATOR(pg_catalog.=) $1", quote_identifier(idcol)));
    plan = SPI_prepare(sql, 1, argtypes);
    if (plan == NULL)
        elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql, SPI_result_code_string(SPI_result));
    /* the subquery wrapping makes a second statement a syntax error; be sure */
    if (list_length(SPI_plan_get_plan_sources(plan)) != 1)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s must be a single query", what)));
    p->orphan = MemoryContextAllocZero(TopMemoryContext, sizeof(ItOrphanPlan));
    if (SPI_keepplan(plan) != 0)
        elog(ERROR, "SPI_keepplan failed");
    p->plan = plan;
    return plan;
}

/*
 * In a parallel query (LATERAL recommend() over many users), a stored
 * source that is not parallel safe (a view calling nextval(), a volatile
 * function) cannot run: say which source and what to do, instead of the
 * error the function inside it would raise.
 */
static void
RefuseParallelUnsafe(SPIPlanPtr plan, ItServeContext *sc)
{
    ListCell   *lc;

    foreach(lc, SPI_plan_get_plan_sources(plan))
    {
        CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);
        ListCell   *lq;

        foreach(lq, ps->query_list)
        {
            if (max_parallel_hazard(lfirst_node(Query, lq)) == PROPARALLEL_UNSAFE)
            {
                sc->running = false;
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_TRANSACTION_STATE),
                         errmsg("the stored %s source of model \"%s\" is not parallel safe, "
                                "so this parallel query cannot fold in users from it",
                                sc->what, sc->model),
                         errhint("Make the source parallel safe (no nextval(), no functions marked PARALLEL UNSAFE), "
                                 "or run this query without parallel workers: SET max_parallel_workers_per_gather = 0.")));
            }
        }
    }
}

void
ItRunIdPlan(ItServeContext *sc, ItIdPlan *p, const char *source, const char *idcol,
            int64 id, long count)
{
    Datum       values[1] = {Int64GetDatum(id)};
    SPIPlanPtr  plan;
    int         ret;

    sc->running = true;
    plan = IdPlan(p, source, sc->what, idcol);
    ItRefuseTempRelations(plan, sc->what, sc->model);
    if (IsInParallelMode())
        RefuseParallelUnsafe(plan, sc);
    ret = SPI_execute_plan(plan, values, NULL, true, count);
    if (ret != SPI_OK_SELECT)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s does not return rows", sc->what)));
    sc->running = false;
}

void
ItFoldIn(ItModel *m, ItTransfer *t, const int32 *items, const float *weights,
         int n, const float *prior, float lambda0, float *x)
{
    int         rc;

    rc = it_fold_in(m->Y, m->k, m->YtY, items, weights, n, t->alpha,
                    (float) m->opts.positive_threshold, lambda0, prior, x, t->scratch);
    if (rc != 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_CORRUPTED),
                 errmsg("fold-in with model \"%s\" version %d failed (status %d)",
                        m->name, m->version, rc),
                 errhint("The stored factors do not give a solvable system; train a new version with train('%s').",
                         m->name)));
}


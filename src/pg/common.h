/*
 * common.h
 *    What every SQL-facing file shares (common.c): limits, the settings, the
 *    extension's schema and tables' owner, writing a model, arrays.
 */
#ifndef IT_COMMON_H
#define IT_COMMON_H

#include "postgres.h"

#include "fmgr.h"
#include "portability/instr_time.h"
#include "utils/array.h"

#include "access.h"
#include "kernels.h"

/* Limits checked before allocating. */
#define IT_MAX_FACTORS      1024
/* The longest domain name (a domain column, option domain_weights), in bytes. */
#define IT_DOMAIN_MAX_LEN   63
#define IT_MAX_K            100000      /* recommend / similar_items / evaluate */
#define IT_MAX_ITERATIONS   1000
#define IT_MAX_CG_STEPS     64
#define IT_MAX_THREADS      64
#define IT_MAX_ROWS         ((int64) INT32_MAX - 1)  /* users or items per model */

/* GUCs (common.c) */
extern int  it_threads;         /* interest_transfer.threads: 0 = every core */
extern char *it_default_model;  /* interest_transfer.default_model: "" = none */

/* Worker threads to use for a given request (0 = the GUC's choice). */
extern int  ItThreads(int requested);
/* Threads one call scans n items at bits (8 or 4) with (interest_transfer.scan_threads). */
extern int  ItScanThreads(int64 n, int bits);

/* The bits of the copy a scan of n items reads first (interest_transfer.scan_bits): 4 or 8. */
extern int  ItScanBits(int64 n);

/*
 * The schema the extension lives in, taken from the namespace of the SQL
 * function being called, and schema-qualified, quoted names of its tables
 * ("public.it_model").  Call ItSetSchema(fcinfo) first in every SQL-callable
 * function; the result is allocated in the current memory context.
 */
extern void ItSetSchema(FunctionCallInfo fcinfo);
extern const char *ItTable(const char *relname);
/* The unquoted name of that schema. */
extern const char *ItSchemaName(void);
/* The role that owns the extension's tables. */
extern Oid  ItTablesOwner(void);

/*
 * Runs a statement on the extension's tables (inside SPI_connect) in the
 * latest snapshot, whatever the isolation level: what a writer decides
 * after queuing on a model's lock (privileges, the deployed version) must
 * see what the writers before it committed, as PostgreSQL's own privilege
 * checks see a REVOKE at once.  Returns the SPI result code.
 */
extern int  ItExecuteLatest(const char *sql, int nargs, Oid *argtypes, Datum *values, long count);

/* ERRORs with NULL_VALUE_NOT_ALLOWED: "<name> must not be NULL", and the hint. */
extern void ItNullArgument(const char *name, const char *hint) pg_attribute_noreturn();

/*
 * Writing the model tables.  ItBeginWrite refuses on a standby or in a
 * read-only transaction, checks that the calling role holds privilege need
 * on the model (any role may create a model that does not exist yet,
 * unless must_exist), queues behind other writers of the model
 * (ItLockModel) and switches to the owner of the tables until ItEndWrite.
 * Reading the user's own data must happen before or after, never in
 * between.  action names the refused operation in messages ("train").
 * Returns the role that owns the model (the caller for a new model).
 */
typedef struct ItWriteState
{
    ItRunAs     runas;
} ItWriteState;

extern Oid  ItBeginWrite(const char *model, bool must_exist, ItPrivilege need,
                         const char *action, ItWriteState *st);
extern void ItEndWrite(ItWriteState *st);

/* Seconds since start (INSTR_TIME_SET_CURRENT). */
extern double ItElapsedSeconds(instr_time start);

/* n elements of size bytes in the current context, may exceed 1 GB; ERROR (program_limit_exceeded) when too many. */
extern void *ItAllocArray(int64 n, Size size);
extern void *ItAllocFactorArray(int64 n, Size size);

/*
 * The memory budget of training (interest_transfer.train_memory): from
 * ItMemoryBudgetBegin until ctx is deleted (normally, or by an error's
 * cleanup), ItChargeMemory refuses an allocation that would take what ctx
 * and its children hold above the budget, with an ERROR
 * (program_limit_exceeded) saying how much is in use and a hint.
 * ItAllocArray charges every allocation; others call ItChargeMemory before
 * allocating.
 */
extern int  it_train_memory_kb;
extern void ItMemoryBudgetBegin(const char *model, MemoryContext ctx);
extern void ItChargeMemory(double bytes, const char *what);

/* An item index and its score, to sort: best first, ties by the lower index (ItCompareScoredItems, for qsort). */
typedef struct ItScoredItem
{
    int32       idx;
    float       score;
} ItScoredItem;

extern int ItCompareScoredItems(const void *a, const void *b);

/*
 * The elements of a bigint[] argument named what ("items", "users"), in the
 * current context; ERRORs on a NULL element or more than one dimension.
 */
extern int64 *ItIdArray(ArrayType *arr, const char *what, int *n);

/* Formats a float8[] / real[] datum from a C array (in the current context). */
extern Datum ItFloatArrayDatum(const float *v, int n);
/* A one-dimensional array datum (int4, int8, real) of n elements copied from data. */
extern Datum ItFlatArray(const void *data, int64 n, Oid elemtype, int elemsize);
/* Copies a real[] datum into v[n]; ERRORs when its length is not n or it has NULLs, NaN or infinity. */
extern void ItArrayToFloats(Datum arr, float *v, int n, const char *what);

#endif                          /* IT_COMMON_H */

/*
 * interest_transfer.h
 *    Declarations shared by the SQL-facing files (PostgreSQL side).
 *
 * The numeric work lives in kernels.h; these files read and write tables
 * through SPI, check arguments and call the kernels.
 */
#ifndef INTEREST_TRANSFER_H
#define INTEREST_TRANSFER_H

#include "postgres.h"
#include "fmgr.h"
#include "portability/instr_time.h"
#include "utils/array.h"
#include "storage/itemptr.h"
#include "utils/timestamp.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/jsonb.h"

#include "kernels.h"
#include "access.h"
#include "options.h"

/* Limits checked before allocating. */
#define IT_MAX_FACTORS      1024
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

/*
 * Reading a user's source (spi_read.c): a table or view name (optionally
 * schema-qualified and quoted) or a query (SELECT, WITH, VALUES, TABLE or
 * a parenthesis first).  Run through SPI, read-only, with the caller's
 * privileges, through a cursor; must be called inside SPI_connect and never
 * between ItBeginWrite and ItEndWrite.
 *
 *   ItSource src;
 *   ItSourceOpen(&src, text, "interactions", model, NULL, 0, NULL, NULL);
 *   uc = ItSourceColumn(&src, "user_id", IT_COLUMN_ID, true);
 *   while ((n = ItSourceFetch(&src, 10000)) > 0)
 *       for (i = 0; i < n; i++) ... src.batch->vals[i] ...
 *   ItSourceClose(&src);
 *
 * Between Open and Close an error context names the source and the model
 * ("while reading interactions for model "shop"").  where, when not NULL,
 * is a condition on the source's columns (alias s) with parameters $1...
 * of argtypes, e.g. "s.user_id OPERATOR(pg_catalog.=) $1".
 */
typedef enum ItColumnKind
{
    IT_COLUMN_ID,               /* int2, int4, int8; numeric holding an integer */
    IT_COLUMN_WEIGHT,           /* int2, int4, int8, float4, float8, numeric */
    IT_COLUMN_TIME              /* timestamp, timestamptz, date */
} ItColumnKind;

typedef struct ItSource ItSource;

/* Streaming (ItSourceStream): called once with src->tupdesc set (resolve
 * the columns there), then once per row with src->rows = the row's number
 * (from 1), in a memory context reset every few thousand rows. */
typedef void (*ItSourceStartup) (ItSource *src, void *arg);
typedef void (*ItSourceRow) (ItSource *src, TupleTableSlot *slot, void *arg);

struct ItSource
{
    const char *text;           /* the source as given */
    const char *what;           /* "interactions", "user_features", ... */
    const char *model;          /* for messages; may be NULL */
    char       *sql;            /* the query that is run */
    SPIPlanPtr  plan;
    Portal      portal;
    TupleDesc   tupdesc;        /* columns of the source */
    SPITupleTable *batch;       /* rows of the last fetch */
    int64       rows;           /* rows fetched so far */
    ErrorContextCallback errcb;
};

extern bool ItSourceIsQuery(const char *source);
extern char *ItSourceSql(const char *source, const char *what, const char *where);
extern void ItSourceOpen(ItSource *src, const char *source, const char *what,
                         const char *model, const char *where,
                         int nargs, Oid *argtypes, Datum *values);
extern uint64 ItSourceFetch(ItSource *src, long count);
extern void ItSourceClose(ItSource *src);

/*
 * Runs the source once, read-only, handing every row to row() as the
 * executor produces it: no tuple is copied or kept, which makes it several
 * times faster than fetching batches for large sources.  The executor
 * checks for interrupts.  src needs no Open or Close.
 */
extern void ItSourceStream(ItSource *src, const char *source, const char *what,
                           const char *model, const char *where,
                           int nargs, Oid *argtypes, Datum *values,
                           ItSourceStartup startup, ItSourceRow row, void *arg);
/* 0-based column index, or -1 when absent and not required; ERRORs with
 * the columns found / the accepted types otherwise. */
extern int  ItSourceColumn(ItSource *src, const char *name, ItColumnKind kind, bool required);
/* Value of a non-NULL column of kind IT_COLUMN_ID / IT_COLUMN_WEIGHT;
 * type is the column's base type (ItSourceColumnType). */
extern Oid  ItSourceColumnType(ItSource *src, int col);
extern int64 ItDatumGetId(ItSource *src, int col, Oid type, Datum d, int64 row);
extern double ItDatumGetWeight(Datum d, Oid type);
/*
 * Inside a security-restricted operation (a model's stored source read as
 * its owner): ERRORs when the statement of plan would read a temporary
 * table or view.  Those belong to the session being served, whose role
 * would then choose what runs with the owner's rights.
 */
extern void ItRefuseTempRelations(SPIPlanPtr plan, const char *what, const char *model);
/* Whether a non-NULL IT_COLUMN_TIME value is later than t (timestamp and date in the session's time zone). */
extern bool ItTimeDatumAfter(Datum d, Oid type, TimestampTz t);
/* An id column's value as int64; false for a numeric that is not a whole bigint. */
extern bool ItIdDatumToInt64(Datum d, Oid type, int64 *out);

/* ------------------------------------------------------------------------
 * Model cache (cache.c)
 *
 * The deployed version of each model, loaded once into backend memory and
 * reloaded only when the deployed row changes.  A version is identified by
 * (version, trained_at) and by the physical identity of its it_model row
 * (xmin, ctid), so a model dropped and trained again with the same version
 * number inside one transaction is still seen as new.
 * ------------------------------------------------------------------------ */

/* Where a user's interest vector comes from (recommend's "source" column). */
typedef enum ItInterestSource
{
    IT_SOURCE_MODEL,            /* trained with the model */
    IT_SOURCE_FOLD_IN,          /* folded in from own interactions, with a prior */
    IT_SOURCE_FEATURES,         /* prior from features alone */
    IT_SOURCE_POPULAR           /* nothing known: rank by popularity, no vector */
} ItInterestSource;

extern const char *ItInterestSourceName(ItInterestSource source);
/* Parses a stored source name; ERRORs on an unknown one. */
extern ItInterestSource ItInterestSourceFromName(const char *name);

typedef struct ItModel
{
    MemoryContext cxt;          /* owns the struct and everything below */
    uint64      generation;     /* unique per load in this backend */
    int         pins;           /* callers holding it (see ItGetModel) */
    bool        detached;       /* replaced in the cache; freed when unpinned */

    /* the deployed it_model row this was loaded from */
    char       *name;
    int         version;
    TimestampTz trained_at;
    TransactionId row_xmin;
    ItemPointerData row_tid;

    /* definition, as stored with the version */
    char       *algorithm;
    char       *interactions_source;
    char       *user_features_source;   /* NULL when none */
    char       *item_features_source;   /* NULL when none */
    char       *search_path;    /* the stored sources are read with (NULL: before 0.2) */
    Oid         owner;          /* the model's owner: stored sources run as this role */
    Jsonb      *options;        /* every option, defaults filled in */
    ItOptions   opts;           /* the same, typed */
    int64       n_users;

    /* item side, rows aligned with item_ids */
    int         k;              /* factors */
    int64       n_items;
    int64      *item_ids;       /* sorted ascending, unique */
    float      *Y;              /* n_items * k, row-major */
    int64      *popularity;     /* users who interacted with each item */
    int64       max_popularity;
    float      *pop_score;      /* popularity / max_popularity (0 when 0) */
    int32      *pop_order;      /* item indexes: popularity desc, item_id asc */
    float      *item_norms;     /* |Y_i| (cosine similarity) */
    float      *YtY;            /* k * k, Y^T Y (fold-in) */
    float      *user_mean;      /* k, mean warm-user vector (population prior) */
    float      *scores;         /* n_items scratch for one ranking; only
                                 * between calls that cannot re-enter */

    /*
     * State of the interest providers that need more than the factor
     * tables (feature encoders, mapping weights): loaded on first use into
     * cxt by the code that owns it; NULL until then.
     */
    void       *transfer;
} ItModel;

/*
 * The deployed version of a model, loaded or reloaded as needed.  NULL:
 * the model interest_transfer.default_model names, else the only deployed
 * model the current user may use.  The current user must hold the use
 * privilege on it.  ERRORs with a hint when the model does not exist, has
 * no deployed version, is not usable, or the choice is ambiguous.  Needs no SPI
 * connection.  The model stays valid at least until CurrentMemoryContext is
 * reset or deleted (it is pinned to it), even if another call replaces it
 * in the cache meanwhile.
 */
extern ItModel *ItGetModel(const char *model);

/*
 * The same, for a SQL function called many times in one query: the check
 * of the deployed version is done once per snapshot and call site, using
 * fcinfo->flinfo->fn_extra (an ItCallCache).  A caller needing its own
 * per-call-site state keeps it in ItCallCache.extra (allocate it in
 * fcinfo->flinfo->fn_mcxt) and uses the epoch to know when to drop it.
 * Snapshots with more in-progress xids than IT_SNAPSHOT_MAX_XIDS are
 * checked on every call.
 */
#define IT_SNAPSHOT_MAX_XIDS 64

typedef struct ItCallCache
{
    uint64      epoch;          /* bumped whenever the model was re-checked */
    void       *extra;          /* for the caller */
    /* private to cache.c */
    bool        valid;
    char       *requested;      /* model argument of the last check */
    char       *name;           /* the model it resolved to */
    uint64      generation;
    Oid         userid;         /* whose use privilege was checked */
    /* what the active snapshot saw at the last check (see cache.c) */
    LocalTransactionId lxid;
    SubTransactionId subxid;
    TransactionId snap_xmin;
    TransactionId snap_xmax;
    CommandId   snap_curcid;
    uint32      snap_xcnt;
    int32       snap_subxcnt;
    bool        snap_suboverflowed;
    bool        snap_recovery;
    TransactionId snap_xids[IT_SNAPSHOT_MAX_XIDS];
} ItCallCache;

extern ItModel *ItGetModelForCall(FunctionCallInfo fcinfo, const char *model);
extern ItCallCache *ItGetCallCache(FunctionCallInfo fcinfo);

/* Index of an item in m (binary search), or -1 when the model lacks it. */
extern int64 ItItemIndex(const ItModel *m, int64 item_id);

/*
 * Reads a user's stored row of m's version: x_out[m->k] gets the vector,
 * *seen_out the indexes of the items the user interacted with (sorted
 * ascending, items missing from the model left out; palloc'd in the
 * current context, NULL when none), *source_out (may be NULL) the stored
 * source.  Returns false, touching nothing, when the user has no row.
 * Needs no SPI connection.
 */
extern bool ItGetUserVector(ItModel *m, int64 user_id, float *x_out,
                            int32 **seen_out, int *nseen,
                            ItInterestSource *source_out);

/*
 * The interest of a user and the score it gives an item: interest.h;
 * serving users and items the model was not trained on: providers.h,
 * provider.h; reading interactions: interactions.h.
 */

#endif                          /* INTEREST_TRANSFER_H */

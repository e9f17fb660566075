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
/* Copies a real[] datum into v[n]; ERRORs when its length is not n or it has NULLs, NaN or infinity. */
extern void ItArrayToFloats(Datum arr, float *v, int n, const char *what);

/*
 * Options of train() (options.c).  ItOptions there is the table of every
 * option (name, kind, range, default); add a row to add an option.
 * ItResolveOptions checks a user's jsonb object against it (ERROR naming
 * the option and what it accepts, or listing the valid names) and returns
 * the object to store: every option, defaults filled in.  given may be NULL.
 * The accessors read a stored object back; they return defval when the key
 * is absent (a version stored before the option existed) or null.
 */
typedef enum ItOptionKind
{
    IT_OPTION_INT,              /* JSON number, integral, in [min, max] */
    IT_OPTION_FLOAT,            /* JSON number in [min, max] (max may be HUGE_VAL) */
    IT_OPTION_BOOL,             /* JSON true / false */
    IT_OPTION_TEXT              /* JSON string, one of choices when set */
} ItOptionKind;

typedef struct ItOptionDef
{
    const char *name;
    ItOptionKind kind;
    double      min;
    double      max;
    double      defval;         /* INT, FLOAT; BOOL: 0 or 1 */
    const char *deftext;        /* TEXT default (NULL: JSON null) */
    const char *choices;        /* TEXT: "a, b, c", or NULL for any string */
    const char *description;    /* noun phrase, for hints */
} ItOptionDef;

extern const ItOptionDef *ItOptionTable(int *n);
extern Jsonb *ItResolveOptions(Jsonb *given);
extern int64 ItOptionInt(Jsonb *options, const char *key, int64 defval);
extern double ItOptionFloat(Jsonb *options, const char *key, double defval);
extern bool ItOptionBool(Jsonb *options, const char *key, bool defval);
extern char *ItOptionText(Jsonb *options, const char *key, const char *defval);

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

/* ------------------------------------------------------------------------
 * Feature encoding (features.c)
 *
 * Turns the rows of a user or item features source (an id column plus any
 * feature columns) into dense float vectors: numbers and dates
 * standardised, text / boolean / enum values one-hot over the frequent
 * values plus an "other" slot, real[] / float8[] columns copied as they
 * are, and a missing-indicator slot for every column that had NULLs when
 * fitted.  Columns are laid out by name, so the order of a query's
 * columns does not matter.  See features.c for the spec's JSON format.
 *
 * Fitting, with any reader that yields batches of tuples:
 *
 *   ItEncoderOptionsFrom(stored_options, &opts);      (or NULL below)
 *   b = ItEncoderBegin(src.tupdesc, "user_id", "user_features", &opts);
 *   while ((n = ItSourceFetch(&src, 10000)) > 0)
 *       ItEncoderAddRows(b, src.batch, n);
 *   enc = ItEncoderFinish(b);      enc->X: enc->n rows of enc->dims floats
 *   ItEncoderStore(model, version, "user", enc->spec, enc->dims, ...);
 *
 * ItEncoderBegin ERRORs on a missing id column (UNDEFINED_COLUMN), an id
 * that is not smallint/integer/bigint/numeric or a feature column of an
 * unsupported type (DATATYPE_MISMATCH), no feature column at all
 * (INVALID_PARAMETER_VALUE), two columns of one name (AMBIGUOUS_COLUMN);
 * ItEncoderAddRows on a NULL id (NULL_VALUE_NOT_ALLOWED), NaN or infinite
 * values (DATA_EXCEPTION), vectors of another length than the first one
 * (ARRAY_SUBSCRIPT_ERROR); ItEncoderFinish on no rows (DATA_EXCEPTION)
 * and duplicate ids (UNIQUE_VIOLATION).
 * The builder keeps its rows in its own memory context, a child of the
 * context current at ItEncoderBegin, deleted by ItEncoderFinish (or with
 * its parent on error).  ItEncoderFinish allocates its result in the
 * context current when it is called (X may exceed 1 GB: huge allocation).
 * ------------------------------------------------------------------------ */
#define IT_MAX_FEATURE_DIMS                     65536   /* encoded floats per row */
#define IT_ENCODER_MAX_CATEGORIES               10000
#define IT_ENCODER_DEFAULT_MAX_CATEGORIES       32
#define IT_ENCODER_DEFAULT_MIN_CATEGORY_COUNT   2

typedef struct ItEncoderOptions
{
    int         max_categories;     /* values of a category column with their own slot */
    int         min_category_count; /* rows a value needs to get a slot */
} ItEncoderOptions;

typedef struct ItEncoderBuilder ItEncoderBuilder;  /* opaque */
typedef struct ItEncoder ItEncoder;                /* opaque, parsed spec */

typedef struct ItEncoded
{
    Jsonb      *spec;           /* everything needed to encode later */
    int         dims;           /* floats per row */
    int64       n;              /* rows */
    int64      *ids;            /* n ids, ascending, unique */
    float      *X;              /* n * dims, row r encodes ids[r] */
} ItEncoded;

/* Defaults: max_categories 32, min_category_count 2. */
extern void ItEncoderDefaultOptions(ItEncoderOptions *o);
/* From train options (keys "max_categories", "min_category_count"; absent
 * keys take the defaults); ERRORs on out-of-range values. */
extern void ItEncoderOptionsFrom(Jsonb *options, ItEncoderOptions *o);

/* what names the source in messages ("user_features"); opts NULL = defaults */
extern ItEncoderBuilder *ItEncoderBegin(TupleDesc desc, const char *id_column,
                                        const char *what, const ItEncoderOptions *opts);
/* One fetched batch: tuptable->vals[0 .. n), rows of the desc given to Begin. */
extern void ItEncoderAddRows(ItEncoderBuilder *b, SPITupleTable *tuptable, uint64 n);
extern void ItEncoderAddTuple(ItEncoderBuilder *b, HeapTuple tup, TupleDesc desc);
extern ItEncoded *ItEncoderFinish(ItEncoderBuilder *b);

/*
 * Applying a fitted encoder.  ItEncoderFromSpec parses (and checks) a spec
 * once, allocating the encoder in mcxt, so it can be cached with a model;
 * it ERRORs with DATA_CORRUPTED on an invalid spec.
 *
 * ItEncodeTuple encodes a row of any query: feature columns are found by
 * name (extra columns are ignored); a column missing from desc is an
 * UNDEFINED_COLUMN error, one of a type of another kind a DATATYPE_MISMATCH
 * (both with a hint to restore the source or retrain).  A NULL, a category
 * value not among the frequent ones, encode as at fitting.
 *
 * ItEncodeJsonb encodes a jsonb object keyed by column name: numbers for
 * numeric columns, strings for text, enum, date and timestamp columns,
 * true/false for boolean ones, arrays of numbers for vector columns, null
 * or a missing key for a missing value; the id column's key is ignored.
 * An unknown key is an INVALID_PARAMETER_VALUE error listing the known
 * features, a wrong JSON type a DATATYPE_MISMATCH, a vector of another
 * length an ARRAY_SUBSCRIPT_ERROR.
 *
 * Both write ItEncoderDims(e) floats to out; temporary allocations (of
 * detoasted values) go to CurrentMemoryContext.
 */
extern ItEncoder *ItEncoderFromSpec(Jsonb *spec, MemoryContext mcxt);
extern int  ItEncoderDims(const ItEncoder *e);
extern const char *ItEncoderIdColumn(const ItEncoder *e);
extern void ItEncodeTuple(const ItEncoder *e, HeapTuple tup, TupleDesc desc, float *out);
extern void ItEncodeJsonb(const ItEncoder *e, Jsonb *obj, float *out);

/*
 * Storage with a model version: one it_encoder row per (model, version,
 * side), side "user" or "item".  ItEncoderStore inserts the row (inside
 * SPI_connect, between ItBeginWrite and ItEndWrite); params (nparams
 * floats, stored as real[]), layout and metrics may be NULL (metrics is
 * then '{}').  ItEncoderLoad reads it (inside SPI_connect, read-only in
 * the current snapshot, so not a row stored by the same statement) into
 * mcxt and returns false when the version has no encoder for that side.
 */
typedef struct ItStoredEncoder
{
    ItEncoder  *encoder;
    int         dims;
    float      *params;         /* NULL when none stored */
    int64       nparams;
    Jsonb      *layout;         /* NULL when none stored */
    Jsonb      *metrics;
} ItStoredEncoder;

extern void ItEncoderStore(const char *model, int version, const char *side,
                           Jsonb *spec, int dims, const float *params, int64 nparams,
                           Jsonb *layout, Jsonb *metrics);
extern bool ItEncoderLoad(const char *model, int version, const char *side,
                          MemoryContext mcxt, ItStoredEncoder *out);

#endif                          /* INTEREST_TRANSFER_H */

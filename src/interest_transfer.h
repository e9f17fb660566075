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

#include "kernels.h"

/* Limits checked before allocating. */
#define IT_MAX_FACTORS      1024
#define IT_MAX_K            100000      /* recommend / similar_items / evaluate */
#define IT_MAX_ITERATIONS   1000
#define IT_MAX_CG_STEPS     64
#define IT_MAX_THREADS      64
#define IT_MAX_ROWS         ((int64) INT32_MAX - 1)  /* users or items per model */

/* GUCs (common.c) */
extern int  it_threads;         /* interest_transfer.threads: 0 = every core */

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

/*
 * Resolves a model name (NULL = the most recently deployed model of any
 * name) to its deployed version.  ERRORs with a hint when the model does
 * not exist or has no deployed version.  Must be called inside SPI_connect.
 * *name_out is palloc'd in the current context.
 */
extern void ItResolveDeployed(const char *model, char **name_out, int *version_out);

/*
 * Writing the model tables.  They are writable by the extension owner only;
 * ItBeginWrite checks that the calling role may change this model (it owns
 * it, or the model does not exist yet) and switches to the owner of the
 * tables until ItEndWrite.  Reading the user's own data must happen before
 * or after, never in between, so it runs with the caller's privileges.
 * Returns the role that owns the model (the caller for a new model).
 */
typedef struct ItWriteState
{
    Oid         saved_userid;
    int         saved_sec_context;
} ItWriteState;

extern Oid  ItBeginWrite(const char *model, bool must_exist, ItWriteState *st);
extern void ItEndWrite(ItWriteState *st);

/* Formats a float8[] / real[] datum from a C array (in the current context). */
extern Datum ItFloatArrayDatum(const float *v, int n);
/* Copies a real[] datum into v[n]; ERRORs when its length is not n or it has NULLs. */
extern void ItArrayToFloats(Datum arr, float *v, int n, const char *what);

#endif                          /* INTEREST_TRANSFER_H */

/*
 * spi_read.h
 *    Reading a user's table, view or query (spi_read.c).
 */
#ifndef IT_SPI_READ_H
#define IT_SPI_READ_H

#include "postgres.h"

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "utils/timestamp.h"

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
    IT_COLUMN_TIME,             /* timestamp, timestamptz, date */
    IT_COLUMN_TEXT,             /* text, varchar */
    IT_COLUMN_VECTOR            /* real[], float8[] */
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
/* A non-NULL IT_COLUMN_TIME value as a timestamptz (timestamp and date in the session's time zone). */
extern TimestampTz ItTimeDatumValue(Datum d, Oid type);
/* An id column's value as int64; false for a numeric that is not a whole bigint. */
extern bool ItIdDatumToInt64(Datum d, Oid type, int64 *out);

#endif                          /* IT_SPI_READ_H */

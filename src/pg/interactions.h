/*
 * interactions.h
 *    The one reader of an interactions source (user_id, item_id, optional
 *    weight and ts): finding and typing its columns, the checks of every
 *    row (NULL ids; NULL, NaN, infinite, negative weights), leaving out
 *    rows of weight 0, summing duplicates and mapping ids to dense
 *    indexes.  Training streams the whole source into a matrix; refresh
 *    streams a stored source row by row; serving and refresh read the
 *    rows of one user.
 */
#ifndef IT_INTERACTIONS_H
#define IT_INTERACTIONS_H

#include "common.h"
#include "spi_read.h"
#include "cache.h"
#include "providers.h"

/* Column positions of an interactions source (0-based; weight, ts -1 when absent). */
typedef struct ItInteractionColumns
{
    int         user;
    int         item;
    int         weight;
    int         ts;
    int         domain;         /* -1 when absent */
    int         context;        /* -1 when absent */
    Oid         user_type;
    Oid         item_type;
    Oid         weight_type;
    Oid         ts_type;
} ItInteractionColumns;

/* Finds the columns by name, as training does; ERRORs as ItSourceColumn. */
extern void ItFindInteractionColumns(ItSource *src, ItInteractionColumns *c);

/*
 * How a bad row is named in messages (the tests and the users' scripts
 * know these wordings).
 */
typedef enum ItRowNaming
{
    IT_ROWS_TRAIN,              /* training: by row number ("weight in row 3
                                 * of interactions is NaN"); a row of weight 0
                                 * is left out before its ids are read */
    IT_ROWS_SCAN,               /* a stored source read whole while serving
                                 * (refresh): NULL ids by row number, weights
                                 * by user and item ("weight of user 22 for
                                 * item 1 in interactions is negative") */
    IT_ROWS_USER                /* one user's rows: by user and item ("item_id
                                 * is NULL in a row of user 21 in interactions") */
} ItRowNaming;

/* One row of positive weight. */
typedef struct ItInteraction
{
    int64       row;            /* from 1 */
    int64       user_id;
    int64       item_id;        /* 0 when read with ids_only */
    double      weight;         /* > 0 and finite (1 without a weight column) */
    Datum       ts;             /* with_ts and a ts column: its value */
    bool        ts_null;        /* true when there is none */
    const char *domain;         /* a domain column: its value (never NULL), else NULL */
    const char *context;        /* a context column: its value, else NULL (also for NULL) */
} ItInteraction;

/* What a stream reads of each row. */
typedef struct ItInteractionRead
{
    ItRowNaming naming;
    bool        ids_only;       /* only user_id (and ts): items and weights unread */
    bool        with_ts;        /* also the ts column, when the source has one */
} ItInteractionRead;

typedef void (*ItInteractionFn) (const ItInteractionColumns *cols, const ItInteraction *row,
                                 void *arg);

/*
 * Streams the source (ItSourceStream: read-only, with the privileges
 * current, checking for interrupts) and calls fn for every row of
 * positive weight (with ids_only, for every row), in a memory context
 * reset every few thousand rows.  Returns the number of rows the source
 * returned.  The caller sets up any error context or role for a stored
 * source.
 */
extern int64 ItStreamInteractions(const char *source, const char *model,
                                  const ItInteractionRead *how, ItInteractionFn fn, void *arg);

/*
 * The columns of a model's stored interactions source (run with WHERE
 * false, as its owner: ItServeContextPush), inside SPI_connect.
 */
extern void ItStoredInteractionColumns(ItModel *m, ItInteractionColumns *cols);

/* The interactions as a matrix, for training. */
typedef struct ItInteractionMatrix
{
    int64       nusers;
    int64       nitems;
    int64      *user_ids;       /* dense index -> user id, ascending */
    int64      *item_ids;       /* dense index -> item id, ascending within a domain */
    int         n_domains;      /* a domain column: its distinct values, else 0 */
    char      **domains;        /* n_domains names, sorted (strcmp) */
    int64      *domain_start;   /* n_domains + 1: items of domain d are [domain_start[d], domain_start[d + 1]) */
    int16      *item_domain;    /* with domains: the domain of each item, else NULL */
    int         n_contexts;     /* contexts (a context column, or derived from ts), else 0 */
    char      **contexts;       /* n_contexts names, sorted (strcmp) */
    ItCsr       C;              /* with contexts: (user * n_contexts + context) x items,
                                 * summed weights of the rows in that context */
    ItCsr       R;              /* users x items, summed weights */
    ItCsr       Rt;             /* items x users */
    double     *times;          /* with a ts column: each entry of R's earliest time
                                 * (seconds, +inf when NULL); else NULL */
    int64       rows_read;      /* rows the source returned */
    double      read_seconds;   /* time spent running the source */
} ItInteractionMatrix;

/* Contexts derived from ts (option context): none, weekday/weekend, parts of the day. */
typedef enum ItContextRule
{
    IT_CONTEXT_NONE,
    IT_CONTEXT_WEEKPART,
    IT_CONTEXT_DAYPART
} ItContextRule;

/* The longest context name, in bytes; contexts at most. */
#define IT_CONTEXT_MAX_LEN 63
#define IT_MAX_CONTEXTS 64

/*
 * The context rule derives (rule, in time zone tz) of a time: "weekday",
 * "weekend"; "night", "morning", "afternoon", "evening".
 */
extern const char *ItDeriveContext(ItContextRule rule, struct pg_tz *tz, TimestampTz t);

/*
 * The same of a ts value of type type (timestamptz in tz; timestamp and
 * date as the wall-clock times they are); NULL for an infinite one.
 */
extern const char *ItDeriveContextDatum(ItContextRule rule, struct pg_tz *tz, Datum d, Oid type);

/*
 * Reads a training source (IT_ROWS_TRAIN) into *out, in the current
 * memory context (huge allocations): ids mapped to dense indexes in
 * ascending (domain, id) order (items of different domains are different
 * items), duplicates summed in input order (in float, as
 * it_csr_from_coo does), rows of weight 0 left out.  ERRORs when no row
 * is left, and when a summed weight overflows a real.  Contexts: a
 * context column's values (a NULL is no context), else what rule derives
 * from ts in tz (a NULL ts is no context); d->C holds each user's rows by
 * context.
 */
extern void ItReadInteractionMatrix(const char *source, const char *model,
                                    ItContextRule rule, struct pg_tz *tz,
                                    ItInteractionMatrix *out);

/*
 * Dense indexes of ids[0..n) (n >= 1): returns the number m of distinct
 * ids, sets *sorted_out to them in ascending order and idx[j] to the
 * position of ids[j] among them, so the mapping does not depend on the
 * order of the rows.  what ("users", "items") names them in the error
 * when there are more than a model holds.
 */
extern int64 ItMapIds(const int64 *ids, int64 n, int64 **sorted_out, int32 *idx,
                      const char *what);

/* One user's rows of an interactions source. */
typedef struct ItUserRows
{
    int         n;              /* distinct items known to the model */
    int32      *items;          /* their indexes, ascending */
    float      *weights;        /* summed weights (> 0) */
    int         nall;           /* distinct items of positive weight, known or not */
    int64      *all_ids;        /* their ids, ascending */
} ItUserRows;

/*
 * Reads a user's rows of the model's stored interactions source through
 * its saved plan (IT_ROWS_USER; inside SPI_connect, as the model's
 * owner) into *out, allocated in mcxt.  An error from the source itself
 * carries a hint naming the model's stored source.
 */
extern void ItReadUserRows(ItModel *m, ItTransfer *t, int64 user_id,
                           MemoryContext mcxt, ItUserRows *out);

/* The same, of the user's rows in context (NULL: every row). */
extern void ItReadUserRowsIn(ItModel *m, ItTransfer *t, int64 user_id, const char *context,
                             MemoryContext mcxt, ItUserRows *out);

/*
 * The rows of one user given as (item id, weight) pairs, with the domain
 * index of each (NULL: domain 0; -1: a domain the model does not have):
 * drops weights that are not > 0, sums duplicates (in double), maps ids
 * to model indexes.  ids and weights are not changed.  Result in mcxt.
 */
extern void ItCollectUserRows(ItModel *m, const int64 *ids, const int *domains,
                              const double *weights, int n,
                              MemoryContext mcxt, ItUserRows *out);

/* A domain name's index in m, -1 when the model does not have it. */
extern int  ItFindDomain(const ItModel *m, const char *domain);

#endif                          /* IT_INTERACTIONS_H */

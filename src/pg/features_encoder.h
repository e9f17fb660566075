/*
 * features_encoder.h
 *    Feature encoding: what the rest of the extension calls to fit, store
 *    and apply the encoder of a user or item features source.
 *
 * An encoder is fitted on the rows of a source (ItEncoderBegin /
 * ItEncoderAddRows / ItEncoderFinish), which returns the encoded rows and a
 * jsonb "spec" holding everything needed to encode a row later without the
 * fitting data.  The spec is stored with the model version (it_prior);
 * ItEncoderFromSpec parses it back into an ItEncoder that encodes a tuple
 * of any query returning the same columns (matched by name) or a jsonb
 * object keyed by column name.
 *
 * Encoding by column type (every column except the id):
 *   numeric   smallint, integer, bigint, real, double precision, numeric:
 *             (x - mean) / std, both taken over the non-NULL fitting rows
 *             (std 0 is stored as 1).
 *   date      date, timestamp, timestamptz: days since 1970-01-01, then as
 *             numeric.
 *   category  text, varchar, char, boolean, enums: one slot per frequent
 *             value (seen at least min_category_count times, at most
 *             max_categories of them, most frequent first), then an "other"
 *             slot for rare and unseen values.
 *   vector    real[], double precision[]: one-dimensional, every non-NULL
 *             value of the same length (that of the first one); taken as
 *             they are, without scaling.
 * A column that had NULLs when the encoder was fitted gets one more slot,
 * the missing indicator: 1 for a NULL (the value slots stay 0).  A NULL met
 * later in a column without that slot encodes as all zeros: the mean of a
 * numeric or date column, no slot for a category, a zero vector.
 *
 * Columns are laid out in the order of their names (byte order), so the
 * spec and the vectors do not depend on the order of the source's columns,
 * and the statistics are taken in the order of the ids, so they do not
 * depend on the order of its rows either.
 *
 * The spec's JSON format is described in features_spec.c.  The code:
 *   features_types.c   column types and reading their values
 *   features_fit.c     fitting (the builder) and the encoder options
 *   features_spec.c    encoder <-> spec, and the slot layout
 *   features_apply.c   encoding a tuple or a jsonb object
 *   features_sql.c     it_encode_features, it_encode_features_json
 *   features_int.h     what those files share
 *
 * Fitting, with any reader that yields batches of tuples:
 *
 *   ItEncoderOptionsFrom(&model_options, &opts);      (or NULL below)
 *   b = ItEncoderBegin(src.tupdesc, "user_id", "user_features", &opts);
 *   while ((n = ItSourceFetch(&src, 10000)) > 0)
 *       ItEncoderAddRows(b, src.batch, n);
 *   enc = ItEncoderFinish(b);      enc->X: enc->n rows of enc->dims floats
 *   ... enc->spec is stored in the version's it_prior row (store.c)
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
 */
#ifndef IT_FEATURES_ENCODER_H
#define IT_FEATURES_ENCODER_H

#include "postgres.h"
#include "access/htup.h"
#include "access/tupdesc.h"
#include "executor/spi.h"
#include "utils/jsonb.h"

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
struct ItOptions;
extern void ItEncoderOptionsFrom(const struct ItOptions *options, ItEncoderOptions *o);

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

#endif                          /* IT_FEATURES_ENCODER_H */

/*
 * features_int.h
 *    What the files of the feature encoder (features_*.c) share and the
 *    rest of the extension does not see: the column kinds and value types,
 *    the parsed encoder (struct ItEncoder), the slot writers, and the
 *    helpers one file defines and another calls.  The public interface is
 *    features_encoder.h.
 */
#ifndef IT_FEATURES_INT_H
#define IT_FEATURES_INT_H

#include "utils/array.h"

#include "features_encoder.h"

/* The column types a feature may have, for messages. */
#define SUPPORTED_TYPES \
    "smallint, integer, bigint, real, double precision, numeric, text, varchar, char, " \
    "boolean, enums, date, timestamp, timestamptz, real[] and double precision[]"

typedef enum FeatureKind
{
    FEAT_NUMERIC,
    FEAT_CATEGORY,
    FEAT_DATE,
    FEAT_VECTOR
} FeatureKind;

/* The spec's name of each kind (features_types.c). */
extern const char *const it_feature_kind_names[];

/* How a column's values are read. */
typedef enum ValueType
{
    VT_INT2,
    VT_INT4,
    VT_INT8,
    VT_FLOAT4,
    VT_FLOAT8,
    VT_NUMERIC,
    VT_TEXT,                    /* text, varchar */
    VT_BPCHAR,                  /* char(n): trailing blanks do not count */
    VT_BOOL,
    VT_ENUM,
    VT_DATE,
    VT_TIMESTAMP,
    VT_TIMESTAMPTZ,
    VT_FLOAT4_ARRAY,
    VT_FLOAT8_ARRAY
} ValueType;

#define VT_COUNT (VT_FLOAT8_ARRAY + 1)

/* The spec's name of each value type (features_types.c). */
extern const char *const it_feature_type_labels[VT_COUNT];

/* What can be wrong with a value. */
typedef enum ValueProblem
{
    VAL_OK,
    VAL_NONFINITE,              /* NaN or infinity */
    VAL_NDIM,                   /* vector: not one-dimensional */
    VAL_EMPTY,                  /* vector: no elements */
    VAL_NULL_ELEMENT,           /* vector: a NULL element */
    VAL_LENGTH                  /* vector: not the fitted length */
} ValueProblem;

/* ------------------------------------------------------------------------
 * Column types and values (features_types.c)
 * ------------------------------------------------------------------------ */

/* The kind of feature a value type encodes as. */
extern FeatureKind ItFeatureKindOf(ValueType vt);
/* The value type of a column type (domains resolved); false if unsupported. */
extern bool ItFeatureClassifyType(Oid typid, ValueType *vt);
/* The number a numeric or date value stands for; false for NaN and infinities. */
extern bool ItFeatureDatumAsDouble(Datum d, ValueType vt, double *out);
/* The bytes a category value stands for: *len bytes, not NUL-terminated. */
extern const char *ItFeatureDatumToCategory(Datum d, ValueType vt, int *len);
/* Checks an array value of a vector column; *len gets its length. */
extern ValueProblem ItFeatureVectorShape(ArrayType *arr, int *len);
/* Copies the len elements of a NULL-free float4[]/float8[] into out. */
extern ValueProblem ItFeatureVectorCopy(ArrayType *arr, ValueType vt, int len, float *out);
/* ERRORs for a bad value of column col (nothing for VAL_OK). */
extern void ItFeatureReportValueProblem(ValueProblem p, const char *col, const char *what,
                                        const char *where, int expected, int got,
                                        const char *detail);

/* ------------------------------------------------------------------------
 * The encoder
 * ------------------------------------------------------------------------ */

typedef struct EncColumn
{
    char       *name;
    FeatureKind kind;
    ValueType   type;           /* the type it was fitted on */
    int         offset;         /* first slot */
    int         width;          /* slots, the missing indicator included */
    int         missing;        /* slot of the missing indicator, or -1 */
    int64       nulls;          /* NULLs when fitted (for the spec only) */
    /* FEAT_NUMERIC, FEAT_DATE */
    double      mean;
    double      std;            /* > 0 */
    /* FEAT_CATEGORY */
    int         nvalues;
    char      **values;         /* NUL-terminated, lens[i] bytes */
    int        *lens;
    int64      *counts;         /* fitting rows of each value (spec only) */
    int        *order;          /* value indexes in byte order, for lookup */
    int         other;          /* slot for any other value */
    /* FEAT_VECTOR */
    int         length;
} EncColumn;

struct ItEncoder
{
    char       *id_column;
    int         dims;
    int64       rows;           /* rows it was fitted on */
    int         max_categories;
    int         min_category_count;
    int         ncolumns;
    EncColumn  *columns;        /* sorted by name */
};

static inline int
CompareBytes(const char *a, int alen, const char *b, int blen)
{
    int         c = memcmp(a, b, Min(alen, blen));

    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

/* Columns (EncColumn, or any struct whose first member is the name) by name. */
static inline int
CompareColumnNames(const void *a, const void *b)
{
    return strcmp(((const EncColumn *) a)->name, ((const EncColumn *) b)->name);
}

/* Slot writers: out is zeroed before a row is encoded. */
static inline void
WriteNumber(const EncColumn *c, bool isnull, double x, float *out)
{
    if (isnull)
    {
        if (c->missing >= 0)
            out[c->missing] = 1.0f;
    }
    else
        out[c->offset] = (float) ((x - c->mean) / c->std);
}

/* value: index of a known value, -1 for another value, -2 for NULL */
static inline void
WriteCategory(const EncColumn *c, int value, float *out)
{
    if (value == -2)
    {
        if (c->missing >= 0)
            out[c->missing] = 1.0f;
    }
    else if (value == -1)
        out[c->other] = 1.0f;
    else
        out[c->offset + value] = 1.0f;
}

/* v: c->length floats, or NULL for a NULL vector */
static inline void
WriteVector(const EncColumn *c, const float *v, float *out)
{
    if (v == NULL)
    {
        if (c->missing >= 0)
            out[c->missing] = 1.0f;
    }
    else
        memcpy(out + c->offset, v, sizeof(float) * c->length);
}

/* The spec's complaint about a stored encoder: ERRORs with DATA_CORRUPTED. */
static inline void
SpecCorrupt(const char *fmt, const char *arg)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored feature encoder is invalid"),
             errdetail(fmt, arg ? arg : ""),
             errhint("Train a new version of the model with train(model).")));
}

/* Slots of a column from its shape; sets width, other and missing (features_spec.c). */
extern void ItFeatureLayoutColumn(EncColumn *c, bool has_missing);
/* The spec of an encoder as jsonb, in the current memory context (features_spec.c). */
extern Jsonb *ItFeatureSpecFromEncoder(const ItEncoder *e);
/* Index of a category value, or -1 when it is not one of c's values (features_apply.c). */
extern int  ItFeatureFindValue(const EncColumn *c, const char *s, int len);

#endif                          /* IT_FEATURES_INT_H */

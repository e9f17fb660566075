/*
 * features.c
 *    Feature encoding: turns the rows of a user or item features source
 *    (any columns besides the id) into dense float vectors, the input of
 *    the features -> interest model.
 *
 * An encoder is fitted on the rows of a source (ItEncoderBegin /
 * ItEncoderAddRows / ItEncoderFinish), which returns the encoded rows and a
 * jsonb "spec" holding everything needed to encode a row later without the
 * fitting data.  The spec is stored with the model version (it_encoder);
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
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "features_encoder.h"
#include "interest_transfer.h"

#define IT_ENCODER_FORMAT   1

/* Days from 1970-01-01 to 2000-01-01, the PostgreSQL epoch. */
#define UNIX_TO_PG_EPOCH_DAYS   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)

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

static const char *const kind_names[] = {"numeric", "category", "date", "vector"};

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

/* The spec's name of each value type. */
static const char *const type_labels[VT_COUNT] = {
    "smallint", "integer", "bigint", "real", "double precision", "numeric",
    "text", "character", "boolean", "enum",
    "date", "timestamp", "timestamptz",
    "real[]", "double precision[]"
};

static FeatureKind
KindOf(ValueType vt)
{
    switch (vt)
    {
        case VT_INT2:
        case VT_INT4:
        case VT_INT8:
        case VT_FLOAT4:
        case VT_FLOAT8:
        case VT_NUMERIC:
            return FEAT_NUMERIC;
        case VT_TEXT:
        case VT_BPCHAR:
        case VT_BOOL:
        case VT_ENUM:
            return FEAT_CATEGORY;
        case VT_DATE:
        case VT_TIMESTAMP:
        case VT_TIMESTAMPTZ:
            return FEAT_DATE;
        case VT_FLOAT4_ARRAY:
        case VT_FLOAT8_ARRAY:
            return FEAT_VECTOR;
    }
    elog(ERROR, "unknown value type %d", (int) vt);
    return FEAT_NUMERIC;        /* keep compiler quiet */
}

/* The value type of a column type (domains resolved); false if unsupported. */
static bool
ClassifyType(Oid typid, ValueType *vt)
{
    Oid         base = getBaseType(typid);
    Oid         elem;

    switch (base)
    {
        case INT2OID:
            *vt = VT_INT2;
            return true;
        case INT4OID:
            *vt = VT_INT4;
            return true;
        case INT8OID:
            *vt = VT_INT8;
            return true;
        case FLOAT4OID:
            *vt = VT_FLOAT4;
            return true;
        case FLOAT8OID:
            *vt = VT_FLOAT8;
            return true;
        case NUMERICOID:
            *vt = VT_NUMERIC;
            return true;
        case TEXTOID:
        case VARCHAROID:
            *vt = VT_TEXT;
            return true;
        case BPCHAROID:
            *vt = VT_BPCHAR;
            return true;
        case BOOLOID:
            *vt = VT_BOOL;
            return true;
        case DATEOID:
            *vt = VT_DATE;
            return true;
        case TIMESTAMPOID:
            *vt = VT_TIMESTAMP;
            return true;
        case TIMESTAMPTZOID:
            *vt = VT_TIMESTAMPTZ;
            return true;
    }
    if (type_is_enum(base))
    {
        *vt = VT_ENUM;
        return true;
    }
    elem = get_element_type(base);
    if (OidIsValid(elem))
    {
        elem = getBaseType(elem);
        if (elem == FLOAT4OID)
        {
            *vt = VT_FLOAT4_ARRAY;
            return true;
        }
        if (elem == FLOAT8OID)
        {
            *vt = VT_FLOAT8_ARRAY;
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------------
 * Reading values
 * ------------------------------------------------------------------------ */

/*
 * The number a numeric or date value stands for.  Returns false for NaN
 * and infinities (and infinite dates), which cannot be standardised.
 */
static bool
DatumToDouble(Datum d, ValueType vt, double *out)
{
    switch (vt)
    {
        case VT_INT2:
            *out = DatumGetInt16(d);
            return true;
        case VT_INT4:
            *out = DatumGetInt32(d);
            return true;
        case VT_INT8:
            *out = (double) DatumGetInt64(d);
            return true;
        case VT_FLOAT4:
            *out = DatumGetFloat4(d);
            return isfinite(*out);
        case VT_FLOAT8:
            *out = DatumGetFloat8(d);
            return isfinite(*out);
        case VT_NUMERIC:
            {
                Numeric     num = DatumGetNumeric(d);

                if (numeric_is_nan(num) || numeric_is_inf(num))
                    return false;
                *out = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                                          NumericGetDatum(num)));
                return isfinite(*out);
            }
        case VT_DATE:
            {
                DateADT     date = DatumGetDateADT(d);

                if (DATE_NOT_FINITE(date))
                    return false;
                *out = (double) date + UNIX_TO_PG_EPOCH_DAYS;
                return true;
            }
        case VT_TIMESTAMP:
        case VT_TIMESTAMPTZ:
            {
                Timestamp   ts = DatumGetTimestamp(d);

                if (TIMESTAMP_NOT_FINITE(ts))
                    return false;
                *out = (double) ts / (double) USECS_PER_DAY + UNIX_TO_PG_EPOCH_DAYS;
                return true;
            }
        default:
            break;
    }
    elog(ERROR, "value type %d is not numeric", (int) vt);
    return false;               /* keep compiler quiet */
}

/*
 * The string a category value stands for, as bytes: *len bytes at the
 * result, not NUL-terminated.  It may point into the (detoasted) datum or
 * be palloc'd in the current context.
 */
static const char *
DatumToCategory(Datum d, ValueType vt, int *len)
{
    switch (vt)
    {
        case VT_TEXT:
        case VT_BPCHAR:
            {
                text       *t = DatumGetTextPP(d);
                const char *s = VARDATA_ANY(t);
                int         n = VARSIZE_ANY_EXHDR(t);

                if (vt == VT_BPCHAR)
                    while (n > 0 && s[n - 1] == ' ')
                        n--;
                *len = n;
                return s;
            }
        case VT_BOOL:
            *len = DatumGetBool(d) ? 4 : 5;
            return DatumGetBool(d) ? "true" : "false";
        case VT_ENUM:
            {
                char       *label = DatumGetCString(DirectFunctionCall1(enum_out, d));

                *len = strlen(label);
                return label;
            }
        default:
            break;
    }
    elog(ERROR, "value type %d is not a category", (int) vt);
    return NULL;                /* keep compiler quiet */
}

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

/* Checks an array value of a vector column; *len gets its length. */
static ValueProblem
VectorShape(ArrayType *arr, int *len)
{
    *len = 0;
    if (ARR_NDIM(arr) == 0)
        return VAL_EMPTY;
    if (ARR_NDIM(arr) != 1)
        return VAL_NDIM;
    if (array_contains_nulls(arr))
        return VAL_NULL_ELEMENT;
    *len = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
    if (*len == 0)
        return VAL_EMPTY;
    return VAL_OK;
}

/* Copies the len elements of a NULL-free float4[]/float8[] into out. */
static ValueProblem
VectorCopy(ArrayType *arr, ValueType vt, int len, float *out)
{
    if (vt == VT_FLOAT4_ARRAY)
    {
        const float *src = (const float *) ARR_DATA_PTR(arr);

        for (int i = 0; i < len; i++)
        {
            if (!isfinite(src[i]))
                return VAL_NONFINITE;
            out[i] = src[i];
        }
    }
    else
    {
        const double *src = (const double *) ARR_DATA_PTR(arr);

        for (int i = 0; i < len; i++)
        {
            out[i] = (float) src[i];
            if (!isfinite(out[i]))
                return VAL_NONFINITE;
        }
    }
    return VAL_OK;
}

/*
 * ERRORs for a bad value of column col.  where names the row ("for id 7",
 * "" when unknown); expected and got are vector lengths.
 */
static void
ReportValueProblem(ValueProblem p, const char *col, const char *what,
                   const char *where, int expected, int got, const char *detail)
{
    switch (p)
    {
        case VAL_OK:
            return;
        case VAL_NONFINITE:
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_EXCEPTION),
                     errmsg("feature column \"%s\" of %s has a NaN or infinite value%s%s",
                            col, what, where[0] ? " " : "", where),
                     errhint("Features must be finite; replace such values with NULL in the query, "
                             "for example with NULLIF(%s, 'NaN').", quote_identifier(col))));
            break;
        case VAL_NDIM:
            ereport(ERROR,
                    (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                     errmsg("vector column \"%s\" of %s has a multidimensional array%s%s",
                            col, what, where[0] ? " " : "", where),
                     errhint("A vector column holds one-dimensional arrays of the same length.")));
            break;
        case VAL_EMPTY:
            ereport(ERROR,
                    (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                     errmsg("vector column \"%s\" of %s has an empty array%s%s",
                            col, what, where[0] ? " " : "", where),
                     errhint("Use NULL for a missing vector, not an empty array.")));
            break;
        case VAL_NULL_ELEMENT:
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("vector column \"%s\" of %s has a NULL element%s%s",
                            col, what, where[0] ? " " : "", where),
                     errhint("Make the whole value NULL when the vector is missing, or replace the NULL elements.")));
            break;
        case VAL_LENGTH:
            ereport(ERROR,
                    (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                     errmsg("vector column \"%s\" of %s has %d values%s%s, expected %d",
                            col, what, got, where[0] ? " " : "", where, expected),
                     detail ? errdetail("%s", detail) : 0,
                     errhint("Every non-NULL value of a vector column must have the same length; "
                             "fix or leave out the rows that differ, or train a new version of the model "
                             "when the vectors changed length.")));
            break;
    }
}

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

static int
CompareBytes(const char *a, int alen, const char *b, int blen)
{
    int         c = memcmp(a, b, Min(alen, blen));

    if (c != 0)
        return c;
    return (alen > blen) - (alen < blen);
}

/* Index of a category value, or -1 when it is not one of c's values. */
static int
FindValue(const EncColumn *c, const char *s, int len)
{
    int         lo = 0;
    int         hi = c->nvalues - 1;

    while (lo <= hi)
    {
        int         mid = lo + (hi - lo) / 2;
        int         v = c->order[mid];
        int         cmp = CompareBytes(c->values[v], c->lens[v], s, len);

        if (cmp == 0)
            return v;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

/* Index of the column named name (len bytes), or -1. */
static int
FindColumn(const ItEncoder *e, const char *name, int len)
{
    int         lo = 0;
    int         hi = e->ncolumns - 1;

    while (lo <= hi)
    {
        int         mid = lo + (hi - lo) / 2;
        const char *n = e->columns[mid].name;
        int         cmp = CompareBytes(n, strlen(n), name, len);

        if (cmp == 0)
            return mid;
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
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

/* Slots of a column from its shape; sets width, other and missing. */
static void
LayoutColumn(EncColumn *c, bool has_missing)
{
    int         w = 0;

    switch (c->kind)
    {
        case FEAT_NUMERIC:
        case FEAT_DATE:
            w = 1;
            break;
        case FEAT_CATEGORY:
            c->other = c->offset + c->nvalues;
            w = c->nvalues + 1;
            break;
        case FEAT_VECTOR:
            w = c->length;
            break;
    }
    c->missing = has_missing ? c->offset + w : -1;
    c->width = w + (has_missing ? 1 : 0);
}

/* ------------------------------------------------------------------------
 * The spec (jsonb) of an encoder
 *
 * {"format": 1, "id_column": "user_id", "dims": 12, "rows": 1000,
 *  "max_categories": 32, "min_category_count": 2,
 *  "columns": [
 *    {"name": "age", "kind": "numeric", "type": "integer", "offset": 0,
 *     "width": 2, "missing": 1, "nulls": 17, "mean": 41.5, "std": 12.25},
 *    {"name": "country", "kind": "category", "type": "text", "offset": 2,
 *     "width": 3, "missing": null, "nulls": 0, "values": ["DE", "FR"],
 *     "counts": [600, 390], "other": 4},
 *    {"name": "emb", "kind": "vector", "type": "real[]", "offset": 5,
 *     "width": 4, "missing": null, "nulls": 0, "length": 4}, ...]}
 *
 * Columns sorted by name; slots: numeric/date value at offset; category
 * values at offset .. offset + n - 1, other at offset + n; vector at
 * offset .. offset + length - 1; then the missing indicator, if any.
 * Numbers are written with 17 significant digits, so a parsed spec
 * encodes exactly like the encoder it was written from.
 * ------------------------------------------------------------------------ */

static void
AppendDouble(StringInfo buf, double x)
{
    char        tmp[64];

    snprintf(tmp, sizeof(tmp), "%.17g", x);
    appendStringInfoString(buf, tmp);
}

static void
AppendJsonString(StringInfo buf, const char *s)
{
    escape_json(buf, s);
}

/* The spec of an encoder as jsonb, in the current memory context. */
static Jsonb *
SpecFromEncoder(const ItEncoder *e)
{
    StringInfoData buf;
    Jsonb      *spec;

    initStringInfo(&buf);
    appendStringInfo(&buf, "{\"format\": %d, \"id_column\": ", IT_ENCODER_FORMAT);
    AppendJsonString(&buf, e->id_column);
    appendStringInfo(&buf, ", \"dims\": %d, \"rows\": " INT64_FORMAT
                     ", \"max_categories\": %d, \"min_category_count\": %d, \"columns\": [",
                     e->dims, e->rows, e->max_categories, e->min_category_count);
    for (int i = 0; i < e->ncolumns; i++)
    {
        const EncColumn *c = &e->columns[i];

        CHECK_FOR_INTERRUPTS();
        appendStringInfoString(&buf, i > 0 ? ", {\"name\": " : "{\"name\": ");
        AppendJsonString(&buf, c->name);
        appendStringInfo(&buf, ", \"kind\": \"%s\", \"type\": \"%s\", \"offset\": %d, \"width\": %d, ",
                         kind_names[c->kind], type_labels[c->type], c->offset, c->width);
        if (c->missing >= 0)
            appendStringInfo(&buf, "\"missing\": %d", c->missing);
        else
            appendStringInfoString(&buf, "\"missing\": null");
        appendStringInfo(&buf, ", \"nulls\": " INT64_FORMAT, c->nulls);
        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                appendStringInfoString(&buf, ", \"mean\": ");
                AppendDouble(&buf, c->mean);
                appendStringInfoString(&buf, ", \"std\": ");
                AppendDouble(&buf, c->std);
                break;
            case FEAT_CATEGORY:
                appendStringInfoString(&buf, ", \"values\": [");
                for (int v = 0; v < c->nvalues; v++)
                {
                    if (v > 0)
                        appendStringInfoString(&buf, ", ");
                    AppendJsonString(&buf, c->values[v]);
                }
                appendStringInfoString(&buf, "], \"counts\": [");
                for (int v = 0; v < c->nvalues; v++)
                    appendStringInfo(&buf, "%s" INT64_FORMAT, v > 0 ? ", " : "", c->counts[v]);
                appendStringInfo(&buf, "], \"other\": %d", c->other);
                break;
            case FEAT_VECTOR:
                appendStringInfo(&buf, ", \"length\": %d", c->length);
                break;
        }
        appendStringInfoChar(&buf, '}');
    }
    appendStringInfoString(&buf, "]}");
    spec = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data)));
    pfree(buf.data);
    return spec;
}

static void
SpecCorrupt(const char *fmt, const char *arg)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored feature encoder is invalid"),
             errdetail(fmt, arg ? arg : ""),
             errhint("Train a new version of the model with train(model).")));
}

/* The value of key in an object container, or NULL when absent. */
static JsonbValue *
SpecGet(JsonbContainer *obj, const char *key)
{
    return getKeyJsonValueFromContainer(obj, key, strlen(key), NULL);
}

static double
SpecNumber(JsonbContainer *obj, const char *key)
{
    JsonbValue *v = SpecGet(obj, key);
    double      d;

    if (v == NULL || v->type != jbvNumeric)
        SpecCorrupt("Key \"%s\" is missing or not a number.", key);
    d = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                           NumericGetDatum(v->val.numeric)));
    if (!isfinite(d))
        SpecCorrupt("Key \"%s\" is not finite.", key);
    return d;
}

static int64
SpecInt(JsonbContainer *obj, const char *key, int64 min, int64 max)
{
    double      d = SpecNumber(obj, key);

    if (d != floor(d) || d < (double) min || d > (double) max)
        SpecCorrupt("Key \"%s\" is out of range.", key);
    return (int64) d;
}

static char *
SpecString(JsonbContainer *obj, const char *key)
{
    JsonbValue *v = SpecGet(obj, key);

    if (v == NULL || v->type != jbvString)
        SpecCorrupt("Key \"%s\" is missing or not a string.", key);
    return pnstrdup(v->val.string.val, v->val.string.len);
}

/* An array-valued key: its container. */
static JsonbContainer *
SpecArray(JsonbContainer *obj, const char *key)
{
    JsonbValue *v = SpecGet(obj, key);

    if (v == NULL || v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
        JsonContainerIsScalar(v->val.binary.data))
        SpecCorrupt("Key \"%s\" is missing or not an array.", key);
    return v->val.binary.data;
}

static int
CompareColumnNames(const void *a, const void *b)
{
    return strcmp(((const EncColumn *) a)->name, ((const EncColumn *) b)->name);
}

static int
CompareValueOrder(const void *a, const void *b, void *arg)
{
    const EncColumn *c = (const EncColumn *) arg;
    int         x = *(const int *) a;
    int         y = *(const int *) b;

    return CompareBytes(c->values[x], c->lens[x], c->values[y], c->lens[y]);
}

/* Parses one column object of a spec into c. */
static void
ParseColumn(JsonbContainer *obj, EncColumn *c, int dims)
{
    char       *kind;
    char       *type;
    JsonbValue *missing;
    int         width;
    int         vt;

    c->name = SpecString(obj, "name");
    if (c->name[0] == '\0')
        SpecCorrupt("A column has an empty name.%s", NULL);
    kind = SpecString(obj, "kind");
    for (c->kind = 0; c->kind <= FEAT_VECTOR; c->kind++)
        if (strcmp(kind, kind_names[c->kind]) == 0)
            break;
    if (c->kind > FEAT_VECTOR)
        SpecCorrupt("Unknown column kind \"%s\".", kind);
    type = SpecString(obj, "type");
    for (vt = 0; vt < VT_COUNT; vt++)
        if (strcmp(type, type_labels[vt]) == 0)
            break;
    if (vt == VT_COUNT || KindOf((ValueType) vt) != c->kind)
        SpecCorrupt("Unknown column type \"%s\".", type);
    c->type = (ValueType) vt;
    c->offset = (int) SpecInt(obj, "offset", 0, dims - 1);
    c->nulls = SpecInt(obj, "nulls", 0, PG_INT64_MAX / 2);

    switch (c->kind)
    {
        case FEAT_NUMERIC:
        case FEAT_DATE:
            c->mean = SpecNumber(obj, "mean");
            c->std = SpecNumber(obj, "std");
            if (!(c->std > 0))
                SpecCorrupt("Column \"%s\" has a standard deviation that is not positive.", c->name);
            break;
        case FEAT_CATEGORY:
            {
                JsonbContainer *values = SpecArray(obj, "values");
                JsonbContainer *counts = SpecArray(obj, "counts");

                c->nvalues = JsonContainerSize(values);
                if (c->nvalues > IT_ENCODER_MAX_CATEGORIES ||
                    (int) JsonContainerSize(counts) != c->nvalues)
                    SpecCorrupt("Column \"%s\" has a bad list of values.", c->name);
                c->values = palloc(sizeof(char *) * Max(c->nvalues, 1));
                c->lens = palloc(sizeof(int) * Max(c->nvalues, 1));
                c->counts = palloc(sizeof(int64) * Max(c->nvalues, 1));
                c->order = palloc(sizeof(int) * Max(c->nvalues, 1));
                for (int i = 0; i < c->nvalues; i++)
                {
                    JsonbValue *v = getIthJsonbValueFromContainer(values, i);
                    JsonbValue *n = getIthJsonbValueFromContainer(counts, i);

                    if (v == NULL || v->type != jbvString || n == NULL || n->type != jbvNumeric)
                        SpecCorrupt("Column \"%s\" has a bad list of values.", c->name);
                    c->values[i] = pnstrdup(v->val.string.val, v->val.string.len);
                    c->lens[i] = v->val.string.len;
                    c->counts[i] = DatumGetInt64(DirectFunctionCall1(numeric_int8,
                                                                     NumericGetDatum(n->val.numeric)));
                    c->order[i] = i;
                }
                qsort_arg(c->order, c->nvalues, sizeof(int), CompareValueOrder, c);
                for (int i = 1; i < c->nvalues; i++)
                    if (CompareValueOrder(&c->order[i - 1], &c->order[i], c) == 0)
                        SpecCorrupt("Column \"%s\" lists a value twice.", c->name);
            }
            break;
        case FEAT_VECTOR:
            c->length = (int) SpecInt(obj, "length", 1, IT_MAX_FEATURE_DIMS);
            break;
    }

    missing = SpecGet(obj, "missing");
    if (missing == NULL || (missing->type != jbvNull && missing->type != jbvNumeric))
        SpecCorrupt("Column \"%s\" has no valid \"missing\" key.", c->name);
    width = (int) SpecInt(obj, "width", 1, IT_MAX_FEATURE_DIMS);
    LayoutColumn(c, missing->type != jbvNull);
    if (c->width != width || (int64) c->offset + c->width > dims ||
        (c->missing >= 0 && SpecInt(obj, "missing", 0, dims - 1) != c->missing) ||
        (c->kind == FEAT_CATEGORY && SpecInt(obj, "other", 0, dims - 1) != c->other))
        SpecCorrupt("The slots of column \"%s\" do not match its kind.", c->name);
}

ItEncoder *
ItEncoderFromSpec(Jsonb *spec, MemoryContext mcxt)
{
    MemoryContext old = MemoryContextSwitchTo(mcxt);
    ItEncoder  *e = palloc0(sizeof(ItEncoder));
    JsonbContainer *root = &spec->root;
    JsonbContainer *cols;
    int         next;

    if (!JB_ROOT_IS_OBJECT(spec))
        SpecCorrupt("It is not a JSON object.%s", NULL);
    if (SpecInt(root, "format", 0, PG_INT32_MAX) != IT_ENCODER_FORMAT)
        SpecCorrupt("It has an unknown format.%s", NULL);
    e->id_column = SpecString(root, "id_column");
    e->dims = (int) SpecInt(root, "dims", 1, IT_MAX_FEATURE_DIMS);
    e->rows = SpecInt(root, "rows", 1, PG_INT64_MAX / 2);
    e->max_categories = (int) SpecInt(root, "max_categories", 0, IT_ENCODER_MAX_CATEGORIES);
    e->min_category_count = (int) SpecInt(root, "min_category_count", 1, PG_INT32_MAX);
    cols = SpecArray(root, "columns");
    e->ncolumns = JsonContainerSize(cols);
    if (e->ncolumns < 1 || e->ncolumns > MaxTupleAttributeNumber)
        SpecCorrupt("It has no columns.%s", NULL);
    e->columns = palloc0(sizeof(EncColumn) * e->ncolumns);
    for (int i = 0; i < e->ncolumns; i++)
    {
        JsonbValue *v = getIthJsonbValueFromContainer(cols, i);

        if (v == NULL || v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
            SpecCorrupt("A column is not an object.%s", NULL);
        ParseColumn(v->val.binary.data, &e->columns[i], e->dims);
    }
    qsort(e->columns, e->ncolumns, sizeof(EncColumn), CompareColumnNames);

    /* the columns' slots tile 0 .. dims - 1 in name order */
    next = 0;
    for (int i = 0; i < e->ncolumns; i++)
    {
        if (i > 0 && strcmp(e->columns[i - 1].name, e->columns[i].name) == 0)
            SpecCorrupt("Column \"%s\" appears twice.", e->columns[i].name);
        if (e->columns[i].offset != next)
            SpecCorrupt("The slots of column \"%s\" overlap or leave a gap.", e->columns[i].name);
        next += e->columns[i].width;
    }
    if (next != e->dims)
        SpecCorrupt("The columns do not cover every slot.%s", NULL);

    MemoryContextSwitchTo(old);
    return e;
}

int
ItEncoderDims(const ItEncoder *e)
{
    return e->dims;
}

const char *
ItEncoderIdColumn(const ItEncoder *e)
{
    return e->id_column;
}

/* ------------------------------------------------------------------------
 * Fitting
 * ------------------------------------------------------------------------ */

typedef struct CatEntry
{
    char       *str;            /* NUL-terminated, len bytes */
    int         len;
    uint32      hash;
    int64       count;
    int         value;          /* index in the fitted values, or -1 */
} CatEntry;

typedef struct BuildColumn
{
    char       *name;
    int         attno;          /* 0-based position in the source */
    ValueType   type;
    FeatureKind kind;
    int64       nulls;
    /* FEAT_NUMERIC, FEAT_DATE: one per row, NaN for NULL */
    double     *num;
    /* FEAT_CATEGORY: entry of each row, -1 for NULL */
    int32      *code;
    CatEntry   *entries;
    int32       nentries;
    int32       maxentries;
    int32      *table;          /* open addressing over entries, -1 = empty */
    uint32      tabsize;        /* a power of 2, or 0 */
    /* FEAT_VECTOR */
    int         length;         /* 0 until the first non-NULL value */
    int64       length_id;      /* the id of that row */
    float      *vec;            /* cap * length */
    bool       *vecnull;        /* cap */
} BuildColumn;

struct ItEncoderBuilder
{
    MemoryContext cxt;          /* everything below */
    MemoryContext rowcxt;       /* reset after each row */
    char       *what;
    char       *id_column;
    int         id_attno;
    Oid         id_type;        /* base type */
    int         natts;
    ItEncoderOptions opts;
    int         ncolumns;
    BuildColumn *columns;       /* sorted by name */
    int64       rows;
    int64       cap;
    int64      *ids;
    Datum      *values;         /* natts, one deformed row */
    bool       *isnull;
};

void
ItEncoderDefaultOptions(ItEncoderOptions *o)
{
    o->max_categories = IT_ENCODER_DEFAULT_MAX_CATEGORIES;
    o->min_category_count = IT_ENCODER_DEFAULT_MIN_CATEGORY_COUNT;
}

void
ItEncoderOptionsFrom(Jsonb *options, ItEncoderOptions *o)
{
    int64       v;

    ItEncoderDefaultOptions(o);
    v = ItOptionInt(options, "max_categories", o->max_categories);
    if (v < 0 || v > IT_ENCODER_MAX_CATEGORIES)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"max_categories\" must be an integer from 0 to %d", IT_ENCODER_MAX_CATEGORIES),
                 errhint("Max_categories is the most values of a text or boolean feature that get their own slot.")));
    o->max_categories = (int) v;
    v = ItOptionInt(options, "min_category_count", o->min_category_count);
    if (v < 1 || v > PG_INT32_MAX)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("option \"min_category_count\" must be a positive integer"),
                 errhint("Min_category_count is how many rows a value of a text or boolean feature needs to get its own slot.")));
    o->min_category_count = (int) v;
}

/* n * size bytes, checked against overflow and the largest allocation. */
static Size
CheckedSize(const ItEncoderBuilder *b, int64 n, int64 size)
{
    int64       bytes;

    if (n < 0 || size < 0 || pg_mul_s64_overflow(n, size, &bytes) ||
        (uint64) bytes > (uint64) MaxAllocHugeSize)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s is too large to encode in memory", b->what),
                 errhint("Leave out some rows or columns, or shorten the vector columns.")));
    return (Size) bytes;
}

static void *
GrowArray(ItEncoderBuilder *b, void *ptr, int64 n, int64 size)
{
    Size        bytes = CheckedSize(b, n, size);

    if (ptr == NULL)
        return MemoryContextAllocHuge(b->cxt, Max(bytes, 1));
    return repalloc_huge(ptr, Max(bytes, 1));
}

ItEncoderBuilder *
ItEncoderBegin(TupleDesc desc, const char *id_column, const char *what,
               const ItEncoderOptions *opts)
{
    MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "feature encoder",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    ItEncoderBuilder *b = palloc0(sizeof(ItEncoderBuilder));
    ValueType   vt;

    b->cxt = cxt;
    b->rowcxt = AllocSetContextCreate(cxt, "feature encoder row", ALLOCSET_SMALL_SIZES);
    b->what = pstrdup(what);
    b->id_column = pstrdup(id_column);
    b->natts = desc->natts;
    if (opts)
        b->opts = *opts;
    else
        ItEncoderDefaultOptions(&b->opts);
    if (b->opts.max_categories < 0 || b->opts.max_categories > IT_ENCODER_MAX_CATEGORIES ||
        b->opts.min_category_count < 1)
        elog(ERROR, "invalid feature encoder options");

    b->values = palloc(sizeof(Datum) * Max(desc->natts, 1));
    b->isnull = palloc(sizeof(bool) * Max(desc->natts, 1));
    b->id_attno = -1;
    b->columns = palloc0(sizeof(BuildColumn) * Max(desc->natts, 1));
    for (int i = 0; i < desc->natts; i++)
    {
        Form_pg_attribute att = TupleDescAttr(desc, i);
        const char *name = NameStr(att->attname);
        BuildColumn *c;

        if (att->attisdropped)
            continue;
        for (int j = 0; j < i; j++)
            if (!TupleDescAttr(desc, j)->attisdropped &&
                strcmp(NameStr(TupleDescAttr(desc, j)->attname), name) == 0)
                ereport(ERROR,
                        (errcode(ERRCODE_AMBIGUOUS_COLUMN),
                         errmsg("%s has more than one column named \"%s\"", what, name),
                         errhint("Give each column of %s its own name, with AS in a query.", what)));
        if (strcmp(name, id_column) == 0)
        {
            Oid         base = getBaseType(att->atttypid);

            if (base != INT2OID && base != INT4OID && base != INT8OID && base != NUMERICOID)
                ereport(ERROR,
                        (errcode(ERRCODE_DATATYPE_MISMATCH),
                         errmsg("column \"%s\" of %s has type %s", name, what,
                                format_type_be(att->atttypid)),
                         errhint("%s must be of type smallint, integer, bigint or numeric; cast it in a query, "
                                 "for example SELECT %s::bigint AS %s.",
                                 quote_identifier(name), quote_identifier(name), quote_identifier(name))));
            b->id_attno = i;
            b->id_type = base;
            continue;
        }
        if (!ClassifyType(att->atttypid, &vt))
            ereport(ERROR,
                    (errcode(ERRCODE_DATATYPE_MISMATCH),
                     errmsg("feature column \"%s\" of %s has unsupported type %s",
                            name, what, format_type_be(att->atttypid)),
                     errhint("Feature columns may be of type " SUPPORTED_TYPES
                             "; cast the column to one of them in a query, or leave it out.")));
        c = &b->columns[b->ncolumns++];
        c->name = pstrdup(name);
        c->attno = i;
        c->type = vt;
        c->kind = KindOf(vt);
    }

    if (b->id_attno < 0)
    {
        StringInfoData cols;

        initStringInfo(&cols);
        for (int i = 0; i < desc->natts; i++)
            if (!TupleDescAttr(desc, i)->attisdropped)
                appendStringInfo(&cols, "%s%s", cols.len > 0 ? ", " : "",
                                 quote_identifier(NameStr(TupleDescAttr(desc, i)->attname)));
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("%s has no column named \"%s\"", what, id_column),
                 errdetail("Its columns are: %s.", cols.len > 0 ? cols.data : "(none)"),
                 errhint("Name the id column %s, for example with a query: SELECT customer AS %s, ... FROM ....",
                         quote_identifier(id_column), quote_identifier(id_column))));
    }
    if (b->ncolumns == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("%s has no feature columns", what),
                 errhint("Return at least one column besides %s, for example SELECT %s, age, country FROM ....",
                         quote_identifier(id_column), quote_identifier(id_column))));

    qsort(b->columns, b->ncolumns, sizeof(BuildColumn), CompareColumnNames);
    MemoryContextSwitchTo(old);
    return b;
}

/* Room for one more row in every column. */
static void
EnsureCapacity(ItEncoderBuilder *b)
{
    int64       cap;

    if (b->rows < b->cap)
        return;
    if (b->rows >= IT_MAX_ROWS)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("%s has more than " INT64_FORMAT " rows", b->what, (int64) IT_MAX_ROWS),
                 errhint("Leave out some rows.")));
    cap = b->cap == 0 ? 1024 : Min(b->cap * 2, (int64) IT_MAX_ROWS);
    b->ids = GrowArray(b, b->ids, cap, sizeof(int64));
    for (int i = 0; i < b->ncolumns; i++)
    {
        BuildColumn *c = &b->columns[i];

        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                c->num = GrowArray(b, c->num, cap, sizeof(double));
                break;
            case FEAT_CATEGORY:
                c->code = GrowArray(b, c->code, cap, sizeof(int32));
                break;
            case FEAT_VECTOR:
                c->vecnull = GrowArray(b, c->vecnull, cap, sizeof(bool));
                if (c->length > 0)
                    c->vec = GrowArray(b, c->vec, cap, (int64) c->length * sizeof(float));
                break;
        }
    }
    b->cap = cap;
}

static void
DictGrow(ItEncoderBuilder *b, BuildColumn *c)
{
    uint32      size = c->tabsize == 0 ? 64 : c->tabsize * 2;
    int32      *table;

    if (c->tabsize >= (1U << 30))
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("feature column \"%s\" of %s has too many distinct values",
                        c->name, b->what),
                 errhint("Leave the column out, or map its values to fewer groups in a query.")));
    table = MemoryContextAllocHuge(b->cxt, sizeof(int32) * (Size) size);
    memset(table, 0xff, sizeof(int32) * (Size) size);  /* -1 */
    for (int32 i = 0; i < c->nentries; i++)
    {
        uint32      pos = c->entries[i].hash & (size - 1);

        while (table[pos] >= 0)
            pos = (pos + 1) & (size - 1);
        table[pos] = i;
    }
    if (c->table)
        pfree(c->table);
    c->table = table;
    c->tabsize = size;
}

/* The entry of a category value, added with count 0 when new. */
static int32
DictEntry(ItEncoderBuilder *b, BuildColumn *c, const char *s, int len)
{
    uint32      h = hash_bytes((const unsigned char *) s, len);
    uint32      pos;
    int32       idx;
    CatEntry   *e;

    if ((uint64) (c->nentries + 1) * 2 > c->tabsize)
        DictGrow(b, c);
    pos = h & (c->tabsize - 1);
    while ((idx = c->table[pos]) >= 0)
    {
        e = &c->entries[idx];
        if (e->hash == h && e->len == len && memcmp(e->str, s, len) == 0)
            return idx;
        pos = (pos + 1) & (c->tabsize - 1);
    }
    if (c->nentries == c->maxentries)
    {
        c->maxentries = c->maxentries == 0 ? 64 : c->maxentries * 2;
        c->entries = GrowArray(b, c->entries, c->maxentries, sizeof(CatEntry));
    }
    idx = c->nentries++;
    e = &c->entries[idx];
    e->str = MemoryContextAlloc(b->cxt, len + 1);
    memcpy(e->str, s, len);
    e->str[len] = '\0';
    e->len = len;
    e->hash = h;
    e->count = 0;
    e->value = -1;
    c->table[pos] = idx;
    return idx;
}

static int64
IdFromDatum(ItEncoderBuilder *b, Datum d)
{
    int64       id;

    if (!ItIdDatumToInt64(d, b->id_type, &id))
        ereport(ERROR,
                (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                 errmsg("%s %s of %s is not a bigint", b->id_column,
                        DatumGetCString(DirectFunctionCall1(numeric_out, d)),
                        b->what),
                 errhint("Ids must be whole numbers in the range of bigint.")));
    return id;
}

/* "for user_id 7", for messages about one row */
static char *
RowWhere(const ItEncoderBuilder *b, int64 id)
{
    return psprintf("for %s " INT64_FORMAT, b->id_column, id);
}

void
ItEncoderAddTuple(ItEncoderBuilder *b, HeapTuple tup, TupleDesc desc)
{
    MemoryContext old;
    int64       row = b->rows;
    int64       id;

    if (desc->natts != b->natts)
        elog(ERROR, "feature rows do not match the columns the encoder was begun with");
    EnsureCapacity(b);
    old = MemoryContextSwitchTo(b->rowcxt);
    heap_deform_tuple(tup, desc, b->values, b->isnull);

    if (b->isnull[b->id_attno])
        ereport(ERROR,
                (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                 errmsg("%s has a row whose %s is NULL", b->what, b->id_column),
                 errhint("Leave those rows out, for example with a query: SELECT * FROM ... WHERE %s IS NOT NULL.",
                         quote_identifier(b->id_column))));
    id = IdFromDatum(b, b->values[b->id_attno]);
    b->ids[row] = id;

    for (int i = 0; i < b->ncolumns; i++)
    {
        BuildColumn *c = &b->columns[i];
        Datum       d = b->values[c->attno];
        bool        isnull = b->isnull[c->attno];

        if (isnull)
            c->nulls++;
        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                if (isnull)
                    c->num[row] = get_float8_nan();
                else if (!DatumToDouble(d, c->type, &c->num[row]))
                    ReportValueProblem(VAL_NONFINITE, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
                break;
            case FEAT_CATEGORY:
                if (isnull)
                    c->code[row] = -1;
                else
                {
                    int         len;
                    const char *s = DatumToCategory(d, c->type, &len);
                    int32       e = DictEntry(b, c, s, len);

                    c->entries[e].count++;
                    c->code[row] = e;
                }
                break;
            case FEAT_VECTOR:
                c->vecnull[row] = isnull;
                if (!isnull)
                {
                    ArrayType  *arr = DatumGetArrayTypeP(d);
                    int         len;
                    ValueProblem p = VectorShape(arr, &len);

                    if (p != VAL_OK)
                        ReportValueProblem(p, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
                    if (c->length == 0)
                    {
                        if (len > IT_MAX_FEATURE_DIMS)
                            ereport(ERROR,
                                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                                     errmsg("vector column \"%s\" of %s has %d values, more than %d",
                                            c->name, b->what, len, IT_MAX_FEATURE_DIMS),
                                     errhint("Reduce the dimension of the vectors, or leave the column out.")));
                        c->length = len;
                        c->length_id = id;
                        c->vec = GrowArray(b, NULL, b->cap, (int64) len * sizeof(float));
                    }
                    else if (len != c->length)
                        ReportValueProblem(VAL_LENGTH, c->name, b->what, RowWhere(b, id),
                                           c->length, len,
                                           psprintf("The first non-NULL value, %s, has %d values.",
                                                    RowWhere(b, c->length_id), c->length));
                    p = VectorCopy(arr, c->type, len, c->vec + row * c->length);
                    if (p != VAL_OK)
                        ReportValueProblem(p, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
                }
                break;
        }
    }
    b->rows++;
    MemoryContextSwitchTo(old);
    MemoryContextReset(b->rowcxt);
}

void
ItEncoderAddRows(ItEncoderBuilder *b, SPITupleTable *tuptable, uint64 n)
{
    CHECK_FOR_INTERRUPTS();
    for (uint64 i = 0; i < n; i++)
    {
        if ((i & 4095) == 4095)
            CHECK_FOR_INTERRUPTS();
        ItEncoderAddTuple(b, tuptable->vals[i], tuptable->tupdesc);
    }
}

static int
CompareRowIds(const void *a, const void *b, void *arg)
{
    const int64 *ids = (const int64 *) arg;
    int64       x = ids[*(const int64 *) a];
    int64       y = ids[*(const int64 *) b];

    if (x != y)
        return x < y ? -1 : 1;
    return (*(const int64 *) a > *(const int64 *) b) - (*(const int64 *) a < *(const int64 *) b);
}

/* Category entries: most frequent first, then in byte order. */
static int
CompareEntryFrequency(const void *a, const void *b)
{
    const CatEntry *x = *(const CatEntry *const *) a;
    const CatEntry *y = *(const CatEntry *const *) b;

    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return CompareBytes(x->str, x->len, y->str, y->len);
}

/* The encoder's statistics of one column, over rows in perm order. */
static void
FitColumn(ItEncoderBuilder *b, BuildColumn *bc, EncColumn *c, const int64 *perm)
{
    c->name = bc->name;
    c->kind = bc->kind;
    c->type = bc->type;
    c->nulls = bc->nulls;
    switch (bc->kind)
    {
        case FEAT_NUMERIC:
        case FEAT_DATE:
            {
                double      mean = 0;
                double      m2 = 0;
                int64       count = 0;

                /* Welford: exact for constant columns, stable otherwise */
                for (int64 r = 0; r < b->rows; r++)
                {
                    double      x = bc->num[perm[r]];
                    double      delta;

                    if (isnan(x))
                        continue;
                    count++;
                    delta = x - mean;
                    mean += delta / count;
                    m2 += delta * (x - mean);
                }
                c->mean = mean;
                c->std = count > 0 ? sqrt(m2 / count) : 0;
                if (!isfinite(c->mean) || !isfinite(c->std))
                    ereport(ERROR,
                            (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                             errmsg("feature column \"%s\" of %s has values too large to standardise",
                                    c->name, b->what),
                             errhint("Scale the column down in a query, for example with a logarithm.")));
                if (!(c->std > 0))
                    c->std = 1;
            }
            break;
        case FEAT_CATEGORY:
            {
                CatEntry  **cand = palloc(sizeof(CatEntry *) * Max(bc->nentries, 1));
                int         ncand = 0;

                for (int32 i = 0; i < bc->nentries; i++)
                    if (bc->entries[i].count >= b->opts.min_category_count)
                        cand[ncand++] = &bc->entries[i];
                qsort(cand, ncand, sizeof(CatEntry *), CompareEntryFrequency);
                c->nvalues = Min(ncand, b->opts.max_categories);
                c->values = palloc(sizeof(char *) * Max(c->nvalues, 1));
                c->lens = palloc(sizeof(int) * Max(c->nvalues, 1));
                c->counts = palloc(sizeof(int64) * Max(c->nvalues, 1));
                for (int v = 0; v < c->nvalues; v++)
                {
                    c->values[v] = cand[v]->str;
                    c->lens[v] = cand[v]->len;
                    c->counts[v] = cand[v]->count;
                }
                pfree(cand);
            }
            break;
        case FEAT_VECTOR:
            if (bc->length == 0)
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("vector column \"%s\" of %s is NULL in every row", c->name, b->what),
                         errhint("The length of a vector column is taken from its values; leave the column out.")));
            c->length = bc->length;
            break;
    }
}

ItEncoded *
ItEncoderFinish(ItEncoderBuilder *b)
{
    MemoryContext resultcxt = CurrentMemoryContext;
    MemoryContext old;
    ItEncoded  *res;
    ItEncoder   fitted;
    ItEncoder  *e;
    int64      *perm;
    int64       dims;
    int64       n = b->rows;

    if (n == 0)
        ereport(ERROR,
                (errcode(ERRCODE_DATA_EXCEPTION),
                 errmsg("%s has no rows", b->what),
                 errhint("A feature encoder is fitted on at least one row; check the table or query.")));

    old = MemoryContextSwitchTo(b->cxt);

    /* rows in id order; equal ids are adjacent */
    perm = MemoryContextAllocHuge(b->cxt, CheckedSize(b, n, sizeof(int64)));
    for (int64 r = 0; r < n; r++)
        perm[r] = r;
    qsort_arg(perm, n, sizeof(int64), CompareRowIds, b->ids);
    for (int64 r = 1; r < n; r++)
        if (b->ids[perm[r]] == b->ids[perm[r - 1]])
            ereport(ERROR,
                    (errcode(ERRCODE_UNIQUE_VIOLATION),
                     errmsg("%s has more than one row for %s " INT64_FORMAT,
                            b->what, b->id_column, b->ids[perm[r]]),
                     errhint("Each %s must appear once; aggregate or deduplicate the rows in a query, "
                             "for example SELECT DISTINCT ON (%s) * FROM ... ORDER BY %s, ....",
                             quote_identifier(b->id_column), quote_identifier(b->id_column),
                             quote_identifier(b->id_column))));
    CHECK_FOR_INTERRUPTS();

    /* statistics and layout */
    memset(&fitted, 0, sizeof(fitted));
    fitted.id_column = b->id_column;
    fitted.rows = n;
    fitted.max_categories = b->opts.max_categories;
    fitted.min_category_count = b->opts.min_category_count;
    fitted.ncolumns = b->ncolumns;
    fitted.columns = palloc0(sizeof(EncColumn) * b->ncolumns);
    dims = 0;
    for (int i = 0; i < b->ncolumns; i++)
    {
        EncColumn  *c = &fitted.columns[i];

        FitColumn(b, &b->columns[i], c, perm);
        c->offset = (int) dims;
        LayoutColumn(c, b->columns[i].nulls > 0);
        dims += c->width;
        if (dims > IT_MAX_FEATURE_DIMS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("%s encodes to more than %d values per row", b->what, IT_MAX_FEATURE_DIMS),
                     errhint("Leave out some columns, lower max_categories, or shorten the vector columns.")));
        CHECK_FOR_INTERRUPTS();
    }
    fitted.dims = (int) dims;

    /*
     * The rows are encoded by the encoder parsed back from the spec, so they
     * are exactly what the stored spec will give for the same values.
     */
    MemoryContextSwitchTo(resultcxt);
    res = palloc0(sizeof(ItEncoded));
    res->spec = SpecFromEncoder(&fitted);
    res->dims = fitted.dims;
    res->n = n;
    res->ids = MemoryContextAllocHuge(resultcxt, CheckedSize(b, n, sizeof(int64)));
    res->X = MemoryContextAllocExtended(resultcxt, CheckedSize(b, n, dims * (int64) sizeof(float)),
                                        MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
    e = ItEncoderFromSpec(res->spec, b->cxt);
    MemoryContextSwitchTo(b->cxt);

    for (int i = 0; i < b->ncolumns; i++)
    {
        BuildColumn *bc = &b->columns[i];

        if (strcmp(bc->name, e->columns[i].name) != 0)
            elog(ERROR, "feature encoder columns out of order");
        if (bc->kind == FEAT_CATEGORY)
            for (int32 j = 0; j < bc->nentries; j++)
                bc->entries[j].value = FindValue(&e->columns[i], bc->entries[j].str, bc->entries[j].len);
    }

    for (int64 r = 0; r < n; r++)
    {
        int64       src = perm[r];
        float      *out = res->X + r * dims;

        if ((r & 4095) == 4095)
            CHECK_FOR_INTERRUPTS();
        res->ids[r] = b->ids[src];
        for (int i = 0; i < e->ncolumns; i++)
        {
            const EncColumn *c = &e->columns[i];
            BuildColumn *bc = &b->columns[i];

            switch (c->kind)
            {
                case FEAT_NUMERIC:
                case FEAT_DATE:
                    WriteNumber(c, isnan(bc->num[src]), bc->num[src], out);
                    break;
                case FEAT_CATEGORY:
                    WriteCategory(c, bc->code[src] < 0 ? -2 : bc->entries[bc->code[src]].value, out);
                    break;
                case FEAT_VECTOR:
                    WriteVector(c, bc->vecnull[src] ? NULL : bc->vec + src * c->length, out);
                    break;
            }
        }
    }

    MemoryContextSwitchTo(old);
    MemoryContextDelete(b->cxt);
    return res;
}

/* ------------------------------------------------------------------------
 * Applying an encoder
 * ------------------------------------------------------------------------ */

/* Position of the column named name in desc, or -1. */
static int
FindAttribute(TupleDesc desc, const char *name)
{
    int         found = -1;

    for (int i = 0; i < desc->natts; i++)
    {
        Form_pg_attribute att = TupleDescAttr(desc, i);

        if (att->attisdropped || strcmp(NameStr(att->attname), name) != 0)
            continue;
        if (found >= 0)
            ereport(ERROR,
                    (errcode(ERRCODE_AMBIGUOUS_COLUMN),
                     errmsg("the features have more than one column named \"%s\"", name),
                     errhint("Give each feature column its own name, with AS in a query.")));
        found = i;
    }
    return found;
}

void
ItEncodeTuple(const ItEncoder *e, HeapTuple tup, TupleDesc desc, float *out)
{
    memset(out, 0, sizeof(float) * e->dims);
    for (int i = 0; i < e->ncolumns; i++)
    {
        const EncColumn *c = &e->columns[i];
        int         attno = FindAttribute(desc, c->name);
        ValueType   vt;
        bool        isnull;
        Datum       d;

        if (attno < 0)
            ereport(ERROR,
                    (errcode(ERRCODE_UNDEFINED_COLUMN),
                     errmsg("the features have no column named \"%s\"", c->name),
                     errdetail("The model was trained with a %s feature column \"%s\".",
                               kind_names[c->kind], c->name),
                     errhint("Put the column back into the features source, or train a new version of the model.")));
        if (!ClassifyType(TupleDescAttr(desc, attno)->atttypid, &vt) || KindOf(vt) != c->kind)
            ereport(ERROR,
                    (errcode(ERRCODE_DATATYPE_MISMATCH),
                     errmsg("feature column \"%s\" has type %s", c->name,
                            format_type_be(TupleDescAttr(desc, attno)->atttypid)),
                     errdetail("The model was trained with a %s column of type %s.",
                               kind_names[c->kind], type_labels[c->type]),
                     errhint("Cast the column back to %s in the features source, or train a new version of the model.",
                             type_labels[c->type])));

        d = heap_getattr(tup, attno + 1, desc, &isnull);
        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                {
                    double      x = 0;

                    if (!isnull && !DatumToDouble(d, vt, &x))
                        ReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
                    WriteNumber(c, isnull, x, out);
                }
                break;
            case FEAT_CATEGORY:
                if (isnull)
                    WriteCategory(c, -2, out);
                else
                {
                    int         len;
                    const char *s = DatumToCategory(d, vt, &len);

                    WriteCategory(c, FindValue(c, s, len), out);
                }
                break;
            case FEAT_VECTOR:
                if (isnull)
                    WriteVector(c, NULL, out);
                else
                {
                    ArrayType  *arr = DatumGetArrayTypeP(d);
                    int         len;
                    ValueProblem p = VectorShape(arr, &len);

                    if (p == VAL_OK && len != c->length)
                        p = VAL_LENGTH;
                    ReportValueProblem(p, c->name, "the features", "", c->length, len, NULL);
                    /* straight into the output slots */
                    p = VectorCopy(arr, vt, len, out + c->offset);
                    ReportValueProblem(p, c->name, "the features", "", 0, 0, NULL);
                    if ((Pointer) arr != DatumGetPointer(d))
                        pfree(arr);
                }
                break;
        }
    }
}

/* "age, country, ..." */
static char *
FeatureNames(const ItEncoder *e)
{
    StringInfoData buf;

    initStringInfo(&buf);
    for (int i = 0; i < e->ncolumns; i++)
    {
        if (i == 20 && e->ncolumns > 25)
        {
            appendStringInfo(&buf, " and %d more", e->ncolumns - i);
            break;
        }
        appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", e->columns[i].name);
    }
    return buf.data;
}

static const char *
JsonTypeName(const JsonbValue *v)
{
    switch (v->type)
    {
        case jbvNull:
            return "null";
        case jbvString:
            return "a string";
        case jbvNumeric:
            return "a number";
        case jbvBool:
            return "a boolean";
        case jbvBinary:
            return JsonContainerIsArray(v->val.binary.data) ? "an array" : "an object";
        default:
            return "a JSON value";
    }
}

static void
JsonWrongType(const EncColumn *c, const JsonbValue *v, const char *expected)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATATYPE_MISMATCH),
             errmsg("feature \"%s\" must be %s, not %s", c->name, expected, JsonTypeName(v)),
             errhint("The model was trained with a %s column \"%s\" of type %s; pass %s or null.",
                     kind_names[c->kind], c->name, type_labels[c->type], expected)));
}

/* A JSON number as a finite double. */
static double
JsonNumber(const EncColumn *c, const JsonbValue *v)
{
    double      x = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                                       NumericGetDatum(v->val.numeric)));

    if (!isfinite(x))
        ReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
    return x;
}

static void
EncodeJsonValue(const EncColumn *c, const JsonbValue *v, float *out)
{
    if (v->type == jbvNull)
    {
        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                WriteNumber(c, true, 0, out);
                break;
            case FEAT_CATEGORY:
                WriteCategory(c, -2, out);
                break;
            case FEAT_VECTOR:
                WriteVector(c, NULL, out);
                break;
        }
        return;
    }

    switch (c->kind)
    {
        case FEAT_NUMERIC:
            if (v->type != jbvNumeric)
                JsonWrongType(c, v, "a number");
            WriteNumber(c, false, JsonNumber(c, v), out);
            break;
        case FEAT_DATE:
            {
                char       *s;
                Datum       d;
                double      x;

                if (v->type != jbvString)
                    JsonWrongType(c, v, c->type == VT_DATE ? "a date string" : "a timestamp string");
                s = pnstrdup(v->val.string.val, v->val.string.len);
                if (c->type == VT_DATE)
                    d = DirectFunctionCall3(date_in, CStringGetDatum(s),
                                            ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
                else if (c->type == VT_TIMESTAMP)
                    d = DirectFunctionCall3(timestamp_in, CStringGetDatum(s),
                                            ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
                else
                    d = DirectFunctionCall3(timestamptz_in, CStringGetDatum(s),
                                            ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
                if (!DatumToDouble(d, c->type, &x))
                    ReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
                WriteNumber(c, false, x, out);
            }
            break;
        case FEAT_CATEGORY:
            if (c->type == VT_BOOL)
            {
                if (v->type != jbvBool)
                    JsonWrongType(c, v, "true or false");
                WriteCategory(c, v->val.boolean ? FindValue(c, "true", 4) : FindValue(c, "false", 5), out);
            }
            else
            {
                int         len;

                if (v->type != jbvString)
                    JsonWrongType(c, v, "a string");
                len = v->val.string.len;
                if (c->type == VT_BPCHAR)
                    while (len > 0 && v->val.string.val[len - 1] == ' ')
                        len--;
                WriteCategory(c, FindValue(c, v->val.string.val, len), out);
            }
            break;
        case FEAT_VECTOR:
            {
                JsonbContainer *arr;
                int         len;

                if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
                    JsonWrongType(c, v, psprintf("an array of %d numbers", c->length));
                arr = v->val.binary.data;
                len = JsonContainerSize(arr);
                if (len != c->length)
                    ereport(ERROR,
                            (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
                             errmsg("feature \"%s\" has %d values, expected %d", c->name, len, c->length),
                             errhint("The model was trained with vectors of %d values in column \"%s\"; "
                                     "pass one of that length, or null.", c->length, c->name)));
                for (int i = 0; i < len; i++)
                {
                    JsonbValue *el = getIthJsonbValueFromContainer(arr, i);

                    if (el == NULL || el->type != jbvNumeric)
                        ereport(ERROR,
                                (errcode(ERRCODE_DATATYPE_MISMATCH),
                                 errmsg("feature \"%s\" must be an array of numbers, but element %d is %s",
                                        c->name, i + 1, el ? JsonTypeName(el) : "missing"),
                                 errhint("Pass the vector as an array of %d numbers, or null.", c->length)));
                    out[c->offset + i] = (float) JsonNumber(c, el);
                    if (!isfinite(out[c->offset + i]))
                        ReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
                }
            }
            break;
    }
}

void
ItEncodeJsonb(const ItEncoder *e, Jsonb *obj, float *out)
{
    bool       *given;
    JsonbIterator *it;
    JsonbIteratorToken tok;
    JsonbValue  v;
    JsonbValue  null;

    if (!JB_ROOT_IS_OBJECT(obj))
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("features must be a jsonb object"),
                 errhint("Pass the features keyed by column name, for example '{\"age\": 31, \"country\": \"DE\"}'.")));

    memset(out, 0, sizeof(float) * e->dims);
    given = palloc0(sizeof(bool) * e->ncolumns);
    it = JsonbIteratorInit(&obj->root);
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
    {
        int         col;
        char       *key;
        int         keylen;

        if (tok != WJB_KEY)
            continue;
        key = v.val.string.val;
        keylen = v.val.string.len;
        tok = JsonbIteratorNext(&it, &v, true);
        Assert(tok == WJB_VALUE);

        col = FindColumn(e, key, keylen);
        if (col < 0)
        {
            /* the id of a features row may come along */
            if (keylen == (int) strlen(e->id_column) && memcmp(key, e->id_column, keylen) == 0)
                continue;
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("unknown feature \"%s\"", pnstrdup(key, keylen)),
                     errhint("The model knows the features %s.", FeatureNames(e))));
        }
        EncodeJsonValue(&e->columns[col], &v, out);
        given[col] = true;
    }

    /* a feature left out is missing */
    null.type = jbvNull;
    for (int i = 0; i < e->ncolumns; i++)
        if (!given[i])
            EncodeJsonValue(&e->columns[i], &null, out);
    pfree(given);
}

/* ------------------------------------------------------------------------
 * Storage with a model version (it_encoder)
 * ------------------------------------------------------------------------ */

static void
CheckSide(const char *side)
{
    if (strcmp(side, "user") != 0 && strcmp(side, "item") != 0)
        elog(ERROR, "feature encoder side must be \"user\" or \"item\", not \"%s\"", side);
}

void
ItEncoderStore(const char *model, int version, const char *side,
               Jsonb *spec, int dims, const float *params, int64 nparams,
               Jsonb *layout, Jsonb *metrics)
{
    Oid         argtypes[8] = {TEXTOID, INT4OID, TEXTOID, JSONBOID, INT4OID,
    FLOAT4ARRAYOID, JSONBOID, JSONBOID};
    Datum       values[8];
    char        nulls[8];
    int         ret;

    CheckSide(side);
    memset(nulls, ' ', sizeof(nulls));
    if (nparams < 0 || nparams > (int64) (MaxAllocSize / sizeof(float)) - 64)
        elog(ERROR, "feature model has too many parameters (" INT64_FORMAT ")", nparams);
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(side);
    values[3] = JsonbPGetDatum(spec);
    values[4] = Int32GetDatum(dims);
    if (params != NULL)
        values[5] = ItFloatArrayDatum(params, (int) nparams);
    else
    {
        values[5] = (Datum) 0;
        nulls[5] = 'n';
    }
    if (layout != NULL)
        values[6] = JsonbPGetDatum(layout);
    else
    {
        values[6] = (Datum) 0;
        nulls[6] = 'n';
    }
    if (metrics != NULL)
        values[7] = JsonbPGetDatum(metrics);
    else
        values[7] = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

    ret = SPI_execute_with_args(psprintf("INSERT INTO %s (model, version, side, spec, dims, params, layout, metrics) "
                                         "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                                         ItTable("it_encoder")),
                                8, argtypes, values, nulls, false, 0);
    if (ret != SPI_OK_INSERT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
}

bool
ItEncoderLoad(const char *model, int version, const char *side,
              MemoryContext mcxt, ItStoredEncoder *out)
{
    Oid         argtypes[3] = {TEXTOID, INT4OID, TEXTOID};
    Datum       values[3];
    HeapTuple   tup;
    TupleDesc   desc;
    bool        isnull;
    Datum       d;
    MemoryContext old;
    int         ret;

    CheckSide(side);
    memset(out, 0, sizeof(*out));
    values[0] = CStringGetTextDatum(model);
    values[1] = Int32GetDatum(version);
    values[2] = CStringGetTextDatum(side);
    ret = SPI_execute_with_args(psprintf("SELECT spec, dims, params, layout, metrics FROM %s "
                                         "WHERE model OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2 "
                                         "AND side OPERATOR(pg_catalog.=) $3",
                                         ItTable("it_encoder")),
                                3, argtypes, values, NULL, true, 1);
    if (ret != SPI_OK_SELECT)
        elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(ret));
    if (SPI_processed == 0)
        return false;
    tup = SPI_tuptable->vals[0];
    desc = SPI_tuptable->tupdesc;

    out->encoder = ItEncoderFromSpec(DatumGetJsonbP(SPI_getbinval(tup, desc, 1, &isnull)), mcxt);
    out->dims = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
    if (out->dims != out->encoder->dims)
        SpecCorrupt("Its dims do not match its spec.%s", NULL);

    old = MemoryContextSwitchTo(mcxt);
    d = SPI_getbinval(tup, desc, 3, &isnull);
    if (!isnull)
    {
        ArrayType  *arr = DatumGetArrayTypeP(d);
        int         n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));

        out->nparams = n;
        out->params = palloc(sizeof(float) * Max(n, 1));
        ItArrayToFloats(d, out->params, n, "stored feature model");
    }
    d = SPI_getbinval(tup, desc, 4, &isnull);
    if (!isnull)
        out->layout = DatumGetJsonbPCopy(d);
    d = SPI_getbinval(tup, desc, 5, &isnull);
    if (!isnull)
        out->metrics = DatumGetJsonbPCopy(d);
    MemoryContextSwitchTo(old);
    return true;
}

/* ------------------------------------------------------------------------
 * SQL: encoders fitted on the fly, to look at what a features source
 * encodes to
 * ------------------------------------------------------------------------ */

/* The encoder options of a helper call: only the encoder's own keys. */
static void
HelperOptions(Jsonb *options, ItEncoderOptions *o)
{
    if (options != NULL)
    {
        JsonbIterator *it;
        JsonbIteratorToken tok;
        JsonbValue  v;

        if (!JB_ROOT_IS_OBJECT(options))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("options must be a jsonb object"),
                     errhint("Write the options as an object, for example '{\"max_categories\": 16}'.")));
        it = JsonbIteratorInit(&options->root);
        while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        {
            if (tok != WJB_KEY)
                continue;
            if (!((v.val.string.len == 14 && memcmp(v.val.string.val, "max_categories", 14) == 0) ||
                  (v.val.string.len == 18 && memcmp(v.val.string.val, "min_category_count", 18) == 0)))
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("unknown option \"%s\"", pnstrdup(v.val.string.val, v.val.string.len)),
                         errhint("Valid options are: max_categories, min_category_count.")));
            tok = JsonbIteratorNext(&it, &v, true);
            if (v.type != jbvNumeric && v.type != jbvNull)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("encoder options must be integers"),
                         errhint("Write them as numbers, for example '{\"max_categories\": 16}'.")));
        }
    }
    ItEncoderOptionsFrom(options, o);
}

static char *
TextArg(FunctionCallInfo fcinfo, int n, const char *name)
{
    if (PG_ARGISNULL(n))
        ItNullArgument(name, psprintf("Give a value for %s.", name));
    return text_to_cstring(PG_GETARG_TEXT_PP(n));
}

/* Fits an encoder on a source; needs SPI_connect. */
static ItEncoded *
FitOnSource(const char *source, const char *id_column, const ItEncoderOptions *opts)
{
    ItSource    src;
    ItEncoderBuilder *b;
    uint64      n;
    ItEncoded  *enc;

    ItSourceOpen(&src, source, "features", NULL, NULL, 0, NULL, NULL);
    b = ItEncoderBegin(src.tupdesc, id_column, "features", opts);
    while ((n = ItSourceFetch(&src, 10000)) > 0)
        ItEncoderAddRows(b, src.batch, n);
    enc = ItEncoderFinish(b);
    ItSourceClose(&src);
    return enc;
}

PG_FUNCTION_INFO_V1(interest_transfer_encode_features);
Datum
interest_transfer_encode_features(PG_FUNCTION_ARGS)
{
    ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
    char       *source = TextArg(fcinfo, 0, "source");
    char       *id_column = TextArg(fcinfo, 1, "id_column");
    char       *apply_to = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
    ItEncoderOptions opts;
    ItEncoded  *enc;
    MemoryContext rowcxt;
    MemoryContext old;
    Datum       values[2];
    bool        nulls[2] = {false, false};

    HelperOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);
    InitMaterializedSRF(fcinfo, 0);
    rowcxt = AllocSetContextCreate(CurrentMemoryContext, "encoded row", ALLOCSET_SMALL_SIZES);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    enc = FitOnSource(source, id_column, &opts);

    if (apply_to == NULL)
    {
        for (int64 r = 0; r < enc->n; r++)
        {
            CHECK_FOR_INTERRUPTS();
            old = MemoryContextSwitchTo(rowcxt);
            values[0] = Int64GetDatum(enc->ids[r]);
            values[1] = ItFloatArrayDatum(enc->X + r * enc->dims, enc->dims);
            tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
            MemoryContextSwitchTo(old);
            MemoryContextReset(rowcxt);
        }
    }
    else
    {
        ItEncoder  *e = ItEncoderFromSpec(enc->spec, CurrentMemoryContext);
        float      *vec = palloc(sizeof(float) * e->dims);
        ItSource    src;
        int         idcol;
        uint64      n;

        ItSourceOpen(&src, apply_to, "features to encode", NULL, NULL, 0, NULL, NULL);
        idcol = ItSourceColumn(&src, id_column, IT_COLUMN_ID, true);
        while ((n = ItSourceFetch(&src, 1000)) > 0)
        {
            Oid         idtype = ItSourceColumnType(&src, idcol);

            CHECK_FOR_INTERRUPTS();
            for (uint64 i = 0; i < n; i++)
            {
                HeapTuple   tup = src.batch->vals[i];
                bool        isnull;
                Datum       id = heap_getattr(tup, idcol + 1, src.tupdesc, &isnull);

                old = MemoryContextSwitchTo(rowcxt);
                nulls[0] = isnull;
                values[0] = isnull ? (Datum) 0 :
                    Int64GetDatum(ItDatumGetId(&src, idcol, idtype, id, src.rows - n + i + 1));
                ItEncodeTuple(e, tup, src.tupdesc, vec);
                values[1] = ItFloatArrayDatum(vec, e->dims);
                tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
                MemoryContextSwitchTo(old);
                MemoryContextReset(rowcxt);
            }
        }
        ItSourceClose(&src);
    }

    SPI_finish();
    return (Datum) 0;
}

PG_FUNCTION_INFO_V1(interest_transfer_encode_features_json);
Datum
interest_transfer_encode_features_json(PG_FUNCTION_ARGS)
{
    char       *source = TextArg(fcinfo, 0, "source");
    char       *id_column = TextArg(fcinfo, 1, "id_column");
    Jsonb      *features;
    MemoryContext fncxt = CurrentMemoryContext;
    ItEncoderOptions opts;
    ItEncoded  *enc;
    ItEncoder  *e;
    float      *vec;

    if (PG_ARGISNULL(2))
        ItNullArgument("features", "Pass '{}' for a row whose features are all missing.");
    features = PG_GETARG_JSONB_P(2);
    HelperOptions(PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3), &opts);

    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    enc = FitOnSource(source, id_column, &opts);
    e = ItEncoderFromSpec(enc->spec, fncxt);
    SPI_finish();

    vec = palloc(sizeof(float) * e->dims);
    ItEncodeJsonb(e, features, vec);
    PG_RETURN_DATUM(ItFloatArrayDatum(vec, e->dims));
}

/*
 * features_types.c
 *    Feature encoding: the column types a feature may have and how their
 *    values are read (a number, a category's bytes, a vector's floats),
 *    with the errors for values that cannot be encoded.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "features_int.h"

/* Days from 1970-01-01 to 2000-01-01, the PostgreSQL epoch. */
#define UNIX_TO_PG_EPOCH_DAYS   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE)

const char *const it_feature_kind_names[] = {"numeric", "category", "date", "vector"};

/* The spec's name of each value type. */
const char *const it_feature_type_labels[VT_COUNT] = {
    "smallint", "integer", "bigint", "real", "double precision", "numeric",
    "text", "character", "boolean", "enum",
    "date", "timestamp", "timestamptz",
    "real[]", "double precision[]"
};

FeatureKind
ItFeatureKindOf(ValueType vt)
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
bool
ItFeatureClassifyType(Oid typid, ValueType *vt)
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
bool
ItFeatureDatumAsDouble(Datum d, ValueType vt, double *out)
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
const char *
ItFeatureDatumToCategory(Datum d, ValueType vt, int *len)
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

/* Checks an array value of a vector column; *len gets its length. */
ValueProblem
ItFeatureVectorShape(ArrayType *arr, int *len)
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
ValueProblem
ItFeatureVectorCopy(ArrayType *arr, ValueType vt, int len, float *out)
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
void
ItFeatureReportValueProblem(ValueProblem p, const char *col, const char *what,
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

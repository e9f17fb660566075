/*
 * features_apply.c
 *    Feature encoding: applying a fitted encoder to a row of any query
 *    (ItEncodeTuple, columns found by name) or to a jsonb object keyed by
 *    column name (ItEncodeJsonb).
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "features_int.h"

/* Index of a category value, or -1 when it is not one of c's values. */
int
ItFeatureFindValue(const EncColumn *c, const char *s, int len)
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
                               it_feature_kind_names[c->kind], c->name),
                     errhint("Put the column back into the features source, or train a new version of the model.")));
        if (!ItFeatureClassifyType(TupleDescAttr(desc, attno)->atttypid, &vt) || ItFeatureKindOf(vt) != c->kind)
            ereport(ERROR,
                    (errcode(ERRCODE_DATATYPE_MISMATCH),
                     errmsg("feature column \"%s\" has type %s", c->name,
                            format_type_be(TupleDescAttr(desc, attno)->atttypid)),
                     errdetail("The model was trained with a %s column of type %s.",
                               it_feature_kind_names[c->kind], it_feature_type_labels[c->type]),
                     errhint("Cast the column back to %s in the features source, or train a new version of the model.",
                             it_feature_type_labels[c->type])));

        d = heap_getattr(tup, attno + 1, desc, &isnull);
        switch (c->kind)
        {
            case FEAT_NUMERIC:
            case FEAT_DATE:
                {
                    double      x = 0;

                    if (!isnull && !ItFeatureDatumAsDouble(d, vt, &x))
                        ItFeatureReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
                    WriteNumber(c, isnull, x, out);
                }
                break;
            case FEAT_CATEGORY:
                if (isnull)
                    WriteCategory(c, -2, out);
                else
                {
                    int         len;
                    const char *s = ItFeatureDatumToCategory(d, vt, &len);

                    WriteCategory(c, ItFeatureFindValue(c, s, len), out);
                }
                break;
            case FEAT_VECTOR:
                if (isnull)
                    WriteVector(c, NULL, out);
                else
                {
                    ArrayType  *arr = DatumGetArrayTypeP(d);
                    int         len;
                    ValueProblem p = ItFeatureVectorShape(arr, &len);

                    if (p == VAL_OK && len != c->length)
                        p = VAL_LENGTH;
                    ItFeatureReportValueProblem(p, c->name, "the features", "", c->length, len, NULL);
                    /* straight into the output slots */
                    p = ItFeatureVectorCopy(arr, vt, len, out + c->offset);
                    ItFeatureReportValueProblem(p, c->name, "the features", "", 0, 0, NULL);
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
                     it_feature_kind_names[c->kind], c->name, it_feature_type_labels[c->type], expected)));
}

/* A JSON number as a finite double. */
static double
JsonNumber(const EncColumn *c, const JsonbValue *v)
{
    double      x = DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                                       NumericGetDatum(v->val.numeric)));

    if (!isfinite(x))
        ItFeatureReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
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
                if (!ItFeatureDatumAsDouble(d, c->type, &x))
                    ItFeatureReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
                WriteNumber(c, false, x, out);
            }
            break;
        case FEAT_CATEGORY:
            if (c->type == VT_BOOL)
            {
                if (v->type != jbvBool)
                    JsonWrongType(c, v, "true or false");
                WriteCategory(c, v->val.boolean ? ItFeatureFindValue(c, "true", 4) : ItFeatureFindValue(c, "false", 5), out);
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
                WriteCategory(c, ItFeatureFindValue(c, v->val.string.val, len), out);
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
                        ItFeatureReportValueProblem(VAL_NONFINITE, c->name, "the features", "", 0, 0, NULL);
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

/*
 * features_spec.c
 *    Feature encoding: the spec, the jsonb form of a fitted encoder that is
 *    stored with a model version, written from an encoder
 *    (ItFeatureSpecFromEncoder) and parsed and checked back into one
 *    (ItEncoderFromSpec), and the slot layout of a column both follow.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "features_int.h"

#define IT_ENCODER_FORMAT   1

/* Slots of a column from its shape; sets width, other and missing. */
void
ItFeatureLayoutColumn(EncColumn *c, bool has_missing)
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
Jsonb *
ItFeatureSpecFromEncoder(const ItEncoder *e)
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
                         it_feature_kind_names[c->kind], it_feature_type_labels[c->type], c->offset, c->width);
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
        if (strcmp(kind, it_feature_kind_names[c->kind]) == 0)
            break;
    if (c->kind > FEAT_VECTOR)
        SpecCorrupt("Unknown column kind \"%s\".", kind);
    type = SpecString(obj, "type");
    for (vt = 0; vt < VT_COUNT; vt++)
        if (strcmp(type, it_feature_type_labels[vt]) == 0)
            break;
    if (vt == VT_COUNT || ItFeatureKindOf((ValueType) vt) != c->kind)
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
    ItFeatureLayoutColumn(c, missing->type != jbvNull);
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

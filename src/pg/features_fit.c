/*
 * features_fit.c
 *    Feature encoding: fitting an encoder on the rows of a features source
 *    (ItEncoderBegin / ItEncoderAddTuple / ItEncoderAddRows /
 *    ItEncoderFinish), with the encoder options.  The builder keeps every
 *    row's values (category values in a per-column dictionary) until
 *    ItEncoderFinish takes each column's statistics in id order, writes the
 *    spec and encodes the rows with the encoder parsed back from it.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "features_int.h"
#include "options.h"
#include "common.h"
#include "spi_read.h"

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
ItEncoderOptionsFrom(const ItOptions *options, ItEncoderOptions *o)
{
    /* in range: ItReadOptions checked them against the options table */
    o->max_categories = (int) options->max_categories;
    o->min_category_count = (int) options->min_category_count;
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
        if (!ItFeatureClassifyType(att->atttypid, &vt))
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
        c->kind = ItFeatureKindOf(vt);
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
                else if (!ItFeatureDatumAsDouble(d, c->type, &c->num[row]))
                    ItFeatureReportValueProblem(VAL_NONFINITE, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
                break;
            case FEAT_CATEGORY:
                if (isnull)
                    c->code[row] = -1;
                else
                {
                    int         len;
                    const char *s = ItFeatureDatumToCategory(d, c->type, &len);
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
                    ValueProblem p = ItFeatureVectorShape(arr, &len);

                    if (p != VAL_OK)
                        ItFeatureReportValueProblem(p, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
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
                        ItFeatureReportValueProblem(VAL_LENGTH, c->name, b->what, RowWhere(b, id),
                                                    c->length, len,
                                                    psprintf("The first non-NULL value, %s, has %d values.",
                                                             RowWhere(b, c->length_id), c->length));
                    p = ItFeatureVectorCopy(arr, c->type, len, c->vec + row * c->length);
                    if (p != VAL_OK)
                        ItFeatureReportValueProblem(p, c->name, b->what, RowWhere(b, id), 0, 0, NULL);
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
        ItFeatureLayoutColumn(c, b->columns[i].nulls > 0);
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
    res->spec = ItFeatureSpecFromEncoder(&fitted);
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
                bc->entries[j].value = ItFeatureFindValue(&e->columns[i], bc->entries[j].str, bc->entries[j].len);
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

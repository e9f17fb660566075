/*
 * source_models.c
 *    The user vectors of other models, the input of the mapping that gives
 *    users known only there a prior in this model (option source_models;
 *    EMCDR, Man et al. 2017).  Each source model's deployed version is read
 *    as it is now and recorded (spec of the it_prior row 'source_models'),
 *    so a later retrain of a source changes nothing in this version: the
 *    priors of its users are computed when this model is trained and
 *    stored with it (transfer.c).
 *
 * With option source_user_map (a table, view or query with columns
 * user_id, this model's, and source_user_id, the sources'), a source
 * user's vector is that of the mapped user; without it the ids are the
 * same people.  Read with the caller's privileges, like every source of
 * train(); the factor tables themselves as their owner, after checking
 * that the caller may use each source model.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "cache.h"
#include "source_models.h"
#include "spi_read.h"
#include "store.h"

/* Rows fetched per batch. */
#define IT_SOURCE_CHUNK 8192

/* One source's users: ids ascending, vectors n * k. */
typedef struct SourceUsers
{
    int64       n;
    int64      *ids;
    float      *X;
} SourceUsers;

/* (this model's id, source row) of one source, then sorted by id */
typedef struct MappedRow
{
    int64       id;
    int64       row;
} MappedRow;

/* A source user id and the users of this model it maps to. */
typedef struct MapPair
{
    int64       source_id;
    int64       id;
} MapPair;

static int
CompareMapPairs(const void *a, const void *b)
{
    const MapPair *x = a;
    const MapPair *y = b;

    if (x->source_id != y->source_id)
        return x->source_id < y->source_id ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static int
CompareMappedRows(const void *a, const void *b)
{
    const MappedRow *x = a;
    const MappedRow *y = b;

    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static int
CompareInt64(const void *a, const void *b)
{
    int64       x = *(const int64 *) a;
    int64       y = *(const int64 *) b;

    return (x > y) - (x < y);
}

typedef struct SourceErrorContext
{
    const char *source;
    const char *model;
} SourceErrorContext;

static void
SourceErrorCallback(void *arg)
{
    SourceErrorContext *c = arg;

    errcontext("while reading source model \"%s\" (option source_models) for model \"%s\"",
               c->source, c->model);
}

/* The deployed users of source model name into *out; version and factors. */
static void
ReadSourceUsers(const char *model, const char *name, int *version, int *factors, SourceUsers *out)
{
    SourceErrorContext c = {name, model};
    ErrorContextCallback cb;
    ItModel    *m;
    ItRunAs     r;
    Portal      portal;
    int64       cap = 1024;
    int         k;

    cb.callback = SourceErrorCallback;
    cb.arg = &c;
    cb.previous = error_context_stack;
    error_context_stack = &cb;

    if (strcmp(name, model) == 0)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("model \"%s\" cannot be a source model of itself", model),
                 errhint("Name the models of the other domains or platforms in source_models.")));
    /* exists, is deployed, and the caller may use it (ERRORs with hints) */
    m = ItGetModel(name);
    *version = m->version;
    *factors = k = m->k;

    out->n = 0;
    out->ids = palloc(sizeof(int64) * cap);
    out->X = palloc(sizeof(float) * cap * k);
    ItRunAsTablesOwner(&r);
    portal = ItStoreUserFactorCursor(m->name, m->version);
    for (;;)
    {
        SPI_cursor_fetch(portal, true, IT_SOURCE_CHUNK);
        if (SPI_processed == 0)
            break;
        if (out->n + (int64) SPI_processed > cap)
        {
            while (out->n + (int64) SPI_processed > cap)
                cap *= 2;
            out->ids = memcpy(ItAllocArray(cap, sizeof(int64)), out->ids, sizeof(int64) * out->n);
            out->X = memcpy(ItAllocArray(cap * k, sizeof(float)), out->X, sizeof(float) * out->n * k);
        }
        for (uint64 i = 0; i < SPI_processed; i++)
        {
            bool        isnull;
            HeapTuple   tup = SPI_tuptable->vals[i];
            TupleDesc   desc = SPI_tuptable->tupdesc;

            out->ids[out->n] = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
            ItArrayToFloats(SPI_getbinval(tup, desc, 2, &isnull), out->X + out->n * k, k, "user factors");
            out->n++;
        }
        SPI_freetuptable(SPI_tuptable);
        CHECK_FOR_INTERRUPTS();
    }
    SPI_cursor_close(portal);
    ItRunAsEnd(&r);
    error_context_stack = cb.previous;
}

/* The map's (source_user_id, user_id) pairs, sorted by source id. */
static MapPair *
ReadMap(const char *model, const char *map, int64 *npairs)
{
    ItSource    src;
    int         uc;
    int         sc;
    Oid         ut;
    Oid         st;
    uint64      n;
    int64       cap = 1024;
    int64       np = 0;
    MapPair    *pairs = ItAllocArray(cap, sizeof(MapPair));

    ItSourceOpen(&src, map, "source_user_map", model, NULL, 0, NULL, NULL);
    uc = ItSourceColumn(&src, "user_id", IT_COLUMN_ID, true);
    sc = ItSourceColumn(&src, "source_user_id", IT_COLUMN_ID, true);
    ut = ItSourceColumnType(&src, uc);
    st = ItSourceColumnType(&src, sc);
    while ((n = ItSourceFetch(&src, IT_SOURCE_CHUNK)) > 0)
    {
        if (np + (int64) n > cap)
        {
            while (np + (int64) n > cap)
                cap *= 2;
            pairs = memcpy(ItAllocArray(cap, sizeof(MapPair)), pairs, sizeof(MapPair) * np);
        }
        for (uint64 i = 0; i < n; i++)
        {
            HeapTuple   tup = src.batch->vals[i];
            bool        unull;
            bool        snull;
            Datum       u = SPI_getbinval(tup, src.tupdesc, uc + 1, &unull);
            Datum       s = SPI_getbinval(tup, src.tupdesc, sc + 1, &snull);

            if (unull || snull)
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("source_user_map of model \"%s\" has a NULL %s", model,
                                unull ? "user_id" : "source_user_id"),
                         errhint("Leave out the rows of users without a counterpart, for example with WHERE source_user_id IS NOT NULL.")));
            pairs[np].id = ItDatumGetId(&src, uc, ut, u, src.rows - (int64) n + (int64) i + 1);
            pairs[np].source_id = ItDatumGetId(&src, sc, st, s, src.rows - (int64) n + (int64) i + 1);
            np++;
        }
        CHECK_FOR_INTERRUPTS();
    }
    ItSourceClose(&src);
    qsort(pairs, np, sizeof(MapPair), CompareMapPairs);
    *npairs = np;
    return pairs;
}

/* Binary search of id in ids[0..n); -1 when absent. */
static int64
FindId(const int64 *ids, int64 n, int64 id)
{
    int64       lo = 0;
    int64       hi = n;

    while (lo < hi)
    {
        int64       mid = lo + (hi - lo) / 2;

        if (ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ids[lo] == id ? lo : -1;
}

/*
 * The rows of source s by this model's ids: through the map, or the same
 * ids; sorted by id, with a user mapped to two source users refused.
 */
static MappedRow *
MapSource(const ItSourceModels *sm, int s, const SourceUsers *su, const MapPair *pairs, int64 npairs,
          const char *model, int64 *nrows)
{
    MappedRow  *rows;
    int64       n = 0;

    if (pairs == NULL)
    {
        rows = ItAllocArray(Max(su->n, 1), sizeof(MappedRow));
        for (int64 i = 0; i < su->n; i++)
        {
            rows[n].id = su->ids[i];
            rows[n].row = i;
            n++;
        }
        *nrows = n;
        return rows;
    }
    rows = ItAllocArray(Max(npairs, 1), sizeof(MappedRow));
    for (int64 p = 0; p < npairs; p++)
    {
        int64       r = FindId(su->ids, su->n, pairs[p].source_id);

        if (r < 0)
            continue;
        rows[n].id = pairs[p].id;
        rows[n].row = r;
        n++;
    }
    qsort(rows, n, sizeof(MappedRow), CompareMappedRows);
    for (int64 i = 1; i < n; i++)
        if (rows[i].id == rows[i - 1].id)
            ereport(ERROR,
                    (errcode(ERRCODE_CARDINALITY_VIOLATION),
                     errmsg("source_user_map of model \"%s\" maps user " INT64_FORMAT " to more than one user of source model \"%s\"",
                            model, rows[i].id, sm->names[s]),
                     errhint("Give each user at most one source_user_id per source model.")));
    *nrows = n;
    return rows;
}

/* The spec stored with the mapping: what was read. */
static Jsonb *
SourcesSpec(const ItSourceModels *sm, bool mapped, int dims)
{
    StringInfoData b;

    initStringInfo(&b);
    appendStringInfoString(&b, "{\"format\": 1, \"id_column\": \"user_id\", \"source_models\": [");
    for (int s = 0; s < sm->n; s++)
    {
        appendStringInfoString(&b, s > 0 ? ", {\"model\": " : "{\"model\": ");
        escape_json(&b, sm->names[s]);
        appendStringInfo(&b, ", \"version\": %d, \"factors\": %d, \"users\": " INT64_FORMAT "}",
                         sm->versions[s], sm->factors[s], sm->users[s]);
    }
    appendStringInfo(&b, "], \"source_user_map\": %s, \"dims\": %d, \"rows\": " INT64_FORMAT "}",
                     mapped ? "true" : "false", dims, sm->enc->n);
    return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
}

ItSourceModels *
ItReadSourceModels(const char *model, const ItOptions *options)
{
    ItSourceModels *sm;
    JsonbIterator *it;
    JsonbIteratorToken tok;
    JsonbValue  v;
    SourceUsers users[IT_MAX_SOURCE_MODELS];
    MappedRow  *mapped[IT_MAX_SOURCE_MODELS];
    int64       nmapped[IT_MAX_SOURCE_MODELS];
    MapPair    *pairs = NULL;
    int64       npairs = 0;
    int64       total = 0;
    int64      *ids;
    int64       n = 0;
    int         dims = 0;
    int         offset[IT_MAX_SOURCE_MODELS];
    ItEncoded  *enc;

    if (options->source_models == NULL)
        return NULL;
    sm = palloc0(sizeof(ItSourceModels));
    it = JsonbIteratorInit(&options->source_models->root);
    while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        if (tok == WJB_ELEM && v.type == jbvString && sm->n < IT_MAX_SOURCE_MODELS)
            sm->names[sm->n++] = pnstrdup(v.val.string.val, v.val.string.len);
    if (sm->n == 0)
        elog(ERROR, "option source_models names no model");

    for (int s = 0; s < sm->n; s++)
    {
        ReadSourceUsers(model, sm->names[s], &sm->versions[s], &sm->factors[s], &users[s]);
        sm->users[s] = users[s].n;
        offset[s] = dims;
        dims += sm->factors[s];
    }
    if (sm->n > 1)
        dims += sm->n;
    if (options->source_user_map != NULL)
        pairs = ReadMap(model, options->source_user_map, &npairs);

    for (int s = 0; s < sm->n; s++)
    {
        mapped[s] = MapSource(sm, s, &users[s], pairs, npairs, model, &nmapped[s]);
        total += nmapped[s];
    }

    /* this model's ids known to any source */
    ids = ItAllocArray(Max(total, 1), sizeof(int64));
    for (int s = 0; s < sm->n; s++)
        for (int64 i = 0; i < nmapped[s]; i++)
            ids[n++] = mapped[s][i].id;
    qsort(ids, n, sizeof(int64), CompareInt64);
    {
        int64       w = 0;

        for (int64 i = 0; i < n; i++)
            if (w == 0 || ids[i] != ids[w - 1])
                ids[w++] = ids[i];
        n = w;
    }

    enc = palloc0(sizeof(ItEncoded));
    enc->dims = dims;
    enc->n = n;
    enc->ids = ids;
    enc->X = ItAllocArray(Max(n, 1) * (int64) dims, sizeof(float));
    memset(enc->X, 0, sizeof(float) * Max(n, 1) * dims);
    sm->present = ItAllocArray(Max(n, 1), sizeof(uint8));
    memset(sm->present, 0, Max(n, 1));
    for (int s = 0; s < sm->n; s++)
    {
        int         k = sm->factors[s];
        double     *mean = palloc0(sizeof(double) * k);
        double     *sq = palloc0(sizeof(double) * k);
        int64       cnt = nmapped[s];

        /* standardised per coordinate over the users that have it */
        for (int64 i = 0; i < cnt; i++)
            for (int j = 0; j < k; j++)
            {
                double      x = users[s].X[mapped[s][i].row * k + j];

                mean[j] += x;
                sq[j] += x * x;
            }
        for (int j = 0; j < k; j++)
        {
            double      var;

            mean[j] = cnt > 0 ? mean[j] / cnt : 0.0;
            var = cnt > 0 ? sq[j] / cnt - mean[j] * mean[j] : 0.0;
            sq[j] = var > 1e-12 ? 1.0 / sqrt(var) : 0.0;
        }
        for (int64 i = 0; i < cnt; i++)
        {
            int64       r = FindId(ids, n, mapped[s][i].id);
            float      *dst = enc->X + r * dims + offset[s];
            const float *src = users[s].X + mapped[s][i].row * k;

            for (int j = 0; j < k; j++)
                dst[j] = (float) ((src[j] - mean[j]) * sq[j]);
            if (sm->n > 1)
                enc->X[r * dims + (dims - sm->n) + s] = 1.0f;
            sm->present[r] |= (uint8) (1 << s);
        }
        pfree(mean);
        pfree(sq);
        CHECK_FOR_INTERRUPTS();
    }
    sm->enc = enc;
    enc->spec = SourcesSpec(sm, pairs != NULL, dims);
    return sm;
}

char *
ItSourceModelsLabel(const ItSourceModels *sm, uint8 present)
{
    StringInfoData b;
    bool        first = true;

    initStringInfo(&b);
    appendStringInfoString(&b, "domain:");
    for (int s = 0; s < sm->n; s++)
    {
        if (!(present & (1 << s)))
            continue;
        appendStringInfo(&b, "%s%s", first ? "" : ",", sm->names[s]);
        first = false;
    }
    return b.data;
}

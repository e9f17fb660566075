/*
 * social.c
 *    The links between users (friends, followers: train's user_links, a
 *    table, view or query with columns user_id, linked_user_id and an
 *    optional weight) as the input of the social prior: a user's linked
 *    users' vectors, weighted, averaged, with the log of how many there
 *    are and, when the model has user features, the user's encoded
 *    features.  Self-links and links of weight 0 are left out, links to
 *    users the model has no vector for are ignored (NOTICEs count both);
 *    a user's heaviest IT_SOCIAL_MAX_LINKS links are used.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "social.h"
#include "spi_read.h"

#define IT_SOCIAL_CHUNK 8192

static int
CompareLinks(const void *a, const void *b)
{
    const ItLink *x = a;
    const ItLink *y = b;

    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return (x->linked_user_id > y->linked_user_id) - (x->linked_user_id < y->linked_user_id);
}

ItLinks *
ItReadLinks(const char *source, const char *model)
{
    ItLinks    *l = palloc0(sizeof(ItLinks));
    ItSource    src;
    int         uc;
    int         lc;
    int         wc;
    Oid         ut;
    Oid         lt;
    Oid         wt = InvalidOid;
    uint64      n;
    int64       cap = 4096;

    l->links = ItAllocArray(cap, sizeof(ItLink));
    ItSourceOpen(&src, source, "user_links", model, NULL, 0, NULL, NULL);
    uc = ItSourceColumn(&src, "user_id", IT_COLUMN_ID, true);
    lc = ItSourceColumn(&src, "linked_user_id", IT_COLUMN_ID, true);
    wc = ItSourceColumn(&src, "weight", IT_COLUMN_WEIGHT, false);
    ut = ItSourceColumnType(&src, uc);
    lt = ItSourceColumnType(&src, lc);
    if (wc >= 0)
        wt = ItSourceColumnType(&src, wc);
    while ((n = ItSourceFetch(&src, IT_SOCIAL_CHUNK)) > 0)
    {
        if (src.rows > IT_SOCIAL_MAX_ROWS)
            ereport(ERROR,
                    (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                     errmsg("user_links of model \"%s\" has more than " INT64_FORMAT " rows", model, IT_SOCIAL_MAX_ROWS),
                     errhint("Keep each user's strongest links, for example with a window function over weight.")));
        if (l->n + (int64) n > cap)
        {
            while (l->n + (int64) n > cap)
                cap *= 2;
            l->links = memcpy(ItAllocArray(cap, sizeof(ItLink)), l->links, sizeof(ItLink) * l->n);
        }
        for (uint64 i = 0; i < n; i++)
        {
            HeapTuple   tup = src.batch->vals[i];
            int64       row = src.rows - (int64) n + (int64) i + 1;
            bool        unull;
            bool        lnull;
            bool        wnull = false;
            Datum       u = SPI_getbinval(tup, src.tupdesc, uc + 1, &unull);
            Datum       v = SPI_getbinval(tup, src.tupdesc, lc + 1, &lnull);
            double      w = 1.0;
            ItLink     *k = &l->links[l->n];

            if (unull || lnull)
                ereport(ERROR,
                        (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                         errmsg("%s is NULL in row " INT64_FORMAT " of user_links", unull ? "user_id" : "linked_user_id", row),
                         errhint("Filter out the rows without both users, for example WHERE linked_user_id IS NOT NULL.")));
            if (wc >= 0)
            {
                Datum       wd = SPI_getbinval(tup, src.tupdesc, wc + 1, &wnull);

                if (wnull)
                    ereport(ERROR,
                            (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                             errmsg("weight is NULL in row " INT64_FORMAT " of user_links", row),
                             errhint("Give every link a weight, for example coalesce(weight, 1) AS weight.")));
                w = ItDatumGetWeight(wd, wt);
                if (!(w >= 0.0) || isinf(w))
                    ereport(ERROR,
                            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                             errmsg("weight in row " INT64_FORMAT " of user_links is %g", row, w),
                             errhint("Link weights count how strong a link is: use finite weights >= 0.")));
            }
            k->user_id = ItDatumGetId(&src, uc, ut, u, row);
            k->linked_user_id = ItDatumGetId(&src, lc, lt, v, row);
            k->weight = (float) Min(w, 1e30);
            if (k->user_id == k->linked_user_id)
                l->self_links++;
            else if (w == 0.0)
                l->zero_weight++;
            else
                l->n++;
        }
        CHECK_FOR_INTERRUPTS();
    }
    ItSourceClose(&src);
    qsort(l->links, l->n, sizeof(ItLink), CompareLinks);
    return l;
}

int
ItSocialInput(const ItLink *links, int64 n, int k, ItLinkedVector vector, void *arg,
              const float *feat, int fdims, float *out, float *scratch)
{
    double      wsum = 0.0;
    int         used = 0;
    double     *acc = palloc0(sizeof(double) * k);

    for (int64 i = 0; i < n && i < IT_SOCIAL_MAX_LINKS; i++)
    {
        if (!vector(arg, links[i].linked_user_id, scratch))
            continue;
        for (int j = 0; j < k; j++)
            acc[j] += (double) links[i].weight * scratch[j];
        wsum += links[i].weight;
        used++;
    }
    if (used > 0)
    {
        for (int j = 0; j < k; j++)
            out[j] = (float) (acc[j] / wsum);
        out[k] = (float) log1p((double) used);
        for (int j = 0; j < fdims; j++)
            out[k + 1 + j] = feat ? feat[j] : 0.0f;
    }
    pfree(acc);
    return used;
}

typedef struct TrainedVectors
{
    const int64 *ids;
    int64       n;
    const float *X;
    int         k;
    int64       unknown;
} TrainedVectors;

static bool
TrainedVector(void *arg, int64 user_id, float *x)
{
    TrainedVectors *tv = arg;
    int64       r = it_find_id(tv->ids, tv->n, user_id);

    if (r < 0)
    {
        tv->unknown++;
        return false;
    }
    memcpy(x, tv->X + r * tv->k, sizeof(float) * tv->k);
    return true;
}

ItEncoded *
ItSocialRows(const ItLinks *l, const int64 *user_ids, int64 nusers, const float *X, int k,
             const ItEncoded *features, int64 *unknown)
{
    TrainedVectors tv = {user_ids, nusers, X, k, 0};
    int         fdims = features ? features->dims : 0;
    ItEncoded  *enc = palloc0(sizeof(ItEncoded));
    int64       nusers_links = 0;
    float      *scratch = palloc(sizeof(float) * k);

    for (int64 i = 0; i < l->n; i++)
        if (i == 0 || l->links[i].user_id != l->links[i - 1].user_id)
            nusers_links++;
    enc->dims = k + 1 + fdims;
    enc->ids = ItAllocArray(Max(nusers_links, 1), sizeof(int64));
    enc->X = ItAllocArray(Max(nusers_links, 1) * (int64) enc->dims, sizeof(float));
    for (int64 i = 0; i < l->n;)
    {
        int64       j = i;
        const float *feat = NULL;
        int64       fr;

        while (j < l->n && l->links[j].user_id == l->links[i].user_id)
            j++;
        if (features != NULL && (fr = it_find_id(features->ids, features->n, l->links[i].user_id)) >= 0)
            feat = features->X + fr * fdims;
        if (ItSocialInput(l->links + i, j - i, k, TrainedVector, &tv, feat, fdims,
                          enc->X + enc->n * enc->dims, scratch) > 0)
            enc->ids[enc->n++] = l->links[i].user_id;
        i = j;
        if ((enc->n & 4095) == 0)
            CHECK_FOR_INTERRUPTS();
    }
    pfree(scratch);
    {
        StringInfoData b;

        initStringInfo(&b);
        appendStringInfo(&b, "{\"format\": 1, \"id_column\": \"user_id\", \"dims\": %d, \"factors\": %d, "
                         "\"feature_dims\": %d, \"max_links\": %d, \"rows\": " INT64_FORMAT "}",
                         enc->dims, k, fdims, IT_SOCIAL_MAX_LINKS, enc->n);
        enc->spec = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data)));
    }
    *unknown = tv.unknown;
    return enc;
}

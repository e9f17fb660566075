/*
 * provider_social.c
 *    The linked users' vectors -> interest (train's user_links): the prior
 *    of a user the version was not trained on, from their rows of the
 *    model's user_links source read when they are served (as the model's
 *    owner, like every stored source), the stored vectors of the users
 *    they link to, and their features when the social prior was trained
 *    with them (social.c, transfer.c).  Served alone it ranks with its
 *    popularity_blend ('social'); with rows of the user it is the prior
 *    they are folded in around.
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "provider.h"
#include "social.h"
#include "spi_read.h"
#include "store.h"

static void
SocialLoad(ItModel *m, ItTransfer *t)
{
    if (m->user_links_source != NULL)
    {
        (void) ItLoadSidePrior(m, "social", IT_PRIOR_SOCIAL, false, &t->social, t->cxt);
        if (t->social.stored && t->social.dims < m->k + 1)
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("stored social model of model \"%s\" version %d has %d inputs, fewer than its factors",
                            m->name, m->version, t->social.dims),
                     errhint("Train a new version with train('%s').", m->name)));
    }
}

static bool
SocialUsable(const ItModel *m, const ItTransfer *t)
{
    return t->social.use_features;
}

static double
SocialMeasuredWeight(ItModel *m, ItTransfer *t, float *blend)
{
    *blend = t->social.fold_in_blend;
    return t->social.fold_in_weight;
}

static double
SocialVariance(ItModel *m, ItTransfer *t)
{
    return t->social.prior_variance;
}

static int
CompareLinks(const void *a, const void *b)
{
    const ItLink *x = a;
    const ItLink *y = b;

    if (x->weight != y->weight)
        return x->weight > y->weight ? -1 : 1;
    return (x->linked_user_id > y->linked_user_id) - (x->linked_user_id < y->linked_user_id);
}

/* The user's links (self-links and weight 0 left out), heaviest first. */
static ItLink *
ReadUserLinks(ItModel *m, ItTransfer *t, int64 user_id, int64 *nout)
{
    ItServeContext sc;
    SPITupleTable *tt;
    int         lc;
    int         wc;
    ItLink     *links;
    int64       n = 0;

    ItServeContextPush(&sc, m, "user_links", true, user_id);
    ItRunIdPlan(&sc, &t->user_links, m->user_links_source, "user_id", user_id, 0);
    tt = SPI_tuptable;
    lc = SPI_fnumber(tt->tupdesc, "linked_user_id");
    wc = SPI_fnumber(tt->tupdesc, "weight");
    if (lc <= 0)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_COLUMN),
                 errmsg("user_links of model \"%s\" has no column linked_user_id", m->name),
                 errhint("Restore the column in the model's user_links source, or retrain the model.")));
    links = ItAllocArray(Max((int64) SPI_processed, 1), sizeof(ItLink));
    for (uint64 r = 0; r < SPI_processed; r++)
    {
        bool        isnull;
        Datum       v = SPI_getbinval(tt->vals[r], tt->tupdesc, lc, &isnull);
        int64       id;
        double      w = 1.0;

        if (isnull || !ItIdDatumToInt64(v, SPI_gettypeid(tt->tupdesc, lc), &id))
            ereport(ERROR,
                    (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
                     errmsg("linked_user_id of user " INT64_FORMAT " in user_links is NULL or not an id", user_id),
                     errhint("Filter out the rows without a linked user, as for training.")));
        if (wc > 0)
        {
            Datum       wd = SPI_getbinval(tt->vals[r], tt->tupdesc, wc, &isnull);

            w = isnull ? -1.0 : ItDatumGetWeight(wd, getBaseType(SPI_gettypeid(tt->tupdesc, wc)));
            if (!(w >= 0.0) || isinf(w))
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("weight of a link of user " INT64_FORMAT " in user_links is NULL, negative or not finite",
                                user_id),
                         errhint("Link weights count how strong a link is: use finite weights >= 0.")));
        }
        if (id == user_id || w == 0.0)
            continue;
        links[n].user_id = user_id;
        links[n].linked_user_id = id;
        links[n].weight = (float) Min(w, 1e30);
        n++;
    }
    ItServeContextPop(&sc);
    SPI_freetuptable(tt);
    qsort(links, n, sizeof(ItLink), CompareLinks);
    *nout = n;
    return links;
}

/* The linked users' stored vectors, read in one query: ids ascending. */
typedef struct LinkedVectors
{
    int         n;
    int         k;
    int64      *ids;
    float      *X;
} LinkedVectors;

static int
CompareInt64(const void *a, const void *b)
{
    int64       x = *(const int64 *) a;
    int64       y = *(const int64 *) b;

    return (x > y) - (x < y);
}

static void
ReadLinkedVectors(ItModel *m, const ItLink *links, int64 n, LinkedVectors *lv)
{
    int         want = (int) Min(n, (int64) IT_SOCIAL_MAX_LINKS);
    int64      *ids = palloc(sizeof(int64) * Max(want, 1));
    ItRunAs     r;

    for (int i = 0; i < want; i++)
        ids[i] = links[i].linked_user_id;
    lv->k = m->k;
    lv->n = 0;
    lv->ids = palloc(sizeof(int64) * Max(want, 1));
    lv->X = palloc(sizeof(float) * Max(want, 1) * m->k);
    ItRunAsTablesOwner(&r);
    ItStoreUserVectors(m->name, m->version, ids, want);
    for (uint64 i = 0; i < SPI_processed && lv->n < want; i++)
    {
        bool        isnull;

        lv->ids[lv->n] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
        ItArrayToFloats(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull),
                        lv->X + (size_t) lv->n * m->k, m->k, "user factors");
        lv->n++;
    }
    SPI_freetuptable(SPI_tuptable);
    ItRunAsEnd(&r);
    /* sort the rows by id, carrying their vectors */
    {
        int64      *order = palloc(sizeof(int64) * Max(lv->n, 1));
        float      *X = palloc(sizeof(float) * Max(lv->n, 1) * m->k);

        memcpy(order, lv->ids, sizeof(int64) * lv->n);
        qsort(order, lv->n, sizeof(int64), CompareInt64);
        for (int i = 0; i < lv->n; i++)
            for (int j = 0; j < lv->n; j++)
                if (lv->ids[j] == order[i])
                {
                    memcpy(X + (size_t) i * m->k, lv->X + (size_t) j * m->k, sizeof(float) * m->k);
                    break;
                }
        pfree(lv->ids);
        pfree(lv->X);
        lv->ids = order;
        lv->X = X;
    }
    pfree(ids);
}

/* The stored global vector of a linked user (ItLinkedVector). */
static bool
StoredVector(void *arg, int64 user_id, float *x)
{
    LinkedVectors *lv = arg;
    int64       r = it_find_id(lv->ids, lv->n, user_id);

    if (r < 0)
        return false;
    memcpy(x, lv->X + (size_t) r * lv->k, sizeof(float) * lv->k);
    return true;
}

static bool
SocialPrior(const ItInterestRequest *req, ItPrior *out)
{
    ItModel    *m = req->m;
    ItTransfer *t = req->t;
    ItLink     *links;
    int64       n;
    int         fdims;
    float      *input;
    float      *feat = NULL;
    float      *scratch;
    int         used;
    LinkedVectors lv;

    if (!req->has_user || t == NULL || !t->social.use_features || m->user_links_source == NULL)
        return false;
    links = ReadUserLinks(m, t, req->user_id, &n);
    if (n == 0)
    {
        pfree(links);
        return false;
    }
    fdims = t->social.dims - m->k - 1;
    if (fdims > 0)
    {
        if (!t->user.stored || t->user.dims != fdims)
            ereport(ERROR,
                    (errcode(ERRCODE_DATA_CORRUPTED),
                     errmsg("the social model of model \"%s\" version %d takes %d feature inputs, the user features %d",
                            m->name, m->version, fdims, t->user.stored ? t->user.dims : 0),
                     errhint("Train a new version with train('%s').", m->name)));
        feat = palloc(sizeof(float) * fdims);
        if (!ItEncodeUserFeatures(m, t, req->user_id, feat))
        {
            pfree(feat);
            feat = NULL;        /* as at training: zeros */
        }
    }
    ReadLinkedVectors(m, links, n, &lv);
    input = palloc(sizeof(float) * t->social.dims);
    scratch = palloc(sizeof(float) * m->k);
    used = ItSocialInput(links, n, m->k, StoredVector, &lv, feat, fdims, input, scratch);
    if (used > 0)
    {
        ItSideForward(&t->social, input, 1, out->x);
        out->pop_blend = t->social.pop_blend;
    }
    pfree(links);
    pfree(input);
    pfree(scratch);
    if (feat)
        pfree(feat);
    return used > 0;
}

const ItProvider ItProviderSocial = {
    .name = "social",
    .source = IT_SOURCE_SOCIAL,
    .fitted = false,
    .load = SocialLoad,
    .usable = SocialUsable,
    .measured_weight = SocialMeasuredWeight,
    .variance = SocialVariance,
    .prior = SocialPrior,
};

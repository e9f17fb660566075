/*
 * cross_domain.c
 *    The ranking of a domain's items for a user whose interactions are all
 *    in other domains.  The shared vector ("vector") is what joint
 *    training gives; the co-buyers ("neighbours") rank the domain's items
 *    by the users who share the user's items, each counting as many times
 *    as items they share (it_cobuyer_scores), popularity / max popularity
 *    added to break ties.  On Amazon electronics and cell phones (users
 *    held out of one domain, tests/bench/amazon_cross.sh) the co-buyers
 *    served 1.29x and 1.23x the precision@10 of the classic joint
 *    factorisation, where the vector served 1.04x and 1.10x; on the
 *    generated two-domain data of the tests, whose users have one hidden
 *    taste, the two tie.  So the choice is made per domain when training
 *    ("auto", the default; Simulate): a share of the users active in
 *    several domains is held out of one of them, the model is fitted again
 *    without those rows, and the held-out users' vectors and co-buyers
 *    rank the domain's items against their hidden positives; co-buyers are
 *    chosen when they win by IT_CROSS_MIN_Z standard errors of the paired
 *    difference of precision@10 on at least IT_CROSS_MIN_USERS users.
 *    Cheaper stand-ins for the second fit (a fold-in against the trained
 *    items, or one item half-step without the held-out rows) rated the
 *    vector at 0.22 and 0.15 on cell phones where it serves 0.10: on
 *    sparse data an item's vector carries the users who took it.
 *
 * Serving builds the trained users' items (it_user_factors.seen) as a
 * sparse matrix on first use, once per backend and version.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "cross_domain.h"
#include "foldin_choice.h"
#include "rankgrid.h"
#include "store.h"

/* The check: precision at this k. */
#define IT_CROSS_K          10
/* Users held out of a domain at most, and their work (users x items x factors). */
#define IT_CROSS_MAX_USERS  2000
#define IT_CROSS_WORK       4.0e9
/* Fewer users of a domain than this: its cross-domain users keep the vector. */
#define IT_CROSS_MIN_USERS  30
/* Standard errors by which the co-buyers must win. */
#define IT_CROSS_MIN_Z      2.0

typedef struct CrossStats
{
    int64       n;
    int32      *hits_vec;       /* per simulated user */
    int32      *hits_nb;
} CrossStats;

typedef struct HashedUser
{
    uint64      h;
    int64       u;
} HashedUser;

static int
CompareHashedUsers(const void *a, const void *b)
{
    const HashedUser *x = a;
    const HashedUser *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->u > y->u) - (x->u < y->u);
}

static bool
InSortedInt32(const int32 *a, int n, int32 v)
{
    int         lo = 0;
    int         hi = n;

    while (lo < hi)
    {
        int         mid = lo + (hi - lo) / 2;

        if (a[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && a[lo] == v;
}

/* What the option asks for domain name: "vector", "neighbours" or "auto". */
static const char *
AskedFor(Jsonb *r, const char *name)
{
    JsonbValue  buf;
    JsonbValue *v = NULL;

    if (r == NULL)
        return "auto";
    if (JB_ROOT_IS_OBJECT(r))
        v = getKeyJsonValueFromContainer(&r->root, name, strlen(name), &buf);
    else if (JsonbExtractScalar(&r->root, &buf))
        v = &buf;
    if (v == NULL || v->type != jbvString)
        return "auto";
    return pnstrdup(v->val.string.val, v->val.string.len);
}

/* The domains of a user's rows, as a bit set (at most 64 domains counted). */
static uint64
UserDomains(const ItInteractionMatrix *d, int64 u, int *count)
{
    uint64      mask = 0;

    *count = 0;
    for (int64 p = d->R.indptr[u]; p < d->R.indptr[u + 1]; p++)
    {
        int         dom = d->item_domain[d->R.indices[p]];

        if (dom < 64 && !(mask & (UINT64CONST(1) << dom)))
        {
            mask |= UINT64CONST(1) << dom;
            (*count)++;
        }
    }
    return mask;
}

/* Rows of an item half-step between interrupt checks. */
/*
 * Simulates the held-out users of every domain into stats[n_domains].
 * The users chosen (a prior_validation share of those active in several
 * domains, in the order of a seeded hash, at most IT_CROSS_MAX_USERS and
 * what IT_CROSS_WORK allows) each lose their rows of one of their domains,
 * as the users served across domains have none; the model is fitted again
 * (fit) on the interactions without those rows, with the training's
 * options; each held-out user's vector from that fit and their co-buyers
 * on those interactions (popularity counted on them too) rank the
 * domain's items.
 */
static void
Simulate(const ItInteractionMatrix *d, const ItOptions *o, ItCrossDomainFit fit,
         const bool *wanted, CrossStats *stats)
{
    int         k = (int) o->factors;
    float       thr = (float) o->positive_threshold;
    HashedUser *order = ItAllocArray(Max(d->nusers, 1), sizeof(HashedUser));
    int64       n = 0;
    int64       users;
    uint64      salt = it_mix64((uint64) o->seed ^ UINT64CONST(0x63726f7373));
    int        *held = ItAllocArray(Max(d->nusers, 1), sizeof(int));   /* the domain a user is held out of, or -1 */
    float      *YtY = palloc(sizeof(float) * k * k);
    float      *vec = ItAllocArray(Max(d->nitems, 1), sizeof(float));
    float      *nb = ItAllocArray(Max(d->nitems, 1), sizeof(float));
    float      *pop = ItAllocArray(Max(d->nitems, 1), sizeof(float));
    int32      *counts = memset(ItAllocArray(Max(d->nusers, 1), sizeof(int32)), 0,
                                sizeof(int32) * Max(d->nusers, 1));
    int64      *touched = ItAllocArray(Max(d->nusers, 1), sizeof(int64));
    float      *Xs = ItAllocFactorArray(Max(d->nusers, 1) * (int64) k, sizeof(float));
    float      *Ys = ItAllocFactorArray(Max(d->nitems, 1) * (int64) k, sizeof(float));
    ItCsr       R;
    ItCsr       Rt;
    int32       top[IT_CROSS_K];
    float       topscore[IT_CROSS_K];
    int64       maxpop = 0;
    int64       nnz = 0;

    for (int64 u = 0; u < d->nusers; u++)
    {
        int         nd;

        if ((u & 4095) == 0)
            CHECK_FOR_INTERRUPTS();
        held[u] = -1;
        (void) UserDomains(d, u, &nd);
        if (nd < 2)
            continue;
        order[n].h = it_mix64((uint64) d->user_ids[u] ^ salt);
        order[n].u = u;
        n++;
    }
    qsort(order, n, sizeof(HashedUser), CompareHashedUsers);
    /* a share of them (prior_validation), as the users served across domains are a few */
    users = (int64) ceil((double) n * o->prior_validation);
    users = Min(users, IT_CROSS_MAX_USERS);
    users = Min(users, Max((int64) (IT_CROSS_WORK / Max(1.0, (double) d->nitems * (k + 4))),
                           (int64) IT_CROSS_MIN_USERS * d->n_domains));
    for (int64 s = 0; s < users; s++)
    {
        int         nd;
        uint64      mask = UserDomains(d, order[s].u, &nd);
        int         pick = (int) (it_mix64(order[s].h) % (uint64) nd);

        for (int b = 0; b < 64; b++)
            if ((mask & (UINT64CONST(1) << b)) && pick-- == 0)
            {
                if (wanted[b])
                    held[order[s].u] = b;
                break;
            }
    }

    {
        bool        none = true;

        for (int64 s = 0; s < users && none; s++)
            none = held[order[s].u] < 0;
        if (none)
        {
            for (int dom = 0; dom < d->n_domains; dom++)
                stats[dom].n = 0;
            return;
        }
    }

    /* the interactions without the held-out rows */
    R.nrows = d->nusers;
    R.ncols = d->nitems;
    R.indptr = ItAllocArray(d->nusers + 1, sizeof(int64));
    R.indices = ItAllocArray(Max(d->R.nnz, 1), sizeof(int32));
    R.data = ItAllocArray(Max(d->R.nnz, 1), sizeof(float));
    R.indptr[0] = 0;
    for (int64 u = 0; u < d->nusers; u++)
    {
        int64       lo = held[u] >= 0 ? d->domain_start[held[u]] : 0;
        int64       hi = held[u] >= 0 ? d->domain_start[held[u] + 1] : 0;

        if ((u & 4095) == 0)
            CHECK_FOR_INTERRUPTS();

        for (int64 q = d->R.indptr[u]; q < d->R.indptr[u + 1]; q++)
            if (d->R.indices[q] < lo || d->R.indices[q] >= hi)
            {
                R.indices[nnz] = d->R.indices[q];
                R.data[nnz] = d->R.data[q];
                nnz++;
            }
        R.indptr[u + 1] = nnz;
    }
    R.nnz = nnz;
    Rt.indptr = ItAllocArray(d->nitems + 1, sizeof(int64));
    Rt.indices = ItAllocArray(Max(nnz, 1), sizeof(int32));
    Rt.data = ItAllocArray(Max(nnz, 1), sizeof(float));
    it_csr_transpose(&R, &Rt);
    CHECK_FOR_INTERRUPTS();

    /* the model fitted again without them, as the users it will serve have no rows there */
    {
        ItInteractionMatrix dd = *d;

        dd.R = R;
        dd.Rt = Rt;
        fit(&dd, o, Xs, Ys);
    }
    it_gram(Ys, d->nitems, k, YtY);

    for (int dom = 0; dom < d->n_domains; dom++)
    {
        stats[dom].n = 0;
        stats[dom].hits_vec = palloc(sizeof(int32) * Max(users, 1));
        stats[dom].hits_nb = palloc(sizeof(int32) * Max(users, 1));
    }
    /* popularity as serving scores it, counted without the held-out rows */
    {
        int64      *counted = ItAllocArray(Max(d->nitems, 1), sizeof(int64));

        it_csr_row_positives(&Rt, thr, counted);
        for (int64 i = 0; i < d->nitems; i++)
            maxpop = Max(maxpop, counted[i]);
        for (int64 i = 0; i < d->nitems; i++)
            pop[i] = maxpop > 0 ? (float) ((double) counted[i] / (double) maxpop) : 0.0f;
        pfree(counted);
    }

    for (int64 s = 0; s < users; s++)
    {
        int64       u = order[s].u;
        int         dom = held[u];
        int64       lo;
        int64       hi;
        int32      *hidden;
        int         nh = 0;
        int         ni = (int) (R.indptr[u + 1] - R.indptr[u]);
        const int32 *items = R.indices + R.indptr[u];
        int         got;

        CHECK_FOR_INTERRUPTS();
        if (dom < 0)
            continue;
        lo = d->domain_start[dom];
        hi = d->domain_start[dom + 1];
        hidden = ItAllocArray(Max(d->R.indptr[u + 1] - d->R.indptr[u], 1), sizeof(int32));
        for (int64 q = d->R.indptr[u]; q < d->R.indptr[u + 1]; q++)
        {
            int32       it = d->R.indices[q];

            if (it >= lo && it < hi && (thr <= 0.0f || d->R.data[q] >= thr))
                hidden[nh++] = it;
        }
        if (nh > 0 && ni > 0)
        {
            CrossStats *st = &stats[dom];
            int         hv = 0;
            int         hn = 0;

            it_score_all(Ys + lo * k, hi - lo, k, Xs + u * k, vec);
            got = it_topk(vec, hi - lo, NULL, 0, IT_CROSS_K, top, topscore);
            for (int j = 0; j < got; j++)
                hv += InSortedInt32(hidden, nh, top[j] + (int32) lo);
            memcpy(nb, pop + lo, sizeof(float) * (hi - lo));
            (void) it_cobuyer_scores(&R, &Rt, items, ni, u, lo, hi, counts, touched, nb);
            got = it_topk(nb, hi - lo, NULL, 0, IT_CROSS_K, top, topscore);
            for (int j = 0; j < got; j++)
                hn += InSortedInt32(hidden, nh, top[j] + (int32) lo);
            st->hits_vec[st->n] = hv;
            st->hits_nb[st->n] = hn;
            st->n++;
        }
        pfree(hidden);
    }
    pfree(order);
    pfree(held);
    pfree(YtY);
    pfree(vec);
    pfree(nb);
    pfree(pop);
    pfree(counts);
    pfree(touched);
    pfree(Xs);
    pfree(Ys);
    pfree(R.indptr);
    pfree(R.indices);
    pfree(R.data);
    pfree(Rt.indptr);
    pfree(Rt.indices);
    pfree(Rt.data);
}

char *
ItCrossDomainRanking(const ItInteractionMatrix *d, const ItOptions *o, ItCrossDomainFit fit,
                     Jsonb **options, const char *model, bool stored)
{
    Jsonb      *r = o->cross_domain_ranking;
    const char **choice;
    bool       *wanted;
    bool        any = false;
    bool        given = r != NULL && JB_ROOT_IS_OBJECT(r);
    CrossStats *stats;
    StringInfoData value;
    StringInfoData detail;

    if (d->n_domains == 0)
    {
        if (r != NULL && (JB_ROOT_IS_OBJECT(r) || strcmp(AskedFor(r, ""), "auto") != 0))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"cross_domain_ranking\" ranks domains, but the interactions of model \"%s\" have no domain column",
                            model),
                     errhint("Add a text column named domain to the interactions, or leave the option out.")));
        return NULL;
    }
    if (given)
    {
        JsonbIterator *it = JsonbIteratorInit(&r->root);
        JsonbIteratorToken tok;
        JsonbValue  v;

        while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        {
            char       *name;
            bool        found = false;

            if (tok != WJB_KEY)
                continue;
            name = pnstrdup(v.val.string.val, v.val.string.len);
            for (int i = 0; i < d->n_domains; i++)
                found |= strcmp(d->domains[i], name) == 0;
            /* a stored definition names the domains of its day: one gone since is no error */
            if (!found && !stored)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("option \"cross_domain_ranking\" names domain \"%s\", which the interactions of model \"%s\" do not have",
                                name, model),
                         errhint("Name the domains of the domain column, or give one word for all.")));
        }
    }

    choice = palloc(sizeof(char *) * d->n_domains);
    wanted = palloc0(sizeof(bool) * d->n_domains);
    stats = palloc0(sizeof(CrossStats) * d->n_domains);
    for (int i = 0; i < d->n_domains; i++)
    {
        choice[i] = AskedFor(r, d->domains[i]);
        wanted[i] = strcmp(choice[i], "auto") == 0;
        any |= wanted[i];
    }
    if (any)
        Simulate(d, o, fit, wanted, stats);

    initStringInfo(&value);
    initStringInfo(&detail);
    appendStringInfoChar(&value, '{');
    appendStringInfoChar(&detail, '{');
    for (int i = 0; i < d->n_domains; i++)
    {
        if (wanted[i])
        {
            CrossStats *st = &stats[i];
            double      mean = 0.0;
            double      z = 0.0;
            double      pv = 0.0;
            double      pn = 0.0;

            if (st->n > 0)
            {
                double     *a = palloc(sizeof(double) * st->n);
                double     *b = palloc(sizeof(double) * st->n);

                for (int64 j = 0; j < st->n; j++)
                {
                    a[j] = st->hits_nb[j] / (double) IT_CROSS_K;
                    b[j] = st->hits_vec[j] / (double) IT_CROSS_K;
                    pn += a[j];
                    pv += b[j];
                }
                it_mean_difference(a, b, st->n, &mean, &z);
                pn /= st->n;
                pv /= st->n;
            }
            choice[i] = st->n >= IT_CROSS_MIN_USERS && mean > 0.0 && z >= IT_CROSS_MIN_Z ?
                "neighbours" : "vector";
            if (detail.len > 1)
                appendStringInfoString(&detail, ", ");
            escape_json(&detail, d->domains[i]);
            appendStringInfo(&detail, ": {\"users\": " INT64_FORMAT ", \"precision_vector\": %.6g, "
                             "\"precision_neighbours\": %.6g, \"z\": %.4g}",
                             st->n, pv, pn, z);
            ereport(NOTICE,
                    (errmsg("domain \"%s\" of model \"%s\": users new to it are ranked by %s "
                            "(precision@%d on " INT64_FORMAT " users held out of it: co-buyers %.3f, shared vector %.3f)",
                            d->domains[i], model,
                            strcmp(choice[i], "neighbours") == 0 ? "their co-buyers" : "their shared vector",
                            IT_CROSS_K, st->n, pn, pv)));
        }
        if (i > 0)
            appendStringInfoString(&value, ", ");
        escape_json(&value, d->domains[i]);
        appendStringInfoString(&value, ": ");
        escape_json(&value, choice[i]);
    }
    appendStringInfoChar(&value, '}');
    appendStringInfoChar(&detail, '}');

    *options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*options),
                                                  DirectFunctionCall1(jsonb_in,
                                                                      CStringGetDatum(psprintf("{\"cross_domain_ranking\": %s}", value.data)))));
    return psprintf("\"cross_domain_ranking\": {\"rule\": \"%s\", \"value\": %s, \"simulated\": %s}",
                    any && !given ? "auto" : "given", value.data, detail.data);
}

/* ------------------------------------------------------------------------
 * Serving
 * ------------------------------------------------------------------------ */

typedef struct Cobuyers
{
    int64       nusers;
    int64      *user_ids;       /* ascending */
    ItCsr       R;              /* users x items (structure only) */
    ItCsr       Rt;
    int32      *counts;         /* nusers zeros */
    int64      *touched;        /* nusers */
} Cobuyers;

bool
ItCrossDomainByNeighbours(const ItModel *m, const ItInterest *in, int d)
{
    if (d < 0 || m->domain_neighbours == NULL || !m->domain_neighbours[d] || in->nseen == 0)
        return false;
    for (int i = 0; i < in->nseen; i++)
        if (in->seen[i] >= m->domain_start[d] && in->seen[i] < m->domain_start[d + 1])
            return false;
    return true;
}

/* The trained users' items, from their stored rows (inside SPI_connect). */
static Cobuyers *
LoadCobuyers(ItModel *m)
{
    /* built in a context of its own, moved under the model's once complete */
    MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer co-buyers",
                                              ALLOCSET_DEFAULT_SIZES);
    MemoryContext batch = AllocSetContextCreate(CurrentMemoryContext, "interest_transfer co-buyers batch",
                                                ALLOCSET_DEFAULT_SIZES);
    MemoryContext old = MemoryContextSwitchTo(cxt);
    Cobuyers   *c = palloc0(sizeof(Cobuyers));
    int64       cap = 1024;
    int64       ecap = 8192;
    int64       nnz = 0;
    int32      *rows;
    int32      *cols;
    float      *vals;
    int64      *work;
    Portal      portal;
    ItRunAs     r;

    c->user_ids = palloc(sizeof(int64) * cap);
    rows = palloc(sizeof(int32) * ecap);
    cols = palloc(sizeof(int32) * ecap);
    MemoryContextSwitchTo(old);

    ItRunAsTablesOwner(&r);
    portal = ItStoreUserCursor(m->name, m->version, true);
    for (;;)
    {
        SPI_cursor_fetch(portal, true, 4096);
        if (SPI_processed == 0)
            break;
        /* the detoasted arrays of a batch */
        MemoryContextSwitchTo(batch);
        for (uint64 i = 0; i < SPI_processed; i++)
        {
            HeapTuple   tup = SPI_tuptable->vals[i];
            TupleDesc   desc = SPI_tuptable->tupdesc;
            bool        isnull;
            int64       user_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
            ArrayType  *seen = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull));
            int         n = ArrayGetNItems(ARR_NDIM(seen), ARR_DIMS(seen));
            const int64 *ids = (const int64 *) ARR_DATA_PTR(seen);
            const int16 *doms;

            if (ARR_ELEMTYPE(seen) != INT8OID || ARR_NDIM(seen) > 1 || ARR_HASNULL(seen))
                ereport(ERROR,
                        (errcode(ERRCODE_DATA_CORRUPTED),
                         errmsg("seen items of user " INT64_FORMAT " in model \"%s\" are not a bigint[] without NULLs",
                                user_id, m->name),
                         errhint("Retrain the model with train(model).")));
            doms = ItSeenDomains(m, user_id, tup, desc, 3, n);
            if (c->nusers == cap)
            {
                cap *= 2;
                c->user_ids = repalloc_huge(c->user_ids, sizeof(int64) * cap);
            }
            for (int j = 0; j < n; j++)
            {
                int64       idx = ItItemIndex(m, doms ? doms[j] : 0, ids[j]);

                if (idx < 0)
                    continue;
                if (nnz == ecap)
                {
                    ecap *= 2;
                    rows = repalloc_huge(rows, sizeof(int32) * ecap);
                    cols = repalloc_huge(cols, sizeof(int32) * ecap);
                }
                rows[nnz] = (int32) c->nusers;
                cols[nnz] = (int32) idx;
                nnz++;
            }
            c->user_ids[c->nusers++] = user_id;
        }
        MemoryContextSwitchTo(old);
        MemoryContextReset(batch);
        SPI_freetuptable(SPI_tuptable);
        CHECK_FOR_INTERRUPTS();
    }
    SPI_cursor_close(portal);
    ItRunAsEnd(&r);
    MemoryContextDelete(batch);

    MemoryContextSwitchTo(cxt);
    vals = palloc_extended(sizeof(float) * Max(nnz, 1), MCXT_ALLOC_HUGE);
    for (int64 e = 0; e < nnz; e++)
        vals[e] = 1.0f;
    work = palloc_extended(sizeof(int64) * Max(nnz, 1), MCXT_ALLOC_HUGE);
    c->R.nrows = c->nusers;
    c->R.ncols = m->n_items;
    c->R.indptr = palloc_extended(sizeof(int64) * (c->nusers + 1), MCXT_ALLOC_HUGE);
    c->R.indices = palloc_extended(sizeof(int32) * Max(nnz, 1), MCXT_ALLOC_HUGE);
    c->R.data = palloc_extended(sizeof(float) * Max(nnz, 1), MCXT_ALLOC_HUGE);
    if (it_csr_from_coo(&c->R, nnz, rows, cols, vals, work) < 0)
        ereport(ERROR,
                (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
                 errmsg("model \"%s\" has too many interactions to rank by co-buyers", m->name),
                 errhint("Train it with options => '{\"cross_domain_ranking\": \"vector\"}'.")));
    c->Rt.indptr = palloc_extended(sizeof(int64) * (m->n_items + 1), MCXT_ALLOC_HUGE);
    c->Rt.indices = palloc_extended(sizeof(int32) * Max(c->R.nnz, 1), MCXT_ALLOC_HUGE);
    c->Rt.data = palloc_extended(sizeof(float) * Max(c->R.nnz, 1), MCXT_ALLOC_HUGE);
    it_csr_transpose(&c->R, &c->Rt);
    c->counts = palloc_extended(sizeof(int32) * Max(c->nusers, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
    c->touched = palloc_extended(sizeof(int64) * Max(c->nusers, 1), MCXT_ALLOC_HUGE);
    pfree(rows);
    pfree(cols);
    pfree(vals);
    pfree(work);
    MemoryContextSwitchTo(old);
    MemoryContextSetParent(cxt, m->cxt);
    return c;
}

void
ItCobuyerDomainScores(ItModel *m, const ItInterest *in, bool has_user, int64 user_id, int d, float *scores)
{
    Cobuyers   *c = m->cobuyers;
    int64       lo = m->domain_start[d];
    int64       hi = m->domain_start[d + 1];
    int64       self = -1;

    if (c == NULL)
    {
        if (SPI_connect() != SPI_OK_CONNECT)
            elog(ERROR, "SPI_connect failed");
        c = LoadCobuyers(m);
        SPI_finish();
        m->cobuyers = c;
    }
    if (has_user)
    {
        int64       a = 0;
        int64       b = c->nusers;

        while (a < b)
        {
            int64       mid = a + (b - a) / 2;

            if (c->user_ids[mid] < user_id)
                a = mid + 1;
            else
                b = mid;
        }
        if (a < c->nusers && c->user_ids[a] == user_id)
            self = a;
    }
    memcpy(scores, m->pop_score + lo, sizeof(float) * (hi - lo));
    (void) it_cobuyer_scores(&c->R, &c->Rt, in->seen, in->nseen, self, lo, hi, c->counts, c->touched,
                             scores);
}

/*
 * context.c
 *    A user's taste in a context (weekday or weekend, a device, a part of
 *    the day): the fold-in of the user's interactions in that context
 *    around their global vector,
 *      x_uc = argmin sum_{i in c} c_i (p_i - x.y_i)^2 + lambda_c |x - x_u|^2,
 *    the weight lambda_c chosen per context when training, on the users
 *    active in it: a quarter of each one's positives in the context (at
 *    least one, drawn by a seeded hash) is held out, the rest folded in
 *    around x_u with every weight of a grid (times mean diag(Y'Y), as the
 *    fold-in weights of transfer.c), and the held-out positives ranked
 *    among every item the user did not take, against the global vector's
 *    ranking of the same.  The context keeps the weight of the best
 *    precision@10 only when it beats the global vector by IT_CTX_MIN_Z
 *    standard errors of the paired difference on at least
 *    IT_CTX_MIN_USERS users; else its users keep the global vector.  x_u
 *    was trained on the held-out rows too, which favours the global
 *    vector: the rule leans to it, so a context never serves worse than
 *    it did on these users.
 *
 * The vectors are it_user_factors rows of the context's name, with the
 * user's global seen items, written with the version; it_model.contexts
 * lists every context of the training data (those not kept have no rows).  Serving: recommend, score and evaluate take a
 * context; a user with a row there is served it ('context:<name>'), any
 * other user as without a context.
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "context.h"
#include "foldin_choice.h"
#include "rankgrid.h"
#include "store.h"

#define IT_CTX_K            10
#define IT_CTX_MAX_USERS    1000
#define IT_CTX_MIN_USERS    30
#define IT_CTX_MIN_Z        2.0
/* multiply-adds of ranking per context at most (users x items x factors x weights) */
#define IT_CTX_WORK         4.0e9
/* positives a user needs in a context to be one of its held-out users */
#define IT_CTX_MIN_POSITIVES 4
/* rows per batch of context vectors written */
#define IT_CTX_WRITE_USERS  4096

/* lambda_c in units of mean diag(Y'Y) */
static const double ContextGrid[] = {0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100};

#define IT_CTX_NGRID ((int) lengthof(ContextGrid))

struct ItContextChoice
{
    int         n;              /* d->n_contexts */
    bool       *kept;
    double     *lambda;         /* the weight chosen in each context */
    double     *weight;         /* lambda when kept, else 0 (it_model.context_weights) */
    int         nkept;
    char      **names;          /* every context of the training data, sorted */
};

ItContextRule
ItContextRuleOf(const ItOptions *o, Jsonb **options, struct pg_tz **tz)
{
    ItContextRule rule;
    const char *name;

    *tz = NULL;
    if (o->context == NULL)
        return IT_CONTEXT_NONE;
    rule = strcmp(o->context, "weekpart") == 0 ? IT_CONTEXT_WEEKPART : IT_CONTEXT_DAYPART;
    if (o->timezone != NULL)
    {
        *tz = pg_tzset(o->timezone);
        if (*tz == NULL)
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("option \"timezone\" names an unknown time zone, \"%s\"", o->timezone),
                     errhint("Give a time zone name of pg_timezone_names, for example 'Europe/Berlin', or leave it out for the session's.")));
        name = o->timezone;
    }
    else
    {
        *tz = session_timezone;
        name = pg_get_timezone_name(session_timezone);
    }
    {
        StringInfoData b;

        initStringInfo(&b);
        appendStringInfoString(&b, "{\"timezone\": ");
        escape_json(&b, name);
        appendStringInfoChar(&b, '}');
        *options = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*options),
                                                      DirectFunctionCall1(jsonb_in, CStringGetDatum(b.data))));
    }
    return rule;
}

static bool
InSorted32(const int32 *a, int n, int32 v)
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

typedef struct HashedRow
{
    uint64      h;
    int64       r;
} HashedRow;

static int
CompareHashedRow(const void *a, const void *b)
{
    const HashedRow *x = a;
    const HashedRow *y = b;

    if (x->h != y->h)
        return x->h < y->h ? -1 : 1;
    return (x->r > y->r) - (x->r < y->r);
}

/* Hits of the top IT_CTX_K of scores[0..n) (exclude sorted) among hidden (sorted). */
static int
TopHits(const float *scores, int64 n, const int32 *exclude, int nexclude, const int32 *hidden, int nh)
{
    int32       top[IT_CTX_K];
    float       ts[IT_CTX_K];
    int         got = it_topk(scores, n, exclude, nexclude, IT_CTX_K, top, ts);
    int         hits = 0;

    for (int j = 0; j < got; j++)
        hits += InSorted32(hidden, nh, top[j]);
    return hits;
}

/*
 * The held-out users of context c: hits of the global vector (*hg) and
 * of every grid weight (hc[u * IT_CTX_NGRID + g]); returns how many.
 */
static int64
SimulateContext(const ItInteractionMatrix *d, const ItOptions *o, const float *X, const float *Y,
                const float *YtY, double unit, int c, int32 *hg, int32 *hc)
{
    int         k = (int) o->factors;
    float       thr = (float) o->positive_threshold;
    int         nc = d->n_contexts;
    uint64      salt = it_mix64((uint64) o->seed ^ UINT64CONST(0x636f6e74657874) ^ (uint64) c);
    HashedRow  *order = ItAllocArray(Max(d->nusers, 1), sizeof(HashedRow));
    int64       n = 0;
    int64       done = 0;
    float      *scores = ItAllocArray(Max(d->nitems, 1), sizeof(float));
    float      *x = palloc(sizeof(float) * k);
    float      *scratch = palloc(sizeof(float) * (k * k + k));
    /* users simulated: at most IT_CTX_WORK multiply-adds of ranking, and never fewer than the gate needs */
    int64       cap = Min((int64) IT_CTX_MAX_USERS,
                          Max((int64) IT_CTX_MIN_USERS,
                              (int64) (IT_CTX_WORK / Max(1.0, (double) d->nitems * (k + 4) * (IT_CTX_NGRID + 1)))));

    for (int64 u = 0; u < d->nusers; u++)
    {
        int64       r = u * nc + c;
        int         pos = 0;

        if ((u & 4095) == 0)
            CHECK_FOR_INTERRUPTS();

        for (int64 p = d->C.indptr[r]; p < d->C.indptr[r + 1]; p++)
            pos += thr <= 0.0f || d->C.data[p] >= thr;
        if (pos < IT_CTX_MIN_POSITIVES)
            continue;
        order[n].h = it_mix64((uint64) d->user_ids[u] ^ salt);
        order[n].r = u;
        n++;
    }
    qsort(order, n, sizeof(HashedRow), CompareHashedRow);

    for (int64 s = 0; s < n && done < cap; s++)
    {
        int64       u = order[s].r;
        int64       r = u * nc + c;
        int64       len = d->C.indptr[r + 1] - d->C.indptr[r];
        int64       seenlen = d->R.indptr[u + 1] - d->R.indptr[u];
        HashedRow  *pick = ItAllocArray(Max(len, 1), sizeof(HashedRow));
        int32      *hidden = ItAllocArray(Max(len, 1), sizeof(int32));
        int32      *items = ItAllocArray(Max(len, 1), sizeof(int32));
        float      *weights = ItAllocArray(Max(len, 1), sizeof(float));
        int32      *exclude = ItAllocArray(Max(seenlen, 1), sizeof(int32));
        int         npos = 0;
        int         nh;
        int         ni = 0;
        int         nx = 0;
        int         nhid = 0;

        CHECK_FOR_INTERRUPTS();
        for (int64 p = d->C.indptr[r]; p < d->C.indptr[r + 1]; p++)
            if (thr <= 0.0f || d->C.data[p] >= thr)
            {
                pick[npos].h = it_mix64(((uint64) d->user_ids[u] << 32) ^ (uint64) d->C.indices[p] ^ salt);
                pick[npos].r = p;
                npos++;
            }
        qsort(pick, npos, sizeof(HashedRow), CompareHashedRow);
        nh = Max(1, npos / 4);
        for (int i = 0; i < nh; i++)
            hidden[nhid++] = d->C.indices[pick[i].r];
        qsort(hidden, nhid, sizeof(int32), ItCompareInt32);
        for (int64 p = d->C.indptr[r]; p < d->C.indptr[r + 1]; p++)
            if (!InSorted32(hidden, nhid, d->C.indices[p]))
            {
                items[ni] = d->C.indices[p];
                weights[ni] = d->C.data[p];
                ni++;
            }
        for (int64 p = d->R.indptr[u]; p < d->R.indptr[u + 1]; p++)
            if (!InSorted32(hidden, nhid, d->R.indices[p]))
                exclude[nx++] = d->R.indices[p];

        it_score_all(Y, d->nitems, k, X + u * k, scores);
        hg[done] = TopHits(scores, d->nitems, exclude, nx, hidden, nhid);
        for (int g = 0; g < IT_CTX_NGRID; g++)
        {
            float       lambda = (float) (ContextGrid[g] * unit);

            if (it_fold_in(Y, k, YtY, items, weights, ni, (float) o->alpha, thr, lambda,
                           X + u * k, x, scratch) != 0)
                memcpy(x, X + u * k, sizeof(float) * k);
            it_score_all(Y, d->nitems, k, x, scores);
            hc[done * IT_CTX_NGRID + g] = TopHits(scores, d->nitems, exclude, nx, hidden, nhid);
        }
        done++;
        pfree(pick);
        pfree(hidden);
        pfree(items);
        pfree(weights);
        pfree(exclude);
    }
    pfree(order);
    pfree(scores);
    pfree(x);
    pfree(scratch);
    return done;
}

/* mean diag(Y'Y): the unit of the grid */
static double
GridUnit(const float *YtY, int k)
{
    double      u = 0.0;

    for (int j = 0; j < k; j++)
        u += YtY[j * k + j];
    return Max(u / k, 1e-12);
}

ItContextChoice *
ItContextChoose(const ItInteractionMatrix *d, const ItOptions *o, const float *X, const float *Y,
                const char *model, char **key)
{
    int         k = (int) o->factors;
    ItContextChoice *cc;
    float      *YtY;
    double      unit;
    StringInfoData m;

    *key = NULL;
    if (d->n_contexts == 0)
        return NULL;
    cc = palloc0(sizeof(ItContextChoice));
    cc->n = d->n_contexts;
    cc->kept = palloc0(sizeof(bool) * cc->n);
    cc->lambda = palloc0(sizeof(double) * cc->n);
    cc->weight = palloc0(sizeof(double) * cc->n);
    cc->names = d->contexts;
    YtY = palloc(sizeof(float) * k * k);
    it_gram(Y, d->nitems, k, YtY);
    unit = GridUnit(YtY, k);

    initStringInfo(&m);
    appendStringInfoString(&m, "\"contexts\": {");
    for (int c = 0; c < cc->n; c++)
    {
        int32      *hg = palloc(sizeof(int32) * IT_CTX_MAX_USERS);
        int32      *hc = palloc(sizeof(int32) * IT_CTX_MAX_USERS * IT_CTX_NGRID);
        int64       n = SimulateContext(d, o, X, Y, YtY, unit, c, hg, hc);
        int         best = 0;
        double      bestp = -1.0;
        double      pg = 0.0;
        double      mean = 0.0;
        double      z = 0.0;

        for (int g = 0; g < IT_CTX_NGRID && n > 0; g++)
        {
            double      p = 0.0;

            for (int64 u = 0; u < n; u++)
                p += hc[u * IT_CTX_NGRID + g];
            /* ties: the larger weight, nearer the global vector */
            if (p >= bestp)
            {
                bestp = p;
                best = g;
            }
        }
        if (n > 0)
        {
            double     *a = palloc(sizeof(double) * n);
            double     *b = palloc(sizeof(double) * n);

            for (int64 u = 0; u < n; u++)
            {
                a[u] = hc[u * IT_CTX_NGRID + best] / (double) IT_CTX_K;
                b[u] = hg[u] / (double) IT_CTX_K;
                pg += b[u];
            }
            it_mean_difference(a, b, n, &mean, &z);
            pg /= n;
            bestp /= (double) n * IT_CTX_K;
        }
        cc->kept[c] = n >= IT_CTX_MIN_USERS && mean > 0.0 && z >= IT_CTX_MIN_Z;
        cc->lambda[c] = ContextGrid[best] * unit;
        cc->nkept += cc->kept[c];
        cc->weight[c] = cc->kept[c] ? cc->lambda[c] : 0.0;
        if (c > 0)
            appendStringInfoString(&m, ", ");
        escape_json(&m, d->contexts[c]);
        appendStringInfo(&m, ": {\"kept\": %s, \"users\": " INT64_FORMAT ", \"fold_in_weight\": %.6g, "
                         "\"precision\": %.6g, \"global_precision\": %.6g, \"z\": %.4g}",
                         cc->kept[c] ? "true" : "false", n, cc->lambda[c], n > 0 ? bestp : 0.0, pg, z);
        ereport(NOTICE,
                (errmsg("context \"%s\" of model \"%s\": %s (precision@%d on " INT64_FORMAT " users' held-out rows there: "
                        "context vector %.3f, global vector %.3f)",
                        d->contexts[c], model,
                        cc->kept[c] ? "users active in it get a vector of their own" :
                        "its users keep their global vector",
                        IT_CTX_K, n, n > 0 ? bestp : 0.0, pg)));
        pfree(hg);
        pfree(hc);
    }
    appendStringInfoChar(&m, '}');
    pfree(YtY);
    *key = m.data;
    return cc;
}

int
ItContextNames(const ItContextChoice *c, char ***names, const double **weights)
{
    if (c == NULL)
        return 0;
    *names = c->names;
    *weights = c->weight;
    return c->n;
}

void
ItContextWrite(const ItContextChoice *cc, const ItInteractionMatrix *d, const ItOptions *o,
               const float *X, const float *Y, const char *model, int version)
{
    int         k = (int) o->factors;
    int         nc;
    float      *YtY;
    float      *scratch;

    if (cc == NULL || cc->nkept == 0)
        return;
    nc = d->n_contexts;
    YtY = palloc(sizeof(float) * k * k);
    scratch = palloc(sizeof(float) * (k * k + k));
    it_gram(Y, d->nitems, k, YtY);
    for (int c = 0; c < nc; c++)
    {
        int64       u = 0;

        if (!cc->kept[c])
            continue;
        while (u < d->nusers)
        {
            int64       ids[IT_CTX_WRITE_USERS];
            int64       ptr[IT_CTX_WRITE_USERS + 1];
            int32      *seen;
            float      *vec = palloc(sizeof(float) * IT_CTX_WRITE_USERS * k);
            int64       n = 0;
            int64       nseen = 0;
            int64       first = u;
            ItFactorRows rows;

            /* the users of this batch with rows in the context */
            for (; u < d->nusers && n < IT_CTX_WRITE_USERS; u++)
            {
                int64       r = u * nc + c;

                if (d->C.indptr[r + 1] == d->C.indptr[r])
                    continue;
                ids[n] = u;
                n++;
                nseen += d->R.indptr[u + 1] - d->R.indptr[u];
            }
            if (n == 0)
            {
                pfree(vec);
                continue;
            }
            seen = ItAllocArray(Max(nseen, 1), sizeof(int32));
            ptr[0] = 0;
            for (int64 i = 0; i < n; i++)
            {
                int64       uu = ids[i];
                int64       r = uu * nc + c;
                int64       len = d->R.indptr[uu + 1] - d->R.indptr[uu];

                if (it_fold_in(Y, k, YtY, d->C.indices + d->C.indptr[r], d->C.data + d->C.indptr[r],
                               (int) (d->C.indptr[r + 1] - d->C.indptr[r]), (float) o->alpha,
                               (float) o->positive_threshold, (float) cc->lambda[c], X + uu * k,
                               vec + i * k, scratch) != 0)
                    memcpy(vec + i * k, X + uu * k, sizeof(float) * k);
                memcpy(seen + ptr[i], d->R.indices + d->R.indptr[uu], sizeof(int32) * len);
                ptr[i + 1] = ptr[i] + len;
                ids[i] = d->user_ids[uu];
                CHECK_FOR_INTERRUPTS();
            }
            (void) first;
            memset(&rows, 0, sizeof(rows));
            rows.users = true;
            rows.mode = IT_FACTORS_INSERT;
            rows.source = "context";
            rows.context = d->contexts[c];
            rows.k = k;
            rows.n = n;
            rows.ids = ids;
            rows.factors = vec;
            rows.seen_ptr = ptr;
            rows.seen_index = seen;
            rows.seen_ids = d->item_ids;
            rows.domains = d->item_domain;
            (void) ItStoreWriteFactors(model, version, &rows);
            pfree(vec);
            pfree(seen);
        }
    }
    pfree(YtY);
    pfree(scratch);
}

/* ------------------------------------------------------------------------
 * Serving
 * ------------------------------------------------------------------------ */

int
ItContextArgument(const ItModel *m, const char *context)
{
    const char *name = context;

    /* '': the global vector, whatever the context */
    if (context != NULL && context[0] == '\0')
        return -1;
    if (context == NULL && m->opts.context != NULL && m->n_contexts > 0)
    {
        ItContextRule rule = strcmp(m->opts.context, "weekpart") == 0 ? IT_CONTEXT_WEEKPART : IT_CONTEXT_DAYPART;
        struct pg_tz *tz = m->opts.timezone ? pg_tzset(m->opts.timezone) : session_timezone;

        name = ItDeriveContext(rule, tz ? tz : session_timezone, GetCurrentTransactionStartTimestamp());
    }
    if (name == NULL)
        return -1;
    if (m->n_contexts == 0 && m->opts.context == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("model \"%s\" has no contexts, and context \"%s\" was given", m->name, name),
                 errhint("Pass context => NULL, or train the model with a context column or option context.")));
    for (int i = 0; i < m->n_contexts; i++)
        if (strcmp(m->contexts[i], name) == 0)
            return i;
    /* derived, but absent from the training data: nobody has a vector there */
    if (context == NULL)
        return -1;
    {
        StringInfoData names;

        initStringInfo(&names);
        for (int i = 0; i < m->n_contexts; i++)
            appendStringInfo(&names, "%s\"%s\"", i > 0 ? ", " : "", m->contexts[i]);
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("model \"%s\" has no context \"%s\"", m->name, name),
                 errhint("Its contexts are %s; pass one of them, or NULL.", names.data)));
    }
    return -1;                  /* keep compiler quiet */
}

void
ItUserInterestIn(ItModel *m, int64 user_id, int c, ItInterest *out)
{
    /* a context that kept no vectors has no rows to look for */
    if (c >= 0 && m->context_weight != NULL && m->context_weight[c] > 0.0)
    {
        float      *x = palloc(sizeof(float) * m->k);
        int32      *seen = NULL;
        int         nseen = 0;

        if (ItGetUserVectorIn(m, user_id, m->contexts[c], x, &seen, &nseen, NULL))
        {
            memset(out, 0, sizeof(*out));
            out->source = IT_SOURCE_MODEL;
            out->x = x;
            out->seen = seen;
            out->nseen = nseen;
            out->label = psprintf("context:%s", m->contexts[c]);
            return;
        }
        pfree(x);
    }
    ItUserInterest(m, user_id, out);
}

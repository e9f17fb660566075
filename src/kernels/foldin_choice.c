/*
 * foldin_choice.c
 *    The simulation that chooses the weight of a fold-in prior on trained
 *    users: the grid, the users, the leave-out item vectors, one user's
 *    simulation and the choice.  See foldin_choice.h.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clones.h"
#include "foldin_choice.h"
#include "kernels.h"
#include "rankgrid.h"

uint64_t
it_mix64(uint64_t x)
{
    x += UINT64_C(0x9E3779B97F4A7C15);
    x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
    return x ^ (x >> 31);
}

double
it_unit_hash(uint64_t h)
{
    return ((double) (h >> 11) + 1.0) / 9007199254740992.0;
}

/* ------------------------------------------------------------------------
 * The grid and the users
 * ------------------------------------------------------------------------ */

int
it_fold_in_lambdas(const float *Y, int64_t m, int k, const double *grid, int ngrid,
                   float *YtY, float *lambdas)
{
    double      trace = 0.0;
    double      scale;

    if (Y == NULL || m < 1 || k < 1 || grid == NULL || ngrid < 1 ||
        ngrid > IT_FOLD_MAX_GRID || YtY == NULL || lambdas == NULL)
        return IT_FOLD_EINVAL;
    it_gram(Y, m, k, YtY);
    for (int j = 0; j < k; j++)
        trace += YtY[(int64_t) j * k + j];
    scale = trace / k;
    if (!(scale > 0.0) || !isfinite(scale))
        return IT_FOLD_ENONFINITE;
    for (int g = 0; g < ngrid; g++)
    {
        char        tmp[64];

        /* 3 significant digits: the weights are shown and stored as such */
        snprintf(tmp, sizeof(tmp), "%.3g", grid[g] * scale);
        lambdas[g] = (float) strtod(tmp, NULL);
        if (!(lambdas[g] > 0.0f) || !isfinite(lambdas[g]))
            return IT_FOLD_ENONFINITE;
    }
    return IT_FOLD_OK;
}

int64_t
it_fold_in_select_users(const ItCsr *R, const int64_t *rows, int64_t nrows,
                        float min_weight, int64_t min_positives, int64_t cap,
                        int64_t *sel, int64_t *selrows, int64_t *maxlen)
{
    int64_t     nsel = 0;

    *maxlen = 0;
    for (int64_t i = 0; i < nrows && nsel < cap; i++)
    {
        int64_t     b = R->indptr[rows[i]];
        int64_t     e1 = R->indptr[rows[i] + 1];
        int64_t     npos = 0;

        for (int64_t e = b; e < e1; e++)
            npos += R->data[e] >= min_weight;
        if (npos < min_positives)
            continue;
        sel[nsel] = i;
        selrows[nsel] = rows[i];
        if (e1 - b > *maxlen)
            *maxlen = e1 - b;
        nsel++;
    }
    return nsel;
}

/* ------------------------------------------------------------------------
 * Leave-out item vectors
 * ------------------------------------------------------------------------ */

int64_t
it_leave_out_removed(const ItCsr *R, const int64_t *rows, int64_t n)
{
    int64_t     removed = 0;

    for (int64_t i = 0; i < n; i++)
        removed += R->indptr[rows[i] + 1] - R->indptr[rows[i]];
    return removed;
}

int
it_leave_out_items(const ItCsr *R, const ItCsr *Rt, const float *X, const float *Y,
                   int k, const ItAlsParams *p, const int64_t *rows, int64_t n,
                   double chunk_flops, ItLeaveOutBuffers *buf, float *Yout, float *YtY,
                   int (*should_stop) (void *arg), void *should_stop_arg)
{
    int64_t     nusers;
    int64_t     nitems;
    int64_t     nnz = 0;
    int64_t     begin = 0;
    ItCsr       kept;

    if (R == NULL || Rt == NULL || X == NULL || Y == NULL || p == NULL || buf == NULL ||
        Yout == NULL || YtY == NULL || k < 1 || n < 0 || (n > 0 && rows == NULL) ||
        R->nrows != Rt->ncols || R->ncols != Rt->nrows)
        return IT_FOLD_EINVAL;
    nusers = R->nrows;
    nitems = Rt->nrows;

    memset(buf->out, 0, sizeof(unsigned char) * nusers);
    for (int64_t i = 0; i < n; i++)
        buf->out[rows[i]] = 1;

    /* the items' interactions without those users */
    kept.nrows = nitems;
    kept.ncols = nusers;
    kept.indptr = buf->indptr;
    kept.indices = buf->indices;
    kept.data = buf->data;
    kept.indptr[0] = 0;
    for (int64_t i = 0; i < nitems; i++)
    {
        for (int64_t e = Rt->indptr[i]; e < Rt->indptr[i + 1]; e++)
        {
            if (buf->out[Rt->indices[e]])
                continue;
            kept.indices[nnz] = Rt->indices[e];
            kept.data[nnz] = Rt->data[e];
            nnz++;
        }
        kept.indptr[i + 1] = nnz;
    }
    kept.nnz = nnz;
    if (should_stop && should_stop(should_stop_arg))
        return IT_FOLD_ESTOPPED;

    /* X'X without those users */
    for (int64_t i = 0; i < n; i++)
        memcpy(buf->Xs + i * k, X + rows[i] * k, sizeof(float) * k);
    it_gram(X, nusers, k, buf->XtX);
    if (n > 0)
    {
        it_gram(buf->Xs, n, k, buf->G);
        for (int64_t j = 0; j < (int64_t) k * k; j++)
            buf->XtX[j] -= buf->G[j];
    }
    if (should_stop && should_stop(should_stop_arg))
        return IT_FOLD_ESTOPPED;

    memcpy(Yout, Y, sizeof(float) * nitems * k);
    while (begin < kept.nrows)
    {
        double      work = 0.0;
        int64_t     end = begin;

        /* whole blocks, about chunk_flops per thread */
        while (end < kept.nrows && work < chunk_flops * p->threads)
        {
            int64_t     stop = (end / IT_ALS_BLOCK + 1) * IT_ALS_BLOCK;

            if (stop > kept.nrows)
                stop = kept.nrows;
            work += 2.0 * k * k * (p->cg_steps + 1) * (stop - end) +
                2.0 * k * (2 * p->cg_steps + 2) * (kept.indptr[stop] - kept.indptr[end]);
            end = stop;
        }
        if (should_stop && should_stop(should_stop_arg))
            return IT_FOLD_ESTOPPED;
        it_als_half_step(&kept, X, buf->XtX, Yout, p, begin, end, buf->scratch);
        begin = end;
    }
    for (int64_t j = 0; j < nitems * k; j++)
        if (!isfinite(Yout[j]))
            return IT_FOLD_ENONFINITE;
    it_gram(Yout, nitems, k, YtY);
    return IT_FOLD_OK;
}

/* ------------------------------------------------------------------------
 * One simulated user
 * ------------------------------------------------------------------------ */

static int
CompareRevealKey(const void *a, const void *b)
{
    const ItRevealEntry *x = a;
    const ItRevealEntry *y = b;

    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return (x->item > y->item) - (x->item < y->item);
}

void
it_fold_in_reveal_order(const ItCsr *R, const double *times, int64_t row, uint64_t salt,
                        ItRevealEntry *ent)
{
    int64_t     b = R->indptr[row];
    int64_t     len = R->indptr[row + 1] - b;

    for (int64_t e = 0; e < len; e++)
    {
        ent[e].item = R->indices[b + e];
        ent[e].w = R->data[b + e];
        ent[e].time = times ? times[b + e] : 0.0;
        ent[e].key = it_unit_hash(it_mix64(((uint64_t) row << 32) ^
                                           (uint64_t) (uint32_t) ent[e].item ^ salt));
    }
    qsort(ent, len, sizeof(ItRevealEntry), CompareRevealKey);
}

/* The first nrev entries in reveal order, in ascending item order, to rev/revw. */
static void
RevealFirst(const ItRevealEntry *ent, int nrev, const int32_t *rank, int32_t *rev, float *revw)
{
    for (int a = 0; a < nrev; a++)
    {
        int32_t     item = rank ? rank[ent[a].item] : ent[a].item;
        int         c = a;

        while (c > 0 && rev[c - 1] > item)
        {
            rev[c] = rev[c - 1];
            revw[c] = revw[c - 1];
            c--;
        }
        rev[c] = item;
        revw[c] = ent[a].w;
    }
}

/*
 * The row's positives (entries of weight >= min_weight) to pos, renumbered
 * by rank when not NULL; returns how many.
 */
static int64_t
RowPositives(const ItCsr *R, int64_t row, float min_weight, const int32_t *rank, int32_t *pos)
{
    int64_t     npos = 0;

    for (int64_t e = R->indptr[row]; e < R->indptr[row + 1]; e++)
        if (R->data[e] >= min_weight)
            pos[npos++] = rank ? rank[R->indices[e]] : R->indices[e];
    return npos;
}

int
it_fold_in_simulate_user(const ItCsr *R, const double *times, int64_t row, uint64_t salt,
                         float min_weight,
                         const int *reveal, int nreveal,
                         const float *Y, int64_t m, int k, const float *YtY,
                         float alpha, const float *prior, const ItPopBlend *blend,
                         const float *lambdas, int ngrid, int eval_k,
                         ItRevealEntry *ent, int32_t *pos, int32_t *rev, float *revw,
                         float *ws, ItFoldInSums *sums, int *solve_status)
{
    int64_t     npos = 0;
    int32_t     hits[IT_FOLD_MAX_GRID];

    int         entries = ngrid * (blend ? blend->nblend : 1);

    *solve_status = 0;
    if (R == NULL || row < 0 || row >= R->nrows || reveal == NULL || nreveal < 1 ||
        nreveal > sums->nreveal || ngrid < 1 || entries < 1 || entries > sums->ngrid ||
        sums->ngrid > IT_FOLD_MAX_GRID)
        return IT_FOLD_EINVAL;
    npos = RowPositives(R, row, min_weight, NULL, pos);
    it_fold_in_reveal_order(R, times, row, salt, ent);

    for (int r = 0; r < nreveal; r++)
    {
        int         nrev = reveal[r];
        int         rc;

        if (npos < nrev + 1)
            continue;
        RevealFirst(ent, nrev, NULL, rev, revw);
        rc = it_fold_in_grid_hits_blend(Y, m, k, YtY, alpha, min_weight, prior, blend, rev, revw, nrev,
                                        pos, npos, lambdas, ngrid, eval_k, ws, hits);
        if (rc != 0)
        {
            *solve_status = rc;
            return rc < 0 ? IT_FOLD_EINVAL : IT_FOLD_ESOLVE;
        }
        if (hits[0] < 0)
            continue;
        for (int g = 0; g < entries; g++)
            sums->hitsum[r * sums->ngrid + g] += hits[g];
        sums->users[r]++;
    }
    return IT_FOLD_OK;
}

int
it_fold_in_simulate_users(const ItCsr *R, const double *times, const int64_t *rows, int n,
                          uint64_t salt, float min_weight, const int *reveal, int nreveal,
                          const float *Y, int64_t m, int k, const float *YtY,
                          float alpha, const float *const *priors,
                          const ItPopBlend *blend, const float *lambdas, int ngrid, int eval_k,
                          const ItSimulateBuffers *buf, ItFoldInSums *sums, int *solve_status)
{
    int         entries = ngrid * (blend ? blend->nblend : 1);
    int         maxrev;
    int         nq = 0;
    int64_t     posused = 0;
    int         rc;

    *solve_status = 0;
    if (R == NULL || rows == NULL || n < 1 || reveal == NULL || nreveal < 1 ||
        nreveal > sums->nreveal || ngrid < 1 || entries < 1 || entries > sums->ngrid ||
        sums->ngrid > IT_FOLD_MAX_GRID || buf == NULL)
        return IT_FOLD_EINVAL;
    maxrev = reveal[nreveal - 1];
    for (int i = 0; i < n; i++)
    {
        int64_t     row = rows[i];
        int32_t    *pos = buf->pos + posused;
        int64_t     npos;

        if (row < 0 || row >= R->nrows)
            return IT_FOLD_EINVAL;
        npos = RowPositives(R, row, min_weight, buf->rank, pos);
        posused += npos;
        it_fold_in_reveal_order(R, times, row, salt, buf->ent);
        for (int r = 0; r < nreveal; r++)
        {
            ItGridQuery *q = &buf->queries[nq];
            int32_t    *rev = buf->rev + (size_t) nq * maxrev;
            float      *revw = buf->revw + (size_t) nq * maxrev;

            if (npos < reveal[r] + 1)
                continue;
            RevealFirst(buf->ent, reveal[r], buf->rank, rev, revw);
            q->revealed = rev;
            q->weights = revw;
            q->nrev = reveal[r];
            q->pos = pos;
            q->npos = npos;
            q->prior = priors ? priors[i] : NULL;
            buf->qreveal[nq] = r;
            nq++;
        }
    }
    if (nq == 0)
        return IT_FOLD_OK;
    rc = it_fold_in_grid_hits_batch(Y, m, k, YtY, buf->basis, buf->threads, alpha, min_weight, blend, buf->queries, nq,
                                    lambdas, ngrid, eval_k, buf->ws, buf->hits);
    if (rc != 0)
    {
        *solve_status = rc;
        return rc < 0 ? IT_FOLD_EINVAL : IT_FOLD_ESOLVE;
    }
    for (int q = 0; q < nq; q++)
    {
        const int32_t *hits = buf->hits + (size_t) q * entries;
        int         r = buf->qreveal[q];

        if (hits[0] < 0)
            continue;
        for (int g = 0; g < entries; g++)
            sums->hitsum[r * sums->ngrid + g] += hits[g];
        sums->users[r]++;
    }
    return IT_FOLD_OK;
}

/* ------------------------------------------------------------------------
 * A prior's simulations, whole
 * ------------------------------------------------------------------------ */

static double
NowSeconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

static int
RunFail(ItFoldInRun *run, int status, int stage, int detail)
{
    run->status = status;
    run->stage = stage;
    run->detail = detail;
    return status;
}

static int
RunGroups(ItFoldInRun *run)
{
    int         maxrev;

    if (run->R == NULL || run->Rt == NULL || run->rows == NULL || run->priors == NULL ||
        run->nsel < 1 || run->group < 1 || run->batch < 1 || run->reveal == NULL || run->nreveal < 1)
        return RunFail(run, IT_FOLD_EINVAL, 0, 0);
    if (run->order != NULL && (run->rank == NULL || run->Yp == NULL))
        return RunFail(run, IT_FOLD_EINVAL, 0, 0);
    run->sim.rank = run->order != NULL ? run->rank : NULL;
    maxrev = run->reveal[run->nreveal - 1];
    for (int64_t g0 = 0; g0 < run->nsel; g0 += run->group)
    {
        int64_t     g1 = g0 + run->group < run->nsel ? g0 + run->group : run->nsel;
        ItGramBasis basis;
        int         rc;

        rc = it_leave_out_items(run->R, run->Rt, run->X, run->Y, run->k, &run->als, run->rows + g0, g1 - g0,
                                run->chunk_flops, &run->lo, run->Ylo, run->YtY,
                                run->should_stop, run->should_stop_arg);
        if (rc != IT_FOLD_OK)
            return RunFail(run, rc, 1, rc);
        run->groups++;
        /* the vectors renumbered most popular first, as the blend's popularity is */
        if (run->order != NULL)
            for (int64_t p = 0; p < run->Rt->nrows; p++)
                memcpy(run->Yp + (size_t) p * run->k, run->Ylo + (size_t) run->order[p] * run->k,
                       sizeof(float) * (size_t) run->k);
        /* every simulation of the group folds into this YtY: solved in its eigenvector basis */
        rc = it_gram_basis(run->YtY, run->k, maxrev, run->ngrid, run->bmem, &basis);
        if (rc != 0)
            return RunFail(run, IT_FOLD_ESOLVE, 2, rc);
        run->sim.basis = &basis;
        for (int64_t s0 = g0; s0 < g1; s0 += run->batch)
        {
            int         n = (int) (g1 - s0 < run->batch ? g1 - s0 : run->batch);
            int         solve;

            if (run->should_stop != NULL && run->should_stop(run->should_stop_arg))
                return RunFail(run, IT_FOLD_ESTOPPED, 3, 0);
            rc = it_fold_in_simulate_users(run->R, run->times, run->rows + s0, n, run->salt, run->min_weight,
                                           run->reveal, run->nreveal, run->order ? run->Yp : run->Ylo,
                                           run->Rt->nrows, run->k,
                                           run->YtY, run->als.alpha, run->priors + s0, run->blend,
                                           run->lambdas, run->ngrid, run->eval_k, &run->sim, &run->sums,
                                           &solve);
            if (rc != IT_FOLD_OK)
                return RunFail(run, rc, 3, solve);
        }
        run->sim.basis = NULL;
    }
    return IT_FOLD_OK;
}

int
it_fold_in_run(ItFoldInRun *run)
{
    double      start = NowSeconds();

    run->status = IT_FOLD_OK;
    run->stage = 0;
    run->detail = 0;
    run->groups = 0;
    memset(run->sums.hitsum, 0, sizeof(run->sums.hitsum));
    memset(run->sums.users, 0, sizeof(run->sums.users));
    (void) RunGroups(run);
    run->sim.basis = NULL;
    run->seconds = NowSeconds() - start;
    return run->status;
}

static void *
RunThread(void *arg)
{
    (void) it_fold_in_run((ItFoldInRun *) arg);
    return NULL;
}

int
it_fold_in_run_start(ItFoldInRun *run)
{
    void       *arg = run;

    run->started = it_start_threads(RunThread, &arg, 1, &run->thread) == 1;
    return run->started;
}

int
it_fold_in_run_join(ItFoldInRun *run)
{
    if (run->started)
    {
        pthread_join(run->thread, NULL);
        run->started = 0;
        return run->status;
    }
    return it_fold_in_run(run);
}

/* ------------------------------------------------------------------------
 * The choice
 * ------------------------------------------------------------------------ */

void
it_fold_in_choose(const ItFoldInSums *sums, int eval_k, int64_t min_users,
                  ItFoldInChoice *out)
{
    int         nreveal = sums->nreveal;
    int         ngrid = sums->ngrid;
    int         ncounted = 0;

    memset(out, 0, sizeof(*out));
    for (int r = 0; r < nreveal; r++)
    {
        out->counted[r] = sums->users[r] >= min_users;
        ncounted += out->counted[r];
        for (int g = 0; g < ngrid; g++)
            out->precision[r][g] = sums->users[r] > 0 ?
                (double) sums->hitsum[r * ngrid + g] / ((double) sums->users[r] * eval_k) : 0.0;
    }
    out->measured = out->counted[0];
    for (int g = 0; g < ngrid; g++)
    {
        out->criterion[g] = 0.0;
        for (int r = 0; r < nreveal; r++)
            if (out->counted[r])
                out->criterion[g] += out->precision[r][g] / (ncounted > 1 ? ncounted : 1);
    }
    /* the best; on ties the larger weight */
    out->best = 0;
    for (int g = 1; g < ngrid; g++)
        if (out->criterion[g] >= out->criterion[out->best])
            out->best = g;

    /*
     * The one-standard-error rule: the largest weight whose criterion is
     * within one standard error of the best.  A stronger prior is the
     * safer choice, and the simulation favours weak ones: its users'
     * other interactions shaped the item vectors it folds into, which a
     * new user's did not (on MovieLens 100k with the earliest ratings
     * revealed, the weight the best simulated precision chose served cold
     * users 0.33 where three times that weight served 0.37).  The error
     * of each simulation's precision is taken as binomial over its users'
     * eval_k slots.
     */
    {
        double      var = 0.0;

        for (int r = 0; r < nreveal; r++)
            if (out->counted[r])
            {
                double      p = out->precision[r][out->best];

                var += p * (1.0 - p) / ((double) sums->users[r] * eval_k);
            }
        out->tolerance = ncounted > 0 ? sqrt(var) / ncounted : 0.0;
    }
    out->chosen = out->best;
    for (int g = out->best + 1; g < ngrid; g++)
        if (out->criterion[g] >= out->criterion[out->best] - out->tolerance)
            out->chosen = g;
}

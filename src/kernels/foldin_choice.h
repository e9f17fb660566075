/*
 * foldin_choice.h
 *    Choosing the weight lambda0 of a fold-in prior by simulation on
 *    trained users (transfer.c drives it; see FoldInGrid there):
 *
 *      it_fold_in_lambdas      the grid of weights, in units of mean diag(Y'Y)
 *      it_fold_in_select_users the simulated users: the first with enough
 *                              positives
 *      it_leave_out_items      the item vectors as if a group of them had
 *                              not been trained on (one item half-step of ALS)
 *      it_fold_in_simulate_user  one user: reveal a few interactions, fold
 *                              in around the prior over the grid, count hits
 *      it_fold_in_choose       precision per simulation, the criterion and
 *                              the weight chosen
 *
 *    and the hashes the simulation draws with.  Plain C, no PostgreSQL
 *    headers; the conventions of kernels.h hold: buffers come from the
 *    caller, no allocation, no printing; the long steps call a should_stop
 *    callback, on the calling thread, between blocks of work.
 */
#ifndef IT_FOLDIN_CHOICE_H
#define IT_FOLDIN_CHOICE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels.h"
#include "rankgrid.h"

/* Bounds of the grid and of the reveal counts of one choice. */
#define IT_FOLD_MAX_GRID    96
#define IT_FOLD_MAX_REVEAL  4

/* Status codes. */
#define IT_FOLD_OK          0
#define IT_FOLD_EINVAL      1   /* bad sizes or pointers */
#define IT_FOLD_ENONFINITE  2   /* a result is not finite */
#define IT_FOLD_ESTOPPED    3   /* should_stop asked to stop */
#define IT_FOLD_ESOLVE      4   /* a fold-in could not be solved */

/* splitmix64: a well-mixed 64-bit hash. */
uint64_t    it_mix64(uint64_t x);

/* A hash as a number in (0, 1]. */
double      it_unit_hash(uint64_t h);

/*
 * The grid: lambdas[g] = grid[g] * mean diag(Y'Y), rounded to 3
 * significant digits, for the m trained item vectors Y (m * k); Y'Y is
 * left in YtY (k * k).  Returns IT_FOLD_OK, or IT_FOLD_ENONFINITE when the
 * scale or a weight is not positive and finite (nothing can be chosen
 * then), IT_FOLD_EINVAL on bad arguments.
 */
int         it_fold_in_lambdas(const float *Y, int64_t m, int k,
                               const double *grid, int ngrid,
                               float *YtY, float *lambdas);

/*
 * The first users rows[i] (rows of R, in the order given) with at least
 * min_positives entries of weight >= min_weight, at most cap of them:
 * sel[j] receives the index i, selrows[j] the row rows[i]; *maxlen the
 * longest row chosen.  sel and selrows hold min(cap, nrows).  Returns
 * how many were chosen.
 */
int64_t     it_fold_in_select_users(const ItCsr *R, const int64_t *rows, int64_t nrows,
                                    float min_weight, int64_t min_positives, int64_t cap,
                                    int64_t *sel, int64_t *selrows, int64_t *maxlen);

/*
 * The buffers of it_leave_out_items for n left-out users of a model of
 * nusers users, nitems items and k factors (caller-allocated):
 */
typedef struct ItLeaveOutBuffers
{
    unsigned char *out;         /* nusers */
    int64_t    *indptr;         /* nitems + 1 */
    int32_t    *indices;        /* max(Rt->nnz - it_leave_out_removed(), 1) */
    float      *data;           /* the same */
    float      *Xs;             /* max(n, 1) * k */
    float      *G;              /* k * k */
    float      *XtX;            /* k * k */
    float      *scratch;        /* it_als_scratch_floats(k, p->threads) */
} ItLeaveOutBuffers;

/* The interactions of users rows[0..n) (rows of R). */
int64_t     it_leave_out_removed(const ItCsr *R, const int64_t *rows, int64_t n);

/*
 * The item vectors as if the users rows[0..n) (distinct rows of R) had
 * not been trained on: one item half-step of ALS (it_als_half_step with
 * p, warm from the trained Y, the users' vectors X fixed) on the items'
 * interactions Rt without theirs, X'X without their vectors.  Yout
 * (nitems * k) receives the vectors, YtY (k * k) their Y'Y; buf->indptr,
 * indices and data hold the interactions kept (the items' CSR).  The
 * half-step runs in row ranges of whole IT_ALS_BLOCK blocks of about
 * chunk_flops multiply-adds per thread, should_stop (may be NULL) called
 * before each.  Returns IT_FOLD_OK, IT_FOLD_ESTOPPED, IT_FOLD_ENONFINITE
 * when a vector is not finite, or IT_FOLD_EINVAL.
 */
int         it_leave_out_items(const ItCsr *R, const ItCsr *Rt, const float *X,
                               const float *Y, int k, const ItAlsParams *p,
                               const int64_t *rows, int64_t n, double chunk_flops,
                               ItLeaveOutBuffers *buf, float *Yout, float *YtY,
                               int (*should_stop) (void *arg), void *should_stop_arg);

/* An interaction of a simulated user, in the order of its hash. */
typedef struct ItRevealEntry
{
    double      time;           /* 0 without times */
    double      key;
    int32_t     item;
    float       w;
} ItRevealEntry;

/*
 * The interactions of row `row` of R in the order the simulation reveals
 * them.  With times (one per entry of R, as R's data): in time order, the
 * earliest first, as a new user reveals them; ties, and every entry when
 * times is NULL, by ascending it_unit_hash(it_mix64((row << 32) ^ item ^
 * salt)), then the item.  ent holds the row's length.  The same salt gives
 * the same order.
 */
void        it_fold_in_reveal_order(const ItCsr *R, const double *times, int64_t row,
                                    uint64_t salt, ItRevealEntry *ent);

/* One simulation's sums: hitsum[r * ngrid + g], users[r]. */
typedef struct ItFoldInSums
{
    int         nreveal;
    int         ngrid;
    int64_t     hitsum[IT_FOLD_MAX_REVEAL * IT_FOLD_MAX_GRID];
    int64_t     users[IT_FOLD_MAX_REVEAL];
} ItFoldInSums;

/*
 * Simulates one trained user, row `row` of R: its positives are the
 * entries of weight >= min_weight; for each r in [0, nreveal) with more
 * than reveal[r] positives, the first reveal[r] interactions in the order
 * of it_fold_in_reveal_order (positive or not; earliest first with times)
 * are revealed and folded in
 * around prior (kdim floats, NULL for zero) against the item vectors Y
 * (m * k, Y'Y in YtY) over the grid lambdas[0..ngrid), each ranking every
 * item but the revealed ones (it_fold_in_grid_hits_blend: with blend,
 * grid entry g * blend->nblend + b is weight g ranked with popularity
 * blend b, and sums->ngrid counts the entries); the hits at eval_k
 * on the other positives are added to sums->hitsum[r], and sums->users[r]
 * counts the user when some positive was left.  Buffers: ent and pos of
 * the row's length, rev and revw of reveal[nreveal - 1], ws of
 * it_fold_in_grid_workspace_floats(m, k, ngrid, eval_k) floats.  reveal
 * ascending.  Returns IT_FOLD_OK, IT_FOLD_ESOLVE (with the status of the
 * fold-in in *solve_status) or IT_FOLD_EINVAL.
 */
int         it_fold_in_simulate_user(const ItCsr *R, const double *times, int64_t row, uint64_t salt,
                                     float min_weight, const int *reveal, int nreveal,
                                     const float *Y, int64_t m, int k, const float *YtY,
                                     float alpha, const float *prior, const ItPopBlend *blend,
                                     const float *lambdas, int ngrid, int eval_k,
                                     ItRevealEntry *ent, int32_t *pos,
                                     int32_t *rev, float *revw, float *ws,
                                     ItFoldInSums *sums, int *solve_status);

/*
 * The buffers of it_fold_in_simulate_users for n users of rows at most
 * maxlen long and nreveal reveal counts (caller-allocated):
 */
typedef struct ItSimulateBuffers
{
    ItRevealEntry *ent;         /* maxlen */
    int32_t    *pos;            /* n * maxlen */
    int32_t    *rev;            /* n * nreveal * reveal[nreveal - 1] */
    float      *revw;           /* the same */
    ItGridQuery *queries;       /* n * nreveal */
    int        *qreveal;        /* n * nreveal */
    int32_t    *hits;           /* n * nreveal * entries */
    float      *ws;             /* it_fold_in_grid_batch_workspace_floats(m, k, ngrid, eval_k, n * nreveal, threads) */
    const ItGramBasis *basis;   /* NULL, or YtY's (it_gram_basis; see it_fold_in_grid_hits_batch) */
    const int32_t *rank;        /* NULL, or item i of R is row rank[i] of Y (the items renumbered) */
    int         threads;        /* of the rankings (it_fold_in_grid_hits_batch) */
} ItSimulateBuffers;

/*
 * it_fold_in_simulate_user for the n users rows[0..n) at once, user i
 * folded in around priors[i] (kdim floats; priors NULL, or an entry
 * NULL: zero): the same sums, but the scores of every user's
 * grids are one product (it_fold_in_grid_hits_batch).  Returns as
 * it_fold_in_simulate_user.
 */
int         it_fold_in_simulate_users(const ItCsr *R, const double *times, const int64_t *rows, int n,
                                      uint64_t salt, float min_weight, const int *reveal, int nreveal,
                                      const float *Y, int64_t m, int k, const float *YtY,
                                      float alpha, const float *const *priors,
                                      const ItPopBlend *blend, const float *lambdas, int ngrid, int eval_k,
                                      const ItSimulateBuffers *buf, ItFoldInSums *sums, int *solve_status);

/*
 * The simulations of one prior, whole (it_fold_in_run): the users
 * rows[0..nsel) (rows of R) in groups of group users; for each group the
 * item vectors without it (it_leave_out_items with als and chunk_flops,
 * into Ylo and YtY), YtY's basis (it_gram_basis into bmem, for
 * reveal[nreveal - 1] items and ngrid weights), then its users batch at a
 * time (it_fold_in_simulate_users, user i around priors[i]), summed into
 * sums (its nreveal and ngrid set; the run zeroes the rest).  should_stop (may be
 * NULL) is asked before each leave-out block and each batch.
 */
typedef struct ItFoldInRun
{
    /* the trained model */
    const ItCsr *R;
    const ItCsr *Rt;
    const float *X;
    const float *Y;
    const double *times;
    int         k;
    ItAlsParams als;
    double      chunk_flops;
    /* the simulated users */
    const int64_t *rows;
    const float *const *priors;
    int64_t     nsel;
    int64_t     group;
    int         batch;
    /* the simulation */
    uint64_t    salt;
    float       min_weight;
    const int  *reveal;
    int         nreveal;
    const ItPopBlend *blend;
    const float *lambdas;
    int         ngrid;
    int         eval_k;
    /*
     * NULL, or the items renumbered most popular first (blend->pop then in
     * that order, blend->sorted): order[p] the item numbered p, rank[i]
     * item i's number; Yp (nitems * k) receives the leave-out vectors in
     * that order, and the simulations rank them there (the same hits).
     */
    const int32_t *order;
    const int32_t *rank;
    float      *Yp;
    /* buffers: lo for the largest group, Ylo nitems * k, YtY k * k */
    ItLeaveOutBuffers lo;
    float      *Ylo;
    float      *YtY;
    double     *bmem;
    ItSimulateBuffers sim;      /* for batch users; sim.basis is set here */
    int         (*should_stop) (void *arg);
    void       *should_stop_arg;
    /* out */
    ItFoldInSums sums;
    int64_t     groups;         /* groups left out */
    int         status;         /* IT_FOLD_OK or the error */
    int         stage;          /* where it failed: 1 leave-out, 2 basis, 3 simulation */
    int         detail;         /* the failing step's own status */
    double      seconds;        /* the run's wall time */
    /* it_fold_in_run_start's thread */
    int         started;
    pthread_t   thread;
} ItFoldInRun;

/* Runs run on the calling thread; returns run->status. */
int         it_fold_in_run(ItFoldInRun *run);

/*
 * Starts it_fold_in_run(run) on a thread of its own (every signal
 * blocked), whose should_stop must be safe there; returns 1 when the
 * thread started, 0 when not (it_fold_in_run_join then runs it).  Until
 * the join the caller may not call BLAS: OpenBLAS's serial library is
 * not safe from two threads at once.
 */
int         it_fold_in_run_start(ItFoldInRun *run);

/* Waits for the thread it_fold_in_run_start started, or runs run here; returns run->status. */
int         it_fold_in_run_join(ItFoldInRun *run);

/* The outcome of the simulations of one prior. */
typedef struct ItFoldInChoice
{
    int         measured;       /* 0: too few users to choose */
    int         best;           /* index into the grid: the best criterion */
    int         chosen;         /* the weight chosen: the largest within tolerance of the best */
    double      tolerance;      /* one standard error of the best criterion */
    int         counted[IT_FOLD_MAX_REVEAL];   /* simulations in the criterion */
    double      precision[IT_FOLD_MAX_REVEAL][IT_FOLD_MAX_GRID];
    double      criterion[IT_FOLD_MAX_GRID];
} ItFoldInChoice;

/*
 * From the sums of the simulations: precision[r][g] = hitsum / (users[r]
 * * eval_k) (0 without users); a simulation counts when it has at least
 * min_users users; the criterion is the mean precision of the counted
 * ones; best maximises it (the larger weight on ties); the weight chosen
 * is the largest whose criterion is within tolerance, one standard error
 * of the best's (binomial over the users' eval_k slots), of the best's:
 * the one-standard-error rule, a stronger prior being the safer choice.
 * measured when the simulation of the fewest revealed (r = 0) counts.
 */
void        it_fold_in_choose(const ItFoldInSums *sums, int eval_k, int64_t min_users,
                              ItFoldInChoice *out);

#endif                          /* IT_FOLDIN_CHOICE_H */

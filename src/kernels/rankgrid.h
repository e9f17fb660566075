/*
 * rankgrid.h
 *    Precision@k of rankings mixed with a popularity term, over a grid of
 *    mixing weights: how a features -> interest model is checked against
 *    popularity on held-out trained users, and how much popularity its
 *    ranking takes in; and the precision of fold-in over a grid of prior
 *    weights, to choose that weight; and the paired statistics that
 *    compare two rankings or two losses row by row.  Plain C, no PostgreSQL headers; the
 *    conventions of kernels.h hold (caller-allocated buffers, no
 *    allocation, no printing; threads only where a function takes a
 *    number of them, and they call no BLAS).
 */
#ifndef IT_RANKGRID_H
#define IT_RANKGRID_H

#include <stddef.h>
#include <stdint.h>

/* Rows scored per sgemm. */
#define IT_RANK_GRID_BLOCK  64

/* Floats of workspace it_rank_grid_precision needs (0 on overflow or bad
 * sizes). */
size_t      it_rank_grid_workspace_floats(int64_t m, int k);

/*
 * For each row r in [0, n) and each j in [0, nblend), ranks the m items by
 *
 *     s_i = U_r . Y_i + blends[j] * pop[i]
 *
 * (ties by the lower index, as it_topk) and counts how many of the top k
 * are among the row's positives pos_idx[pos_ptr[r] .. pos_ptr[r + 1])
 * (item indexes; repeats and indexes outside [0, m) are ignored).
 * U is n rows of kdim floats, or with shared != 0 one vector of kdim
 * floats used for every row (its rankings are then computed once), or
 * NULL for a zero vector (kdim and Y are then not used: the ranking is
 * the popularity term alone).  pop may be NULL only when every blend is 0.
 * Nothing is excluded from the rankings.
 *
 * precision[j] receives the mean of hits / k over the rows that have at
 * least one positive, *users their number (precision is then all 0 when
 * it is 0).  row_hits, when not NULL, receives each row's hits:
 * row_hits[r * nblend + j], -1 for the rows without a positive (so that
 * two rankings can be compared row by row).  Products are cblas_sgemm over blocks of IT_RANK_GRID_BLOCK
 * rows.  workspace: it_rank_grid_workspace_floats(m, k) floats.  Returns 0,
 * or -1 on invalid arguments (nothing written).
 */
int         it_rank_grid_precision(const float *U, int shared, int64_t n, int kdim,
                                   const float *Y, int64_t m, const float *pop,
                                   const float *blends, int nblend,
                                   const int64_t *pos_ptr, const int32_t *pos_idx,
                                   int k, float *workspace,
                                   double *precision, int64_t *users,
                                   int32_t *row_hits);

/*
 * it_rank_grid_precision for n rows of U (not shared), the same hits and
 * precisions to the bit, with the rankings of up to nthreads threads (ItTeam):
 * the calling thread computes a block's products (the only BLAS calls)
 * while the others rank the rows of the block before, then ranks with
 * them.  workspace: it_rank_grid_threads_workspace_floats(m, k, n,
 * nblend, nthreads) floats (0 on overflow or bad sizes).  Returns 0, or
 * -1 on invalid arguments (nothing written).
 */
size_t      it_rank_grid_threads_workspace_floats(int64_t m, int k, int64_t n, int nblend,
                                                  int nthreads);
int         it_rank_grid_precision_threads(const float *U, int64_t n, int kdim,
                                           const float *Y, int64_t m, const float *pop,
                                           const float *blends, int nblend,
                                           const int64_t *pos_ptr, const int32_t *pos_idx,
                                           int k, float *workspace, int nthreads,
                                           double *precision, int64_t *users,
                                           int32_t *row_hits);

/*
 * it_rank_grid_precision for n rows of U (not shared), with the rankings
 * exact by the scores x.y_i summed in double then blends[j] * pop[i]
 * added in float (where it_rank_grid_precision ranks by sgemm's float
 * products: the two differ only between items whose scores tie to the
 * last bits), found from an 8-bit copy of Y (it_q8_encode, made here)
 * whose scores it_topk_exact re-ranks exactly.  The copy and the rows are
 * cut between up to nthreads threads (it_run_parts); each row's hits go
 * to their own slots and are summed in row order, so the result does not
 * depend on the threads.  About four times fewer cycles than the float
 * products, and on several threads (they call no BLAS).  workspace:
 * it_rank_grid_q8_workspace_bytes(m, kdim, n, nblend, k, nthreads) bytes,
 * any alignment (0 on overflow or bad sizes).  Returns 0, or -1 on
 * invalid arguments (nothing written).
 */
size_t      it_rank_grid_q8_workspace_bytes(int64_t m, int kdim, int64_t n, int nblend, int k,
                                            int nthreads);
int         it_rank_grid_precision_q8(const float *U, int64_t n, int kdim, const float *Y,
                                      int64_t m, const float *pop, const float *blends,
                                      int nblend, const int64_t *pos_ptr,
                                      const int32_t *pos_idx, int k, void *workspace,
                                      int nthreads, double *precision, int64_t *users,
                                      int32_t *row_hits);

/*
 * The implicit-ALS loss of each of n vectors against its row of a CSR
 * matrix ptr/idx/w (n rows; item indexes into Y[m*k]; weights w > 0):
 *
 *   out[r] = sum over every item i of c_i (p_i - x.y_i)^2
 *          = x'YtY x + sum over the row's positives of c (1 - s)^2 - s^2
 *
 * with s = x.y_i, c = 1 + alpha w, the positives being the entries with
 * w >= pos_min_weight (the others count as unseen items): the objective
 * a features model is trained on (mlp.h), row by row, so that two models
 * can be compared on held-out rows.  x is row r of U, or with shared != 0
 * the one vector U for every row.  YtY = Y'Y (k * k).  workspace: k
 * floats.  Accumulated in double.  Returns 0, or -1 on invalid arguments.
 */
int         it_als_row_losses(const float *U, int shared, int64_t n, int k,
                              const float *Y, const float *YtY,
                              const int64_t *ptr, const int32_t *idx, const float *w,
                              float alpha, float pos_min_weight,
                              float *workspace, double *out);

/*
 * Fold-in of one user from a few revealed interactions, over a grid of
 * prior weights, and the precision of each result on the user's other
 * positives: how the weight of a fold-in prior is chosen on held-out
 * trained users.  For each j in [0, ngrid):
 *
 *     x_j = it_fold_in(Y, kdim, YtY, revealed, weights, nrev, alpha,
 *                      lambdas[j], prior)
 *
 * ranks the m items by x_j . Y_i (ties by the lower index, as it_topk),
 * leaving out the revealed items (revealed[0..nrev) sorted ascending,
 * distinct, in [0, m)), and writes to hits[j] how many of the top k are
 * among the positives pos[0..npos) (item indexes; repeats, indexes
 * outside [0, m) and revealed items are ignored).  When no positive is
 * left, every hits[j] is -1 and nothing is folded in.  The scores of the
 * whole grid are one cblas_sgemm.  prior: kdim floats, or NULL for a zero
 * prior.  Every lambdas[j] must be > 0.  workspace:
 * it_fold_in_grid_workspace_floats(m, kdim, ngrid, k) floats.  Returns 0;
 * -1 on invalid arguments (nothing written); 1 when a fold-in cannot be
 * solved (hits then undefined).
 */
size_t      it_fold_in_grid_workspace_floats(int64_t m, int kdim, int ngrid, int k);

/*
 * A popularity term mixed into a ranking: item i scores
 * x . Y_i + blends[b] * pop[i], for each b in [0, nblend).  pop: m
 * floats (the popularity / its maximum, as serving scores it).  sorted:
 * pop is non-increasing (the items are numbered most popular first), and
 * the rankings bound blocks of items instead of reading every score
 * (it_topk_blend_sorted; the same answers).
 */
typedef struct ItPopBlend
{
    const float *pop;
    const float *blends;
    int         nblend;
    int         sorted;
} ItPopBlend;

/*
 * it_fold_in_grid_hits with a popularity term: each fold-in x_j ranks the
 * items by x_j . Y_i + blends[b] * pop[i], and hits[j * nblend + b]
 * counts its hits (blend NULL: the plain ranking, one hit per weight, as
 * it_fold_in_grid_hits).  The same workspace.  Every blends[b] >= 0 and
 * finite, nblend >= 1, or -1.
 */
int         it_fold_in_grid_hits_blend(const float *Y, int64_t m, int kdim, const float *YtY,
                                       float alpha, float positive_threshold, const float *prior,
                                       const ItPopBlend *blend,
                                       const int32_t *revealed, const float *weights, int nrev,
                                       const int32_t *pos, int64_t npos,
                                       const float *lambdas, int ngrid, int k,
                                       float *workspace, int32_t *hits);

/*
 * One fold-in of a batch: the revealed items (sorted, distinct, in
 * [0, m)) and their weights, the positives, the prior (kdim floats, or
 * NULL for zero), as the arguments of it_fold_in_grid_hits_blend.
 */
typedef struct ItGridQuery
{
    const int32_t *revealed;
    const float *weights;
    int         nrev;
    const int32_t *pos;
    int64_t     npos;
    const float *prior;
} ItGridQuery;

/*
 * it_fold_in_grid_hits_blend for nq queries against the same items: the
 * hits of query q go to hits[q * entries ..), entries = ngrid * nblend (or
 * ngrid without blend).  The scores of every query's grid are one
 * cblas_sgemm of nq * ngrid rows, which packs Y once for them all instead
 * of once per query.  workspace:
 * it_fold_in_grid_batch_workspace_floats(m, kdim, ngrid, k, nq, threads)
 * floats (nq = 1, threads = 1: it_fold_in_grid_workspace_floats).  The
 * rankings are split between threads threads (1 to IT_GRID_MAX_THREADS;
 * the products stay on the caller), which changes no hit.  basis: NULL, or YtY's
 * (it_gram_basis), in which the grids of queries of at most
 * basis->maxrank revealed items are solved (it_fold_in_grid_basis: the
 * same vectors to rounding, several times faster); the others, and all
 * without a basis, by it_fold_in_grid.  Returns 0; -1 on invalid
 * arguments; 1 when a fold-in cannot be solved.
 */
#define IT_GRID_MAX_THREADS 64
struct ItGramBasis;
size_t      it_fold_in_grid_batch_workspace_floats(int64_t m, int kdim, int ngrid, int k, int nq, int threads);
int         it_fold_in_grid_hits_batch(const float *Y, int64_t m, int kdim, const float *YtY,
                                       const struct ItGramBasis *basis, int threads,
                                       float alpha, float positive_threshold, const ItPopBlend *blend,
                                       const ItGridQuery *queries, int nq,
                                       const float *lambdas, int ngrid, int k,
                                       float *workspace, int32_t *hits);

int         it_fold_in_grid_hits(const float *Y, int64_t m, int kdim, const float *YtY,
                                 float alpha, float positive_threshold, const float *prior,
                                 const int32_t *revealed, const float *weights, int nrev,
                                 const int32_t *pos, int64_t npos,
                                 const float *lambdas, int ngrid, int k,
                                 float *workspace, int32_t *hits);

/*
 * Two rankings compared row by row, from the row_hits of
 * it_rank_grid_precision: the mean over the rows both rank (hits >= 0) of
 * (a[r * astride + aj] - b[r * bstride + bj]) / k, the difference of
 * their precision@k, in *mean, and in *z how many standard errors of that
 * mean it is (sample variance; +-infinity when every row differs by the
 * same non-zero amount, 0 when no row differs or none is ranked by both).
 */
void        it_paired_hits_difference(const int32_t *a, int astride, int aj,
                                      const int32_t *b, int bstride, int bj,
                                      int64_t n, int k, double *mean, double *z);

/*
 * The mean of a[i] - b[i] over i in [0, n) and how many standard errors
 * of it that is, as it_paired_hits_difference (0 and 0 when n is 0): for
 * the losses of it_als_row_losses of two models on the same rows.
 */
void        it_mean_difference(const double *a, const double *b, int64_t n,
                               double *mean, double *z);

#endif                          /* IT_RANKGRID_H */

/*
 * kernels.h
 *    Numeric kernels of interest_transfer: plain C99, no PostgreSQL headers.
 *
 * Every kernel works on buffers its caller allocates and never allocates or
 * frees memory itself (the few that need scratch space take it as an
 * argument and document its size).  They never print, never exit and never
 * longjmp, so they can be called from a backend between
 * CHECK_FOR_INTERRUPTS() calls and unit-tested without a server.
 *
 * Matrices are dense, row-major, float32: a matrix of n rows and k columns
 * is float[n * k], row r starting at r * k.
 */
#ifndef IT_KERNELS_H
#define IT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------
 * OpenBLAS's kernels (blas_core.c)
 * ------------------------------------------------------------------------ */

/*
 * The OpenBLAS core type to load instead of current (the core the library
 * chose) on a CPU with these features, or NULL to keep it: only the
 * library's fallback for CPUs it does not know ("Prescott") is replaced,
 * by "Cooperlake", "SkylakeX" or "Haswell" as the features allow.
 */
const char *it_blas_core_for(const char *current, int avx2_fma, int avx512, int avx512_bf16);

/* The core type OpenBLAS runs now, or NULL with another BLAS. */
const char *it_blas_core_name(void);

/*
 * The core it_blas_core_for chooses for the OpenBLAS loaded and this CPU,
 * or NULL: keep the kernels (OPENBLAS_CORETYPE is set, the BLAS is not a
 * DYNAMIC_ARCH OpenBLAS, or it knew the CPU).
 */
const char *it_blas_wanted_core(void);

/*
 * Reloads OpenBLAS's kernels for the core it_blas_core_for chooses on this
 * CPU, unless OPENBLAS_CORETYPE is set or the BLAS is not a DYNAMIC_ARCH
 * OpenBLAS; returns the core now loaded, or NULL when nothing changed.
 * Call once, before any BLAS call and any thread.
 */
const char *it_blas_prefer_core(void);

/* ------------------------------------------------------------------------
 * Sparse matrices and id mapping (sparse.c)
 * ------------------------------------------------------------------------ */

/* Compressed sparse rows.  Column indexes are sorted within each row and
 * unique; data holds the summed raw weights (r_ui > 0). */
typedef struct ItCsr
{
    int64_t     nrows;
    int64_t     ncols;
    int64_t     nnz;
    int64_t    *indptr;         /* nrows + 1 */
    int32_t    *indices;        /* nnz */
    float      *data;           /* nnz */
} ItCsr;

/* Sorts ids[0..n) ascending and removes duplicates in place; returns the
 * number of distinct ids. */
int64_t     it_sort_unique_ids(int64_t *ids, int64_t n);

/* Index of id in sorted[0..n) (the first, if repeated), or -1 when
 * absent: interpolation probes, then a binary search. */
int64_t     it_find_id(const int64_t *sorted, int64_t n, int64_t id);

/*
 * Builds a CSR matrix from n coordinate triples (rows[i], cols[i], vals[i]),
 * summing duplicates of a (row, col) pair, sorting columns within rows and
 * dropping cells whose summed value is not > 0 (so NaN sums are dropped
 * too).  Duplicates are summed in input order.  Triples whose row or column
 * is outside [0, nrows) x [0, ncols) are ignored.
 * out->nrows and out->ncols must be set by the caller; out->indptr must hold
 * nrows + 1 entries, out->indices and out->data n entries each.
 * work must hold n int64_t.  Sets out->nnz and returns it; returns -1 (and
 * builds nothing) when n >= 2^32.  O(n + nrows) plus the sorts of the rows.
 */
int64_t     it_csr_from_coo(ItCsr *out, int64_t n, const int32_t *rows,
                            const int32_t *cols, const float *vals,
                            int64_t *work);

/* Writes the transpose of a into t.  t->indptr must hold a->ncols + 1
 * entries, t->indices and t->data a->nnz entries; sets t's sizes. */
void        it_csr_transpose(const ItCsr *a, ItCsr *t);

/*
 * Moves a onto other row and column indexes: row r of a becomes row
 * rowmap[r] of out and column c becomes column colmap[c]; -1 drops the
 * row or column.  Both maps must be strictly increasing over the entries
 * they keep (a mapping of sorted ids onto a sorted superset or subset), so
 * out's rows and their columns stay sorted; rows of out no row of a maps
 * to are empty.  out->nrows and out->ncols must be set by the caller;
 * out->indptr must hold nrows + 1 entries, out->indices and out->data
 * a->nnz entries each.  aux (NULL, or a value per entry of a, such as its
 * time) is carried along into aux_out.  dropped (NULL, or two counters)
 * gets the entries dropped with their row and, of the rows kept, with
 * their column.  Sets out->nnz and returns it; returns -1 (out undefined)
 * when a map is not increasing or points outside out.
 */
int64_t     it_csr_remap(const ItCsr *a, const int32_t *rowmap, const int32_t *colmap,
                         ItCsr *out, const double *aux, double *aux_out, int64_t *dropped);

/* out[r] = the entries of row r that are positives: data >= threshold
 * (every entry when threshold <= 0).  Popularity counts these, so the
 * fallback ranks by the same notion of a positive as the model. */
void        it_csr_row_positives(const ItCsr *a, float threshold, int64_t *out);

/*
 * Co-buyers (neighbours.c).  For a user who took items[0..n) (indexes,
 * repeats count again, out-of-range ones are ignored), adds to
 * scores[j - lo], for every item j in [lo, hi), the number of the user's
 * items that each other user shares, summed over the users who took j:
 *   scores[j - lo] += sum over u != exclude_user with j in R_u of |items & R_u|.
 * R is users x items, Rt its transpose (only their structure is read).
 * counts must hold R->nrows zeros and is left so; touched R->nrows entries
 * of scratch; scores (hi - lo entries) is added to.  Returns the work
 * done (entries visited).  O(sum of the items' users + their rows in
 * [lo, hi)).
 */
int64_t     it_cobuyer_scores(const ItCsr *R, const ItCsr *Rt, const int32_t *items, int n,
                              int64_t exclude_user, int64_t lo, int64_t hi,
                              int32_t *counts, int64_t *touched, float *scores);

/* ------------------------------------------------------------------------
 * Implicit ALS with conjugate gradient (als.c)
 *
 * Minimises  sum_ui c_ui (p_ui - x_u.y_i)^2 + reg (sum |x_u|^2 + sum |y_i|^2)
 * with p_ui = [r_ui >= positive_threshold] (every stored entry when the
 * threshold is 0: weights are > 0), c_ui = 1 + alpha * r_ui (Hu, Koren,
 * Volinsky 2008): on ratings, an entry below the threshold is a confident
 * negative, its confidence still growing with r,
 * each row solved approximately by cg_steps of conjugate gradient,
 * warm-started from its previous value (Takacs et al. 2011).
 * ------------------------------------------------------------------------ */

/* Rows are solved in blocks of at most IT_ALS_BLOCK rows that never cross
 * a multiple of IT_ALS_BLOCK (absolute row numbers; blocks of heavy rows
 * are cut shorter); threads take whole blocks, and a block's dense products
 * are one sgemm per CG step.  Callers that split a half-step into chunks
 * should cut at multiples of it: the blocks, and so the sgemm calls, are
 * then the same as in one call, and so is the result (OpenBLAS's result
 * for a row depends on the rows it is computed with). */
#define IT_ALS_BLOCK        64
#define IT_ALS_MAX_THREADS  64  /* more threads are capped to this */

typedef struct ItAlsParams
{
    int         factors;        /* k */
    float       regularization; /* lambda */
    float       alpha;          /* confidence scale */
    int         cg_steps;       /* CG steps per row per half-step */
    int         threads;        /* >= 1; worker threads, joined before return */
    float       positive_threshold; /* p_ui = [r_ui >= it]; 0: every entry */
} ItAlsParams;

/* Fills X[n*k] with small reproducible random values (uniform in
 * [-scale, scale]) drawn from seed. */
void        it_random_init(float *X, int64_t n, int k, uint64_t seed,
                           float scale);

/* gram[k*k] = A^T A for A[n*k] (cblas_ssyrk, then mirrored to a full
 * symmetric matrix). */
void        it_gram(const float *A, int64_t n, int k, float *gram);

/* norms[i] = |A[i]| for the n rows of A[n*k], summed in double. */
void        it_row_norms(const float *A, int64_t n, int k, float *norms);

/*
 * One half-step on rows [row_begin, row_end) of R: for each such row u,
 * improves X[u] towards the solution of
 *   (YtY + Y^T (C_u - I) Y + reg I) x = Y^T C_u p_u
 * with p->cg_steps CG steps from the current X[u].  Rows with no entries
 * are set to zero.  YtY = Y^T Y (without regularisation).
 * scratch must hold it_als_scratch_floats(k, threads) floats.
 * Runs p->threads threads (the caller's thread is one of them), created and
 * joined inside the call; only the caller's thread calls BLAS.  The result
 * is bit-identical for any number of threads.  Only the rows
 * [row_begin, row_end) of X are read or written.
 */
void        it_als_half_step(const ItCsr *R, const float *Y, const float *YtY,
                             float *X, const ItAlsParams *p,
                             int64_t row_begin, int64_t row_end,
                             float *scratch);
size_t      it_als_scratch_floats(int k, int threads);

/*
 * The vector width, in floats, of the sparse loops of the half-steps and
 * of it_als_loss_gram_mt: 0 picks the widest this machine runs (what the
 * first call does by itself), 4, 8 or 16 asks for that one.  Returns the
 * width now used, or 0 (and changes nothing) when the machine or the
 * build cannot run the one asked for.  Widths agree to rounding (the
 * sums are taken in the same order, but targets may contract to FMA
 * differently); for the unit tests and benchmarks.  Not thread-safe against running half-steps.
 */
int         it_als_vector_width(int width);

/*
 * it_als_half_step that also leaves in row_loss[u], for each row u of
 * [row_begin, row_end), the row's observed part of the objective at the
 * X[u] the solve starts from: sum_i c_ui (p_ui - s_ui)^2 - s_ui^2, s_ui =
 * x_u.y_i as the solve computes it (in float), summed in double; 0 for a
 * row with no entries.  Summed over the rows, plus it_als_loss_dense of
 * the starting X's gram matrix, it is the objective of the X the step
 * starts from (it_als_loss_gram to rounding), almost for free: the solve
 * computes every s_ui anyway.  row_loss NULL: it_als_half_step.
 */
void        it_als_half_step_loss(const ItCsr *R, const float *Y, const float *YtY,
                                  float *X, const ItAlsParams *p,
                                  int64_t row_begin, int64_t row_end,
                                  float *scratch, double *row_loss);

/* The objective's terms that are not per entry, from the gram matrices:
 * trace(XtX YtY) + reg (trace XtX + trace YtY). */
double      it_als_loss_dense(const float *XtX, const float *YtY, int k, float reg);

/*
 * The full training objective above (every cell of the matrix, computed
 * with the YtY trick, so O(nnz k + n k^2)), including regularisation,
 * accumulated in double.  YtY must be Y^T Y.  Single-threaded.
 */
double      it_als_loss(const ItCsr *R, const float *X, const float *Y,
                        const float *YtY, int k, float reg, float alpha,
                        float positive_threshold);

/* The same with XtX = X^T X (it_gram) given, which makes the dense part
 * O(k^2) instead of O(n k^2): O(nnz k) in all.  XtX may be NULL (then it
 * is it_als_loss). */
double      it_als_loss_gram(const ItCsr *R, const float *X, const float *Y,
                             const float *XtX, const float *YtY, int k,
                             float reg, float alpha, float positive_threshold);

/* it_als_loss_gram on threads threads (created and joined inside).  The
 * result is identical for any number of threads: the rows are summed in
 * fixed parts, combined in order. */
double      it_als_loss_gram_mt(const ItCsr *R, const float *X, const float *Y,
                                const float *XtX, const float *YtY, int k,
                                float reg, float alpha, float positive_threshold,
                                int threads);

/* ------------------------------------------------------------------------
 * Fold-in with a prior (foldin.c)
 *
 *   x = argmin sum_i c_i (p_i - x.y_i)^2 + lambda0 |x - prior|^2
 *     = (YtY + sum_i (c_i - 1) y_i y_i^T + lambda0 I)^-1
 *       (sum_i c_i p_i y_i + lambda0 prior)
 * over the user's n items (indexes into Y, weights w_i > 0,
 * c_i = 1 + alpha w_i, p_i = [w_i >= positive_threshold]).  Solved exactly (Cholesky, LAPACK sposv).
 * With n == 0 the answer is the prior itself (when lambda0 > 0).
 * prior may be NULL (a zero prior).  Items may repeat (each counts).
 * O(n k^2 + k^3).  scratch must hold k*k + k floats.  Returns 0 on success,
 * non-zero when the system is not positive definite or the solution is not
 * finite (x is then left unchanged).
 * ------------------------------------------------------------------------ */
int         it_fold_in(const float *Y, int k, const float *YtY,
                       const int32_t *items, const float *weights, int n,
                       float alpha, float positive_threshold, float lambda0,
                       const float *prior, float *x, float *scratch);

/*
 * it_fold_in for each weight lambdas[0..ngrid) at once: x_j to X + j * k.
 * The evidence (YtY plus the items' rank-one terms, and the right-hand
 * side) is formed once and each weight adds only its diagonal and prior
 * term, so a grid costs n k^2 + ngrid k^3 instead of ngrid (n k^2 + k^3).
 * scratch must hold 2 (k*k + k) floats.  Returns as it_fold_in (the
 * first failing weight's status; the vectors before it are written).
 */
int         it_fold_in_grid(const float *Y, int k, const float *YtY,
                            const int32_t *items, const float *weights, int n,
                            float alpha, float positive_threshold,
                            const float *lambdas, int ngrid,
                            const float *prior, float *X, float *scratch);

/*
 * The eigendecomposition YtY = Q diag(evals) Q^T of a Gram matrix (LAPACK
 * dsyev, in double), for many fold-ins against the same YtY
 * (it_fold_in_grid_basis).  Row j of Vt is the j-th eigenvector; evals
 * ascend.  work holds one fold-in at a time of at most maxrank items and
 * maxgrid weights: one caller at a time.
 */
typedef struct ItGramBasis
{
    int         k;
    int         maxrank;
    int         maxgrid;
    double     *Vt;             /* k * k */
    double     *evals;          /* k */
    double     *work;
} ItGramBasis;

/*
 * The doubles it_gram_basis needs in mem for these sizes (0 when they
 * are not positive or overflow).
 */
size_t      it_gram_basis_doubles(int k, int maxrank, int maxgrid);

/*
 * Decomposes YtY (k x k, its upper triangle read, row-major) into basis,
 * whose arrays point into mem (it_gram_basis_doubles(k, maxrank, maxgrid)
 * doubles).  Returns 0, LAPACK's info, or -1 on invalid arguments or a
 * YtY that is not finite.
 */
int         it_gram_basis(const float *YtY, int k, int maxrank, int maxgrid,
                          double *mem, ItGramBasis *basis);

/*
 * it_fold_in_grid against the YtY basis was made of, solved in its
 * eigenvector basis: YtY + lambda I is diagonal there, and the items'
 * terms are a rank-n update (Woodbury), so the weights cost O(n^2 k) each
 * after O(n k^2) for the items, instead of O(k^3) each; in double.  n at
 * most basis->maxrank, ngrid at most basis->maxgrid, every weight > 0, or
 * -1.  Returns 0; 1 when a system is singular or not positive definite;
 * -1 when a solution is not finite (X is then partly written).
 */
int         it_fold_in_grid_basis(const float *Y, const ItGramBasis *basis,
                                  const int32_t *items, const float *weights, int n,
                                  float alpha, float positive_threshold,
                                  const float *lambdas, int ngrid,
                                  const float *prior, float *X);

/* ------------------------------------------------------------------------
 * Top-k selection (topk.c)
 * ------------------------------------------------------------------------ */

/*
 * Writes to out_idx/out_score the indexes and values of the k largest
 * scores[0..n), best first, ties broken by the lower index, skipping the
 * indexes listed in exclude[0..nexclude) (sorted ascending) and any NaN.
 * Uses out_idx/out_score as a bounded min-heap while scanning.
 * Returns how many were written (min(k, n - excluded - NaN); 0 when k <= 0).
 * Exclusions out of [0, n) or repeated are harmless.  O(n + nexclude +
 * m log k), m the number of heap replacements.
 */
int         it_topk(const float *scores, int64_t n,
                    const int32_t *exclude, int64_t nexclude,
                    int k, int32_t *out_idx, float *out_score);

/*
 * it_topk of scores[i] + blend * pop[i] (the expression computed in float,
 * as a caller blending into a buffer would), without writing the blended
 * scores anywhere; pop may be NULL when blend is 0.
 */
int         it_topk_blend(const float *scores, const float *pop, float blend, int64_t n,
                          const int32_t *exclude, int64_t nexclude,
                          int k, int32_t *out_idx, float *out_score);

/*
 * Top k over items in order of popularity.  it_topk_bound_blocks(n):
 * the blocks of scores[0..n) it_topk_block_maxima bounds (of 64 items,
 * the last one shorter); it_topk_block_maxima: bmax[b] the largest score
 * of block b, bsuffix[b] the largest of blocks b and after (NaN left out,
 * -inf for none), both of it_topk_bound_blocks(n) floats.
 * it_topk_blend_sorted: it_topk_blend's answer, exactly, when pop (NULL
 * when blend is 0) is non-increasing, blend >= 0 and bmax, bsuffix are
 * those of scores: once k items are kept, a block that cannot beat the
 * worst of them (its largest score plus blend times its first item's
 * popularity) is skipped, and the scan stops where no later block can.
 * Scores computed for items sorted by popularity (most popular first)
 * are mostly ranked from their first blocks.
 */
int64_t     it_topk_bound_blocks(int64_t n);
void        it_topk_block_maxima(const float *scores, int64_t n, float *bmax, float *bsuffix);

/*
 * The vector width, in floats, of the block checks of the top-k scans
 * (it_topk, it_topk_blend, it_topk_blend_sorted, it_topk_block_maxima,
 * it_topk_candidates): as it_als_vector_width.  Every width gives the
 * same answers (the checks are compares); for the unit tests and
 * benchmarks.  Not thread-safe against running scans.
 */
int         it_topk_vector_width(int width);
int         it_topk_blend_sorted(const float *scores, const float *pop, float blend, int64_t n,
                                 const int32_t *exclude, int64_t nexclude,
                                 const float *bmax, const float *bsuffix,
                                 int k, int32_t *out_idx, float *out_score);

/*
 * Exact ranking of near ties.  scores[0..n) approximates an exact score
 * exact(arg, i) (a BLAS product sums in an order, with or without FMA,
 * that depends on the kernel and the number of rows, so its last bits
 * depend on the CPU) within tol(i) = tol_scale * norms[i] + tol_const
 * (norms NULL: tol_const).  Ranking by scores[] would let those bits
 * decide between items whose exact scores tie or nearly tie; these
 * functions rank by exact() but compute it only for the items that could
 * be among the k best.
 *
 * Why that is enough: let S be the k best by scores[] and w the k-th of
 * them; every j in S has exact(j) >= w - tol(j) >= w - tolS, tolS the
 * largest tol(j) over S.  An item with scores[i] + tol(i) < w - tolS has
 * exact(i) < exact(j) for all j in S, so k items beat it: it is not among
 * the k best.  The others are the candidates (S and, normally, a few
 * more).
 */
typedef float (*ItExactScoreFn) (const void *arg, int64_t idx);

/*
 * The candidates for the k best of scores[0..n) (skipping exclude, sorted,
 * as it_topk does), given it_topk's answer top_idx/top_score[0..got) for
 * the same arguments: with got < k every one of those items, else every
 * non-excluded item with scores[i] + tol(i) >= w - tolS (NaN: not; a NaN
 * bound or tol_scale: every item whose scores[i] + tol(i) is not NaN).
 * Returns their number, total; when total <= cap they are written,
 * ascending, to cand (else cand's contents are unspecified: call again
 * with a larger buffer).
 */
int64_t     it_topk_candidates(const float *scores, int64_t n,
                               const int32_t *exclude, int64_t nexclude, int k,
                               const int32_t *top_idx, const float *top_score, int got,
                               const float *norms, double tol_scale, double tol_const,
                               int32_t *cand, int64_t cap);

/*
 * The k best of scores[0..n) by exact(), best first, ties by the lower
 * index, skipping exclude (sorted) and NaN scores: out_idx/out_score hold
 * k entries, cand and cand_score cap entries of scratch (cap >= k; k + 64
 * is usually enough).  Returns how many were written, or -1, writing
 * nothing useful, when the candidates need more than cap entries: *need
 * then gets that number (call again with buffers that large).  exact() is
 * called only when the candidates fit, once per candidate.
 */
int         it_topk_exact(const float *scores, int64_t n,
                          const int32_t *exclude, int64_t nexclude, int k,
                          const float *norms, double tol_scale, double tol_const,
                          ItExactScoreFn exact, const void *arg,
                          int32_t *cand, float *cand_score, int64_t cap, int64_t *need,
                          int32_t *out_idx, float *out_score);

/* ------------------------------------------------------------------------
 * 8-bit item vectors for a first pass (quant.c)
 * ------------------------------------------------------------------------ */

#define IT_Q8_BLOCK 16
#define IT_Q8_GROUP 4

/* n rounded up to whole blocks. */
int64_t     it_q8_padded(int64_t n);

/* k rounded up to whole groups of dimensions (the padding dimensions are 0). */
int         it_q8_kpad(int k);

/*
 * The 8-bit copy of the n item vectors Y (n * k): Q (it_q8_padded(n) *
 * it_q8_kpad(k) bytes), scale (it_q8_padded(n) floats; see quant.c for the
 * layout), tol[0..n), tol_block (it_q8_padded(n) / IT_Q8_BLOCK floats)
 * the largest tol of each block, and *qnorm_max the largest norm of an
 * item's 8-bit vector: for any x, this scan's score of item i (it_q8_scores, with x
 * quantised by it_q8_query) is within |x| * tol[i] + it_q8_query's bound
 * of the float dot product y_i . x, however that is summed (so
 * it_topk_exact with norms = tol, tol_scale = |x| and tol_const = that
 * bound finds the exact top k from the 8-bit scores).
 */
void        it_q8_encode(const float *Y, int64_t n, int k, int8_t *Q, float *scale, float *tol,
                         float *qnorm_max, float *tol_block);

/* The bytes of it_q8_query's qx for k dimensions. */
size_t      it_q8_query_bytes(int k);

/*
 * Quantises a user's vector x (k floats, finite) for it_q8_scores: qx
 * (it_q8_query_bytes(k)) and its scale *sx.  Returns the query's part of
 * the bound on every score's error, for the items of an it_q8_encode
 * whose *qnorm_max was qnorm_max.
 */
double      it_q8_query(const float *x, int k, float qnorm_max, int8_t *qx, float *sx);

/*
 * scores[i - lo] for the items i in [lo, hi): (float) (q_i . qx) *
 * (scale[i] * sx), the integer dot product exact (k <= 65536), the same
 * bits from every implementation; and, when block_max is not NULL,
 * block_max[b] (it_q8_blocks(lo, hi) of them) the largest score of the
 * items of [lo, hi) in block lo / IT_Q8_BLOCK + b.
 */
void        it_q8_scores(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                         const int8_t *qx, float sx, float *scores, float *block_max);

/*
 * it_q8_scores with the range cut into up to nthreads parts (at most
 * IT_Q8_MAX_SCAN_THREADS), scanned at once by the caller and threads
 * started for the call: the same scores and block maxima, bit for bit.
 * Fewer than 2 blocks per thread: one scan, no thread.
 */
#define IT_Q8_MAX_SCAN_THREADS 8
void        it_q8_scores_threads(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                                 const int8_t *qx, float sx, float *scores, float *block_max, int nthreads);

/* The number of blocks items [lo, hi) touch. */
int64_t     it_q8_blocks(int64_t lo, int64_t hi);

/* Picks the scans of both copies this CPU runs: call before threads that scan start. */
void        it_scan_pick(void);

/*
 * The 4-bit copy's scales, one entry a block: item b * IT_Q8_BLOCK + t has
 * the scale (float) m[t] * unit (it_q4_scale), unit the largest scale of
 * the block's items / 255, so that the scan reads a byte an item beside
 * its nibbles instead of a float.
 */
typedef struct ItQ4Scales
{
    float       unit;
    uint8_t     m[IT_Q8_BLOCK];
} ItQ4Scales;

static inline float
it_q4_scale(const ItQ4Scales *scale, int64_t i)
{
    return (float) scale[i / IT_Q8_BLOCK].m[i % IT_Q8_BLOCK] * scale[i / IT_Q8_BLOCK].unit;
}

/*
 * The 4-bit copy (quant.c): half the 8-bit copy's bytes, for the first
 * pass over many items.  Q holds it_q4_bytes(n, k) bytes (it_q4_runs(k)
 * runs of 64 bytes per block of IT_Q8_BLOCK items), scale
 * it_q8_padded(n) / IT_Q8_BLOCK entries; tol, *qnorm_max and tol_block
 * as it_q8_encode's, with the same contract: for
 * any x, it_q4_scores' score of item i (x quantised by it_q8_query with
 * this copy's *qnorm_max) is within |x| * tol[i] + it_q8_query's bound of
 * the float dot product y_i . x.  The bound is about 16 times the 8-bit
 * copy's, so more items are scored exactly after the scan.
 */
int         it_q4_runs(int k);
size_t      it_q4_bytes(int64_t n, int k);
void        it_q4_encode(const float *Y, int64_t n, int k, uint8_t *Q, ItQ4Scales *scale, float *tol,
                         float *qnorm_max, float *tol_block);

/* it_q8_scores, it_q8_scores_threads and it_q8_scores_variant of the 4-bit copy. */
void        it_q4_scores(const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi, int k,
                         const int8_t *qx, float sx, float *scores, float *block_max);
void        it_q4_scores_threads(const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi, int k,
                                 const int8_t *qx, float sx, float *scores, float *block_max, int nthreads);
int         it_q4_scores_variant(int variant, const uint8_t *Q, const ItQ4Scales *scale, int64_t lo, int64_t hi,
                                 int k, const int8_t *qx, float sx, float *scores, float *block_max);

/*
 * One query for it_q8_shortlist to scan a block of again: the 8-bit copy
 * (Q, scale, k) and the query (it_q8_query's qx and sx); or, when Q4 is
 * not NULL, the 4-bit copy Q4 (scale4 its scales: it_q4_scores).
 */
typedef struct ItQ8Rescan
{
    const int8_t *Q;
    const float *scale;
    int         k;
    const int8_t *qx;
    float       sx;
    const uint8_t *Q4;
    const struct ItQ4Scales *scale4;
} ItQ8Rescan;

/*
 * A superset of it_topk_candidates' candidates (so of the exact top k)
 * from it_q8_scores' scores and block_max of items [lo, hi), with
 * tolerances tol(i) = tol_scale * tol[i - lo] + tol_const (tol_block: the
 * encoding's, indexed by block): the indexes i - lo, not in exclude
 * (sorted, relative to lo), of the items that can reach the k-th best
 * score, found from the block maxima (quant.c), ascending, in list when
 * they fit in cap.  Returns their number, or -1 when no such bound is
 * found (fewer than k blocks with a finite maximum, infinite scores):
 * then rank all the scores.  block_max is overwritten (the blocks of
 * excluded items get their maximum without them); top_idx/top_score: k
 * entries of scratch.  list_score, when not NULL, gets the listed items'
 * scores beside list.  With scores NULL (block maxima from
 * it_q8_scores_many without scores) the few blocks it reads are scanned
 * again for rescan's query alone: the same list, a fraction of the bytes.
 */
int64_t     it_q8_shortlist(const float *scores, const ItQ8Rescan *rescan, float *block_max, int64_t lo,
                            int64_t hi, const int32_t *exclude, int64_t nexclude, int k,
                            const float *tol, const float *tol_block, double tol_scale, double tol_const,
                            int32_t *top_idx, float *top_score, int32_t *list, float *list_score, int64_t cap);

/*
 * it_q8_shortlist from the 4-bit copy's block maxima, which it scans first
 * into block_max (q4: the 4-bit copy and the 8-bit query; tol4_block and
 * tol4_const its bounds): the blocks that can hold one of the k best items
 * are scored again from the 8-bit copy (Q8, scale8; tol8 indexed from lo,
 * tol8_block by block, tol8_const the query's bound for that copy), and
 * the items of those blocks that can reach the k-th best score by the
 * 8-bit bounds are listed (i - lo, ascending, not excluded) with their
 * 8-bit scores in list_score (when not NULL), as many as fit in cap.
 * Returns their number, or -1 when there is no bound (rank the range
 * otherwise).  Scans the 4-bit copy, and then reads only the candidate
 * blocks of the 8-bit copy, over up to nthreads threads (started once for
 * both, joined before it returns): the same list for any number.
 * block_max (it_q8_blocks(lo, hi) entries) is scratch; blocks
 * (it_q8_blocks(lo, hi) entries) and block_scores (IT_Q8_BLOCK times
 * that) are scratch; top_idx/top_score: k entries of scratch.
 */
int64_t     it_q4_shortlist(const ItQ8Rescan *q4, float *block_max, int64_t lo, int64_t hi,
                            const int32_t *exclude, int64_t nexclude, int k, const float *tol4_block,
                            double tol_scale, double tol4_const, const int8_t *Q8, const float *scale8,
                            const float *tol8, const float *tol8_block, double tol8_const,
                            int32_t *top_idx, float *top_score, int32_t *blocks, float *block_scores,
                            int32_t *list, float *list_score, int64_t cap, int nthreads);

/*
 * it_q8_scores for nq queries at once (each item block read once for
 * several of them): qx holds the nq queries of it_q8_query, it_q8_query_bytes(k)
 * apart, sx their scales; query u's scores are scores[u * (hi - lo) ..]
 * and its block maxima block_max[u * it_q8_blocks(lo, hi) ..], the same
 * values it_q8_scores gives for that query alone.  With scores NULL only
 * the block maxima are written.
 */
void        it_q8_scores_many(const int8_t *Q, const float *scale, int64_t lo, int64_t hi, int k,
                              int nq, const int8_t *qx, const float *sx, float *scores, float *block_max);

/*
 * The same with one of its implementations (it_q8_scores picks the best
 * the CPU has), for tests: returns -1, writing nothing, when this CPU
 * cannot run it.
 */
#define IT_Q8_PLAIN     0
#define IT_Q8_AVX2      1
#define IT_Q8_AVX512    2       /* AVX-512 VNNI */
int         it_q8_scores_many_variant(int variant, const int8_t *Q, const float *scale, int64_t lo,
                                      int64_t hi, int k, int nq, const int8_t *qx, const float *sx,
                                      float *scores, float *block_max);
int         it_q8_scores_variant(int variant, const int8_t *Q, const float *scale, int64_t lo, int64_t hi,
                                 int k, const int8_t *qx, float sx, float *scores, float *block_max);

/*
 * One query's ranking for it_q8_scores_rank_many: its 8-bit scores of [lo, hi)
 * (NULL when the call keeps no scores) and their block maxima
 * (it_q8_scores_many; block_max is overwritten as it_q8_shortlist
 * does), the float query x (k floats), exclude (sorted,
 * 0 = item lo) to skip, and the bound on each score's error, tol_scale *
 * tol[i] + tol_const.  out_idx (item indexes, from item 0) and out_score
 * hold kk entries; got is how many were written, or -1 when the ranking
 * needs more room than the scratch has, or x is NULL (rank that query
 * alone).
 */
typedef struct ItQ8Ranking
{
    const float *x;
    const float *scores;
    float      *block_max;
    const int32_t *exclude;
    int64_t     nexclude;
    double      tol_scale;
    double      tol_const;
    int32_t    *out_idx;
    float      *out_score;
    int         got;
} ItQ8Ranking;

/* The scratch it_q8_scores_rank_many needs for kk and nthreads. */
size_t      it_q8_rank_scratch_bytes(int kk, int nthreads);

/*
 * it_q8_scores_many over threads (q8_many.c), each query then ranked
 * (when r is not NULL, r[u] for query u): its kk best items, as
 * it_q8_shortlist and then it_topk_exact rank them with exact scores x.y
 * (summed in double, in order: the bits the server reports), ties by the
 * lower index.  Y holds the float item vectors (k each), tol and
 * tol_block the it_q8_encode bounds.  The queries are cut into up to
 * nthreads parts (it_start_threads), whole tiles of 16 each, and a tile's
 * rankings follow its scan; scores, block maxima and rankings are those
 * of each query alone.  With scores NULL the scan writes only the block
 * maxima (r[u].scores must be NULL too) and each ranking scans the few
 * blocks its shortlist reads again (it_q8_shortlist's rescan): the same
 * rankings without writing and reading back every score.
 */
void        it_q8_scores_rank_many(const int8_t *Q, const float *scale, const float *Y, int64_t lo,
                                   int64_t hi, int k, int nq, const int8_t *qx, const float *sx,
                                   float *scores, float *block_max, const float *tol,
                                   const float *tol_block, int kk, ItQ8Ranking *r, void *scratch,
                                   int nthreads);

/* scores[0..n) = Y[n*k] x  (cblas_sgemv). */
void        it_score_all(const float *Y, int64_t n, int k, const float *x,
                         float *scores);

/*
 * The scores of nx users at once: S[nx * n] (row u: user u's scores of the
 * n items) = X[nx * k] Y[n * k]^T, one cblas_sgemm.  n must fit in an int
 * (it is the row stride of S).  Each row equals it_score_all's up to
 * rounding (a matrix product may sum in another order).
 */
void        it_score_many(const float *Y, int64_t n, int k, const float *X, int nx,
                          float *S);

/* y[0..n) += a x[0..n)  (cblas_saxpy). */
void        it_add_scaled(float *y, const float *x, int64_t n, float a);

/* ------------------------------------------------------------------------
 * Ranking metrics of one user (metrics.c)
 * ------------------------------------------------------------------------ */

typedef struct ItUserMetrics
{
    double      precision;      /* hits in top k / k */
    double      recall;         /* hits in top k / npos */
    double      ndcg;
    double      ap;             /* average precision at k */
    double      auc;            /* positives vs. non-excluded negatives */
} ItUserMetrics;

/*
 * Metrics at k for one user given scores over all n items, the held-out
 * positives pos[0..npos) and the excluded (training-seen) items
 * exclude[0..nexclude), both sorted ascending.  Positives that are also
 * excluded (or out of range, or repeated) are ignored.  top_idx/top_score
 * receive the user's top k (k entries each, it_topk) so the caller can
 * compute coverage.  precision = hits / k, recall = hits / npos, NDCG with
 * binary gains (ideal DCG over min(npos, k)), AP = sum of the precision at
 * each hit / min(npos, k); AUC over the non-excluded items, ties counting
 * one half, NaN scores ranking last; auc is NaN when there is no negative.
 * O(n log min(npos, 256) * ceil(npos / 256)).  Returns the number of
 * positives counted (0 means the user is skipped; *out is then all zero).
 */
int64_t     it_rank_metrics(const float *scores, int64_t n,
                            const int32_t *pos, int64_t npos,
                            const int32_t *exclude, int64_t nexclude,
                            int k, int32_t *top_idx, float *top_score,
                            ItUserMetrics *out);

/* ------------------------------------------------------------------------
 * A validation slice (holdout.c)
 * ------------------------------------------------------------------------ */

/*
 * Splits R into train and held-out parts.  About max_users of the users
 * with at least min_rows (and at least 2) interactions, chosen by seed,
 * each hold out every interaction with probability fraction (chosen by
 * seed), but at least one and never all; only positives (weight >=
 * positive_threshold) are held out, the others stay in train.  train->indptr must hold
 * R->nrows + 1 entries, train->indices and train->data R->nnz; held_users
 * max_users entries, held_indptr max_users + 1, held_items R->nnz.
 * Held items of a user are ascending, as in R.  Returns the number of
 * held-out users (their indexes in held_users, ascending).  The same
 * seed gives the same split.
 */
int64_t     it_holdout_split(const ItCsr *R, uint64_t seed, int64_t max_users,
                             int64_t min_rows, double fraction,
                             float positive_threshold, ItCsr *train,
                             int32_t *held_users, int64_t *held_indptr,
                             int32_t *held_items);

/*
 * Mean precision at topk over the held-out users of a split, ranking every
 * item by x_u.y_i and leaving out the user's training items: X is
 * train->nrows * k, Y nitems * k.  scores must hold nitems floats,
 * top_idx / top_score topk entries.  *counted gets the number of users
 * counted (those with a held-out item that is not also a training item).
 */
double      it_holdout_precision(const float *X, const float *Y, int64_t nitems, int k,
                                 const ItCsr *train, const int32_t *held_users,
                                 const int64_t *held_indptr, const int32_t *held_items,
                                 int64_t nheld, int topk, float *scores,
                                 int32_t *top_idx, float *top_score, int64_t *counted);

#endif                          /* IT_KERNELS_H */

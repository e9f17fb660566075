/*
 * mlp.h
 *    Features -> interest: a small multilayer perceptron trained in plain C
 *    (no PostgreSQL headers).
 *
 *    f(x) = W_L ReLU( ... ReLU(W_1 ReLU(W_0 x + b_0) + b_1) ... ) + b_L
 *
 * with 0 to IT_MLP_MAX_HIDDEN hidden ReLU layers and a linear output layer
 * of k units (the dimension of the model's user or item vectors).  It maps a
 * user's encoded features to a prior interest vector in the space of the
 * item factors Y, so that f(x_u) . y_i ranks the items u will like.
 *
 * Like every kernel (see kernels.h) these functions never allocate, print,
 * exit or longjmp: the caller allocates the parameter vector and the
 * workspaces, whose sizes the *_floats / *_size functions return (0 when
 * the layout is invalid or the size overflows size_t: check the layout
 * with it_mlp_check_layout first, as some valid sizes are 0).  Matrix
 * products are cblas_sgemm / sgemv / ssyr of the serial OpenBLAS, the one
 * small solve LAPACK's sposv.  No threads.  Results depend only on the
 * inputs and the seed.
 *
 * Parameters live in one flat float vector (stored as one real[]), layer by
 * layer from the input: for layer l with n_in inputs and n_out outputs,
 * W_l as n_out rows of n_in floats (row-major), then b_l (n_out floats).
 */
#ifndef IT_MLP_H
#define IT_MLP_H

#include <stddef.h>
#include <stdint.h>

#define IT_MLP_MAX_HIDDEN   3
#define IT_MLP_MAX_UNITS    65536   /* per layer, input included */

typedef struct ItMlpLayout
{
    int         input;          /* d >= 1: encoded feature columns */
    int         nhidden;        /* 0 .. IT_MLP_MAX_HIDDEN (0 = linear model) */
    int         hidden[IT_MLP_MAX_HIDDEN];  /* units of each hidden layer */
    int         output;         /* k >= 1 */
} ItMlpLayout;

/* Status codes returned by it_mlp_train and it_mlp_check_layout. */
#define IT_MLP_OK           0
#define IT_MLP_EINVAL       1   /* bad layout, sizes, options or pointers */
#define IT_MLP_ENONFINITE   2   /* the loss became NaN or infinite */
#define IT_MLP_ESTOPPED     3   /* should_stop asked the trainer to stop */

/* IT_MLP_OK when every size is in range, IT_MLP_EINVAL otherwise. */
int         it_mlp_check_layout(const ItMlpLayout *layout);

/* Number of floats of the parameter vector (0 for an invalid layout). */
size_t      it_mlp_param_count(const ItMlpLayout *layout);

/*
 * He initialisation from seed: the weights of the hidden layers are
 * N(0, 2 / n_in), those of the (linear) output layer N(0, 1 / n_in), the
 * biases 0.
 */
void        it_mlp_init(float *params, const ItMlpLayout *layout,
                        uint64_t seed);

/*
 * out[n*k] = f(X[n*d]) for n rows.  Rows are processed in chunks of at most
 * IT_MLP_CHUNK, so the workspace stays small whatever n is: it must hold
 * it_mlp_workspace_floats(layout, n) floats (0 when there is no hidden
 * layer: workspace may then be NULL).
 */
#define IT_MLP_CHUNK        256
size_t      it_mlp_workspace_floats(const ItMlpLayout *layout, int64_t n);
void        it_mlp_forward(const float *params, const ItMlpLayout *layout,
                           const float *X, int64_t n, float *out,
                           float *workspace);

/* ------------------------------------------------------------------------
 * Training
 *
 * Each training row r (a warm user) has an input X[r], and, through
 * row_map (NULL = identity), a target vector targets[row_map[r]] and a row
 * row_map[r] of the interaction matrix (CSR indptr/indices/weights over the
 * m items whose factors are Y[m*k]).  The row's positives are its entries
 * with weight >= pos_min_weight (all of them with the default 0); entries
 * below count as unseen items.  The objective, averaged over rows, is
 *
 *   vector_weight * Lvec / Zvec + (1 - vector_weight) * Lint / Zint
 *
 * where for x = f(X[r]):
 *   Lvec = |x - t|^2 (imitate the model's vector t of the row), and Lint
 *   the implicit-ALS loss of x over every item,
 *       sum_i c_i (p_i - x.y_i)^2, c_i = 1 + alpha w_i, p_i = [i is a positive],
 *   computed as x'YtY x + sum_pos [c_i (1 - s_i)^2 - s_i^2]: the objective
 *   of fold-in, so x has the scale of the model's user vectors and serves
 *   as its prior.
 * Zvec and Zint are the losses of the zero predictor (mean |t|^2 over the
 * training rows; mean sum c_i), so each part starts near 1 and the
 * blend weight does not depend on the data's scale.  With user_normalise
 * the ALS loss of each row is divided by its own sum c_i instead.
 *
 * With init_output_bias the output bias is first shifted so that the mean
 * output over the training rows is the best constant vector for the
 * objective (closed form): the population
 * prior, which the features then correct.  Weight decay pulls towards it.
 *
 * Minibatch Adam (AdamW: decoupled weight decay on the weights, not the
 * biases), rows shuffled every epoch with a generator seeded by seed.
 * Validation rows (val_rows, or when that is NULL a val_fraction of the
 * rows drawn from seed) are not trained on; after every epoch their loss
 * and the precision@eval_k of the first eval_max_rows of them (ranking all
 * m items by x.y_i against the row's positives, reported only) are
 * computed, and training stops after patience epochs without a lower
 * validation loss.  params then hold the best epoch's parameters.
 *
 * What ranks new users best, measured on MovieLens 100k (whole users held
 * out, five folds, demographics only, ALS item factors of the other users,
 * precision@10 against ratings >= 4): the ALS loss with pos_min_weight 4
 * and strong decay, 0.392 (weight_decay 3; 0.389 at 1, 0.385 at 0.01, and
 * with other item factors 0.390 / 0.382 / 0.362).  That is as good as a
 * ridge regression of the positives on the features (0.394), popularity
 * within gender and age band (0.388) or a demographic nearest-neighbour
 * vote (0.394), and above popularity (0.376; 0.339 counting every rating).
 * Imitating the vectors (0.366), the ALS loss with every rating a positive
 * (0.374) and a softmax cross-entropy over the items (0.361) rank worse; blends of the vector
 * and ALS losses sit in between (0.382 at 0.5); per-row normalisation
 * hurts (0.362); a linear model, wider or deeper layers and stopping on
 * validation precision change nothing beyond noise (0.389 to 0.391).
 * ------------------------------------------------------------------------ */

typedef struct ItMlpData
{
    int64_t     n;              /* rows, validation rows included, < 2^31 */
    const float *X;             /* n * layout->input */
    const int32_t *row_map;     /* n, or NULL: row r uses targets/CSR row r */

    /* vector loss (needed when vector_weight > 0) */
    const float *targets;       /* rows * k */

    /* interaction loss (needed when vector_weight < 1) and validation
     * precision */
    const int64_t *indptr;      /* CSR of the interaction matrix */
    const int32_t *indices;     /* item indexes in [0, m) */
    const float *weights;       /* raw weights w > 0, or NULL for all 1 */
    const float *Y;             /* m * k item factors */
    const float *YtY;           /* k * k, Y'Y */
    int64_t     m;              /* items */

    /* validation rows (indexes in [0, n), distinct), or NULL */
    const int32_t *val_rows;
    int64_t     nval;

    /* optional scores of a baseline ranking (m floats, e.g. popularity):
     * its precision@eval_k on the validation rows is reported */
    const float *baseline;
} ItMlpData;

/* Most epochs of the convergence stop's window. */
#define IT_MLP_MAX_CONVERGE_WINDOW 16

typedef struct ItMlpTrainParams
{
    float       lr;             /* Adam step size, e.g. 1e-3 */
    float       beta1;          /* 0.9 */
    float       beta2;          /* 0.999 */
    float       eps;            /* 1e-8 */
    float       weight_decay;   /* decoupled, per step: w -= lr * wd * w (lr * wd < 1) */
    int         epochs;         /* maximum number of epochs >= 1 */
    int         batch;          /* minibatch rows >= 1 */
    int         patience;       /* epochs without improvement; 0 = never stop early */
    int         converge_window;    /* 0 = off; else at most IT_MLP_MAX_CONVERGE_WINDOW */
    float       converge_tol;   /* stop when the best validation loss of the
                                 * last converge_window epochs improved by at
                                 * most converge_tol times its improvement
                                 * since the first epoch, in [0, 1) */
    uint64_t    seed;           /* shuffling and the drawn validation rows */
    float       val_fraction;   /* used when data->val_rows is NULL; [0, 0.9] */

    float       vector_weight;  /* [0, 1]: 1 = vectors only, 0 = interactions only */
    float       alpha;          /* confidence scale of the ALS loss */
    int         user_normalise; /* ALS loss divided by each row's sum c_i */
    int         init_output_bias;   /* start from the best constant output */

    int         eval_k;         /* precision@eval_k on the validation rows */
    int         eval_max_rows;  /* ... on at most this many of them (0 = all):
                                 * ranking all m items costs nval * m * k */
    float       pos_min_weight; /* positives (training and validation): weight >= this */
    int         threads;        /* >= 1: threads for the interaction loss of
                                 * batches with many positives (the result is
                                 * the same for any number) */

    /*
     * Called on the calling thread (never from another thread) once per
     * minibatch (when worker threads run, every 64 minibatches, while
     * they are stopped), between parameter updates; a non-zero return stops
     * training with IT_MLP_ESTOPPED (params then hold the best epoch so
     * far, or when no epoch has finished the initial parameters, with the
     * output bias shifted if init_output_bias).  The
     * trainer holds no resources, so a callback that does not return
     * leaves only the caller's buffers behind, params in an intermediate
     * state.  May be NULL.
     */
    int         (*should_stop) (void *arg);
    void       *should_stop_arg;

    /*
     * layout->output floats, or NULL.  With init_output_bias, receives
     * the best constant output of the training rows, the vector
     * it_mlp_population_vector computes over them (the same sums in the
     * same order), so a caller that compares the fit with it need not
     * solve for it again; result->have_constant says whether there was
     * one.
     */
    float      *constant_out;
} ItMlpTrainParams;

/*
 * Fills p with the defaults: lr 1e-3, betas 0.9 / 0.999, eps 1e-8, weight
 * decay 3, 200 epochs, batches of 64, patience 20, seed 42, validation
 * fraction 0.2, the ALS loss alone (vector_weight 0) with alpha 1 (set it
 * to the model's), output bias initialised, stopping on the validation
 * loss, precision@10 on at most 2000 validation rows, every interaction
 * a positive, one thread, no callback.
 */
void        it_mlp_default_params(ItMlpTrainParams *p);

/*
 * The best constant vector x[k] for the objective over all data->n rows
 * (X and the validation rows are not used): the population prior for a
 * user with no features, which init_output_bias also starts from.  With
 * the ALS loss and the same pos_min_weight it ranks like popularity of the
 * positives, where the mean of the model's user vectors ranks like
 * popularity of every interaction (MovieLens 100k, ratings >= 4 as
 * positives: 0.380 against 0.346 precision@10 for new users).  workspace:
 * it_mlp_population_workspace_floats(k, data->m) floats.  Returns IT_MLP_OK,
 * IT_MLP_EINVAL or IT_MLP_ENONFINITE when
 * the system cannot be solved.
 */
size_t      it_mlp_population_workspace_floats(int k, int64_t m);
int         it_mlp_population_vector(const ItMlpData *data,
                                     const ItMlpTrainParams *p, int k,
                                     float *x, float *workspace);

/* One entry per epoch run (the caller passes room for p->epochs). */
typedef struct ItMlpEpoch
{
    double      train_loss;     /* mean objective over the epoch's minibatches */
    double      val_loss;       /* objective on the validation rows (NaN if none) */
    double      val_precision;  /* precision@eval_k on them (NaN if not computed) */
} ItMlpEpoch;

typedef struct ItMlpTrainResult
{
    int         epochs_run;
    int         best_epoch;     /* 0-based index into the history */
    int64_t     ntrain;
    int64_t     nval;
    double      best_val_loss;
    double      best_val_precision;
    double      base_val_precision; /* the baseline's, NaN without one */
    int         stop;           /* why training ended: an IT_MLP_STOP_ */
    int         have_constant;  /* p->constant_out was written */
} ItMlpTrainResult;

#define IT_MLP_STOP_EPOCHS      0   /* ran p->epochs (or was stopped, failed) */
#define IT_MLP_STOP_PATIENCE    1   /* p->patience epochs without a better loss */
#define IT_MLP_STOP_CONVERGED   2   /* the convergence stop */

/*
 * Bytes of workspace it_mlp_train and it_mlp_objective need for data->n
 * rows and data->m items (m = 0 is enough when data->Y or data->indptr is NULL),
 * or 0 when invalid or overflowing.  It grows with batch * (input + hidden
 * units + m) + 4 * param_count + k * k + 2 * m + 5 * n.
 */
size_t      it_mlp_train_workspace_size(const ItMlpLayout *layout,
                                        const ItMlpTrainParams *p,
                                        int64_t n, int64_t m);

/*
 * Trains params (initialised by the caller, e.g. with it_mlp_init) in
 * place.  history may be NULL; result may be NULL.  workspace must hold
 * it_mlp_train_workspace_size() bytes (any alignment).  Returns an
 * IT_MLP_* status; on IT_MLP_EINVAL nothing is changed.
 */
int         it_mlp_train(float *params, const ItMlpLayout *layout,
                         const ItMlpData *data, const ItMlpTrainParams *p,
                         void *workspace, ItMlpEpoch *history,
                         ItMlpTrainResult *result);

/*
 * The objective above for the rows rows[0..nrows) of data (all n rows when
 * rows is NULL), and when grad is not NULL its gradient with respect to
 * params (grad has it_mlp_param_count floats): what the trainer computes
 * on each minibatch and on the validation rows, open to a check of the
 * gradient against finite differences; workspace as for it_mlp_train.
 * Returns the mean
 * objective over the rows, NaN on invalid arguments.
 */
double      it_mlp_objective(const float *params, const ItMlpLayout *layout,
                             const ItMlpData *data, const ItMlpTrainParams *p,
                             const int32_t *rows, int64_t nrows,
                             float *grad, void *workspace);

#endif                          /* IT_MLP_H */

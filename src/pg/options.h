/*
 * options.h
 *    The options of train() (options.c).  OptionTable there lists every
 *    option once: name, kind, range, default and where it goes in
 *    ItOptions; add a row (and a field) to add an option.
 *
 *    ItResolveOptions checks a user's jsonb object against the table
 *    (ERROR naming the option and what it accepts, or listing the valid
 *    names) and returns the object to store with a version: every option,
 *    defaults filled in.  ItReadOptions turns a stored object into the
 *    typed struct every caller reads; a key a version stored before the
 *    option existed gets the table's default.  No default is written
 *    anywhere else.
 */
#ifndef IT_OPTIONS_H
#define IT_OPTIONS_H

#include "postgres.h"

#include "utils/jsonb.h"

typedef struct ItOptions
{
    /* the factorisation (train.c) */
    int64       factors;
    int64       iterations;
    double      regularization;
    double      alpha;
    double      positive_threshold; /* p_ui = [r_ui >= it] (0: every interaction) */
    int64       cg_steps;
    int64       seed;
    int64       threads;        /* 0: the setting interest_transfer.threads */
    const char *deploy;         /* always, never, if_better */
    /* serving users the model was not trained on (the interest providers, refresh.c) */
    double      prior_weight;   /* 0: the weight training measured */
    bool        fold_in;
    /* the features -> interest models (transfer.c) */
    int64       prior_hidden;
    int64       prior_epochs;
    double      prior_learning_rate;
    double      prior_weight_decay;
    int64       prior_batch;
    int64       prior_patience;
    double      prior_validation;
    double      prior_budget;
    double      prior_vector_weight;
    bool        new_items;
    int64       max_categories;
    int64       min_category_count;
    /* interactions with a domain column (train.c): "balanced", "none" or {name: weight} */
    Jsonb      *domain_weights;
    /* "auto", "vector", "neighbours" or {name: word}; a version stores an object */
    Jsonb      *cross_domain_ranking;
    /* contexts (context.c) */
    const char *context;        /* NULL, "weekpart", "daypart" */
    const char *timezone;       /* NULL: the session's when training */
    /* the mapping from other models' user vectors (transfer.c): NULL or ["model", ...] */
    Jsonb      *source_models;
    const char *source_user_map;    /* NULL: the source models share this model's user ids */
} ItOptions;

/* Source models one model maps at most (option source_models). */
#define IT_MAX_SOURCE_MODELS 8

/*
 * A FLOAT option left to training ("auto", regularization's default):
 * train() replaces it by the number it uses, and the version stores that.
 */
#define IT_OPTION_AUTO (-1.0)

extern Jsonb *ItResolveOptions(Jsonb *given);

/*
 * The typed options of a stored object (NULL: every default) of model
 * (NULL: the options of a call, already resolved).  ERROR (data_corrupted)
 * when a stored value has the wrong type or is out of its range.  Text values are allocated in the current memory context.
 */
extern void ItReadOptions(Jsonb *stored, const char *model, ItOptions *out);

#endif                          /* IT_OPTIONS_H */

/*
 * context.h
 *    A user's taste in a context (weekend, mobile): a vector per (user,
 *    context), the fold-in of the user's interactions in that context
 *    around their global vector (context.c).
 */
#ifndef IT_CONTEXT_H
#define IT_CONTEXT_H

#include "common.h"
#include "cache.h"
#include "interactions.h"
#include "interest.h"

/*
 * Training: the rule of option context (ERROR on an unknown time zone);
 * with a rule, *tz is its time zone and *options gets the time zone's name
 * (option timezone resolved, as the version stores it).
 */
extern ItContextRule ItContextRuleOf(const ItOptions *o, Jsonb **options, struct pg_tz **tz);

typedef struct ItContextChoice ItContextChoice;

/*
 * Training: for every context of d, the fold-in weight around the global
 * vector chosen on held-out interactions of the users active in it, or
 * none when no weight beats the global vector there (its users then keep
 * the global vector).  *key gets the it_model.metrics key that records it
 * (NULL without contexts).  NULL without contexts.
 */
extern ItContextChoice *ItContextChoose(const ItInteractionMatrix *d, const ItOptions *o,
                                        const float *X, const float *Y, const char *model,
                                        char **key);

/*
 * Every context of the training data (sorted), for it_model.contexts, and
 * their fold-in weights (0: not kept), for it_model.context_weights.
 */
extern int  ItContextNames(const ItContextChoice *c, char ***names, const double **weights);

/* Writes the context vectors of every user with rows in a kept context. */
extern void ItContextWrite(const ItContextChoice *c, const ItInteractionMatrix *d, const ItOptions *o,
                           const float *X, const float *Y, const char *model, int version);

/*
 * Serving: the context argument of a SQL function: its index in
 * m->contexts, -1 for none.  NULL for a model trained with option context
 * (derived from ts) is the context of now(), in the stored time zone;
 * else NULL is no context; '' is no context for every model.  ERRORs with a hint for a context given to a
 * model without contexts, or one it does not know.
 */
extern int  ItContextArgument(const ItModel *m, const char *context);

/*
 * The interest of a user in context c (-1: none): their vector of that
 * context when they have one ('context:<name>'), else as ItUserInterest.
 */
extern void ItUserInterestIn(ItModel *m, int64 user_id, int c, ItInterest *out);

#endif                          /* IT_CONTEXT_H */

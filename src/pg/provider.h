/*
 * provider.h
 *    The interface of a provider of prior interest (DESIGN.md, "One
 *    primitive, many sources of prior interest"): can it serve this user,
 *    and with which prior vector; its fold-in weight comes from what it
 *    measured (interest.c applies the policy).  One file per provider
 *    (provider_*.c), registered in the one list of interest.c, which
 *    decides in its order; adding a provider is a new file and one line
 *    there.
 */
#ifndef IT_PROVIDER_H
#define IT_PROVIDER_H

#include "common.h"
#include "cache.h"
#include "providers.h"
#include "utils/builtins.h"

/* Who asks for an interest. */
typedef struct ItInterestRequest
{
    ItModel    *m;
    ItTransfer *t;              /* the version's serving state (NULL when
                                 * asking a fitted provider before it is
                                 * loaded) */
    bool        has_user;       /* false: a visitor in no table (recommend_for) */
    int64       user_id;
    Jsonb      *features;       /* a visitor's features, or NULL */
} ItInterestRequest;

/* What a provider gives for one user; preset by the caller. */
typedef struct ItPrior
{
    float      *x;              /* m->k floats, the caller's buffer: the prior */
    ItInterestSource source;    /* the interest it serves alone (preset: the
                                 * provider's source) */
    float       pop_blend;      /* served alone, it ranks by x.y_i + pop_blend *
                                 * popularity (preset: 0) */
    int32      *seen;           /* fitted: the items it was fitted on, sorted
                                 * (palloc'd), or NULL */
    int         nseen;
    const char *label;          /* served alone, recommend's source (NULL: the
                                 * name of source) */
} ItPrior;

typedef struct ItProvider
{
    const char *name;

    /*
     * The interest of a user served by this prior alone, without rows to
     * fold in: IT_SOURCE_POPULAR when popularity serves them instead.
     */
    ItInterestSource source;

    /*
     * The prior was fitted on the user's own rows (their stored row): it
     * serves as it is, asked before any row is read and without SPI;
     * refresh folds the user's rows into it.
     */
    bool        fitted;

    /*
     * Optional.  Reads the provider's stored parameters into t while the
     * version's serving state is loaded (inside SPI_connect, as the
     * tables' owner).
     */
    void        (*load) (ItModel *m, ItTransfer *t);

    /*
     * Optional.  False when it can serve no user of this version: without
     * any usable provider and without fold-in, a user gets popularity
     * without an SPI round trip.
     */
    bool        (*usable) (const ItModel *m, const ItTransfer *t);

    /*
     * Optional (0 when absent): the fold-in weight training measured for
     * it, and in *blend the popularity blend of the fold-in ranking it
     * chose with that weight (used only with it).
     */
    double      (*measured_weight) (ItModel *m, ItTransfer *t, float *blend);

    /* Optional (0 when absent): the variance of trained users around it. */
    double      (*variance) (ItModel *m, ItTransfer *t);

    /*
     * Can it serve this user?  True with out->x (and what else applies)
     * filled; false touching nothing else.  Called inside SPI_connect
     * with req->t set, except for fitted providers.
     */
    bool        (*prior) (const ItInterestRequest *req, ItPrior *out);
} ItProvider;

/* provider_stored.c: the stored row of the deployed version */
extern const ItProvider ItProviderStored;

/* provider_features.c: features -> interest (the user side) */
extern const ItProvider ItProviderFeatures;

/* provider_source.c: the source models' vectors -> interest */
extern const ItProvider ItProviderSource;

/* provider_social.c: the linked users' vectors -> interest */
extern const ItProvider ItProviderSocial;

/* provider_population.c: the mean of the trained users */
extern const ItProvider ItProviderPopulation;

/*
 * provider_features.c: the side models are used outside it too (refresh
 * gives new items a vector from their features): out[n * k] = f(encoded)
 * for n encoded rows of a side with use_features.
 */
extern void ItSideForward(const ItSidePrior *s, const float *encoded, int64 n, float *out);

/*
 * provider_features.c: the stored prior of kind (user_features,
 * source_models) of m's version into *s, with its features model when in
 * use (encoder: parse the spec as a feature encoder).  False when the
 * version has none.
 */
extern bool ItLoadSidePrior(ItModel *m, const char *side, int kind, bool encoder,
                            ItSidePrior *s, MemoryContext cxt);

/*
 * provider_features.c: encoded[t->user.dims] = the user's row of the
 * user_features source, encoded as at training; false when the version has
 * no user features model or the user no row (inside SPI_connect).
 */
extern bool ItEncodeUserFeatures(ItModel *m, ItTransfer *t, int64 user_id, float *encoded);

/* A number of a jsonb value of type jbvNumeric. */
static inline double
JsonNumberValue(JsonbValue *v)
{
    return DatumGetFloat8(DirectFunctionCall1(numeric_float8_no_overflow,
                                              NumericGetDatum(v->val.numeric)));
}

#endif                          /* IT_PROVIDER_H */

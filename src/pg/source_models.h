/*
 * source_models.h
 *    Reading the user vectors of other models (option source_models) as
 *    the input of a mapping to this model's users (source_models.c; the
 *    mapping is trained like a features prior, transfer.c).
 */
#ifndef IT_SOURCE_MODELS_H
#define IT_SOURCE_MODELS_H

#include "common.h"
#include "features_encoder.h"
#include "options.h"

typedef struct ItSourceModels
{
    int         n;                          /* source models */
    char       *names[IT_MAX_SOURCE_MODELS];
    int         versions[IT_MAX_SOURCE_MODELS]; /* the deployed version read */
    int         factors[IT_MAX_SOURCE_MODELS];
    int64       users[IT_MAX_SOURCE_MODELS];    /* users read from each */

    /*
     * One row per user of this model's ids known to any source: ids
     * ascending, X the concatenation of the user's vector in each source
     * (each coordinate standardised over the users that have it, 0 where
     * the user is absent), followed, with more than one source, by one
     * presence indicator per source; spec records the sources and
     * versions.
     */
    ItEncoded  *enc;
    uint8      *present;    /* per row: bit s set when the user is in source s */
} ItSourceModels;

/*
 * Reads the deployed user vectors of every model of options->source_models
 * (the caller must be allowed to use them), through options->source_user_map
 * when given (run with the caller's privileges), for model.  NULL when the
 * option is not set.  ERRORs with a hint on a source that does not exist or
 * is not usable, is model itself, and on a map with NULL ids or that gives a
 * user more than one source user of a model.  Inside SPI_connect, before
 * anything is written.
 */
extern ItSourceModels *ItReadSourceModels(const char *model, const ItOptions *options);

/* "domain:<the names of the sources in present>", in the option's order. */
extern char *ItSourceModelsLabel(const ItSourceModels *sm, uint8 present);

#endif                          /* IT_SOURCE_MODELS_H */

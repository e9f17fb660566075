/*
 * provider_stored.c
 *    The stored row of the deployed version: the vector trained with the
 *    model ('model') or written by refresh() ('fold_in'), with the items
 *    it was fitted on.  It serves the user as it is; refresh folds the
 *    user's current rows into it.
 */
#include "postgres.h"

#include "provider.h"

static bool
StoredPrior(const ItInterestRequest *req, ItPrior *out)
{
    return ItGetUserVector(req->m, req->user_id, out->x, &out->seen, &out->nseen, &out->source);
}

const ItProvider ItProviderStored = {
    .name = "stored",
    .source = IT_SOURCE_MODEL,
    .fitted = true,
    .prior = StoredPrior,
};

/*
 * provider_features.c
 *    Features -> interest: the prior of a user from their row of the
 *    model's user_features source (or a visitor's features given as
 *    jsonb), through the encoder and the MLP stored with the version
 *    (it_prior), when the user side's validation kept that path.
 *
 * A version may carry one such model per side ("user", "item"); both are
 * loaded here with the version's serving state, the item side for
 * refresh, which gives new items a vector from their features
 * (ItSideForward).  Served alone, the prior ranks with the side's
 * popularity_blend ('features'); with rows of the user it is the prior
 * they are folded in around ('fold_in').
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"

#include "provider.h"
#include "store.h"

static void
StoredCorrupt(const ItModel *m, const char *side, const char *detail)
{
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored %s model of model \"%s\" version %d is invalid",
                    side, m->name, m->version),
             errdetail("%s", detail),
             errhint("Train a new version with train('%s').", m->name)));
}

static JsonbValue *
JsonKey(Jsonb *j, const char *key)
{
    if (j == NULL || !JB_ROOT_IS_OBJECT(j))
        return NULL;
    return getKeyJsonValueFromContainer(&j->root, key, strlen(key), NULL);
}

/* An integer in [min, max] from a layout object, or ERROR. */
static int
LayoutInt(const ItModel *m, const char *side, JsonbValue *v, int min, int max, const char *what)
{
    double      d;

    if (v == NULL || v->type != jbvNumeric)
        StoredCorrupt(m, side, psprintf("Its layout has no number \"%s\".", what));
    d = JsonNumberValue(v);
    if (!(d >= min && d <= max) || d != floor(d))
        StoredCorrupt(m, side, psprintf("Its layout's \"%s\" is %g, not an integer from %d to %d.",
                                        what, d, min, max));
    return (int) d;
}

static void
ParseLayout(const ItModel *m, const char *side, Jsonb *layout, ItMlpLayout *out)
{
    JsonbValue *hidden;

    if (layout == NULL || !JB_ROOT_IS_OBJECT(layout))
        StoredCorrupt(m, side, "It has no layout object.");
    memset(out, 0, sizeof(*out));
    out->input = LayoutInt(m, side, JsonKey(layout, "input"), 1, IT_MLP_MAX_UNITS, "input");
    out->output = LayoutInt(m, side, JsonKey(layout, "output"), 1, IT_MLP_MAX_UNITS, "output");
    hidden = JsonKey(layout, "hidden");
    if (hidden != NULL && hidden->type != jbvNull)
    {
        JsonbContainer *arr;
        int         n;

        if (hidden->type != jbvBinary || !JsonContainerIsArray(hidden->val.binary.data) ||
            JsonContainerIsScalar(hidden->val.binary.data))
            StoredCorrupt(m, side, "Its layout's \"hidden\" is not an array.");
        arr = hidden->val.binary.data;
        n = JsonContainerSize(arr);
        if (n > IT_MLP_MAX_HIDDEN)
            StoredCorrupt(m, side, psprintf("Its layout has %d hidden layers, more than %d.",
                                            n, IT_MLP_MAX_HIDDEN));
        out->nhidden = n;
        for (int i = 0; i < n; i++)
            out->hidden[i] = LayoutInt(m, side, getIthJsonbValueFromContainer(arr, i),
                                       1, IT_MLP_MAX_UNITS, "hidden");
    }
    if (it_mlp_check_layout(out) != IT_MLP_OK)
        StoredCorrupt(m, side, "Its layout is out of range.");
}

bool
ItLoadSidePrior(ItModel *m, const char *side, int kind, bool encoder, ItSidePrior *s, MemoryContext cxt)
{
    ItPriorRow  enc;
    size_t      nparams;

    memset(s, 0, sizeof(*s));
    if (!ItLoadPrior(m->name, m->version, (ItPriorKind) kind, cxt, &enc))
        return false;
    if (enc.spec == NULL)
        StoredCorrupt(m, side, "It has no feature encoder.");
    s->stored = true;
    if (encoder)
    {
        s->encoder = ItEncoderFromSpec(enc.spec, cxt);
        s->dims = ItEncoderDims(s->encoder);
        if (enc.dims != s->dims)
            StoredCorrupt(m, side, "Its dims do not match its spec.");
    }
    else
        s->dims = enc.dims;
    /* what serving reads: it_prior's typed columns, checked by ItLoadPrior */
    s->use_features = enc.in_use;
    s->pop_blend = enc.popularity_blend;
    s->prior_variance = enc.prior_variance;
    s->fold_in_weight = enc.fold_in_weight;
    s->fold_in_blend = enc.fold_in_blend;
    if (!s->use_features)
        return true;

    if (enc.params == NULL)
        StoredCorrupt(m, side, "It is in use, but no parameters are stored.");
    ParseLayout(m, side, enc.layout, &s->layout);
    if (s->layout.input != s->dims)
        StoredCorrupt(m, side, psprintf("Its layout takes %d inputs, but the encoder writes %d.",
                                        s->layout.input, s->dims));
    if (s->layout.output != m->k)
        StoredCorrupt(m, side, psprintf("Its layout gives %d outputs, but the model has %d factors.",
                                        s->layout.output, m->k));
    nparams = it_mlp_param_count(&s->layout);
    if (nparams == 0 || (int64) nparams != enc.nparams)
        StoredCorrupt(m, side, psprintf("It stores " INT64_FORMAT " parameters; its layout needs %zu.",
                                        enc.nparams, nparams));
    for (size_t i = 0; i < nparams; i++)
        if (!isfinite(enc.params[i]))
            StoredCorrupt(m, side, "A parameter is not finite.");
    s->params = enc.params;
    return true;
}

/* Loads both sides' models with the version's serving state. */
static void
FeaturesLoad(ItModel *m, ItTransfer *t)
{
    if (m->user_features_source != NULL)
        (void) ItLoadSidePrior(m, "user features", IT_PRIOR_USER_FEATURES, true, &t->user, t->cxt);
    if (m->item_features_source != NULL)
        (void) ItLoadSidePrior(m, "item features", IT_PRIOR_ITEM_FEATURES, true, &t->item, t->cxt);
}

static bool
FeaturesUsable(const ItModel *m, const ItTransfer *t)
{
    return t->user.use_features;
}

static double
FeaturesMeasuredWeight(ItModel *m, ItTransfer *t, float *blend)
{
    *blend = t->user.fold_in_blend;
    return t->user.fold_in_weight;
}

static double
FeaturesVariance(ItModel *m, ItTransfer *t)
{
    return t->user.prior_variance;
}

void
ItSideForward(const ItSidePrior *s, const float *encoded, int64 n, float *out)
{
    size_t      wfloats = it_mlp_workspace_floats(&s->layout, n);
    float      *work = wfloats > 0 ? palloc(sizeof(float) * wfloats) : NULL;
    int64       total = n * s->layout.output;

    it_mlp_forward(s->params, &s->layout, encoded, n, out, work);
    if (work)
        pfree(work);
    for (int64 i = 0; i < total; i++)
        if (!isfinite(out[i]))
            ereport(ERROR,
                    (errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
                     errmsg("the features prior is not finite"),
                     errhint("A feature value is far outside the range the model was trained on; check the features.")));
}

/*
 * The features prior of a user: true, with prior[m->k] set, when the user
 * side's features path is in use and the user has a row in the
 * user_features source (inside SPI_connect).  More than one row is an
 * ERROR.
 */
bool
ItEncodeUserFeatures(ItModel *m, ItTransfer *t, int64 user_id, float *encoded)
{
    ItServeContext sc;

    if (!t->user.stored || m->user_features_source == NULL)
        return false;
    ItServeContextPush(&sc, m, "user_features", true, user_id);
    ItRunIdPlan(&sc, &t->user_features, m->user_features_source,
                ItEncoderIdColumn(t->user.encoder), user_id, 2);
    if (SPI_processed == 0)
    {
        ItServeContextPop(&sc);
        SPI_freetuptable(SPI_tuptable);
        return false;
    }
    if (SPI_processed > 1)
        ereport(ERROR,
                (errcode(ERRCODE_CARDINALITY_VIOLATION),
                 errmsg("user_features has more than one row for user " INT64_FORMAT, user_id),
                 errhint("Give each user one row of features, as when the model was trained.")));
    ItEncodeTuple(t->user.encoder, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, encoded);
    ItServeContextPop(&sc);
    SPI_freetuptable(SPI_tuptable);
    return true;
}

static bool
UserFeaturesPrior(ItModel *m, ItTransfer *t, int64 user_id, float *prior)
{
    float      *encoded;

    if (!t->user.use_features || m->user_features_source == NULL)
        return false;
    encoded = palloc(sizeof(float) * t->user.dims);
    if (!ItEncodeUserFeatures(m, t, user_id, encoded))
    {
        pfree(encoded);
        return false;
    }
    ItSideForward(&t->user, encoded, 1, prior);
    pfree(encoded);
    return true;
}

/*
 * A visitor's features (recommend_for): an object keyed by the
 * user_features column names.  Encoded (and so checked) whenever given,
 * even when validation dropped the features path.
 */
static bool
VisitorFeaturesPrior(ItModel *m, ItTransfer *t, Jsonb *features, float *prior)
{
    float      *encoded;

    if (!t->user.stored)
        ereport(ERROR,
                (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
                 errmsg("model \"%s\" was trained without user features", m->name),
                 errhint("Train the model with user_features to serve visitors from their features, "
                         "or pass '{}' as features to use only the items.")));
    encoded = palloc(sizeof(float) * t->user.dims);
    ItEncodeJsonb(t->user.encoder, features, encoded);
    if (!t->user.use_features)
        return false;
    ItSideForward(&t->user, encoded, 1, prior);
    return true;
}

static bool
FeaturesPrior(const ItInterestRequest *req, ItPrior *out)
{
    bool        found;

    if (req->has_user)
        found = UserFeaturesPrior(req->m, req->t, req->user_id, out->x);
    else if (req->features != NULL)
        found = VisitorFeaturesPrior(req->m, req->t, req->features, out->x);
    else
        found = false;
    if (found)
        out->pop_blend = req->t->user.pop_blend;
    return found;
}

const ItProvider ItProviderFeatures = {
    .name = "features",
    .source = IT_SOURCE_FEATURES,
    .fitted = false,
    .load = FeaturesLoad,
    .usable = FeaturesUsable,
    .measured_weight = FeaturesMeasuredWeight,
    .variance = FeaturesVariance,
    .prior = FeaturesPrior,
};

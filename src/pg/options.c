/*
 * options.c
 *    The options of train(): one table of every option with its type, range
 *    and default, the check of a user's jsonb object against it, and the
 *    typed struct a model's stored options are read into.
 *
 * A model version stores its options resolved: every option of the table,
 * with the defaults filled in.  To add an option, add a row to OptionTable
 * and a field to ItOptions (options.h); the check, the error messages, the
 * stored defaults and the typed struct follow from it.
 */
#include "postgres.h"

#include <float.h>
#include <math.h>

#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "common.h"
#include "options.h"
#include "features_encoder.h"

typedef enum ItOptionKind
{
    IT_OPTION_INT,              /* JSON number, integral, in [min, max]; an int64 field */
    IT_OPTION_FLOAT,            /* JSON number in [min, max]; a double field */
    IT_OPTION_BOOL,             /* JSON true / false; a bool field */
    IT_OPTION_TEXT,             /* JSON string, one of choices when set; a const char * field */
    IT_OPTION_JSON              /* any JSON value its check accepts; a Jsonb * field */
} ItOptionKind;

struct ItOptionDef;
/* Checks a given value of an IT_OPTION_JSON option (ERROR when it does not fit). */
typedef void (*ItOptionCheck) (const struct ItOptionDef *def, JsonbValue *v);

typedef struct ItOptionDef
{
    const char *name;
    ItOptionKind kind;
    double      min;
    double      max;
    double      defval;         /* INT, FLOAT; BOOL: 0 or 1 */
    const char *deftext;        /* TEXT default (NULL: JSON null); FLOAT: the word
                                 * that is its default and leaves the number to
                                 * training (IT_OPTION_AUTO) */
    const char *choices;        /* TEXT: "a, b, c", or NULL for any string */
    const char *description;    /* noun phrase, for hints */
    size_t      offset;         /* of its field in ItOptions */
    ItOptionCheck check;        /* JSON: the check of a given value */
    const char *accepts;        /* JSON: what it accepts, as a phrase */
} ItOptionDef;

static void CheckDomainWeights(const ItOptionDef *def, JsonbValue *v);
static void CheckSourceModels(const ItOptionDef *def, JsonbValue *v);
static void CheckCrossDomainRanking(const ItOptionDef *def, JsonbValue *v);

extern const ItOptionDef *ItOptionTable(int *n);
/* The largest integer a double holds exactly: integer options stay in it. */
#define IT_SAFE_INT 9007199254740991.0

/* where an option goes in ItOptions */
#define AT(field) offsetof(ItOptions, field)

static const ItOptionDef OptionTable[] = {
    /* name, kind, min, max, default number, default text, choices, description */
    {"factors", IT_OPTION_INT, 1, IT_MAX_FACTORS, 64, NULL, NULL,
    "number of latent factors per user and item", AT(factors)},
    {"iterations", IT_OPTION_INT, 1, IT_MAX_ITERATIONS, 15, NULL, NULL,
    "alternating least squares iterations", AT(iterations)},
    /* 0.05: the default of versions stored before "auto", for one without the key */
    {"regularization", IT_OPTION_FLOAT, 0, 1e30, 0.05, "auto", NULL,
    "weight of the L2 penalty on the factors (\"auto\": scaled to the data when training, see train.c)",
    AT(regularization)},
    {"positive_threshold", IT_OPTION_FLOAT, 0, 1e30, 0, NULL, NULL,
    "smallest summed weight of a user-item pair that counts as a positive, everywhere a model learns or is "
    "checked (training, the priors, every validation, fold-in); a pair below it is a confident negative "
    "(0 = every interaction; for ratings of 1 to 5, e.g. 4)", AT(positive_threshold)},
    {"alpha", IT_OPTION_FLOAT, 0, 1e30, 1.0, NULL, NULL,
    "confidence scale: c = 1 + alpha * weight", AT(alpha)},
    {"cg_steps", IT_OPTION_INT, 1, IT_MAX_CG_STEPS, 3, NULL, NULL,
    "conjugate gradient steps per row and half-step", AT(cg_steps)},
    {"seed", IT_OPTION_INT, 0, IT_SAFE_INT, 42, NULL, NULL,
    "seed of the random initial factors", AT(seed)},
    {"threads", IT_OPTION_INT, 0, IT_MAX_THREADS, 0, NULL, NULL,
    "worker threads (0 = the setting interest_transfer.threads)", AT(threads)},
    {"deploy", IT_OPTION_TEXT, 0, 0, 0, "always", "always, never, if_better",
    "rule for deploying the new version: always, never, or if_better (when its held-out precision@10 "
    "on a validation slice is not lower than that of the deployed version's options fitted on the same slice)", AT(deploy)},
    /* serving users the model was not trained on (providers.c, refresh.c) */
    {"prior_weight", IT_OPTION_FLOAT, 0, 1e30, 0, NULL, NULL,
    "weight lambda0 that pulls the fold-in of a user the model was not trained on towards its prior "
    "(0 = automatic: the weight training chose for the prior by folding in held-out trained users "
    "from a few of their interactions)", AT(prior_weight)},
    {"fold_in", IT_OPTION_BOOL, 0, 1, 1, NULL, NULL,
    "switch that folds in users the model was not trained on from their rows in the interactions source when they are scored", AT(fold_in)},
    /* features -> interest models trained with the model (transfer.c) */
    {"prior_hidden", IT_OPTION_INT, 0, 4096, 64, NULL, NULL,
    "number of hidden units of the features -> interest model (0 = a linear model)", AT(prior_hidden)},
    {"prior_epochs", IT_OPTION_INT, 1, 10000, 200, NULL, NULL,
    "most passes over the trained users (items) when fitting the features -> interest model", AT(prior_epochs)},
    {"prior_learning_rate", IT_OPTION_FLOAT, 1e-9, 1, 1e-3, NULL, NULL,
    "step size (Adam) of the features -> interest model", AT(prior_learning_rate)},
    {"prior_weight_decay", IT_OPTION_FLOAT, 0, 1e6, 3.0, NULL, NULL,
    "decoupled weight decay of the features -> interest model (its learning rate times this must stay below 1)", AT(prior_weight_decay)},
    {"prior_batch", IT_OPTION_INT, 1, 65536, 64, NULL, NULL,
    "rows per minibatch of the features -> interest model", AT(prior_batch)},
    {"prior_patience", IT_OPTION_INT, 0, 1000, 20, NULL, NULL,
    "epochs without a better validation loss before the features -> interest model stops (0 = never early)", AT(prior_patience)},
    {"prior_validation", IT_OPTION_FLOAT, 0.05, 0.5, 0.2, NULL, NULL,
    "fraction of the trained users (items) with features held out to stop and check the features -> interest model", AT(prior_validation)},
    {"prior_budget", IT_OPTION_FLOAT, 0.01, 1000, 1, NULL, NULL,
    "scale of the work budget of the features -> interest models on large data "
    "(1 = about 15% of the ALS work, at least a second or so; it caps their epochs)", AT(prior_budget)},
    {"prior_vector_weight", IT_OPTION_FLOAT, 0, 1, 0, NULL, NULL,
    "share of the features -> interest model's objective spent imitating the trained vectors "
    "(0 = only ranking the interactions through the other side's vectors, 1 = only imitating)", AT(prior_vector_weight)},
    {"new_items", IT_OPTION_BOOL, 0, 1, 1, NULL, NULL,
    "switch that gives items present only in item_features a vector from their features", AT(new_items)},
    {"max_categories", IT_OPTION_INT, 0, IT_ENCODER_MAX_CATEGORIES, IT_ENCODER_DEFAULT_MAX_CATEGORIES, NULL, NULL,
    "most values of a text or boolean feature that get their own slot", AT(max_categories)},
    {"min_category_count", IT_OPTION_INT, 1, PG_INT32_MAX, IT_ENCODER_DEFAULT_MIN_CATEGORY_COUNT, NULL, NULL,
    "rows a value of a text or boolean feature needs to get its own slot", AT(min_category_count)},
    /* interactions with a domain column (train.c) */
    {"domain_weights", IT_OPTION_JSON, 0, 0, 0, "balanced", NULL,
    "weight of each domain's interactions in training, multiplying their confidence (\"balanced\": every "
    "domain's interactions weigh as much in all as the largest domain's)", AT(domain_weights),
    CheckDomainWeights, "\"balanced\", \"none\" or an object of domain names and numbers from 0.000001 to 1000000"},
    {"cross_domain_ranking", IT_OPTION_JSON, 0, 0, 0, "auto", NULL,
    "ranking of a domain's items for a user whose interactions are all in other domains: \"vector\" (the shared "
    "user vector), \"neighbours\" (the items of the users who share theirs), or \"auto\" (chosen per domain on "
    "users held out of it when training)", AT(cross_domain_ranking),
    CheckCrossDomainRanking, "\"auto\", \"vector\", \"neighbours\" or an object of domain names and those words"},
    /* contexts (context.c) */
    {"context", IT_OPTION_TEXT, 0, 0, 0, NULL, "weekpart, daypart",
    "context derived from ts when the interactions have no context column: weekpart (weekday, weekend) or "
    "daypart (night 0-6h, morning 6-12h, afternoon 12-18h, evening 18-24h)", AT(context)},
    {"timezone", IT_OPTION_TEXT, 0, 0, 0, NULL, NULL,
    "time zone the context is derived in (null: the session's TimeZone when training, stored with the version)",
    AT(timezone)},
    /* the mapping from other models' user vectors (transfer.c) */
    {"source_models", IT_OPTION_JSON, 0, 0, 0, NULL, NULL,
    "models whose deployed user vectors are mapped to a prior of this model's users", AT(source_models),
    CheckSourceModels, "an array of 1 to " CppAsString2(IT_MAX_SOURCE_MODELS) " distinct model names"},
    {"source_user_map", IT_OPTION_TEXT, 0, 0, 0, NULL, NULL,
    "table, view or query with columns user_id (this model's) and source_user_id (the source models'), "
    "for source models whose users have other ids", AT(source_user_map)},
};

#define IT_NOPTIONS lengthof(OptionTable)

static const ItOptionDef *
FindOption(const char *name, int len)
{
    for (int i = 0; i < (int) IT_NOPTIONS; i++)
    {
        if ((int) strlen(OptionTable[i].name) == len &&
            memcmp(OptionTable[i].name, name, len) == 0)
            return &OptionTable[i];
    }
    return NULL;
}

/* "alpha, cg_steps, factors, ..." in table order */
static char *
OptionNames(void)
{
    StringInfoData buf;

    initStringInfo(&buf);
    for (int i = 0; i < (int) IT_NOPTIONS; i++)
        appendStringInfo(&buf, "%s%s", i > 0 ? ", " : "", OptionTable[i].name);
    return buf.data;
}

/* What the option accepts, as a phrase: "an integer from 1 to 1024". */
static char *
OptionAccepts(const ItOptionDef *def)
{
    switch (def->kind)
    {
        case IT_OPTION_INT:
            return psprintf("an integer from %.0f to %.0f", def->min, def->max);
        case IT_OPTION_FLOAT:
            if (def->deftext)
                return psprintf("a number from %g to %g or \"%s\"", def->min, def->max, def->deftext);
            if (isinf(def->max))
                return psprintf("a number >= %g", def->min);
            return psprintf("a number from %g to %g", def->min, def->max);
        case IT_OPTION_BOOL:
            return pstrdup("true or false");
        case IT_OPTION_TEXT:
            if (def->choices)
                return psprintf("one of: %s", def->choices);
            return pstrdup("a string");
        case IT_OPTION_JSON:
            return pstrdup(def->accepts);
    }
    elog(ERROR, "unknown option kind %d", (int) def->kind);
    return NULL;                /* keep compiler quiet */
}

/* The default of an option as text, for messages. */
static char *
OptionDefaultText(const ItOptionDef *def)
{
    switch (def->kind)
    {
        case IT_OPTION_INT:
            return psprintf("%.0f", def->defval);
        case IT_OPTION_FLOAT:
            return def->deftext ? psprintf("\"%s\"", def->deftext) : psprintf("%g", def->defval);
        case IT_OPTION_BOOL:
            return pstrdup(def->defval != 0 ? "true" : "false");
        case IT_OPTION_TEXT:
        case IT_OPTION_JSON:
            return def->deftext ? psprintf("\"%s\"", def->deftext) : pstrdup("null");
    }
    return pstrdup("?");
}

static void
BadOptionValue(const ItOptionDef *def, const char *given)
{
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("option \"%s\" must be %s, not %s", def->name, OptionAccepts(def), given),
             errhint("Option \"%s\" is the %s; leave it out to use the default, %s.",
                     def->name, def->description, OptionDefaultText(def))));
}

/* The JSON text of a scalar, for messages. */
static char *
JsonbScalarText(JsonbValue *v)
{
    switch (v->type)
    {
        case jbvNull:
            return pstrdup("null");
        case jbvBool:
            return pstrdup(v->val.boolean ? "true" : "false");
        case jbvNumeric:
            return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
        case jbvString:
            {
                StringInfoData buf;

                initStringInfo(&buf);
                escape_json(&buf, pnstrdup(v->val.string.val, v->val.string.len));
                return buf.data;
            }
        default:
            return pstrdup(v->type == jbvBinary ? "an array or object" : "a non-scalar value");
    }
}

static bool
ChoiceAllowed(const char *choices, const char *val, int len)
{
    const char *p = choices;

    while (*p)
    {
        const char *end = strchr(p, ',');
        int         n = end ? (int) (end - p) : (int) strlen(p);

        if (n == len && memcmp(p, val, len) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
        while (*p == ' ')
            p++;
    }
    return false;
}

/*
 * Checks one given value against its definition (ERROR when it does not
 * fit).  The given value is what gets stored, so numbers keep the user's
 * spelling.
 */
/* Is v the word a FLOAT option takes for "training chooses" ("auto")? */
static bool
IsAutoWord(const ItOptionDef *def, JsonbValue *v)
{
    return def->kind == IT_OPTION_FLOAT && def->deftext != NULL && v->type == jbvString &&
        v->val.string.len == (int) strlen(def->deftext) &&
        memcmp(v->val.string.val, def->deftext, v->val.string.len) == 0;
}

static void
CheckValue(const ItOptionDef *def, JsonbValue *v)
{
    double      d;

    switch (def->kind)
    {
        case IT_OPTION_INT:
        case IT_OPTION_FLOAT:
            if (IsAutoWord(def, v))
                break;
            if (v->type != jbvNumeric)
                BadOptionValue(def, JsonbScalarText(v));
            d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
            if (isnan(d) || isinf(d) || d < def->min || d > def->max ||
                (def->kind == IT_OPTION_INT && d != floor(d)))
                BadOptionValue(def, JsonbScalarText(v));
            break;
        case IT_OPTION_BOOL:
            if (v->type != jbvBool)
                BadOptionValue(def, JsonbScalarText(v));
            break;
        case IT_OPTION_TEXT:
            if (v->type != jbvString ||
                (def->choices && !ChoiceAllowed(def->choices, v->val.string.val, v->val.string.len)))
                BadOptionValue(def, JsonbScalarText(v));
            break;
        case IT_OPTION_JSON:
            def->check(def, v);
            break;
    }
}

/* The default of an option as a jsonb scalar. */
static void
DefaultValue(const ItOptionDef *def, JsonbValue *v)
{
    switch (def->kind)
    {
        case IT_OPTION_INT:
            v->type = jbvNumeric;
            v->val.numeric = int64_to_numeric((int64) def->defval);
            break;
        case IT_OPTION_FLOAT:
            if (def->deftext)
            {
                v->type = jbvString;
                v->val.string.val = pstrdup(def->deftext);
                v->val.string.len = strlen(def->deftext);
                break;
            }
            v->type = jbvNumeric;
            v->val.numeric = DatumGetNumeric(DirectFunctionCall1(float8_numeric,
                                                                 Float8GetDatum(def->defval)));
            break;
        case IT_OPTION_BOOL:
            v->type = jbvBool;
            v->val.boolean = def->defval != 0;
            break;
        case IT_OPTION_TEXT:
        case IT_OPTION_JSON:
            if (def->deftext == NULL)
                v->type = jbvNull;
            else
            {
                v->type = jbvString;
                v->val.string.val = pstrdup(def->deftext);
                v->val.string.len = strlen(def->deftext);
            }
            break;
    }
}

/* The text of a given JSON value, for messages. */
static char *
JsonbValueText(JsonbValue *v)
{
    if (v->type != jbvBinary)
        return JsonbScalarText(v);
    return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
}

static bool
IsWord(JsonbValue *v, const char *word)
{
    return v->type == jbvString && v->val.string.len == (int) strlen(word) &&
        memcmp(v->val.string.val, word, v->val.string.len) == 0;
}

/* "balanced", "none", or {"name": number, ...} with names as a domain column allows */
static void
CheckDomainWeights(const ItOptionDef *def, JsonbValue *v)
{
    JsonbIterator *it;
    JsonbIteratorToken tok;
    JsonbValue  e;

    if (IsWord(v, "balanced") || IsWord(v, "none"))
        return;
    if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
        BadOptionValue(def, JsonbValueText(v));
    it = JsonbIteratorInit(v->val.binary.data);
    while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
    {
        double      d;

        if (tok == WJB_KEY && (e.val.string.len == 0 || e.val.string.len > IT_DOMAIN_MAX_LEN))
            BadOptionValue(def, JsonbValueText(v));
        if (tok != WJB_VALUE)
            continue;
        if (e.type != jbvNumeric)
            BadOptionValue(def, JsonbValueText(v));
        d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(e.val.numeric)));
        /* the versions store them relative to the smallest: up to 1e6 */
        if (!(d >= 1e-6 && d <= 1e6))
            BadOptionValue(def, JsonbValueText(v));
    }
}

static bool
IsRankingWord(JsonbValue *v, bool allow_auto)
{
    return IsWord(v, "vector") || IsWord(v, "neighbours") || (allow_auto && IsWord(v, "auto"));
}

/* "auto", "vector", "neighbours", or {"name": "vector" | "neighbours" | "auto", ...} */
static void
CheckCrossDomainRanking(const ItOptionDef *def, JsonbValue *v)
{
    JsonbIterator *it;
    JsonbIteratorToken tok;
    JsonbValue  e;

    if (IsRankingWord(v, true))
        return;
    if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
        BadOptionValue(def, JsonbValueText(v));
    it = JsonbIteratorInit(v->val.binary.data);
    while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
    {
        if (tok == WJB_KEY && (e.val.string.len == 0 || e.val.string.len > IT_DOMAIN_MAX_LEN))
            BadOptionValue(def, JsonbValueText(v));
        if (tok == WJB_VALUE && !IsRankingWord(&e, true))
            BadOptionValue(def, JsonbValueText(v));
    }
}

/* ["name", ...]: 1 to IT_MAX_SOURCE_MODELS distinct non-empty names */
static void
CheckSourceModels(const ItOptionDef *def, JsonbValue *v)
{
    JsonbIterator *it;
    JsonbIteratorToken tok;
    JsonbValue  e;
    char       *names[IT_MAX_SOURCE_MODELS];
    int         n = 0;

    if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data) ||
        JsonContainerIsScalar(v->val.binary.data))
        BadOptionValue(def, JsonbValueText(v));
    it = JsonbIteratorInit(v->val.binary.data);
    while ((tok = JsonbIteratorNext(&it, &e, true)) != WJB_DONE)
    {
        if (tok != WJB_ELEM)
            continue;
        if (e.type != jbvString || e.val.string.len == 0 || n == IT_MAX_SOURCE_MODELS)
            BadOptionValue(def, JsonbValueText(v));
        names[n] = pnstrdup(e.val.string.val, e.val.string.len);
        for (int i = 0; i < n; i++)
            if (strcmp(names[i], names[n]) == 0)
                BadOptionValue(def, JsonbValueText(v));
        n++;
    }
    if (n == 0)
        BadOptionValue(def, JsonbValueText(v));
}

Jsonb *
ItResolveOptions(Jsonb *given)
{
    JsonbValue *found[lengthof(OptionTable)];
    JsonbParseState *state = NULL;
    JsonbValue  key;
    JsonbValue *res;

    memset(found, 0, sizeof(found));

    if (given != NULL)
    {
        JsonbIterator *it;
        JsonbIteratorToken tok;
        JsonbValue  v;

        if (!JB_ROOT_IS_OBJECT(given))
            ereport(ERROR,
                    (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                     errmsg("options must be a jsonb object"),
                     errhint("Write the options as an object, for example '{\"factors\": 32, \"iterations\": 10}'.")));

        it = JsonbIteratorInit(&given->root);
        while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
        {
            const ItOptionDef *def;
            char       *name;
            int         len;

            if (tok != WJB_KEY)
                continue;
            name = v.val.string.val;
            len = v.val.string.len;
            def = FindOption(name, len);
            /* the old name of positive_threshold, which was the priors' alone */
            if (def == NULL && len == 16 && memcmp(name, "prior_min_weight", 16) == 0)
                def = FindOption("positive_threshold", 18);
            if (def == NULL)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("unknown option \"%s\"", pnstrdup(name, len)),
                         errhint("Valid options are: %s.", OptionNames())));
            tok = JsonbIteratorNext(&it, &v, true);
            Assert(tok == WJB_VALUE);
            /* JSON null means "the default" */
            if (v.type == jbvNull)
                continue;
            CheckValue(def, &v);
            if (found[def - OptionTable] != NULL)
                ereport(ERROR,
                        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                         errmsg("option \"%s\" is given twice", def->name),
                         errhint("prior_min_weight is the old name of positive_threshold; give one of them.")));
            found[def - OptionTable] = palloc(sizeof(JsonbValue));
            *found[def - OptionTable] = v;
        }
    }

    pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
    for (int i = 0; i < (int) IT_NOPTIONS; i++)
    {
        JsonbValue  val;

        key.type = jbvString;
        key.val.string.val = (char *) OptionTable[i].name;
        key.val.string.len = strlen(OptionTable[i].name);
        pushJsonbValue(&state, WJB_KEY, &key);
        if (found[i])
            val = *found[i];
        else
            DefaultValue(&OptionTable[i], &val);
        pushJsonbValue(&state, WJB_VALUE, &val);
    }
    res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
    return JsonbValueToJsonb(res);
}

/* The value of key in options, or NULL when absent or JSON null. */
static JsonbValue *
GetOption(Jsonb *options, const char *key, JsonbValue *buf)
{
    JsonbValue *v;

    if (options == NULL || !JB_ROOT_IS_OBJECT(options))
        return NULL;
    v = getKeyJsonValueFromContainer(&options->root, key, strlen(key), buf);
    if (v == NULL || v->type == jbvNull)
        return NULL;
    return v;
}

static void
CorruptOption(const ItOptionDef *def, const char *model, const char *expected)
{
    if (model == NULL)
        elog(ERROR, "option \"%s\" is not %s", def->name, expected);
    ereport(ERROR,
            (errcode(ERRCODE_DATA_CORRUPTED),
             errmsg("stored option \"%s\" of model \"%s\" is not %s", def->name, model, expected),
             errhint("Train a new version with train('%s', interactions, options => ...).", model)));
}

static double
StoredNumber(const ItOptionDef *def, const char *model, JsonbValue *v)
{
    double      d;

    if (v->type != jbvNumeric)
        CorruptOption(def, model, def->kind == IT_OPTION_INT ? "an integer" : "a number");
    d = DatumGetFloat8(DirectFunctionCall1(numeric_float8, NumericGetDatum(v->val.numeric)));
    if (def->kind == IT_OPTION_INT && (isnan(d) || d != floor(d) || fabs(d) > IT_SAFE_INT))
        CorruptOption(def, model, "an integer");
    if (!(d >= def->min && d <= def->max))
        CorruptOption(def, model, psprintf("within %g and %g", def->min, def->max));
    return d;
}

void
ItReadOptions(Jsonb *stored, const char *model, ItOptions *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < (int) IT_NOPTIONS; i++)
    {
        const ItOptionDef *def = &OptionTable[i];
        char       *field = (char *) out + def->offset;
        JsonbValue  buf;
        JsonbValue *v = GetOption(stored, def->name, &buf);

        switch (def->kind)
        {
            case IT_OPTION_INT:
                *(int64 *) field = v ? (int64) StoredNumber(def, model, v) : (int64) def->defval;
                break;
            case IT_OPTION_FLOAT:
                /* "auto" is resolved by training; a version stores the number used */
                if (v != NULL && model == NULL && IsAutoWord(def, v))
                    *(double *) field = IT_OPTION_AUTO;
                else if (v != NULL)
                    *(double *) field = StoredNumber(def, model, v);
                else
                    *(double *) field = def->deftext && model == NULL ? IT_OPTION_AUTO : def->defval;
                break;
            case IT_OPTION_BOOL:
                if (v != NULL && v->type != jbvBool)
                    CorruptOption(def, model, "true or false");
                *(bool *) field = v ? v->val.boolean : def->defval != 0;
                break;
            case IT_OPTION_TEXT:
                if (v != NULL && (v->type != jbvString ||
                                  (def->choices && !ChoiceAllowed(def->choices, v->val.string.val,
                                                                  v->val.string.len))))
                    CorruptOption(def, model, psprintf("one of %s", def->choices ? def->choices : "the strings"));
                *(const char **) field = v ? pnstrdup(v->val.string.val, v->val.string.len) :
                    def->deftext ? pstrdup(def->deftext) : NULL;
                break;
            case IT_OPTION_JSON:
                if (v != NULL)
                    *(Jsonb **) field = JsonbValueToJsonb(v);
                else if (def->deftext != NULL)
                {
                    JsonbValue  d;

                    DefaultValue(def, &d);
                    *(Jsonb **) field = JsonbValueToJsonb(&d);
                }
                else
                    *(Jsonb **) field = NULL;
                break;
        }
    }
}

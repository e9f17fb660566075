/*
 * cache.h
 *    The deployed version of each model in backend memory (cache.c).
 */
#ifndef IT_CACHE_H
#define IT_CACHE_H

#include "postgres.h"

#include <math.h>

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "storage/itemptr.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "common.h"
#include "options.h"

/* ------------------------------------------------------------------------
 * Model cache (cache.c)
 *
 * The deployed version of each model, loaded once into backend memory and
 * reloaded only when the deployed row changes.  A version is identified by
 * (version, trained_at) and by the physical identity of its it_model row
 * (xmin, ctid), so a model dropped and trained again with the same version
 * number inside one transaction is still seen as new.
 * ------------------------------------------------------------------------ */

/* Where a user's interest vector comes from (recommend's "source" column). */
typedef enum ItInterestSource
{
    IT_SOURCE_MODEL,            /* trained with the model */
    IT_SOURCE_FOLD_IN,          /* folded in from own interactions, with a prior */
    IT_SOURCE_FEATURES,         /* prior from features alone */
    IT_SOURCE_DOMAIN,           /* prior from other models' vectors alone (source_models) */
    IT_SOURCE_SOCIAL,           /* prior from the linked users' vectors alone (user_links) */
    IT_SOURCE_POPULAR           /* nothing known: rank by popularity, no vector */
} ItInterestSource;

extern const char *ItInterestSourceName(ItInterestSource source);
/* Parses a stored source name; ERRORs on an unknown one. */
extern ItInterestSource ItInterestSourceFromName(const char *name);

typedef struct ItModel
{
    MemoryContext cxt;          /* owns the struct and everything below */
    uint64      generation;     /* unique per load in this backend */
    int         pins;           /* callers holding it (see ItGetModel) */
    bool        detached;       /* replaced in the cache; freed when unpinned */

    /* the deployed it_model row this was loaded from */
    char       *name;
    int         version;
    TimestampTz trained_at;
    TransactionId row_xmin;
    ItemPointerData row_tid;

    /* definition, as stored with the version */
    char       *algorithm;
    char       *interactions_source;
    char       *user_features_source;   /* NULL when none */
    char       *item_features_source;   /* NULL when none */
    char       *user_links_source;  /* NULL when none */
    char       *search_path;    /* the stored sources are read with (NULL: before 0.2) */
    Oid         owner;          /* the model's owner: stored sources run as this role */
    Jsonb      *options;        /* every option, defaults filled in */
    ItOptions   opts;           /* the same, typed */
    int64       n_users;

    /* item side, rows aligned with item_ids */
    int         k;              /* factors */
    int64       n_items;
    int64      *item_ids;       /* sorted ascending, unique */
    float      *Y;              /* n_items * k, row-major */
    int64      *popularity;     /* users who interacted with each item */
    int64       max_popularity;
    float      *pop_score;      /* popularity / max_popularity (0 when 0) */
    int32      *pop_order;      /* item indexes: popularity desc, item_id asc */
    float      *item_norms;     /* |Y_i| (cosine similarity) */
    float      *YtY;            /* k * k, Y^T Y (fold-in) */
    float      *user_mean;      /* k, mean warm-user vector (population prior) */
    float      *scores;         /* it_q8_padded(n_items) scratch for one
                                 * ranking; only between calls that cannot
                                 * re-enter */
    float      *block_max;      /* the same for its block maxima and a list
                                 * of blocks: it_q8_blocks(0, n_items) + 1 */
    int32      *block_list;

    /*
     * The 8-bit copy of Y (it_q8_encode) that recommend() scans first,
     * and each item's error bound: the exact top k is then found by
     * rescoring the few items the bound cannot rule out.
     */
    int8_t     *q8;             /* it_q8_padded(n_items) * it_q8_kpad(k) */
    float      *q8_scale;       /* it_q8_padded(n_items) */
    float      *q8_tol;         /* n_items */
    float       q8_norm_max;    /* the largest 8-bit item's norm (it_q8_query) */
    float      *q8_tol_block;   /* it_q8_padded(n_items) / IT_Q8_BLOCK: each block's largest q8_tol */

    /*
     * The 4-bit copy (it_q4_encode): half the bytes again, scanned first
     * over many items (ItScanBits), with its own bounds.
     */
    uint8_t    *q4;             /* it_q4_bytes(n_items, k) */
    ItQ4Scales *q4_scale;       /* it_q8_padded(n_items) / IT_Q8_BLOCK: one a block */
    float      *q4_tol;         /* n_items */
    float       q4_norm_max;
    float      *q4_tol_block;   /* it_q8_padded(n_items) / IT_Q8_BLOCK */

    /*
     * Domains of the items (a domain column in interactions): items are in
     * (domain, item_id) order, domain d's are [domain_start[d],
     * domain_start[d + 1]).  Without domains n_domains is 0 and
     * domain_start is {0, n_items}.
     */
    int         n_domains;
    char      **domains;        /* n_domains names, sorted (strcmp) */
    int         n_contexts;     /* contexts users have vectors in (context.c), or 0 */
    char      **contexts;       /* n_contexts names, sorted (strcmp) */
    double     *context_weight; /* n_contexts: fold-in weight of its vectors, 0: none kept */
    int64      *domain_start;   /* Max(n_domains, 1) + 1 */
    bool       *domain_neighbours;  /* n_domains: cross-domain users of the
                                     * domain are ranked by co-buyers (option
                                     * cross_domain_ranking), or NULL */
    void       *cobuyers;       /* the users' items, for those rankings
                                 * (cross_domain.c), loaded on first use */
    float      *domain_weight;  /* n_domains: the scale training gave each
                                 * domain's weights (option domain_weights),
                                 * or NULL when 1 for all */

    /*
     * State of the interest providers that need more than the factor
     * tables (feature encoders, mapping weights): loaded on first use into
     * cxt by the code that owns it; NULL until then.
     */
    void       *transfer;
} ItModel;

/*
 * The deployed version of a model, loaded or reloaded as needed.  NULL:
 * the model interest_transfer.default_model names, else the only deployed
 * model the current user may use.  The current user must hold the use
 * privilege on it.  ERRORs with a hint when the model does not exist, has
 * no deployed version, is not usable, or the choice is ambiguous.  Needs no SPI
 * connection.  The model stays valid at least until CurrentMemoryContext is
 * reset or deleted (it is pinned to it), even if another call replaces it
 * in the cache meanwhile.
 */
extern ItModel *ItGetModel(const char *model);

/*
 * The same, for a SQL function called many times in one query: the check
 * of the deployed version is done once per snapshot and call site, using
 * fcinfo->flinfo->fn_extra (an ItCallCache).  A caller needing its own
 * per-call-site state keeps it in ItCallCache.extra (allocate it in
 * fcinfo->flinfo->fn_mcxt) and uses the epoch to know when to drop it.
 * Snapshots with more in-progress xids than IT_SNAPSHOT_MAX_XIDS are
 * checked on every call.
 */
#define IT_SNAPSHOT_MAX_XIDS 64

typedef struct ItCallCache
{
    uint64      epoch;          /* bumped whenever the model was re-checked */
    void       *extra;          /* for the caller */
    /* private to cache.c */
    bool        valid;
    char       *requested;      /* model argument of the last check */
    char       *name;           /* the model it resolved to */
    uint64      generation;
    Oid         userid;         /* whose use privilege was checked */
    /* what the active snapshot saw at the last check (see cache.c) */
    LocalTransactionId lxid;
    SubTransactionId subxid;
    TransactionId snap_xmin;
    TransactionId snap_xmax;
    CommandId   snap_curcid;
    uint32      snap_xcnt;
    int32       snap_subxcnt;
    bool        snap_suboverflowed;
    bool        snap_recovery;
    TransactionId snap_xids[IT_SNAPSHOT_MAX_XIDS];
} ItCallCache;

extern ItModel *ItGetModelForCall(FunctionCallInfo fcinfo, const char *model);
extern ItCallCache *ItGetCallCache(FunctionCallInfo fcinfo);

/*
 * Index of item item_id of domain d (0 without domains) in m (binary
 * search), or -1 when the model lacks it.
 */
extern int64 ItItemIndex(const ItModel *m, int d, int64 item_id);

/*
 * A weight of domain d as training saw it: times the domain's scale
 * (option domain_weights), a negative (below positive_threshold thr)
 * staying one.  Training and fold-in both weigh rows with it.
 */
static inline float
ItDomainScaled(float w, float scale, float thr)
{
    float       s = w * scale;

    if (thr > 0.0f && w < thr && !(s < thr))
        s = nextafterf(thr, 0.0f);
    return s;
}

/* qsort comparison of int32 values. */
extern int  ItCompareInt32(const void *a, const void *b);

/* The domain (0 without domains) of item index idx. */
extern int  ItItemDomain(const ItModel *m, int64 idx);

/*
 * The index of a domain argument of a SQL function (what: the argument's
 * role in messages): -1 for NULL; ERRORs with a hint when the model has
 * no domains or does not know the name.  For a model with domains and a
 * NULL domain, ERRORs when required.
 */
extern int  ItDomainArgument(const ItModel *m, const char *domain, bool required);

/*
 * The seen_domain column col of a stored user row (nseen entries, checked
 * against m's domains; ERROR when corrupt), or NULL for a model without
 * domains.
 */
extern const int16 *ItSeenDomains(const ItModel *m, int64 user_id, HeapTuple tup, TupleDesc desc,
                                  int col, int nseen);

/*
 * Reads a user's stored row of m's version: x_out[m->k] gets the vector,
 * *seen_out the indexes of the items the user interacted with (sorted
 * ascending, items missing from the model left out; palloc'd in the
 * current context, NULL when none), *source_out (may be NULL) the stored
 * source.  Returns false, touching nothing, when the user has no row.
 * Needs no SPI connection.
 */
extern bool ItGetUserVector(ItModel *m, int64 user_id, float *x_out,
                            int32 **seen_out, int *nseen,
                            ItInterestSource *source_out);

/* The same, for the user's row of a context (NULL: the global row). */
extern bool ItGetUserVectorIn(ItModel *m, int64 user_id, const char *context, float *x_out,
                              int32 **seen_out, int *nseen, ItInterestSource *source_out);

/*
 * Reads the rows of many users (in a context, NULL: the global rows) in
 * one query, so that ItGetUserVectorIn answers them from memory, until
 * ItForgetPrefetchedUsers.  Allocates in the current context, which must
 * outlive the read-ahead: forget it before resetting that context, and in
 * a PG_FINALLY block so an error cannot leave it behind.  At most two
 * read-aheads (a context's and the global rows) are kept; more are ignored.
 */
extern void ItPrefetchUsers(ItModel *m, const int64 *user_ids, int n, const char *context);
extern void ItForgetPrefetchedUsers(void);

/*
 * The interest of a user and the score it gives an item: interest.h;
 * serving users and items the model was not trained on: providers.h,
 * provider.h; reading interactions: interactions.h.
 */

#endif                          /* IT_CACHE_H */

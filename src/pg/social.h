/*
 * social.h
 *    The links between users (friends, follows; train's user_links) as the
 *    input of a prior: a user's linked users' vectors (social.c; the prior
 *    is trained like a features prior, transfer.c, and served by
 *    provider_social.c).
 */
#ifndef IT_SOCIAL_H
#define IT_SOCIAL_H

#include "common.h"
#include "features_encoder.h"

/* Links a user's input uses at most: the heaviest, then the lower ids. */
#define IT_SOCIAL_MAX_LINKS     1000
/* Rows of a user_links source at most. */
#define IT_SOCIAL_MAX_ROWS      INT64CONST(200000000)

/* One user's link. */
typedef struct ItLink
{
    int64       user_id;
    int64       linked_user_id;
    float       weight;         /* > 0 */
} ItLink;

typedef struct ItLinks
{
    int64       n;
    ItLink     *links;          /* by user_id, weight desc, linked_user_id; self-links left out */
    int64       self_links;     /* left out */
    int64       zero_weight;    /* weight 0: left out */
} ItLinks;

/*
 * Reads a user_links source (columns user_id, linked_user_id, optional
 * weight; with the caller's privileges, inside SPI_connect).  ERRORs with a
 * hint on NULL ids or weights, negative or non-finite weights, and a source
 * with more than IT_SOCIAL_MAX_ROWS rows.
 */
extern ItLinks *ItReadLinks(const char *source, const char *model);

/*
 * The input of the social prior of one user, out[k + 1 + fdims]: the
 * weighted mean of the vectors of their (at most IT_SOCIAL_MAX_LINKS)
 * linked users that have one, log(1 + their number), then their encoded
 * features (zeros when feat is NULL).  links[0..n) are the user's, in
 * ItLinks order; vector(arg, id, x) fills x and says whether id has a
 * vector.  Returns how many linked users had one (0: out is untouched).
 */
typedef bool (*ItLinkedVector) (void *arg, int64 user_id, float *x);
extern int  ItSocialInput(const ItLink *links, int64 n, int k, ItLinkedVector vector, void *arg,
                          const float *feat, int fdims, float *out, float *scratch);

/*
 * The encoded rows of the social prior for every user with links: ids
 * ascending; the linked users' vectors are X's rows of user_ids (the
 * trained users, ascending); features (may be NULL): the user side's
 * encoded rows.  *unknown gets how many links name no trained user.
 */
extern ItEncoded *ItSocialRows(const ItLinks *l, const int64 *user_ids, int64 nusers, const float *X, int k,
                               const ItEncoded *features, int64 *unknown);

#endif                          /* IT_SOCIAL_H */

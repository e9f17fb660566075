/*
 * cross_domain.h
 *    Ranking a domain's items for a user whose interactions are all in
 *    other domains (cross_domain.c): by the shared user vector, or by the
 *    items of the users who share theirs (co-buyers); chosen per domain
 *    when training (option cross_domain_ranking).
 */
#ifndef IT_CROSS_DOMAIN_H
#define IT_CROSS_DOMAIN_H

#include "common.h"
#include "cache.h"
#include "interactions.h"
#include "interest.h"

/* Fits X (d->nusers * k) and Y (d->nitems * k) on d as training does, quietly. */
typedef void (*ItCrossDomainFit) (const ItInteractionMatrix *d, const ItOptions *o, float *X, float *Y);

/*
 * Training: resolves option cross_domain_ranking, "auto" by simulation on users active in several domains, held
 * out of one, with the model fitted again without those rows (fit); stores
 * the choice of every domain in *options and returns the it_model.metrics
 * key that records it (NULL without domains).
 */
extern char *ItCrossDomainRanking(const ItInteractionMatrix *d, const ItOptions *o, ItCrossDomainFit fit,
                                  Jsonb **options, const char *model, bool stored);

/* Serving: is in, asked for domain d, ranked by co-buyers? */
extern bool ItCrossDomainByNeighbours(const ItModel *m, const ItInterest *in, int d);

/*
 * scores[0 .. n items of d) = the co-buyer scores of d's items for in's
 * seen items, plus the items' popularity / max popularity (which breaks
 * ties and ranks the items no co-buyer took); the user's own row (when
 * trained) does not count.  Loads the trained users' items on first use.
 */
extern void ItCobuyerDomainScores(ItModel *m, const ItInterest *in, bool has_user, int64 user_id,
                                  int d, float *scores);

#endif                          /* IT_CROSS_DOMAIN_H */

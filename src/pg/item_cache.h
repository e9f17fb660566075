/*
 * item_cache.h
 *    A deployed version's item arrays shared between backends through a
 *    file in the data directory (item_cache.c).
 */
#ifndef IT_ITEM_CACHE_H
#define IT_ITEM_CACHE_H

#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"

#include "cache.h"

/* interest_transfer.item_cache: read and write the files at all */
extern bool it_item_cache;

/*
 * What a file must have been written from: the database, the model's
 * name, version and trained_at, and the physical identity (xmin, ctid) of
 * every pack row, so packs rewritten for the same version, or a model
 * dropped and trained again, never match an old file.  Built from the pack
 * query's rows (columns xmin_col and tid_col, 1-based).
 */
typedef struct ItItemCacheKey
{
    StringInfoData bytes;       /* compared byte for byte with the file's */
    uint64      name_hash;      /* in the file's name */
    int64       items;          /* the packs' item count */
} ItItemCacheKey;

extern void ItItemCacheKeyFromPacks(ItItemCacheKey *key, const ItModel *m, SPITupleTable *tt,
                                    uint64 npacks, int items_col, int xmin_col, int tid_col);

/*
 * Fills m's item arrays (item_ids ... q4_tol_block, n_items, domain_start)
 * from the file written for key, mapped copy-on-write and unmapped when
 * m->cxt goes; false, with m unchanged, when there is no valid file.
 */
extern bool ItItemCacheRead(ItModel *m, const ItItemCacheKey *key);

/* Writes m's item arrays for the next backends; failures only LOG. */
extern void ItItemCacheWrite(const ItModel *m, const ItItemCacheKey *key);

/* Removes every file of a model in this database (drop_model). */
extern void ItItemCacheForget(const char *model);

#endif

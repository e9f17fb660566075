/*
 * item_cache.c
 *    A deployed version's item arrays shared between backends through a
 *    file in the data directory.
 *
 * Loading a version from its packs costs a new backend (or parallel
 * worker) the TOAST reads of every item vector and then the derived
 * arrays: the Gram matrix, the popularity order and the 8-bit copy.  The
 * first backend that loads a version therefore writes all of them, in the
 * layout they have in memory, to one file under $PGDATA/interest_transfer/;
 * the next backends map that file copy-on-write instead, so they share the
 * pages through the operating system's page cache and start in a few
 * milliseconds.
 *
 * The file is a cache, never the model: the tables stay the only truth.
 * A file is used only when its key (the database, the model's name,
 * version and trained_at, and the xmin and ctid of every pack row) equals
 * the packs' now, so packs rewritten for a version, a model dropped and
 * trained again or a VACUUM FULL make it unused; and only when its size
 * is the one its header gives and the CRC-32C of its header, key and
 * index arrays (item ids, popularity order, domain ranges: the values
 * used as array indexes) matches.  It is written to a temporary name,
 * flushed and renamed into place (durable_rename), so readers, even after
 * a crash of the machine, see a whole file or none.  The vectors are not
 * summed on every load: that would read every page where a first call
 * touches only the 8-bit copy and a few rows, and the mapping's page
 * faults are most of a first call's time.  A file that cannot be written
 * costs only a LOG line.  Writing a version's file removes the files of
 * the model's other versions; drop_model() removes all of them.
 */
#include "postgres.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/itemptr.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "kernels.h"
#include "item_cache.h"

bool        it_item_cache = true;

/* the directory, relative to the data directory (a backend's cwd) */
#define IT_CACHE_DIR        "interest_transfer"
#define IT_CACHE_MAGIC      "ITITEMS"
/* raise when the layout of any array below changes */
#define IT_CACHE_FORMAT     3
#define IT_CACHE_ALIGN      64

typedef enum CacheArray
{
    A_ITEM_IDS,
    A_POPULARITY,
    A_Y,
    A_ITEM_NORMS,
    A_POP_SCORE,
    A_POP_ORDER,
    A_YTY,
    A_Q8,
    A_Q8_SCALE,
    A_Q8_TOL,
    A_Q8_TOL_BLOCK,
    A_Q4,
    A_Q4_SCALE,
    A_Q4_TOL,
    A_Q4_TOL_BLOCK,
    A_DOMAIN_START,
    N_ARRAYS
} CacheArray;

typedef struct FileHeader
{
    char        magic[8];
    uint32      format;
    uint32      pg_version;     /* PG_VERSION_NUM of the writer */
    uint32      header_size;    /* sizeof(FileHeader); the key follows */
    uint32      key_size;
    uint64      file_size;
    pg_crc32c   crc;            /* of the header (this field zero), the key
                                 * and the arrays Summed() names */
    int32       k;
    int64       n_items;
    int32       n_starts;       /* entries of domain_start */
    float       q8_norm_max;
    float       q4_norm_max;
    int64       max_popularity;
    uint64      offset[N_ARRAYS];
    uint64      size[N_ARRAYS];
} FileHeader;

/* A mapping, unmapped when the model's context goes. */
typedef struct Mapping
{
    MemoryContextCallback cb;
    void       *addr;
    size_t      len;
} Mapping;

/* The arrays whose values index others: checksummed on every read. */
static bool
Summed(int a)
{
    return a == A_ITEM_IDS || a == A_POP_ORDER || a == A_DOMAIN_START;
}

/* The checksum a header describes, over the mapped file at base. */
static pg_crc32c
Checksum(const FileHeader *h, const char *base)
{
    FileHeader  copy = *h;
    pg_crc32c   crc;

    copy.crc = 0;
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, &copy, sizeof(copy));
    COMP_CRC32C(crc, base + sizeof(FileHeader), h->key_size);
    for (int a = 0; a < N_ARRAYS; a++)
        if (Summed(a))
            COMP_CRC32C(crc, base + h->offset[a], h->size[a]);
    FIN_CRC32C(crc);
    return crc;
}

static void
CachePath(char *path, size_t len, uint64 name_hash, int version)
{
    snprintf(path, len, IT_CACHE_DIR "/%u.%016llx.%d", MyDatabaseId,
             (unsigned long long) name_hash, version);
}

/* The file name prefix of every version of a model. */
static void
CachePrefix(char *prefix, size_t len, uint64 name_hash)
{
    snprintf(prefix, len, "%u.%016llx.", MyDatabaseId, (unsigned long long) name_hash);
}

static uint64
NameHash(const char *name)
{
    return hash_bytes_extended((const unsigned char *) name, (int) strlen(name), 0);
}

void
ItItemCacheKeyFromPacks(ItItemCacheKey *key, const ItModel *m, SPITupleTable *tt,
                        uint64 npacks, int items_col, int xmin_col, int tid_col)
{
    uint32      name_len = (uint32) strlen(m->name);
    uint32      n = (uint32) npacks;
    int32       version = m->version;
    int64       trained_at = m->trained_at;

    initStringInfo(&key->bytes);
    appendBinaryStringInfo(&key->bytes, (const char *) &MyDatabaseId, sizeof(Oid));
    appendBinaryStringInfo(&key->bytes, (const char *) &version, sizeof(version));
    appendBinaryStringInfo(&key->bytes, (const char *) &trained_at, sizeof(trained_at));
    appendBinaryStringInfo(&key->bytes, (const char *) &name_len, sizeof(name_len));
    appendBinaryStringInfo(&key->bytes, m->name, name_len);
    appendBinaryStringInfo(&key->bytes, (const char *) &n, sizeof(n));
    key->items = 0;
    for (uint64 r = 0; r < npacks; r++)
    {
        bool        isnull;
        int32       items = DatumGetInt32(SPI_getbinval(tt->vals[r], tt->tupdesc, items_col, &isnull));
        TransactionId xmin = DatumGetTransactionId(SPI_getbinval(tt->vals[r], tt->tupdesc, xmin_col, &isnull));
        ItemPointer tid = (ItemPointer) DatumGetPointer(SPI_getbinval(tt->vals[r], tt->tupdesc, tid_col, &isnull));
        uint32      block = ItemPointerGetBlockNumberNoCheck(tid);
        uint16      offset = ItemPointerGetOffsetNumberNoCheck(tid);

        appendBinaryStringInfo(&key->bytes, (const char *) &xmin, sizeof(xmin));
        appendBinaryStringInfo(&key->bytes, (const char *) &block, sizeof(block));
        appendBinaryStringInfo(&key->bytes, (const char *) &offset, sizeof(offset));
        /* the loader refuses such packs; no file is read or written for them */
        if (items < 1 || key->items < 0)
            key->items = -1;
        else
            key->items += items;
    }
    key->name_hash = NameHash(m->name);
}

/* Each array's size in bytes, as cache.c allocates it, for k factors and n items. */
static void
ArraySizes(int k, int64 n, int n_starts, uint64 *size)
{
    uint64      padded = (uint64) it_q8_padded(n);

    size[A_ITEM_IDS] = sizeof(int64) * (uint64) n;
    size[A_POPULARITY] = sizeof(int64) * (uint64) n;
    size[A_Y] = sizeof(float) * (uint64) n * k;
    size[A_ITEM_NORMS] = sizeof(float) * (uint64) n;
    size[A_POP_SCORE] = sizeof(float) * (uint64) n;
    size[A_POP_ORDER] = sizeof(int32) * (uint64) n;
    size[A_YTY] = sizeof(float) * (uint64) k * k;
    size[A_Q8] = (uint64) it_q8_kpad(k) * padded;
    size[A_Q8_SCALE] = sizeof(float) * padded;
    size[A_Q8_TOL] = sizeof(float) * (uint64) n;
    size[A_Q8_TOL_BLOCK] = sizeof(float) * (padded / IT_Q8_BLOCK);
    size[A_Q4] = (uint64) it_q4_bytes(n, k);
    size[A_Q4_SCALE] = sizeof(ItQ4Scales) * (padded / IT_Q8_BLOCK);
    size[A_Q4_TOL] = sizeof(float) * (uint64) n;
    size[A_Q4_TOL_BLOCK] = sizeof(float) * (padded / IT_Q8_BLOCK);
    size[A_DOMAIN_START] = sizeof(int64) * (uint64) n_starts;
}

static void
ArrayPointers(const ItModel *m, const void **p)
{
    p[A_ITEM_IDS] = m->item_ids;
    p[A_POPULARITY] = m->popularity;
    p[A_Y] = m->Y;
    p[A_ITEM_NORMS] = m->item_norms;
    p[A_POP_SCORE] = m->pop_score;
    p[A_POP_ORDER] = m->pop_order;
    p[A_YTY] = m->YtY;
    p[A_Q8] = m->q8;
    p[A_Q8_SCALE] = m->q8_scale;
    p[A_Q8_TOL] = m->q8_tol;
    p[A_Q8_TOL_BLOCK] = m->q8_tol_block;
    p[A_Q4] = m->q4;
    p[A_Q4_SCALE] = m->q4_scale;
    p[A_Q4_TOL] = m->q4_tol;
    p[A_Q4_TOL_BLOCK] = m->q4_tol_block;
    p[A_DOMAIN_START] = m->domain_start;
}

static int
NumStarts(const ItModel *m)
{
    return Max(m->n_domains, 1) + 1;
}

static void
Unmap(void *arg)
{
    Mapping    *mp = (Mapping *) arg;

    (void) munmap(mp->addr, mp->len);
}

/* Why a file is not used, for the DEBUG line; NULL when it is valid. */
static const char *
Invalid(const FileHeader *h, const char *base, const ItModel *m, const ItItemCacheKey *key)
{
    uint64      size[N_ARRAYS];
    uint64      data_start;
    pg_crc32c   crc;
    const int64 *starts;

    if (memcmp(h->magic, IT_CACHE_MAGIC, sizeof(h->magic)) != 0 || h->format != IT_CACHE_FORMAT ||
        h->pg_version != PG_VERSION_NUM || h->header_size != sizeof(FileHeader))
        return "was written by another release";
    if (h->key_size != (uint32) key->bytes.len || h->file_size < sizeof(FileHeader) + h->key_size)
        return "was written for other packs";
    if (memcmp(base + sizeof(FileHeader), key->bytes.data, key->bytes.len) != 0)
        return "was written for other packs";
    if (h->k != m->k || h->n_items != key->items || h->n_starts != NumStarts(m))
        return "has another shape";
    ArraySizes(m->k, key->items, NumStarts(m), size);
    data_start = sizeof(FileHeader) + h->key_size;
    for (int a = 0; a < N_ARRAYS; a++)
        if (h->size[a] != size[a] || h->offset[a] % IT_CACHE_ALIGN != 0 || h->offset[a] < data_start ||
            h->offset[a] > h->file_size || h->size[a] > h->file_size - h->offset[a])
            return "has another shape";

    crc = Checksum(h, base);
    if (!EQ_CRC32C(crc, h->crc))
        return "is damaged (checksum)";
    /* the domain ranges must hold the rankers' invariants */
    starts = (const int64 *) (base + h->offset[A_DOMAIN_START]);
    for (int d = 0; d < h->n_starts; d++)
        if (starts[d] < 0 || starts[d] > h->n_items || (d > 0 && starts[d] < starts[d - 1]) ||
            (d == 0 && starts[d] != 0) || (d == h->n_starts - 1 && starts[d] != h->n_items))
            return "has invalid domain ranges";
    return NULL;
}

bool
ItItemCacheRead(ItModel *m, const ItItemCacheKey *key)
{
    char        path[MAXPGPATH];
    int         fd;
    struct stat st;
    char       *base;
    const FileHeader *h;
    const char *why;
    Mapping    *mp;
    const int64 *starts;

    if (!it_item_cache || key->items < 0)
        return false;
    CachePath(path, sizeof(path), key->name_hash, m->version);
    fd = OpenTransientFile(path, O_RDONLY | PG_BINARY);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t) sizeof(FileHeader))
    {
        CloseTransientFile(fd);
        return false;
    }
    base = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    CloseTransientFile(fd);
    if (base == MAP_FAILED)
    {
        ereport(LOG,
                (errcode_for_file_access(),
                 errmsg("could not map shared item file \"%s\": %m", path)));
        return false;
    }
    h = (const FileHeader *) base;
    why = h->file_size == (uint64) st.st_size ? Invalid(h, base, m, key) : "is shorter or longer than its header says";
    if (why != NULL)
    {
        (void) munmap(base, (size_t) st.st_size);
        ereport(DEBUG1,
                (errmsg_internal("interest_transfer: the shared item file of version %d of model \"%s\" %s",
                                 m->version, m->name, why)));
        return false;
    }

    starts = (const int64 *) (base + h->offset[A_DOMAIN_START]);
    mp = MemoryContextAllocZero(m->cxt, sizeof(Mapping));
    mp->addr = base;
    mp->len = (size_t) st.st_size;
    mp->cb.func = Unmap;
    mp->cb.arg = mp;
    MemoryContextRegisterResetCallback(m->cxt, &mp->cb);

    m->n_items = h->n_items;
    m->max_popularity = h->max_popularity;
    m->q8_norm_max = h->q8_norm_max;
    m->q4_norm_max = h->q4_norm_max;
    m->item_ids = (int64 *) (base + h->offset[A_ITEM_IDS]);
    m->popularity = (int64 *) (base + h->offset[A_POPULARITY]);
    m->Y = (float *) (base + h->offset[A_Y]);
    m->item_norms = (float *) (base + h->offset[A_ITEM_NORMS]);
    m->pop_score = (float *) (base + h->offset[A_POP_SCORE]);
    m->pop_order = (int32 *) (base + h->offset[A_POP_ORDER]);
    m->YtY = (float *) (base + h->offset[A_YTY]);
    m->q8 = (int8_t *) (base + h->offset[A_Q8]);
    m->q8_scale = (float *) (base + h->offset[A_Q8_SCALE]);
    m->q8_tol = (float *) (base + h->offset[A_Q8_TOL]);
    m->q8_tol_block = (float *) (base + h->offset[A_Q8_TOL_BLOCK]);
    m->q4 = (uint8_t *) (base + h->offset[A_Q4]);
    m->q4_scale = (ItQ4Scales *) (base + h->offset[A_Q4_SCALE]);
    m->q4_tol = (float *) (base + h->offset[A_Q4_TOL]);
    m->q4_tol_block = (float *) (base + h->offset[A_Q4_TOL_BLOCK]);
    memcpy(m->domain_start, starts, h->size[A_DOMAIN_START]);
    return true;
}

/* Writes len bytes (zeros when data is NULL) to fd; false on failure. */
static bool
Emit(int fd, const void *data, size_t len)
{
    static const char zeros[IT_CACHE_ALIGN];

    while (len > 0)
    {
        size_t      chunk = data != NULL ? Min(len, (size_t) 1 << 30) : Min(len, sizeof(zeros));
        const char *p = data != NULL ? data : zeros;
        ssize_t     w;

        errno = 0;
        w = write(fd, p, chunk);
        if (w <= 0)
        {
            if (errno == 0)
                errno = ENOSPC;
            return false;
        }
        len -= (size_t) w;
        if (data != NULL)
            data = p + w;
    }
    return true;
}

/* A temporary file this old was left by a backend that died writing it. */
#define IT_CACHE_STALE_SECONDS 3600

/*
 * Removes this database's files of a model: all, or all but the file keep.
 * With keep (after writing it), also the files of dropped databases and
 * temporary files abandoned by a crash.
 */
static void
RemoveFiles(uint64 name_hash, const char *keep)
{
    char        prefix[64];
    char        path[MAXPGPATH];
    DIR        *dir;
    struct dirent *de;
    time_t      now = time(NULL);

    CachePrefix(prefix, sizeof(prefix), name_hash);
    dir = AllocateDir(IT_CACHE_DIR);
    if (dir == NULL)
        return;
    while ((de = ReadDirExtended(dir, IT_CACHE_DIR, LOG)) != NULL)
    {
        bool        tmp = strstr(de->d_name, ".tmp.") != NULL;
        bool        remove;

        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), IT_CACHE_DIR "/%s", de->d_name);
        if (tmp)
        {
            struct stat st;

            remove = keep != NULL && stat(path, &st) == 0 && now - st.st_mtime > IT_CACHE_STALE_SECONDS;
        }
        else if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            remove = keep == NULL || strcmp(path, keep) != 0;
        else if (keep == NULL)
            remove = false;
        else
        {
            Oid         db = (Oid) strtoul(de->d_name, NULL, 10);

            remove = db != InvalidOid && !SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(db));
        }
        if (remove && unlink(path) != 0 && errno != ENOENT)
            ereport(LOG,
                    (errcode_for_file_access(),
                     errmsg("could not remove shared item file \"%s\": %m", path)));
    }
    FreeDir(dir);
}

void
ItItemCacheWrite(const ItModel *m, const ItItemCacheKey *key)
{
    char        path[MAXPGPATH];
    char        tmp[MAXPGPATH];
    const void *p[N_ARRAYS];
    FileHeader  h;
    uint64      pos;
    pg_crc32c   crc;
    int         fd;
    bool        ok;

    if (!it_item_cache || key->items < 0 || key->items != m->n_items)
        return;
    if (MakePGDirectory(IT_CACHE_DIR) != 0 && errno != EEXIST)
    {
        ereport(LOG,
                (errcode_for_file_access(),
                 errmsg("could not create directory \"%s\": %m", IT_CACHE_DIR)));
        return;
    }
    CachePath(path, sizeof(path), key->name_hash, m->version);
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, MyProcPid);

    memset(&h, 0, sizeof(h));
    memcpy(h.magic, IT_CACHE_MAGIC, sizeof(h.magic));
    h.format = IT_CACHE_FORMAT;
    h.pg_version = PG_VERSION_NUM;
    h.header_size = sizeof(FileHeader);
    h.key_size = (uint32) key->bytes.len;
    h.k = m->k;
    h.n_items = m->n_items;
    h.n_starts = NumStarts(m);
    h.q8_norm_max = m->q8_norm_max;
    h.q4_norm_max = m->q4_norm_max;
    h.max_popularity = m->max_popularity;
    ArraySizes(m->k, m->n_items, h.n_starts, h.size);
    pos = sizeof(FileHeader) + h.key_size;
    for (int a = 0; a < N_ARRAYS; a++)
    {
        pos = TYPEALIGN(IT_CACHE_ALIGN, pos);
        h.offset[a] = pos;
        pos += h.size[a];
    }
    h.file_size = pos;
    ArrayPointers(m, p);

    fd = OpenTransientFile(tmp, O_CREAT | O_TRUNC | O_WRONLY | PG_BINARY);
    if (fd < 0)
    {
        ereport(LOG,
                (errcode_for_file_access(),
                 errmsg("could not create shared item file \"%s\": %m", tmp)));
        return;
    }
    h.crc = 0;
    INIT_CRC32C(crc);
    COMP_CRC32C(crc, &h, sizeof(h));
    COMP_CRC32C(crc, key->bytes.data, key->bytes.len);
    for (int a = 0; a < N_ARRAYS; a++)
        if (Summed(a))
            COMP_CRC32C(crc, p[a], h.size[a]);
    FIN_CRC32C(crc);
    h.crc = crc;
    ok = Emit(fd, &h, sizeof(h)) && Emit(fd, key->bytes.data, key->bytes.len);
    pos = sizeof(FileHeader) + h.key_size;
    for (int a = 0; ok && a < N_ARRAYS; a++)
    {
        ok = Emit(fd, NULL, h.offset[a] - pos) && Emit(fd, p[a], h.size[a]);
        pos = h.offset[a] + h.size[a];
    }
    if (!ok)
        ereport(LOG,
                (errcode_for_file_access(),
                 errmsg("could not write shared item file \"%s\": %m", tmp)));
    if (CloseTransientFile(fd) != 0 && ok)
    {
        ereport(LOG,
                (errcode_for_file_access(),
                 errmsg("could not close shared item file \"%s\": %m", tmp)));
        ok = false;
    }
    /* flushed before it has its name: a crash leaves a whole file or none */
    if (ok && durable_rename(tmp, path, LOG) != 0)
        ok = false;
    if (!ok)
    {
        (void) unlink(tmp);
        return;
    }
    ereport(DEBUG1,
            (errmsg_internal("interest_transfer: wrote the shared item file of version %d of model \"%s\"",
                             m->version, m->name)));
    RemoveFiles(key->name_hash, path);
}

void
ItItemCacheForget(const char *model)
{
    RemoveFiles(NameHash(model), NULL);
}

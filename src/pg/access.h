/*
 * access.h
 *    Who may do what with a model, and whose rights a statement runs with
 *    (access.c).
 *
 * A model has an owner and two lists of roles (it_model_acl): users, who
 * may serve from it (recommend, score, similar_items, recommend_for,
 * evaluate, the models view), and trainers, who may also retrain it with
 * its stored definition, deploy a version and refresh it.  Only the owner
 * (or a member of the owner role) gives a model a new definition, grants,
 * revokes, reassigns and drops it.  A superuser may do everything.
 *
 * Statements run with one of three sets of rights:
 *   - the caller's: sources given in the call (train's arguments,
 *     evaluate's test, it_encode_features);
 *   - the tables' owner's (ItRunAsTablesOwner): every statement on the
 *     extension's own tables, with search_path pg_catalog, pg_temp;
 *   - the model owner's (ItRunAsModelOwner): a model's stored sources, as a
 *     view runs with its owner's rights: the search_path stored with the
 *     definition, a security-restricted operation, read-only.
 */
#ifndef IT_ACCESS_H
#define IT_ACCESS_H

#include "postgres.h"

typedef enum ItPrivilege
{
    IT_PRIV_USE,                /* serve from the model */
    IT_PRIV_TRAIN,              /* also retrain, deploy, refresh */
    IT_PRIV_OWN                 /* also redefine, grant, revoke, drop */
} ItPrivilege;

typedef struct ItModelAcl
{
    Oid         owner;
    int         nusers;
    Oid        *users;          /* InvalidOid = PUBLIC */
    int         ntrainers;
    Oid        *trainers;
} ItModelAcl;

/* Parses "use", "train" or "owner"; ERRORs on anything else. */
extern ItPrivilege ItPrivilegeFromName(const char *name);
extern const char *ItPrivilegeName(ItPrivilege p);

/* The ACL from the columns owner, users, trainers of it_model_acl (in the current context). */
extern void ItAclFromDatums(Datum owner, Datum users, Datum trainers, ItModelAcl *acl);
/* Whether role holds privilege p on a model with this ACL. */
extern bool ItAclAllows(const ItModelAcl *acl, ItPrivilege p, Oid role);
/* ERRORs with insufficient_privilege (and a hint naming the owner) unless role holds p. */
extern void ItAclRequire(const char *model, const ItModelAcl *acl, ItPrivilege p, Oid role);

/*
 * Reads the ACL of a model (inside SPI_connect; as the tables' owner);
 * false when the model does not exist.  fresh: in the latest snapshot
 * (after queuing on the model's lock: ItExecuteLatest), else the current one.
 */
extern bool ItReadModelAcl(const char *model, bool fresh, ItModelAcl *acl);

typedef struct ItRunAs
{
    Oid         saved_userid;
    int         saved_sec_context;
    int         guc_nestlevel;
} ItRunAs;

/* The search_path of stored sources of versions written before 0.2. */
#define IT_DEFAULT_SOURCE_SEARCH_PATH "\"$user\", public, pg_temp"

extern void ItRunAsTablesOwner(ItRunAs *r);
/*
 * The same without pinning search_path, for the serving hot path: only for
 * statements that name every table schema-qualified and every operator
 * with OPERATOR(pg_catalog.x), and call no function, so that no
 * search_path can change what they do (cache.c's saved plans).  Pinning the
 * path there cost a GUC change and restore, and a search-path recomputation,
 * on every call.
 */
extern void ItRunAsTablesOwnerForPlans(ItRunAs *r);
extern void ItRunAsModelOwner(ItRunAs *r, const char *model, Oid owner, const char *search_path);
extern void ItRunAsEnd(ItRunAs *r);

/* The search_path to store with a definition given now (schemas quoted, pg_temp last). */
extern char *ItDefinitionSearchPath(void);

/*
 * ERRORs before any work when the transaction cannot write (a hot standby,
 * a read-only transaction); action says what was refused ("train").
 */
extern void ItRefuseReadOnly(const char *action, const char *model);

/*
 * One writer per model: an exclusive lock on the model, held until the
 * end of the transaction.  A lock on an object of the extension that no
 * SQL function takes, so only the extension's functions (after checking
 * the caller's privileges) can queue on it.
 */
extern void ItLockModel(const char *model);

/*
 * Grants SELECT on the empty, column-less table it_role_pin to each of the
 * given roles that owns or was granted a model, and revokes it from those
 * that no longer do.  The grant is a dependency PostgreSQL records and
 * pg_dump keeps (by role name), so DROP ROLE refuses while the role still
 * owns or uses models.  Between ItBeginWrite and ItEndWrite (as the
 * tables' owner).
 */
extern void ItSyncRolePins(const Oid *roles, int n);

#endif                          /* IT_ACCESS_H */

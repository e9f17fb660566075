/*
 * access.c
 *    Privileges on models (it_model_acl), whose rights a statement runs
 *    with, the per-model writer lock, and the SQL functions grant_model,
 *    revoke_model, reassign_models and has_model_privilege.  See access.h.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"

#include "common.h"
#include "store.h"

ItPrivilege
ItPrivilegeFromName(const char *name)
{
    if (pg_strcasecmp(name, "use") == 0)
        return IT_PRIV_USE;
    if (pg_strcasecmp(name, "train") == 0)
        return IT_PRIV_TRAIN;
    if (pg_strcasecmp(name, "owner") == 0)
        return IT_PRIV_OWN;
    ereport(ERROR,
            (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
             errmsg("unknown model privilege \"%s\"", name),
             errhint("Use 'use' (recommend, score, evaluate, ...) or 'train' (also retrain, deploy, refresh); "
                     "has_model_privilege also takes 'owner'.")));
    return IT_PRIV_USE;         /* keep compiler quiet */
}

const char *
ItPrivilegeName(ItPrivilege p)
{
    switch (p)
    {
        case IT_PRIV_USE:
            return "use";
        case IT_PRIV_TRAIN:
            return "train";
        case IT_PRIV_OWN:
            return "owner";
    }
    return "?";
}

/* The elements of an oid-like array (regrole[]), in the current context. */
static Oid *
OidArray(Datum d, int *n)
{
    ArrayType  *arr = DatumGetArrayTypeP(d);
    Datum      *elems;
    bool       *nulls;
    Oid        *out;

    deconstruct_array(arr, ARR_ELEMTYPE(arr), sizeof(Oid), true, TYPALIGN_INT, &elems, &nulls, n);
    out = palloc(sizeof(Oid) * Max(*n, 1));
    for (int i = 0; i < *n; i++)
        out[i] = nulls[i] ? InvalidOid : DatumGetObjectId(elems[i]);
    return out;
}

void
ItAclFromDatums(Datum owner, Datum users, Datum trainers, ItModelAcl *acl)
{
    acl->owner = DatumGetObjectId(owner);
    acl->users = OidArray(users, &acl->nusers);
    acl->trainers = OidArray(trainers, &acl->ntrainers);
}

/* Membership with inheritance; PUBLIC (InvalidOid) holds for everyone. */
static bool
RoleIn(Oid role, const Oid *list, int n)
{
    for (int i = 0; i < n; i++)
    {
        if (!OidIsValid(list[i]) || has_privs_of_role(role, list[i]))
            return true;
    }
    return false;
}

bool
ItAclAllows(const ItModelAcl *acl, ItPrivilege p, Oid role)
{
    /* a dropped owner's OID matches no role; superusers still pass */
    if (has_privs_of_role(role, acl->owner))
        return true;
    switch (p)
    {
        case IT_PRIV_USE:
            return RoleIn(role, acl->users, acl->nusers) ||
                RoleIn(role, acl->trainers, acl->ntrainers);
        case IT_PRIV_TRAIN:
            return RoleIn(role, acl->trainers, acl->ntrainers);
        case IT_PRIV_OWN:
            return false;
    }
    return false;
}

void
ItAclRequire(const char *model, const ItModelAcl *acl, ItPrivilege p, Oid role)
{
    const char *owner;

    if (ItAclAllows(acl, p, role))
        return;
    owner = GetUserNameFromId(acl->owner, true);
    if (owner == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("permission denied for model \"%s\"", model),
                 errdetail("The role that owned it (OID %u) no longer exists.", acl->owner),
                 errhint("A superuser can give it to another role with reassign_models('%u', 'new_owner').",
                         acl->owner)));
    if (p == IT_PRIV_OWN)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("must be owner of model \"%s\"", model),
                 errhint("Ask its owner, role \"%s\", or a superuser to do it.", owner)));
    ereport(ERROR,
            (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
             errmsg("permission denied for model \"%s\"", model),
             errdetail("Role \"%s\" lacks the %s privilege on it.",
                       GetUserNameFromId(role, false), ItPrivilegeName(p)),
             errhint("Ask its owner, role \"%s\", to run grant_model('%s', '%s', '%s').",
                     owner, model, GetUserNameFromId(role, false), ItPrivilegeName(p))));
}

bool
ItReadModelAcl(const char *model, bool fresh, ItModelAcl *acl)
{
    ItRunAs     r;
    bool        isnull;
    bool        found;

    ItRunAsTablesOwner(&r);
    found = ItStoreAclRow(model, fresh);
    if (found)
    {
        HeapTuple   tup = SPI_tuptable->vals[0];
        TupleDesc   desc = SPI_tuptable->tupdesc;

        ItAclFromDatums(SPI_getbinval(tup, desc, 1, &isnull),
                        SPI_getbinval(tup, desc, 2, &isnull),
                        SPI_getbinval(tup, desc, 3, &isnull), acl);
    }
    ItRunAsEnd(&r);
    return found;
}

/* ------------------------------------------------------------------------
 * Whose rights
 * ------------------------------------------------------------------------ */

static void
RunAs(ItRunAs *r, Oid role, const char *search_path, bool read_only)
{
    GetUserIdAndSecContext(&r->saved_userid, &r->saved_sec_context);
    SetUserIdAndSecContext(role,
                           r->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
                           SECURITY_RESTRICTED_OPERATION);
    /* restored, with the role, by ItRunAsEnd or by the (sub)transaction's abort */
    r->guc_nestlevel = NewGUCNestLevel();
    (void) set_config_option("search_path", search_path,
                             PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
    if (read_only)
        (void) set_config_option("transaction_read_only", "on",
                                 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

void
ItRunAsTablesOwner(ItRunAs *r)
{
    /*
     * The caller's search_path could put their own operators or functions
     * ahead of pg_catalog's; none may run as the tables' owner.
     */
    RunAs(r, ItTablesOwner(), "pg_catalog, pg_temp", false);
}

void
ItRunAsModelOwner(ItRunAs *r, const char *model, Oid owner, const char *search_path)
{
    if (!OidIsValid(owner) || GetUserNameFromId(owner, true) == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("cannot read the stored sources of model \"%s\": its owner (OID %u) no longer exists",
                        model, owner),
                 errhint("A superuser can give it to another role with reassign_models('%u', 'new_owner').",
                         owner)));
    /* a version stored before 0.2 has no search_path: the default one, pg_temp last */
    RunAs(r, owner, search_path ? search_path : IT_DEFAULT_SOURCE_SEARCH_PATH, true);
}

void
ItRunAsTablesOwnerForPlans(ItRunAs *r)
{
    GetUserIdAndSecContext(&r->saved_userid, &r->saved_sec_context);
    SetUserIdAndSecContext(ItTablesOwner(),
                           r->saved_sec_context | SECURITY_LOCAL_USERID_CHANGE |
                           SECURITY_RESTRICTED_OPERATION);
    r->guc_nestlevel = -1;
}

void
ItRunAsEnd(ItRunAs *r)
{
    if (r->guc_nestlevel < 0)
    {
        SetUserIdAndSecContext(r->saved_userid, r->saved_sec_context);
        return;
    }
    /*
     * false: a SET (even a session-level one) made by what ran inside is
     * undone, as PostgreSQL does after running untrusted code in a
     * security-restricted operation; it must not change the caller's session.
     */
    AtEOXact_GUC(false, r->guc_nestlevel);
    SetUserIdAndSecContext(r->saved_userid, r->saved_sec_context);
}

char *
ItDefinitionSearchPath(void)
{
    List       *path = fetch_search_path(false);
    StringInfoData buf;
    ListCell   *lc;

    initStringInfo(&buf);
    foreach(lc, path)
    {
        Oid         nsp = lfirst_oid(lc);
        char       *name;

        if (isAnyTempNamespace(nsp))
            continue;           /* the caller's session's, meaningless later */
        name = get_namespace_name(nsp);
        if (name == NULL)
            continue;
        appendStringInfo(&buf, "%s, ", quote_identifier(name));
    }
    appendStringInfoString(&buf, "pg_temp");
    list_free(path);
    return buf.data;
}

/* ------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------ */

void
ItRefuseReadOnly(const char *action, const char *model)
{
    if (RecoveryInProgress())
        ereport(ERROR,
                (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                 errmsg("cannot %s model \"%s\" on a hot standby", action, model),
                 errhint("Run %s() on the primary server; standbys serve recommend() from the models it writes.",
                         action)));
    if (XactReadOnly)
        ereport(ERROR,
                (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
                 errmsg("cannot %s model \"%s\" in a read-only transaction", action, model),
                 errhint("Run it in a read-write transaction (not after SET TRANSACTION READ ONLY or "
                         "with default_transaction_read_only on).")));
}

void
ItLockModel(const char *model)
{
    Oid         nsp = get_namespace_oid(ItSchemaName(), false);
    Oid         relid = get_relname_relid("it_model_acl", nsp);
    uint32      h = DatumGetUInt32(hash_any((const unsigned char *) model, strlen(model)));

    if (!OidIsValid(relid))
        elog(ERROR, "interest_transfer table it_model_acl is missing");
    /* two names with one hash merely queue behind each other */
    LockDatabaseObject(relid, (Oid) h, 0, ExclusiveLock);
}

void
ItSyncRolePins(const Oid *roles, int n)
{
    for (int i = 0; i < n; i++)
    {
        Oid         role = roles[i];
        char       *rolename;

        if (!OidIsValid(role))
            continue;           /* PUBLIC */
        rolename = GetUserNameFromId(role, true);
        if (rolename == NULL)
            continue;           /* dropped already */
        ItStorePinRole(rolename, ItStoreRoleHasModels(role));
    }
}

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------ */

static char *
TextArg(FunctionCallInfo fcinfo, int argno, const char *name, const char *hint)
{
    if (PG_ARGISNULL(argno))
        ItNullArgument(name, hint);
    return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

/* A role named in grant_model / revoke_model: a role name, or "public". */
static Oid
GranteeOid(const char *name)
{
    if (pg_strcasecmp(name, "public") == 0)
        return InvalidOid;
    return get_role_oid(name, false);
}

/*
 * has_model_privilege(model text, privilege text DEFAULT 'use',
 *                     role name DEFAULT CURRENT_USER) RETURNS boolean
 */
PG_FUNCTION_INFO_V1(interest_transfer_has_model_privilege);
Datum
interest_transfer_has_model_privilege(PG_FUNCTION_ARGS)
{
    char       *model = TextArg(fcinfo, 0, "model", "Name the model, for example has_model_privilege('shop').");
    ItPrivilege p = ItPrivilegeFromName(TextArg(fcinfo, 1, "privilege", "Use 'use', 'train' or 'owner'."));
    Oid         role;
    ItModelAcl  acl;
    bool        found;
    bool        allowed;

    if (PG_ARGISNULL(2))
        ItNullArgument("role", "Name a role, or leave the argument out for the current user.");
    role = get_role_oid(NameStr(*PG_GETARG_NAME(2)), false);

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    found = ItReadModelAcl(model, false, &acl);
    /* the ACL lives in SPI's memory: decide before SPI_finish */
    allowed = found && ItAclAllows(&acl, p, role);
    SPI_finish();
    if (!found)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("model \"%s\" does not exist", model),
                 errhint("List the models you may use with SELECT DISTINCT model FROM models.")));
    PG_RETURN_BOOL(allowed);
}

/* Adds (grant) or removes (revoke) role from one list of a model's ACL. */
static void
ChangeGrant(FunctionCallInfo fcinfo, bool grant)
{
    const char *fn = grant ? "grant_model" : "revoke_model";
    char       *model = TextArg(fcinfo, 0, "model",
                                psprintf("Name the model, for example %s('shop', 'app', 'use').", fn));
    char       *rolename = TextArg(fcinfo, 1, "role",
                                   "Name a role, or 'public' for every role.");
    ItPrivilege p = ItPrivilegeFromName(TextArg(fcinfo, 2, "privilege", "Use 'use' or 'train'."));
    Oid         role;
    ItWriteState st;

    if (p == IT_PRIV_OWN)
        ereport(ERROR,
                (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                 errmsg("ownership of a model cannot be granted"),
                 errhint("Give every model of a role to another with reassign_models(old_role, new_role).")));
    role = GranteeOid(rolename);

    ItSetSchema(fcinfo);
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");
    (void) ItBeginWrite(model, true, IT_PRIV_OWN, fn, &st);
    ItStoreChangeGrant(model, p == IT_PRIV_TRAIN, role, grant);
    ItSyncRolePins(&role, 1);
    ItEndWrite(&st);
    SPI_finish();
}

/* grant_model(model text, role text, privilege text DEFAULT 'use') RETURNS void */
PG_FUNCTION_INFO_V1(interest_transfer_grant_model);
Datum
interest_transfer_grant_model(PG_FUNCTION_ARGS)
{
    ChangeGrant(fcinfo, true);
    PG_RETURN_VOID();
}

/* revoke_model(model text, role text, privilege text DEFAULT 'use') RETURNS void */
PG_FUNCTION_INFO_V1(interest_transfer_revoke_model);
Datum
interest_transfer_revoke_model(PG_FUNCTION_ARGS)
{
    ChangeGrant(fcinfo, false);
    PG_RETURN_VOID();
}

/*
 * reassign_models(old_role regrole, new_role regrole) RETURNS bigint
 *
 * Every model owned by old_role is given to new_role, as REASSIGN OWNED
 * does for PostgreSQL's objects, and on the models the caller may then own
 * every grant to old_role becomes a grant to new_role.  The caller must
 * have the privileges of both roles; old_role may be the OID of a role that
 * no longer exists (then only a superuser has its privileges).
 */
PG_FUNCTION_INFO_V1(interest_transfer_reassign_models);
Datum
interest_transfer_reassign_models(PG_FUNCTION_ARGS)
{
    Oid         old_role;
    Oid         new_role;
    Oid         caller;
    Oid         roles[2];
    ItRunAs     r;
    int64       changed;
    List       *models = NIL;
    ListCell   *lc;

    if (PG_ARGISNULL(0))
        ItNullArgument("old_role", "Name the role whose models to give away, for example reassign_models('alice', 'bob').");
    if (PG_ARGISNULL(1))
        ItNullArgument("new_role", "Name the role to give the models to, for example reassign_models('alice', 'bob').");
    old_role = PG_GETARG_OID(0);
    new_role = PG_GETARG_OID(1);
    caller = GetUserId();
    if (!OidIsValid(new_role) || GetUserNameFromId(new_role, true) == NULL)
        ereport(ERROR,
                (errcode(ERRCODE_UNDEFINED_OBJECT),
                 errmsg("role with OID %u does not exist", new_role),
                 errhint("Give the models to an existing role.")));
    if (!has_privs_of_role(GetUserId(), old_role) || !has_privs_of_role(GetUserId(), new_role))
        ereport(ERROR,
                (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
                 errmsg("permission denied to reassign models"),
                 errdetail("Only roles with privileges of both the old and the new role may reassign them."),
                 errhint("Run it as a member of both roles, or as a superuser.")));

    ItSetSchema(fcinfo);
    ItRefuseReadOnly("reassign", "*");
    if (SPI_connect() != SPI_OK_CONNECT)
        elog(ERROR, "SPI_connect failed");

    /*
     * The models concerned, each locked as a writer would.  Ownership moves
     * when old_role owns the model; grants move only on models the caller
     * may own afterwards (grants are the owner's to give), so a member of
     * a group cannot pass the group's grants on, nor take them.
     */
    ItRunAsTablesOwner(&r);
    models = ItStoreModelsOfRole(old_role);
    changed = 0;
    foreach(lc, models)
    {
        const char *model = (const char *) lfirst(lc);
        ItModelAcl  acl;
        Oid         owner_after;
        bool        move_grants;

        ItLockModel(model);
        if (!ItReadModelAcl(model, true, &acl))
            continue;           /* dropped meanwhile */
        owner_after = acl.owner == old_role ? new_role : acl.owner;
        move_grants = has_privs_of_role(caller, owner_after);
        if (acl.owner != old_role && !move_grants)
            continue;
        changed += ItStoreReassign(model, old_role, new_role, move_grants);
    }
    roles[0] = old_role;
    roles[1] = new_role;
    ItSyncRolePins(roles, 2);
    ItRunAsEnd(&r);
    SPI_finish();
    PG_RETURN_INT64(changed);
}

/*
 * admin_int.h - how a feature adds verbs to the control plane.
 *
 * Each feature file (vault_role.c, vault_user.c, vault_grant.c,
 * vault_trash_verbs.c, vault_snap.c, ...) defines a NULL-terminated table of
 * struct vault_admin_verb and lists it once in vault_admin.c.  The
 * dispatcher (vv_admin_call) finds the verb, checks its scope, runs it and
 * writes the audit record; a verb never audits itself and never holds
 * v->mu across its return.
 *
 * Scopes are the one authorization rule of the control plane (DESIGN.md
 * "The control plane"):
 *   ADMIN_OWNER   root or the vault's owner (the uid owning the root
 *                 directory);
 *   ADMIN_COLL    also a member of a role that holds admin on the
 *                 collection of every "path" argument (each path must
 *                 resolve; a request without a path is ADMIN_OWNER).
 *                 The dispatcher's check is early; the verb resolves each
 *                 path with vault_admin_coll_resolve, which checks again,
 *                 under the same hold of v->mu as its change;
 *   ADMIN_ANYONE  any peer: the verb filters what it shows or does by the
 *                 same access check as file operations (trash list).
 */
#ifndef VV_ADMIN_INT_H
#define VV_ADMIN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "vecvault/admin.h"

enum vault_admin_scope {
	ADMIN_OWNER,
	ADMIN_COLL,
	ADMIN_ANYONE,
};

struct vault_admin_verb {
	const char *verb;                /* "role.create" */
	enum vault_admin_scope scope;
	/* Argument named in the audit record, or NULL.  Never one that carries
	 * a secret (a password, a key token): the audit log keeps it forever.
	 * "key:ARG" names an API key: only its public id is recorded, taken
	 * from an id or a full token; anything else as "(not a key id)".  The
	 * dispatcher also withholds anything token-shaped ("vvk_<id>_...") in
	 * other targets and an unknown verb's name, keeping only the key id. */
	const char *target;
	/* Run the request; fill rep's body; return 0 or a VV_E* code with
	 * rep->msg set (vault_admin_fail).  Called without v->mu held. */
	int (*run)(struct vv_vault *v, const struct vv_admin_req *rq,
		   struct vv_admin_reply *rep);
};

/* Copy text to out (cap bytes, truncated) with the secret of every API key
 * token in it withheld: "vvk_<id>_<secret>" becomes "vvk_<id>_(secret
 * withheld)".  For anything that reaches a log from a request. */
void vault_admin_redact(const char *text, char *out, size_t cap);

/* The first value of key, or NULL. */
const char *vault_admin_arg(const struct vv_admin_req *rq, const char *key);
/* Every value of key, in order: up to max into out; returns how many exist. */
size_t vault_admin_args(const struct vv_admin_req *rq, const char *key,
			const char **out, size_t max);
/* Is key present with a value other than "" / "0"? */
bool vault_admin_flag(const struct vv_admin_req *rq, const char *key);
/* Did the request ask for JSON ("json" flag)? */
static inline bool vault_admin_json(const struct vv_admin_req *rq)
{
	return vault_admin_flag(rq, "json");
}

/* Append to the reply's body.  VV_ENOMEM if it cannot grow. */
int vault_admin_printf(struct vv_admin_reply *rep, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Append s as a JSON string literal (quotes and escapes included). */
int vault_admin_json_str(struct vv_admin_reply *rep, const char *s);
/* Set the status and the message; returns code (for "return fail(...)"). */
int vault_admin_fail(struct vv_admin_reply *rep, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Root or the vault's owner. */
bool vault_admin_is_owner(struct vv_vault *v, const struct vv_ident *peer);

/*
 * Resolve a vault path ("/a/b") to an inode by the stored entries, without
 * permission checks (the verb's scope decided who may ask).  Rejects
 * relative paths, "." and ".." components, empty names past the first '/'
 * and over-long paths with VV_EINVAL; VV_ENOENT if a component is missing,
 * VV_ENOTDIR if a non-directory is walked through.  Under v->mu.
 */
int vault_admin_resolve(struct vv_vault *v, const char *path, uint64_t *ino);
/* The same as peer would reach it (ADMIN_ANYONE verbs): VV_EACCES unless
 * peer may search every directory walked through, checked before each name
 * is looked up, so a refusal tells nothing of what lies below.  peer NULL:
 * no checks (vault_admin_resolve).  Under v->mu. */
int vault_admin_resolve_as(struct vv_vault *v, const struct vv_ident *peer, const char *path,
			   uint64_t *ino);
/* The same from directory start (a snapshot's root, for restore). */
int vault_admin_resolve_at(struct vv_vault *v, uint64_t start, const char *path, uint64_t *ino);
/* An ADMIN_COLL verb's resolution of path: vault_admin_resolve, and for a
 * peer that is not the owner the scope's check on the inode it found
 * (VV_EACCES unless the peer administers its collection; a missing path
 * outside the peer's collections is VV_EACCES too).  The verb applies its
 * change to *ino under the same hold of v->mu, so a rename after the
 * dispatcher's check cannot point the change at another collection.
 * 0, or a code with rep->msg set ("VERB: PATH: ...").  Under v->mu. */
int vault_admin_coll_resolve(struct vv_vault *v, const struct vv_admin_req *rq, const char *path,
			     uint64_t *ino, struct vv_admin_reply *rep);

/*
 * May peer administer the collection that holds ino (a role it is in
 * holds admin there, and its entry is still on the collection directory)?
 * Answered by vault_grant.c; never for the root and top-level files.
 * Under v->mu.
 */
bool vault_admin_coll_admin(struct vv_vault *v, const struct vv_ident *peer, uint64_t ino);

/* The gid of a registered role: 0, or VV_ENOENT if name is not a role.
 * Under v->mu (vault_role.c). */
int vault_role_gid(struct vv_vault *v, const char *name, uint32_t *gid);

/* The "revoke" verb's work {role, path...}, for callers that authorized
 * the request already (role.delete --revoke-all).  Without v->mu. */
int vault_grant_revoke(struct vv_vault *v, const struct vv_admin_req *rq,
		       struct vv_admin_reply *rep);

/* The verb tables, NULL-terminated (listed in vault_admin.c). */
extern const struct vault_admin_verb vault_admin_core_verbs[];
extern const struct vault_admin_verb vault_trash_verbs[];
extern const struct vault_admin_verb vault_role_verbs[];
extern const struct vault_admin_verb vault_snap_verbs[];      /* vault_snap.c */
extern const struct vault_admin_verb vault_user_verbs[];
extern const struct vault_admin_verb vault_grant_verbs[];
extern const struct vault_admin_verb vault_remote_verbs[];
extern const struct vault_admin_verb vault_backup_verbs[];    /* vault_backup.c */

#endif

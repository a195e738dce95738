/*
 * vault_user.c - vault users and API keys (DESIGN.md "Identities, roles
 * and privileges"; users.h, user_int.h): the admin verbs that manage them
 * and the authentication the remote server calls.
 *
 * Verbs, all ADMIN_OWNER (a collection admin administers files, never
 * identities):
 *   user.add {name, uid?, role..., password?}   user.list   user.show {name}
 *   user.delete {name}   user.passwd {name, password}
 *   user.role {name, add..., remove...}         user.uids {first?, last?}
 *   key.create {user, label?, expires?, allow...}   key.list {user?}
 *   key.revoke {id}
 * The dispatcher audits each with its target: the user name or key id,
 * never a password or a token.  Passwords are hashed here (Argon2id,
 * without v->mu held: a hash takes ~0.1 s and every file request would
 * wait) and the buffers holding them or a token's secret are wiped.
 *
 * A user's roles are kept by name and resolved to gids at each login, so
 * a role deleted later simply stops counting (user.show marks it).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin_int.h"
#include "crypto_int.h"
#include "user_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"
#include "vecvault/users.h"

#define NOGROUP 65534u

static int64_t (*clock_fn)(void);

void vault_user_clock(int64_t (*now)(void))
{
	clock_fn = now;
}

static int64_t now(void)
{
	return clock_fn ? clock_fn() : vault_now();
}

/* "2026-12-06T08:00:00Z", or "never" for 0. */
static const char *when(int64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	if (ns == 0 || !gmtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, cap, "%s", ns ? "?" : "never");
	return buf;
}

/* A time as JSON: a string, or null for "never". */
static int json_when(struct vv_admin_reply *rep, int64_t ns)
{
	char b[32];

	return ns ? vault_admin_printf(rep, "\"%s\"", when(ns, b, sizeof(b)))
		  : vault_admin_printf(rep, "null");
}

/* Does a local account (NSS: /etc/passwd, LDAP, SSSD) have this uid?
 * *gid: its primary group.  An NSS failure counts as "yes" (never hand
 * out a uid we could not check).  Never under v->mu: NSS may be slow. */
static bool local_uid(uint32_t uid, uint32_t *gid)
{
	long sz = sysconf(_SC_GETPW_R_SIZE_MAX);
	size_t cap = sz > 0 ? (size_t)sz : 16384;
	struct passwd pw, *res = NULL;
	char *buf = NULL;
	bool found = true;
	int e;

	for (;;) {
		char *nb = realloc(buf, cap);

		if (!nb)
			goto out;
		buf = nb;
		e = getpwuid_r((uid_t)uid, &pw, buf, cap, &res);
		if (e != ERANGE || cap >= (1u << 24))
			break;
		cap *= 2;
	}
	if (e == 0 && res) {
		if (gid)
			*gid = (uint32_t)res->pw_gid;
	} else if (e == 0 || e == ENOENT || e == ESRCH) {
		found = false;
	}
out:
	free(buf);
	return found;
}

static void uid_range(struct vv_vault *v, uint64_t *first, uint64_t *last)
{
	if (vv_meta_kv_get_u64(v->meta, "users.uid_first", first) < 0 ||
	    vv_meta_kv_get_u64(v->meta, "users.uid_last", last) < 0 || *first == 0 ||
	    *first > *last || *last >= 0xFFFFFFFFull) {
		*first = VV_USER_UID_FIRST;
		*last = VV_USER_UID_LAST;
	}
}

/* The lowest uid of the range that no vault user and no local account has.
 * Takes v->mu for each step itself; the caller re-checks under the lock it
 * inserts with (another request may take the same uid meanwhile). */
static int alloc_uid(struct vv_vault *v, uint32_t from, uint32_t *uid, struct vv_admin_reply *rep)
{
	uint64_t first, last, cand;
	bool taken = true;
	int r = 0;

	pthread_mutex_lock(&v->mu);
	uid_range(v, &first, &last);
	pthread_mutex_unlock(&v->mu);
	for (cand = from > first ? from : first; cand <= last; cand++) {
		pthread_mutex_lock(&v->mu);
		r = vv_meta_user_uid_taken(v->meta, (uint32_t)cand, &taken);
		pthread_mutex_unlock(&v->mu);
		if (r < 0)
			return r;
		if (!taken && !local_uid((uint32_t)cand, NULL)) {
			*uid = (uint32_t)cand;
			return 0;
		}
	}
	return vault_admin_fail(rep, VV_ENOSPC, "no free uid left in the vault users' range "
				"%llu-%llu (widen it with user.uids, or give --uid)",
				(unsigned long long)first, (unsigned long long)last);
}

/* Does peer hold the keys anyway (root, or the uid the daemon runs as)?
 * Only they may make a vault user act as someone else. */
static bool keyholder(const struct vv_ident *peer)
{
	return peer->uid == 0 || peer->uid == (uint32_t)getuid();
}

/* May peer give a vault user roles with gid?  A vault owner who is not a
 * keyholder gives only groups she is in herself (chgrp's rule): a remote
 * session must not reach what the owner's own groups cannot. */
static bool may_give_gid(const struct vv_ident *peer, uint32_t gid)
{
	return keyholder(peer) || vv_access_in_group(peer, gid);
}

/* May peer make a vault user act as uid?  Not a keyholder: only her own
 * uid or one no local account has (the vault users' range). */
static int may_give_uid(const struct vv_ident *peer, uint32_t uid, struct vv_admin_reply *rep)
{
	if (keyholder(peer) || uid == peer->uid || !local_uid(uid, NULL))
		return 0;
	return vault_admin_fail(rep, VV_EPERM, "uid %u is another local account's: only root "
				"may map a vault user onto it (a vault owner may give her own uid "
				"or one of the vault users' range)", uid);
}

/* Are all roles registered, and may peer give them?  Under v->mu.  0 or
 * a code with rep->msg set. */
static int roles_known(struct vv_vault *v, const struct vv_ident *peer, const char *const *roles,
		       size_t n, struct vv_admin_reply *rep)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t gid;
		int r = vault_role_gid(v, roles[i], &gid);

		if (r == VV_ENOENT)
			return vault_admin_fail(rep, r, "no role named '%.64s' (register the group "
						"first: vecvault role create)", roles[i]);
		if (r < 0)
			return vault_admin_fail(rep, r, "cannot look up role '%.64s': %s", roles[i],
						vv_strerror(r));
		if (!may_give_gid(peer, gid))
			return vault_admin_fail(rep, VV_EPERM, "role '%.64s' (gid %u): you are not "
						"in that group; only root may give it", roles[i], gid);
	}
	return 0;
}

/* The request's password, checked (not hashed).  *pass NULL if absent. */
static int password_arg(const struct vv_admin_req *rq, const char **pass, size_t *len,
			struct vv_admin_reply *rep)
{
	*pass = vault_admin_arg(rq, "password");
	*len = *pass ? strlen(*pass) : 0;
	if (*pass && *len < VV_PASSWORD_MIN)
		return vault_admin_fail(rep, VV_EINVAL, "the password is too short (at least %d "
					"characters)", VV_PASSWORD_MIN);
	if (*pass && *len > VV_PWHASH_PASS_MAX)
		return vault_admin_fail(rep, VV_EINVAL, "the password is longer than %d bytes",
					VV_PWHASH_PASS_MAX);
	return 0;
}

static int bad_name(struct vv_admin_reply *rep, const char *name)
{
	/* The name is not echoed: it may be anything, even a misplaced secret. */
	(void)name;
	return vault_admin_fail(rep, VV_EINVAL, "a user name is 1-%d characters of a-z, 0-9, "
				"'_' and '-', starting with a letter or '_'", VV_USER_NAME_MAX);
}

/* Get user name under v->mu, with the message when it is missing. */
static int user_get(struct vv_vault *v, const char *name, struct vv_user_row *u,
		    struct vv_admin_reply *rep)
{
	int r = vv_meta_user_get(v->meta, name, u);

	if (r == VV_ENOENT)
		return vault_admin_fail(rep, r, "no vault user named '%s'", name);
	return r;
}

/* Commit a change made by a verb (under v->mu): replies come after the
 * change is durable. */
static int txn_fail(int r, struct vv_admin_reply *rep)
{
	if (r == VV_EROFS)
		return vault_admin_fail(rep, r, "the vault is mounted read-only");
	return r;
}

static int fill(struct vv_vault *v, const struct vv_user_row *u, struct vv_auth *out);

/* May peer hand out credentials of user name (an API key, a password)?
 * Whoever holds them acts as its uid with its roles, so a non-keyholder
 * may do it only for users she could have made (may_give_uid/_gid).
 * Not under v->mu. */
static int may_speak_for(struct vv_vault *v, const struct vv_ident *peer, const char *name,
			 struct vv_admin_reply *rep)
{
	struct vv_user_row u;
	struct vv_auth *a;
	int r;

	if (keyholder(peer))
		return 0;
	if (!(a = calloc(1, sizeof(*a))))
		return VV_ENOMEM;
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) == 0)
		r = fill(v, &u, a);
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = may_give_uid(peer, a->uid, rep);
	for (uint32_t i = 0; r == 0 && i < a->ngroups; i++)
		if (!may_give_gid(peer, a->groups[i]))
			r = vault_admin_fail(rep, VV_EPERM, "user '%s' holds a role of gid %u, a group "
					     "you are not in: only root may give its credentials",
					     name, a->groups[i]);
	free(a);
	return r;
}

/* ---- user.add ------------------------------------------------------------- */

static int run_add(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name"), *uidarg = vault_admin_arg(rq, "uid");
	const char *roles[VV_AUTH_MAX_GROUPS], *pass;
	char hash[VV_PWHASH_STR_BYTES] = "";
	struct vv_user_row u;
	size_t nroles, passlen;
	uint32_t uid = 0;
	bool taken;
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	if (uidarg && vault_user_parse_uid(uidarg, &uid) < 0)
		return vault_admin_fail(rep, VV_EINVAL, "uid '%.16s' is not a number from 1 to "
					"4294967294 (a vault user never acts as root)", uidarg);
	nroles = vault_admin_args(rq, "role", roles, VV_AUTH_MAX_GROUPS);
	if (nroles > VV_AUTH_MAX_GROUPS)
		return vault_admin_fail(rep, VV_EINVAL, "more than %d roles", VV_AUTH_MAX_GROUPS);
	if ((r = password_arg(rq, &pass, &passlen, rep)) < 0)
		return r;
	if (uidarg && (r = may_give_uid(&rq->peer, uid, rep)) < 0)
		return r;
	if (uidarg && !keyholder(&rq->peer) && uid != rq->peer.uid) {
		/* nor onto another vault user's uid (that user's files) */
		pthread_mutex_lock(&v->mu);
		r = vv_meta_user_uid_taken(v->meta, uid, &taken);
		pthread_mutex_unlock(&v->mu);
		if (r < 0)
			return r;
		if (taken)
			return vault_admin_fail(rep, VV_EPERM, "uid %u is another vault user's (or was, "
						"and its files keep it): only root may give it to a "
						"second user", uid);
	}
	/* Cheap checks first, so a mistake costs no password hash. */
	pthread_mutex_lock(&v->mu);
	if ((r = vv_meta_user_get(v->meta, name, &u)) == 0)
		r = vault_admin_fail(rep, VV_EEXIST, "a vault user named '%s' exists already", name);
	else if (r == VV_ENOENT)
		r = roles_known(v, &rq->peer, roles, nroles, rep);
	pthread_mutex_unlock(&v->mu);
	if (r < 0)
		return r;
	if (pass && (r = vv_pwhash_str(hash, pass, passlen)) < 0)
		return r;
	for (int tries = 0; tries < 16; tries++) {
		if (!uidarg && (r = alloc_uid(v, uid, &uid, rep)) < 0)
			goto out;
		memset(&u, 0, sizeof(u));
		snprintf(u.name, sizeof(u.name), "%s", name);
		u.uid = uid;
		u.created = now();
		pthread_mutex_lock(&v->mu);
		taken = false;
		if (!uidarg)
			r = vv_meta_user_uid_taken(v->meta, uid, &taken);
		if (r == 0 && !taken && (r = roles_known(v, &rq->peer, roles, nroles, rep)) == 0) {
			if ((r = vault_txn(v)) < 0)
				r = txn_fail(r, rep);
			else if ((r = vv_meta_user_add(v->meta, &u, pass ? hash : NULL, roles,
						       nroles)) == VV_EEXIST)
				vault_admin_fail(rep, r, "a vault user named '%s' exists already", name);
			else if (r == 0)
				r = vault_commit(v);
		}
		pthread_mutex_unlock(&v->mu);
		if (r < 0 || !taken)
			break;
		uid++;   /* taken meanwhile: the next one */
	}
	if (r == 0 && taken)
		r = vault_admin_fail(rep, VV_EBUSY, "could not allocate a uid: retry");
	if (r == 0)
		r = vault_admin_printf(rep, vault_admin_json(rq) ?
				       "{\"user\":\"%s\",\"uid\":%u}\n" : "user %s added (uid %u)\n",
				       name, u.uid);
out:
	vv_memzero(hash, sizeof(hash));
	return r;
}

/* ---- user.list / user.show ---------------------------------------------- */

struct show {
	struct vv_vault *v;
	struct vv_admin_reply *rep;
	bool json;
	size_t n;                      /* items printed in the current list */
	size_t live, all;              /* keys counted */
	bool marks;                    /* mark roles that are no longer registered */
};

static int role_cb(void *ctx, const char *role)
{
	struct show *s = ctx;
	uint32_t gid;
	bool known = vault_role_gid(s->v, role, &gid) == 0;
	int r;

	if (s->json) {
		if ((r = vault_admin_printf(s->rep, "%s", s->n ? "," : "")) == 0)
			r = vault_admin_json_str(s->rep, role);
	} else {
		r = vault_admin_printf(s->rep, "%s%s%s", s->n ? "," : "", role,
				       s->marks && !known ? "(deleted)" : "");
	}
	s->n++;
	return r;
}

static int print_roles(struct show *s, int64_t id)
{
	int r;

	s->n = 0;
	if (s->json && (r = vault_admin_printf(s->rep, "[")) < 0)
		return r;
	if ((r = vv_meta_user_roles(s->v->meta, id, role_cb, s)) < 0)
		return r;
	if (s->json)
		return vault_admin_printf(s->rep, "]");
	return s->n ? 0 : vault_admin_printf(s->rep, "-");
}

static bool key_live(const struct vv_key_row *k, int64_t t)
{
	return !k->revoked && (!k->expires || k->expires > t);
}

/* The keys changed (under v->mu): the admission table is read again. */
static void keys_changed(struct vv_vault *v)
{
	atomic_fetch_add(&v->admit.gen, 1);
}

static int count_cb(void *ctx, const struct vv_key_row *k)
{
	struct show *s = ctx;

	s->all++;
	s->live += key_live(k, now());
	return 0;
}

static int user_cb(void *ctx, const struct vv_user_row *u)
{
	struct show *s = ctx;
	size_t item = s->n;
	char b[32];
	int r;

	s->live = s->all = 0;
	if ((r = vv_meta_key_iter(s->v->meta, u->id, count_cb, s)) < 0)
		return r;
	if (s->json) {
		r = vault_admin_printf(s->rep, "%s{\"name\":", item ? "," : "");
		if (r == 0)
			r = vault_admin_json_str(s->rep, u->name);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"uid\":%u,\"password\":%s,\"roles\":", u->uid,
					       u->has_password ? "true" : "false");
		if (r == 0)
			r = print_roles(s, u->id);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"keys\":%zu,\"created\":", s->live);
		if (r == 0)
			r = json_when(s->rep, u->created);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"changed\":");
		if (r == 0)
			r = json_when(s->rep, u->changed);
		if (r == 0)
			r = vault_admin_printf(s->rep, "}");
	} else {
		r = vault_admin_printf(s->rep, "%-20s %10u  %-8s %4zu  %-20s  ", u->name, u->uid,
				       u->has_password ? "yes" : "no", s->live,
				       when(u->created, b, sizeof(b)));
		if (r == 0)
			r = print_roles(s, u->id);
		if (r == 0)
			r = vault_admin_printf(s->rep, "\n");
	}
	s->n = item + 1;
	return r;
}

static int run_list(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	struct show s = { .v = v, .rep = rep, .json = vault_admin_json(rq), .marks = true };
	int r;

	r = s.json ? vault_admin_printf(rep, "[")
		   : vault_admin_printf(rep, "%-20s %10s  %-8s %4s  %-20s  %s\n", "USER", "UID",
					"PASSWORD", "KEYS", "CREATED", "ROLES");
	pthread_mutex_lock(&v->mu);
	if (r == 0)
		r = vv_meta_user_iter(v->meta, user_cb, &s);
	pthread_mutex_unlock(&v->mu);
	if (r == 0 && s.json)
		r = vault_admin_printf(rep, "]\n");
	return r;
}

/* One key, as a table row or a JSON object (never its hash). */
static int key_cb(void *ctx, const struct vv_key_row *k)
{
	struct show *s = ctx;
	int64_t t = now();
	const char *state = k->revoked ? "revoked" : k->expires && k->expires <= t ? "expired"
										   : "active";
	char b1[32], b2[32], b3[32];
	int r;

	if (s->json) {
		r = vault_admin_printf(s->rep, "%s{\"id\":\"%s\",\"user\":", s->n ? "," : "", k->id);
		if (r == 0)
			r = vault_admin_json_str(s->rep, k->uname);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"label\":");
		if (r == 0)
			r = vault_admin_json_str(s->rep, k->label);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"state\":\"%s\",\"created\":", state);
		if (r == 0)
			r = json_when(s->rep, k->created);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"expires\":");
		if (r == 0)
			r = json_when(s->rep, k->expires);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"last_used\":");
		if (r == 0)
			r = json_when(s->rep, k->last_used);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"revoked\":");
		if (r == 0)
			r = json_when(s->rep, k->revoked);
		if (r == 0)
			r = vault_admin_printf(s->rep, ",\"allow\":");
		if (r == 0)
			r = vault_admin_json_str(s->rep, k->allow);
		if (r == 0)
			r = vault_admin_printf(s->rep, "}");
	} else {
		r = vault_admin_printf(s->rep, "%-16s  %-16s %-7s  %-20s  %-20s  %-20s  %s  %s\n",
				       k->id, k->uname, state, when(k->created, b1, sizeof(b1)),
				       when(k->expires, b2, sizeof(b2)),
				       when(k->last_used, b3, sizeof(b3)),
				       k->allow[0] ? k->allow : "any", k->label[0] ? k->label : "-");
	}
	s->n++;
	return r;
}

static const char key_head[] = "%-16s  %-16s %-7s  %-20s  %-20s  %-20s  %s  %s\n";

static int print_keys(struct show *s, int64_t user)
{
	int r;

	s->n = 0;
	r = s->json ? vault_admin_printf(s->rep, "[")
		    : vault_admin_printf(s->rep, key_head, "KEY", "USER", "STATE", "CREATED",
					 "EXPIRES", "LAST USED", "ALLOW", "LABEL");
	if (r == 0)
		r = vv_meta_key_iter(s->v->meta, user, key_cb, s);
	if (r == 0 && s->json)
		r = vault_admin_printf(s->rep, "]");
	return r;
}

static int run_show(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	struct show s = { .v = v, .rep = rep, .json = vault_admin_json(rq), .marks = true };
	struct vv_user_row u;
	char b1[32], b2[32];
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) < 0)
		goto out;
	if (s.json) {
		r = vault_admin_printf(rep, "{\"name\":\"%s\",\"uid\":%u,\"password\":%s,\"roles\":",
				       u.name, u.uid, u.has_password ? "true" : "false");
		if (r == 0)
			r = print_roles(&s, u.id);
		if (r == 0)
			r = vault_admin_printf(rep, ",\"created\":");
		if (r == 0)
			r = json_when(rep, u.created);
		if (r == 0)
			r = vault_admin_printf(rep, ",\"changed\":");
		if (r == 0)
			r = json_when(rep, u.changed);
		if (r == 0)
			r = vault_admin_printf(rep, ",\"keys\":");
		if (r == 0)
			r = print_keys(&s, u.id);
		if (r == 0)
			r = vault_admin_printf(rep, "}\n");
	} else {
		r = vault_admin_printf(rep, "user      %s\nuid       %u\npassword  %s\ncreated   %s\n"
				       "changed   %s\nroles     ", u.name, u.uid,
				       u.has_password ? "set" : "none (API keys only)",
				       when(u.created, b1, sizeof(b1)), when(u.changed, b2, sizeof(b2)));
		if (r == 0)
			r = print_roles(&s, u.id);
		if (r == 0)
			r = vault_admin_printf(rep, "\n\n");
		if (r == 0)
			r = print_keys(&s, u.id);
	}
out:
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* ---- user.delete / user.passwd / user.role / user.uids -------------------- */

static int run_delete(struct vv_vault *v, const struct vv_admin_req *rq,
		      struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	struct show s = { .v = v, .rep = rep };
	struct vv_user_row u;
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) < 0 ||
	    (r = vv_meta_key_iter(v->meta, u.id, count_cb, &s)) < 0)
		goto out;
	if ((r = vault_txn(v)) < 0) {
		r = txn_fail(r, rep);
		goto out;
	}
	if ((r = vv_meta_user_del(v->meta, u.id, now())) == 0)
		r = vault_commit(v);
	keys_changed(v);
out:
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = vault_admin_printf(rep, vault_admin_json(rq) ?
				       "{\"deleted\":\"%s\",\"keys_revoked\":%zu}\n" :
				       "user %s deleted; %zu API key(s) revoked\n", name, s.live);
	return r;
}

static int run_passwd(struct vv_vault *v, const struct vv_admin_req *rq,
		      struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name"), *pass;
	char hash[VV_PWHASH_STR_BYTES] = "";
	struct vv_user_row u;
	size_t passlen;
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	if ((r = password_arg(rq, &pass, &passlen, rep)) < 0)
		return r;
	if (!pass)
		return vault_admin_fail(rep, VV_EINVAL, "no password given");
	if ((r = may_speak_for(v, &rq->peer, name, rep)) < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	r = user_get(v, name, &u, rep);
	pthread_mutex_unlock(&v->mu);
	if (r < 0 || (r = vv_pwhash_str(hash, pass, passlen)) < 0)
		goto out;
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) == 0) {
		if ((r = vault_txn(v)) < 0)
			r = txn_fail(r, rep);
		else if ((r = vv_meta_user_set_pw(v->meta, u.id, hash, now())) == 0)
			r = vault_commit(v);
	}
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = vault_admin_printf(rep, vault_admin_json(rq) ? "{\"user\":\"%s\"}\n" :
				       "password of %s changed\n", name);
out:
	vv_memzero(hash, sizeof(hash));
	return r;
}

/* Is role in list? */
static bool held(const char *const *list, size_t n, const char *role)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], role) == 0)
			return true;
	return false;
}

struct roles_of {
	char names[VV_AUTH_MAX_GROUPS][72];
	const char *p[VV_AUTH_MAX_GROUPS];
	size_t n;
};

static int collect_cb(void *ctx, const char *role)
{
	struct roles_of *o = ctx;

	if (o->n == VV_AUTH_MAX_GROUPS)
		return 0;
	snprintf(o->names[o->n], sizeof(o->names[0]), "%s", role);
	o->p[o->n] = o->names[o->n];
	o->n++;
	return 0;
}

static int run_role(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	const char *add[VV_AUTH_MAX_GROUPS], *del[VV_AUTH_MAX_GROUPS];
	size_t nadd = vault_admin_args(rq, "add", add, VV_AUTH_MAX_GROUPS);
	size_t ndel = vault_admin_args(rq, "remove", del, VV_AUTH_MAX_GROUPS);
	struct roles_of *have = NULL;
	struct vv_user_row u;
	size_t total;
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	if (nadd + ndel == 0)
		return vault_admin_fail(rep, VV_EINVAL, "say which role to add or remove");
	if (nadd > VV_AUTH_MAX_GROUPS || ndel > VV_AUTH_MAX_GROUPS)
		return vault_admin_fail(rep, VV_EINVAL, "more than %d roles", VV_AUTH_MAX_GROUPS);
	if (!(have = calloc(1, sizeof(*have))))
		return VV_ENOMEM;
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) < 0 ||
	    (r = vv_meta_user_roles(v->meta, u.id, collect_cb, have)) < 0 ||
	    (r = roles_known(v, &rq->peer, add, nadd, rep)) < 0)
		goto out;
	/* Check everything first, so a request changes all it names or nothing. */
	total = have->n;
	for (size_t i = 0; i < nadd; i++) {
		if (held(have->p, have->n, add[i]) || held(add, i, add[i])) {
			r = vault_admin_fail(rep, VV_EEXIST, "user '%s' holds role '%.64s' already",
					     name, add[i]);
			goto out;
		}
		total++;
	}
	for (size_t i = 0; i < ndel; i++) {
		if (!held(have->p, have->n, del[i]) || held(del, i, del[i])) {
			r = vault_admin_fail(rep, VV_ENOENT, "user '%s' does not hold role '%.64s'",
					     name, del[i]);
			goto out;
		}
		total--;
	}
	if (total > VV_AUTH_MAX_GROUPS) {
		r = vault_admin_fail(rep, VV_EINVAL, "a user holds at most %d roles",
				     VV_AUTH_MAX_GROUPS);
		goto out;
	}
	if ((r = vault_txn(v)) < 0) {
		r = txn_fail(r, rep);
		goto out;
	}
	for (size_t i = 0; i < nadd && r == 0; i++)
		r = vv_meta_user_role(v->meta, u.id, add[i], true, now());
	for (size_t i = 0; i < ndel && r == 0; i++)
		r = vv_meta_user_role(v->meta, u.id, del[i], false, now());
	if (r == 0)
		r = vault_commit(v);
	if (r == 0) {
		struct show s = { .v = v, .rep = rep, .json = vault_admin_json(rq) };

		r = vault_admin_printf(rep, s.json ? "{\"user\":\"%s\",\"roles\":" : "user %s roles: ",
				       name);
		if (r == 0)
			r = print_roles(&s, u.id);
		if (r == 0)
			r = vault_admin_printf(rep, s.json ? "}\n" : "\n");
	}
out:
	pthread_mutex_unlock(&v->mu);
	free(have);
	return r;
}

static int run_uids(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *fa = vault_admin_arg(rq, "first"), *la = vault_admin_arg(rq, "last");
	uint32_t f = 0, l = 0;
	uint64_t first, last;
	int r = 0;

	if (!fa != !la)
		return vault_admin_fail(rep, VV_EINVAL, "give both the first and the last uid");
	if (fa && (vault_user_parse_uid(fa, &f) < 0 || vault_user_parse_uid(la, &l) < 0 || f > l ||
		   f < 1000))
		return vault_admin_fail(rep, VV_EINVAL, "a uid range is FIRST-LAST with "
					"1000 <= FIRST <= LAST <= 4294967294");
	pthread_mutex_lock(&v->mu);
	if (fa) {
		if ((r = vault_txn(v)) < 0)
			r = txn_fail(r, rep);
		else if ((r = vv_meta_kv_set_u64(v->meta, "users.uid_first", f)) == 0 &&
			 (r = vv_meta_kv_set_u64(v->meta, "users.uid_last", l)) == 0)
			r = vault_commit(v);
	}
	uid_range(v, &first, &last);
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = vault_admin_printf(rep, vault_admin_json(rq) ? "{\"first\":%llu,\"last\":%llu}\n"
				       : "vault users get uids %llu-%llu\n",
				       (unsigned long long)first, (unsigned long long)last);
	return r;
}

/* ---- key.create / key.list / key.revoke ------------------------------------ */

static int run_key_create(struct vv_vault *v, const struct vv_admin_req *rq,
			  struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "user"), *label = vault_admin_arg(rq, "label");
	const char *exp = vault_admin_arg(rq, "expires"), *cidrs[VV_KEY_MAX_CIDRS];
	size_t ncidr = vault_admin_args(rq, "allow", cidrs, VV_KEY_MAX_CIDRS), used = 0;
	struct vv_key_row *k = NULL;
	struct vv_user_row u;
	uint8_t *secret = NULL, rid[VV_KEY_ID_CHARS / 2];
	char *token = NULL;
	int64_t ttl = 0;
	int r;

	if (!vv_user_name_ok(name))
		return bad_name(rep, name);
	if (label && !vault_user_label_ok(label))
		return vault_admin_fail(rep, VV_EINVAL, "a key label is 1-%d printable characters",
					VV_KEY_LABEL_MAX);
	if (exp && vault_user_parse_duration(exp, &ttl) < 0)
		return vault_admin_fail(rep, VV_EINVAL, "expiry '%.32s' is not a duration like 90d, "
					"12h, 30m, 45s or 2w (at most ten years)", exp);
	if (ncidr > VV_KEY_MAX_CIDRS)
		return vault_admin_fail(rep, VV_EINVAL, "more than %d CIDRs", VV_KEY_MAX_CIDRS);
	if ((r = may_speak_for(v, &rq->peer, name, rep)) < 0)
		return r;
	if (!(k = calloc(1, sizeof(*k))))
		return VV_ENOMEM;
	for (size_t i = 0; i < ncidr; i++) {
		struct vault_cidr c;
		char one[64];

		if (vault_cidr_parse(cidrs[i], &c) < 0) {
			r = vault_admin_fail(rep, VV_EINVAL, "'%.64s' is not an IPv4 or IPv6 network "
					     "(like 10.1.0.0/16, 2001:db8::/32 or 192.0.2.7; host "
					     "bits must be zero)", cidrs[i]);
			goto out;
		}
		vault_cidr_format(&c, one, sizeof(one));
		used += (size_t)snprintf(k->allow + used, sizeof(k->allow) - used, "%s%s",
					 used ? "," : "", one);
	}
	secret = vv_secure_alloc(32);
	token = vv_secure_alloc(VV_KEY_TOKEN_CHARS + 1);
	if (!secret || !token) {
		r = VV_ENOMEM;
		goto out;
	}
	snprintf(k->label, sizeof(k->label), "%s", label ? label : "");
	pthread_mutex_lock(&v->mu);
	if ((r = user_get(v, name, &u, rep)) < 0)
		goto unlock;
	if ((r = vault_txn(v)) < 0) {
		r = txn_fail(r, rep);
		goto unlock;
	}
	k->user = u.id;
	snprintf(k->uname, sizeof(k->uname), "%s", u.name);
	k->created = now();
	k->expires = ttl ? k->created + ttl : 0;
	/* 64 random bits of id: a clash is retried, never shared. */
	for (int tries = 0; tries < 8; tries++) {
		vv_random_bytes(rid, sizeof(rid));
		vv_hex_encode(k->id, rid, sizeof(rid));
		vv_random_bytes(secret, 32);
		vv_sha256(k->hash, secret, 32);
		if ((r = vv_meta_key_add(v->meta, k)) != VV_EEXIST)
			break;
	}
	if (r == 0)
		r = vault_commit(v);
	keys_changed(v);
unlock:
	pthread_mutex_unlock(&v->mu);
	if (r == 0) {
		memcpy(token, "vvk_", 4);
		memcpy(token + 4, k->id, VV_KEY_ID_CHARS);
		token[4 + VV_KEY_ID_CHARS] = '_';
		vv_b64url_encode(token + 5 + VV_KEY_ID_CHARS, secret, 32);
		r = vault_admin_json(rq) ?
		    vault_admin_printf(rep, "{\"id\":\"%s\",\"token\":\"%s\"}\n", k->id, token) :
		    vault_admin_printf(rep, "%s\n", token);
		snprintf(rep->msg, sizeof(rep->msg), "API key %s for %s: shown once, store it now",
			 k->id, name);
	}
out:
	vv_secure_free(secret);
	vv_secure_free(token);
	if (k)
		vv_memzero(k, sizeof(*k));
	free(k);
	return r;
}

static int run_key_list(struct vv_vault *v, const struct vv_admin_req *rq,
			struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "user");
	struct show s = { .v = v, .rep = rep, .json = vault_admin_json(rq) };
	struct vv_user_row u = { .id = -1 };
	int r = 0;

	if (name && !vv_user_name_ok(name))
		return bad_name(rep, name);
	pthread_mutex_lock(&v->mu);
	if ((!name || (r = user_get(v, name, &u, rep)) == 0) && (r = print_keys(&s, u.id)) == 0 &&
	    s.json)
		r = vault_admin_printf(rep, "\n");
	pthread_mutex_unlock(&v->mu);
	return r;
}

static int run_key_revoke(struct vv_vault *v, const struct vv_admin_req *rq,
			  struct vv_admin_reply *rep)
{
	char id[VV_KEY_ID_CHARS + 1];
	struct vv_key_row *k;
	char b[32];
	int r;

	/* A pasted full token (a leaked key) revokes its key too; only the id
	 * is ever echoed or audited. */
	if (vault_key_id_of(vault_admin_arg(rq, "id"), id) < 0)
		return vault_admin_fail(rep, VV_EINVAL, "a key id is the %d hex digits after "
					"'vvk_' (see key list)", VV_KEY_ID_CHARS);
	if (!(k = calloc(1, sizeof(*k))))
		return VV_ENOMEM;
	pthread_mutex_lock(&v->mu);
	if ((r = vv_meta_key_get(v->meta, id, k)) == VV_ENOENT) {
		vault_admin_fail(rep, r, "no API key with id %s", id);
	} else if (r == 0 && k->revoked) {
		r = vault_admin_printf(rep, "key %s was revoked already (%s)\n", id,
				       when(k->revoked, b, sizeof(b)));
	} else if (r == 0) {
		if ((r = vault_txn(v)) < 0)
			r = txn_fail(r, rep);
		else if ((r = vv_meta_key_revoke(v->meta, id, now())) == 0)
			r = vault_commit(v);
		keys_changed(v);
		if (r == 0)
			r = vault_admin_printf(rep, vault_admin_json(rq) ? "{\"revoked\":\"%s\"}\n" :
					       "key %s of %s revoked\n", id, k->uname);
	}
	pthread_mutex_unlock(&v->mu);
	free(k);
	return r;
}

const struct vault_admin_verb vault_user_verbs[] = {
	{ "user.add", ADMIN_OWNER, "name", run_add },
	{ "user.list", ADMIN_OWNER, NULL, run_list },
	{ "user.show", ADMIN_OWNER, "name", run_show },
	{ "user.delete", ADMIN_OWNER, "name", run_delete },
	{ "user.passwd", ADMIN_OWNER, "name", run_passwd },
	{ "user.role", ADMIN_OWNER, "name", run_role },
	{ "user.uids", ADMIN_OWNER, "first", run_uids },
	{ "key.create", ADMIN_OWNER, "user", run_key_create },
	{ "key.list", ADMIN_OWNER, "user", run_key_list },
	{ "key.revoke", ADMIN_OWNER, "key:id", run_key_revoke },
	{ NULL, 0, NULL, NULL },
};

/* ---- authentication (users.h) ---------------------------------------------- */

struct gids {
	struct vv_vault *v;
	struct vv_auth *a;
};

static int gid_cb(void *ctx, const char *role)
{
	struct gids *g = ctx;
	uint32_t gid;

	/* A role deleted since it was given no longer counts. */
	if (g->a->ngroups < VV_AUTH_MAX_GROUPS && vault_role_gid(g->v, role, &gid) == 0)
		g->a->groups[g->a->ngroups++] = gid;
	return 0;
}

/* Fill out for user u: uid and its roles' gids.  Under v->mu. */
static int fill(struct vv_vault *v, const struct vv_user_row *u, struct vv_auth *out)
{
	struct gids g = { v, out };

	snprintf(out->user, sizeof(out->user), "%s", u->name);
	out->user_id = u->id;
	out->uid = u->uid;
	out->gid = NOGROUP;
	out->ngroups = 0;
	return vv_meta_user_roles(v->meta, u->id, gid_cb, &g);
}

/* The primary group: the local account's, else nogroup.  Not under v->mu. */
static void primary_gid(struct vv_auth *out)
{
	uint32_t gid;

	if (local_uid(out->uid, &gid))
		out->gid = gid;
}

/* One "auth" record: the client's address, the user when known, and why.
 * Under v->mu. */
static void audit_auth(struct vv_vault *v, const struct sockaddr *peer, const char *user,
		       uint32_t uid, int result, const char *detail)
{
	char client[64];
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	vault_peer_text(peer, client, sizeof(client));
	c.id.uid = uid;
	c.id.gid = VV_ID_NONE;     /* the primary group is looked up after the lock */
	c.comm = "vecvault-auth";
	c.client = client;
	c.user = user;
	vault_audit(v, &c, "auth", VV_ROOT_INO, 0, NULL, result, detail);
}

/* The end of every login check, entered under v->mu and leaving it: why
 * NULL is a yes (r becomes 0); a verdict (r 0 or VV_ENOENT with a why)
 * becomes VV_EACCES, any other r is the vault's own failure and stays.
 * Audited "WHAT: why|ok" (only refusals when quiet).  out keeps the user,
 * with the primary group, on a yes, and is zeroed otherwise. */
static int auth_end(struct vv_vault *v, const struct sockaddr *peer, const char *user,
		    const char *what, const char *why, int r, bool quiet, struct vv_auth *out)
{
	char detail[128];

	if (!why)
		r = 0;
	else if (r == 0 || r == VV_ENOENT)
		r = VV_EACCES;
	if (why || !quiet) {
		snprintf(detail, sizeof(detail), "%s: %s", what, why ? why : "ok");
		audit_auth(v, peer, user, why ? VV_ID_NONE : out->uid, r, detail);
	}
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		primary_gid(out);
	else
		memset(out, 0, sizeof(*out));
	return r;
}

/* An API key login from peer; own_cidrs: the listener admitted peer only
 * through some key's CIDRs, so this key must list CIDRs (one holding peer,
 * as every key that lists some). */
static int auth_key(struct vv_vault *v, const char *token, const struct sockaddr *peer,
		    bool own_cidrs, struct vv_auth *out)
{
	static const uint8_t nohash[VV_SHA256_BYTES];
	char id[VV_KEY_ID_CHARS + 1], what[24];
	uint8_t *secret = vv_secure_alloc(32), h[VV_SHA256_BYTES];
	struct vv_key_row *k = calloc(1, sizeof(*k));
	struct vv_user_row u;
	const char *why = NULL;
	bool found, match;
	int r;

	memset(out, 0, sizeof(*out));
	if (!secret || !k) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = vault_audit_gate(v)) < 0)
		goto out;
	if (vault_key_token_parse(token, id, secret) < 0) {
		pthread_mutex_lock(&v->mu);
		audit_auth(v, peer, NULL, VV_ID_NONE, VV_EACCES, "key: malformed token");
		pthread_mutex_unlock(&v->mu);
		r = VV_EACCES;
		goto out;
	}
	vv_sha256(h, secret, 32);
	pthread_mutex_lock(&v->mu);
	r = vv_meta_key_get(v->meta, id, k);
	found = r == 0;
	/* The same constant-time compare whether or not the id exists. */
	match = vv_memeq_ct(h, found ? k->hash : nohash, sizeof(h)) && found;
	if (r < 0 && r != VV_ENOENT) {
		why = "cannot read the key";
	} else if (!found) {
		why = "unknown key";
	} else if (!match) {
		why = "wrong secret";
	} else if (k->revoked) {
		why = "revoked";
	} else if (k->expires && k->expires <= now()) {
		why = "expired";
	} else if (!vault_cidr_list_match(k->allow, peer)) {
		why = "address not allowed for this key";
	} else if (own_cidrs && !k->allow[0]) {
		why = "address admitted for a key only: this key lists no CIDRs";
	} else if ((r = vv_meta_user_get(v->meta, k->uname, &u)) < 0 || u.id != k->user) {
		why = r < 0 && r != VV_ENOENT ? "cannot read the user" : "user deleted";
	} else if ((r = fill(v, &u, out)) < 0) {
		why = "cannot read the user's roles";
	}
	if (!why) {
		snprintf(out->key_id, sizeof(out->key_id), "%s", id);
		/* Last use rides with the next batched commit; a read-only
		 * mount just does not record it. */
		if (vault_txn(v) == 0)
			(void)vv_meta_key_used(v->meta, id, now());
	}
	snprintf(what, sizeof(what), "key %s", id);
	r = auth_end(v, peer, found ? k->uname : NULL, what, why, r, false, out);
out:
	if (r < 0)
		memset(out, 0, sizeof(*out));
	vv_secure_free(secret);
	vv_memzero(h, sizeof(h));
	if (k)
		vv_memzero(k, sizeof(*k));
	free(k);
	return r;
}

int vv_vault_auth_key(struct vv_vault *v, const char *token, const struct sockaddr *peer,
		      struct vv_auth *out)
{
	return auth_key(v, token, peer, false, out);
}

int vv_vault_auth_key_cidr(struct vv_vault *v, const char *token, const struct sockaddr *peer,
			   struct vv_auth *out)
{
	return auth_key(v, token, peer, true, out);
}

int vv_vault_auth_not_key(struct vv_vault *v, const char *what, const char *user,
			  const struct sockaddr *peer)
{
	char detail[128];
	int r;

	if ((r = vault_audit_gate(v)) < 0)
		return r;
	snprintf(detail, sizeof(detail), "%s: address admitted for a key only", what);
	pthread_mutex_lock(&v->mu);
	audit_auth(v, peer, user, VV_ID_NONE, VV_EACCES, detail);
	pthread_mutex_unlock(&v->mu);
	return VV_EACCES;
}

/* ---- the Argon2id gate -------------------------------------------------------
 *
 * Each password check is one Argon2id evaluation at the interactive limits:
 * 64 MiB and ~0.1 s of a core.  Unbounded, N clients sending AUTH at once
 * (each connection has its own thread) cost N x 64 MiB.  One process-wide
 * gate lets GATE_MAX checks run at once; others wait up to GATE_WAIT_MS,
 * at most GATE_QUEUE of them (more are refused at once), then are refused with
 * VV_EBUSY (audited).  Process-wide, not per vault: memory is the
 * process's. */
#define GATE_MAX 2
#define GATE_QUEUE 64
#define GATE_WAIT_MS 10000

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned max, queue, wait_ms;
	unsigned running, waiting, peak;
} gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, GATE_MAX, GATE_QUEUE,
	   GATE_WAIT_MS, 0, 0, 0 };

void vault_auth_gate_set(unsigned max, unsigned queue, unsigned wait_ms)
{
	pthread_mutex_lock(&gate.mu);
	gate.max = max;
	gate.queue = queue;
	gate.wait_ms = wait_ms;
	gate.peak = 0;
	pthread_cond_broadcast(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

unsigned vault_auth_gate_peak(void)
{
	unsigned p;

	pthread_mutex_lock(&gate.mu);
	p = gate.peak;
	pthread_mutex_unlock(&gate.mu);
	return p;
}

/* Take a place among the running checks: 0, or VV_EBUSY when the queue is
 * full or the wait ran out.  (CLOCK_REALTIME for the condition variable's
 * deadline: a clock step only lengthens or shortens one bounded wait.) */
static int gate_enter(void)
{
	struct timespec dl;
	int r = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += gate.wait_ms / 1000;
	dl.tv_nsec += (long)(gate.wait_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&gate.mu);
	if (gate.running >= gate.max && gate.waiting >= gate.queue) {
		pthread_mutex_unlock(&gate.mu);
		return VV_EBUSY;
	}
	gate.waiting++;
	while (gate.running >= gate.max)
		if (pthread_cond_timedwait(&gate.cv, &gate.mu, &dl) == ETIMEDOUT &&
		    gate.running >= gate.max) {
			r = VV_EBUSY;
			break;
		}
	gate.waiting--;
	if (r == 0 && ++gate.running > gate.peak)
		gate.peak = gate.running;
	pthread_mutex_unlock(&gate.mu);
	return r;
}

static void gate_leave(void)
{
	pthread_mutex_lock(&gate.mu);
	gate.running--;
	pthread_cond_signal(&gate.cv);
	pthread_mutex_unlock(&gate.mu);
}

int vv_vault_auth_password(struct vv_vault *v, const char *user, const char *pass,
			   size_t passlen, const struct sockaddr *peer, struct vv_auth *out)
{
	char hash[VV_PWHASH_STR_BYTES] = "";
	uint8_t stamp[VV_SHA256_BYTES];
	bool valid = vv_user_name_ok(user), have = false;
	struct vv_user_row u = { .id = -1 }, again;
	const char *why = NULL;
	int r, pv = VV_EBADPASS, busy;

	memset(out, 0, sizeof(*out));
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	if (valid) {
		pthread_mutex_lock(&v->mu);
		r = vv_meta_user_get(v->meta, user, &u);
		if (r == 0 && u.has_password)
			have = vv_meta_user_pwhash(v->meta, u.id, hash, sizeof(hash)) == 0;
		pthread_mutex_unlock(&v->mu);
	}
	/* One Argon2id evaluation whatever happened above: an unknown user or
	 * one without a password costs what a wrong password costs.  Through
	 * the gate: a flood of attempts waits, or is refused, in memory
	 * bounded by GATE_MAX evaluations. */
	if ((busy = gate_enter()) == 0) {
		pv = vv_pwhash_verify(have ? hash : NULL, pass ? pass : "", pass ? passlen : 0);
		gate_leave();
	}
	vv_sha256(stamp, hash, strlen(hash));
	vv_memzero(hash, sizeof(hash));
	pthread_mutex_lock(&v->mu);
	if (busy) {
		why = "too many password checks at once: refused, try again";
		r = busy;
	} else if (!valid)
		why = "invalid user name";
	else if (r < 0 && r != VV_ENOENT)
		why = "cannot read the user";
	else if (r == VV_ENOENT)
		why = "unknown user";
	else if (!have)
		why = "no password set";
	else if (pv < 0)
		why = "wrong password";
	else if ((r = vv_meta_user_get(v->meta, user, &again)) < 0 || again.id != u.id)
		why = "user deleted meanwhile";
	else if ((r = fill(v, &u, out)) < 0)
		why = "cannot read the user's roles";
	if (!why)
		memcpy(out->pw_stamp, stamp, sizeof(stamp));
	vv_memzero(stamp, sizeof(stamp));
	return auth_end(v, peer, valid && u.id >= 0 ? u.name : NULL, "password", why, r, false, out);
}

int vv_vault_auth_password_recheck(struct vv_vault *v, const struct vv_auth *was,
				   const struct sockaddr *peer, struct vv_auth *out)
{
	char hash[VV_PWHASH_STR_BYTES] = "";
	uint8_t stamp[VV_SHA256_BYTES];
	struct vv_user_row u = { .id = -1 };
	const char *why = NULL;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	if ((r = vv_meta_user_get(v->meta, was->user, &u)) == VV_ENOENT || (r == 0 && u.id != was->user_id))
		why = "the user was deleted";
	else if (r < 0)
		why = "cannot read the user";
	else if (!u.has_password)
		why = "the user's password was removed";
	else if ((r = vv_meta_user_pwhash(v->meta, u.id, hash, sizeof(hash))) < 0)
		why = "cannot read the user's password";
	else if (vv_sha256(stamp, hash, strlen(hash)),
		 !vv_memeq_ct(stamp, was->pw_stamp, sizeof(stamp)))
		why = "the user's password was changed";
	else if ((r = fill(v, &u, out)) < 0)
		why = "cannot read the user's roles";
	vv_memzero(hash, sizeof(hash));
	vv_memzero(stamp, sizeof(stamp));
	if (!why)
		memcpy(out->pw_stamp, was->pw_stamp, sizeof(out->pw_stamp));
	return auth_end(v, peer, was->user, "password session", why, r, true, out);
}

/* ---- admission before TLS (vv_vault_keys_admit) -----------------------------
 *
 * The listener asks about every connection from outside its --allow CIDRs
 * before reading a byte of it, a flood from addresses outside everything
 * included: one meta.db query (and v->mu) per refused connection would
 * let anyone who can reach the port keep the vault's lock busy.  So the
 * CIDRs of the keys not revoked are held in memory (v->admit, at most
 * admit_max), read again from meta.db only after the keys changed
 * (key.create, key.revoke, user.delete bump v->admit.gen) and checked
 * against their key's expiry at each question.  A table that cannot be
 * read answers no (the --allow CIDRs still admit) and is tried again a
 * second later; keys with more CIDRs than the table holds are asked from
 * meta.db each time, as before it existed.
 */
#define ADMIT_MAX 4096

static size_t admit_max = ADMIT_MAX;
static atomic_uint admit_reads;

void vault_admit_max_set(size_t max)
{
	admit_max = max ? max : ADMIT_MAX;
	atomic_store(&admit_reads, 0);
}

unsigned vault_admit_reads(void)
{
	return atomic_load(&admit_reads);
}

struct admit_read {
	struct vault_admit_cidr *c;
	size_t n, cap;
	bool over;
	int64_t now;
	const struct sockaddr *peer;     /* admit_cb: the question */
};

/* Every CIDR of a key not revoked (expired ones may be dropped). */
static int admit_read_cb(void *ctx, const struct vv_key_row *k)
{
	struct admit_read *t = ctx;
	const char *p = k->allow;

	if (!key_live(k, t->now))
		return 0;
	while (*p && !t->over) {
		size_t n = strcspn(p, ",");
		char one[64];

		if (n < sizeof(one)) {
			if (t->n == t->cap) {
				t->over = true;
				break;
			}
			memcpy(one, p, n);
			one[n] = '\0';
			t->c[t->n].expires = k->expires;
			if (vault_cidr_parse(one, &t->c[t->n].c) == 0)
				t->n++;
		}
		p += n + (p[n] == ',');
	}
	return 0;
}

/* The table as of now, read from meta.db when the keys changed since.
 * Under v->admit.mu; takes v->mu.  0, or the read's failure. */
static int admit_table(struct vv_vault *v, int64_t now_ms)
{
	struct admit_read t = { .now = now() };
	unsigned gen;
	int r;

	if (v->admit.have && v->admit.seen == atomic_load(&v->admit.gen))
		return 0;
	if (!v->admit.have && now_ms < v->admit.retry_ms)
		return VV_EAGAIN;
	t.cap = admit_max;
	if (!(t.c = malloc(t.cap * sizeof(*t.c))))
		return VV_ENOMEM;
	pthread_mutex_lock(&v->mu);
	gen = atomic_load(&v->admit.gen);        /* changes are made under mu */
	r = vv_meta_key_iter(v->meta, -1, admit_read_cb, &t);
	pthread_mutex_unlock(&v->mu);
	atomic_fetch_add(&admit_reads, 1);
	free(v->admit.c);
	v->admit.c = NULL;
	v->admit.n = 0;
	v->admit.have = r == 0;
	if (r < 0) {
		free(t.c);
		v->admit.retry_ms = now_ms + 1000;
		vv_log(VV_LOG_WARN, "remote: cannot read the API keys' CIDRs (%s): only the "
		       "--allow CIDRs admit until it works", vv_strerror(r));
		return r;
	}
	v->admit.c = t.c;
	v->admit.n = t.n;
	v->admit.over = t.over;
	v->admit.seen = gen;
	return 0;
}

static int admit_cb(void *ctx, const struct vv_key_row *k)
{
	struct admit_read *a = ctx;

	/* Non-zero stops the walk: this key admits the peer. */
	return key_live(k, a->now) && k->allow[0] && vault_cidr_list_match(k->allow, a->peer);
}

bool vv_vault_keys_admit(struct vv_vault *v, const struct sockaddr *peer)
{
	struct timespec ts;
	struct admit_read a = { .peer = peer };
	bool yes = false, over;
	int r;

	if (!peer)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	a.now = now();
	pthread_mutex_lock(&v->admit.mu);
	if ((r = admit_table(v, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000)) == 0)
		for (size_t i = 0; i < v->admit.n && !yes; i++)
			yes = (!v->admit.c[i].expires || v->admit.c[i].expires > a.now) &&
			      vault_cidr_match(&v->admit.c[i].c, peer);
	over = r == 0 && v->admit.over;
	pthread_mutex_unlock(&v->admit.mu);
	if (yes || !over)
		return yes;
	pthread_mutex_lock(&v->mu);
	r = vv_meta_key_iter(v->meta, -1, admit_cb, &a);
	pthread_mutex_unlock(&v->mu);
	return r == 1;
}

void vv_auth_ident(const struct vv_auth *a, uint32_t pid, struct vv_ident *id)
{
	memset(id, 0, sizeof(*id));
	id->uid = a->uid;
	id->gid = a->gid;
	id->pid = pid;
	id->ngroups = a->ngroups;
	id->groups = a->ngroups ? a->groups : NULL;
}

int vv_vault_auth_cert(struct vv_vault *v, const char *user, const char *fp,
		       const struct sockaddr *peer, bool quiet, struct vv_auth *out)
{
	struct vv_user_row u = { .id = -1 };
	bool valid = user && vv_user_name_ok(user);
	const char *why = NULL;
	char what[40];
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = vault_audit_gate(v)) < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	if (!valid)
		why = "the certificate's CN is not a valid vault user name";
	else if ((r = vv_meta_user_get(v->meta, user, &u)) == VV_ENOENT)
		why = "the certificate's CN names no vault user";
	else if (r < 0)
		why = "cannot read the user";
	else if ((r = fill(v, &u, out)) < 0)
		why = "cannot read the user's roles";
	snprintf(what, sizeof(what), "certificate sha256:%.16s", fp ? fp : "?");
	return auth_end(v, peer, valid && u.id >= 0 ? u.name : NULL, what, why, r, quiet, out);
}

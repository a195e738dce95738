/*
 * vault_admin.c - the control plane's dispatcher: find the verb, decide
 * whether the peer may run it, run it, audit it (admin.h, admin_int.h).
 *
 * The transports (fs/ctl.c) only move bytes and name the peer; everything
 * that decides lives here and in the feature files' verb tables.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "user_int.h"
#include "vecvault/error.h"
#include "vault_int.h"

/* Every feature's table, in the order verbs are looked up. */
static const struct vault_admin_verb *const tables[] = {
	vault_admin_core_verbs,
	vault_trash_verbs,
	vault_role_verbs,
	vault_snap_verbs,
	vault_user_verbs,
	vault_grant_verbs,
	vault_remote_verbs,
	vault_backup_verbs,
};

void vv_admin_reply_init(struct vv_admin_reply *r)
{
	memset(r, 0, sizeof(*r));
}

void vv_admin_reply_release(struct vv_admin_reply *r)
{
	if (!r)
		return;
	/* Bodies may hold secrets shown once (key.create's token). */
	if (r->body)
		vv_memzero(r->body, r->cap);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

const char *vault_admin_arg(const struct vv_admin_req *rq, const char *key)
{
	for (size_t i = 0; i < rq->nargs; i++)
		if (strcmp(rq->args[i].key, key) == 0)
			return rq->args[i].val;
	return NULL;
}

size_t vault_admin_args(const struct vv_admin_req *rq, const char *key,
			const char **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < rq->nargs; i++) {
		if (strcmp(rq->args[i].key, key) != 0)
			continue;
		if (n < max)
			out[n] = rq->args[i].val;
		n++;
	}
	return n;
}

bool vault_admin_flag(const struct vv_admin_req *rq, const char *key)
{
	const char *s = vault_admin_arg(rq, key);

	return s && *s && strcmp(s, "0") != 0;
}

static int body_grow(struct vv_admin_reply *rep, size_t more)
{
	if (more > SIZE_MAX - 1 - rep->len)
		return VV_ENOMEM;
	return vv_grow(&rep->body, &rep->cap, rep->len + more + 1, 1);
}

int vault_admin_printf(struct vv_admin_reply *rep, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return VV_EINVAL;
	if ((r = body_grow(rep, (size_t)n)) < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(rep->body + rep->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	rep->len += (size_t)n;
	return 0;
}

int vault_admin_json_str(struct vv_admin_reply *rep, const char *s)
{
	int r = vault_admin_printf(rep, "\"");

	for (const unsigned char *p = (const unsigned char *)s; r == 0 && *p; p++) {
		if (*p == '"' || *p == '\\')
			r = vault_admin_printf(rep, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			r = vault_admin_printf(rep, "\\u%04x", *p);
		else
			r = vault_admin_printf(rep, "%c", *p);
	}
	if (r == 0)
		r = vault_admin_printf(rep, "\"");
	return r;
}

int vault_admin_fail(struct vv_admin_reply *rep, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(rep->msg, sizeof(rep->msg), fmt, ap);
	va_end(ap);
	rep->status = code;
	return code;
}

/* vault_admin_is_owner, under v->mu. */
static bool owner_locked(struct vv_vault *v, const struct vv_ident *peer)
{
	struct vv_inode_row root;

	return peer->uid == 0 ||
	       (vv_meta_inode_get(v->meta, VV_ROOT_INO, &root) == 0 && root.uid == peer->uid);
}

bool vault_admin_is_owner(struct vv_vault *v, const struct vv_ident *peer)
{
	bool ok;

	if (peer->uid == 0)
		return true;
	pthread_mutex_lock(&v->mu);
	ok = owner_locked(v, peer);
	pthread_mutex_unlock(&v->mu);
	return ok;
}

/* The walk of vault_admin_resolve_as/_at: from start, with peer's search
 * checks when peer is not NULL. */
static int resolve_from(struct vv_vault *v, const struct vv_ident *peer, uint64_t start,
			const char *path, uint64_t *ino)
{
	struct vv_ctx c = { .id = peer ? *peer : (struct vv_ident){ 0 } };
	char name[256];
	uint64_t cur = start;
	const char *p = path;
	int r = 0;

	if (!path || path[0] != '/' || strlen(path) >= 4096)
		return VV_EINVAL;
	while (*p) {
		struct vv_inode_row row;
		struct node *n = NULL;
		size_t len;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		len = strcspn(p, "/");
		if (len >= sizeof(name))
			return VV_ENAMETOOLONG;
		memcpy(name, p, len);
		name[len] = '\0';
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			return VV_EINVAL;
		if ((r = vv_meta_inode_get(v->meta, cur, &row)) < 0)
			return r;
		if (!S_ISDIR(row.mode))
			return VV_ENOTDIR;
		/* As a lookup would: search permission on every directory
		 * walked through, before the name is looked at. */
		if (peer && (r = vault_node_get(v, cur, &n)) == 0) {
			r = vault_node_check(v, &c, n, VV_MAY_EXEC);
			vault_node_put(v, n);
		}
		if (r < 0 || (r = vv_meta_dirent_get(v->meta, cur, name, &cur)) < 0)
			return r;
		p += len;
	}
	*ino = cur;
	return 0;
}

int vault_admin_resolve_as(struct vv_vault *v, const struct vv_ident *peer, const char *path,
			   uint64_t *ino)
{
	return resolve_from(v, peer, VV_ROOT_INO, path, ino);
}

int vault_admin_resolve_at(struct vv_vault *v, uint64_t start, const char *path, uint64_t *ino)
{
	return resolve_from(v, NULL, start, path, ino);
}

int vault_admin_resolve(struct vv_vault *v, const char *path, uint64_t *ino)
{
	return resolve_from(v, NULL, VV_ROOT_INO, path, ino);
}

static const struct vault_admin_verb *find_verb(const char *name)
{
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct vault_admin_verb *e = tables[t]; e->verb; e++)
			if (strcmp(e->verb, name) == 0)
				return e;
	return NULL;
}

/* Does peer administer the collection named by path's first component? */
static bool coll_of_path_admin(struct vv_vault *v, const struct vv_ident *peer, const char *path)
{
	char top[258];
	uint64_t ino;
	size_t n;

	while (path && *path == '/')
		path++;
	if (!path || !*path || (n = strcspn(path, "/")) >= sizeof(top) - 1)
		return false;
	top[0] = '/';
	memcpy(top + 1, path, n);
	top[n + 1] = '\0';
	return vault_admin_resolve(v, top, &ino) == 0 && vault_admin_coll_admin(v, peer, ino);
}

/* Resolve path and check that peer administers what it names: 0 with
 * *ino, or a code with rep->msg set.  Under v->mu. */
static int coll_path(struct vv_vault *v, const char *verb, const struct vv_ident *peer,
		     const char *path, uint64_t *ino, struct vv_admin_reply *rep)
{
	int r = vault_admin_resolve(v, path, ino);

	/* Whether a path exists below a collection is told only to its
	 * administrators: others learn nothing from ENOENT vs EACCES. */
	if (r < 0 && !coll_of_path_admin(v, peer, path))
		return vault_admin_fail(rep, VV_EACCES, "%s: %s: you hold no admin role on this "
					"collection", verb, path);
	if (r < 0)
		return vault_admin_fail(rep, r, "%s: %s: %s", verb, path, vv_strerror(r));
	if (!vault_admin_coll_admin(v, peer, *ino))
		return vault_admin_fail(rep, VV_EACCES, "%s: %s: you hold no admin role on this "
					"collection", verb, path);
	return 0;
}

int vault_admin_coll_resolve(struct vv_vault *v, const struct vv_admin_req *rq, const char *path,
			     uint64_t *ino, struct vv_admin_reply *rep)
{
	int r;

	if (!owner_locked(v, &rq->peer))
		return coll_path(v, rq->verb, &rq->peer, path, ino, rep);
	if ((r = vault_admin_resolve(v, path, ino)) < 0)
		return vault_admin_fail(rep, r, "%s: %s: %s", rq->verb, path, vv_strerror(r));
	return 0;
}

/* May rq's peer run e?  0, or a code with rep->msg set.  For ADMIN_COLL
 * this is the early answer only: the lock is let go before the verb runs,
 * and a rename in between can make a path name another collection, so the
 * verb authorizes again what it resolves, under the hold of v->mu it
 * changes things under (vault_admin_coll_resolve). */
static int authorize(struct vv_vault *v, const struct vault_admin_verb *e,
		     const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *paths[64];
	size_t np;
	int r = 0;

	if (e->scope == ADMIN_ANYONE || vault_admin_is_owner(v, &rq->peer))
		return 0;
	if (e->scope == ADMIN_OWNER)
		return vault_admin_fail(rep, VV_EACCES,
					"%s: only root or the vault's owner may do this", e->verb);
	np = vault_admin_args(rq, "path", paths, 64);
	if (np == 0 || np > 64)
		return vault_admin_fail(rep, VV_EACCES,
					"%s: only root or the vault's owner may do this without a path "
					"(or with more than 64)", e->verb);
	pthread_mutex_lock(&v->mu);
	for (size_t i = 0; i < np && r == 0; i++) {
		uint64_t ino;

		r = coll_path(v, e->verb, &rq->peer, paths[i], &ino, rep);
	}
	pthread_mutex_unlock(&v->mu);
	return r;
}

static bool is_hex_lower(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f');
}

void vault_admin_redact(const char *text, char *out, size_t cap)
{
	static const char held[] = "_(secret withheld)";
	size_t o = 0;

	if (!cap)
		return;
	for (const char *p = text; *p && o + 1 < cap;) {
		if (strncmp(p, "vvk_", 4) == 0) {
			size_t n = 4;
			while (n < 4 + VV_KEY_ID_CHARS && is_hex_lower(p[n]))
				n++;
			if (p[n] && p[n] != ' ' && p[n] != ',') {
				/* more after the id: the secret, or part of it */
				while (n && o + 1 < cap) {
					out[o++] = *p++;
					n--;
				}
				for (size_t i = 0; held[i] && o + 1 < cap; i++)
					out[o++] = held[i];
				while (*p && *p != ' ' && *p != ',')
					p++;
				continue;
			}
		}
		out[o++] = *p++;
	}
	out[o] = '\0';
}

/* The audit record's target for e (struct vault_admin_verb's target). */
static void audit_target(const struct vault_admin_verb *e, const struct vv_admin_req *rq,
			 char *out, size_t cap)
{
	bool key = e && e->target && strncmp(e->target, "key:", 4) == 0;
	const char *t = e && e->target ? vault_admin_arg(rq, e->target + (key ? 4 : 0)) : NULL;
	char id[VV_KEY_ID_CHARS + 1];

	out[0] = '\0';
	if (!t)
		return;
	if (key) {
		if (vault_key_id_of(t, id) == 0)
			snprintf(out, cap, "%s", id);
		else
			snprintf(out, cap, "(not a key id)");
		return;
	}
	vault_admin_redact(t, out, cap);
}

static void audit_call(struct vv_vault *v, const struct vv_admin_req *rq,
		       const struct vault_admin_verb *e, int result)
{
	char detail[512], verb[80], target[416];
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	c.id = rq->peer;
	c.comm = "vecvault-admin";
	c.client = rq->client ? rq->client : "local";
	/* An unknown verb is the peer's text too: withhold tokens there. */
	vault_admin_redact(rq->verb ? rq->verb : "?", verb, sizeof(verb));
	audit_target(e, rq, target, sizeof(target));
	snprintf(detail, sizeof(detail), "%.64s%s%.400s", verb, target[0] ? " " : "", target);
	pthread_mutex_lock(&v->mu);
	vault_audit(v, &c, "admin", VV_ROOT_INO, 0, NULL, result, detail);
	pthread_mutex_unlock(&v->mu);
}

int vv_admin_call(struct vv_vault *v, const struct vv_admin_req *rq,
		  struct vv_admin_reply *rep)
{
	const struct vault_admin_verb *e = NULL;
	int r;

	rep->status = 0;
	rep->msg[0] = '\0';
	if (rep->body)
		rep->body[0] = '\0';
	rep->len = 0;
	if ((r = vault_audit_gate(v)) < 0) {
		vault_admin_fail(rep, r, "the audit log cannot be written: refused");
		goto out;
	}
	if (!rq->verb || !(e = find_verb(rq->verb))) {
		r = vault_admin_fail(rep, VV_EINVAL, "unknown request '%.64s'",
				     rq->verb ? rq->verb : "");
		goto out;
	}
	if ((r = authorize(v, e, rq, rep)) < 0)
		goto out;
	if (v->admin_between)
		v->admin_between(v->admin_between_ctx);
	r = e->run(v, rq, rep);
	if (r < 0 && !rep->msg[0])
		vault_admin_fail(rep, r, "%s: %s", e->verb, vv_strerror(r));
	/* what the verb revoked is out of the kernel's caches before the
	 * reply: a handle opened before a purge must not read its pages
	 * once `vecvault trash purge` returned (the notifier sends the
	 * invalidations from its own thread, after this request's locks) */
	if (v->inval_wait)
		v->inval_wait(v->inval_ctx);
out:
	rep->status = r;
	audit_call(v, rq, e, r);
	return r;
}

/* ---- core verbs ------------------------------------------------------ */

/* "vault.ping": which vault this is (id, the instance that tells copies
 * of one store apart, its store directory, as in /proc/mounts), who the
 * daemon takes the peer for (uid, gid, supplementary groups as the
 * transport reported them) and whether it owns the vault. */
static int run_ping(struct vv_vault *v, const struct vv_admin_req *rq,
		    struct vv_admin_reply *rep)
{
	const struct vv_ident *p = &rq->peer;
	bool owner = vault_admin_is_owner(v, p), json = vault_admin_json(rq);
	const char *id = vv_store_id(v->store);
	int r;

	if (!json)
		r = vault_admin_printf(rep, "vault %s\ninstance %s\nstore %s\nuid %u%s\ngid %u\ngroups",
				       id, v->instance, vv_store_dir(v->store), p->uid,
				       owner ? " (owner)" : "", p->gid);
	else {
		r = vault_admin_printf(rep, "{\"vault\":\"%s\",\"instance\":\"%s\",\"store\":",
				       id, v->instance);
		if (r == 0)
			r = vault_admin_json_str(rep, vv_store_dir(v->store));
		if (r == 0)
			r = vault_admin_printf(rep, ",\"uid\":%u,\"owner\":%s,\"gid\":%u,\"groups\":[",
					       p->uid, owner ? "true" : "false", p->gid);
	}
	for (uint32_t i = 0; r == 0 && i < p->ngroups; i++)
		r = vault_admin_printf(rep, "%s%u", json ? (i ? "," : "") : " ",
				       p->groups[i]);
	if (r == 0)
		r = vault_admin_printf(rep, json ? "]}\n" : "\n");
	return r;
}

static const char *scope_name(enum vault_admin_scope s)
{
	return s == ADMIN_OWNER ? "owner" : s == ADMIN_COLL ? "collection" : "anyone";
}

/* "vault.verbs": every verb this daemon knows and who may run it (tests
 * loop over it; the CLI's `vecvault admin MNT vault.verbs`). */
static int run_verbs(struct vv_vault *v, const struct vv_admin_req *rq,
		     struct vv_admin_reply *rep)
{
	bool json = vault_admin_json(rq), first = true;
	int r = json ? vault_admin_printf(rep, "[") : 0;

	for (size_t t = 0; r == 0 && t < sizeof(tables) / sizeof(tables[0]); t++)
		for (const struct vault_admin_verb *e = tables[t]; r == 0 && e->verb; e++) {
			if (!json) {
				r = vault_admin_printf(rep, "%s %s\n", e->verb, scope_name(e->scope));
				continue;
			}
			r = vault_admin_printf(rep, "%s{\"verb\":", first ? "" : ",");
			if (r == 0)
				r = vault_admin_json_str(rep, e->verb);
			if (r == 0)
				r = vault_admin_printf(rep, ",\"scope\":\"%s\"}", scope_name(e->scope));
			first = false;
		}
	if (r == 0 && json)
		r = vault_admin_printf(rep, "]\n");
	return r;
}

const struct vault_admin_verb vault_admin_core_verbs[] = {
	{ "vault.ping", ADMIN_ANYONE, NULL, run_ping },
	{ "vault.verbs", ADMIN_ANYONE, NULL, run_verbs },
	{ NULL, 0, NULL, NULL },
};

/*
 * vault_role.c - roles: POSIX groups registered in the vault (DESIGN.md
 * "Identities, roles and privileges").
 *
 * A role adds no permission of its own: it names a group that grants
 * (ACL entries, vault_grant.c) give rights to, and that vault users act
 * with.  Membership is the operating system's: the daemon already learns
 * every requester's supplementary groups, so `usermod -aG` takes effect
 * for the member's next process without any change here.  Registering a
 * role only records (name, gid) after checking through NSS (/etc/group,
 * LDAP, SSSD) that the group exists.
 *
 * Verbs: role.create {name, gid?}, role.list {json?}, role.delete {name,
 * revoke_all?}: --revoke-all revokes the role on every collection first.
 */
#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin_int.h"
#include "grow.h"
#include "vault_int.h"
#include "vecvault/error.h"

#define ROLE_NAME_MAX 64

/* Group names as NSS backends hand them out are broader than useradd's
 * rule (LDAP allows upper case and dots): accept those, refuse what would
 * break a listing, a path or an ACL text (separators, space, controls). */
static bool role_name_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > ROLE_NAME_MAX || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c == 0x7f || c == ':' || c == ',' || c == '/' || c == '\\' ||
		    c == '"')
			return false;
	}
	return true;
}

/* The group's gid through NSS: 0, VV_ENOENT (no such group) or VV_EIO. */
static int nss_gid(const char *name, uint32_t *gid)
{
	long sz = sysconf(_SC_GETGR_R_SIZE_MAX);
	struct group gr, *res = NULL;
	size_t cap = sz > 0 ? (size_t)sz : 16384;
	char *buf = NULL;
	int e, r = VV_EIO;

	for (;;) {
		char *nb = realloc(buf, cap);

		if (!nb) {
			r = VV_ENOMEM;
			goto out;
		}
		buf = nb;
		e = getgrnam_r(name, &gr, buf, cap, &res);
		if (e != ERANGE || cap >= (1u << 24))
			break;
		cap *= 2;
	}
	if (e == 0 && res) {
		*gid = (uint32_t)res->gr_gid;
		r = 0;
	} else if (e == 0 || e == ENOENT || e == ESRCH) {
		r = VV_ENOENT;
	}
out:
	free(buf);
	return r;
}

int vault_role_gid(struct vv_vault *v, const char *name, uint32_t *gid)
{
	return vv_meta_role_get(v->meta, name, gid);
}

/* Does an ACL blob carry a named-group entry for gid? */
static bool acl_names_gid(const uint8_t *blob, size_t len, uint32_t gid)
{
	if (len < VV_ACL_HDR)
		return false;
	for (size_t off = VV_ACL_HDR; off + VV_ACL_ENTRY <= len; off += VV_ACL_ENTRY) {
		uint16_t tag = (uint16_t)(blob[off] | blob[off + 1] << 8);
		uint32_t id = (uint32_t)blob[off + 4] | (uint32_t)blob[off + 5] << 8 |
			      (uint32_t)blob[off + 6] << 16 | (uint32_t)blob[off + 7] << 24;

		if (tag == VV_ACL_GROUP && id == gid)
			return true;
	}
	return false;
}

/* ---- where a role is granted ------------------------------------------ */

struct grant_scan {
	uint32_t gid;
	uint64_t *inos;                  /* nodes whose ACLs name gid */
	size_t n, cap;
	int err;
};

static int scan_cb(void *ctx, uint64_t ino, bool dflt, const uint8_t *blob, size_t len)
{
	struct grant_scan *g = ctx;

	(void)dflt;
	if (!acl_names_gid(blob, len, g->gid))
		return 0;
	if (g->n && g->inos[g->n - 1] == ino)
		return 0;
	if (VV_GROW(g->inos, g->n, g->cap) < 0)
		return VV_ENOMEM;
	g->inos[g->n++] = ino;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The nodes whose ACLs name gid, sorted and unique.  Under v->mu. */
static int grant_scan(struct vv_vault *v, uint32_t gid, struct grant_scan *g)
{
	size_t w = 0;
	int r;

	memset(g, 0, sizeof(*g));
	g->gid = gid;
	if ((r = vv_meta_acl_iter(v->meta, scan_cb, g)) < 0)
		return r;
	if (g->n)
		qsort(g->inos, g->n, sizeof(*g->inos), cmp_u64);
	for (size_t i = 0; i < g->n; i++)
		if (w == 0 || g->inos[w - 1] != g->inos[i])
			g->inos[w++] = g->inos[i];
	g->n = w;
	return 0;
}

static bool scan_has(const struct grant_scan *g, uint64_t ino)
{
	return bsearch(&ino, g->inos, g->n, sizeof(*g->inos), cmp_u64) != NULL;
}

/* ---- verbs --------------------------------------------------------------- */

static int run_create(struct vv_vault *v, const struct vv_admin_req *rq,
		      struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name"), *want = vault_admin_arg(rq, "gid");
	uint32_t gid = 0, other;
	int r;

	if (!role_name_ok(name))
		return vault_admin_fail(rep, VV_EINVAL, "role name '%.64s' is not a valid group name",
					name ? name : "");
	if ((r = nss_gid(name, &gid)) == VV_ENOENT)
		return vault_admin_fail(rep, VV_ENOENT, "no system group '%s' (create it with "
					"groupadd, or run role create with --create)", name);
	if (r < 0)
		return vault_admin_fail(rep, r, "cannot look up group '%s': %s", name, vv_strerror(r));
	if (want) {
		char *end;
		unsigned long g;

		errno = 0;
		g = strtoul(want, &end, 10);
		if (errno || *end || !*want || g > 0xFFFFFFFEul)
			return vault_admin_fail(rep, VV_EINVAL, "gid '%.32s' is not a number", want);
		if ((uint32_t)g != gid)
			return vault_admin_fail(rep, VV_EINVAL, "group '%s' has gid %u, not %lu", name,
						gid, g);
	}
	if (gid == 0)
		return vault_admin_fail(rep, VV_EINVAL, "the root group (gid 0) cannot be a role");
	pthread_mutex_lock(&v->mu);
	if (vv_meta_role_get(v->meta, name, &other) == 0) {
		r = vault_admin_fail(rep, VV_EEXIST, "role '%s' exists already (gid %u)", name, other);
		goto out;
	}
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_role_add(v->meta, name, gid, vault_now())) < 0) {
		if (r == VV_EEXIST)
			vault_admin_fail(rep, r, "gid %u is already the role of another name", gid);
		goto out;
	}
	r = vault_commit(v);
out:
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		r = vault_admin_printf(rep, vault_admin_json(rq) ?
				       "{\"role\":\"%s\",\"gid\":%u}\n" : "role %s (gid %u) created\n",
				       name, gid);
	return r;
}

struct list_ctx {
	struct vv_vault *v;
	const struct vv_admin_req *rq;
	struct vv_admin_reply *rep;
	size_t n;
	bool owner;                      /* the peer sees every path */
	struct vv_ctx c;                 /* else only those it could walk to */
};

/* Where gid is granted: the topmost nodes carrying it (a node whose
 * primary parent carries it too is covered by that parent).  Anyone may
 * list the roles, but a path names what is in its directories: a peer
 * other than the owner sees only the paths it could reach by a walk
 * (search on every directory above), never one inside a directory it
 * cannot search nor one in the trash; the others are left out.  The walk
 * checked is that of the path shown: a file with several names is shown
 * by one that need not be in its primary parent. */
static int list_where(struct list_ctx *l, uint32_t gid)
{
	struct vv_vault *v = l->v;
	bool json = vault_admin_json(l->rq);
	struct grant_scan g;
	size_t shown = 0;
	int r;

	if ((r = grant_scan(v, gid, &g)) < 0)
		return r;
	for (size_t i = 0; i < g.n && r == 0; i++) {
		struct vv_inode_row row;
		char path[4096];
		uint64_t dir;

		if (vv_meta_inode_get(v->meta, g.inos[i], &row) < 0)
			continue;
		if (g.inos[i] != VV_ROOT_INO && scan_has(&g, row.parent))
			continue;
		if (vault_node_path_dir(v, g.inos[i], path, sizeof(path), &dir) < 0)
			continue;
		if (!l->owner && g.inos[i] != VV_ROOT_INO && vault_node_reach(v, &l->c, dir) < 0)
			continue;
		if (json) {
			r = vault_admin_printf(l->rep, "%s", shown ? "," : "");
			if (r == 0)
				r = vault_admin_json_str(l->rep, path);
		} else {
			r = vault_admin_printf(l->rep, "%s%s", shown ? " " : "", path);
		}
		shown++;
	}
	if (r == 0 && !json && shown == 0)
		r = vault_admin_printf(l->rep, "-");
	free(g.inos);
	return r;
}

static int list_cb(void *ctx, const char *name, uint32_t gid, int64_t created)
{
	struct list_ctx *l = ctx;
	int r;

	(void)created;
	if (vault_admin_json(l->rq)) {
		r = vault_admin_printf(l->rep, "%s{\"role\":", l->n ? "," : "");
		if (r == 0)
			r = vault_admin_json_str(l->rep, name);
		if (r == 0)
			r = vault_admin_printf(l->rep, ",\"gid\":%u,\"granted\":[", gid);
		if (r == 0)
			r = list_where(l, gid);
		if (r == 0)
			r = vault_admin_printf(l->rep, "]}");
	} else {
		r = vault_admin_printf(l->rep, "%-20s %10u  ", name, gid);
		if (r == 0)
			r = list_where(l, gid);
		if (r == 0)
			r = vault_admin_printf(l->rep, "\n");
	}
	l->n++;
	return r;
}

static int run_list(struct vv_vault *v, const struct vv_admin_req *rq,
		    struct vv_admin_reply *rep)
{
	struct list_ctx l = { v, rq, rep, 0, vault_admin_is_owner(v, &rq->peer),
			      { .id = rq->peer } };
	bool json = vault_admin_json(rq);
	int r;

	r = vault_admin_printf(rep, json ? "[" : "%-20s %10s  %s\n", "ROLE", "GID", "GRANTED ON");
	pthread_mutex_lock(&v->mu);
	if (r == 0)
		r = vv_meta_role_iter(v->meta, list_cb, &l);
	pthread_mutex_unlock(&v->mu);
	if (r == 0 && json)
		r = vault_admin_printf(rep, "]\n");
	return r;
}

/* The collection directories (children of the root) holding the nodes of
 * g, as vault paths, unique, into paths (malloc'd strings); how many.
 * Nodes outside any collection (the root, files in it) are skipped: the
 * caller's rescan reports them.  Under v->mu. */
static size_t grant_colls(struct vv_vault *v, const struct grant_scan *g, char **paths, size_t max)
{
	uint64_t seen[64];
	size_t n = 0;

	for (size_t i = 0; i < g->n && n < max; i++) {
		struct vv_inode_row row;
		uint64_t ino = g->inos[i];
		bool dup = false;
		char path[4096];

		for (int depth = 0; ino != VV_ROOT_INO && depth < 4096; depth++) {
			if (vv_meta_inode_get(v->meta, ino, &row) < 0)
				break;
			if (row.parent == VV_ROOT_INO)
				break;
			ino = row.parent;
		}
		if (ino == VV_ROOT_INO || vv_meta_inode_get(v->meta, ino, &row) < 0 ||
		    !S_ISDIR(row.mode))
			continue;
		for (size_t k = 0; k < n; k++)
			dup |= seen[k] == ino;
		if (dup || vault_node_path(v, ino, path, sizeof(path)) < 0 || !(paths[n] = strdup(path)))
			continue;
		seen[n++] = ino;
	}
	return n;
}

/* --revoke-all: revoke the role on every collection that names it, as
 * `vecvault revoke ROLE /coll...` would (one transaction per batch of 64
 * collections).  Called without v->mu. */
static int revoke_everywhere(struct vv_vault *v, const struct vv_admin_req *rq, const char *name,
			     char **paths, size_t n, struct vv_admin_reply *rep)
{
	struct vv_admin_arg args[65];
	struct vv_admin_req sub = *rq;
	int r;

	args[0].key = "role";
	args[0].val = name;
	for (size_t i = 0; i < n; i++) {
		args[1 + i].key = "path";
		args[1 + i].val = paths[i];
	}
	sub.verb = "revoke";
	sub.args = args;
	sub.nargs = 1 + n;
	r = vault_grant_revoke(v, &sub, rep);
	rep->len = 0;                    /* the revoke's own summary is not ours */
	if (rep->body)
		rep->body[0] = '\0';
	return r;
}

static int run_delete(struct vv_vault *v, const struct vv_admin_req *rq,
		      struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	bool revoke_all = vault_admin_flag(rq, "revoke_all");
	struct grant_scan g = { 0 };
	uint64_t holders = 0;
	char holder[64];
	char *paths[64];
	size_t np = 0;
	uint32_t gid;
	int r;

	if (!role_name_ok(name))
		return vault_admin_fail(rep, VV_EINVAL, "role name '%.64s' is not valid",
					name ? name : "");
	pthread_mutex_lock(&v->mu);
	for (int round = 0;; round++) {
		if ((r = vv_meta_role_get(v->meta, name, &gid)) < 0) {
			if (r == VV_ENOENT)
				vault_admin_fail(rep, r, "no role '%s'", name);
			goto out;
		}
		free(g.inos);
		if ((r = grant_scan(v, gid, &g)) < 0 || g.n == 0)
			break;
		if (revoke_all && round < 64 && (np = grant_colls(v, &g, paths, 64)) > 0) {
			pthread_mutex_unlock(&v->mu);
			r = revoke_everywhere(v, rq, name, paths, np, rep);
			for (size_t i = 0; i < np; i++)
				free(paths[i]);
			pthread_mutex_lock(&v->mu);
			if (r < 0)
				goto out;
			continue;
		}
		{
			char path[4096] = "?";

			vault_node_path(v, g.inos[0], path, sizeof(path));
			r = vault_admin_fail(rep, VV_EBUSY, "role '%s' is still granted on %zu node%s "
					     "(e.g. %.200s): %s", name, g.n, g.n == 1 ? "" : "s", path,
					     revoke_all ? "outside any collection, where revoke cannot "
					     "reach: remove those ACL entries with setfacl -x" :
					     "revoke it first or use --revoke-all");
		}
		goto out;
	}
	if (r < 0)
		goto out;
	/* Vault users holding it: a role of the same name created later must
	 * not silently give it back to them. */
	if ((r = vv_meta_role_holders(v->meta, name, &holders, holder, sizeof(holder))) < 0)
		goto out;
	if (holders && !revoke_all) {
		r = vault_admin_fail(rep, VV_EBUSY, "role '%s' is held by %llu vault user%s (e.g. "
				     "%s): take it with 'vecvault user role USER --remove %s' "
				     "or use --revoke-all", name, (unsigned long long)holders,
				     holders == 1 ? "" : "s", holder, name);
		goto out;
	}
	/* One transaction: the role and every vault user's hold on it. */
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_role_del_held(v->meta, name)) < 0)
		goto out;
	r = vault_commit(v);
out:
	pthread_mutex_unlock(&v->mu);
	free(g.inos);
	if (r == 0 && vault_admin_json(rq))
		r = vault_admin_printf(rep, "{\"deleted\":\"%s\",\"users\":%llu}\n", name,
				       (unsigned long long)holders);
	else if (r == 0 && holders)
		r = vault_admin_printf(rep, "role %s deleted (taken from %llu vault user%s)\n", name,
				       (unsigned long long)holders, holders == 1 ? "" : "s");
	else if (r == 0)
		r = vault_admin_printf(rep, "role %s deleted\n", name);
	return r;
}

const struct vault_admin_verb vault_role_verbs[] = {
	{ "role.create", ADMIN_OWNER, "name", run_create },
	{ "role.list", ADMIN_ANYONE, NULL, run_list },
	{ "role.delete", ADMIN_OWNER, "name", run_delete },
	{ NULL, 0, NULL, NULL },
};

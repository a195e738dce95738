/*
 * vault_grant.c - grants: a role's rights as POSIX ACL entries, and the
 * admin privilege on a collection (DESIGN.md "Identities, roles and
 * privileges", docs/access.md "Grants").
 *
 * A grant adds nothing to the permission check: it writes group:GID:PERMS
 * into the access ACL and the default ACL of PATH and of every directory
 * below it, and into the access ACL of every other file below it (symlinks
 * have no ACLs), exactly as `setfacl -R -m g:GID:PERMS -d -m g:GID:PERMS`
 * would (vv_acl_set_group: the mask recomputed as the union of the group
 * class; a node without an ACL first gets the minimal one of its mode; a
 * new default ACL starts from the access ACL's base entries; X is x on
 * directories and on files with an execute bit).  A revoke removes the
 * group's entries and, unlike setfacl -x, also the mask and the ACL itself
 * when only base entries remain, so grant then revoke gives back exactly
 * what was there before.
 *
 * All or nothing: the whole walk runs under v->mu inside one metadata
 * transaction of its own (what was pending is committed first, and the
 * ticker cannot commit while we hold the lock), committed once at the end
 * or rolled back on any error; the node cache and the kernel's caches are
 * updated only after the commit.
 *
 * The admin privilege (grant ROLE admin COLLECTION) is a row of
 * coll_admins(coll, gid) (meta_grant.c; coll: the collection directory's
 * inode) beside an rwX grant.  A member of
 * such a role may change modes, ACLs and grants inside the collection as
 * the owner may (vault_grant_admin, used by chmod, setfacl and the
 * ADMIN_COLL scope of the control plane), as long as the role's entry is
 * still on the collection directory.
 *
 * Verbs: grant {role, perms, path...}, revoke {role, path...},
 * grants {path, json?}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "admin_int.h"
#include "grow.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define ACL_ACCESS "system.posix_acl_access"
#define ACL_DEFAULT "system.posix_acl_default"
#define GRANT_X 8                    /* setfacl's X, resolved per node */
#define MAX_PATHS 64                 /* what the dispatcher authorizes */
#define MAX_ADMINS 256               /* admin roles considered per collection */
#define LIST_BATCH 512               /* directory entries read per query */

/* ---- the admin privilege -------------------------------------------------- */

/* The collection directory holding ino (walking primary parents), or 0
 * for the root and top-level files.  Not the walk up the tree
 * (vault_up_*): it makes no node (the table's node if there is one, else
 * the row), and a chain it cannot follow, or one over 4096 levels, is no
 * collection, so no admin privilege (fail closed). */
static uint64_t coll_dir(struct vv_vault *v, uint64_t ino)
{
	struct vv_inode_row row;

	for (int depth = 0; ino != VV_ROOT_INO && depth < 4096; depth++) {
		struct node *n = vault_node_find(v, ino);

		if (n)
			row = n->a;
		else if (vv_meta_inode_get(v->meta, ino, &row) < 0)
			return 0;
		if (row.parent == VV_ROOT_INO)
			return S_ISDIR(row.mode) ? ino : 0;
		ino = row.parent;
	}
	return 0;
}

/* Does dir's access ACL still name gid?  (A role whose entry someone
 * removed with setfacl -x no longer administers anything.) */
static bool still_named(struct vv_vault *v, uint64_t dir, uint32_t gid)
{
	uint8_t *acl = NULL;
	size_t len = 0;
	bool yes;

	if (vv_meta_xattr_get(v->meta, dir, ACL_ACCESS, &acl, &len) < 0)
		return false;
	yes = vv_acl_group_perm(acl, len, gid) >= 0;
	free(acl);
	return yes;
}

static bool admin_of(struct vv_vault *v, const struct vv_ident *id, uint64_t dir)
{
	uint32_t gids[MAX_ADMINS];
	size_t n = 0;

	if (!dir || vv_meta_admin_list(v->meta, dir, gids, MAX_ADMINS, &n) < 0)
		return false;
	for (size_t i = 0; i < n && i < MAX_ADMINS; i++)
		if (vv_access_in_group(id, gids[i]) && still_named(v, dir, gids[i]))
			return true;
	return false;
}

bool vault_grant_admin(struct vv_vault *v, const struct vv_ident *id, const struct node *n)
{
	return admin_of(v, id, coll_dir(v, n->ino));
}

bool vault_admin_coll_admin(struct vv_vault *v, const struct vv_ident *peer, uint64_t ino)
{
	return admin_of(v, peer, coll_dir(v, ino));
}

/* ---- rewriting the ACLs of a tree ------------------------------------------- */

struct spec {
	uint32_t gid;
	int perm;                        /* r/w/x bits | GRANT_X; -1: revoke */
	bool admin;
};

struct touched {                     /* a changed node the node table holds */
	uint64_t ino;
	uint32_t mode;
};

struct walk {
	struct vv_vault *v;
	const struct spec *sp;
	int64_t now;
	uint64_t *dirs;                  /* directories still to list */
	size_t ndirs, dircap;
	struct touched *t;
	size_t nt, tcap;
	size_t visited, changed;
	bool dir_changed;
	uint64_t bad;                    /* the node an error stopped at */
};

static int push_dir(struct walk *w, uint64_t ino)
{
	if (VV_GROW(w->dirs, w->ndirs, w->dircap) < 0)
		return VV_ENOMEM;
	w->dirs[w->ndirs++] = ino;
	return 0;
}

static int remember(struct walk *w, uint64_t ino, uint32_t mode)
{
	if (VV_GROW(w->t, w->nt, w->tcap) < 0)
		return VV_ENOMEM;
	w->t[w->nt++] = (struct touched){ ino, mode };
	return 0;
}

/* Store blob as name (or delete it when minimal) if it differs from old. */
static int store(struct vv_vault *v, uint64_t ino, const char *name, const uint8_t *old,
		 size_t ol, const uint8_t *nb, size_t nl, bool minimal, bool *changed)
{
	int r;

	if (minimal) {
		if (!old)
			return 0;
		*changed = true;
		r = vv_meta_xattr_del(v->meta, ino, name);
		return r == VV_ENODATA ? 0 : r;
	}
	if (old && ol == nl && memcmp(old, nb, nl) == 0)
		return 0;
	*changed = true;
	return vv_meta_xattr_set(v->meta, ino, name, nb, nl);
}

/* Grant or revoke on one node (row as stored; xattrs: it has some). */
static int apply(struct walk *w, struct vv_inode_row *row, bool xattrs)
{
	struct vv_vault *v = w->v;
	struct node *n = vault_node_find(v, row->ino);
	uint32_t mode = n ? n->a.mode : row->mode, newmode = mode, perms;
	uint32_t gid = w->sp->gid;
	bool dir = S_ISDIR(mode), minimal, changed = false;
	uint8_t *acc = NULL, *dfl = NULL, *base = NULL, *nb = NULL;
	size_t al = 0, dl = 0, bl = 0, nl = 0;
	int perm = w->sp->perm, r = 0;

	if (S_ISLNK(mode))
		return 0;
	w->visited++;
	if (xattrs) {
		r = vv_meta_xattr_get(v->meta, row->ino, ACL_ACCESS, &acc, &al);
		if ((r == 0 || r == VV_ENODATA) && dir)
			r = vv_meta_xattr_get(v->meta, row->ino, ACL_DEFAULT, &dfl, &dl);
		if (r < 0 && r != VV_ENODATA)
			goto out;
		r = 0;
	}
	if (perm >= 0 && (perm & GRANT_X))
		perm = (perm & 6) | ((dir || (mode & 0111)) ? 1 : 0);

	/* The access ACL: setfacl -m seeds a missing one from the mode. */
	if (perm >= 0 || vv_acl_group_perm(acc, al, gid) >= 0) {
		if (!acc && (r = vv_acl_minimal(NULL, 0, mode, &base, &bl)) < 0)
			goto out;
		if ((r = vv_acl_set_group(acc ? acc : base, acc ? al : bl, gid, perm, &nb, &nl,
					  &perms, &minimal)) < 0 ||
		    (r = store(v, row->ino, ACL_ACCESS, acc, al, nb, nl, minimal, &changed)) < 0)
			goto out;
		newmode = (mode & ~0777u) | perms;
		free(base);
		free(nb);
		base = nb = NULL;
	}
	/* The default ACL, directories only: a missing one starts from the
	 * access ACL's base entries (setfacl -d -m); X is x here. */
	if (dir && (perm >= 0 || vv_acl_group_perm(dfl, dl, gid) >= 0)) {
		int dperm = perm < 0 ? -1 : (perm & 6) | ((w->sp->perm & (GRANT_X | 1)) ? 1 : 0);

		if (!dfl && (r = vv_acl_minimal(acc, al, mode, &base, &bl)) < 0)
			goto out;
		if ((r = vv_acl_set_group(dfl ? dfl : base, dfl ? dl : bl, gid, dperm, &nb, &nl,
					  &perms, &minimal)) < 0 ||
		    (r = store(v, row->ino, ACL_DEFAULT, dfl, dl, nb, nl, minimal, &changed)) < 0)
			goto out;
	}
	if (newmode != mode)
		changed = true;
	if (!changed)
		goto out;
	w->changed++;
	w->dir_changed |= dir;
	row->mode = newmode;
	row->ctime = w->now;
	if ((r = vv_meta_inode_put(v->meta, row)) < 0)
		goto out;
	if (n)
		r = remember(w, row->ino, newmode);
out:
	if (r < 0 && !w->bad)
		w->bad = row->ino;
	free(acc);
	free(dfl);
	free(base);
	free(nb);
	return r;
}

struct batch {
	struct vv_inode_row rows[LIST_BATCH];
	bool xattrs[LIST_BATCH];
	uint64_t last;
	int n;
};

static int batch_cb(void *ctx, uint64_t cookie, const char *name, const struct vv_inode_row *r,
		    bool xattrs)
{
	struct batch *b = ctx;

	(void)name;
	b->rows[b->n] = *r;
	b->xattrs[b->n] = xattrs;
	b->last = cookie;
	b->n++;
	return 0;
}

/* Every node below directory dir, breadth first.  Entries are read a batch
 * at a time and changed after the batch's query is done. */
static int walk_below(struct walk *w, uint64_t dir)
{
	struct batch *b = malloc(sizeof(*b));
	int r;

	if (!b)
		return VV_ENOMEM;
	if ((r = push_dir(w, dir)) < 0)
		goto out;
	while (w->ndirs) {
		uint64_t d = w->dirs[--w->ndirs];

		b->last = 0;
		do {
			b->n = 0;
			if ((r = vv_meta_dirent_list_plus(w->v->meta, d, b->last, LIST_BATCH,
							  batch_cb, b)) < 0)
				goto out;
			for (int i = 0; i < b->n; i++) {
				if ((r = apply(w, &b->rows[i], b->xattrs[i])) < 0)
					goto out;
				if (S_ISDIR(b->rows[i].mode) && (r = push_dir(w, b->rows[i].ino)) < 0)
					goto out;
			}
		} while (b->n == LIST_BATCH);
	}
out:
	free(b);
	return r;
}

/* One target: the node itself, then everything below it. */
static int walk_path(struct walk *w, uint64_t ino)
{
	struct vv_inode_row row;
	bool any = false;
	int r;

	if ((r = vv_meta_inode_get(w->v->meta, ino, &row)) < 0 ||
	    (r = vv_meta_xattr_any(w->v->meta, ino, &any)) < 0 ||
	    (r = apply(w, &row, any)) < 0)
		return r;
	return S_ISDIR(row.mode) ? walk_below(w, ino) : 0;
}

/* After the commit: the node cache and the kernel's caches. */
static void refresh(struct walk *w)
{
	struct vv_vault *v = w->v;

	for (size_t i = 0; i < w->nt; i++) {
		struct node *n = vault_node_find(v, w->t[i].ino);

		if (!n)
			continue;
		n->a.mode = w->t[i].mode;
		n->a.ctime = w->now;
		n->acl_loaded = false;
		n->xattrs = 0;
	}
	if (w->dir_changed)
		v->nodes.perm_gen++;
	/* Cached attributes (mode, the '+' of ls -l) and entries: a grant
	 * can also make a directory no longer searchable by all (r without
	 * x), and a revoke takes rights away. */
	if (w->changed)
		vault_node_invalidate_all(v);
}

/* ---- arguments ----------------------------------------------------------------- */

/* readonly | readwrite | admin | letters of "rwxX-". */
static int parse_perms(const char *s, struct spec *sp)
{
	sp->admin = false;
	if (!s || !*s)
		return VV_EINVAL;
	if (strcmp(s, "readonly") == 0)
		s = "rX";
	else if (strcmp(s, "readwrite") == 0)
		s = "rwX";
	else if (strcmp(s, "admin") == 0) {
		s = "rwX";
		sp->admin = true;
	}
	if (strlen(s) > 4)
		return VV_EINVAL;
	sp->perm = 0;
	for (; *s; s++) {
		switch (*s) {
		case 'r': sp->perm |= 4; break;
		case 'w': sp->perm |= 2; break;
		case 'x': sp->perm |= 1; break;
		case 'X': sp->perm |= GRANT_X; break;
		case '-': break;
		default: return VV_EINVAL;
		}
	}
	return 0;
}

static void perm_text(int perm, char out[4])
{
	out[0] = perm & 4 ? 'r' : '-';
	out[1] = perm & 2 ? 'w' : '-';
	out[2] = perm & GRANT_X ? 'X' : perm & 1 ? 'x' : '-';
	out[3] = '\0';
}

struct target {
	const char *path;
	uint64_t ino, coll;              /* coll: its collection directory */
};

/* Resolve and check every path argument: the peer administers it (the
 * scope's check, again: what the dispatcher checked may have been renamed
 * since), in a collection, not a symlink; admin only on a collection
 * itself.  Under v->mu, held until the change is committed. */
static int targets(struct vv_vault *v, const struct vv_admin_req *rq, const struct spec *sp,
		   struct vv_admin_reply *rep, struct target *t, size_t *nt)
{
	const char *paths[MAX_PATHS];
	size_t np = vault_admin_args(rq, "path", paths, MAX_PATHS);
	int r;

	if (np == 0)
		return vault_admin_fail(rep, VV_EINVAL, "%s: which path? (a collection or a "
					"directory or file inside one)", rq->verb);
	if (np > MAX_PATHS)
		return vault_admin_fail(rep, VV_EINVAL, "%s: at most %d paths at once",
					rq->verb, MAX_PATHS);
	for (size_t i = 0; i < np; i++) {
		struct vv_inode_row row;

		t[i].path = paths[i];
		if ((r = vault_admin_coll_resolve(v, rq, paths[i], &t[i].ino, rep)) < 0)
			return r;
		if (t[i].ino == VV_ROOT_INO)
			return vault_admin_fail(rep, VV_EINVAL, "%s: %s is the vault's root: grants "
						"are made on collections (give each one's path)",
						rq->verb, paths[i]);
		if ((r = vv_meta_inode_get(v->meta, t[i].ino, &row)) < 0)
			return vault_admin_fail(rep, r, "%s: %s: %s", rq->verb, paths[i], vv_strerror(r));
		if (S_ISLNK(row.mode))
			return vault_admin_fail(rep, VV_EINVAL, "%s: %s is a symbolic link, which "
						"carries no ACL: give the path it points to",
						rq->verb, paths[i]);
		t[i].coll = coll_dir(v, t[i].ino);
		if (!t[i].coll)
			return vault_admin_fail(rep, VV_EINVAL, "%s: %s is not inside a collection "
						"(a top-level file): nothing to grant", rq->verb, paths[i]);
		if (sp->admin && t[i].coll != t[i].ino)
			return vault_admin_fail(rep, VV_EINVAL, "%s: admin is held on a whole "
						"collection: give the collection's path, not %s",
						rq->verb, paths[i]);
	}
	*nt = np;
	return 0;
}

/* ---- grant and revoke ------------------------------------------------------------ */

static int run_change(struct vv_vault *v, const struct vv_admin_req *rq,
		      struct vv_admin_reply *rep, bool revoke)
{
	const char *role = vault_admin_arg(rq, "role");
	const char *perms = vault_admin_arg(rq, "perms");
	struct target t[MAX_PATHS];
	struct spec sp = { .perm = -1 };
	struct walk w = { .v = v, .sp = &sp, .now = vault_now() };
	size_t nt = 0;
	char ptext[4] = "";
	int r;

	if (!role || !*role)
		return vault_admin_fail(rep, VV_EINVAL, "%s: which role?", rq->verb);
	if (!revoke && parse_perms(perms, &sp) < 0)
		return vault_admin_fail(rep, VV_EINVAL, "grant: '%.32s' is not readonly, readwrite, "
					"admin or permission letters (r, w, x, X)", perms ? perms : "");
	pthread_mutex_lock(&v->mu);
	if ((r = vault_role_gid(v, role, &sp.gid)) < 0) {
		if (r == VV_ENOENT)
			vault_admin_fail(rep, r, "%s: '%.64s' is not a role of this vault "
					 "(vecvault role create %.64s)", rq->verb, role, role);
		goto out;
	}
	if ((r = targets(v, rq, &sp, rep, t, &nt)) < 0)
		goto out;
	/* One transaction of our own: commit what others left pending, then
	 * hold v->mu until our commit so that no ticker commit splits it. */
	if (vv_meta_in_txn(v->meta) && (r = vault_commit(v)) < 0)
		goto out;
	if ((!revoke && (r = vault_space_ok(v)) < 0) || (r = vault_txn(v)) < 0)
		goto out;
	for (size_t i = 0; i < nt && r == 0; i++) {
		r = walk_path(&w, t[i].ino);
		/* The privilege is the collection's: set by an admin grant on
		 * the collection, taken by any other grant or a revoke there. */
		if (r == 0 && t[i].ino == t[i].coll)
			r = vv_meta_admin_set(v->meta, t[i].coll, sp.gid, sp.admin);
	}
	if (r < 0) {
		char where[512] = "";

		if (w.bad && vault_node_path(v, w.bad, where, sizeof(where)) < 0)
			snprintf(where, sizeof(where), "inode %llu", (unsigned long long)w.bad);
		vault_admin_fail(rep, r, "%s: %.300s%s%s; nothing was changed", rq->verb, where,
				 where[0] ? ": " : "", vv_strerror(r));
		vv_meta_rollback(v->meta);
		goto out;
	}
	if ((r = vault_commit(v)) < 0) {
		vault_admin_fail(rep, r, "%s: the metadata commit failed (%s); the vault refuses "
				 "further changes", rq->verb, vv_strerror(r));
		goto out;
	}
	refresh(&w);
	if (!revoke)
		perm_text(sp.perm, ptext);
	vv_log(VV_LOG_INFO, "%s %s (gid %u)%s%s on %zu path(s): %zu node(s) visited, %zu changed",
	       rq->verb, role, sp.gid, revoke ? "" : " ", revoke ? "" : sp.admin ? "admin" : ptext,
	       nt, w.visited, w.changed);
out:
	pthread_mutex_unlock(&v->mu);
	if (r == 0) {
		if (vault_admin_json(rq)) {
			r = vault_admin_printf(rep, "{\"role\":");
			if (r == 0)
				r = vault_admin_json_str(rep, role);
			if (r == 0)
				r = vault_admin_printf(rep, ",\"gid\":%u,\"perms\":\"%s\",\"admin\":%s,"
						       "\"visited\":%zu,\"changed\":%zu}\n", sp.gid,
						       revoke ? "" : sp.admin ? "admin" : ptext,
						       sp.admin ? "true" : "false", w.visited, w.changed);
		} else {
			r = vault_admin_printf(rep, "%s %s%s%s: %zu node%s changed of %zu\n",
					       revoke ? "revoked" : "granted", role, revoke ? "" : " ",
					       revoke ? "" : sp.admin ? "admin" : ptext, w.changed,
					       w.changed == 1 ? "" : "s", w.visited);
		}
	}
	free(w.dirs);
	free(w.t);
	return r;
}

static int run_grant(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	return run_change(v, rq, rep, false);
}

static int run_revoke(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	return run_change(v, rq, rep, true);
}

int vault_grant_revoke(struct vv_vault *v, const struct vv_admin_req *rq,
		       struct vv_admin_reply *rep)
{
	return run_change(v, rq, rep, true);
}

/* ---- grants: who has what on a path ---------------------------------------------- */

struct names {
	uint32_t gid;
	char name[72];
	bool found;
};

static int name_cb(void *ctx, const char *name, uint32_t gid, int64_t created)
{
	struct names *nm = ctx;

	(void)created;
	if (gid == nm->gid) {
		snprintf(nm->name, sizeof(nm->name), "%s", name);
		nm->found = true;
		return 1;
	}
	return 0;
}

static int run_grants(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *path = vault_admin_arg(rq, "path");
	bool json = vault_admin_json(rq);
	uint8_t *acc = NULL, *dfl = NULL;
	size_t al = 0, dl = 0, na = 0, ndef = 0, nadm = 0, shown = 0;
	uint32_t *agid = NULL, *dgid = NULL, adm[MAX_ADMINS], *all = NULL;
	uint8_t *aperm = NULL, *dperm = NULL;
	size_t nall = 0;
	uint64_t ino, dir;
	int r, k;

	pthread_mutex_lock(&v->mu);
	if ((r = vault_admin_resolve_as(v, &rq->peer, path, &ino)) < 0) {
		vault_admin_fail(rep, r, "grants: %s: %s", path ? path : "(no path)", vv_strerror(r));
		goto out;
	}
	agid = malloc(VV_ACL_MAX_ENTRIES * sizeof(*agid));
	dgid = malloc(VV_ACL_MAX_ENTRIES * sizeof(*dgid));
	aperm = malloc(VV_ACL_MAX_ENTRIES);
	dperm = malloc(VV_ACL_MAX_ENTRIES);
	if (!agid || !dgid || !aperm || !dperm) {
		r = VV_ENOMEM;
		goto out;
	}
	if (((r = vv_meta_xattr_get(v->meta, ino, ACL_ACCESS, &acc, &al)) < 0 && r != VV_ENODATA) ||
	    ((r = vv_meta_xattr_get(v->meta, ino, ACL_DEFAULT, &dfl, &dl)) < 0 && r != VV_ENODATA))
		goto out;
	if ((k = vv_acl_groups(acc, al, agid, aperm, VV_ACL_MAX_ENTRIES)) < 0 ||
	    (na = (size_t)k, (k = vv_acl_groups(dfl, dl, dgid, dperm, VV_ACL_MAX_ENTRIES)) < 0)) {
		r = VV_ECORRUPT;
		goto out;
	}
	ndef = (size_t)k;
	dir = coll_dir(v, ino);
	if (dir == ino && (r = vv_meta_admin_list(v->meta, dir, adm, MAX_ADMINS, &nadm)) < 0)
		goto out;
	if (nadm > MAX_ADMINS)
		nadm = MAX_ADMINS;
	/* Every gid named anywhere, in order, once. */
	all = malloc((na + ndef + nadm + 1) * sizeof(*all));
	if (!all) {
		r = VV_ENOMEM;
		goto out;
	}
	memcpy(all, agid, na * sizeof(*all));
	memcpy(all + na, dgid, ndef * sizeof(*all));
	memcpy(all + na + ndef, adm, nadm * sizeof(*all));
	for (size_t i = 0; i < na + ndef + nadm; i++) {
		bool seen = false;

		for (size_t j = 0; j < nall && !seen; j++)
			seen = all[j] == all[i];
		if (!seen)
			all[nall++] = all[i];
	}
	if (json)
		r = vault_admin_printf(rep, "{\"path\":");
	else
		r = vault_admin_printf(rep, "%-20s %-10s %-7s %-8s %s\n", "ROLE", "GID", "ACCESS",
				       "DEFAULT", "ADMIN");
	if (r == 0 && json)
		r = vault_admin_json_str(rep, path);
	if (r == 0 && json)
		r = vault_admin_printf(rep, ",\"grants\":[");
	for (size_t i = 0; r == 0 && i < nall; i++) {
		struct names nm = { .gid = all[i] };
		char a[4] = "", d[4] = "";
		bool is_adm = false;

		for (size_t j = 0; j < na; j++)
			if (agid[j] == all[i])
				perm_text(aperm[j], a);
		for (size_t j = 0; j < ndef; j++)
			if (dgid[j] == all[i])
				perm_text(dperm[j], d);
		for (size_t j = 0; j < nadm; j++)
			if (adm[j] == all[i] && a[0])
				is_adm = true;
		if (!a[0] && !d[0])
			continue;             /* an admin row without its entry: not held */
		vv_meta_role_iter(v->meta, name_cb, &nm);
		if (json) {
			r = vault_admin_printf(rep, "%s{\"role\":", shown ? "," : "");
			if (r == 0)
				r = nm.found ? vault_admin_json_str(rep, nm.name) : vault_admin_printf(rep, "null");
			if (r == 0)
				r = vault_admin_printf(rep, ",\"gid\":%u,\"perms\":", all[i]);
			if (r == 0)
				r = a[0] ? vault_admin_printf(rep, "\"%s\"", a) : vault_admin_printf(rep, "null");
			if (r == 0)
				r = vault_admin_printf(rep, ",\"default\":");
			if (r == 0)
				r = d[0] ? vault_admin_printf(rep, "\"%s\"", d) : vault_admin_printf(rep, "null");
			if (r == 0)
				r = vault_admin_printf(rep, ",\"admin\":%s}", is_adm ? "true" : "false");
		} else {
			r = vault_admin_printf(rep, "%-20s %-10u %-7s %-8s %s\n",
					       nm.found ? nm.name : "(not a role)", all[i],
					       a[0] ? a : "-", d[0] ? d : "-", is_adm ? "yes" : "no");
		}
		shown++;
	}
	if (r == 0 && json)
		r = vault_admin_printf(rep, "]}\n");
out:
	pthread_mutex_unlock(&v->mu);
	free(acc);
	free(dfl);
	free(all);
	free(agid);
	free(dgid);
	free(aperm);
	free(dperm);
	return r;
}

const struct vault_admin_verb vault_grant_verbs[] = {
	{ "grant", ADMIN_COLL, "path", run_grant },
	{ "revoke", ADMIN_COLL, "path", run_revoke },
	{ "grants", ADMIN_ANYONE, "path", run_grants },
	{ NULL, 0, NULL, NULL },
};

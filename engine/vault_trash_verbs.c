/*
 * vault_trash_verbs.c - the recycle bin's control-plane verbs: trash.list,
 * trash.restore and trash.purge (tools/cmd_trash.c sends them).  A file of
 * its own because it is the admin side: each verb checks every item by the
 * rules of vault_trash.c (vault_trash_int.h) and does its work there.
 *
 * Each verb takes v->mu itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin_int.h"
#include "grow.h"
#include "vault_int.h"
#include "vault_trash_int.h"
#include "vecvault/error.h"

/* --- control-plane verbs ------------------------------------------------------ */

struct all {
	struct vv_trash_row *r;
	size_t n, cap;
};

static int all_cb(void *ctx, const struct vv_trash_row *row)
{
	struct all *l = ctx;

	if (VV_GROW(l->r, l->n, l->cap) < 0)
		return VV_ENOMEM;
	l->r[l->n++] = *row;
	return 0;
}

/* Every item (rows copied: the caller may then change the table). */
static int all_items(struct vv_vault *v, struct all *l)
{
	memset(l, 0, sizeof(*l));
	if (!v->trash.ready)
		return 0;
	return vv_meta_trash_list(v->meta, 0, 0, all_cb, l);
}

static void utc(int64_t ns, char *buf, size_t cap)
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static struct vv_ctx peer_ctx(const struct vv_admin_req *rq)
{
	struct vv_ctx c;

	memset(&c, 0, sizeof(c));
	c.id = rq->peer;
	c.comm = "vecvault-admin";
	c.client = rq->client ? rq->client : "local";
	return c;
}

/* "trash.list": what the peer may see, oldest first. */
static int run_list(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	bool json = vault_admin_json(rq);
	struct all l;
	size_t shown = 0;
	int r;

	pthread_mutex_lock(&v->mu);
	r = all_items(v, &l);
	if (r == 0 && json)
		r = vault_admin_printf(rep, "[");
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		struct vv_trash_row *t = &l.r[i];
		char del[32], exp[32];
		struct node *n;
		bool dir;
		if (vault_node_get(v, t->ino, &n) < 0)
			continue;
		dir = S_ISDIR(n->a.mode);
		if (!vault_trash_visible(v, &rq->peer, t, n)) {
			vault_node_put(v, n);
			continue;
		}
		vault_node_put(v, n);
		utc(t->deleted, del, sizeof(del));
		if (v->trash.keep_ns > 0)
			utc(t->deleted + v->trash.keep_ns, exp, sizeof(exp));
		else
			snprintf(exp, sizeof(exp), "never");
		if (json) {
			r = vault_admin_printf(rep, "%s{\"path\":", shown ? "," : "");
			if (r == 0)
				r = vault_admin_json_str(rep, t->path);
			if (r == 0)
				r = vault_admin_printf(rep, ",\"name\":");
			if (r == 0)
				r = vault_admin_json_str(rep, t->name);
			if (r == 0)
				r = vault_admin_printf(rep, ",\"type\":\"%s\",\"size\":%llu,\"uid\":%u,"
						       "\"deleted\":\"%s\",\"expires\":\"%s\"}",
						       dir ? "dir" : "file", (unsigned long long)t->size,
						       t->uid, del, exp);
		} else {
			if (shown == 0)
				r = vault_admin_printf(rep, "%-20s  %12s  %6s  %-20s  %s\n", "DELETED",
						       "SIZE", "BY", "EXPIRES", "PATH");
			if (r == 0)
				r = vault_admin_printf(rep, "%-20s  %12llu  %6u  %-20s  %s%s (.trash/files/%s)\n",
						       del, (unsigned long long)t->size, t->uid, exp, t->path,
						       dir ? "/" : "", t->name);
		}
		shown++;
	}
	if (r == 0 && json)
		r = vault_admin_printf(rep, "]\n");
	pthread_mutex_unlock(&v->mu);
	free(l.r);
	if (r < 0)
		return vault_admin_fail(rep, r, "trash.list: %s", vv_strerror(r));
	return 0;
}

/* The item of l that id means by p: its original path, or (byname) its
 * name in .trash/files.  Only the items id may see are candidates (an item
 * hidden from id changes no answer: not which item is taken, not the
 * error), and of those the newest id could have removed; if id could have
 * removed none, the newest it may see (the caller refuses it, naming only
 * that item).  NULL if id sees none; *inside then says whether id sees an
 * item removed with a directory above p. */
static struct vv_trash_row *find_item(struct vv_vault *v, const struct vv_ident *id, struct all *l,
				      const char *p, bool byname, bool *inside)
{
	struct vv_trash_row *seen = NULL;
	size_t pl = strlen(p);

	while (!byname && pl > 1 && p[pl - 1] == '/')
		pl--;
	*inside = false;
	for (size_t i = l->n; i-- > 0;) {
		struct vv_trash_row *t = &l->r[i];
		size_t tl = strlen(t->path);
		struct node *n;
		bool vis, mine, same, under;
		if (byname) {
			same = strcmp(t->name, p) == 0;
			under = false;
		} else {
			same = tl == pl && strncmp(t->path, p, pl) == 0;
			under = !same && tl < pl && strncmp(t->path, p, tl) == 0 && p[tl] == '/';
		}
		if ((!same && !under) || t->id == 0 || vault_node_get(v, t->ino, &n) < 0)
			continue;
		vis = vault_trash_visible(v, id, t, n);
		mine = vis && same && vault_trash_may_remove(v, id, t, n) == 0;
		vault_node_put(v, n);
		if (!vis)
			continue;
		if (mine)
			return t;
		if (same && !seen)
			seen = t;
		else if (under)
			*inside = true;
	}
	return seen;
}

/* "trash.restore": each "path" (original path) or "name" (in .trash/files)
 * back to where it was; of several items with that path, the newest the
 * peer could have removed among those it may see (find_item). */
static int run_restore(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *paths[256], *names[256];
	size_t np = vault_admin_args(rq, "path", paths, 256), nn = vault_admin_args(rq, "name", names, 256);
	struct vv_ctx c = peer_ctx(rq);
	struct all l;
	int r = 0;

	if (np + nn == 0 || np > 256 || nn > 256)
		return vault_admin_fail(rep, VV_EINVAL, "trash.restore: name 1 to 256 paths to restore");
	pthread_mutex_lock(&v->mu);
	if ((r = all_items(v, &l)) < 0) {
		vault_admin_fail(rep, r, "trash.restore: %s", vv_strerror(r));
		goto out;
	}
	for (size_t i = 0; r == 0 && i < np + nn; i++) {
		const char *p = i < np ? paths[i] : names[i - np];
		bool inside;
		struct vv_trash_row *t = find_item(v, &rq->peer, &l, p, i >= np, &inside);
		struct node *n = NULL;
		if (!t) {
			r = vault_admin_fail(rep, VV_ENOENT, inside ?
					     "trash.restore: %s was removed with a directory above it: "
					     "restore that directory (see trash list)" :
					     "trash.restore: %s is not in the trash (or not yours to see)", p);
			break;
		}
		if ((r = vault_node_get(v, t->ino, &n)) < 0) {
			vault_admin_fail(rep, r, "trash.restore: %s: %s", p, vv_strerror(r));
			break;
		}
		if ((r = vault_trash_may_remove(v, &rq->peer, t, n)) < 0)
			vault_admin_fail(rep, r, "trash.restore: %s: you could not have removed it", t->path);
		/* The kernel walks the path of an `mv` out of .trash; this
		 * request walks nothing, so check the search a walk would:
		 * else a user whose way was closed since the removal would
		 * write where it cannot reach, and learn from EEXIST which
		 * names are there.  A directory gone or in the trash is
		 * vault_trash_restore_to's to refuse. */
		else if ((r = vault_node_reach(v, &c, t->oparent)) < 0 && r != VV_ENOENT)
			vault_admin_fail(rep, r, "trash.restore: %s: you cannot search a directory on the "
					 "way to where it was (restore it as someone who can, or mv "
					 ".trash/files/%s elsewhere)", t->path, t->name);
		else if ((r = vault_trash_restore_to(v, &c, t, n, t->oparent, t->oname)) < 0)
			vault_admin_fail(rep, r, r == VV_ENOENT ?
					 "trash.restore: %s: the directory it was in is gone (in the trash "
					 "too? restore it first, or mv it out of .trash/files)" :
					 r == VV_EROFS ? "trash.restore: %s: the directory it was in is in "
					 "the trash: restore that first" :
					 r == VV_EEXIST ? "trash.restore: %s: that name exists again; move "
					 "it away or mv .trash/files/... to another name" :
					 "trash.restore: %s: %s", t->path, vv_strerror(r));
		vault_audit(v, &c, "restore", t->ino, t->oparent, t->oname, r, t->path);
		vault_node_put(v, n);
		if (r == 0) {
			vault_admin_printf(rep, "restored %s\n", t->path);
			t->id = 0;                   /* gone from the trash */
		}
	}
out:
	pthread_mutex_unlock(&v->mu);
	free(l.r);
	return r;
}

/* "trash.purge": each "path", or "older" (seconds), or "all"; only what
 * the peer could have removed (others are counted in the message). */
static int run_purge(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *paths[256], *older = vault_admin_arg(rq, "older");
	size_t np = vault_admin_args(rq, "path", paths, 256);
	bool all = vault_admin_flag(rq, "all");
	struct vv_ctx c = peer_ctx(rq);
	int64_t before = INT64_MIN;
	size_t purged = 0, kept = 0;
	struct all l;
	int r = 0;

	if (older) {
		char *end;
		unsigned long long s = strtoull(older, &end, 10);
		if (!*older || *end || s > 100ULL * 365 * 86400)
			return vault_admin_fail(rep, VV_EINVAL, "trash.purge: older=%s: want seconds", older);
		before = vault_now() - (int64_t)s * 1000000000LL;
	}
	if ((np > 0) + (older != NULL) + all != 1 || np > 256)
		return vault_admin_fail(rep, VV_EINVAL,
					"trash.purge: name the paths, or older=SECONDS, or all (one of them)");
	pthread_mutex_lock(&v->mu);
	if ((r = all_items(v, &l)) < 0) {
		vault_admin_fail(rep, r, "trash.purge: %s", vv_strerror(r));
		goto out;
	}
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		struct vv_trash_row *t = &l.r[i];
		struct node *n;
		bool want = all || (older && t->deleted < before), vis;
		for (size_t k = 0; !want && k < np; k++)
			want = strcmp(t->path, paths[k]) == 0;
		if (!want || vault_node_get(v, t->ino, &n) < 0)
			continue;
		vis = vault_trash_visible(v, &rq->peer, t, n);
		if (vis && vault_trash_may_remove(v, &rq->peer, t, n) == 0) {
			vault_node_put(v, n);
			r = vault_trash_purge_item(v, t);
			vault_trash_audit_item(v, &c, "purge", t, r, NULL);
			if (r < 0)
				vault_admin_fail(rep, r, "trash.purge: %s: %s", t->path, vv_strerror(r));
			else if ((r = vault_admin_printf(rep, "purged %s\n", t->path)) == 0)
				purged++;
		} else {
			vault_node_put(v, n);
			if (vis)
				kept++;
		}
	}
	if (r == 0 && np && purged == 0)
		r = vault_admin_fail(rep, VV_ENOENT, kept ?
				     "trash.purge: you could not have removed %s: kept" :
				     "trash.purge: %s is not in the trash (or not yours to see)", paths[0]);
	else if (r == 0)
		snprintf(rep->msg, sizeof(rep->msg), "%zu item(s) purged%s", purged,
			 kept ? "; some you could not have removed were kept" : "");
out:
	pthread_mutex_unlock(&v->mu);
	free(l.r);
	return r;
}

const struct vault_admin_verb vault_trash_verbs[] = {
	{ "trash.list", ADMIN_ANYONE, NULL, run_list },
	{ "trash.restore", ADMIN_ANYONE, "path", run_restore },
	{ "trash.purge", ADMIN_ANYONE, "path", run_purge },
	{ NULL, 0, NULL, NULL },
};

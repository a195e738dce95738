/*
 * vault_snap.c - snapshots: create, delete, restore, the schedule and its
 * retention, and the snapshot.* admin verbs (snap_int.h).
 *
 * The rows live in meta.db (meta_snap*.c); the view under .snapshots/ is
 * served by the ordinary namespace and data code on virtual inode numbers
 * (the meta read functions answer for them), which is why every access
 * to a snapshot goes through the same permission check as the live tree,
 * with the owners, modes and ACLs the snapshot holds.  Every change there
 * is refused with EROFS (vault_snap_ro, called by each changing
 * operation; the meta write functions refuse virtual numbers as well).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin_int.h"
#include "crypto_int.h"
#include "grow.h"
#include "os.h"
#include "snap_int.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define NS 1000000000LL

/* --- retention ---------------------------------------------------------------- */

struct tsi {
	int64_t t;
	size_t i;
};

static int newest_first(const void *a, const void *b)
{
	const struct tsi *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? 1 : -1;
	return x->i < y->i ? 1 : x->i > y->i ? -1 : 0;
}

/* The bucket of t for policy p: 0 hour, 1 day, 2 ISO week, 3 month (UTC). */
static int64_t bucket(int64_t t, int p)
{
	time_t s = (time_t)(t / NS);
	struct tm tm;
	char wk[16];

	if (t < 0 && t % NS)
		s--;
	gmtime_r(&s, &tm);
	switch (p) {
	case 0:
		return (int64_t)(s >= 0 ? s / 3600 : (s - 3599) / 3600);
	case 1:
		return (int64_t)(tm.tm_year + 1900) * 1000 + tm.tm_yday;
	case 2:
		strftime(wk, sizeof(wk), "%G%V", &tm);   /* ISO 8601 year and week */
		return strtoll(wk, NULL, 10);
	default:
		return (int64_t)(tm.tm_year + 1900) * 100 + tm.tm_mon;
	}
}

void vv_snap_retain(const int64_t *times, size_t n, const struct vv_snap_keep *k, bool *keep)
{
	uint32_t left[4] = { k->hourly, k->daily, k->weekly, k->monthly };
	struct tsi *o;

	for (size_t i = 0; i < n; i++)
		keep[i] = true;
	if (!left[0] && !left[1] && !left[2] && !left[3])
		return;
	o = malloc(n * sizeof(*o) + 1);
	if (!o)
		return;                          /* keep everything rather than guess */
	for (size_t i = 0; i < n; i++) {
		o[i].t = times[i];
		o[i].i = i;
		keep[i] = false;
	}
	qsort(o, n, sizeof(*o), newest_first);
	for (int p = 0; p < 4; p++) {
		bool have = false;
		int64_t last = 0;
		for (size_t j = 0; j < n && left[p]; j++) {
			int64_t b = bucket(o[j].t, p);
			if (have && b == last)
				continue;
			have = true;
			last = b;
			keep[o[j].i] = true;
			left[p]--;
		}
	}
	free(o);
}

/* --- create, delete --------------------------------------------------------- */

static int check_snap_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return VV_EINVAL;
	if (n > VV_SNAP_NAME_MAX)
		return VV_ENAMETOOLONG;
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p == '/' || *p < 0x20 || *p == 0x7f)
			return VV_EINVAL;
	return 0;
}

static void time_name(int64_t ns, char *buf, size_t cap)
{
	time_t s = (time_t)(ns / NS);
	struct tm tm;

	gmtime_r(&s, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The kernel may hold a (negative) entry for the name: forget it. */
static void inval_name(struct vv_vault *v, uint64_t parent, const char *name)
{
	if (v->inval)
		v->inval(v->inval_ctx, parent, name);
}

static void freed_chunk(void *ctx, const uint8_t *chunk);

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Make snapshot id's file at path durable: the file, then its directory
 * (the name). */
static int sync_file(uint32_t id, const char *file)
{
	char path[4096];
	int fd, r;

	snprintf(path, sizeof(path), "%s", file);
	if ((fd = vv_os_open(path, O_RDONLY | O_NOFOLLOW, 0)) < 0)
		return VV_EIO;
	r = vv_os_fsync(fd) < 0 ? VV_EIO : 0;
	vv_os_close(fd);
	*strrchr(path, '/') = 0;
	if (r == 0 && vv_os_fsync_dir(path) < 0)
		r = VV_EIO;
	if (r < 0)
		vv_log(VV_LOG_ERR, "snapshot: cannot sync the file of snapshot %u", id);
	return r;
}

/* Room for the copy of meta.db (its size now, plus the WAL it may be
 * checkpointed with) above the full-disk reserve: a copy that filled the
 * disk would leave the commit that drops it again no room. */
static int room_for_copy(struct vv_vault *v)
{
	struct stat st;
	char path[4096];
	uint64_t need = 2ull * v->cm.reserve;

	if (vv_store_path(v->store, "meta.db", path, sizeof(path)) == 0 && vv_os_stat(path, &st) == 0)
		need += (uint64_t)st.st_size;
	if (vv_store_path(v->store, "meta.db-wal", path, sizeof(path)) == 0 && vv_os_stat(path, &st) == 0)
		need += (uint64_t)st.st_size;
	if (vault_free_bytes(v) < need)
		return VV_ENOSPC;
	return 0;
}

/*
 * Three steps (meta_int.h): the pending snapshot and its chunk references
 * in one commit; the checkpoint and byte copy of meta.db into
 * snapshots/ID.db, still under v->mu (the copy is exactly that commit's
 * state); then, with the vault free again, the file's fsync, and last
 * the commit that makes it ready.  A failure after the first commit
 * drops the pending snapshot again (or, after a crash, the next
 * read-write open does).
 */
int vault_snap_create(struct vv_vault *v, const char *name, uint32_t uid, uint32_t flags,
		      struct vv_snap_row *out)
{
	struct vv_snap_row row;
	struct vv_snap_tags tags = { 0 };
	struct vv_snap_scan scan = { 0 };
	int64_t t[5] = { 0 };
	char tname[64], path[4096];
	int64_t now = vault_now();
	bool made = false, copied = false;
	int r;

	if (!name) {
		time_name(now, tname, sizeof(tname));
		name = tname;
	}
	if ((r = check_snap_name(name)) < 0)
		return r;
	/* Write buffers first: each write that returned before the snapshot
	 * was asked for is in it.  Writes racing with it land before or after
	 * as a whole file state: the commit below is taken under v->mu, where
	 * every file's size and extents agree, and the copy is that commit. */
	if ((r = vault_flush_all(v)) < 0)
		return r;
	t[0] = mono_us();
	pthread_mutex_lock(&v->mu);
	if ((r = vault_txn(v)) < 0 || (r = vault_space_ok(v)) < 0 || (r = room_for_copy(v)) < 0 ||
	    (r = vv_meta_snap_create(v->meta, name, now, uid, flags, &row)) < 0)
		goto out;
	if ((r = vault_commit(v)) < 0)
		goto out;
	made = true;
	t[1] = mono_us();
	/* A file already at its path (planted: ids are never reused) is
	 * neither written through nor removed: an I/O error, named in the log. */
	if ((r = vv_meta_snap_copy(v->meta, row.id, &tags)) == VV_EEXIST)
		r = VV_EIO;
	copied = r == 0;
	if (r == 0)
		r = vv_meta_snap_file_path(v->meta, row.id, path, sizeof(path));
	pthread_mutex_unlock(&v->mu);
	/* The vault is free again: the counts, then the fsync (its disk
	 * writes began during the copy). */
	t[2] = mono_us();
	if (r == 0)
		r = vv_meta_snap_scan(v->meta, row.id, path, &tags, &scan);
	t[3] = mono_us();
	if (r == 0)
		r = sync_file(row.id, path);
	t[4] = mono_us();
	pthread_mutex_lock(&v->mu);
	if (r == 0 && (r = vault_txn(v)) == 0 &&
	    (r = vv_meta_snap_ready(v->meta, row.id, &tags, &scan, &row)) == 0)
		r = vault_commit(v);
	if (r == 0) {
		/* What each step costs (docs/design.md "Snapshots").  By id:
		 * a name is the owner's text, which the log never holds (t5008). */
		vv_log(VV_LOG_INFO, "snapshot %u: %llu files; commit %lld ms, checkpoint and copy %lld ms "
		       "(vault held), count %lld ms, fsync %lld ms, ready %lld ms", row.id,
		       (unsigned long long)row.inodes, (long long)(t[1] - t[0]) / 1000,
		       (long long)(t[2] - t[1]) / 1000, (long long)(t[3] - t[2]) / 1000,
		       (long long)(t[4] - t[3]) / 1000, (long long)(mono_us() - t[4]) / 1000);
		inval_name(v, VV_SNAPDIR_INO, name);
		if (out)
			*out = row;
	}
out:
	if (r < 0 && made) {
		/* Undo: its references go, and the file if it was made. */
		int e;
		if ((e = vault_txn(v)) < 0 || (e = vv_meta_snap_delete(v->meta, row.id, freed_chunk, v)) < 0 ||
		    (e = vault_commit(v)) < 0)
			vv_log(VV_LOG_ERR, "snapshot: cannot drop the failed snapshot %u (%s); the next "
			       "mount does", row.id, vv_strerror(e));
		else if (copied)
			vv_meta_snap_unlink_file(v->meta, row.id);
	}
	vv_meta_snap_tags_free(&tags);
	vv_meta_snap_scan_free(&scan);
	pthread_mutex_unlock(&v->mu);
	if (r < 0 && made)
		vault_unlink_freed(v, false);
	return r;
}

int vault_snap_recover(struct vv_vault *v)
{
	uint32_t dropped = 0;
	int r;

	pthread_mutex_lock(&v->mu);
	if ((r = vault_txn(v)) == 0 && (r = vv_meta_snap_recover(v->meta, freed_chunk, v, &dropped)) == 0 &&
	    dropped && (r = vault_commit(v)) == 0)
		vv_log(VV_LOG_INFO, "snapshot: dropped %u snapshot(s) a crash left unfinished", dropped);
	if (r == 0)
		r = vv_meta_snap_sweep(v->meta);
	pthread_mutex_unlock(&v->mu);
	if (r == 0 && dropped)
		vault_unlink_freed(v, false);
	return r;
}

static void freed_chunk(void *ctx, const uint8_t *chunk)
{
	vault_unlink_later(ctx, chunk);
}

int vault_snap_delete(struct vv_vault *v, const char *name)
{
	struct vv_snap_row row;
	int dropped = 0, r;

	pthread_mutex_lock(&v->mu);
	if ((r = vv_meta_snap_get(v->meta, name, &row)) < 0)
		goto out;
	/* Open files would lose their chunks under them. */
	for (size_t i = 0; i < v->nodes.hsize; i++)
		for (struct node *n = v->nodes.htab[i]; n; n = n->hnext)
			if (vv_snap_ino(n->ino) && vv_snap_sid(n->ino) == row.id && n->nopen) {
				r = VV_EBUSY;
				goto out;
			}
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_snap_delete(v->meta, row.id, freed_chunk, v)) < 0)
		goto out;
	/* A collection removed since, whose key this snapshot kept. */
	if (vault_coll_gc(v, &dropped) < 0)
		vv_log(VV_LOG_WARN, "snapshot: cannot drop unused collection keys (kept)");
	if ((r = vault_commit(v)) < 0)
		goto out;
	vv_meta_snap_unlink_file(v->meta, row.id);
	inval_name(v, VV_SNAPDIR_INO, name);
	/* What the offload cache keeps of its files goes now. */
	vault_nodes_gone(v, vv_snap_mkino(row.id, 0), vv_snap_mkino(row.id, 0) + ((uint64_t)1 << 40));
	for (size_t i = 0; i < v->nodes.hsize; i++)
		for (struct node *n = v->nodes.htab[i]; n; n = n->hnext)
			if (vv_snap_ino(n->ino) && vv_snap_sid(n->ino) == row.id && v->inval)
				v->inval(v->inval_ctx, n->ino, NULL);
out:
	pthread_mutex_unlock(&v->mu);
	if (r == 0)
		vault_unlink_freed(v, false);
	return r;
}

/* --- schedule ------------------------------------------------------------------ */

struct auto_list {
	int64_t *t;
	char (*names)[VV_SNAP_NAME_MAX + 1];
	size_t n, cap;
	int64_t newest;
};

static int collect_auto(void *ctx, const struct vv_snap_row *r)
{
	struct auto_list *l = ctx;

	if (!(r->flags & VV_SNAP_AUTO))
		return 0;
	if (r->created > l->newest)
		l->newest = r->created;
	if (l->n == l->cap) {
		/* two arrays, one capacity: from the same start they grow alike */
		size_t ct = l->cap, cn = l->cap;
		if (VV_GROW(l->t, l->n, ct) < 0 || VV_GROW(l->names, l->n, cn) < 0)
			return VV_ENOMEM;
		l->cap = ct;
	}
	l->t[l->n] = r->created;
	memcpy(l->names[l->n++], r->name, sizeof(r->name));
	return 0;
}

void vault_snap_schedule_init(struct vv_vault *v)
{
	struct auto_list l = { 0 };

	if (!v->snaps.every)
		return;
	pthread_mutex_lock(&v->mu);
	vv_meta_snap_list(v->meta, collect_auto, &l);
	pthread_mutex_unlock(&v->mu);
	/* Continue the schedule across remounts: due one period after the
	 * newest scheduled snapshot (now, if that is past). */
	v->snaps.next = l.n ? l.newest + (int64_t)v->snaps.every * NS : vault_now() + (int64_t)v->snaps.every * NS;
	free(l.t);
	free(l.names);
}

static void audit_sched(struct vv_vault *v, const char *what, const char *name, int r)
{
	char detail[VV_SNAP_NAME_MAX + 64];

	snprintf(detail, sizeof(detail), "%s %s", what, name);
	pthread_mutex_lock(&v->mu);
	vault_audit(v, NULL, "snapshot", VV_SNAPDIR_INO, 0, NULL, r, detail);
	pthread_mutex_unlock(&v->mu);
}

static void prune(struct vv_vault *v)
{
	struct vv_snap_keep k = { v->snaps.keep_hourly, v->snaps.keep_daily, v->snaps.keep_weekly,
				  v->snaps.keep_monthly };
	struct auto_list l = { 0 };
	bool *keep = NULL;
	int r;

	pthread_mutex_lock(&v->mu);
	r = vv_meta_snap_list(v->meta, collect_auto, &l);
	pthread_mutex_unlock(&v->mu);
	if (r == 0 && l.n && (keep = calloc(l.n, sizeof(*keep)))) {
		vv_snap_retain(l.t, l.n, &k, keep);
		for (size_t i = 0; i < l.n; i++)
			if (!keep[i])
				audit_sched(v, "expire", l.names[i], vault_snap_delete(v, l.names[i]));
	}
	free(keep);
	free(l.t);
	free(l.names);
}

void vault_snap_tick(struct vv_vault *v)
{
	char name[VV_SNAP_NAME_MAX + 1];
	int64_t now = vault_now();
	int r;

	if (!v->snaps.every || now < v->snaps.next)
		return;
	v->snaps.next = now + (int64_t)v->snaps.every * NS;
	time_name(now, name, sizeof(name));
	r = vault_snap_create(v, name, 0, VV_SNAP_AUTO, NULL);
	for (int i = 2; r == VV_EEXIST && i < 100; i++) {
		char base[64];
		time_name(now, base, sizeof(base));
		snprintf(name, sizeof(name), "%s-%d", base, i);
		r = vault_snap_create(v, name, 0, VV_SNAP_AUTO, NULL);
	}
	audit_sched(v, "scheduled", name, r);
	if (r < 0)
		vv_log(VV_LOG_ERR, "snapshot: scheduled snapshot %s failed: %s", name, vv_strerror(r));
	prune(v);
}

/* --- restore -------------------------------------------------------------------- */

/*
 * Restore copies rows, never data: each snapshot inode below the path
 * becomes a new live inode (a fresh number, the snapshot's attributes,
 * xattrs/ACLs, inline bytes and extents, the same object id so that its
 * blocks decrypt) and the live tree takes its own references on the
 * chunks.  What the live tree has at the path is first renamed aside to
 * NAME.pre-restore-STAMP in the same directory, so a restore loses
 * nothing.  One savepoint and one commit for the whole request.
 */

/* Snapshot files with several names: met twice in one restore, they
 * become one live inode with as many names. */
struct links {
	struct lk {
		uint64_t from, to;
		uint32_t names;
	} *e;
	size_t n, cap;
	uint32_t sid;
	uint64_t files;                  /* inodes made, for the reply */
};

struct child {
	char name[VV_NAME_MAX + 1];
	uint64_t ino;
	uint32_t mode;
};

struct children {
	struct child *c;
	size_t n, cap;
	uint64_t last;
};

static int add_child(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode)
{
	struct children *l = ctx;

	l->last = cookie;
	if (VV_GROW(l->c, l->n, l->cap) < 0)
		return VV_ENOMEM;
	snprintf(l->c[l->n].name, sizeof(l->c[0].name), "%s", name);
	l->c[l->n].ino = ino;
	l->c[l->n++].mode = mode;
	return 0;
}

/* Every entry of dir, collected first: the listing statement is shared,
 * so it must not be stepped again by a recursive copy under it. */
static int list_children(struct vv_vault *v, uint64_t dir, struct children *l)
{
	for (;;) {
		size_t before = l->n;
		int r = vv_meta_dirent_list(v->meta, dir, l->last, 256, add_child, l);
		if (r < 0)
			return r;
		if (l->n - before < 256)
			return 0;
	}
}

/* Copy snapshot inode vino (and below) as entry name of live directory
 * parent.  Under v->mu, inside the savepoint. */
static int copy_tree(struct vv_vault *v, struct links *m, uint64_t vino, uint64_t parent,
		     const char *name, int depth)
{
	struct children kids = { 0 };
	struct vv_inode_row row;
	uint32_t subdirs = 0;
	uint64_t ino;
	int r;

	if (depth > 4096)
		return VV_ELOOP;
	if ((r = vv_meta_inode_get(v->meta, vino, &row)) < 0)
		return r;
	if (!S_ISDIR(row.mode) && row.nlink > 1)
		for (size_t i = 0; i < m->n; i++)
			if (m->e[i].from == vino) {
				m->e[i].names++;
				return vv_meta_dirent_add(v->meta, parent, name, m->e[i].to, row.mode);
			}
	if ((r = vv_meta_next_ino(v->meta, &ino)) < 0 ||
	    (r = vv_meta_snap_restore_inode(v->meta, m->sid, vv_snap_real(vino), ino,
					    S_ISDIR(row.mode) ? 2 : 1, parent)) < 0 ||
	    (r = vv_meta_dirent_add(v->meta, parent, name, ino, row.mode)) < 0)
		return r;
	m->files++;
	if (!S_ISDIR(row.mode) && row.nlink > 1) {
		if (VV_GROW(m->e, m->n, m->cap) < 0)
			return VV_ENOMEM;
		m->e[m->n++] = (struct lk){ .from = vino, .to = ino, .names = 1 };
	}
	if (!S_ISDIR(row.mode))
		return 0;
	if ((r = list_children(v, vino, &kids)) < 0)
		goto out;
	for (size_t i = 0; i < kids.n && r == 0; i++) {
		r = copy_tree(v, m, kids.c[i].ino, ino, kids.c[i].name, depth + 1);
		if (S_ISDIR(kids.c[i].mode))
			subdirs++;
	}
	if (r == 0 && subdirs) {
		struct vv_inode_row d;
		if ((r = vv_meta_inode_get(v->meta, ino, &d)) == 0) {
			d.nlink = 2 + subdirs;
			r = vv_meta_inode_put(v->meta, &d);
		}
	}
out:
	free(kids.c);
	return r;
}

/* What one restored path changed in nodes that may outlive a rollback:
 * its live directory's links and times, and the name of what was there
 * before (moved aside). */
struct undo {
	uint64_t dir, moved;             /* moved: 0 when nothing was moved aside */
	char base[VV_NAME_MAX + 1];
};

struct restore {
	struct vv_vault *v;
	const struct vv_snap_row *sr;
	struct links links;
	struct undo *undo;
	size_t nundo, undocap;
	char stamp[32];
	struct vv_admin_reply *rep;
	bool json;
	int count;
};

/* Restore the snapshot's item at spath ("/coll/a.npy") to the same live
 * path.  Under v->mu, inside the savepoint. */
static int restore_one(struct restore *rs, const char *spath)
{
	struct vv_vault *v = rs->v;
	struct vv_inode_row item, lrow;
	struct node *d = NULL, *y = NULL;
	char ppath[4096], base[VV_NAME_MAX + 1], aside[VV_NAME_MAX + 1];
	const char *slash;
	uint64_t sino, lp, yino, other;
	bool moved = false;
	int r;

	if (strlen(spath) >= sizeof(ppath) || spath[0] != '/')
		return vault_admin_fail(rs->rep, VV_EINVAL, "snapshot.restore: %s: not a vault path", spath);
	slash = strrchr(spath, '/');
	memcpy(ppath, spath, (size_t)(slash - spath));
	ppath[slash - spath] = 0;
	if (strlen(slash + 1) > VV_NAME_MAX)
		return vault_admin_fail(rs->rep, VV_ENAMETOOLONG, "snapshot.restore: %s: name too long", spath);
	snprintf(base, sizeof(base), "%s", slash + 1);
	if ((r = vault_admin_resolve_at(v, vv_snap_mkino(rs->sr->id, VV_ROOT_INO), spath, &sino)) < 0)
		return vault_admin_fail(rs->rep, r, "snapshot.restore: %s is not in snapshot %s (%s)",
					spath, rs->sr->name, vv_strerror(r));
	if ((r = vault_admin_resolve_at(v, VV_ROOT_INO, ppath[0] ? ppath : "/", &lp)) < 0 || (r = vv_meta_inode_get(v->meta, lp, &lrow)) < 0)
		return vault_admin_fail(rs->rep, r, "snapshot.restore: the directory %s is not in the "
					"vault now (%s): restore it first", ppath[0] ? ppath : "/",
					vv_strerror(r));
	if (vv_snap_ino(lp) || !S_ISDIR(lrow.mode))
		return vault_admin_fail(rs->rep, VV_ENOTDIR, "snapshot.restore: %s is not a directory of "
					"the live tree", ppath[0] ? ppath : "/");
	if ((r = vv_meta_inode_get(v->meta, sino, &item)) < 0)
		return vault_admin_fail(rs->rep, r, "snapshot.restore: %s: %s", spath, vv_strerror(r));
	/* Each collection has its own key (DESIGN invariant 3): a file goes
	 * back only into the collection it was in. */
	if (lp == VV_ROOT_INO ? (!S_ISDIR(item.mode) && item.coll != v->root_coll) : item.coll != lrow.coll)
		return vault_admin_fail(rs->rep, VV_EXDEV, "snapshot.restore: %s belonged to a collection "
					"that %s is not part of now (removed and made again?): restore "
					"the whole collection instead", spath, ppath[0] ? ppath : "/");
	if (VV_GROW(rs->undo, rs->nundo, rs->undocap) < 0)
		return vault_admin_fail(rs->rep, VV_ENOMEM, "snapshot.restore: %s: out of memory", spath);
	rs->undo[rs->nundo] = (struct undo){ .dir = lp };
	snprintf(rs->undo[rs->nundo].base, sizeof(rs->undo[0].base), "%s", base);
	rs->nundo++;
	r = vv_meta_dirent_get(v->meta, lp, base, &yino);
	if (r == 0 && yino != VV_SNAPDIR_INO) {
		int k = 1;
		do {
			if (k == 1)
				snprintf(aside, sizeof(aside), "%.200s.pre-restore-%s", base, rs->stamp);
			else
				snprintf(aside, sizeof(aside), "%.200s.pre-restore-%s-%d", base, rs->stamp, k);
			r = vv_meta_dirent_get(v->meta, lp, aside, &other) == 0 ? VV_EEXIST : 0;
		} while (r == VV_EEXIST && ++k < 1000);
		if (r < 0 || (r = vv_meta_dirent_move(v->meta, lp, base, lp, aside)) < 0)
			return vault_admin_fail(rs->rep, r, "snapshot.restore: cannot move %s aside: %s",
						spath, vv_strerror(r));
		rs->undo[rs->nundo - 1].moved = yino;
		if (vault_node_get(v, yino, &y) == 0) {
			vault_node_named(y, lp, aside, 0);
			vault_node_put(v, y);
		}
		moved = true;
	} else if (r == 0) {
		return vault_admin_fail(rs->rep, VV_EPERM, "snapshot.restore: %s is reserved", spath);
	} else if (r != VV_ENOENT) {
		return vault_admin_fail(rs->rep, r, "snapshot.restore: %s: %s", spath, vv_strerror(r));
	}
	inval_name(v, lp, base);
	if ((r = copy_tree(v, &rs->links, sino, lp, base, 0)) < 0)
		return vault_admin_fail(rs->rep, r, "snapshot.restore: %s: %s (nothing restored)", spath,
					vv_strerror(r));
	if ((r = vault_node_get(v, lp, &d)) < 0)
		return r;
	if (S_ISDIR(item.mode))
		d->a.nlink++;
	d->a.mtime = d->a.ctime = vault_now();
	r = vault_node_save(v, d);
	vault_node_put(v, d);
	if (r < 0)
		return r;
	if (rs->json) {
		if ((r = vault_admin_printf(rs->rep, "%s{\"path\":", rs->count ? "," : "")) == 0 &&
		    (r = vault_admin_json_str(rs->rep, spath)) == 0 &&
		    (r = vault_admin_printf(rs->rep, ",\"aside\":")) == 0)
			r = moved ? vault_admin_json_str(rs->rep, aside) : vault_admin_printf(rs->rep, "null");
		if (r == 0)
			r = vault_admin_printf(rs->rep, "}");
	} else if (moved)
		r = vault_admin_printf(rs->rep, "restored %s (what was there is now %s/%s)\n", spath,
				       ppath, aside);
	else
		r = vault_admin_printf(rs->rep, "restored %s\n", spath);
	rs->count++;
	return r;
}

/* The savepoint was rolled back: its rows are gone, not what the node
 * table made of them.  The inodes it made had nodes (a later path's live
 * directory, a file moved aside there), kept idle since, and the counter
 * hands their numbers out again: the next file created would get such a
 * node, with another file's owner, mode, size and bytes.  Those nodes were
 * never the kernel's (v->mu was held throughout), so they are idle: drop
 * every idle node.  A node the kernel holds gets back what the restore
 * changed in it: a directory its links and times from its row, an item
 * moved aside its name.  Under v->mu. */
static void restore_undo(struct restore *rs)
{
	struct vv_vault *v = rs->v;

	vault_node_idle_drop(v);
	for (size_t i = rs->nundo; i-- > 0;) {
		const struct undo *u = &rs->undo[i];
		struct node *n = vault_node_find(v, u->dir);
		struct vv_inode_row row;

		if (n && vv_meta_inode_get(v->meta, u->dir, &row) == 0) {
			n->a.nlink = row.nlink;
			n->a.mtime = row.mtime;
			n->a.ctime = row.ctime;
		}
		if (u->moved && (n = vault_node_find(v, u->moved)))
			vault_node_named(n, u->dir, u->base, 0);
	}
}

/* Fix the link counts of files restored with several names.  A later
 * path of the same restore may have built the node of one (it moved the
 * file aside to restore another of its names): the count goes there too,
 * or the node, kept idle, would call a name's removal the last one and
 * trash the file under its other names. */
static int fix_links(struct vv_vault *v, struct links *m)
{
	for (size_t i = 0; i < m->n; i++) {
		struct node *n = vault_node_find(v, m->e[i].to);
		struct vv_inode_row row;
		int r = vv_meta_inode_get(v->meta, m->e[i].to, &row);
		if (r < 0)
			return r;
		row.nlink = m->e[i].names;
		if ((r = vv_meta_inode_put(v->meta, &row)) < 0)
			return r;
		if (n)
			n->a.nlink = row.nlink;
	}
	return 0;
}

static int restore_all(struct restore *rs)
{
	struct children kids = { 0 };
	char path[VV_NAME_MAX + 2];
	int r;

	if ((r = list_children(rs->v, vv_snap_mkino(rs->sr->id, 1), &kids)) < 0)
		return vault_admin_fail(rs->rep, r, "snapshot.restore: cannot list snapshot %s: %s",
					rs->sr->name, vv_strerror(r));
	for (size_t i = 0; i < kids.n && r == 0; i++) {
		snprintf(path, sizeof(path), "/%s", kids.c[i].name);
		r = restore_one(rs, path);
	}
	free(kids.c);
	return r;
}

/* --- verbs ------------------------------------------------------------------------ */

static int print_row(struct vv_admin_reply *rep, const struct vv_snap_row *r, bool json, bool first)
{
	char t[64];
	time_t s = (time_t)(r->created / NS);
	struct tm tm;
	int e;

	gmtime_r(&s, &tm);
	strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (!json)
		return vault_admin_printf(rep, "%-24s %s %10llu files %14llu bytes  %s\n", r->name, t,
					  (unsigned long long)r->inodes, (unsigned long long)r->bytes,
					  (r->flags & VV_SNAP_AUTO) ? "scheduled" : "manual");
	if ((e = vault_admin_printf(rep, "%s{\"name\":", first ? "" : ",")) < 0 ||
	    (e = vault_admin_json_str(rep, r->name)) < 0)
		return e;
	return vault_admin_printf(rep, ",\"id\":%u,\"created\":\"%s\",\"created_ns\":%lld,\"commit\":%llu,"
				  "\"uid\":%u,\"scheduled\":%s,\"files\":%llu,\"bytes\":%llu}",
				  r->id, t, (long long)r->created, (unsigned long long)r->commit, r->uid,
				  (r->flags & VV_SNAP_AUTO) ? "true" : "false",
				  (unsigned long long)r->inodes, (unsigned long long)r->bytes);
}

static int run_create(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	struct vv_snap_row row;
	int r;

	if (name && !*name)
		name = NULL;
	r = vault_snap_create(v, name, rq->peer.uid, 0, &row);
	if (r == VV_EEXIST)
		return vault_admin_fail(rep, r, "snapshot.create: a snapshot named '%s' exists already", name);
	if (r == VV_EINVAL || r == VV_ENAMETOOLONG)
		return vault_admin_fail(rep, r, "snapshot.create: '%s' cannot name a snapshot (1 to 255 "
					"bytes, no '/', no control characters, not . or ..)", name);
	if (r == VV_ENOSPC)
		return vault_admin_fail(rep, r, "snapshot.create: no room on the store's disk for the "
					"snapshot's copy of the metadata (the size of meta.db, above the "
					"full-disk reserve), or no snapshot id or inode number left in the "
					"snapshot numbering (2^20 ids, 2^40 inodes)");
	if (r == VV_EROFS)
		return vault_admin_fail(rep, r, "snapshot.create: the vault is mounted read-only");
	if (r == VV_EIO)
		return vault_admin_fail(rep, r, "snapshot.create: cannot write the snapshot's file under "
					"STORE/snapshots/ (the daemon's log says why); no snapshot was made");
	if (r < 0)
		return vault_admin_fail(rep, r, "snapshot.create: %s", vv_strerror(r));
	if (vault_admin_json(rq)) {
		r = print_row(rep, &row, true, true);
		return r < 0 ? r : vault_admin_printf(rep, "\n");
	}
	return vault_admin_printf(rep, "created snapshot %s (%llu files)\n", row.name,
				  (unsigned long long)row.inodes);
}

struct lsctx {
	struct vv_admin_reply *rep;
	bool json;
	int n;
};

static int list_one(void *ctx, const struct vv_snap_row *r)
{
	struct lsctx *l = ctx;

	return print_row(l->rep, r, l->json, l->n++ == 0);
}

static int run_list(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	struct lsctx l = { .rep = rep, .json = vault_admin_json(rq) };
	int r;

	if (l.json && (r = vault_admin_printf(rep, "[")) < 0)
		return r;
	pthread_mutex_lock(&v->mu);
	r = vv_meta_snap_list(v->meta, list_one, &l);
	pthread_mutex_unlock(&v->mu);
	if (r < 0)
		return vault_admin_fail(rep, r, "snapshot.list: %s", vv_strerror(r));
	return l.json ? vault_admin_printf(rep, "]\n") : 0;
}

static int run_delete(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name");
	int r;

	if (!name || !*name)
		return vault_admin_fail(rep, VV_EINVAL, "snapshot.delete: which snapshot? (name)");
	r = vault_snap_delete(v, name);
	if (r == VV_ENOENT)
		return vault_admin_fail(rep, r, "snapshot.delete: no snapshot named '%s'", name);
	if (r == VV_EBUSY)
		return vault_admin_fail(rep, r, "snapshot.delete: files of snapshot '%s' are open; close "
					"them first", name);
	if (r < 0)
		return vault_admin_fail(rep, r, "snapshot.delete: %s: %s", name, vv_strerror(r));
	return vault_admin_printf(rep, "deleted snapshot %s\n", name);
}

static int run_restore(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	const char *name = vault_admin_arg(rq, "name"), *paths[256];
	struct vv_snap_row sr;
	struct restore rs = { .v = v, .sr = &sr, .rep = rep, .json = vault_admin_json(rq) };
	size_t np = vault_admin_args(rq, "path", paths, 256);
	time_t now = (time_t)(vault_now() / NS);
	struct tm tm;
	int r;

	if (!name || !*name)
		return vault_admin_fail(rep, VV_EINVAL, "snapshot.restore: which snapshot? (name)");
	if (np > 256)
		return vault_admin_fail(rep, VV_E2BIG, "snapshot.restore: at most 256 paths at once");
	gmtime_r(&now, &tm);
	strftime(rs.stamp, sizeof(rs.stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((r = vault_flush_all(v)) < 0)
		return vault_admin_fail(rep, r, "snapshot.restore: cannot flush write buffers: %s",
					vv_strerror(r));
	pthread_mutex_lock(&v->mu);
	if ((r = vv_meta_snap_get(v->meta, name, &sr)) < 0) {
		vault_admin_fail(rep, r, "snapshot.restore: no snapshot named '%s'", name);
		goto out;
	}
	rs.links.sid = sr.id;
	if ((r = vault_txn(v)) < 0 || (r = vault_space_ok(v)) < 0 || (r = vv_meta_savepoint(v->meta)) < 0) {
		vault_admin_fail(rep, r, "snapshot.restore: %s", vv_strerror(r));
		goto out;
	}
	if (rs.json)
		r = vault_admin_printf(rep, "[");
	if (r == 0 && np == 0)
		r = restore_all(&rs);
	for (size_t i = 0; i < np && r == 0; i++) {
		if (strcmp(paths[i], "/") == 0 || !paths[i][0])
			r = restore_all(&rs);
		else
			r = restore_one(&rs, paths[i]);
	}
	if (r == 0)
		r = fix_links(v, &rs.links);
	if (r == 0 && rs.json)
		r = vault_admin_printf(rep, "]\n");
	if ((r = vv_meta_savepoint_end(v->meta, r)) < 0)
		restore_undo(&rs);
	if (r == 0)
		r = vault_commit(v);
	if (r < 0 && rep->body)
		rep->body[rep->len = 0] = 0;     /* nothing was restored */
	if (r < 0 && !rep->msg[0])
		vault_admin_fail(rep, r, "snapshot.restore: %s (nothing restored)", vv_strerror(r));
	if (r == 0) {
		v->nodes.perm_gen++;
		vault_node_invalidate_all(v);
	}
out:
	free(rs.links.e);
	free(rs.undo);
	pthread_mutex_unlock(&v->mu);
	return r;
}

/* "vault.space": what the trash and the snapshots keep on the disk (the
 * whole vault's totals: the owner's; `vecvault info`, `vecvault stats`). */
static int run_space(struct vv_vault *v, const struct vv_admin_req *rq, struct vv_admin_reply *rep)
{
	uint64_t ti = 0, tb = 0, sn = 0, sb = 0, so = 0, sm = 0;
	int r;

	(void)rq;
	if ((r = vv_vault_trash_stats(v, &ti, &tb)) == 0) {
		pthread_mutex_lock(&v->mu);
		if ((r = vv_meta_snap_space(v->meta, &sn, &sb, &so)) == 0)
			r = vv_meta_snap_file_bytes(v->meta, &sm);
		pthread_mutex_unlock(&v->mu);
	}
	if (r < 0)
		return vault_admin_fail(rep, r, "vault.space: %s", vv_strerror(r));
	return vault_admin_printf(rep, "{\"trash_items\":%llu,\"trash_bytes\":%llu,\"snapshots\":%llu,"
				  "\"snapshot_file_bytes\":%llu,\"snapshot_only_bytes\":%llu,"
				  "\"snapshot_meta_bytes\":%llu}\n",
				  (unsigned long long)ti, (unsigned long long)tb, (unsigned long long)sn,
				  (unsigned long long)sb, (unsigned long long)so, (unsigned long long)sm);
}

const struct vault_admin_verb vault_snap_verbs[] = {
	{ "snapshot.create", ADMIN_OWNER, "name", run_create },
	/* Names and times only: the .snapshots directory shows as much to
	 * everyone, and what is inside is guarded by its own ACLs. */
	{ "snapshot.list", ADMIN_ANYONE, NULL, run_list },
	{ "snapshot.delete", ADMIN_OWNER, "name", run_delete },
	{ "snapshot.restore", ADMIN_OWNER, "name", run_restore },
	{ "vault.space", ADMIN_OWNER, NULL, run_space },
	{ NULL, 0, NULL, NULL },
};

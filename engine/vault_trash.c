/*
 * vault_trash.c - the recycle bin (.trash).
 *
 * Removing the last name of a file, or a directory, moves it into the
 * trash instead: metadata only.  Its inode, xattrs, ACLs and extents stay
 * as they were (so its chunks keep their references, and its collection
 * its key); its directory entry is deleted as by a final removal, and a
 * row in the trash table (meta_trash.c) is its name in .trash/files (a
 * unique index: lookup) and says where it came from, when, and who
 * removed it.  So a removal into the trash costs about what a final one
 * does: one entry deleted, one row inserted (tests/bench/trash-bench.sh).
 *
 * `rm -rf` removes bottom up, one entry at a time: when a directory is
 * trashed, the items that were removed from it by the same uid just before
 * (each at most GROUP_GAP_NS before the next removal in that directory)
 * become parts of its tree (their rows marked in trash_parts), so the
 * directory's item is the whole removed tree and restoring it restores
 * everything, with the same inodes.  Which items those are, the vault
 * remembers in memory (v->trash.recent: per directory, its removals of
 * the last GROUP_GAP_NS), so an rmdir reads no list of the trash; a
 * directory emptied before a remount groups nothing (its items stay items
 * of their own, each restorable by its path).  The parts get their
 * entries back under the directory when it settles (vault_trash_settle:
 * before anything reads below it, restores or purges it; every tree at
 * close and open).
 *
 * Who sees what: an item is listed and found only for root and for users
 * who could have read it when it was removed: search permission on every
 * directory that led to it, as they were then (the row's "gate"), and
 * read permission on the item (whose attributes cannot change in the
 * trash).  Everything in the trash is read-only (EROFS) except `mv` out
 * (restore: the mover must be able to have removed the item, and to
 * create in the destination, in the same collection, else EXDEV) and
 * removal (purge, by someone who could have removed it).  Below an item
 * that is a removed directory, the ordinary checks apply to reads.
 *
 * Items older than the retention are purged at open and periodically; a
 * purge deletes for good through the ordinary path (nlink 0: the data
 * layer drops the extents, chunks are unlinked after the commit).  When the
 * store's disk is at its reserve (vault_space_tight), removals are final at
 * once and audited as purges, so a full disk can always be emptied.
 *
 * This file holds the removal, grouping, settling, purge, restore and
 * retention, and the gate rules.  The mount's view of .trash (its
 * virtual entries and listings, and rm and mv in .trash/files) is
 * vault_trash_view.c; the control-plane verbs are vault_trash_verbs.c;
 * vault_trash_int.h holds what the three share.
 *
 * Everything here runs under v->mu.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "grow.h"
#include "vault_int.h"
#include "vault_trash_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define GROUP_GAP_NS (60LL * 1000000000LL)
#define SWEEP_MAX_NS (3600LL * 1000000000LL)
#define GATE_DENY 0xff                /* a gate too deep to record: root and the remover only */

bool vault_trash_reserved(uint64_t parent, const char *name)
{
	return parent == VV_ROOT_INO && (strcmp(name, ".trash") == 0 || strcmp(name, ".snapshots") == 0);
}

/* Is n inside the trash (an item, or below a trashed directory)?  The
 * walk up from its parent ends at .trash/files (vault_node_up). */
bool vault_trash_in(struct vv_vault *v, struct node *n)
{
	struct vault_up w;

	if (n->ino == VV_ROOT_INO)
		return false;
	for (struct node *p = vault_up_first(v, &w, n->a.parent); p; p = vault_up_next(v, &w))
		;
	return w.end == VAULT_UP_TRASH;
}

/* --- the gate: permissions of the directories above an item ------------- */

/* Record the directories from the root down to d (inclusive): *gate,
 * *len point at d's copy, or at buf (cap bytes) without memory for one.
 * rm -rf removes many entries from one directory: d keeps the last gate
 * made for it while no directory's permissions or place changed (every
 * such change bumps perm_gen, as for vault_node_chain_ok).  Not the walk
 * up the tree (vault_up_*): it keeps every node it passes, so it holds 64
 * at most (a row's gate is bounded too); a longer chain, or one that does
 * not reach the root, records GATE_DENY: the item is visible to root and
 * its remover only (fail closed). */
static void gate_make(struct vv_vault *v, struct node *d, uint8_t *buf, size_t cap,
		      const uint8_t **gate, size_t *len)
{
	struct node *chain[64];
	size_t n = 0;
	struct vv_wbuf w;
	uint64_t cur = d->ino;

	if (d->gate && d->gate_gen == v->nodes.perm_gen && d->gate_len <= cap) {
		*gate = d->gate;
		*len = d->gate_len;
		return;
	}
	d->pins++;
	chain[n++] = d;
	while (cur != VV_ROOT_INO && n < 64) {
		struct node *p;
		cur = chain[n - 1]->a.parent;
		if (trash_virt(cur) || vault_node_get(v, cur, &p) < 0)
			break;
		chain[n++] = p;
		if (p->ino == VV_ROOT_INO)
			break;
	}
	vv_wbuf_init(&w, buf, cap);
	if (chain[n - 1]->ino != VV_ROOT_INO)
		w.err = VV_E2BIG;
	for (size_t i = n; i-- > 0 && !w.err;) {
		struct vv_perm p;
		vault_node_perm(v, chain[i], &p);
		vv_wbuf_put_u32(&w, p.mode);
		vv_wbuf_put_u32(&w, p.uid);
		vv_wbuf_put_u32(&w, p.gid);
		vv_wbuf_put_u32(&w, (uint32_t)p.acl_len);
		vv_wbuf_put_bytes(&w, p.acl, p.acl_len);
	}
	if (w.err) {
		buf[0] = GATE_DENY;
		*len = 1;
	} else {
		*len = w.len;
	}
	*gate = buf;
	for (size_t i = 0; i < n; i++)
		vault_node_put(v, chain[i]);
	/* Without memory for the copy, the next removal makes it again. */
	free(d->gate);
	d->gate = malloc(*len);
	if (d->gate) {
		memcpy(d->gate, buf, *len);
		d->gate_len = *len;
		d->gate_gen = v->nodes.perm_gen;
	}
}

/* Could id search every directory of the gate?  *parent: the last one
 * (the item's directory), for the deletion rule.  0 or VV_EACCES. */
static int gate_pass(const struct vv_ident *id, const struct vv_trash_row *row, struct vv_perm *parent)
{
	struct vv_rbuf b;
	bool any = false;

	vv_rbuf_init(&b, row->gate, row->gatelen);
	while (vv_rbuf_left(&b)) {
		struct vv_perm p;
		uint32_t al;
		const uint8_t *acl = NULL;
		if (vv_rbuf_get_u32(&b, &p.mode) < 0 || vv_rbuf_get_u32(&b, &p.uid) < 0 ||
		    vv_rbuf_get_u32(&b, &p.gid) < 0 || vv_rbuf_get_u32(&b, &al) < 0 ||
		    (al && vv_rbuf_get_ptr(&b, &acl, al) < 0))
			return VV_EACCES;              /* GATE_DENY or damage: fail closed */
		p.acl = acl;
		p.acl_len = al;
		if (vv_access_check(id, &p, VV_MAY_EXEC) < 0)
			return VV_EACCES;
		if (parent)
			*parent = p;
		any = true;
	}
	return any ? 0 : VV_EACCES;
}

/* Could c have read the item when it was removed?  Root sees all. */
bool vault_trash_visible(struct vv_vault *v, const struct vv_ident *id,
			 const struct vv_trash_row *row, struct node *n)
{
	struct vv_perm p;

	if (id->uid == 0)
		return true;
	if (gate_pass(id, row, NULL) < 0)
		return false;
	vault_node_perm(v, n, &p);
	return vv_access_check(id, &p, VV_MAY_READ) == 0;
}

bool vault_trash_item_visible(struct vv_vault *v, const struct vv_ident *id, struct node *top)
{
	struct vv_trash_row *row;
	bool yes;

	if (id->uid == 0)
		return true;
	if (!(row = malloc(sizeof(*row))))
		return false;
	yes = vv_meta_trash_get_ino(v->meta, top->ino, row) == 0 && vault_trash_visible(v, id, row, top);
	free(row);
	return yes;
}

/* Could id have removed the item (the rules of rm, as things were then)?
 * The remover could; so can root.  0, VV_EACCES or VV_EPERM. */
int vault_trash_may_remove(struct vv_vault *v, const struct vv_ident *id,
			   const struct vv_trash_row *row, struct node *n)
{
	struct vv_perm dir, p;
	int r;

	if (id->uid == 0 || id->uid == row->uid)
		return 0;
	if ((r = gate_pass(id, row, &dir)) < 0)
		return r;
	vault_node_perm(v, n, &p);
	return vv_access_may_delete(id, &dir, &p);
}

/* --- trashing ----------------------------------------------------------------- */

/* The i-th name to try in .trash/files (i from 1): name itself, then
 * FreeDesktop style "stem.2.ext", "stem.3.ext", ... */
static int cand_name(const char *name, unsigned i, char *out)
{
	const char *dot = strrchr(name, '.');
	size_t stem = dot && dot != name ? (size_t)(dot - name) : strlen(name);
	const char *ext = dot && dot != name ? dot : "";
	char num[32];
	size_t room;

	if (i == 1) {
		snprintf(out, VV_NAME_MAX + 1, "%s", name);
		return 0;
	}
	/* After a hundred tries, a number that is new anyway. */
	if (i < 100)
		snprintf(num, sizeof(num), ".%u", i);
	else
		snprintf(num, sizeof(num), ".%llu", (unsigned long long)vault_now() + i);
	if (strlen(ext) + strlen(num) >= VV_NAME_MAX)
		return VV_ENAMETOOLONG;
	room = VV_NAME_MAX - strlen(num) - strlen(ext);
	if (stem > room)
		stem = room;
	memcpy(out, name, stem);
	memcpy(out + stem, num, strlen(num));
	memcpy(out + stem + strlen(num), ext, strlen(ext) + 1);
	return 0;
}

/* A removal from a directory, remembered for the directory's own rmdir
 * (rm -rf's grouping, adopt): v->trash.recent, a small hash of lists by
 * directory, under v->mu.  Every trash row that leaves the trash
 * (restore, purge) is forgotten here; the others are parts only after
 * their directory's rmdir, which drops its list. */
struct vault_trash_rec {
	uint64_t id, ino, size;
	uint64_t hash;                        /* of the original name: two alike? */
	int64_t deleted;
	uint32_t uid, mode;
};

struct trash_recent {
	struct trash_recent *next;
	uint64_t dir;
	struct vault_trash_rec *a;
	uint32_t n;                           /* <= RECENT_MAX */
	size_t cap;
};

#define RECENT_MAX (1u << 20)                 /* records, all directories; more: not grouped */
#define NBUCKET (sizeof(((struct vault_trash *)0)->recent) / sizeof(struct trash_recent *))

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;  /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static struct trash_recent **recent_slot(struct vv_vault *v, uint64_t dir)
{
	struct trash_recent **pp = &v->trash.recent[(dir * 0x9E3779B97F4A7C15ULL) >> 58 & (NBUCKET - 1)];

	while (*pp && (*pp)->dir != dir)
		pp = &(*pp)->next;
	return pp;
}

static void recent_drop(struct vv_vault *v, struct trash_recent **pp)
{
	struct trash_recent *l = *pp;

	*pp = l->next;
	v->trash.nrecent -= l->n;
	free(l->a);
	free(l);
}

/* Remember the item just made from dir (no memory: it is not grouped). */
static void recent_push(struct vv_vault *v, uint64_t dir, const struct vault_trash_rec *rec)
{
	struct trash_recent **pp = recent_slot(v, dir), *l = *pp;

	if (!l) {
		if (!(l = calloc(1, sizeof(*l))))
			return;
		l->dir = dir;
		*pp = l;
	}
	/* Older removals than GROUP_GAP_NS before this one can join no rmdir
	 * (adopt's chain stops at the first such gap). */
	if (l->n && rec->deleted - l->a[l->n - 1].deleted > GROUP_GAP_NS) {
		v->trash.nrecent -= l->n;
		l->n = 0;
	}
	if (v->trash.nrecent >= RECENT_MAX)
		return;
	if (VV_GROW(l->a, l->n, l->cap) < 0)
		return;
	l->a[l->n++] = *rec;
	v->trash.nrecent++;
}

/* Item id, removed from dir, left the trash (restore, purge): its record
 * must not make it a part. */
static void recent_forget(struct vv_vault *v, uint64_t dir, uint64_t id)
{
	struct trash_recent *l = *recent_slot(v, dir);

	for (uint32_t i = 0; l && i < l->n; i++)
		if (l->a[i].id == id)
			l->a[i].id = 0;
}

/* Lists whose newest removal is too old to join any rmdir. */
static void recent_trim(struct vv_vault *v, int64_t now)
{
	for (size_t b = 0; b < NBUCKET; b++) {
		struct trash_recent **pp = &v->trash.recent[b];
		while (*pp) {
			if ((*pp)->n == 0 || now - (*pp)->a[(*pp)->n - 1].deleted > GROUP_GAP_NS)
				recent_drop(v, pp);
			else
				pp = &(*pp)->next;
		}
	}
}

void vault_trash_close(struct vv_vault *v)
{
	for (size_t b = 0; b < NBUCKET; b++)
		while (v->trash.recent[b])
			recent_drop(v, &v->trash.recent[b]);
}

static int by_hash(const void *a, const void *b)
{
	uint64_t x = (*(const struct vault_trash_rec *const *)a)->hash;
	uint64_t y = (*(const struct vault_trash_rec *const *)b)->hash;

	return x < y ? -1 : x > y;
}

/* The rare case of adopt (two of the items were once named alike): one
 * item at a time, newest first, each given its entry under dir now; the
 * newest of a name joins, an older one stays an item of its own. */
static int adopt_each(struct vv_vault *v, struct node *dir, struct vault_trash_rec **sel, size_t n,
		      uint64_t *size)
{
	struct vv_trash_row *row = malloc(sizeof(*row));
	int r = 0;

	if (!row)
		return VV_ENOMEM;
	for (size_t i = 0; r == 0 && i < n; i++) {
		struct node *c;
		uint64_t existing;
		if (vv_meta_trash_get(v->meta, sel[i]->id, row) < 0 || row->oparent != dir->ino ||
		    vv_meta_dirent_get(v->meta, dir->ino, row->oname, &existing) == 0)
			continue;
		if ((r = vault_node_get(v, row->ino, &c)) < 0)
			break;
		if ((r = vv_meta_dirent_add(v->meta, dir->ino, row->oname, c->ino, c->a.mode)) == 0 &&
		    (r = vv_meta_trash_del(v->meta, row->id)) == 0) {
			c->a.parent = dir->ino;
			if (S_ISDIR(c->a.mode))
				dir->a.nlink++;
			if (c->lname) {
				free(c->lname);
				c->lname = NULL;
			}
			r = vault_node_save(v, c);
			*size += row->size;
			/* A directory with parts waiting is always an item or a
			 * part itself (vault_trash_settle follows only those):
			 * one that becomes an entry here settles now. */
			if (r == 0 && S_ISDIR(c->a.mode))
				r = vault_trash_settle(v, c);
		}
		vault_node_put(v, c);
	}
	free(row);
	return r;
}

/* Make the items just removed from the trashed directory dir (rm -rf)
 * part of its tree, so that restoring dir restores them.  Adds their
 * sizes to *size.  dir is empty (rmdir checked), so only the items' own
 * names can meet.  Which items: dir's node's list of its removals, newest
 * first, the remover's own, each at most GROUP_GAP_NS older than the one
 * before (a restore or purge since forgets an item's record:
 * recent_forget).  The usual case marks their rows in one statement;
 * their entries come back when dir settles.  So rm -rf pays no move per file. */
static int adopt(struct vv_vault *v, struct node *dir, uint32_t uid, int64_t now, uint64_t *size)
{
	struct trash_recent **pp = recent_slot(v, dir->ino), *l = *pp;
	struct vault_trash_rec **sel = NULL, **srt = NULL;
	uint64_t *ids, marked;
	int64_t prev = now;
	size_t n = 0;
	bool plain = true;
	int r = 0;

	if (!l)
		return 0;
	if (!(sel = malloc(l->n * sizeof(*sel) + 1)) || !(srt = malloc(l->n * sizeof(*srt) + 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (uint32_t i = l->n; i-- > 0;) {
		struct vault_trash_rec *k = &l->a[i];
		if (k->id == 0)
			continue;                    /* restored or purged since */
		if (prev - k->deleted > GROUP_GAP_NS)
			break;                       /* older than the removal: stop */
		if (k->uid != uid)
			continue;
		prev = k->deleted;
		sel[n++] = k;
	}
	memcpy(srt, sel, n * sizeof(*srt));
	qsort(srt, n, sizeof(*srt), by_hash);
	for (size_t i = 1; i < n && plain; i++)
		plain = srt[i - 1]->hash != srt[i]->hash;
	if (!plain) {
		r = adopt_each(v, dir, sel, n, size);
		goto out;
	}
	if (!(ids = malloc(n * sizeof(*ids) + 1))) {
		r = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		ids[i] = sel[i]->id;
	r = vv_meta_trash_mark(v->meta, dir->ino, ids, n, &marked);
	free(ids);
	if (r < 0)
		goto out;
	if (marked != n) {
		/* The records and the table disagree: the transaction holds the
		 * marks already; refuse (EIO) rather than guess. */
		vv_log(VV_LOG_ERR, "trash: rmdir of inode %llu: %llu of %zu removed items grouped",
		       (unsigned long long)dir->ino, (unsigned long long)marked, n);
		r = VV_EIO;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		*size += sel[i]->size;
		/* Its subdirectories count in its nlink at once, as when they
		 * are entries (which settling makes them). */
		if (S_ISDIR(sel[i]->mode))
			dir->a.nlink++;
	}
out:
	free(sel);
	free(srt);
	pp = recent_slot(v, dir->ino);           /* dir is gone: its list too */
	if (*pp)
		recent_drop(v, pp);
	return r;
}

/* --- settling: the parts of a tree move under their directory ------------ */

struct inos {
	uint64_t *ino;
	size_t n, cap;
};

static int inos_add(struct inos *q, uint64_t ino)
{
	if (VV_GROW(q->ino, q->n, q->cap) < 0)
		return VV_ENOMEM;
	q->ino[q->n++] = ino;
	return 0;
}

struct parts {
	struct vv_trash_kid *a;
	size_t n, cap;
};

static int parts_cb(void *ctx, const struct vv_trash_kid *k)
{
	struct parts *l = ctx;

	if (VV_GROW(l->a, l->n, l->cap) < 0)
		return VV_ENOMEM;
	l->a[l->n++] = *k;
	return 0;
}

/* The parts of dir's tree (adopt) get their entries under it by their
 * original names; their directories go on *sub (to settle in turn). */
static int settle_one(struct vv_vault *v, struct node *dir, struct inos *sub)
{
	struct parts l = { 0 };
	uint64_t made;
	int r;

	if ((r = vv_meta_trash_parts(v->meta, dir->ino, parts_cb, &l)) < 0 || l.n == 0)
		goto out;
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_trash_settle(v->meta, dir->ino, &made)) < 0)
		goto out;
	if (made != l.n) {
		vv_log(VV_LOG_ERR, "trash: inode %llu: %llu of its tree's %zu parts have their inode "
		       "(fsck names the rest)", (unsigned long long)dir->ino, (unsigned long long)made, l.n);
		r = VV_EIO;
		goto out;
	}
	for (size_t i = 0; i < l.n && r == 0; i++) {
		struct node *c = vault_node_find(v, l.a[i].ino);
		if (S_ISDIR(l.a[i].mode))
			r = inos_add(sub, l.a[i].ino);   /* counted in dir's nlink by adopt */
		if (c) {
			c->a.parent = dir->ino;
			free(c->lname);
			c->lname = NULL;
		}
	}
	/* The tree's shape changed: what was decided below it may differ. */
	v->nodes.perm_gen++;
	/* dir got entries the kernel never saw made: a listing it kept
	 * (FOPEN_CACHE_DIR, filled through a handle opened before the
	 * removal) must go. */
	if (v->inval)
		v->inval(v->inval_ctx, dir->ino, NULL);
out:
	free(l.a);
	return r;
}

int vault_trash_settle(struct vv_vault *v, struct node *d)
{
	struct inos q = { 0 };
	size_t done = 0;
	int r;

	if (!v->trash.ready || (v->flags & VV_VAULT_READONLY) || !S_ISDIR(d->a.mode))
		return 0;
	if ((r = inos_add(&q, d->ino)) < 0)
		return r;
	while (r == 0 && done < q.n) {
		struct node *n;
		if ((r = vault_node_get(v, q.ino[done++], &n)) < 0)
			break;
		r = settle_one(v, n, &q);
		vault_node_put(v, n);
	}
	free(q.ino);
	return r;
}

void vault_trash_settle_all(struct vv_vault *v)
{
	uint64_t dirs[256];
	size_t n, total = 0;
	int r = 0;

	if (!v->trash.ready || (v->flags & VV_VAULT_READONLY))
		return;
	while (r == 0 && (r = vv_meta_trash_pending(v->meta, dirs, 256, &n)) == 0 && n > 0) {
		for (size_t i = 0; r == 0 && i < n; i++) {
			struct inos sub = { 0 };
			struct node *d;
			if ((r = vault_node_get(v, dirs[i], &d)) < 0)
				break;
			r = settle_one(v, d, &sub);       /* its subdirectories come up too */
			vault_node_put(v, d);
			free(sub.ino);
		}
		total += n;
	}
	if (r < 0)
		vv_log(VV_LOG_WARN, "trash: cannot settle removed trees (%s); the next open tries again",
		       vv_strerror(r));
	else if (total)
		vv_log(VV_LOG_DEBUG, "trash: settled the parts of %zu removed director%s", total,
		       total == 1 ? "y" : "ies");
}

bool vault_trash_wanted(struct vv_vault *v, struct node *n)
{
	if (v->trash.keep_ns <= 0 || !v->trash.ready)
		return false;
	if (!S_ISDIR(n->a.mode) && n->a.nlink > 1)
		return false;                        /* not the last name */
	/* A full disk: delete at once so that the space comes back. */
	return !vault_space_tight(v);
}

static int move(struct vv_vault *v, const struct vv_ctx *c, struct node *d, const char *name,
		struct node *n, int64_t now, char *tname)
{
	struct vv_trash_new t = { .ino = n->ino, .oparent = d->ino, .oname = name, .deleted = now,
				  .uid = c->id.uid, .coll = n->a.coll, .name = tname };
	struct vault_trash_rec rec;
	uint8_t gbuf[sizeof(((struct vv_trash_row *)0)->gate)];
	char path[sizeof(((struct vv_trash_row *)0)->path)];
	unsigned i = 1;
	int r;

	t.size = S_ISREG(n->a.mode) ? n->a.size : 0;
	if (d->ino == VV_ROOT_INO)
		path[0] = '\0';
	else if ((r = vault_node_path(v, d->ino, path, sizeof(path))) < 0)
		return r;
	{
		size_t dl = strlen(path), nl = strlen(name);
		if (dl + 1 + nl >= sizeof(path))
			return VV_ENAMETOOLONG;
		path[dl] = '/';
		memcpy(path + dl + 1, name, nl + 1);
	}
	t.path = path;
	gate_make(v, d, gbuf, sizeof(gbuf), &t.gate, &t.gatelen);
	if ((r = vault_txn(v)) < 0 || (r = vv_meta_dirent_del(v->meta, d->ino, name)) < 0)
		return r;
	if (S_ISDIR(n->a.mode)) {
		if ((r = adopt(v, n, c->id.uid, now, &t.size)) < 0)
			return r;
		if (d->a.nlink > 2)
			d->a.nlink--;
	}
	/* The row is the name in .trash/files: the first free one of name,
	 * name.2, ... (the unique index says which are taken). */
	do {
		if ((r = cand_name(name, i, tname)) < 0)
			return r;
		r = vv_meta_trash_add(v->meta, &t, &rec.id);
	} while (r == VV_EEXIST && ++i < 1000);
	if (r < 0)
		return r;
	if (n->lname) {
		free(n->lname);
		n->lname = NULL;
	}
	n->a.parent = VV_TRASH_FILES_INO;
	n->a.ctime = now;
	d->a.mtime = d->a.ctime = now;
	if ((r = vault_node_save(v, d)) < 0 || (r = vault_node_save(v, n)) < 0)
		return r;
	rec.ino = n->ino;
	rec.size = t.size;
	rec.hash = name_hash(name);
	rec.deleted = now;
	rec.uid = c->id.uid;
	rec.mode = n->a.mode;
	recent_push(v, d->ino, &rec);
	/* Its ancestry changed: what was cached below it may differ. */
	if (S_ISDIR(n->a.mode))
		v->nodes.perm_gen++;
	return 0;
}

int vault_trash_move(struct vv_vault *v, const struct vv_ctx *c, struct node *d, const char *name,
	       struct node *n, int64_t now, char *tname)
{
	int r = move(v, c, d, name, n, now, tname);

	if (r < 0)
		tname[0] = '\0';                /* no name in the trash */
	return r;
}

/* --- purging ------------------------------------------------------------------ */

struct kids {
	struct kid { uint64_t ino; char name[VV_NAME_MAX + 1]; } *k;
	size_t n, cap;
};

static int kid_cb(void *ctx, uint64_t cookie, const char *name, uint64_t ino, uint32_t mode)
{
	struct kids *l = ctx;

	(void)cookie;
	(void)mode;
	if (VV_GROW(l->k, l->n, l->cap) < 0)
		return VV_ENOMEM;
	l->k[l->n].ino = ino;
	snprintf(l->k[l->n].name, sizeof(l->k[0].name), "%s", name);
	l->n++;
	return 0;
}

/* Delete the tree at top for good (its own entry is already gone): every
 * inode below loses its entries and links and is freed, through the
 * node events, when nothing uses it any more (an open file lives on until
 * its last close, as after unlink).  *files counts the tree's inodes. */
static int free_tree(struct vv_vault *v, uint64_t top, int64_t now, uint64_t *files)
{
	struct kids l = { 0 };
	size_t done = 0;
	int r;

	/* Breadth first: l lists every inode of the tree, parents first. */
	if ((r = kid_cb(&l, 0, "", top, 0)) < 0)
		return r;
	while (r == 0 && done < l.n) {
		uint64_t ino = l.k[done++].ino;
		struct node *n;
		if ((r = vault_node_get(v, ino, &n)) < 0)
			break;
		if (S_ISDIR(n->a.mode)) {
			size_t first = l.n;
			r = vv_meta_dirent_list(v->meta, ino, 0, 0x7fffffff, kid_cb, &l);
			for (size_t i = first; r == 0 && i < l.n; i++)
				r = vv_meta_dirent_del(v->meta, ino, l.k[i].name);
			n->a.nlink = 0;
		} else if (n->a.nlink > 0) {
			n->a.nlink--;
		}
		n->a.ctime = now;
		/* Purged is gone now, also for a handle opened before (an
		 * unlink would let it read on): reads and scans fail EIO and
		 * the offload drops its copy at once. */
		if (n->a.nlink == 0 && n->nopen > 0)
			vault_node_revoke(v, n);
		if (r == 0) {
			if (n->lname) {
				free(n->lname);
				n->lname = NULL;
			}
			r = vault_node_save(v, n);
			(*files)++;
		}
		vault_node_put(v, n);                   /* freed now unless in use */
	}
	free(l.k);
	return r;
}

/* Purge one item (checks done): entry, row, tree.  Audited by the caller. */
int vault_trash_purge_item(struct vv_vault *v, const struct vv_trash_row *row)
{
	uint64_t files = 0;
	struct node *n;
	bool coll_dir = false;
	int r;

	if ((r = vault_txn(v)) < 0)
		return r;
	if ((r = vault_node_get(v, row->ino, &n)) == 0) {
		coll_dir = S_ISDIR(n->a.mode) && row->oparent == VV_ROOT_INO;
		r = vault_trash_settle(v, n);        /* free_tree walks entries */
		vault_node_put(v, n);
		if (r < 0)
			return r;
	}
	recent_forget(v, row->oparent, row->id);
	if ((r = vv_meta_trash_del(v->meta, row->id)) < 0 ||
	    (r = free_tree(v, row->ino, vault_now(), &files)) < 0)
		return r;
	/* The collection's key goes with its last user (crypto-shredding
	 * waits for the purge, not the rmdir): the rows free_tree deleted
	 * released it already (vault_node_maybe_free); a directory whose row
	 * the kernel still holds needs no key.  An error keeps the key. */
	if (coll_dir)
		vault_coll_release(v, row->coll, row->ino);
	return 0;
}

void vault_trash_audit_item(struct vv_vault *v, const struct vv_ctx *c, const char *op,
			    const struct vv_trash_row *row, int r, const char *why)
{
	char detail[4200];

	snprintf(detail, sizeof(detail), "%s%s%s", row->path, why ? " " : "", why ? why : "");
	vault_audit(v, c, op, row->ino, VV_TRASH_FILES_INO, row->name, r, detail);
}

/* --- restoring ---------------------------------------------------------------- */

/* May an item of collection coll, a collection itself or not, go into
 * directory nd?  The rule of rename (vault_ns.c same_coll_ok). */
static bool coll_ok(struct vv_vault *v, struct node *n, bool was_coll, struct node *nd)
{
	if (nd->ino == VV_ROOT_INO)
		return S_ISDIR(n->a.mode) ? was_coll : n->a.coll == v->root_coll;
	return !was_coll && n->a.coll == nd->a.coll;
}

/* Move the item (checks on the item done) to newparent/newname. */
int vault_trash_restore_to(struct vv_vault *v, const struct vv_ctx *c, const struct vv_trash_row *row,
			   struct node *n, uint64_t newparent, const char *newname)
{
	struct node *nd = NULL;
	uint64_t existing;
	int64_t now = vault_now();
	int r;

	if (trash_virt(newparent)) {
		r = VV_EROFS;
		goto out;
	}
	if ((r = vault_node_get(v, newparent, &nd)) < 0)
		goto out;
	if (!S_ISDIR(nd->a.mode)) {
		r = VV_ENOTDIR;
		goto out;
	}
	if (nd->a.nlink == 0 || vault_trash_in(v, nd)) {
		r = nd->a.nlink == 0 ? VV_ENOENT : VV_EROFS;
		goto out;
	}
	if ((r = vault_node_check(v, c, nd, VV_MAY_WRITE | VV_MAY_EXEC)) < 0)
		goto out;
	if (strlen(newname) > VV_NAME_MAX || !*newname || strchr(newname, '/')) {
		r = VV_EINVAL;
		goto out;
	}
	if (vault_trash_reserved(newparent, newname)) {
		r = VV_EEXIST;
		goto out;
	}
	if (!coll_ok(v, n, row->oparent == VV_ROOT_INO && S_ISDIR(n->a.mode), nd)) {
		r = VV_EXDEV;
		goto out;
	}
	r = vv_meta_dirent_get(v->meta, newparent, newname, &existing);
	if (r == 0) {
		r = VV_EEXIST;                       /* a restore never replaces */
		goto out;
	}
	if (r != VV_ENOENT)
		goto out;
	if (S_ISDIR(n->a.mode) && nd->a.nlink >= VV_MAX_LINKS) {
		r = VV_EMLINK;
		goto out;
	}
	/* The whole tree goes back as real entries (adopt left its parts
	 * in .trash/files). */
	if ((r = vault_trash_settle(v, n)) < 0 || (r = vault_txn(v)) < 0 ||
	    (r = vv_meta_dirent_add(v->meta, newparent, newname, n->ino, n->a.mode)) < 0 ||
	    (r = vv_meta_trash_del(v->meta, row->id)) < 0)
		goto out;
	recent_forget(v, row->oparent, row->id);
	n->a.parent = newparent;
	n->a.ctime = now;
	if (S_ISDIR(n->a.mode))
		nd->a.nlink++;
	nd->a.mtime = nd->a.ctime = now;
	if ((r = vault_node_save(v, n)) < 0 || (r = vault_node_save(v, nd)) < 0)
		goto out;
	vault_node_named(n, newparent, newname, 0);
	/* A restore by the CLI does not pass through the kernel, which may
	 * hold a negative entry for the name (t6016) and newparent's listing
	 * (FOPEN_CACHE_DIR: an entry invalidation resets it only when the
	 * name is in the dcache): drop both. */
	if (v->inval) {
		v->inval(v->inval_ctx, newparent, newname);
		v->inval(v->inval_ctx, newparent, NULL);
	}
	if (S_ISDIR(n->a.mode)) {
		v->nodes.perm_gen++;
		vault_node_invalidate_all(v);
	}
out:
	vault_node_put(v, nd);
	return r;
}

/* --- retention ------------------------------------------------------------------ */

struct ids {
	uint64_t *id;
	size_t n, cap;
};

static int id_cb(void *ctx, const struct vv_trash_row *row)
{
	struct ids *l = ctx;

	if (VV_GROW(l->id, l->n, l->cap) < 0)
		return VV_ENOMEM;
	l->id[l->n++] = row->id;
	return 0;
}

/* Purge every item removed before `before` (the daemon's own sweep). */
static int sweep(struct vv_vault *v, int64_t before)
{
	struct ids l = { 0 };
	struct vv_trash_row *row = malloc(sizeof(*row));
	size_t done = 0;
	int r;

	if (!row)
		return VV_ENOMEM;
	r = vv_meta_trash_older(v->meta, before, id_cb, &l);
	for (size_t i = 0; r >= 0 && i < l.n; i++) {
		if (vv_meta_trash_get(v->meta, l.id[i], row) < 0)
			continue;
		r = vault_trash_purge_item(v, row);
		vault_trash_audit_item(v, NULL, "purge", row, r, "(expired)");
		if (r == 0)
			done++;
	}
	if (done)
		vv_log(VV_LOG_INFO, "trash: purged %zu expired item(s)", done);
	free(l.id);
	free(row);
	return r < 0 ? r : 0;
}

int vault_trash_open(struct vv_vault *v, int64_t keep_ns)
{
	int r = 0;

	pthread_mutex_lock(&v->mu);
	v->trash.keep_ns = keep_ns;
	v->trash.opened = vault_now();
	v->trash.ready = vv_meta_trash_ready(v->meta);
	v->trash.swept = v->trash.opened;
	/* Trees a crash left unsettled (vault_trash_settle_all at close). */
	vault_trash_settle_all(v);
	if (v->trash.ready && keep_ns > 0 && !(v->flags & VV_VAULT_READONLY))
		r = sweep(v, v->trash.opened - keep_ns);
	pthread_mutex_unlock(&v->mu);
	/* Never fatal: a mount must work to free space by hand. */
	if (r < 0)
		vv_log(VV_LOG_WARN, "trash: cannot purge expired items at open: %s (retried "
		       "while mounted)", vv_strerror(r));
	return 0;
}

void vault_trash_tick(struct vv_vault *v, int64_t now)
{
	int64_t every = v->trash.keep_ns / 4;

	if (v->trash.nrecent && now - v->trash.trimmed > 1000000000LL) {
		recent_trim(v, now);
		v->trash.trimmed = now;
	}
	if (every > SWEEP_MAX_NS)
		every = SWEEP_MAX_NS;
	if (every < 1000000000LL)
		every = 1000000000LL;
	if (v->trash.keep_ns <= 0 || !v->trash.ready || (v->flags & VV_VAULT_READONLY) ||
	    now - v->trash.swept < every)
		return;
	v->trash.swept = now;
	if (sweep(v, now - v->trash.keep_ns) < 0)
		vv_log(VV_LOG_WARN, "trash: the periodic purge failed; it is retried");
}

/* --- sizes, for statfs, info and stats -------------------------------------- */

int vv_vault_trash_stats(struct vv_vault *v, uint64_t *items, uint64_t *bytes)
{
	int r = 0;

	*items = *bytes = 0;
	pthread_mutex_lock(&v->mu);
	if (v->trash.ready)
		r = vv_meta_trash_stats(v->meta, items, bytes);
	pthread_mutex_unlock(&v->mu);
	return r;
}

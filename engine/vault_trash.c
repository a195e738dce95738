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

 * The view, in the FreeDesktop shape, uses virtual inode numbers in
 * [2^60, 2^60 + 2^32) (the store's counter never gets there):
 *   /.trash            VV_TRASH_INO         r-x, not listed by the root's readdir
 *   /.trash/files      VV_TRASH_FILES_INO   the items (their own inodes)
 *   /.trash/info       VV_TRASH_INFO_INO    NAME.trashinfo per item
 *   NAME.trashinfo     VV_TRASH_INFO_FIRST + item id
 *
 * Who sees what: an item is listed and found only for root and for users
 * who could have read it when it was removed: search permission on every
 * directory that led to it, as they were then (the row's "gate"), and
 * read permission on the item (whose attributes cannot change in the
 * trash).  Everything in the trash is read-only (EROFS) except `mv` out
 * (restore: the mover must be able to have removed the item, and to
 * create in the destination, in the same collection, else EXDEV) and
 * removal (purge, by someone who could have removed it).  Inside a
 * restored... removed tree the ordinary checks apply to reads.
 *
 * Items older than the retention are purged at open and periodically; a
 * purge deletes for good through the ordinary path (nlink 0: the data
 * layer drops the extents, chunks are unlinked after the commit).  When the
 * store's disk is at its reserve (vault_space_ok), removals are final at
 * once and audited as purges, so a full disk can always be emptied.
 *
 * Everything here runs under v->mu.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "admin_int.h"
#include "buf.h"
#include "grow.h"
#include "vault_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

#define GROUP_GAP_NS (60LL * 1000000000LL)
#define INFO_SUFFIX ".trashinfo"
#define SWEEP_MAX_NS (3600LL * 1000000000LL)
#define GATE_DENY 0xff                /* a gate too deep to record: root and the remover only */
/* item_by_name: the item exists but the caller may not see it.  Answered
 * as VV_ENOENT (hidden_enoent), audited as a refusal. */
#define VV_EHIDDEN (-100000)

static int hidden_enoent(int r)
{
	return r == VV_EHIDDEN ? VV_ENOENT : r;
}

bool vault_trash_reserved(uint64_t parent, const char *name)
{
	return parent == VV_ROOT_INO && (strcmp(name, ".trash") == 0 || strcmp(name, ".snapshots") == 0);
}

/* Is n inside the trash (an item, or below a trashed directory)? */
bool vault_trash_in(struct vv_vault *v, struct node *n)
{
	uint64_t cur = n->a.parent;
	int depth = 0;

	if (n->ino == VV_ROOT_INO)
		return false;
	while (cur != VV_ROOT_INO) {
		struct node *p;
		uint64_t next;
		if (cur == VV_TRASH_FILES_INO)
			return true;
		if (trash_virt(cur) || ++depth > 4096 || vault_node_get(v, cur, &p) < 0)
			return false;
		next = p->a.parent;
		vault_node_put(v, p);
		if (next == cur)
			return false;
		cur = next;
	}
	return false;
}

/* --- the gate: permissions of the directories above an item ------------- */

/* Record the directories from the root down to d (inclusive): *gate,
 * *len point at d's copy, or at buf (cap bytes) without memory for one.
 * rm -rf removes many entries from one directory: d keeps the last gate
 * made for it while no directory's permissions or place changed (every
 * such change bumps perm_gen, as for vault_node_chain_ok). */
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
static bool visible(struct vv_vault *v, const struct vv_ident *id, const struct vv_trash_row *row,
		    struct node *n)
{
	struct vv_perm p;

	if (id->uid == 0)
		return true;
	if (gate_pass(id, row, NULL) < 0)
		return false;
	vault_node_perm(v, n, &p);
	return vv_access_check(id, &p, VV_MAY_READ) == 0;
}

/* Could id have removed the item (the rules of rm, as things were then)?
 * The remover could; so can root.  0, VV_EACCES or VV_EPERM. */
static int may_remove(struct vv_vault *v, const struct vv_ident *id, const struct vv_trash_row *row,
		      struct node *n)
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

/* --- the virtual entries --------------------------------------------------- */

static void ts(int64_t ns, struct timespec *t)
{
	t->tv_sec = ns / 1000000000LL;
	t->tv_nsec = ns % 1000000000LL;
}

static void virt_dir_attr(struct vv_vault *v, uint64_t ino, struct vv_attr *out)
{
	memset(out, 0, sizeof(*out));
	out->ino = ino;
	out->gen = 1;
	out->mode = S_IFDIR | 0555;
	out->nlink = 2;
	out->blocks = 0;
	ts(v->trash.opened, &out->atime);
	out->mtime = out->ctime = out->atime;
	out->cacheable = false;
}

/* The .trashinfo text (FreeDesktop: Path percent-encoded, local time). */
static size_t info_text(const struct vv_trash_row *row, char *buf, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	time_t t = (time_t)(row->deleted / 1000000000LL);
	struct tm tm;
	char date[32];

	n += (size_t)snprintf(buf, cap, "[Trash Info]\nPath=");
	for (const unsigned char *p = (const unsigned char *)row->path; *p && n + 4 < cap; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("/-._~", *p)) {
			buf[n++] = (char)*p;
		} else {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		}
	}
	localtime_r(&t, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	if (n < cap)
		n += (size_t)snprintf(buf + n, cap - n, "\nDeletionDate=%s\n", date);
	return n < cap ? n : cap - 1;
}

static void info_attr(struct vv_vault *v, const struct vv_trash_row *row, struct node *n,
		      struct vv_attr *out)
{
	char buf[4096 * 3 + 128];

	(void)v;
	memset(out, 0, sizeof(*out));
	out->ino = VV_TRASH_INFO_FIRST + row->id;
	out->gen = 1;
	out->mode = S_IFREG | 0444;
	out->nlink = 1;
	out->uid = n->a.uid;
	out->gid = n->a.gid;
	out->size = info_text(row, buf, sizeof(buf));
	out->blocks = (out->size + 511) / 512;
	ts(row->deleted, &out->mtime);
	out->atime = out->ctime = out->mtime;
	out->cacheable = false;
}

/* *out: the node of the item in row, pinned, if id may see it; `hidden`
 * (and *out NULL) if not.  r (< 0) as it is: the row's lookup failed. */
static int item_pin(struct vv_vault *v, const struct vv_ident *id, int r,
		    const struct vv_trash_row *row, struct node **out, int hidden)
{
	*out = NULL;
	if (r < 0 || (r = vault_node_get(v, row->ino, out)) < 0)
		return r;
	if (!visible(v, id, row, *out)) {
		vault_node_put(v, *out);
		*out = NULL;
		return hidden;
	}
	return 0;
}

/* The item called name in .trash/files, if id may see it: *row filled and
 * *out its node, pinned.  VV_EHIDDEN for a hidden one. */
static int item_by_name(struct vv_vault *v, const struct vv_ident *id, const char *name,
			struct vv_trash_row *row, struct node **out)
{
	return item_pin(v, id, vv_meta_trash_get_name(v->meta, name, row), row, out, VV_EHIDDEN);
}

/* The item with id tid, likewise; VV_ENOENT for a hidden one too. */
static int item_by_id(struct vv_vault *v, const struct vv_ident *id, uint64_t tid,
		      struct vv_trash_row *row, struct node **out)
{
	return item_pin(v, id, vv_meta_trash_get(v->meta, tid, row), row, out, VV_ENOENT);
}

int vault_trash_lookup(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 struct vv_attr *out)
{
	struct vv_trash_row *row = NULL;
	struct node *n = NULL;
	uint64_t ino = 0;
	int r = 0;

	memset(out, 0, sizeof(*out));
	if (strcmp(name, ".") == 0) {
		virt_dir_attr(v, parent, out);
		return 0;
	}
	if (strcmp(name, "..") == 0) {
		if (parent == VV_TRASH_INO) {
			if ((r = vault_node_get(v, VV_ROOT_INO, &n)) == 0) {
				n->nlookup++;
				vault_node_attr(v, n, false, out);
				vault_node_put(v, n);
			}
			return r;
		}
		virt_dir_attr(v, VV_TRASH_INO, out);
		return 0;
	}
	if (parent == VV_ROOT_INO || parent == VV_TRASH_INO) {
		if (parent == VV_ROOT_INO && strcmp(name, ".trash") == 0)
			ino = VV_TRASH_INO;
		else if (parent == VV_TRASH_INO && strcmp(name, "files") == 0)
			ino = VV_TRASH_FILES_INO;
		else if (parent == VV_TRASH_INO && strcmp(name, "info") == 0)
			ino = VV_TRASH_INFO_INO;
		if (!ino)
			return VV_ENOENT;
		virt_dir_attr(v, ino, out);
		return 0;
	}
	if (!(row = malloc(sizeof(*row))))
		return VV_ENOMEM;
	if (parent == VV_TRASH_FILES_INO) {
		if ((r = item_by_name(v, &c->id, name, row, &n)) < 0)
			goto out;
		n->nlookup++;
		vault_node_named(n, parent, name, c->id.pid);
		vault_node_attr(v, n, false, out);
		ino = n->ino;
	} else if (parent == VV_TRASH_INFO_INO) {
		size_t nl = strlen(name), sl = strlen(INFO_SUFFIX);
		char stem[VV_NAME_MAX + 1];
		if (nl <= sl || strcmp(name + nl - sl, INFO_SUFFIX) != 0) {
			r = VV_ENOENT;
			goto out;
		}
		memcpy(stem, name, nl - sl);
		stem[nl - sl] = '\0';
		if ((r = item_by_name(v, &c->id, stem, row, &n)) < 0)
			goto out;
		info_attr(v, row, n, out);
		ino = out->ino;
	} else {
		r = VV_ENOENT;
	}
out:
	/* A hidden item is an ENOENT like a missing one, to the caller; the
	 * log records it as the refusal it is. */
	if (r == VV_EHIDDEN)
		vault_audit(v, c, "lookup", 0, parent, name, VV_ENOENT, "hidden: a removed item this user could not read");
	else if (r != VV_ENOENT)
		vault_audit(v, c, "lookup", ino, parent, name, r, NULL);
	vault_node_put(v, n);
	free(row);
	return hidden_enoent(r);
}

int vault_trash_getattr(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, struct vv_attr *out)
{
	struct vv_trash_row *row;
	struct node *n = NULL;
	int r;

	if (ino < VV_TRASH_INFO_FIRST) {
		if (!trash_virt_path(ino))
			return VV_ENOENT;
		virt_dir_attr(v, ino, out);
		return 0;
	}
	if (!(row = malloc(sizeof(*row))))
		return VV_ENOMEM;
	if ((r = item_by_id(v, &c->id, ino - VV_TRASH_INFO_FIRST, row, &n)) == 0)
		info_attr(v, row, n, out);
	vault_node_put(v, n);
	free(row);
	return r;
}

int vault_trash_open_info(struct vv_vault *v, const struct vv_ctx *c, uint64_t ino, int flags,
		    struct vv_file **fh)
{
	struct vv_trash_row *row = NULL;
	struct vv_file *f = NULL;
	struct node *n = NULL;
	char *buf = NULL;
	int r;

	*fh = NULL;
	if (ino < VV_TRASH_INFO_FIRST) {
		r = trash_virt_path(ino) ? VV_EISDIR : VV_ENOENT;
		goto out;
	}
	if ((flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | VV_OPEN_EXEC))) {
		r = VV_EROFS;
		goto out;
	}
	if (!(row = malloc(sizeof(*row))) || !(buf = malloc(4096 * 3 + 128)) ||
	    !(f = calloc(1, sizeof(*f)))) {
		r = VV_ENOMEM;
		goto out;
	}
	if ((r = item_by_id(v, &c->id, ino - VV_TRASH_INFO_FIRST, row, &n)) < 0)
		goto out;
	f->virt_len = info_text(row, buf, 4096 * 3 + 128);
	f->virt = buf;
	buf = NULL;
	f->flags = flags;
	f->who = *c;
	*fh = f;
	f = NULL;
out:
	if (n) {
		char nm[VV_NAME_MAX + sizeof(INFO_SUFFIX)];
		snprintf(nm, sizeof(nm), "%s%s", row->name, INFO_SUFFIX);
		vault_audit(v, c, "open", ino, VV_TRASH_INFO_INO, nm, r, "r");
	} else {
		vault_audit(v, c, "open", ino, 0, NULL, r, NULL);
	}
	vault_node_put(v, n);
	free(row);
	free(buf);
	free(f);
	return r;
}

/* --- listing the virtual directories ---------------------------------------- */

struct tl {
	struct vv_vault *v;
	struct vv_dir *dh;
	bool plus, full;
	vv_fill_fn fill;
	void *ctx;
	int err;
	uint64_t last;
};

static int tl_one(void *ctx, const struct vv_trash_row *row)
{
	struct tl *s = ctx;
	struct node *n = NULL;
	struct vv_attr a;
	char name[VV_NAME_MAX + sizeof(INFO_SUFFIX)];
	struct vv_dirent e = { .name = name, .next = row->id + 2 };
	bool files = s->dh->virt == VV_TRASH_FILES_INO;
	int r;

	s->last = row->id;
	if (vault_node_get(s->v, row->ino, &n) < 0)
		return 0;                        /* fsck names it; skip */
	if (!visible(s->v, &s->dh->id, row, n)) {
		vault_node_put(s->v, n);
		return 0;
	}
	snprintf(name, sizeof(name), "%s%s", row->name, files ? "" : INFO_SUFFIX);
	if (files) {
		e.ino = n->ino;
		e.mode = n->a.mode;
		vault_node_attr(s->v, n, false, &a);
	} else {
		info_attr(s->v, row, n, &a);
		e.ino = a.ino;
		e.mode = a.mode;
	}
	/* Like rd_plus: FIFOs and sockets get no attributes. */
	if (files && (S_ISFIFO(n->a.mode) || S_ISSOCK(n->a.mode)))
		r = s->fill(s->ctx, &e, NULL);
	else
		r = s->fill(s->ctx, &e, s->plus ? &a : NULL);
	if (r == 0 && s->plus && files && !S_ISFIFO(n->a.mode) && !S_ISSOCK(n->a.mode)) {
		n->nlookup++;
		vault_node_named(n, VV_TRASH_FILES_INO, row->name, 0);
	}
	vault_node_put(s->v, n);
	if (r < 0)
		s->err = r;
	if (r != 0) {
		s->full = true;
		return 1;
	}
	return 0;
}

int vault_trash_readdir(struct vv_vault *v, struct vv_dir *dh, uint64_t off, bool plus,
		  vv_fill_fn fill, void *ctx)
{
	struct tl s = { .v = v, .dh = dh, .plus = plus, .fill = fill, .ctx = ctx };
	struct vv_attr a;
	int r = 0;

	if (off == 0) {
		struct vv_dirent e = { .ino = dh->virt, .mode = S_IFDIR, .name = ".", .next = 1 };
		virt_dir_attr(v, dh->virt, &a);
		if (fill(ctx, &e, plus ? &a : NULL) != 0)
			return 0;
		off = 1;
	}
	if (off == 1) {
		uint64_t up = dh->virt == VV_TRASH_INO ? VV_ROOT_INO : VV_TRASH_INO;
		struct vv_dirent e = { .ino = up, .mode = S_IFDIR, .name = "..", .next = 2 };
		memset(&a, 0, sizeof(a));
		a.ino = up;
		a.mode = S_IFDIR;
		if (fill(ctx, &e, plus ? &a : NULL) != 0)
			return 0;
		off = 2;
	}
	if (dh->virt == VV_TRASH_INO) {
		static const char *const names[] = { "files", "info" };
		for (; off < 4; off++) {
			uint64_t ino = off == 2 ? VV_TRASH_FILES_INO : VV_TRASH_INFO_INO;
			struct vv_dirent e = { .ino = ino, .mode = S_IFDIR, .name = names[off - 2],
					       .next = off + 1 };
			virt_dir_attr(v, ino, &a);
			if (fill(ctx, &e, plus ? &a : NULL) != 0)
				return 0;
		}
		return 0;
	}
	if (!v->trash.ready)
		return 0;
	while (!s.full && !s.err) {
		uint64_t before = s.last;
		r = vv_meta_trash_list(v->meta, off - 2, 256, tl_one, &s);
		if (r < 0)
			return r;
		if (s.last == before || s.full)
			break;
		off = s.last + 2;
	}
	return s.err < 0 ? s.err : 0;
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
 * its last close, as after unlink).  *bytes: file bytes freed. */
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
static int purge_item(struct vv_vault *v, const struct vv_trash_row *row)
{
	uint64_t files = 0;
	struct node *n;
	bool coll_dir = false, used = true;
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
	/* The collection's key goes with its last inode (crypto-shredding
	 * waits for the purge, not the rmdir); one still open keeps it until
	 * the mount-time collection GC. */
	if (coll_dir && row->coll != v->root_coll &&
	    vv_meta_coll_used(v->meta, row->coll, &used) == 0 && !used)
		r = vault_coll_drop(v, row->coll);
	return r;
}

static void audit_item(struct vv_vault *v, const struct vv_ctx *c, const char *op,
		       const struct vv_trash_row *row, int r, const char *why)
{
	char detail[4200];

	snprintf(detail, sizeof(detail), "%s%s%s", row->path, why ? " " : "", why ? why : "");
	vault_audit(v, c, op, row->ino, VV_TRASH_FILES_INO, row->name, r, detail);
}

/* rm / rmdir of .trash/files/NAME: purge now, if c could have removed it. */
int vault_trash_unlink(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 bool dir)
{
	struct vv_trash_row *row = NULL;
	struct node *n = NULL;
	int r;

	if (parent != VV_TRASH_FILES_INO) {
		r = VV_EROFS;
		vault_audit(v, c, dir ? "rmdir" : "unlink", 0, parent, name, r, NULL);
		return r;
	}
	if (!(row = malloc(sizeof(*row))))
		return VV_ENOMEM;
	if ((r = item_by_name(v, &c->id, name, row, &n)) < 0) {
		r = hidden_enoent(r);
		vault_audit(v, c, dir ? "rmdir" : "unlink", 0, parent, name, r, NULL);
		goto out;
	}
	if (dir != S_ISDIR(n->a.mode))
		r = dir ? VV_ENOTDIR : VV_EISDIR;
	else if ((r = may_remove(v, &c->id, row, n)) == 0)
		r = purge_item(v, row);
	audit_item(v, c, "purge", row, r, NULL);
out:
	vault_node_put(v, n);
	free(row);
	return r;
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
static int restore_to(struct vv_vault *v, const struct vv_ctx *c, const struct vv_trash_row *row,
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

/* mv .trash/files/NAME DIR/NEWNAME */
int vault_trash_rename(struct vv_vault *v, const struct vv_ctx *c, uint64_t parent, const char *name,
		 uint64_t newparent, const char *newname, unsigned flags)
{
	struct vv_trash_row *row = NULL;
	struct node *n = NULL;
	int r;

	if (parent != VV_TRASH_FILES_INO || (flags & VV_RENAME_EXCHANGE)) {
		r = parent != VV_TRASH_FILES_INO ? VV_EROFS : VV_EINVAL;
		vault_audit(v, c, "rename", 0, parent, name, r, newname);
		return r;
	}
	if (!(row = malloc(sizeof(*row))))
		return VV_ENOMEM;
	if ((r = item_by_name(v, &c->id, name, row, &n)) < 0) {
		r = hidden_enoent(r);
		vault_audit(v, c, "rename", 0, parent, name, r, newname);
		goto out;
	}
	if ((r = may_remove(v, &c->id, row, n)) == 0)
		r = restore_to(v, c, row, n, newparent, newname);
	vault_audit(v, c, "restore", row->ino, newparent, newname, r, row->path);
out:
	vault_node_put(v, n);
	free(row);
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
		r = purge_item(v, row);
		audit_item(v, NULL, "purge", row, r, "(expired)");
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
		if (!visible(v, &rq->peer, t, n)) {
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
		vis = visible(v, id, t, n);
		mine = vis && same && may_remove(v, id, t, n) == 0;
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
		if ((r = may_remove(v, &rq->peer, t, n)) < 0)
			vault_admin_fail(rep, r, "trash.restore: %s: you could not have removed it", t->path);
		else if ((r = restore_to(v, &c, t, n, t->oparent, t->oname)) < 0)
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
		vis = visible(v, &rq->peer, t, n);
		if (vis && may_remove(v, &rq->peer, t, n) == 0) {
			vault_node_put(v, n);
			r = purge_item(v, t);
			audit_item(v, &c, "purge", t, r, NULL);
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

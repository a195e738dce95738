/*
 * vault_trash_view.c - the recycle bin as the mount shows it: the virtual
 * directories .trash, .trash/files and .trash/info, each item's
 * NAME.trashinfo, their listings, and the two changes allowed there: rm
 * of an item (purge) and mv of one out (restore).  A file of its own
 * because it is the FUSE-facing side; what an item is, who may see,
 * purge or restore it, and how, is vault_trash.c's (vault_trash_int.h).
 *
 * The view, in the FreeDesktop shape, uses virtual inode numbers in
 * [2^60, 2^60 + 2^32) (the store's counter never gets there):
 *   /.trash            VV_TRASH_INO         r-x, not listed by the root's readdir
 *   /.trash/files      VV_TRASH_FILES_INO   the items (their own inodes)
 *   /.trash/info       VV_TRASH_INFO_INO    NAME.trashinfo per item
 *   NAME.trashinfo     VV_TRASH_INFO_FIRST + item id
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

#include "vault_int.h"
#include "vault_trash_int.h"
#include "vecvault/error.h"

#define INFO_SUFFIX ".trashinfo"
/* item_by_name: the item exists but the caller may not see it.  Answered
 * as VV_ENOENT (hidden_enoent), audited as a refusal. */
#define VV_EHIDDEN (-100000)

static int hidden_enoent(int r)
{
	return r == VV_EHIDDEN ? VV_ENOENT : r;
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
	if (!vault_trash_visible(v, id, row, *out)) {
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
	if (!vault_trash_visible(s->v, &s->dh->id, row, n)) {
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

/* --- rm and mv in .trash/files: purge and restore -------------------------- */

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
	else if ((r = vault_trash_may_remove(v, &c->id, row, n)) == 0)
		r = vault_trash_purge_item(v, row);
	vault_trash_audit_item(v, c, "purge", row, r, NULL);
out:
	vault_node_put(v, n);
	free(row);
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
	if ((r = vault_trash_may_remove(v, &c->id, row, n)) == 0)
		r = vault_trash_restore_to(v, c, row, n, newparent, newname);
	vault_audit(v, c, "restore", row->ino, newparent, newname, r, row->path);
out:
	vault_node_put(v, n);
	free(row);
	return r;
}

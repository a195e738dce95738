/*
 * repo_tree.c - walk one backup's tree with its file bytes decrypted, for
 * `vecvault backup restore --into MNT/PATH` (vecvault/backup.h,
 * vv_repo_restore_tree).  The CLI writes what it is given through the
 * mount as the user who runs it, so the vault's access checks and audit
 * log apply; the engine never writes here.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "content_int.h"
#include "grow.h"
#include "crypto_int.h"
#include "repo_int.h"
#include "vecvault/error.h"

#define PATH_CAP 4096
#define MAX_DEPTH 512

struct walk {
	struct vv_repo *r;
	const struct vv_rt_ops *ops;
	struct vv_manifest *m;
	uint8_t **keys;
	uint64_t *first;        /* per inode index: 0, or 1 + index into names of its first path
				 * (a directory: UINT64_MAX once walked) */
	char **names;
	size_t nnames, capnames;
	uint8_t *obj, *plain;
	size_t olen;
	const struct vv_bk_object *cur;
	struct vv_repo_progress p;
};

static void say(struct walk *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct walk *w, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (w->ops->problem)
		w->ops->problem(w->ops->ctx, line);
}

static int c_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct vv_bk_inode *)a)->r.ino, y = ((const struct vv_bk_inode *)b)->r.ino;

	return x < y ? -1 : x > y;
}

static int c_de(const void *a, const void *b)
{
	const struct vv_bk_dirent *x = a, *y = b;

	if (x->parent != y->parent)
		return x->parent < y->parent ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int c_ext(const void *a, const void *b)
{
	const struct vv_bk_extent *x = a, *y = b;

	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	return x->e.fblock < y->e.fblock ? -1 : x->e.fblock > y->e.fblock;
}

static int c_obj(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

static int c_x(const void *a, const void *b)
{
	uint64_t x = ((const struct vv_bk_xattr *)a)->ino, y = ((const struct vv_bk_xattr *)b)->ino;

	return x < y ? -1 : x > y;
}

/* qsort, but not of an empty array (NULL, which qsort must not be given:
 * a manifest may hold no rows of a kind). */
static void sort(void *a, size_t n, size_t size, int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(a, n, size, cmp);
}

static long ino_at(const struct vv_manifest *m, uint64_t ino)
{
	struct vv_bk_inode k;
	const struct vv_bk_inode *f;

	k.r.ino = ino;
	f = m->ninodes ? bsearch(&k, m->inodes, m->ninodes, sizeof(k), c_ino) : NULL;
	return f ? (long)(f - m->inodes) : -1;
}

/* First dirent index of dir (dirents sorted by parent, id). */
static size_t first_de(const struct vv_manifest *m, uint64_t dir)
{
	size_t lo = 0, hi = m->ndirents;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (m->dirents[mid].parent < dir)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static const uint8_t *key_of(struct walk *w, uint32_t coll)
{
	for (size_t i = 0; i < w->m->ncolls; i++)
		if (w->m->colls[i].id == coll)
			return w->keys[i];
	return NULL;
}

static void fill(struct walk *w, struct vv_rt_entry *e, const struct vv_bk_inode *in, const char *path,
		 struct vv_rt_xattr *xs, size_t *nx)
{
	struct vv_bk_xattr k = { .ino = in->r.ino };
	const struct vv_bk_xattr *f = w->m->nxattrs ? bsearch(&k, w->m->xattrs, w->m->nxattrs,
							      sizeof(k), c_x) : NULL;

	memset(e, 0, sizeof(*e));
	e->path = path;
	e->mode = in->r.mode;
	e->uid = in->r.uid;
	e->gid = in->r.gid;
	e->size = in->r.size;
	e->rdev = in->r.rdev;
	e->atime = in->r.atime;
	e->mtime = in->r.mtime;
	*nx = 0;
	if (f) {
		while (f > w->m->xattrs && f[-1].ino == in->r.ino)
			f--;
		for (; f < w->m->xattrs + w->m->nxattrs && f->ino == in->r.ino && *nx < 64; f++)
			xs[(*nx)++] = (struct vv_rt_xattr){ f->name, f->val, f->vlen };
	}
	e->xattrs = xs;
	e->nxattrs = *nx;
}

static int file_data(struct walk *w, const struct vv_bk_inode *in)
{
	struct vv_bk_extent k = { .ino = in->r.ino };
	const uint8_t *key = key_of(w, in->r.coll);
	size_t lo = 0, hi = w->m->nextents;
	int r;

	if (in->datalen && in->r.size)
		return w->ops->data(w->ops->ctx, 0, in->data,
				    in->datalen < in->r.size ? in->datalen : (size_t)in->r.size);
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c_ext(&w->m->extents[mid], &k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < w->m->nextents && w->m->extents[i].ino == in->r.ino; i++) {
		const struct vv_bk_extent *x = &w->m->extents[i];
		struct vv_bk_object ok;
		const struct vv_bk_object *o;
		char nhex[65];
		uint64_t off = x->e.fblock * (uint64_t)VV_BLOCK_SIZE;
		size_t len = x->e.len;

		memcpy(ok.chunk, x->e.chunk_id, VV_CHUNK_ID_BYTES);
		o = w->m->nobjs ? bsearch(&ok, w->m->objs, w->m->nobjs, sizeof(ok), c_obj) : NULL;
		if (!o || !key) {
			say(w, "backup %s: a block of inode %llu names %s", w->m->info.id,
			    (unsigned long long)in->r.ino, o ? "a collection without a key" : "no listed object");
			return VV_ECORRUPT;
		}
		vv_hex_encode(nhex, o->name, VV_REPO_NAME_BYTES);
		if (o != w->cur) {
			free(w->obj);
			w->obj = NULL;
			w->cur = NULL;
			if ((r = vv_repo_object_read(w->r, o->name, &w->obj, &w->olen)) < 0) {
				say(w, "object %s: %s", nhex, r == VV_ENOENT ? "missing" : r == VV_ECORRUPT ?
				    "altered: its bytes do not match its name" : vv_strerror(r));
				return r == VV_ENOENT ? VV_ECORRUPT : r;
			}
			w->cur = o;
			w->p.objects_done++;
			w->p.bytes_done += w->olen;
			if (w->ops->progress)
				w->ops->progress(w->ops->ctx, &w->p);
		}
		if (vv_content_open_mem(key, in->r.objid, &x->e, w->obj, w->olen, w->plain) < 0) {
			say(w, "object %s: block %llu of inode %llu does not decrypt", nhex,
			    (unsigned long long)x->e.fblock, (unsigned long long)in->r.ino);
			return VV_ECORRUPT;
		}
		if (off >= in->r.size)
			break;
		if (off + len > in->r.size)
			len = (size_t)(in->r.size - off);
		if ((r = w->ops->data(w->ops->ctx, off, w->plain, len)) != 0)
			return r;
	}
	return 0;
}

static int walk_dir(struct walk *w, uint64_t dir, char *path, size_t plen, int depth);

static int one(struct walk *w, long i, char *path, size_t plen, int depth)
{
	const struct vv_bk_inode *in = &w->m->inodes[i];
	struct vv_rt_xattr xs[64];
	struct vv_rt_entry e;
	size_t nx;
	int r;

	fill(w, &e, in, path, xs, &nx);
	if (S_ISDIR(in->r.mode)) {
		if (depth > MAX_DEPTH)
			return VV_ECORRUPT;
		/* A directory is reached once: entries of a hostile manifest
		 * that name one twice (a cycle, or k directories each naming
		 * the next twice: 2^k walks) are refused. */
		if (w->first[i]) {
			say(w, "backup %s: directory inode %llu has more than one entry", w->m->info.id,
			    (unsigned long long)in->r.ino);
			return VV_ECORRUPT;
		}
		w->first[i] = UINT64_MAX;
		e.kind = VV_RT_DIR;
		if ((r = w->ops->entry(w->ops->ctx, &e)) != 0 || (r = walk_dir(w, in->r.ino, path, plen, depth + 1)) != 0)
			return r;
		fill(w, &e, in, path, xs, &nx);
		e.kind = VV_RT_DIR_END;
		return w->ops->entry(w->ops->ctx, &e);
	}
	if (w->first[i]) {
		e.kind = VV_RT_LINK;
		e.link_to = w->names[w->first[i] - 1];
		return w->ops->entry(w->ops->ctx, &e);
	}
	if (S_ISREG(in->r.mode)) {
		if (VV_GROW(w->names, w->nnames, w->capnames) < 0 ||
		    !(w->names[w->nnames] = strdup(path)))
			return VV_ENOMEM;
		w->first[i] = ++w->nnames;
		e.kind = VV_RT_FILE;
		if ((r = w->ops->entry(w->ops->ctx, &e)) != 0 || (r = file_data(w, in)) != 0)
			return r;
		e.kind = VV_RT_FILE_END;
		return w->ops->entry(w->ops->ctx, &e);
	}
	if (S_ISLNK(in->r.mode)) {
		char target[PATH_CAP];
		size_t n = in->datalen < sizeof(target) - 1 ? in->datalen : sizeof(target) - 1;
		memcpy(target, in->data ? (const char *)in->data : "", n);
		target[n] = 0;
		e.kind = VV_RT_SYMLINK;
		e.target = target;
		return w->ops->entry(w->ops->ctx, &e);
	}
	e.kind = VV_RT_OTHER;
	return w->ops->entry(w->ops->ctx, &e);
}

static int walk_dir(struct walk *w, uint64_t dir, char *path, size_t plen, int depth)
{
	for (size_t i = first_de(w->m, dir); i < w->m->ndirents && w->m->dirents[i].parent == dir; i++) {
		const struct vv_bk_dirent *d = &w->m->dirents[i];
		size_t nl = strlen(d->name);
		long x = ino_at(w->m, d->ino);
		int r;

		if (x < 0) {
			say(w, "backup %s: an entry names inode %llu, which it does not hold", w->m->info.id,
			    (unsigned long long)d->ino);
			return VV_ECORRUPT;
		}
		if (plen + nl + 2 > PATH_CAP)
			return VV_ENAMETOOLONG;
		if (plen)
			path[plen] = '/';
		memcpy(path + plen + (plen ? 1 : 0), d->name, nl + 1);
		r = one(w, x, path, plen + nl + (plen ? 1 : 0), depth);
		path[plen] = 0;
		if (r != 0)
			return r;
	}
	return 0;
}

int vv_repo_restore_tree(struct vv_repo *r, const char *id_hex, const char *path, const struct vv_rt_ops *ops)
{
	struct walk w = { .r = r, .ops = ops };
	struct vv_manifest m;
	char buf[PATH_CAP] = "";
	uint64_t at = 1;
	long x;
	int e;

	if ((e = vv_repo_manifest_load(r, id_hex, &m)) < 0) {
		say(&w, "manifest %s: %s", id_hex, e == VV_ECORRUPT && vv_repo_why(r)[0] ? vv_repo_why(r) :
		    e == VV_ECORRUPT ? "altered, truncated or not of this repository (does not "
		    "authenticate)" : vv_strerror(e));
		return e;
	}
	w.m = &m;
	sort(m.inodes, m.ninodes, sizeof(*m.inodes), c_ino);
	sort(m.dirents, m.ndirents, sizeof(*m.dirents), c_de);
	sort(m.extents, m.nextents, sizeof(*m.extents), c_ext);
	sort(m.objs, m.nobjs, sizeof(*m.objs), c_obj);
	sort(m.xattrs, m.nxattrs, sizeof(*m.xattrs), c_x);
	if (!(w.keys = calloc(m.ncolls + 1, sizeof(*w.keys))) || !(w.first = calloc(m.ninodes + 1, sizeof(*w.first))) ||
	    !(w.plain = malloc(VV_BLOCK_SIZE))) {
		e = VV_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < m.ncolls; i++) {
		if (!(w.keys[i] = vv_secure_alloc(VV_KEY_BYTES))) {
			e = VV_ENOMEM;
			goto out;
		}
		if (vv_repo_coll_unwrap(r, m.id, m.colls[i].id, m.colls[i].wrapped, w.keys[i]) < 0) {
			say(&w, "backup %s: the key of collection %u does not authenticate", m.info.id, m.colls[i].id);
			e = VV_ECORRUPT;
			goto out;
		}
	}
	/* Resolve path from the root by names. */
	for (const char *p = path; *p;) {
		const char *s;
		size_t n;
		bool found = false;
		while (*p == '/')
			p++;
		if (!*p)
			break;
		s = strchr(p, '/');
		n = s ? (size_t)(s - p) : strlen(p);
		for (size_t i = first_de(&m, at); i < m.ndirents && m.dirents[i].parent == at; i++)
			if (strlen(m.dirents[i].name) == n && memcmp(m.dirents[i].name, p, n) == 0) {
				at = m.dirents[i].ino;
				found = true;
				break;
			}
		if (!found) {
			say(&w, "%s is not in backup %s", path, m.info.id);
			e = VV_ENOENT;
			goto out;
		}
		p += n;
	}
	if ((x = ino_at(&m, at)) < 0) {
		e = VV_ECORRUPT;
		goto out;
	}
	/* The totals are the whole backup's: an upper bound below a --path. */
	w.p.objects_total = m.nobjs;
	for (size_t i = 0; i < m.nobjs; i++)
		w.p.bytes_total += m.objs[i].size;
	if (!S_ISDIR(m.inodes[x].r.mode)) {
		/* A single file (symlink...): its own name under the target. */
		const char *base = strrchr(path, '/');
		snprintf(buf, sizeof(buf), "%s", base ? base + 1 : path);
		e = one(&w, x, buf, strlen(buf), 0);
	} else {
		e = one(&w, x, buf, 0, 0);
	}
	if (e == 0 && w.ops->progress) {
		/* Done: what was to restore is all there, whatever the bound said. */
		w.p.objects_total = w.p.objects_done;
		w.p.bytes_total = w.p.bytes_done;
		w.ops->progress(w.ops->ctx, &w.p);
	}
out:
	for (size_t i = 0; w.keys && i < m.ncolls; i++)
		vv_secure_free(w.keys[i]);
	free(w.keys);
	free(w.first);
	for (size_t i = 0; i < w.nnames; i++)
		free(w.names[i]);
	free(w.names);
	free(w.obj);
	free(w.plain);
	vv_manifest_free(&m);
	return e;
}

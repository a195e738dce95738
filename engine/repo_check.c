/*
 * repo_check.c - `vecvault backup verify`: is every backup in a repository
 * whole and untouched (vecvault/backup.h, vv_repo_verify)?
 *
 * Structure: each manifest authenticates under the repository key and
 * parses; each extent names an object of its manifest and a file of it;
 * each file's collection key is in the manifest and unwraps.  Objects:
 * each object any manifest names exists, has the recorded size, and its
 * bytes hash (keyed) to its name, so a flipped, truncated, removed or
 * swapped object is found.  --read-data: every block of every file is
 * decrypted with its collection key, as a restore would.
 */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "content_int.h"
#include "grow.h"
#include "crypto_int.h"
#include "repo_int.h"
#include "vecvault/error.h"
#include "vecvault/log.h"

struct vctx {
	struct vv_repo *r;
	vv_repo_problem_fn problem;
	vv_repo_progress_fn progress;
	void *ctx;
	uint64_t problems;
	struct vv_repo_progress p;
};

static void say(struct vctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct vctx *c, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	c->problems++;
	if (c->problem)
		c->problem(c->ctx, line);
}

static void tick(struct vctx *c)
{
	if (c->progress)
		c->progress(c->ctx, &c->p);
}

static int cmp_name(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->name, ((const struct vv_bk_object *)b)->name,
		      VV_REPO_NAME_BYTES);
}

static int cmp_ino(const void *a, const void *b)
{
	uint64_t x = ((const struct vv_bk_inode *)a)->r.ino, y = ((const struct vv_bk_inode *)b)->r.ino;

	return x < y ? -1 : x > y;
}

static int cmp_ext_chunk(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_extent *)a)->e.chunk_id, ((const struct vv_bk_extent *)b)->e.chunk_id,
		      VV_CHUNK_ID_BYTES);
}

static int cmp_obj_chunk(const void *a, const void *b)
{
	return memcmp(((const struct vv_bk_object *)a)->chunk, ((const struct vv_bk_object *)b)->chunk,
		      VV_CHUNK_ID_BYTES);
}

static const struct vv_bk_inode *find_ino(const struct vv_manifest *m, uint64_t ino)
{
	struct vv_bk_inode k;

	k.r.ino = ino;
	return m->ninodes ? bsearch(&k, m->inodes, m->ninodes, sizeof(k), cmp_ino) : NULL;
}

static const struct vv_bk_object *find_chunk(const struct vv_manifest *m, const uint8_t *chunk)
{
	struct vv_bk_object k;

	memcpy(k.chunk, chunk, VV_CHUNK_ID_BYTES);
	return m->nobjs ? bsearch(&k, m->objs, m->nobjs, sizeof(k), cmp_obj_chunk) : NULL;
}

/* The keys of m's collections, unwrapped (secure memory, caller frees
 * with free_keys); a key that does not unwrap is a problem and stays NULL. */
static uint8_t **unwrap_keys(struct vctx *c, const struct vv_manifest *m)
{
	uint8_t **keys = calloc(m->ncolls ? m->ncolls : 1, sizeof(*keys));

	for (size_t i = 0; keys && i < m->ncolls; i++) {
		if (!(keys[i] = vv_secure_alloc(VV_KEY_BYTES)))
			continue;
		if (vv_repo_coll_unwrap(c->r, m->id, m->colls[i].id, m->colls[i].wrapped, keys[i]) < 0) {
			say(c, "backup %s: the key of collection %u does not authenticate", m->info.id,
			    m->colls[i].id);
			vv_secure_free(keys[i]);
			keys[i] = NULL;
		}
	}
	return keys;
}

static void free_keys(uint8_t **keys, size_t n)
{
	for (size_t i = 0; keys && i < n; i++)
		vv_secure_free(keys[i]);
	free(keys);
}

static const uint8_t *key_of(const struct vv_manifest *m, uint8_t **keys, uint32_t coll)
{
	for (size_t i = 0; i < m->ncolls; i++)
		if (m->colls[i].id == coll)
			return keys[i];
	return NULL;
}

/* Structure of one manifest and, with read_data, every block of it. */
static int check_manifest(struct vctx *c, struct vv_manifest *m, bool read_data)
{
	uint8_t **keys = unwrap_keys(c, m), *obj = NULL, *plain = NULL;
	const struct vv_bk_object *cur = NULL;
	size_t olen = 0;
	int r = 0;

	if (!keys || !(plain = malloc(VV_BLOCK_SIZE))) {
		r = VV_ENOMEM;
		goto out;
	}
	/* (An empty array is NULL, which qsort must not be given.) */
	if (m->ninodes > 1)
		qsort(m->inodes, m->ninodes, sizeof(*m->inodes), cmp_ino);
	if (m->nobjs > 1)
		qsort(m->objs, m->nobjs, sizeof(*m->objs), cmp_obj_chunk);
	if (m->nextents > 1)
		qsort(m->extents, m->nextents, sizeof(*m->extents), cmp_ext_chunk);
	if (!find_ino(m, 1))
		say(c, "backup %s: no root directory", m->info.id);
	for (size_t i = 0; i < m->ndirents; i++)
		if (!find_ino(m, m->dirents[i].ino))
			say(c, "backup %s: an entry names inode %llu, which it does not hold", m->info.id,
			    (unsigned long long)m->dirents[i].ino);
	for (size_t i = 0; i < m->nextents; i++) {
		const struct vv_bk_extent *x = &m->extents[i];
		const struct vv_bk_inode *in = find_ino(m, x->ino);
		const struct vv_bk_object *o = find_chunk(m, x->e.chunk_id);
		const uint8_t *key;
		char nhex[65];

		if (!in || !o) {
			say(c, "backup %s: block %llu of inode %llu names %s", m->info.id,
			    (unsigned long long)x->e.fblock, (unsigned long long)x->ino,
			    in ? "an object the backup does not list" : "no file");
			continue;
		}
		if (vv_content_extent_end(&x->e) > o->size) {
			vv_hex_encode(nhex, o->name, VV_REPO_NAME_BYTES);
			say(c, "backup %s: a block lies past the end of object %s", m->info.id, nhex);
			continue;
		}
		if (!(key = key_of(m, keys, in->r.coll))) {
			say(c, "backup %s: inode %llu's collection %u has no key in the backup", m->info.id,
			    (unsigned long long)x->ino, in->r.coll);
			continue;
		}
		if (!read_data)
			continue;
		if (cur != o) {
			free(obj);
			obj = NULL;
			cur = o;
			vv_hex_encode(nhex, o->name, VV_REPO_NAME_BYTES);
			/* A missing or altered object is reported once, by the
			 * object pass. */
			if (vv_repo_object_read(c->r, o->name, &obj, &olen) < 0)
				continue;
		}
		if (!obj)
			continue;
		if (vv_content_open_mem(key, in->r.objid, &x->e, obj, olen, plain) < 0) {
			vv_hex_encode(nhex, o->name, VV_REPO_NAME_BYTES);
			say(c, "object %s: block %llu of inode %llu does not decrypt (backup %s)", nhex,
			    (unsigned long long)x->e.fblock, (unsigned long long)x->ino, m->info.id);
		}
	}
out:
	free(obj);
	free(plain);
	free_keys(keys, m->ncolls);
	return r;
}

/* Objects in DEST no manifest names (all: sorted by name). */
static uint64_t count_unreferenced(int objfd, const struct vv_bk_object *all, size_t n)
{
	uint64_t count = 0;
	struct dirent *de, *fe;
	DIR *d, *sd;
	int fd;

	if ((fd = dup(objfd)) < 0 || !(d = fdopendir(fd)))
		return 0;
	rewinddir(d);
	while ((de = readdir(d))) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		if ((fd = openat(objfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if (!(sd = fdopendir(fd))) {
			close(fd);
			continue;
		}
		while ((fe = readdir(sd))) {
			struct vv_bk_object k;
			if (strlen(fe->d_name) != 64 ||
			    vv_hex_decode(k.name, VV_REPO_NAME_BYTES, fe->d_name, 64) < 0)
				continue;
			if (!n || !bsearch(&k, all, n, sizeof(k), cmp_name))
				count++;
		}
		closedir(sd);
	}
	closedir(d);
	return count;
}

int vv_repo_verify(struct vv_repo *r, bool read_data, vv_repo_problem_fn problem,
		   vv_repo_progress_fn progress, void *ctx, uint64_t *problems, uint64_t *unreferenced)
{
	struct vctx c = { .r = r, .problem = problem, .progress = progress, .ctx = ctx };
	struct vv_bk_object *all = NULL;
	size_t nall = 0, cap = 0, k = 0;
	struct vv_manifest m;
	char **names = NULL;
	size_t n = 0;
	int e;

	if ((e = vv_repo_manifest_names(r, &names, &n)) < 0)
		return e;
	for (size_t i = 0; i < n; i++) {
		if ((e = vv_repo_manifest_load(r, names[i], &m)) < 0) {
			say(&c, "manifest %s: %s", names[i], e == VV_ECORRUPT && vv_repo_why(r)[0] ?
			    vv_repo_why(r) : e == VV_ECORRUPT ? "altered, truncated or "
			    "not of this repository (does not authenticate)" : vv_strerror(e));
			continue;
		}
		/* Its metadata packs are objects too (read and checked again
		 * below with the rest, and not unreferenced). */
		for (size_t j = 0; j < m.nobjs + m.npacks; j++) {
			if (VV_GROW(all, nall, cap) < 0) {
				vv_manifest_free(&m);
				e = VV_ENOMEM;
				goto out;
			}
			if (j < m.nobjs) {
				all[nall++] = m.objs[j];
			} else {
				memset(&all[nall], 0, sizeof(all[nall]));
				memcpy(all[nall].name, m.packs[j - m.nobjs].name, VV_REPO_NAME_BYTES);
				all[nall++].size = m.packs[j - m.nobjs].size;
			}
		}
		e = check_manifest(&c, &m, read_data);
		vv_manifest_free(&m);
		if (e < 0)
			goto out;
	}
	/* Each object once (manifests share them). */
	if (nall)
		qsort(all, nall, sizeof(*all), cmp_name);
	for (size_t i = 0; i < nall; i++)
		if (k == 0 || memcmp(all[k - 1].name, all[i].name, VV_REPO_NAME_BYTES) != 0)
			all[k++] = all[i];
	nall = k;
	{
		c.p.objects_total = nall;
		for (size_t i = 0; i < nall; i++)
			c.p.bytes_total += all[i].size;
		for (size_t i = 0; i < nall; i++) {
			uint8_t *buf = NULL;
			size_t len = 0;
			char nhex[65];

			vv_hex_encode(nhex, all[i].name, VV_REPO_NAME_BYTES);
			e = vv_repo_object_read(r, all[i].name, &buf, &len);
			if (e == 0 && len != all[i].size)
				e = VV_ECORRUPT;
			free(buf);
			if (e < 0)
				say(&c, "object %s: %s", nhex, e == VV_ENOENT ? "missing" : e == VV_ECORRUPT ?
				    "altered: its bytes do not match its name" : vv_strerror(e));
			c.p.objects_done++;
			c.p.bytes_done += len;
			tick(&c);
		}
		/* The end, also of a repository with no object. */
		c.p.bytes_total = c.p.bytes_done;
		tick(&c);
	}
	if (unreferenced)
		*unreferenced = count_unreferenced(vv_repo_objfd(r), all, nall);
	e = c.problems ? VV_ECORRUPT : 0;
out:
	free(all);
	vv_repo_names_free(names, n);
	if (problems)
		*problems = c.problems;
	return e;
}
